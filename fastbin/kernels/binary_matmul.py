"""XOR/popcount products of two packed sign matrices.

Every dot product is ``k - 2 * popcount(a_bits XOR w_bits)`` (the
back-transform in ``fastbin.bitops``). Kernels trust their inputs' shapes and
dtypes and write into preallocated outputs. Each first checks that the padding
bits of both packed operands are zero and returns False, writing nothing, if
not (True on success): a few loads here, where a separate check would cost a
whole extra dispatch on a 1 x 784 call.

* ``binary_matmul_kernel(a_bits, w_bits, n_bits, out) -> bool``: ``a_bits``
  uint64 (m, n_words), ``w_bits`` uint64 (n, n_words), both C-contiguous;
  ``n_bits`` = k; ``out`` int32 (m, n) receives ``sign(A) @ sign(W)``.
* ``binary_matmul_parallel(...)``: the same, rows of ``a`` split over threads.
* ``binary_dense_sign_kernel(a_bits, w_bits, n_bits, thresholds, flip,
  out_bits) -> bool``: ``thresholds`` int64 (n,), ``flip`` bool (n,), ``out_bits``
  uint64 (m, ceil(n/64)), every word written; bit ``j`` of row ``i`` is 1 where
  ``dot < thresholds[j]`` (``flip[j]`` False) or ``dot > thresholds[j]``
  (``flip[j]`` True), i.e. the packed signs of the next layer's input.
* ``binary_dense_sign_parallel(...)``: the same over threads.

Speed: a 4 x 2 register block (4 rows of ``a`` times 2 rows of ``w``, eight
accumulators) loads 6 words for 8 popcounts, and LLVM vectorises the word loop
(``vpopcntq`` on AVX-512 VPOPCNTDQ), so the product runs faster than a plain
streaming XOR+popcount of two arrays. Rows of ``w`` are visited in blocks that
fit in L2 while every row of ``a`` passes over them. Short rows (k <= 1024)
use a transposed layout instead (vector lanes over rows of ``a``), which
avoids the loop tails and horizontal sums that dominate at 13 words per row.
The dense-sign kernels compute CHUNK rows of dots into a small scratch, then
threshold and pack them, so no (m, n) int32 matrix is ever written.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._options import jit, jit_disabled, jit_parallel
from ..bitops import popcount
from .pack import padding_is_zero

__all__ = [
    "binary_matmul_kernel",
    "binary_matmul_parallel",
    "binary_dense_sign_kernel",
    "binary_dense_sign_parallel",
]

#: Rows of ``a`` per register block.
ROW_BLOCK = 4
#: Bytes of ``w`` rows kept hot while the rows of ``a`` pass over them.
W_BLOCK_BYTES = 1 << 19
#: Rows of at most this many words (k <= 1024) with at least
#: TRANSPOSED_MIN_ROWS rows take the transposed kernel (measured faster at
#: 128 x 784 -> 10; the blocked kernel wins from ~32 words up).
TRANSPOSED_MAX_WORDS = 16
TRANSPOSED_MIN_ROWS = 8
#: Rows per task of the fused dense-sign kernels (int64 scratch of CHUNK x n).
CHUNK = 64


@jit
def _pc_1x1(a, i, w, j):
    s = 0
    for t in range(a.shape[1]):
        s += popcount(a[i, t] ^ w[j, t])
    return s


@jit
def _pc_1x2(a, i, w, j):
    s0 = 0
    s1 = 0
    for t in range(a.shape[1]):
        x = a[i, t]
        s0 += popcount(x ^ w[j, t])
        s1 += popcount(x ^ w[j + 1, t])
    return s0, s1


@jit
def _pc_4x1(a, i, w, j):
    s0 = 0
    s1 = 0
    s2 = 0
    s3 = 0
    for t in range(a.shape[1]):
        y = w[j, t]
        s0 += popcount(a[i, t] ^ y)
        s1 += popcount(a[i + 1, t] ^ y)
        s2 += popcount(a[i + 2, t] ^ y)
        s3 += popcount(a[i + 3, t] ^ y)
    return s0, s1, s2, s3


@jit
def _pc_4x2(a, i, w, j):
    s00 = 0
    s01 = 0
    s10 = 0
    s11 = 0
    s20 = 0
    s21 = 0
    s30 = 0
    s31 = 0
    for t in range(a.shape[1]):
        y0 = w[j, t]
        y1 = w[j + 1, t]
        x0 = a[i, t]
        x1 = a[i + 1, t]
        x2 = a[i + 2, t]
        x3 = a[i + 3, t]
        s00 += popcount(x0 ^ y0)
        s01 += popcount(x0 ^ y1)
        s10 += popcount(x1 ^ y0)
        s11 += popcount(x1 ^ y1)
        s20 += popcount(x2 ^ y0)
        s21 += popcount(x2 ^ y1)
        s30 += popcount(x3 ^ y0)
        s31 += popcount(x3 ^ y1)
    return s00, s01, s10, s11, s20, s21, s30, s31


@jit
def _w_block(n, n_words):
    """Rows of ``w`` per cache block (even, at least 2)."""
    rows = W_BLOCK_BYTES // (8 * n_words)
    return max(2, rows - rows % 2)


@jit
def _dots_rows(a, w, k, i0, i1, out, o0):
    """``out[i - o0, j] = dot(a_i, w_j)`` for ``i0 <= i < i1`` and every ``j``.

    ``i1 - i0`` need not be a multiple of the row block; leftover rows and
    columns use the smaller blocks."""
    n = w.shape[0]
    block = _w_block(n, a.shape[1])
    i4 = i0 + (i1 - i0) // ROW_BLOCK * ROW_BLOCK
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        j2 = j0 + (j1 - j0) // 2 * 2
        for i in range(i0, i4, ROW_BLOCK):
            r = i - o0
            for j in range(j0, j2, 2):
                s00, s01, s10, s11, s20, s21, s30, s31 = _pc_4x2(a, i, w, j)
                out[r, j] = k - 2 * s00
                out[r, j + 1] = k - 2 * s01
                out[r + 1, j] = k - 2 * s10
                out[r + 1, j + 1] = k - 2 * s11
                out[r + 2, j] = k - 2 * s20
                out[r + 2, j + 1] = k - 2 * s21
                out[r + 3, j] = k - 2 * s30
                out[r + 3, j + 1] = k - 2 * s31
            if j2 < j1:
                s0, s1, s2, s3 = _pc_4x1(a, i, w, j2)
                out[r, j2] = k - 2 * s0
                out[r + 1, j2] = k - 2 * s1
                out[r + 2, j2] = k - 2 * s2
                out[r + 3, j2] = k - 2 * s3
        for i in range(i4, i1):
            r = i - o0
            for j in range(j0, j2, 2):
                s0, s1 = _pc_1x2(a, i, w, j)
                out[r, j] = k - 2 * s0
                out[r, j + 1] = k - 2 * s1
            if j2 < j1:
                out[r, j2] = k - 2 * _pc_1x1(a, i, w, j2)


#: The 8 x 8 transpose as shuffles: swap 1 x 1, then 2 x 2, then 4 x 4
#: sub-blocks across row pairs (distance, (low half mask, high half mask)).
_TRANSPOSE_NETWORK = (
    (1, ([0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15])),
    (2, ([0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15])),
    (4, ([0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])),
)


def _transpose_8x8_python(src, i, t, dst, j):
    """Plain-Python ``_transpose_8x8`` for ``NUMBA_DISABLE_JIT=1``."""
    dst[t : t + 8, j : j + 8] = src[i : i + 8, t : t + 8].T


@intrinsic
def _transpose_8x8_llvm(typingctx, src, i, t, dst, j):
    """``dst[t + c, j + r] = src[i + r, t + c]`` for ``r, c < 8`` (2-D
    C-contiguous uint64 arrays): eight 512-bit loads, the three-stage
    shuffle network of an 8 x 8 transpose, eight stores. LLVM lowers the
    generic shuffles to ``vpermt2q``/``vpunpck*`` on AVX-512 and to narrower
    shuffles elsewhere. Measured 3x faster than a scalar transpose loop."""
    arrays_ok = all(
        isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and a.dtype == types.uint64
        for a in (src, dst)
    )
    if not arrays_ok:
        return None

    def codegen(context, builder, signature, args):
        src_value, i_value, t_value, dst_value, j_value = args
        src_type, _, _, dst_type, _ = signature.args
        src_array = context.make_array(src_type)(context, builder, src_value)
        dst_array = context.make_array(dst_type)(context, builder, dst_value)
        vec_type = ir.VectorType(ir.IntType(64), 8)
        intp = context.get_value_type(types.intp)

        def row_ptr(array_type, array, row, col):
            ptr = cgutils.get_item_pointer(context, builder, array_type, array, [row, col])
            return builder.bitcast(ptr, vec_type.as_pointer())

        def shuffle(a, b, mask):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), mask))

        rows = [
            builder.load(row_ptr(src_type, src_array, builder.add(i_value, ir.Constant(intp, r)), t_value), align=8)
            for r in range(8)
        ]
        for distance, (low, high) in _TRANSPOSE_NETWORK:
            swapped = list(rows)
            for r in range(8):
                if r & distance == 0:
                    swapped[r] = shuffle(rows[r], rows[r + distance], low)
                    swapped[r + distance] = shuffle(rows[r], rows[r + distance], high)
            rows = swapped
        for c in range(8):
            ptr = row_ptr(dst_type, dst_array, builder.add(t_value, ir.Constant(intp, c)), j_value)
            builder.store(rows[c], ptr, align=8)
        return context.get_dummy_value()

    return types.none(src, i, t, dst, j), codegen


_transpose_8x8 = _transpose_8x8_python if jit_disabled() else _transpose_8x8_llvm


#: Rows of ``a`` per vector of the transposed kernel (8 x uint64: one zmm).
LANES = 8


def _lane_block_python(cols):
    """Plain-Python ``_lane_block`` for ``NUMBA_DISABLE_JIT=1``."""

    def lane_block(a_t, i, w, j, k, out, row, valid):
        for c in range(cols):
            for r in range(valid):
                s = 0
                for t in range(a_t.shape[0]):
                    s += popcount(a_t[t, i + r] ^ w[j + c, t])
                out[row + r, j + c] = k - 2 * s

    return lane_block


def _lane_block_llvm(cols):
    @intrinsic
    def lane_block(typingctx, a_t, i, w, j, k, out, row, valid):
        """``out[row + r, j + c] = k - 2 * sum_t popcount(a_t[t, i + r] ^
        w[j + c, t])`` for ``r < valid`` (<= LANES) and ``c < cols``.

        ``a_t``: uint64 (n_words, >= i + LANES), rows of ``a`` word-major;
        ``w``: uint64 (n, n_words); ``out``: int32 or int64; all 2-D
        C-contiguous. One <8 x i64> accumulator per column stays in a
        register over the whole word loop: xor with a broadcast word of
        ``w``, ``vpopcntq``, add (three vector ops per 8 word pairs, the
        loop measured ALU-bound). The cols x 8 result block is then
        transposed with shuffles and each output row written by one masked
        store, instead of 8 * cols scalar stores (which took a third of the
        time at 128 x 784 -> 10)."""
        words_ok = all(
            isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C" and x.dtype == types.uint64
            for x in (a_t, w)
        )
        out_ok = isinstance(out, types.Array) and out.ndim == 2 and out.layout == "C"
        if not (words_ok and out_ok and out.dtype in (types.int32, types.int64)):
            return None

        def codegen(context, builder, signature, args):
            a_t_type, _, w_type, _, _, out_type, _, _ = signature.args
            intp_type = types.intp
            a_t_value, i_value, w_value, j_value, k_value, out_value, row_value, valid_value = (
                context.cast(builder, v, t, intp_type) if isinstance(t, types.Integer) else v
                for v, t in zip(args, signature.args)
            )
            a_t_array = context.make_array(a_t_type)(context, builder, a_t_value)
            w_array = context.make_array(w_type)(context, builder, w_value)
            out_array = context.make_array(out_type)(context, builder, out_value)
            intp = context.get_value_type(intp_type)
            i32 = ir.IntType(32)
            vec = ir.VectorType(ir.IntType(64), LANES)
            out_elem = ir.IntType(out_type.dtype.bitwidth)
            out_vec = ir.VectorType(out_elem, LANES)
            module = builder.module
            ctpop = cgutils.get_or_insert_function(module, ir.FunctionType(vec, [vec]), "llvm.ctpop.v8i64")
            mask_type = ir.VectorType(ir.IntType(1), LANES)
            masked_store = cgutils.get_or_insert_function(
                module,
                ir.FunctionType(ir.VoidType(), [out_vec, out_vec.as_pointer(), i32, mask_type]),
                f"llvm.masked.store.v{LANES}i{out_elem.width}.p0",
            )

            def const(value):
                return ir.Constant(intp, value)

            def splat(value, vec_type):
                one = builder.insert_element(ir.Constant(vec_type, ir.Undefined), value, ir.Constant(i32, 0))
                zeros = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
                return builder.shuffle_vector(one, ir.Constant(vec_type, ir.Undefined), zeros)

            n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)[1]
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(cols)]
            with cgutils.for_range(builder, n_words) as loop:
                t = loop.index
                ptr = cgutils.get_item_pointer(context, builder, a_t_type, a_t_array, [t, i_value])
                lanes = builder.load(builder.bitcast(ptr, vec.as_pointer()), align=8)
                for c in range(cols):
                    w_ptr = cgutils.get_item_pointer(
                        context, builder, w_type, w_array, [builder.add(j_value, const(c)), t]
                    )
                    count = builder.call(ctpop, [builder.xor(lanes, splat(builder.load(w_ptr), vec))])
                    builder.store(builder.add(builder.load(accs[c]), count), accs[c])
            # columns[c][r] = k - 2 * acc; transposed into rows[r][c].
            k_lanes = splat(builder.trunc(k_value, out_elem) if out_elem.width < 64 else k_value, out_vec)
            rows = []
            for c in range(LANES):
                if c < cols:
                    acc = builder.load(accs[c])
                    acc = builder.trunc(acc, out_vec) if out_elem.width < 64 else acc
                    rows.append(builder.sub(k_lanes, builder.add(acc, acc)))
                else:
                    rows.append(ir.Constant(out_vec, None))
            for distance, (low, high) in _TRANSPOSE_NETWORK:
                swapped = list(rows)
                for r in range(LANES):
                    if r & distance == 0:
                        pair = rows[r], rows[r + distance]
                        swapped[r] = builder.shuffle_vector(*pair, ir.Constant(ir.VectorType(i32, LANES), low))
                        swapped[r + distance] = builder.shuffle_vector(
                            *pair, ir.Constant(ir.VectorType(i32, LANES), high)
                        )
                rows = swapped
            column_mask = ir.Constant(mask_type, [c < cols for c in range(LANES)])
            align = ir.Constant(i32, out_elem.width // 8)
            for r in range(LANES):
                with builder.if_then(builder.icmp_signed(">", valid_value, const(r)), likely=True):
                    out_ptr = cgutils.get_item_pointer(
                        context, builder, out_type, out_array, [builder.add(row_value, const(r)), j_value]
                    )
                    builder.call(masked_store, [rows[r], builder.bitcast(out_ptr, out_vec.as_pointer()), align, column_mask])
            return context.get_dummy_value()

        return types.none(a_t, i, w, j, k, out, row, valid), codegen

    return lane_block


_make_lane_block = _lane_block_python if jit_disabled() else _lane_block_llvm
_lane_block1, _lane_block2, _lane_block3, _lane_block4, _lane_block5, _lane_block6, _lane_block7, _lane_block8 = (
    _make_lane_block(cols) for cols in range(1, 9)
)


@jit
def _lane_block(a_t, i, w, j, cols, k, out, row, valid):
    """The lane block for ``cols`` (1..8) columns of ``w`` from ``j``."""
    if cols >= 8:
        _lane_block8(a_t, i, w, j, k, out, row, valid)
    elif cols == 7:
        _lane_block7(a_t, i, w, j, k, out, row, valid)
    elif cols == 6:
        _lane_block6(a_t, i, w, j, k, out, row, valid)
    elif cols == 5:
        _lane_block5(a_t, i, w, j, k, out, row, valid)
    elif cols == 4:
        _lane_block4(a_t, i, w, j, k, out, row, valid)
    elif cols == 3:
        _lane_block3(a_t, i, w, j, k, out, row, valid)
    elif cols == 2:
        _lane_block2(a_t, i, w, j, k, out, row, valid)
    else:
        _lane_block1(a_t, i, w, j, k, out, row, valid)


@jit
def _dots_transposed(a, w, k, i0, i1, out, o0):
    """``_dots_rows`` for short rows (few words): with ~13 words per row the
    blocked kernel spends its time in loop tails and horizontal sums, so here
    rows ``i0:i1`` of ``a`` are transposed to word-major ``a_t`` (padded to
    whole vectors of LANES rows) and the vector lanes run over rows of ``a``,
    8 rows of ``w`` at a time (``_lane_block``)."""
    n_words = a.shape[1]
    rows = i1 - i0
    full = rows // LANES * LANES
    padded = full + LANES if full < rows else full
    a_t = np.empty((n_words, padded), dtype=np.uint64)
    words8 = n_words // 8 * 8
    for i in range(0, full, LANES):
        for t in range(0, words8, 8):
            _transpose_8x8(a, i0 + i, t, a_t, i)
        if words8 < n_words and n_words >= 8:
            # The last 8 words, overlapping the block before: the overlap is
            # written twice with the same values (no scalar tail loop).
            _transpose_8x8(a, i0 + i, n_words - 8, a_t, i)
        elif words8 < n_words:
            for t in range(n_words):
                for r in range(i, i + LANES):
                    a_t[t, r] = a[i0 + r, t]
    for t in range(n_words):
        for r in range(full, padded):
            # Lanes past the last row are computed but never stored.
            a_t[t, r] = a[i0 + r, t] if r < rows else np.uint64(0)
    n = w.shape[0]
    for i in range(0, padded, LANES):
        valid = min(LANES, rows - i)
        for j in range(0, n, 8):
            _lane_block(a_t, i, w, j, min(8, n - j), k, out, i0 + i - o0, valid)


@jit
def _dots(a, w, k, i0, i1, out, o0):
    """``out[i - o0, j] = dot(a_i, w_j)`` for ``i0 <= i < i1``, every ``j``."""
    if a.shape[1] <= TRANSPOSED_MAX_WORDS and i1 - i0 >= TRANSPOSED_MIN_ROWS:
        _dots_transposed(a, w, k, i0, i1, out, o0)
    else:
        _dots_rows(a, w, k, i0, i1, out, o0)


#: Row chunks of the threaded kernels (a fixed count: ``get_num_threads()``
#: inside a kernel would make it uncacheable). Each chunk is contiguous, so it
#: keeps the L2 blocking of ``w``; 64 chunks balance up to ~16 threads.
MAX_TASKS = 64


@jit
def _n_tasks(m):
    """Row chunks for the threaded kernels: at most MAX_TASKS, one row block
    at least."""
    blocks = (m + ROW_BLOCK - 1) // ROW_BLOCK
    return max(1, min(blocks, MAX_TASKS))


@jit
def binary_matmul_kernel(a_bits, w_bits, n_bits, out):
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    _dots(a_bits, w_bits, n_bits, 0, a_bits.shape[0], out, 0)
    return True


@jit_parallel
def binary_matmul_parallel(a_bits, w_bits, n_bits, out):
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    m = a_bits.shape[0]
    tasks = _n_tasks(m)
    rows = (m + tasks - 1) // tasks
    rows = (rows + ROW_BLOCK - 1) // ROW_BLOCK * ROW_BLOCK
    for task in prange(tasks):
        i0 = min(m, task * rows)
        i1 = min(m, i0 + rows)
        _dots(a_bits, w_bits, n_bits, i0, i1, out, 0)
    return True


@jit
def _threshold_rows(a, w, k, signed_thr, sign, i0, i1, dots, out_bits):
    """Dots of rows ``i0:i1`` into the scratch ``dots`` (CHUNK, n), then
    their packed threshold signs into ``out_bits[i0:i1]``."""
    n = w.shape[0]
    _dots(a, w, k, i0, i1, dots, i0)
    for i in range(i0, i1):
        r = i - i0
        for t in range(out_bits.shape[1]):
            base = t * 64
            word = np.uint64(0)
            for b in range(min(64, n - base)):
                j = base + b
                # flip: dot > thr  <=>  -dot < -thr, so one compare serves both.
                negative = sign[j] * dots[r, j] < signed_thr[j]
                word |= np.uint64(negative) << np.uint64(b)
            out_bits[i, t] = word


@jit
def _signed_thresholds(thresholds, flip):
    n = thresholds.shape[0]
    sign = np.empty(n, dtype=np.int64)
    signed_thr = np.empty(n, dtype=np.int64)
    for j in range(n):
        sign[j] = -1 if flip[j] else 1
        signed_thr[j] = sign[j] * thresholds[j]
    return sign, signed_thr


@jit
def binary_dense_sign_kernel(a_bits, w_bits, n_bits, thresholds, flip, out_bits):
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    m = a_bits.shape[0]
    sign, signed_thr = _signed_thresholds(thresholds, flip)
    dots = np.empty((CHUNK, w_bits.shape[0]), dtype=np.int64)
    for i0 in range(0, m, CHUNK):
        i1 = min(m, i0 + CHUNK)
        _threshold_rows(a_bits, w_bits, n_bits, signed_thr, sign, i0, i1, dots, out_bits)
    return True


@jit_parallel
def binary_dense_sign_parallel(a_bits, w_bits, n_bits, thresholds, flip, out_bits):
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    m = a_bits.shape[0]
    sign, signed_thr = _signed_thresholds(thresholds, flip)
    n_chunks = (m + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        dots = np.empty((CHUNK, w_bits.shape[0]), dtype=np.int64)
        i0 = c * CHUNK
        _threshold_rows(a_bits, w_bits, n_bits, signed_thr, sign, i0, min(m, i0 + CHUNK), dots, out_bits)
    return True
