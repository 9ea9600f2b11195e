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
  strides; ``out`` int32 (m, n) receives the exact ``x @ sign(W)``, for few
  rows via bit-planes (``fastbin.bits``):
  ``dot(x, w) = sum_p 2**p * (popcount(b_p) - 2 * popcount(b_p & w_bits))``,
  for many rows through exact float32 sums.

Float path: unpacking ``W``'s signs once per call costs ``n * k`` stores,
which the ``m`` rows then reuse; the dot products run as register blocks
over contiguous rows (vectorised, reassociated sums; 4 x 5 or 4 x 3 by the
CPU's vector register count, ``_dot_blocks``). For fewer rows
than ``SIGN_MATMUL_UNPACK_MIN_ROWS_F32``/``_F64`` (``fastbin._config``)
the unpacking would dominate (1 x 784 -> 10), so each output is instead a
signed sum straight from the bits: per 64-bit word, the word as a 64-lane
mask selects ``-x`` or ``x`` (``_signed_dot``).

uint8 path: each 64-byte chunk of a row is loaded once (masked at the row's
end, so rows are read in place) and split into its 8 bit-plane words; the 8
planes of a word then form one vector, ANDed with the broadcast word of
``w`` and popcounted, so each output is one short vector loop (a strided
``x`` is copied once to C order first). Without a native vector popcount
(``SIGN_MATMUL_UINT8_FLOAT_PATH``: measured on AVX2, assumed alike on
AArch64) that loses to a float product once ``W``'s unpacking is shared by
enough rows (``SIGN_MATMUL_UINT8_FLOAT_*`` in ``fastbin._config``): blocks
of rows are converted to float32 (read in place, any strides) and go through
``_dot_rows``, exact while ``255 * k < 2**24`` (``UINT8_F32_EXACT_MAX_K``;
the bit-planes above).
"""
from __future__ import annotations

import numpy as np
from numba import prange, types
from numba.extending import overload

from .._config import (
    SIGN_MATMUL_UINT8_FLOAT_HALF_COLS,
    SIGN_MATMUL_UINT8_FLOAT_MIN_ROWS,
    SIGN_MATMUL_UINT8_FLOAT_PATH,
    SIGN_MATMUL_UNPACK_MIN_ROWS_F32,
    SIGN_MATMUL_UNPACK_MIN_ROWS_F64,
    jit,
    jit_parallel,
)
from ._dot_blocks import ROW_BLOCK
from ._dot_blocks import dot_rows as _dot_rows
from ._sign_lanes import plane_dot as _plane_dot
from ._sign_lanes import plane_words as _plane_words
from ._sign_lanes import signed_dot as _signed_dot
from .pack import padding_is_zero, unpack_rows

__all__ = [
    "sign_matmul_float",
    "sign_matmul_float_parallel",
    "sign_matmul_uint8",
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
def _few_rows(x):
    """Whether ``x`` has too few rows to repay unpacking ``W`` (thresholds
    in ``fastbin._config``, per dtype)."""
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


#: The largest ``k`` for which ``_uint8_float_rows`` is exact. Every partial
#: sum of ``x[i, t] * (±1)``, in whatever order the reassociated vector sums
#: of ``_dot_rows`` take them, is an integer of magnitude <= 255 * k, and the
#: products are exact (±x); float32 holds every integer of magnitude <= 2**24
#: exactly, so no product or sum is ever rounded while 255 * k < 2**24, i.e.
#: k <= 65793 (255 * 65793 = 2**24 - 1). Above it the bit-planes are used.
UINT8_F32_EXACT_MAX_K = 65793


@jit
def _uint8_float_pays(m, n, k):
    """Whether ``_uint8_float_rows`` is exact (``k``) and faster than the
    bit-planes (``m``, ``n``: cost model in ``fastbin._config``)."""
    return k <= UINT8_F32_EXACT_MAX_K and m * (n + SIGN_MATMUL_UINT8_FLOAT_HALF_COLS) >= (
        SIGN_MATMUL_UINT8_FLOAT_MIN_ROWS * n
    )


@jit
def _uint8_float_rows(x, w_bits, out):
    """``sign_matmul_uint8`` (``x`` of any strides) through float32, exact
    for ``k <= UINT8_F32_EXACT_MAX_K``: ``ROW_BLOCK`` rows at a time are
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
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    m, k = x.shape
    if SIGN_MATMUL_UINT8_FLOAT_PATH and _uint8_float_pays(m, w_bits.shape[0], k):
        _uint8_float_rows(x, w_bits, out)  # reads x element-wise: any strides
    else:
        _uint8_rows(_c_order(x), w_bits, out)
    return True
