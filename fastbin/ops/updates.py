"""In-place parameter updates (validated public API): SGD with optional
clipping (BinaryConnect) and autograd's Adam, each one fused pass over memory.

Both mirror :mod:`fastbin.reference` (``sgd_update``, ``adam_update``) and
call :mod:`fastbin.kernels.updates` on flat views, so any shape works. The
arrays updated in place must be C-contiguous and writeable (a copy would
silently not update the caller's array); ``grad`` may be any layout.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .._validate import FLOAT_DTYPES, check_array, check_positive_float, check_same_dtype
from ..kernels.updates import adam_overlap, adam_update_flat, partial_overlap, sgd_update_flat

__all__ = ["sgd_update", "adam_update"]


def sgd_update(param, grad, lr, clip=None):
    """In place: ``param -= lr * grad``, then, if ``clip`` is given,
    ``param = clip(param, -clip, clip)`` (BinaryConnect uses ``clip=1``).

    param : float32/float64 ndarray, any shape, C-contiguous, writeable.
    grad : ndarray of param's shape and dtype (may be ``param``; if it
        overlaps ``param`` otherwise, it is copied first, as NumPy would).
    lr : real >= 0. clip : real > 0 or None.
    Returns ``param``.
    """
    if not (_inplace_ok(param) and _same_layout(grad, param)):
        param = _param("param", param)
        grad = _like("grad", grad, param)
    lr = _nonnegative("lr", lr)
    flat_param, flat_grad = param.reshape(-1), grad.reshape(-1)
    if partial_overlap(flat_param, flat_grad):
        flat_grad = flat_grad.copy()  # as NumPy's lr * grad temporary
    sgd_update_flat(flat_param, flat_grad, lr, _clip(clip))
    return param


def adam_update(param, grad, m, v, step, lr=0.001, b1=0.9, b2=0.999, eps=1e-8, clip=None):
    """In place, one step of autograd's Adam (``autograd.misc.optimizers.adam``;
    ``step`` counts from 0), then the optional clip to ``[-clip, clip]``::

        m = (1 - b1) * g + b1 * m;     v = (1 - b2) * g**2 + b2 * v
        mhat = m / (1 - b1**(step+1)); vhat = v / (1 - b2**(step+1))
        param -= lr * mhat / (sqrt(vhat) + eps)

    param, m, v : float32/float64 ndarrays of one shape and dtype, C-contiguous,
        writeable, not overlapping each other (``m`` and ``v`` start as zeros).
    grad : ndarray of the same shape and dtype (may be ``param``, or overlap
        it, then it is copied first; not m or v).
    step : int, 0 <= step < 2**63 - 1. lr, eps : real >= 0. b1, b2 : real in [0, 1).
    clip : real > 0 or None. Returns ``param``.
    """
    if not (
        _inplace_ok(param)
        and _same_layout(grad, param)
        and _same_layout(m, param)
        and _same_layout(v, param)
        and m.flags.writeable
        and v.flags.writeable
    ):
        param = _param("param", param)
        grad = _like("grad", grad, param)
        m = _like("m", m, param, writeable=True)
        v = _like("v", v, param, writeable=True)
    flat = param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1)
    overlap = adam_overlap(*flat)
    if overlap == 6:  # grad partially overlaps param: read it from a copy
        flat = flat[0], flat[1].copy(), flat[2], flat[3]
    elif overlap:
        name_a, name_b = _OVERLAP_NAMES[overlap]
        raise ValueError(f"{name_a} and {name_b} must not overlap in memory")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an int, got {type(step).__name__}")
    if step < 0:
        raise ValueError(f"step must be >= 0 (it counts from 0), got {step}")
    if step >= _MAX_STEP:
        raise ValueError(f"step must be < 2**63 - 1 (the kernel's int64 step + 1), got {step}")
    lr = _nonnegative("lr", lr)
    eps = _nonnegative("eps", eps)
    b1 = _decay("b1", b1)
    b2 = _decay("b2", b2)
    adam_update_flat(*flat, int(step), lr, b1, b2, eps, _clip(clip))
    return param


# Lean checks first: on small arrays the shared helpers cost more than the
# update itself; anything unusual goes through them for their messages.
def _inplace_ok(a) -> bool:
    return (
        type(a) is np.ndarray
        and a.dtype in FLOAT_DTYPES
        and a.flags.c_contiguous
        and a.flags.writeable
    )


def _same_layout(a, param) -> bool:
    return type(a) is np.ndarray and a.dtype == param.dtype and a.shape == param.shape and a.flags.c_contiguous


def _nonnegative(name, value) -> float:
    if type(value) is float and 0.0 <= value < math.inf:
        return value
    return check_positive_float(name, value, allow_zero=True)


#: ``step + 1`` must fit the kernel's int64.
_MAX_STEP = 2**63 - 1

_OVERLAP_NAMES = {1: ("param", "m"), 2: ("param", "v"), 3: ("m", "v"), 4: ("grad", "m"), 5: ("grad", "v")}


def _param(name, value):
    return check_array(name, value, FLOAT_DTYPES, allow_empty=True, writeable=True)


def _like(name, value, param, writeable=False):
    value = check_array(name, value, FLOAT_DTYPES, allow_empty=True, writeable=writeable)
    check_same_dtype(param=param, **{name: value})
    if value.shape != param.shape:
        raise ValueError(f"{name} must have param's shape {param.shape}, got {value.shape}")
    return value


def _clip(clip) -> float:
    if clip is None:
        return math.inf
    if type(clip) is float and 0.0 < clip < math.inf:
        return clip
    return check_positive_float("clip", clip)


def _decay(name, value) -> float:
    value = _nonnegative(name, value)
    if value >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value
