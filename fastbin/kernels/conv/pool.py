"""Max pooling over NHWC images, no padding (the formulas: ``fastbin.reference.max_pool2d``
and ``max_pool2d_backward``).

* ``max_pool_into(x, ph, pw, sh, sw, out)``: ``x`` (m, h, w, c) any real dtype, ``out``
  (m, out_h, out_w, c) of its dtype: the max of each ``ph`` x ``pw`` window moved by
  ``sh, sw``, NaN propagating as ``numpy.maximum`` does (the reference's reduction,
  taken in the same order: the same values; which zero a window of -0.0 and 0.0 gives
  follows NumPy's SIMD loop on x86, the later of two equal values, and may differ from
  NumPy where its loop differs).
* ``max_pool_backward_into(dy, x, ph, pw, sh, sw, dx)``: ``dy`` (m, out_h, out_w, c)
  float, ``dx`` (m, h, w, c) of its dtype *zeroed* by the caller: each window's
  gradient added to its first maximum in row-major window order (none when the max
  is NaN), the windows' terms added to a pixel in the order of the taps, as the
  reference does (the same bits).

``*_parallel``: the same with the images split over threads.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..._config import jit, jit_parallel

__all__ = ["max_pool_into", "max_pool_parallel", "max_pool_backward_into", "max_pool_backward_parallel"]


@jit
def _larger(v, best):
    """``numpy.maximum(best, v)``: ``best`` where it is larger or NaN, else ``v`` (NaN
    propagates; of two equal values the later, as x86's ``maxps`` and NumPy's SIMD loop)."""
    return best if (best > v or best != best) else v


@jit
def _pool_image(x, n, ph, pw, sh, sw, out):
    out_h, out_w, c = out.shape[1], out.shape[2], out.shape[3]
    for p in range(out_h):
        for q in range(out_w):
            dst = out[n, p, q]
            src = x[n, p * sh, q * sw]
            for ch in range(c):
                dst[ch] = src[ch]
            for i in range(ph):
                for j in range(pw):
                    if i == 0 and j == 0:
                        continue
                    src = x[n, p * sh + i, q * sw + j]
                    for ch in range(c):
                        dst[ch] = _larger(src[ch], dst[ch])


@jit
def max_pool_into(x, ph, pw, sh, sw, out):
    """Max pooling of ``x`` into ``out`` (module doc)."""
    for n in range(x.shape[0]):
        _pool_image(x, n, ph, pw, sh, sw, out)


@jit_parallel
def max_pool_parallel(x, ph, pw, sh, sw, out):
    """:func:`max_pool_into` with the images split over threads."""
    for n in prange(x.shape[0]):
        _pool_image(x, n, ph, pw, sh, sw, out)


@jit
def _pool_backward_image(dy, x, n, ph, pw, sh, sw, dx):
    out_h, out_w, c = dy.shape[1], dy.shape[2], dy.shape[3]
    # the window index (i * pw + j) of each output's first maximum, -1 for none (a NaN max)
    first = np.empty((out_h, out_w, c), np.intp)
    best = np.empty(c, x.dtype)
    for p in range(out_h):
        for q in range(out_w):
            src = x[n, p * sh, q * sw]
            for ch in range(c):
                best[ch] = src[ch]
            for i in range(ph):
                for j in range(pw):
                    src = x[n, p * sh + i, q * sw + j]
                    for ch in range(c):
                        best[ch] = _larger(src[ch], best[ch])
            at = first[p, q]
            for ch in range(c):
                at[ch] = -1
            for i in range(ph - 1, -1, -1):  # backwards: the last hit written is the first maximum
                for j in range(pw - 1, -1, -1):
                    src = x[n, p * sh + i, q * sw + j]
                    t = i * pw + j
                    for ch in range(c):
                        if src[ch] == best[ch]:
                            at[ch] = t
    for i in range(ph):  # taps outermost: a pixel's terms in the reference's order
        for j in range(pw):
            t = i * pw + j
            for p in range(out_h):
                for q in range(out_w):
                    g = dy[n, p, q]
                    at = first[p, q]
                    dst = dx[n, p * sh + i, q * sw + j]
                    for ch in range(c):
                        if at[ch] == t:
                            dst[ch] += g[ch]


@jit
def max_pool_backward_into(dy, x, ph, pw, sh, sw, dx):
    """Gradient of max pooling into the zeroed ``dx`` (module doc)."""
    for n in range(x.shape[0]):
        _pool_backward_image(dy, x, n, ph, pw, sh, sw, dx)


@jit_parallel
def max_pool_backward_parallel(dy, x, ph, pw, sh, sw, dx):
    """:func:`max_pool_backward_into` with the images split over threads."""
    for n in prange(x.shape[0]):
        _pool_backward_image(dy, x, n, ph, pw, sh, sw, dx)
