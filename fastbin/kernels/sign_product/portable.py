"""``x @ sign(W)``: the portable kernels (loops LLVM vectorises on any CPU).

Kernels trust their inputs' shapes and dtypes and write into preallocated
outputs. Those on packed bits first check that ``w_bits``' padding bits are zero
and return False, writing nothing, if not (True on success), which saves the
public API a separate check dispatch (a third of a 1 x 784 call). Which one runs
is the planner's choice (``fastbin.kernels.sign_product.plan``); none reads a
threshold.

* ``sign_matmul_bits(x, w_bits, out) -> bool`` / ``_parallel``: ``x``
  float32/float64 (m, k) C-contiguous; ``w_bits`` uint64 (n, ceil(k/64));
  ``out`` (m, n) of ``x``'s dtype receives ``x @ sign(W)``, each output a
  signed sum straight from the bits (per 64-bit word, the word as a 64-lane
  mask selects ``-x`` or ``x``: ``_signed_dot``); for few rows, where
  unpacking ``W`` would dominate (1 x 784 -> 10). The parallel one spreads
  outputs over threads (the same sums).
* ``sign_matmul_float(x, w_bits, out) -> bool`` / ``_parallel``: the same
  product on ``W`` unpacked once to ±1 (``n * k`` stores the ``m`` rows
  reuse), register blocks over contiguous rows (vectorised, reassociated
  sums; 4 x 5 or 4 x 3 by the CPU, ``_dot_blocks``); row blocks over threads.
* ``sign_matmul_uint8(x, w_bits, out) -> bool``: ``x`` uint8 (m, k), any
  strides; ``out`` int32 (m, n) receives the exact ``x @ sign(W)`` via
  bit-planes (``fastbin.bits``):
  ``dot(x, w) = sum_p 2**p * (popcount(b_p) - 2 * popcount(b_p & w_bits))``.
  Each 64-byte chunk of a row is loaded once (masked at the row's end) and
  split into its 8 bit-plane words; the 8 planes of a word form one vector,
  ANDed with the broadcast word of ``w`` and popcounted (a strided ``x`` is
  copied once to C order first).
* ``sign_matmul_uint8_float(x, w_bits, out) -> bool``: the same exact int32
  product through float32 register blocks (rows converted a block at a time,
  read in place, any strides), exact for ``k <= UINT8_F32_EXACT_MAX_K``
  (``fastbin._limits``); faster than the bit planes without a native vector
  popcount once enough rows share ``W``'s unpacking.
* ``sign_dot_rows(x, signs, out)``: ``x @ signs.T`` for float ``x`` (m, k) and
  ``signs`` (n, k) ±1 (int8, or any dtype); one row or tiny products, where a
  BLAS call costs more than the product.
"""
from __future__ import annotations

import numpy as np
from numba import prange, types
from numba.extending import overload

from ..._config import jit, jit_parallel
from ..pack import padding_is_zero, unpack_rows
from ._dot_blocks import ROW_BLOCK
from ._dot_blocks import dot_rows as _dot_rows
from ._lanes import plane_dot as _plane_dot
from ._lanes import plane_words as _plane_words
from ._lanes import signed_dot as _signed_dot

__all__ = [
    "sign_matmul_bits",
    "sign_matmul_bits_parallel",
    "sign_matmul_float",
    "sign_matmul_float_parallel",
    "sign_matmul_uint8",
    "sign_matmul_uint8_float",
    "sign_dot_rows",
]


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
def sign_matmul_bits(x, w_bits, out):
    """``out = x @ sign(W)``: ``x`` (m, k) float32/float64, ``w_bits`` (n, ceil(k/64)) uint64
    (zero padding), ``out`` (m, n) of x's dtype; each output summed straight from the bits
    (``x`` added or subtracted), for few rows. False (nothing written) on non-zero padding."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    _dot_bits(x, w_bits, out)
    return True


@jit_parallel
def sign_matmul_bits_parallel(x, w_bits, out):
    """:func:`sign_matmul_bits` with the outputs over threads (the same sums)."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    for j in prange(w_bits.shape[0]):  # columns over threads (the same sums as serial)
        for i in range(x.shape[0]):
            out[i, j] = _signed_dot(x, i, w_bits, j)
    return True


@jit
def sign_matmul_float(x, w_bits, out):
    """``out = x @ sign(W)``: ``x`` (m, k) float32/float64, ``w_bits`` (n, ceil(k/64)) uint64
    (zero padding), ``out`` (m, n) of x's dtype; ``W`` unpacked once to ±1 of x's dtype, then
    register-blocked dot products (``DOT_BLOCK``). False (nothing written) on non-zero padding."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    signs = _signs_of(w_bits, x.shape[1], x)
    _dot_rows(x, signs, 0, x.shape[0], out)
    return True


@jit_parallel
def sign_matmul_float_parallel(x, w_bits, out):
    """:func:`sign_matmul_float` with blocks of rows over threads (the same sums)."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
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


@jit
def _uint8_float_rows(x, w_bits, out):
    """``sign_matmul_uint8`` (``x`` of any strides) through float32, exact
    for ``k <= fastbin._limits.UINT8_F32_EXACT_MAX_K``: ``ROW_BLOCK`` rows at a time are
    converted into a scratch block (in L1) and multiplied by the ±1 rows of
    ``W`` (unpacked once) with ``_dot_rows`` into a float32 block, which is
    stored to ``out`` as the integers it holds."""
    m, k = x.shape
    n = w_bits.shape[0]
    block = np.empty((ROW_BLOCK, k), dtype=np.float32)
    sums = np.empty((ROW_BLOCK, n), dtype=np.float32)
    signs = _signs_of(w_bits, k, block)
    for i0 in range(0, m, ROW_BLOCK):
        rows = min(ROW_BLOCK, m - i0)
        for r in range(rows):
            for t in range(k):
                block[r, t] = x[i0 + r, t]
        _dot_rows(block, signs, 0, rows, sums)
        for r in range(rows):
            for j in range(n):
                out[i0 + r, j] = np.int32(sums[r, j])


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
    """``out = x @ sign(W)`` exactly: ``x`` (m, k) uint8, ``w_bits`` (n, ceil(k/64)) uint64
    (zero padding), ``out`` (m, n) int32, ``k <= 8,421,504``; by bit planes of ``x``
    (``sum(x) - 2 * sum_b 2**b * popcount(plane_b & w)``). False on non-zero padding."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    _uint8_rows(_c_order(x), w_bits, out)
    return True


@jit
def sign_matmul_uint8_float(x, w_bits, out):
    """:func:`sign_matmul_uint8` through float32 sums (``x`` converted, ``W`` unpacked to ±1):
    exact while ``255 * k < 2**24`` (every partial sum an integer below ``2**24``);
    ``out`` (m, n) int32. False on non-zero padding."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    _uint8_float_rows(x, w_bits, out)  # reads x element-wise: any strides
    return True


@jit
def sign_dot_rows(x, signs, out):
    """``out[i, j] = dot(x[i], signs[j])``: ``x`` (m, k) float, ``signs`` (n, k)
    the ±1 rows of ``W.T`` (int8), ``out`` (m, n) of ``x``'s dtype. One
    vectorised reduction per entry, summed in ``out``'s dtype."""
    m, k = x.shape
    n = signs.shape[0]
    zero = np.zeros(1, out.dtype)[0]
    for i in range(m):
        for j in range(n):
            acc = zero
            for t in range(k):
                acc += x[i, t] * _zero_plus(zero, signs[j, t])
            out[i, j] = acc


@jit(inline="always")
def _zero_plus(zero, v):
    """``v`` converted to ``zero``'s float type (exact for ±1)."""
    return zero + v
