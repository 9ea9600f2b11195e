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
4 rows of ``w`` share each load of ``x`` (the spreads and sums: ``_neon_ir``). The ``k % 16``
last elements are summed one by one.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled
from ..pack import padding_is_zero
from ._neon_ir import accumulator, row_block, row_operands, spread_chunks
from .portable import _c_order

__all__ = ["mask_sums4", "mask_sums1", "row_total", "sign_matmul_uint8_rows", "CHUNKS_PER_BLOCK"]

#: 16-byte chunks summed in uint16 lanes before a reduction (2 * 255 a chunk a lane);
#: a multiple of 8 (blocks start on a 128-bit piece of ``w``).
CHUNKS_PER_BLOCK = 128
_V16 = ir.VectorType(ir.IntType(8), 16)


@intrinsic
def _mask_sums_block(typingctx, x, w, j, c0, c1, rows):
    """``sum_t x[t] * bit_t(w_{j+r})`` over the 16-byte chunks ``c0 <= c < c1`` of ``x``
    (``c0 % 8 == 0``, ``c1 - c0 <= CHUNKS_PER_BLOCK``): a ``rows``-tuple of int64."""
    n_rows = row_block(x, types.uint8, w, rows)
    if n_rows is None:
        return None
    result = types.UniTuple(types.int64, n_rows)

    def codegen(context, builder, signature, args):
        x_array, w_array, ints = row_operands(context, builder, signature, args)
        j_value, c0_value, c1_value = ints[2:5]
        intp = context.get_value_type(types.intp)
        n_rows_w, n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)
        w_bases = [builder.gep(w_array.data, [builder.mul(builder.add(j_value, ir.Constant(intp, r)), n_words)])
                   for r in range(n_rows)]
        umin = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16, _V16]), "llvm.umin.v16i8")
        # umin(x, 0 or 0xFF) is the and with the mask, which LLVM keeps as cmtst + umin (where an and
        # became and + cmeq + bic)
        zero, accumulate, reduce = accumulator(builder, lambda xv, mask: builder.call(umin, [xv, mask]))
        accs = [cgutils.alloca_once_value(builder, zero) for _ in range(n_rows)]

        def body(c, mask):
            ptr = builder.bitcast(builder.gep(x_array.data, [builder.mul(c, ir.Constant(intp, 16))]), _V16.as_pointer())
            xv = builder.load(ptr, align=1)
            for r, acc in enumerate(accs):
                builder.store(accumulate(builder.load(acc), xv, mask(r)), acc)

        spread_chunks(builder, w_bases, c0_value, c1_value, n_rows_w, body)
        return context.make_tuple(builder, result, [reduce(builder.load(acc)) for acc in accs])

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
