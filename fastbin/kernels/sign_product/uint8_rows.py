"""Exact ``x @ sign(W)`` on few uint8 rows in integers, the byte masks of ``W`` made on the
fly from its bits (the C NEON reference's one-row kernel, ``benchmarks/arm64/neon_ref.c``).

* ``mask_sums4(x, w, j)`` -> 4 int64 / ``mask_sums1(x, w, j)`` -> int64: ``S_r = sum_t
  x[t] * bit_t(w_{j + r})``, the sum of ``x`` (1-D uint8, C-contiguous, length ``k``) where
  row ``j + r`` of ``w`` (uint64 (n, ceil(k/64)), ``fastbin.bits``) has a 1 (sign -1); the
  padding bits are never read. Then ``x @ sign(w_j) = rowsum(x) - 2 * S``.
* ``row_total(x)`` -> int64: ``sum_t x[t]``.
* ``sign_matmul_uint8_rows(x, w_bits, out) -> bool``: ``out`` int32 (m, n) receives
  ``x @ sign(W)`` exactly (``k <= SIGN_MATMUL_UINT8_MAX_K``), ``x`` uint8 (m, k) any
  strides (copied to C order when not); False, writing nothing, on non-zero padding bits.

Per 16-byte chunk ``c`` of ``x`` and row of ``w``: the 16 bits ``16c .. 16c + 15`` of the
row (bytes ``2c``, ``2c + 1`` of 128 bits loaded once per 8 chunks) spread over the 16 byte
lanes (a byte shuffle: ``tbl`` on AArch64, its index moving by 2 a chunk), tested against the
lane's bit (``cmtst``: 0xFF where set), and-ed with ``x`` (as ``umin``) and added pairwise into 8 uint16 lanes
(``uadalp``; ``<= 2 * 255`` a chunk a lane, so up to ``CHUNKS_PER_BLOCK = 128`` chunks
before the lanes are reduced); with the dot-product extension (``_config.UINT8_UDOT``) the
masks meet ``x`` in ``udot`` instead (255 times the sum, into uint32 lanes, divided once).
4 rows of ``w`` share each load of ``x``. The ``k % 16`` last elements are summed one by one.
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

__all__ = ["mask_sums4", "mask_sums1", "row_total", "sign_matmul_uint8_rows", "CHUNKS_PER_BLOCK"]

#: 16-byte chunks summed in uint16 lanes before a reduction (2 * 255 a chunk a lane);
#: a multiple of 8 (blocks start on a 128-bit piece of ``w``).
CHUNKS_PER_BLOCK = 128
_AARCH64 = platform.machine() in ("aarch64", "arm64")
#: ``udot`` of the pixels with the 0xFF masks into 4 uint32 lanes (``255 * S``; ``<= 4 * 255 * 255``
#: a chunk a lane) instead of ``and`` + ``uadalp`` (``_config.UINT8_UDOT``: the dot-product extension)
_UDOT = UINT8_UDOT and _AARCH64


@intrinsic
def _mask_sums_block(typingctx, x, w, j, c0, c1, rows):
    """``sum_t x[t] * bit_t(w_{j+r})`` over the 16-byte chunks ``c0 <= c < c1`` of ``x``
    (``c0 % 8 == 0``, ``c1 - c0 <= CHUNKS_PER_BLOCK``): a ``rows``-tuple of int64."""
    if not (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" and x.dtype == types.uint8
            and isinstance(w, types.Array) and w.ndim == 2 and w.layout == "C" and w.dtype == types.uint64
            and isinstance(rows, types.IntegerLiteral) and rows.literal_value in (1, 4)):
        return None
    n_rows = rows.literal_value
    result = types.UniTuple(types.int64, n_rows)

    def codegen(context, builder, signature, args):
        x_type, w_type = signature.args[:2]
        j_value, c0_value, c1_value = (context.cast(builder, args[k], signature.args[k], types.intp)
                                       for k in (2, 3, 4))
        x_array = context.make_array(x_type)(context, builder, args[0])
        w_array = context.make_array(w_type)(context, builder, args[1])
        intp = context.get_value_type(types.intp)
        i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
        v16, v8h, v8w, v2d = ir.VectorType(i8, 16), ir.VectorType(i16, 8), ir.VectorType(i32, 8), ir.VectorType(i64, 2)
        if _AARCH64:
            pairwise_fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v8h, [v16]), "llvm.aarch64.neon.uaddlp.v8i16.v16i8")
            tbl_fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v16, [v16, v16]), "llvm.aarch64.neon.tbl1.v16i8")

            def pairwise(v):
                return builder.call(pairwise_fn, [v])

            def spread(piece, q, index):
                return builder.call(tbl_fn, [piece, index])
        else:
            undef = ir.Constant(v16, ir.Undefined)
            even = ir.Constant(v8w, list(range(0, 16, 2)))
            odd = ir.Constant(v8w, list(range(1, 16, 2)))

            def pairwise(v):
                lo = builder.zext(builder.shuffle_vector(v, undef, even), v8h)
                hi = builder.zext(builder.shuffle_vector(v, undef, odd), v8h)
                return builder.add(lo, hi)

            def spread(piece, q, index):
                lanes = ir.Constant(ir.VectorType(i32, 16), [2 * q] * 8 + [2 * q + 1] * 8)
                return builder.shuffle_vector(piece, undef, lanes)
        reduce_add = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [v8w]), "llvm.vector.reduce.add.v8i32")
        no_bits = ir.Constant(v16, None)
        n_rows_w, n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)
        # The byte shuffles' indices and the lanes' bits as vectors LLVM cannot fold to constants
        # (a shape's sign bit: 0): computed once into registers, where constants were reloaded from
        # memory at every chunk (an address of 4 instructions each); the index moves by 2 a chunk.
        zero = builder.zext(builder.icmp_signed("<", n_rows_w, ir.Constant(intp, 0)), i8)
        zeros = builder.shuffle_vector(builder.insert_element(ir.Constant(v16, ir.Undefined), zero,
                                                              ir.Constant(i32, 0)),
                                       ir.Constant(v16, ir.Undefined), ir.Constant(ir.VectorType(i32, 16), [0] * 16))
        bit = builder.add(ir.Constant(v16, [1 << b for b in range(8)] * 2), zeros)
        first = builder.add(ir.Constant(v16, [0] * 8 + [1] * 8), zeros)
        two = ir.Constant(v16, [2] * 16)
        w_bases = [builder.gep(w_array.data, [builder.mul(builder.add(j_value, ir.Constant(intp, r)), n_words)])
                   for r in range(n_rows)]
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
            umin = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16, [v16, v16]), "llvm.umin.v16i8")

            def accumulate(acc, xv, mask):  # umin(x, 0 or 0xFF): an and that LLVM keeps as cmtst + umin
                return builder.add(acc, pairwise(builder.call(umin, [xv, mask])))  # (not and + cmeq + bic)

            def reduce(acc):
                return builder.zext(builder.call(reduce_add, [builder.zext(acc, v8w)]), i64)
        accs = [cgutils.alloca_once_value(builder, ir.Constant(v4w if _UDOT else v8h, None)) for _ in range(n_rows)]
        eight = ir.Constant(intp, 8)
        g0 = builder.udiv(c0_value, eight)
        count = builder.sub(c1_value, c0_value)
        whole = builder.udiv(count, eight)
        left = builder.urem(count, eight)

        def x_chunk(c):
            ptr = builder.bitcast(builder.gep(x_array.data, [builder.mul(c, ir.Constant(intp, 16))]), v16.as_pointer())
            return builder.load(ptr, align=1)

        def chunk(pieces, c, q, index):
            xv = x_chunk(c)
            for r in range(n_rows):
                tested = builder.and_(spread(pieces[r], q, index), bit)
                mask = builder.sext(builder.icmp_unsigned("!=", tested, no_bits), v16)
                builder.store(accumulate(builder.load(accs[r]), xv, mask), accs[r])

        with cgutils.for_range(builder, whole) as loop:  # 8 chunks per 128 bits of each row of w
            g = builder.add(g0, loop.index)
            pieces = []
            for r in range(n_rows):
                ptr = builder.bitcast(builder.gep(w_bases[r], [builder.mul(g, ir.Constant(intp, 2))]), v16.as_pointer())
                pieces.append(builder.load(ptr, align=8))
            index = first
            for q in range(8):
                chunk(pieces, builder.add(builder.mul(g, eight), ir.Constant(intp, q)), q, index)
                index = builder.add(index, two)
        with builder.if_then(builder.icmp_unsigned("!=", left, ir.Constant(intp, 0))):
            # 1-7 chunks: one word of each row, and the next one from the fifth chunk on (the
            # words past the chunks may not exist)
            g = builder.add(g0, whole)
            t = builder.mul(g, ir.Constant(intp, 2))
            second = builder.icmp_unsigned(">", left, ir.Constant(intp, 4))
            pieces = []
            for r in range(n_rows):
                lo = builder.insert_element(ir.Constant(v2d, None), builder.load(builder.gep(w_bases[r], [t])),
                                            ir.Constant(i32, 0))
                slot = cgutils.alloca_once_value(builder, lo)
                with builder.if_then(second):
                    hi = builder.load(builder.gep(w_bases[r], [builder.add(t, ir.Constant(intp, 1))]))
                    builder.store(builder.insert_element(lo, hi, ir.Constant(i32, 1)), slot)
                pieces.append(builder.bitcast(builder.load(slot), v16))
            index = first
            for q in range(7):
                with builder.if_then(builder.icmp_unsigned("<", ir.Constant(intp, q), left)):
                    chunk(pieces, builder.add(builder.mul(g, eight), ir.Constant(intp, q)), q, index)
                index = builder.add(index, two)
        sums = [reduce(builder.load(acc)) for acc in accs]
        return context.make_tuple(builder, result, sums)

    return result(x, w, j, c0, c1, rows), codegen


def _mask_sums_block_python(x, w, j, c0, c1, rows):
    sums = []
    for r in range(rows):
        s = 0
        for t in range(16 * c0, 16 * c1):
            if (int(w[j + r, t // 64]) >> (t % 64)) & 1:
                s += int(x[t])
        sums.append(s)
    return tuple(sums)


_block = _mask_sums_block_python if jit_disabled() else _mask_sums_block


@jit(inline="always")
def _tail_sum(x, w, j, t0):
    """``sum_t x[t] * bit_t(w_j)`` for ``t0 <= t < k`` (the last ``k % 16`` elements)."""
    s = 0
    for t in range(t0, x.shape[0]):
        if (w[j, t // 64] >> np.uint64(t % 64)) & np.uint64(1):
            s += np.int64(x[t])
    return s


@jit(inline="always")
def mask_sums4(x, w, j):
    """``S_r`` for ``r = 0 .. 3`` (rows ``j .. j + 3`` of ``w``; int64 each)."""
    k = x.shape[0]
    chunks = k // 16
    s0 = s1 = s2 = s3 = 0
    for c0 in range(0, chunks, CHUNKS_PER_BLOCK):
        a0, a1, a2, a3 = _block(x, w, j, c0, min(chunks, c0 + CHUNKS_PER_BLOCK), 4)
        s0 += a0
        s1 += a1
        s2 += a2
        s3 += a3
    t0 = chunks * 16
    if t0 < k:
        s0 += _tail_sum(x, w, j, t0)
        s1 += _tail_sum(x, w, j + 1, t0)
        s2 += _tail_sum(x, w, j + 2, t0)
        s3 += _tail_sum(x, w, j + 3, t0)
    return s0, s1, s2, s3


@jit(inline="always")
def mask_sums1(x, w, j):
    """``S`` of row ``j`` of ``w`` (int64)."""
    k = x.shape[0]
    chunks = k // 16
    s = 0
    for c0 in range(0, chunks, CHUNKS_PER_BLOCK):
        s += _block(x, w, j, c0, min(chunks, c0 + CHUNKS_PER_BLOCK), 1)[0]
    t0 = chunks * 16
    if t0 < k:
        s += _tail_sum(x, w, j, t0)
    return s


@jit
def row_total(x):
    """``sum_t x[t]`` of a 1-D uint8 row (int64)."""
    total = 0
    for t in range(x.shape[0]):
        total += np.int64(x[t])
    return total


@jit
def _uint8_rows(x, w_bits, out):
    m = x.shape[0]
    n = w_bits.shape[0]
    n4 = n // 4 * 4
    for i in range(m):
        row = x[i]
        total = row_total(row)
        for j in range(0, n4, 4):
            s0, s1, s2, s3 = mask_sums4(row, w_bits, j)
            out[i, j] = total - 2 * s0
            out[i, j + 1] = total - 2 * s1
            out[i, j + 2] = total - 2 * s2
            out[i, j + 3] = total - 2 * s3
        for j in range(n4, n):
            out[i, j] = total - 2 * mask_sums1(row, w_bits, j)


@jit
def sign_matmul_uint8_rows(x, w_bits, out):
    """``out = x @ sign(W)`` exactly (int32) from ``W``'s bits (module docstring)."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    _uint8_rows(_c_order(x), w_bits, out)
    return True
