"""Exact ``x @ sign(W)`` on uint8 rows in integers: ``W`` unpacked once to byte masks.

* ``sign_matmul_uint8_masks(x, w_bits, out) -> bool``: ``x`` uint8 (m, k), any strides
  (copied to C order when not); ``w_bits`` uint64 (n, ceil(k/64)); ``out`` int32 (m, n)
  receives ``dot = rowsum(x) - 2 * S`` with ``S[i, j] = sum_t x[i, t] & M[j, t]``, ``M`` the
  byte masks of ``W`` (0xFF where the bit is 1, i.e. the sign is -1; ``fastbin.bits``),
  unpacked once per call. Exact for every ``k`` the int32 result holds
  (``k <= SIGN_MATMUL_UINT8_MAX_K``). False, writing nothing, on non-zero padding bits.

``W`` is unpacked by 16-bit spreads (``tbl`` + ``cmtst`` on AArch64, ``_neon_ir.spread_chunks``,
one 16-byte store a chunk), the ``k % 16`` last bytes one by one. The sums run over 16-byte
chunks, 4 rows of ``x`` by 4 rows of ``M`` at a time (then by 1; 2 and 1 rows of ``x`` at the
end; the loads of each shared: the reference's 4 x 4 register block): ``and``, then the 16
bytes added pairwise into 8 uint16 lanes (``uadalp`` on AArch64), at most ``CHUNKS_PER_BLOCK``
chunks (``<= 2 * 255 * 128 = 65280`` a lane) before the lanes are reduced (int64); with the
dot-product extension (``_config.UINT8_UDOT``) ``udot`` of ``x`` with the masks instead (one
instruction a chunk and row of masks: 255 times the sum into uint32 lanes, divided once;
``_neon_ir.accumulator``). The C NEON reference's shape (``benchmarks/arm64/neon_ref.c``); for
many rows on CPUs without a 64-bit vector popcount, where it replaces the exact float32 path
(``sign_matmul_uint8_float``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled
from ..intrinsics import intp_args, is_words
from ..pack import padding_is_zero
from ._neon_ir import accumulator, spread_chunks
from .portable import _c_order
from .uint8_rows import row_total

__all__ = ["sign_matmul_uint8_masks", "byte_masks", "CHUNKS_PER_BLOCK"]

#: 16-byte chunks summed in uint16 lanes before a reduction (2 * 255 a chunk a lane).
CHUNKS_PER_BLOCK = 128
_V16 = ir.VectorType(ir.IntType(8), 16)


def _is_bytes(a):
    return isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and a.dtype == types.uint8


@intrinsic
def _mask_panel(typingctx, x, i, masks, rowsum, out, rows):
    """``out[i + r, j] = rowsum[i + r] - 2 * sum_t x[i + r, t] & masks[j, t]`` for ``r < rows``
    (1, 2 or 4: a literal) and every row ``j`` of ``masks``: blocks of ``rows`` rows of ``x`` by
    4 rows of ``masks`` (then by 1), the 16-byte chunks summed ``CHUNKS_PER_BLOCK`` at a time
    (``_neon_ir.accumulator``), then the ``k % 16`` last bytes one by one."""
    if not (_is_bytes(x) and _is_bytes(masks) and isinstance(rowsum, types.Array) and rowsum.ndim == 1
            and rowsum.layout == "C" and rowsum.dtype == types.int64 and isinstance(out, types.Array)
            and out.ndim == 2 and out.dtype == types.int32 and isinstance(rows, types.IntegerLiteral)
            and rows.literal_value in (1, 2, 4)):
        return None
    n_rows = rows.literal_value

    def codegen(context, builder, signature, args):
        x_type, _, m_type, s_type, out_type = signature.args[:5]
        i_value = intp_args(context, builder, signature, args)[1]
        x_array = context.make_array(x_type)(context, builder, args[0])
        m_array = context.make_array(m_type)(context, builder, args[2])
        s_array = context.make_array(s_type)(context, builder, args[3])
        out_array = context.make_array(out_type)(context, builder, args[4])
        intp = context.get_value_type(types.intp)
        i64 = ir.IntType(64)

        def const(v):
            return ir.Constant(intp, v)

        k = cgutils.unpack_tuple(builder, x_array.shape, 2)[1]
        n = cgutils.unpack_tuple(builder, m_array.shape, 2)[0]
        chunks = builder.udiv(k, const(16))
        x_rows = [builder.mul(builder.add(i_value, const(r)), k) for r in range(n_rows)]
        totals = [builder.load(cgutils.get_item_pointer(context, builder, s_type, s_array,
                                                        [builder.add(i_value, const(r))]))
                  for r in range(n_rows)]
        zero, accumulate, reduce = accumulator(builder, builder.and_)

        def load(data, offset):
            return builder.load(builder.bitcast(builder.gep(data, [offset]), _V16.as_pointer()), align=1)

        def block(j, n_cols):
            m_rows = [builder.mul(builder.add(j, const(q)), k) for q in range(n_cols)]
            sums = [cgutils.alloca_once_value(builder, ir.Constant(i64, 0)) for _ in range(n_rows * n_cols)]
            with cgutils.for_range_slice(builder, const(0), chunks, const(CHUNKS_PER_BLOCK)) as (c0, _):
                c1 = builder.add(c0, const(CHUNKS_PER_BLOCK))
                c1 = builder.select(builder.icmp_unsigned("<", chunks, c1), chunks, c1)
                accs = [cgutils.alloca_once_value(builder, zero) for _ in sums]
                # by byte offsets (a shift of a chunk index cost an instruction a chunk)
                with cgutils.for_range_slice(builder, builder.mul(c0, const(16)), builder.mul(c1, const(16)),
                                             const(16)) as (t, _):
                    xs = [load(x_array.data, builder.add(row, t)) for row in x_rows]
                    ms = [load(m_array.data, builder.add(row, t)) for row in m_rows]
                    for r in range(n_rows):
                        for q in range(n_cols):
                            acc = accs[r * n_cols + q]
                            builder.store(accumulate(builder.load(acc), xs[r], ms[q]), acc)
                for acc, s in zip(accs, sums):
                    builder.store(builder.add(builder.load(s), reduce(builder.load(acc))), s)
            with cgutils.for_range_slice(builder, builder.mul(chunks, const(16)), k, const(1)) as (t, _):
                xs = [builder.load(builder.gep(x_array.data, [builder.add(row, t)])) for row in x_rows]
                ms = [builder.load(builder.gep(m_array.data, [builder.add(row, t)])) for row in m_rows]
                for r in range(n_rows):
                    for q in range(n_cols):
                        s = sums[r * n_cols + q]
                        builder.store(builder.add(builder.load(s), builder.zext(builder.and_(xs[r], ms[q]), i64)), s)
            for r in range(n_rows):
                for q in range(n_cols):
                    dot = builder.sub(totals[r], builder.shl(builder.load(sums[r * n_cols + q]), ir.Constant(i64, 1)))
                    ptr = cgutils.get_item_pointer(context, builder, out_type, out_array,
                                                   [builder.add(i_value, const(r)), builder.add(j, const(q))])
                    builder.store(builder.trunc(dot, ir.IntType(32)), ptr)

        n4 = builder.and_(n, const(-4))
        with cgutils.for_range_slice(builder, const(0), n4, const(4)) as (j, _):
            block(j, 4)
        with cgutils.for_range_slice(builder, n4, n, const(1)) as (j, _):
            block(j, 1)
        return context.get_dummy_value()

    return types.none(x, i, masks, rowsum, out, rows), codegen


def _mask_panel_python(x, i, masks, rowsum, out, rows):
    s = (x[i:i + rows, None, :] & masks[None]).sum(axis=2, dtype=np.int64)
    out[i:i + rows] = rowsum[i:i + rows, None] - 2 * s


@intrinsic
def _unpack_chunks(typingctx, w_bits, masks):
    """``masks[j, :16 * (k // 16)]`` (``k = masks.shape[1]``) the byte masks of ``w_bits[j]``
    for every row ``j`` (``_neon_ir.spread_chunks``: ``tbl`` + ``cmtst`` + a 16-byte store a chunk)."""
    if not (is_words(w_bits) and _is_bytes(masks)):
        return None

    def codegen(context, builder, signature, args):
        w_array = context.make_array(signature.args[0])(context, builder, args[0])
        m_array = context.make_array(signature.args[1])(context, builder, args[1])
        intp = context.get_value_type(types.intp)
        n, n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)
        k = cgutils.unpack_tuple(builder, m_array.shape, 2)[1]
        chunks = builder.udiv(k, ir.Constant(intp, 16))
        with cgutils.for_range(builder, n) as loop:
            row = builder.gep(m_array.data, [builder.mul(loop.index, k)])

            def store(c, mask):
                ptr = builder.gep(row, [builder.mul(c, ir.Constant(intp, 16))])
                builder.store(mask(0), builder.bitcast(ptr, _V16.as_pointer()), align=1)

            spread_chunks(builder, [builder.gep(w_array.data, [builder.mul(loop.index, n_words)])],
                          ir.Constant(intp, 0), chunks, n, store)
        return context.get_dummy_value()

    return types.none(w_bits, masks), codegen


def _unpack_chunks_python(w_bits, masks):
    k16 = masks.shape[1] // 16 * 16
    bits = (w_bits[:, :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    masks[:, :k16] = bits.reshape(w_bits.shape[0], -1)[:, :k16].astype(np.uint8) * np.uint8(255)


_panel = _mask_panel_python if jit_disabled() else _mask_panel
_unpack = _unpack_chunks_python if jit_disabled() else _unpack_chunks


@jit
def byte_masks(w_bits, k):
    """The byte masks (n, k) uint8 of ``w_bits``: 0xFF where the bit is 1, else 0."""
    n = w_bits.shape[0]
    masks = np.empty((n, k), np.uint8)
    _unpack(w_bits, masks)
    for j in range(n):  # the k % 16 last bytes
        for t in range(k // 16 * 16, k):
            masks[j, t] = np.uint8(255) * np.uint8((w_bits[j, t // 64] >> np.uint64(t % 64)) & np.uint64(1))
    return masks


@jit
def _uint8_mask_rows(x, masks, out):
    m = x.shape[0]
    rowsum = np.empty(m, np.int64)
    for i in range(m):
        rowsum[i] = row_total(x[i])
    m4, m2 = m // 4 * 4, m // 2 * 2
    for i in range(0, m4, 4):  # 4 x 4 blocks: 8 loads per 16 pairs of rows
        _panel(x, i, masks, rowsum, out, 4)
    for i in range(m4, m2, 2):
        _panel(x, i, masks, rowsum, out, 2)
    for i in range(m2, m):
        _panel(x, i, masks, rowsum, out, 1)


@jit
def sign_matmul_uint8_masks(x, w_bits, out):
    """``out = x @ sign(W)`` exactly (int32) by byte masks of ``W`` (module docstring)."""
    k = x.shape[1]
    if not padding_is_zero(w_bits, k):
        return False
    _uint8_mask_rows(_c_order(x), byte_masks(w_bits, k), out)
    return True
