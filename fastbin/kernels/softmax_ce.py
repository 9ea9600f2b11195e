"""Fused softmax cross-entropy kernels: loss and ``dlogits`` together.

For one row ``z`` (length ``c``) with targets ``t`` and ``m`` rows in all::

    mx   = max_j z[j]                    (subtracted first: +-1e4 logits stay finite)
    s    = sum_j exp(z[j] - mx)
    lse  = log(s)                        (so log_softmax[j] = z[j] - mx - lse)
    loss_row = sum_j t[j] * (mx + lse - z[j])
    dz[j]    = (exp(z[j] - mx) / s * sum_j t[j] - t[j]) / m

For integer labels ``t`` is one-hot: ``loss_row = mx + lse - z[label]`` and
``dz = (p - onehot) / m``. The kernels return the mean loss, accumulated in
float64, and write ``dz`` into a preallocated ``dlogits``.

NaN: a NaN logit makes ``s`` NaN, so that row's loss term and its whole
gradient row are NaN, and the returned loss is NaN (as NumPy gives). A ``+inf``
logit gives ``inf - inf = NaN`` in the same way. ``-inf`` logits are fine
(probability 0; a zero target there adds 0 to the loss, where the NumPy
formula ``t * log_softmax`` gives ``0 * -inf = NaN``) unless the whole row is
``-inf``.

Layout (measured, 128 x 10): per row the max, the label term and ``z - max``
go to ``out``; then ``exp`` runs as one flat loop over the whole block (a
c = 10 row is too short for the vectoriser, a 1280-element loop is not); then
per row the sum, the scale and the one-hot subtraction. ``exp`` is
:func:`exp_nonpositive` (below), not libm's scalar call.

The kernels trust their inputs (shapes, dtypes, label range): the public
:func:`fastbin.softmax_cross_entropy` checks them. ``ce_block_labels`` and
``ce_block_targets`` work on any block of rows and are shared with the fused
linear kernel in :mod:`fastbin.kernels.linear_ce`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload

from .._config import FASTMATH_EXACT, jit, jit_disabled

__all__ = [
    "exp_nonpositive",
    "ce_block_labels",
    "ce_block_targets",
    "softmax_ce_labels",
    "softmax_ce_targets",
    "count_labels_out_of_range",
]


# ---------------------------------------------------------------------------
# exp for the softmax, vectorisable. Numba has no vector exp without Intel's
# SVML, so ``math.exp`` is a scalar libm call per element (measured about
# 8 ns per element in a 128 x 10 softmax, most of the kernel). After the max is
# subtracted every argument is <= 0 (or NaN), so a branch-free exp for that
# range suffices: x = n*ln2 + r (Cody-Waite, |r| <= ln2/2), exp(r) by Taylor
# polynomial (degree 13 for float64, 7 for float32: truncation error below
# half an ulp), times 2**n built from the exponent bits. Measured within 1 ulp
# of the exact value (tests/test_softmax_ce.py allows 2), 0.25 ns/element in
# float32 and 0.8 ns in float64 against libm's 4 and 8 ns.
# ---------------------------------------------------------------------------
def exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0`` or NaN (float32 or float64 scalar, result of
    the same type). ``x <= -708`` (float64) or ``<= -87`` (float32) gives 0
    (exact value below 3.3e-308 / 1.7e-38, nothing a softmax sum >= 1 can
    see); NaN gives NaN; -inf gives 0. Plain NumPy under ``NUMBA_DISABLE_JIT``."""
    return np.exp(x)


@intrinsic
def _float_from_bits(typingctx, bits, like):
    """Reinterpret the low 32/64 bits of integer ``bits`` as ``like``'s float type."""
    if not isinstance(bits, types.Integer) or like not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        width = 32 if like == types.float32 else 64
        int_type = context.get_value_type(types.int32 if width == 32 else types.int64)
        if value.type.width > width:
            value = builder.trunc(value, int_type)
        elif value.type.width < width:
            value = builder.sext(value, int_type)
        return builder.bitcast(value, context.get_value_type(like))

    return like(bits, like), codegen


_LOG2E = 1.4426950408889634
_LN2_HI64 = 6.93147180369123816490e-01  # fdlibm: n * _LN2_HI64 exact for |n| < 2**11
_LN2_LO64 = 1.90821492927058770002e-10
_LO64 = -708.0  # exp(-708) is still a normal float64
_LOG2E32 = np.float32(_LOG2E)
_LN2_HI32 = np.float32(0.693359375)  # Cephes: 9 significant bits
_LN2_LO32 = np.float32(-2.12194440e-4)
_LO32 = np.float32(-87.0)  # exp(-87) is still a normal float32
_HALF32 = np.float32(0.5)
_ONE32 = np.float32(1.0)
_ZERO32 = np.float32(0.0)
_INV_FACT32 = tuple(np.float32(1.0 / math.factorial(i)) for i in range(8))


def _exp_nonpositive_f64(x):
    xc = x if x > _LO64 else _LO64  # NaN and -inf become _LO64 here, fixed below
    n = np.floor(xc * _LOG2E + 0.5)
    r = (xc - n * _LN2_HI64) - n * _LN2_LO64
    p = 1.0 / 6227020800.0  # 1/13!
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale = _float_from_bits((np.int64(n) + 1023) << 52, xc)
    e = p * scale
    return e if x > _LO64 else (0.0 if x <= _LO64 else x)


def _exp_nonpositive_f32(x):
    xc = x if x > _LO32 else _LO32
    n = np.floor(xc * _LOG2E32 + _HALF32)
    r = (xc - n * _LN2_HI32) - n * _LN2_LO32
    p = _INV_FACT32[7]
    p = p * r + _INV_FACT32[6]
    p = p * r + _INV_FACT32[5]
    p = p * r + _INV_FACT32[4]
    p = p * r + _INV_FACT32[3]
    p = p * r + _INV_FACT32[2]
    p = p * r + _ONE32
    p = p * r + _ONE32
    scale = _float_from_bits((np.int32(n) + 127) << 23, xc)
    e = p * scale
    return e if x > _LO32 else (_ZERO32 if x <= _LO32 else x)


if not jit_disabled():
    # Compiled without "reassoc": see FASTMATH_EXACT in fastbin/_config.py.
    @overload(exp_nonpositive, jit_config={"fastmath": set(FASTMATH_EXACT)})
    def _exp_nonpositive_overload(x):
        if x == types.float64:
            return _exp_nonpositive_f64
        if x == types.float32:
            return _exp_nonpositive_f32
        return None


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def _row_max(logits, i):
    """Max of row ``i``. The loop skips a NaN (comparisons are False) unless it
    is the first element; either way ``logits[i] - max`` then has a NaN, which
    reaches that row's sum, loss and gradient."""
    mx = logits[i, 0]
    for j in range(1, logits.shape[1]):
        if logits[i, j] > mx:
            mx = logits[i, j]
    return mx


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def _exp_flat(out):
    """``out = exp(out)`` elementwise, arguments <= 0: one long loop over the
    C-contiguous block, so it vectorises even when c is small."""
    flat = out.reshape(out.size)
    for p in range(flat.size):
        flat[p] = exp_nonpositive(flat[p])


@jit
def ce_block_labels(logits, labels, out, inv_m):
    """Softmax cross-entropy of a block of rows against class indices.

    logits : (r, c) float, C-contiguous; labels : integer (r,) in [0, c);
    out : (r, c) of logits' dtype, C-contiguous, receives
    ``(softmax(logits) - onehot) * inv_m``; may be ``logits`` itself.
    Returns the *sum* (not mean) of the r row losses as float64.
    """
    m, c = logits.shape
    total = 0.0
    for i in range(m):
        mx = _row_max(logits, i)
        # (max - z[label]) >= 0, read before out (maybe logits) is written
        total += float(mx) - float(logits[i, labels[i]])
        for j in range(c):
            out[i, j] = logits[i, j] - mx
    _exp_flat(out)
    # sum_i log(s_i) as log(prod s_i): one log per ~200 rows instead of one per
    # row. Each s_i is in [1, c] (the max term is exp(0) = 1), so the product
    # only grows and is flushed into the sum before it could overflow.
    prod = 1.0
    for i in range(m):
        s = 0.0
        for j in range(c):
            s += float(out[i, j])
        prod *= s
        if prod > 1e200:
            total += math.log(prod)
            prod = 1.0
        scale = inv_m / s
        for j in range(c):
            out[i, j] *= scale
        out[i, labels[i]] -= inv_m
    return total + math.log(prod)


@jit
def ce_block_targets(logits, targets, out, inv_m):
    """As :func:`ce_block_labels` with targets ``t`` (r, c) of logits' dtype
    (finite, >= 0): ``out = (softmax(logits) * rowsum(t) - t) * inv_m`` (may
    be ``logits``, not ``targets``); returns ``sum_i sum_j t[i, j] *
    (max_i - logits[i, j] + log(s_i))``."""
    m, c = logits.shape
    total = 0.0
    for i in range(m):
        mx = _row_max(logits, i)
        for j in range(c):
            # every term t * (max - z) >= 0: no cancellation. t = 0 adds 0
            # even where z = -inf (the limit of t * log p), not 0 * inf = NaN.
            t = float(targets[i, j])
            if t != 0.0:
                total += t * (float(mx) - float(logits[i, j]))
            out[i, j] = logits[i, j] - mx
    _exp_flat(out)
    for i in range(m):
        s = 0.0
        t_sum = 0.0
        for j in range(c):
            s += float(out[i, j])
            t_sum += float(targets[i, j])
        total += t_sum * math.log(s)
        scale = t_sum * inv_m / s
        for j in range(c):
            out[i, j] = out[i, j] * scale - targets[i, j] * inv_m
    return total


@jit
def softmax_ce_labels(logits, labels, dlogits):
    """Mean softmax cross-entropy of ``logits`` against integer class indices.

    logits  : float32/float64 (m, c), C-contiguous
    labels  : integer (m,), values in [0, c) (not checked here)
    dlogits : (m, c) of logits' dtype, C-contiguous, written:
              ``(softmax(logits) - onehot) / m``. May be ``logits`` itself.
    Returns the mean loss as a float64.
    """
    inv_m = 1.0 / logits.shape[0]
    return ce_block_labels(logits, labels, dlogits, inv_m) * inv_m


@jit
def softmax_ce_targets(logits, targets, dlogits):
    """Mean softmax cross-entropy of ``logits`` against targets (m, c).

    logits  : float32/float64 (m, c), C-contiguous
    targets : (m, c) of logits' dtype, C-contiguous, finite and >= 0 (not
              checked here)
    dlogits : (m, c) of logits' dtype, C-contiguous, written:
              ``(softmax(logits) * rowsum(targets) - targets) / m``. May be
              ``logits`` itself, not ``targets``.
    Returns the mean loss ``-(1/m) sum t * log_softmax(logits)`` as a float64.
    """
    inv_m = 1.0 / logits.shape[0]
    return ce_block_targets(logits, targets, dlogits, inv_m) * inv_m


@jit
def count_labels_out_of_range(labels, c):
    """Number of ``labels`` outside ``[0, c)``: the public layer's range check
    (one jitted pass costs less than NumPy's ``min()`` plus ``max()`` on a
    small array)."""
    bad = 0
    for i in range(labels.shape[0]):
        label = labels[i]
        bad += (label < 0) | (label >= c)
    return bad
