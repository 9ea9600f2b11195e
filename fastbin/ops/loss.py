"""Softmax cross-entropy losses with their gradients (validated public API).

Both functions mirror :mod:`fastbin.reference` (same names, arguments and
results) and call the fused kernels in :mod:`fastbin.kernels.softmax_ce` and
:mod:`fastbin.kernels.linear_ce`.

NaN policy: inputs are not scanned for NaN (that would cost as much as the
loss itself). A NaN (or +inf) logit, or a NaN in ``x``/``w``/``b`` that reaches
a logit, makes that row's loss term and its whole gradient row NaN, so the
returned loss is NaN, as NumPy gives; other rows' gradients are unaffected.
A ``-inf`` logit is probability 0 (a zero target there adds 0 to the loss,
where NumPy's ``t * log_softmax`` would give ``0 * -inf = NaN``). Integer
labels outside ``[0, c)`` and targets that are negative or not finite raise
``ValueError`` before any kernel runs.
"""
from __future__ import annotations

import numba
import numpy as np

from .._config import use_threads
from .._validate import FLOAT_DTYPES, check_array, check_labels, check_matrix, check_packed, check_same_dtype
from ..kernels.linear_ce import (
    linear_softmax_ce_labels,
    linear_softmax_ce_packed_labels,
    linear_softmax_ce_packed_targets,
    linear_softmax_ce_parallel,
    linear_softmax_ce_targets,
)
from ..kernels.softmax_ce import count_labels_out_of_range, softmax_ce_labels, softmax_ce_targets
from ..kernels.updates import partial_overlap
from ..packed import PackedSigns

__all__ = ["softmax_cross_entropy", "linear_softmax_cross_entropy"]


def softmax_cross_entropy(logits, labels, *, out=None):
    """Mean softmax cross-entropy and its gradient w.r.t. the logits.

    Parameters
    ----------
    logits : ndarray float32 or float64, shape (m, c)
    labels : integer ndarray (m,) of class indices in ``[0, c)``, or targets
        (m, c) of logits' dtype, finite and ``>= 0`` (one-hot or soft).
    out : ndarray (m, c) of logits' dtype, C-contiguous, writeable, optional
        Receives ``dlogits`` (no allocation). May be ``logits`` itself (the
        gradient then overwrites the logits), not the targets.

    Returns
    -------
    loss : float
        ``-(1/m) sum_i sum_j t[i, j] * log_softmax(logits)[i, j]``, accumulated
        in float64.
    dlogits : ndarray like ``logits``
        ``(softmax(logits) * rowsum(t) - t) / m`` (``= (p - onehot) / m``).

    The row max is subtracted before ``exp``: logits of +-1e4 are fine.
    """
    logits = _float_matrix("logits", logits)
    m, c = logits.shape
    labels = _labels("labels", labels, m, c, logits.dtype)
    if out is None:
        out = np.empty_like(logits)
    else:
        if not (
            type(out) is np.ndarray
            and out.dtype == logits.dtype
            and out.shape == logits.shape
            and out.flags.c_contiguous
            and out.flags.writeable
        ):
            out = _check_out("out", out, logits.shape, logits.dtype)
        # distinct arrays that own their memory (base None) cannot overlap
        if (
            out.base is not None
            or logits.base is not None
            or (labels.ndim == 2 and (labels.base is not None or out is labels))
        ):
            if labels.ndim == 2 and np.may_share_memory(out, labels):
                raise ValueError("out must not overlap the targets (labels)")
            if partial_overlap(out.reshape(-1), logits.reshape(-1)):
                raise ValueError("out must be logits itself or not overlap it")
    if labels.ndim == 1:
        loss = softmax_ce_labels(logits, labels, out)
    else:
        loss = softmax_ce_targets(logits, labels, out)
    return float(loss), out


def linear_softmax_cross_entropy(x, w, b, labels, *, threads=None):
    """Loss and gradients of one softmax-regression / BinaryConnect step.

    ``z = x @ W + b``, then :func:`softmax_cross_entropy` ``(z, labels)``,
    fused: no (m, k) or larger intermediate is built.

    Parameters
    ----------
    x : ndarray float32 or float64, shape (m, k)
    w : ndarray (k, c) of x's dtype, or ``PackedSigns`` from
        ``pack_weights(W)`` (c rows of k bits) meaning ``sign(W)``.
    b : ndarray (c,) of x's dtype
    labels : integer (m,) class indices in ``[0, c)`` or targets (m, c) of x's
        dtype (finite, ``>= 0``).

    threads : bool or None
        ``None``: split the rows over Numba's threads when ``m * k * c`` is
        at least ``_config.TABLE["parallel_min_work"]["linear_softmax_ce"]`` (and more than
        one thread is available); ``True``/``False`` force the choice.

    Returns
    -------
    loss : float
    dw : ndarray (k, c) of x's dtype: ``x.T @ dz`` (for packed ``w``, the
        gradient w.r.t. ``sign(W)``, which BinaryConnect applies to the real W).
    db : ndarray (c,) of x's dtype: ``sum_i dz[i]``.
    """
    x = _float_matrix("x", x)
    m, k = x.shape
    packed = isinstance(w, PackedSigns)
    if packed:
        w = check_packed("w", w)
        if w.n_bits != k:
            raise ValueError(f"w packs k={w.n_bits} bits per class but x has k={k} columns")
        c = w.rows
    else:
        w = _float_matrix("w", w)
        if w.dtype != x.dtype:
            check_same_dtype(x=x, w=w)
        if w.shape[0] != k:
            raise ValueError(f"w must have shape ({k}, c) to match x {x.shape}, got {w.shape}")
        c = w.shape[1]
    if not (type(b) is np.ndarray and b.ndim == 1 and b.dtype == x.dtype and b.flags.c_contiguous):
        b = check_array("b", b, FLOAT_DTYPES, 1)
        check_same_dtype(x=x, b=b)
    if b.shape[0] != c:
        raise ValueError(f"b must have shape ({c},) to match w's {c} classes, got {b.shape}")
    labels = _labels("labels", labels, m, c, x.dtype)
    dw = np.empty((k, c), dtype=x.dtype)
    db = np.empty(c, dtype=x.dtype)
    if use_threads("linear_softmax_ce", m * k * c, threads):
        use_targets = labels.ndim == 2
        loss = linear_softmax_ce_parallel(
            x,
            None if packed else w,  # None: the kernel compiles the branch of the other one only
            w.bits if packed else None,
            b,
            None if use_targets else labels,
            labels if use_targets else None,
            use_targets,
            dw,
            db,
            numba.get_num_threads(),
        )
    elif packed:
        kernel = linear_softmax_ce_packed_labels if labels.ndim == 1 else linear_softmax_ce_packed_targets
        loss = kernel(x, w.bits, b, labels, dw, db)
    else:
        kernel = linear_softmax_ce_labels if labels.ndim == 1 else linear_softmax_ce_targets
        loss = kernel(x, w, b, labels, dw, db)
    return float(loss), dw, db


def _check_out(name, out, shape, dtype):
    out = check_array(name, out, (dtype,), len(shape), writeable=True)
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
    return out


# Lean checks: the common valid case costs a few attribute reads (the whole
# 128 x 10 loss takes a few microseconds); anything else goes through the
# shared helpers in fastbin._validate, which copy or raise with their messages.
def _float_matrix(name, value):
    if (
        type(value) is np.ndarray
        and value.ndim == 2
        and value.dtype in FLOAT_DTYPES
        and value.flags.c_contiguous
        and value.size
    ):
        return value
    return check_matrix(name, value, FLOAT_DTYPES)


def _labels(name, labels, m, c, dtype):
    if (
        type(labels) is np.ndarray
        and labels.ndim == 1
        and labels.dtype == _INTP
        and labels.shape[0] == m
        and count_labels_out_of_range(labels, c) == 0
    ):
        return labels
    return check_labels(name, labels, m, c, dtype)


_INTP = np.dtype(np.intp)
