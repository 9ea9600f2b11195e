"""Fused in-place parameter updates: one pass over memory per step.

The kernels take flat (1-D, C-contiguous) arrays of one float dtype; the
public :func:`fastbin.sgd_update` / :func:`fastbin.adam_update` validate any
shape and pass ``reshape(-1)`` views. Scalars are rounded to the arrays' dtype
first, so float32 parameters are updated in float32 arithmetic, as NumPy does
for ``param -= lr * grad`` with a Python float ``lr``.

``clip = inf`` means no clipping; otherwise each updated value is clipped to
``[-clip, clip]`` (NaN stays NaN, as with ``np.clip``).
"""
from __future__ import annotations

import numpy as np

from .._config import jit

__all__ = ["sgd_update_flat", "adam_update_flat", "adam_overlap", "partial_overlap"]


@jit
def _scalar_like(arr, value):
    """``value`` rounded to ``arr``'s dtype (a typed scalar in Numba too)."""
    tmp = np.empty(1, dtype=arr.dtype)
    tmp[0] = value
    return tmp[0]


@jit
def sgd_update_flat(param, grad, lr, clip):
    """In place: ``param = clip(param - lr * grad, -clip, clip)``.

    param : float32/float64 (n,), written; grad : (n,) of param's dtype (may be
    ``param`` itself); lr : float >= 0; clip : float > 0 or ``inf`` (none)."""
    lr_ = _scalar_like(param, lr)
    hi = _scalar_like(param, clip)
    lo = -hi
    for i in range(param.shape[0]):
        p = param[i] - lr_ * grad[i]
        # selects, not min/max: NaN passes through as in np.clip
        p = hi if p > hi else p
        p = lo if p < lo else p
        param[i] = p


@jit
def adam_update_flat(param, grad, m, v, step, lr, b1, b2, eps, clip):
    """In place, one step of autograd's Adam (``step`` counts from 0)::

        m = (1 - b1) * g + b1 * m;  v = (1 - b2) * g**2 + b2 * v
        param -= lr * (m / (1 - b1**(step+1))) / (sqrt(v / (1 - b2**(step+1))) + eps)

    then ``param`` is clipped to ``[-clip, clip]`` (``clip = inf``: none).

    param, m, v : float32/float64 (n,), written, distinct arrays; grad : (n,)
    of the same dtype, read (may be ``param``). Scalars: step int >= 0,
    lr >= 0, 0 <= b1, b2 < 1, eps >= 0."""
    t = step + 1
    b1_ = _scalar_like(param, b1)
    b2_ = _scalar_like(param, b2)
    one_minus_b1 = _scalar_like(param, 1.0 - b1)
    one_minus_b2 = _scalar_like(param, 1.0 - b2)
    # reciprocals of the bias corrections: two multiplies instead of two
    # divides per element (division throughput bounds this loop)
    inv_bias1 = _scalar_like(param, 1.0 / (1.0 - b1**t))
    inv_bias2 = _scalar_like(param, 1.0 / (1.0 - b2**t))
    lr_ = _scalar_like(param, lr)
    eps_ = _scalar_like(param, eps)
    hi = _scalar_like(param, clip)
    lo = -hi
    for i in range(param.shape[0]):
        g = grad[i]
        mi = m[i] * b1_ + one_minus_b1 * g
        vi = v[i] * b2_ + one_minus_b2 * (g * g)
        m[i] = mi
        v[i] = vi
        p = param[i] - lr_ * (mi * inv_bias1) / (np.sqrt(vi * inv_bias2) + eps_)
        p = hi if p > hi else p
        p = lo if p < lo else p
        param[i] = p


@jit
def _overlaps(a, b):
    a0 = a.ctypes.data
    b0 = b.ctypes.data
    return a.size > 0 and b.size > 0 and a0 < b0 + b.nbytes and b0 < a0 + a.nbytes


@jit
def partial_overlap(a, b):
    """True when ``a`` and ``b`` share memory without being the same elements
    (same start, same size): then an elementwise in-place loop would read
    values it already wrote, so the public layer copies ``b`` first."""
    same = a.ctypes.data == b.ctypes.data and a.nbytes == b.nbytes
    return _overlaps(a, b) and not same


@jit
def adam_overlap(param, grad, m, v):
    """Which forbidden pair of Adam's arrays shares memory (byte ranges
    intersect): 0 none, 1 param/m, 2 param/v, 3 m/v, 4 grad/m, 5 grad/v;
    6 when only ``grad`` partially overlaps ``param`` (the caller copies
    ``grad``). One jitted call instead of six ``np.may_share_memory``."""
    if _overlaps(param, m):
        return 1
    if _overlaps(param, v):
        return 2
    if _overlaps(m, v):
        return 3
    if _overlaps(grad, m):
        return 4
    if _overlaps(grad, v):
        return 5
    if partial_overlap(param, grad):
        return 6
    return 0
