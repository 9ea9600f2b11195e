"""Products of a real matrix with packed signs: ``x @ sign(W)``.

Kernels trust their inputs' shapes and dtypes and write into preallocated
outputs. Each first checks that ``w_bits``' padding bits are zero and returns
False, writing nothing, if not (True on success), which saves the public API a
separate check dispatch (a third of a 1 x 784 call).

* ``sign_matmul_float(x, w_bits, out) -> bool``: ``x`` float32/float64
  (m, k) C-contiguous; ``w_bits`` uint64 (n, ceil(k/64)); ``out`` (m, n) of
  ``x``'s dtype receives ``x @ sign(W)``.
* ``sign_matmul_float_parallel(...)``: the same, rows of ``x`` over threads.
* ``sign_matmul_uint8(x, w_bits, out) -> bool``: ``x`` uint8 (m, k), any
  strides; ``out`` int32 (m, n) receives the exact ``x @ sign(W)`` via
  bit-planes (``fastbin.bitops``):
  ``dot(x, w) = sum_p 2**p * (popcount(b_p) - 2 * popcount(b_p & w_bits))``.

Float path: unpacking ``W``'s signs once per call costs ``n * k`` stores,
which the ``m`` rows then reuse; the dot products run as 4 x 5 register
blocks over contiguous rows (vectorised, reassociated sums). For fewer rows
than ``SIGN_MATMUL_UNPACK_MIN_ROWS_F32``/``_F64`` (``fastbin._options``)
the unpacking would dominate (1 x 784 -> 10), so each output is instead a
signed sum straight from the bits: per 64-bit word, the word as a 64-lane
mask selects ``-x`` or ``x`` (``_signed_dot``).

uint8 path: each 64-byte chunk of a row is loaded once (masked at the row's
end, so rows are read in place) and split into its 8 bit-plane words; the 8
planes of a word then form one vector, ANDed with the broadcast word of
``w`` and popcounted, so each output is one short vector loop (a strided
``x`` is copied once to C order first).
"""
from __future__ import annotations

import numpy as np
from numba import prange, types
from numba.extending import overload

from .._options import SIGN_MATMUL_UNPACK_MIN_ROWS_F32, SIGN_MATMUL_UNPACK_MIN_ROWS_F64, jit, jit_parallel
from ._sign_lanes import plane_dot as _plane_dot
from ._sign_lanes import plane_words as _plane_words
from ._sign_lanes import signed_dot as _signed_dot
from .pack import padding_is_zero, unpack_rows

__all__ = [
    "sign_matmul_float",
    "sign_matmul_float_parallel",
    "sign_matmul_uint8",
]

ROW_BLOCK = 4
COL_BLOCK = 5


@jit
def _dot_rows(x, s, i0, i1, out):
    """``out[i, j] = dot(x_i, s_j)`` for rows ``i0:i1`` and every ``j``.

    4 x 5 register blocks (20 vector accumulators, 9 loads per 20 FMAs; a
    4 x 2 block measured 1.2x (float32) to 1.5x (float64) slower at
    128 x 784 -> 10), then 4 x 1 for leftover columns and 1 x 5 / 1 x 1 for
    leftover rows."""
    k = x.shape[1]
    n = s.shape[0]
    # A zero of x's dtype (s holds finite ±1): sums start at 0 and keep the
    # dtype; starting from the t = 0 products instead left an odd trip count
    # and measured 1.5x slower.
    zero = s[0, 0] - s[0, 0]
    n5 = n // COL_BLOCK * COL_BLOCK
    i4 = i0 + (i1 - i0) // ROW_BLOCK * ROW_BLOCK
    for i in range(i0, i4, ROW_BLOCK):
        for j in range(0, n5, COL_BLOCK):
            a0 = a1 = a2 = a3 = a4 = zero
            b0 = b1 = b2 = b3 = b4 = zero
            c0 = c1 = c2 = c3 = c4 = zero
            d0 = d1 = d2 = d3 = d4 = zero
            for t in range(k):
                y0 = s[j, t]
                y1 = s[j + 1, t]
                y2 = s[j + 2, t]
                y3 = s[j + 3, t]
                y4 = s[j + 4, t]
                x0 = x[i, t]
                x1 = x[i + 1, t]
                x2 = x[i + 2, t]
                x3 = x[i + 3, t]
                a0 += x0 * y0
                a1 += x0 * y1
                a2 += x0 * y2
                a3 += x0 * y3
                a4 += x0 * y4
                b0 += x1 * y0
                b1 += x1 * y1
                b2 += x1 * y2
                b3 += x1 * y3
                b4 += x1 * y4
                c0 += x2 * y0
                c1 += x2 * y1
                c2 += x2 * y2
                c3 += x2 * y3
                c4 += x2 * y4
                d0 += x3 * y0
                d1 += x3 * y1
                d2 += x3 * y2
                d3 += x3 * y3
                d4 += x3 * y4
            out[i, j] = a0
            out[i, j + 1] = a1
            out[i, j + 2] = a2
            out[i, j + 3] = a3
            out[i, j + 4] = a4
            out[i + 1, j] = b0
            out[i + 1, j + 1] = b1
            out[i + 1, j + 2] = b2
            out[i + 1, j + 3] = b3
            out[i + 1, j + 4] = b4
            out[i + 2, j] = c0
            out[i + 2, j + 1] = c1
            out[i + 2, j + 2] = c2
            out[i + 2, j + 3] = c3
            out[i + 2, j + 4] = c4
            out[i + 3, j] = d0
            out[i + 3, j + 1] = d1
            out[i + 3, j + 2] = d2
            out[i + 3, j + 3] = d3
            out[i + 3, j + 4] = d4
        for j in range(n5, n):
            a0 = b0 = c0 = d0 = zero
            for t in range(k):
                y = s[j, t]
                a0 += x[i, t] * y
                b0 += x[i + 1, t] * y
                c0 += x[i + 2, t] * y
                d0 += x[i + 3, t] * y
            out[i, j] = a0
            out[i + 1, j] = b0
            out[i + 2, j] = c0
            out[i + 3, j] = d0
    for i in range(i4, i1):
        for j in range(0, n5, COL_BLOCK):
            a0 = a1 = a2 = a3 = a4 = zero
            for t in range(k):
                v = x[i, t]
                a0 += v * s[j, t]
                a1 += v * s[j + 1, t]
                a2 += v * s[j + 2, t]
                a3 += v * s[j + 3, t]
                a4 += v * s[j + 4, t]
            out[i, j] = a0
            out[i, j + 1] = a1
            out[i, j + 2] = a2
            out[i, j + 3] = a3
            out[i, j + 4] = a4
        for j in range(n5, n):
            a0 = zero
            for t in range(k):
                a0 += x[i, t] * s[j, t]
            out[i, j] = a0


@jit
def _signs_of(w_bits, k, dtype_of):
    """The ±1 rows (n, k) of ``w_bits`` as ``dtype_of``'s dtype."""
    signs = np.empty((w_bits.shape[0], k), dtype=dtype_of.dtype)
    unpack_rows(w_bits, k, signs)
    return signs


@jit
def _dot_bits(x, w_bits, out):
    """``out = x @ sign(W)`` straight from the bits (``_signed_dot`` per
    output), for few rows of ``x``: ``W`` is never unpacked, which at
    1 x 784 -> 10 cost more than the product itself."""
    for i in range(x.shape[0]):
        for j in range(w_bits.shape[0]):
            out[i, j] = _signed_dot(x, i, w_bits, j)


@jit
def _few_rows(x):
    """Whether ``x`` has too few rows to repay unpacking ``W`` (thresholds
    in ``fastbin._options``, per dtype)."""
    if x.itemsize == 4:
        return x.shape[0] < SIGN_MATMUL_UNPACK_MIN_ROWS_F32
    return x.shape[0] < SIGN_MATMUL_UNPACK_MIN_ROWS_F64


@jit
def sign_matmul_float(x, w_bits, out):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    if _few_rows(x):
        _dot_bits(x, w_bits, out)
        return True
    signs = _signs_of(w_bits, x.shape[1], x)
    _dot_rows(x, signs, 0, x.shape[0], out)
    return True


@jit_parallel
def sign_matmul_float_parallel(x, w_bits, out):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    if _few_rows(x):  # columns over threads (the same sums as serial)
        for j in prange(w_bits.shape[0]):
            for i in range(x.shape[0]):
                out[i, j] = _signed_dot(x, i, w_bits, j)
        return True
    signs = _signs_of(w_bits, x.shape[1], x)
    m = x.shape[0]
    n_blocks = (m + ROW_BLOCK - 1) // ROW_BLOCK
    for blk in prange(n_blocks):
        i0 = blk * ROW_BLOCK
        _dot_rows(x, signs, i0, min(m, i0 + ROW_BLOCK), out)
    return True


@jit
def _uint8_rows(x, w_bits, out):
    """``sign_matmul_uint8`` for a C-contiguous ``x``."""
    m, k = x.shape
    n, n_words = w_bits.shape
    # planes[t, p]: word t of bit-plane p (the 8 planes of a word adjacent:
    # the lanes of ``_plane_dot``'s vector).
    planes = np.empty((n_words, 8), dtype=np.uint64)
    for i in range(m):
        row = x[i]
        total = 0  # the row sum
        for t in range(n_words):
            total += _plane_words(row, t * 64, min(64, k - t * 64), planes, t)
        for j in range(n):
            out[i, j] = total - 2 * _plane_dot(planes, w_bits, j)


def _c_order(x):
    """``x`` as a C-contiguous array (a copy only when it is not)."""
    return np.ascontiguousarray(x)


@overload(_c_order)
def _c_order_typed(x):
    # Decided from the type: a C-layout x is passed on as is, no copy; the
    # others (F, A) are copied (the plane loads need unit-stride rows).
    if isinstance(x, types.Array) and x.layout == "C":
        return lambda x: x
    return lambda x: np.ascontiguousarray(x)


@jit
def sign_matmul_uint8(x, w_bits, out):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    _uint8_rows(_c_order(x), w_bits, out)
    return True
