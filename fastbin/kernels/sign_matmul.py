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
blocks over contiguous rows (vectorised, reassociated sums).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .._options import jit, jit_disabled, jit_parallel
from ..bitops import popcount
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
def sign_matmul_float(x, w_bits, out):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    signs = _signs_of(w_bits, x.shape[1], x)
    _dot_rows(x, signs, 0, x.shape[0], out)
    return True


@jit_parallel
def sign_matmul_float_parallel(x, w_bits, out):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    signs = _signs_of(w_bits, x.shape[1], x)
    m = x.shape[0]
    n_blocks = (m + ROW_BLOCK - 1) // ROW_BLOCK
    for blk in prange(n_blocks):
        i0 = blk * ROW_BLOCK
        _dot_rows(x, signs, i0, min(m, i0 + ROW_BLOCK), out)
    return True


def _plane_word_python(buf, start, plane):
    """Plain-Python ``_plane_word`` for ``NUMBA_DISABLE_JIT=1``."""
    word = 0
    for b in range(64):
        word |= ((int(buf[start + b]) >> plane) & 1) << b
    return np.uint64(word)


@intrinsic
def _plane_word_llvm(typingctx, buf, start, plane):
    """Bit ``b`` of the uint64 result is bit ``plane`` of ``buf[start + b]``
    for ``b < 64`` (``buf``: 1-D C-contiguous uint8, 64 bytes readable).

    Emitted as one 64-byte vector: shift the plane's bit into each byte's sign
    bit, compare with 0, bitcast the 64 x i1 mask to i64. On AVX-512BW that is
    a ``vpsllw``/``vpmovb2m`` pair; other targets get LLVM's generic lowering
    (``pmovmskb`` on SSE2/AVX2, a sequence of ``umaxv`` on ARM64)."""
    if not (isinstance(buf, types.Array) and buf.dtype == types.uint8 and buf.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        buf_value, start_value, plane_value = args
        array = context.make_array(signature.args[0])(context, builder, buf_value)
        vec_type = ir.VectorType(ir.IntType(8), 64)
        ptr = builder.bitcast(builder.gep(array.data, [start_value]), vec_type.as_pointer())
        vec = builder.load(ptr, align=1)
        shift = builder.trunc(builder.sub(ir.Constant(plane_value.type, 7), plane_value), ir.IntType(8))
        lanes = builder.insert_element(ir.Constant(vec_type, ir.Undefined), shift, ir.Constant(ir.IntType(32), 0))
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), 64), [0] * 64)
        lanes = builder.shuffle_vector(lanes, ir.Constant(vec_type, ir.Undefined), zeros)
        negative = builder.icmp_signed("<", builder.shl(vec, lanes), ir.Constant(vec_type, None))
        return builder.bitcast(negative, ir.IntType(64))

    return types.uint64(buf, types.intp, types.intp), codegen


_plane_word = _plane_word_python if jit_disabled() else _plane_word_llvm


@jit
def sign_matmul_uint8(x, w_bits, out):
    m, k = x.shape
    n, n_words = w_bits.shape
    if not padding_is_zero(w_bits, k):
        return False
    # The row, zero-padded to whole 64-byte chunks (padding adds 0 to a dot).
    buf = np.zeros(n_words * 64, dtype=np.uint8)
    # planes[p, t]: word t of bit-plane p, so the popcount loop below runs
    # over contiguous words of each plane and of a row of w (vectorised); a
    # word-major layout made LLVM gather and measured 2x slower.
    planes = np.empty((8, n_words), dtype=np.uint64)
    for i in range(m):
        total = 0  # sum_p 2**p * popcount(b_p) = the row sum
        for t in range(k):
            buf[t] = x[i, t]
            total += np.int64(x[i, t])  # (as plain Python, uint8 + int stays uint8)
        for p in range(8):
            for t in range(n_words):
                planes[p, t] = _plane_word(buf, t * 64, p)
        for j in range(n):
            # sum of x over the positions where w is -1: all eight planes in
            # one pass over the words (one reduction per output, not eight).
            negative = 0
            for t in range(n_words):
                y = w_bits[j, t]
                negative += (
                    popcount(planes[0, t] & y)
                    + 2 * popcount(planes[1, t] & y)
                    + 4 * popcount(planes[2, t] & y)
                    + 8 * popcount(planes[3, t] & y)
                    + 16 * popcount(planes[4, t] & y)
                    + 32 * popcount(planes[5, t] & y)
                    + 64 * popcount(planes[6, t] & y)
                    + 128 * popcount(planes[7, t] & y)
                )
            out[i, j] = total - 2 * negative
    return True
