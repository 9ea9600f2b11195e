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

uint8 path: each 64-byte chunk of a row is loaded once (masked at the row's
end, so rows are read in place) and split into its 8 bit-plane words; the 8
planes of a word then form one vector, ANDed with the broadcast word of
``w`` and popcounted, so each output is one short vector loop (a strided
``x`` is copied once to C order first).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._options import jit, jit_disabled, jit_parallel
from ..bitops import popcount
from ._llvm import intp_args as _intp_args
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


def _plane_words_python(row, start, count, planes, t):
    """Plain-Python ``_plane_words`` for ``NUMBA_DISABLE_JIT=1``."""
    for p in range(8):
        word = 0
        for b in range(count):
            word |= ((int(row[start + b]) >> p) & 1) << b
        planes[t, p] = np.uint64(word)
    return sum(int(v) for v in row[start : start + count])


@intrinsic
def _plane_words_llvm(typingctx, row, start, count, planes, t):
    """``planes[t, p]`` for ``p < 8``: bit ``b`` is bit ``p`` of
    ``row[start + b]`` for ``b < count`` (<= 64), 0 above. Returns the sum
    of those ``count`` bytes (int64: ``sum_p 2**p * popcount(plane p)``).

    ``row``: 1-D C-contiguous uint8; ``planes``: 2-D C-contiguous uint64
    (n_words, 8). One 64-byte load, masked when ``count < 64`` (nothing past
    the row is read), then per plane: shift the plane's bit into each byte's
    sign bit, compare with 0, bitcast the 64 x i1 mask to i64
    (``vpsllw``/``vpmovb2m`` on AVX-512BW; LLVM's generic lowering on other
    targets)."""
    row_ok = isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C" and row.dtype == types.uint8
    planes_ok = (
        isinstance(planes, types.Array) and planes.ndim == 2 and planes.layout == "C" and planes.dtype == types.uint64
    )
    if not (row_ok and planes_ok):
        return None

    def codegen(context, builder, signature, args):
        row_value, start_value, count_value, planes_value, t_value = _intp_args(context, builder, signature, args)
        row_type, _, _, planes_type, _ = signature.args
        row_array = context.make_array(row_type)(context, builder, row_value)
        planes_array = context.make_array(planes_type)(context, builder, planes_value)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        intp = context.get_value_type(types.intp)
        vec_type = ir.VectorType(ir.IntType(8), 64)
        mask_type = ir.VectorType(ir.IntType(1), 64)
        masked_load = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(vec_type, [vec_type.as_pointer(), i32, mask_type, vec_type]),
            "llvm.masked.load.v64i8.p0",
        )
        ptr = builder.bitcast(builder.gep(row_array.data, [start_value]), vec_type.as_pointer())
        index_type = ir.VectorType(intp, 64)
        counts = builder.insert_element(ir.Constant(index_type, ir.Undefined), count_value, ir.Constant(i32, 0))
        counts = builder.shuffle_vector(
            counts, ir.Constant(index_type, ir.Undefined), ir.Constant(ir.VectorType(i32, 64), [0] * 64)
        )
        in_row = builder.icmp_signed("<", ir.Constant(index_type, list(range(64))), counts)
        data = builder.call(masked_load, [ptr, ir.Constant(i32, 1), in_row, ir.Constant(vec_type, None)])
        total = ir.Constant(i64, 0)
        for p in range(8):
            negative = builder.icmp_signed(
                "<", builder.shl(data, ir.Constant(vec_type, [7 - p] * 64)), ir.Constant(vec_type, None)
            )
            word = builder.bitcast(negative, i64)
            out_ptr = cgutils.get_item_pointer(context, builder, planes_type, planes_array, [t_value, ir.Constant(intp, p)])
            builder.store(word, out_ptr)
            total = builder.add(total, builder.shl(builder.ctpop(word), ir.Constant(i64, p)))
        return total

    return types.int64(row, start, count, planes, t), codegen


def _plane_dot_python(planes, w, j):
    """Plain-Python ``_plane_dot`` for ``NUMBA_DISABLE_JIT=1``."""
    return sum(
        popcount(planes[t, p] & w[j, t]) << p for t in range(w.shape[1]) for p in range(8)
    )


@intrinsic
def _plane_dot_llvm(typingctx, planes, w, j):
    """``sum_t sum_p 2**p * popcount(planes[t, p] & w[j, t])`` (int64): the
    sum of the pixels where row ``j`` of ``w`` is -1.

    ``planes``: uint64 (n_words, 8), ``w``: uint64 (n, n_words), both 2-D
    C-contiguous. The 8 planes of a word are the lanes of one vector: per
    word one load, an AND with the broadcast word of ``w``, ``vpopcntq`` and
    an add; the weights 2**p are applied once at the end (lane shift, sum).
    LLVM's own vectorisation of the plane-major loop left a 5-word scalar
    tail of 8 popcounts each at 13 words (half the kernel's time)."""
    arrays_ok = all(
        isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and a.dtype == types.uint64 for a in (planes, w)
    )
    if not arrays_ok:
        return None

    def codegen(context, builder, signature, args):
        planes_value, w_value, j_value = _intp_args(context, builder, signature, args)
        planes_type, w_type, _ = signature.args
        planes_array = context.make_array(planes_type)(context, builder, planes_value)
        w_array = context.make_array(w_type)(context, builder, w_value)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        intp = context.get_value_type(types.intp)
        vec = ir.VectorType(i64, 8)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), "llvm.ctpop.v8i64")
        reduce_add = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [vec]), "llvm.vector.reduce.add.v8i64")
        n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)[1]
        acc = cgutils.alloca_once_value(builder, ir.Constant(vec, None))
        with cgutils.for_range(builder, n_words) as loop:
            t = loop.index
            ptr = cgutils.get_item_pointer(context, builder, planes_type, planes_array, [t, ir.Constant(intp, 0)])
            lanes = builder.load(builder.bitcast(ptr, vec.as_pointer()), align=8)
            y = builder.load(cgutils.get_item_pointer(context, builder, w_type, w_array, [j_value, t]))
            ys = builder.insert_element(ir.Constant(vec, ir.Undefined), y, ir.Constant(i32, 0))
            ys = builder.shuffle_vector(ys, ir.Constant(vec, ir.Undefined), ir.Constant(ir.VectorType(i32, 8), [0] * 8))
            builder.store(builder.add(builder.load(acc), builder.call(ctpop, [builder.and_(lanes, ys)])), acc)
        weighted = builder.shl(builder.load(acc), ir.Constant(vec, list(range(8))))
        return builder.call(reduce_add, [weighted])

    return types.int64(planes, w, j), codegen


_plane_words = _plane_words_python if jit_disabled() else _plane_words_llvm
_plane_dot = _plane_dot_python if jit_disabled() else _plane_dot_llvm


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
