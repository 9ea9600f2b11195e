"""Exact ``x @ sign(W)`` on uint8 rows in integers: ``W`` unpacked once to byte masks.

* ``sign_matmul_uint8_masks(x, w_bits, out) -> bool``: ``x`` uint8 (m, k), any strides
  (copied to C order when not); ``w_bits`` uint64 (n, ceil(k/64)); ``out`` int32 (m, n)
  receives ``dot = rowsum(x) - 2 * S`` with ``S[i, j] = sum_t x[i, t] & M[j, t]``, ``M`` the
  byte masks of ``W`` (0xFF where the bit is 1, i.e. the sign is -1; ``fastbin.bits``),
  unpacked once per call. Exact for every ``k`` the int32 result holds
  (``k <= SIGN_MATMUL_UINT8_MAX_K``). False, writing nothing, on non-zero padding bits.

The sums run over 16-byte chunks, 4 rows of ``x`` by 4 rows of ``M`` at a time (then 2 by 4;
the loads of each shared: the reference's 4 x 4 register block): ``and``, then the 16 bytes
added pairwise into 8 uint16 lanes (on AArch64 ``uaddlp`` + ``add``, which LLVM folds to
``uadalp``; elsewhere the same sums by generic shuffles), at most ``CHUNKS_PER_BLOCK`` chunks
(``<= 2 * 255 * 128 = 65280`` a lane) before the lanes are reduced (int64); with the
dot-product extension (``_config.UINT8_UDOT``) ``udot`` of ``x`` with the masks instead (one
instruction a chunk and row of masks: 255 times the sum into uint32 lanes, divided once). The
C NEON reference's shape (``benchmarks/arm64/neon_ref.c``); for many rows on CPUs without a
64-bit vector popcount, where it replaces the exact float32 path (``sign_matmul_uint8_float``).
"""
from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import UINT8_UDOT, jit, jit_disabled
from ..pack import padding_is_zero
from .portable import _c_order

__all__ = ["sign_matmul_uint8_masks", "byte_masks", "CHUNKS_PER_BLOCK"]

#: 16-byte chunks summed in uint16 lanes before a reduction (2 * 255 a chunk a lane).
CHUNKS_PER_BLOCK = 128
_AARCH64 = platform.machine() in ("aarch64", "arm64")
#: ``udot`` of ``x`` with the 0xFF masks into 4 uint32 lanes (``255 * S``, ``<= 4 * 255 * 255`` a
#: chunk a lane) in place of ``and`` + ``uadalp`` (``_config.UINT8_UDOT``: the dot-product extension)
_UDOT = UINT8_UDOT and _AARCH64


def _is_bytes(a):
    return isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and a.dtype == types.uint8


@intrinsic
def _mask_sums_block(typingctx, x, i, masks, j, c0, c1, rows, cols):
    """``sum_t x[i + r, t] & masks[j + q, t]`` over the bytes of 16-byte chunks
    ``c0 <= c < c1`` (``c1 - c0 <= CHUNKS_PER_BLOCK``): a ``rows * cols``-tuple of int64,
    row-major (``rows`` 1, 2 or 4, ``cols`` 1 or 4: literals)."""
    if not (_is_bytes(x) and _is_bytes(masks) and isinstance(rows, types.IntegerLiteral)
            and isinstance(cols, types.IntegerLiteral)):
        return None
    n_rows, n_cols = rows.literal_value, cols.literal_value
    if n_rows not in (1, 2, 4) or n_cols not in (1, 4):
        return None
    result = types.UniTuple(types.int64, n_rows * n_cols)

    def codegen(context, builder, signature, args):
        x_type, _, m_type = signature.args[:3]
        i_value, j_value, c0_value, c1_value = (
            context.cast(builder, args[k], signature.args[k], types.intp) for k in (1, 3, 4, 5)
        )
        x_array = context.make_array(x_type)(context, builder, args[0])
        m_array = context.make_array(m_type)(context, builder, args[2])
        intp = context.get_value_type(types.intp)
        i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
        v16, v8h, v8w = ir.VectorType(i8, 16), ir.VectorType(i16, 8), ir.VectorType(i32, 8)
        if _AARCH64:
            pairwise_fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v8h, [v16]), "llvm.aarch64.neon.uaddlp.v8i16.v16i8")

            def pairwise(v):
                return builder.call(pairwise_fn, [v])
        else:
            undef = ir.Constant(v16, ir.Undefined)
            even = ir.Constant(ir.VectorType(i32, 8), list(range(0, 16, 2)))
            odd = ir.Constant(ir.VectorType(i32, 8), list(range(1, 16, 2)))

            def pairwise(v):
                lo = builder.zext(builder.shuffle_vector(v, undef, even), v8h)
                hi = builder.zext(builder.shuffle_vector(v, undef, odd), v8h)
                return builder.add(lo, hi)
        reduce_add = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [v8w]), "llvm.vector.reduce.add.v8i32")
        x_k = cgutils.unpack_tuple(builder, x_array.shape, 2)[1]
        m_k = cgutils.unpack_tuple(builder, m_array.shape, 2)[1]
        x_rows = [builder.mul(builder.add(i_value, ir.Constant(intp, r)), x_k) for r in range(n_rows)]
        m_rows = [builder.mul(builder.add(j_value, ir.Constant(intp, q)), m_k) for q in range(n_cols)]
        v4w = ir.VectorType(i32, 4)
        if _UDOT:
            udot_fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v4w, [v4w, v16, v16]), "llvm.aarch64.neon.udot.v4i32.v16i8")
            reduce4 = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(i32, [v4w]), "llvm.vector.reduce.add.v4i32")

            def accumulate(acc, xv, mask):
                return builder.call(udot_fn, [acc, xv, mask])

            def reduce(acc):  # 255 * S: exact division
                return builder.udiv(builder.zext(builder.call(reduce4, [acc]), i64), ir.Constant(i64, 255))
        else:
            def accumulate(acc, xv, mask):
                return builder.add(acc, pairwise(builder.and_(xv, mask)))

            def reduce(acc):
                return builder.zext(builder.call(reduce_add, [builder.zext(acc, v8w)]), i64)
        zero = ir.Constant(v4w if _UDOT else v8h, None)
        accs = [cgutils.alloca_once_value(builder, zero) for _ in range(n_rows * n_cols)]

        def load(data, offset):
            ptr = builder.bitcast(builder.gep(data, [offset]), v16.as_pointer())
            return builder.load(ptr, align=1)

        with cgutils.for_range(builder, builder.sub(c1_value, c0_value)) as loop:
            t = builder.mul(builder.add(c0_value, loop.index), ir.Constant(intp, 16))
            xs = [load(x_array.data, builder.add(row, t)) for row in x_rows]
            ms = [load(m_array.data, builder.add(row, t)) for row in m_rows]
            for r in range(n_rows):
                for q in range(n_cols):
                    acc = accs[r * n_cols + q]
                    builder.store(accumulate(builder.load(acc), xs[r], ms[q]), acc)
        sums = [reduce(builder.load(acc)) for acc in accs]
        return context.make_tuple(builder, result, sums)

    return result(x, i, masks, j, c0, c1, rows, cols), codegen


def _mask_sums_block_python(x, i, masks, j, c0, c1, rows, cols):
    return tuple(
        int(np.sum(x[i + r, 16 * c0:16 * c1] & masks[j + q, 16 * c0:16 * c1], dtype=np.int64))
        for r in range(rows) for q in range(cols)
    )


_block = _mask_sums_block_python if jit_disabled() else _mask_sums_block


@jit
def byte_masks(w_bits, k):
    """The byte masks (n, k) uint8 of ``w_bits``: 0xFF where the bit is 1, else 0."""
    n, n_words = w_bits.shape
    masks = np.empty((n, k), np.uint8)
    for j in range(n):
        for t in range(n_words):
            word = w_bits[j, t]
            base = t * 64
            for b in range(min(64, k - base)):
                masks[j, base + b] = np.uint8(255) * np.uint8((word >> np.uint64(b)) & np.uint64(1))  # 0xFF or 0
    return masks


@jit
def _tail_sum(x, i, masks, j, t0):
    s = 0
    for t in range(t0, x.shape[1]):
        s += np.int64(x[i, t] & masks[j, t])  # an int64 sum also as plain Python (uint8 would wrap)
    return s


@jit(inline="always")
def _block_4x4(x, i, masks, j, chunks, t0, rowsum, out):
    """``out[i + r, j + q]`` for ``r, q < 4``: 4 rows of ``x`` by 4 rows of masks, 16 sums."""
    k = x.shape[1]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = 0
    for c0 in range(0, chunks, CHUNKS_PER_BLOCK):
        (a00, a01, a02, a03, a10, a11, a12, a13,
         a20, a21, a22, a23, a30, a31, a32, a33) = _block(
            x, i, masks, j, c0, min(chunks, c0 + CHUNKS_PER_BLOCK), 4, 4)
        s00 += a00
        s01 += a01
        s02 += a02
        s03 += a03
        s10 += a10
        s11 += a11
        s12 += a12
        s13 += a13
        s20 += a20
        s21 += a21
        s22 += a22
        s23 += a23
        s30 += a30
        s31 += a31
        s32 += a32
        s33 += a33
    if t0 < k:
        s00 += _tail_sum(x, i, masks, j, t0)
        s01 += _tail_sum(x, i, masks, j + 1, t0)
        s02 += _tail_sum(x, i, masks, j + 2, t0)
        s03 += _tail_sum(x, i, masks, j + 3, t0)
        s10 += _tail_sum(x, i + 1, masks, j, t0)
        s11 += _tail_sum(x, i + 1, masks, j + 1, t0)
        s12 += _tail_sum(x, i + 1, masks, j + 2, t0)
        s13 += _tail_sum(x, i + 1, masks, j + 3, t0)
        s20 += _tail_sum(x, i + 2, masks, j, t0)
        s21 += _tail_sum(x, i + 2, masks, j + 1, t0)
        s22 += _tail_sum(x, i + 2, masks, j + 2, t0)
        s23 += _tail_sum(x, i + 2, masks, j + 3, t0)
        s30 += _tail_sum(x, i + 3, masks, j, t0)
        s31 += _tail_sum(x, i + 3, masks, j + 1, t0)
        s32 += _tail_sum(x, i + 3, masks, j + 2, t0)
        s33 += _tail_sum(x, i + 3, masks, j + 3, t0)
    out[i, j] = rowsum[i] - 2 * s00
    out[i, j + 1] = rowsum[i] - 2 * s01
    out[i, j + 2] = rowsum[i] - 2 * s02
    out[i, j + 3] = rowsum[i] - 2 * s03
    out[i + 1, j] = rowsum[i + 1] - 2 * s10
    out[i + 1, j + 1] = rowsum[i + 1] - 2 * s11
    out[i + 1, j + 2] = rowsum[i + 1] - 2 * s12
    out[i + 1, j + 3] = rowsum[i + 1] - 2 * s13
    out[i + 2, j] = rowsum[i + 2] - 2 * s20
    out[i + 2, j + 1] = rowsum[i + 2] - 2 * s21
    out[i + 2, j + 2] = rowsum[i + 2] - 2 * s22
    out[i + 2, j + 3] = rowsum[i + 2] - 2 * s23
    out[i + 3, j] = rowsum[i + 3] - 2 * s30
    out[i + 3, j + 1] = rowsum[i + 3] - 2 * s31
    out[i + 3, j + 2] = rowsum[i + 3] - 2 * s32
    out[i + 3, j + 3] = rowsum[i + 3] - 2 * s33


@jit
def _uint8_mask_rows(x, masks, out):
    m, k = x.shape
    n = masks.shape[0]
    chunks = k // 16
    t0 = chunks * 16
    rowsum = np.zeros(m, np.int64)
    for i in range(m):
        for t in range(k):
            rowsum[i] += x[i, t]
    m4, m2, n4 = m // 4 * 4, m // 2 * 2, n // 4 * 4
    for i in range(0, m4, 4):  # 4 x 4 blocks: 8 loads per 16 pairs of rows
        for j in range(0, n4, 4):
            _block_4x4(x, i, masks, j, chunks, t0, rowsum, out)
        for j in range(n4, n):
            for r in range(4):
                out[i + r, j] = rowsum[i + r] - 2 * _sums_1x1(x, i + r, masks, j, chunks, t0)
    for i in range(m4, m2, 2):
        for j in range(0, n4, 4):
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = 0
            for c0 in range(0, chunks, CHUNKS_PER_BLOCK):
                a00, a01, a02, a03, a10, a11, a12, a13 = _block(
                    x, i, masks, j, c0, min(chunks, c0 + CHUNKS_PER_BLOCK), 2, 4)
                s00 += a00
                s01 += a01
                s02 += a02
                s03 += a03
                s10 += a10
                s11 += a11
                s12 += a12
                s13 += a13
            if t0 < k:
                s00 += _tail_sum(x, i, masks, j, t0)
                s01 += _tail_sum(x, i, masks, j + 1, t0)
                s02 += _tail_sum(x, i, masks, j + 2, t0)
                s03 += _tail_sum(x, i, masks, j + 3, t0)
                s10 += _tail_sum(x, i + 1, masks, j, t0)
                s11 += _tail_sum(x, i + 1, masks, j + 1, t0)
                s12 += _tail_sum(x, i + 1, masks, j + 2, t0)
                s13 += _tail_sum(x, i + 1, masks, j + 3, t0)
            out[i, j] = rowsum[i] - 2 * s00
            out[i, j + 1] = rowsum[i] - 2 * s01
            out[i, j + 2] = rowsum[i] - 2 * s02
            out[i, j + 3] = rowsum[i] - 2 * s03
            out[i + 1, j] = rowsum[i + 1] - 2 * s10
            out[i + 1, j + 1] = rowsum[i + 1] - 2 * s11
            out[i + 1, j + 2] = rowsum[i + 1] - 2 * s12
            out[i + 1, j + 3] = rowsum[i + 1] - 2 * s13
        for j in range(n4, n):
            for r in range(2):
                out[i + r, j] = rowsum[i + r] - 2 * _sums_1x1(x, i + r, masks, j, chunks, t0)
    for i in range(m2, m):
        for j in range(n):
            out[i, j] = rowsum[i] - 2 * _sums_1x1(x, i, masks, j, chunks, t0)


@jit
def _sums_1x1(x, i, masks, j, chunks, t0):
    s = 0
    for c0 in range(0, chunks, CHUNKS_PER_BLOCK):
        s += _block(x, i, masks, j, c0, min(chunks, c0 + CHUNKS_PER_BLOCK), 1, 1)[0]
    if t0 < x.shape[1]:
        s += _tail_sum(x, i, masks, j, t0)
    return s


@jit
def sign_matmul_uint8_masks(x, w_bits, out):
    """``out = x @ sign(W)`` exactly (int32) by byte masks of ``W`` (module docstring)."""
    k = x.shape[1]
    if not padding_is_zero(w_bits, k):
        return False
    _uint8_mask_rows(_c_order(x), byte_masks(w_bits, k), out)
    return True
