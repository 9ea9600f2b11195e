"""The exact int32 ``x @ sign(W)`` for uint8 rows by int16 table lookup
(AVX-512BW ``vpermw``), the integer twin of :mod:`fastbin.kernels.sign_product.avx512`.

Per group of 4 inputs the 16 signed sums ``±x0 ±x1 ±x2 ±x3`` of a row are
int16 (``|sum| <= 4 * 255 = 1020``), one table of 32 int16 lanes with entry ``e``
in lane ``2e`` (where ``pmaddubsw`` and one shift-add leave it, see
``_tables16_group_intrinsic``), and each output's 4 weight bits of the group
(a nibble, stored doubled as one uint16 per output) pick its sum with one
``vpermw`` lane. A 32-lane int16 permute serves 32 outputs, where the
float32 table of ``avx512`` serves 16: one permute and one add per 4
inputs and 32 outputs, against 8 FMAs for sgemm on 16-lane floats.

Exact: the int16 accumulators add at most ``FLUSH = 32`` groups
(``|partial| <= 32 * 1020 = 32640 < 2**15``) before they are widened into
int32 accumulators; the int32 total is the exact ``sum_t x[t] * sign(W)[t, j]``
(``|total| <= 255 * k``, which ``fastbin.ops`` keeps below ``2**31``).

This module holds the int16 pieces: ``_tables16_group`` (one group's table) and
``_lut16_block`` (ROWS rows x 64 outputs over the groups of a pass). The index
form (``index_words``), the passes over rows and groups and the public kernels
(``lut16_product``, ``sign_matmul_lut16`` and their threaded twins) are
``fastbin.kernels.sign_product.avx512``'s, shared with the float32 tables.

Available where ``fastbin._config.INT16_LUT`` (x86-64 with AVX-512BW, as Numba's
target says): ``llvm.x86.avx512.permvar.hi.512`` exists nowhere else, so nothing
calls it elsewhere (plain-Python twins serve ``NUMBA_DISABLE_JIT=1``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit_disabled
from ..intrinsics import intp_args

__all__ = ["FLUSH", "TABLE"]

#: outputs per block (two 32-lane int16 vectors)
BLOCK = 64
#: rows per block (each index vector serves ROWS rows)
ROWS = 4
#: groups added in int16 before widening to int32: 32 * 4 * 255 = 32640 < 2**15
FLUSH = 32
#: int16 lanes per group's table: entry ``e`` in lane ``2e`` (the low half of
#: 32-bit lane ``e``, where the table builder leaves it), so the indices are
#: ``2 * nibble`` and the odd lanes are never picked
TABLE = 32


def _table_sign(q, e):
    """-1 where bit ``q`` of table entry ``e`` is set (bit 1 means -1), else 1."""
    return -1 if (e >> q) & 1 else 1


# ---------------------------------------------------------------------------
# Tables: the 16 sums of a group of 4 uint8 inputs, in the even int16 lanes
# ---------------------------------------------------------------------------
def _tables16_group_python(row, t, tab, base):
    for e in range(16):
        tab[base + 2 * e] = sum(_table_sign(q, e) * int(row[t + q]) for q in range(4))
        tab[base + 2 * e + 1] = 0


@intrinsic
def _tables16_group_intrinsic(typingctx, row, t, tab, base):
    """``tab[base + 2e] = ±row[t] ±row[t+1] ±row[t+2] ±row[t+3]`` (int16, the signs of
    ``_table_sign``) for the 16 entries ``e``, without byte broadcasts (a shuffle-port
    op each): the 4 bytes are loaded as one 32-bit lane broadcast to 16 lanes, one
    ``pmaddubsw`` against constant ±1 bytes gives per lane the int16 pair
    ``(±x0 ±x1, ±x2 ±x3)``, and ``v + (v >> 16)`` adds the pair into the lane's low
    half (mod 2**16, exact: ``|sum| <= 1020``). The odd int16 lanes get leftovers.
    ``row`` uint8 (at least ``t + 4`` long), ``tab`` int16, both 1-D C."""
    ok = (isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C" and row.dtype == types.uint8
          and isinstance(tab, types.Array) and tab.ndim == 1 and tab.layout == "C" and tab.dtype == types.int16
          and isinstance(t, types.Integer) and isinstance(base, types.Integer))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        row_v, t_v, tab_v, base_v = intp_args(context, builder, signature, args)
        row_t, _, tab_t, _ = signature.args
        row_a = context.make_array(row_t)(context, builder, row_v)
        tab_a = context.make_array(tab_t)(context, builder, tab_v)
        i32 = ir.IntType(32)
        i32x16 = ir.VectorType(i32, 16)
        i8x64 = ir.VectorType(ir.IntType(8), 64)
        i16x32 = ir.VectorType(ir.IntType(16), 32)
        maddubs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i16x32, [i8x64, i8x64]),
                                                 "llvm.x86.avx512.pmaddubs.w.512")
        four = builder.load(builder.bitcast(builder.gep(row_a.data, [t_v]), i32.as_pointer()), align=1)
        one = builder.insert_element(ir.Constant(i32x16, None), four, ir.Constant(i32, 0))
        broadcast = builder.shuffle_vector(one, ir.Constant(i32x16, None), ir.Constant(i32x16, [0] * 16))
        signs = ir.Constant(i8x64, [_table_sign(q, e) for e in range(16) for q in range(4)])
        pairs = builder.bitcast(builder.call(maddubs, [builder.bitcast(broadcast, i8x64), signs]), i32x16)
        total = builder.add(pairs, builder.lshr(pairs, ir.Constant(i32x16, [16] * 16)))
        out_ptr = builder.bitcast(builder.gep(tab_a.data, [base_v]), i32x16.as_pointer())
        builder.store(total, out_ptr, align=2)
        return context.get_dummy_value()

    return types.void(row, t, tab, base), codegen


_tables16_group = _tables16_group_python if jit_disabled() else _tables16_group_intrinsic


# ---------------------------------------------------------------------------
# The lookup block: ROWS rows x 64 outputs over the groups of a pass
# ---------------------------------------------------------------------------
def _lut16_block_python(tabs, idx, j, acc):
    k4 = idx.shape[0]
    for r in range(tabs.shape[0]):
        table = tabs[r, : k4 * TABLE].reshape(k4, TABLE).astype(np.int64)  # entry e in lane 2e
        total = np.zeros(BLOCK, np.int64)
        for g in range(k4):
            total += table[g, idx[g, j : j + BLOCK]]
        acc[r, :] = total


@intrinsic
def _lut16_block_intrinsic(typingctx, tabs, idx, j, acc):
    """``acc[r, c] = sum_g tabs[r, 16 g + idx[g, j + c]]`` (int32) for the ROWS rows
    and 64 outputs ``c``. Per group: two 32-lane index loads, then per row one
    32-lane table load (one group's), two ``vpermw`` and two int16 adds into register
    accumulators, widened into int32 accumulators every FLUSH groups."""
    ok = (isinstance(tabs, types.Array) and tabs.ndim == 2 and tabs.layout == "C" and tabs.dtype == types.int16
          and isinstance(idx, types.Array) and idx.ndim == 2 and idx.layout == "C" and idx.dtype == types.uint16
          and isinstance(acc, types.Array) and acc.ndim == 2 and acc.layout == "C" and acc.dtype == types.int32
          and isinstance(j, types.Integer))
    if not ok:
        return None
    vecs = BLOCK // 32

    def codegen(context, builder, signature, args):
        tabs_v, idx_v, j_v, acc_v = intp_args(context, builder, signature, args)
        tabs_t, idx_t, _, acc_t = signature.args
        tabs_a = context.make_array(tabs_t)(context, builder, tabs_v)
        idx_a = context.make_array(idx_t)(context, builder, idx_v)
        acc_a = context.make_array(acc_t)(context, builder, acc_v)
        intp = context.get_value_type(types.intp)
        i16x32 = ir.VectorType(ir.IntType(16), 32)
        i32x32 = ir.VectorType(ir.IntType(32), 32)
        permw = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i16x32, [i16x32, i16x32]),
                                               "llvm.x86.avx512.permvar.hi.512")
        k4, n_pad = cgutils.unpack_tuple(builder, idx_a.shape, 2)
        tab_len = cgutils.unpack_tuple(builder, tabs_a.shape, 2)[1]
        acc_len = cgutils.unpack_tuple(builder, acc_a.shape, 2)[1]
        wide = [[cgutils.alloca_once_value(builder, ir.Constant(i32x32, None)) for _ in range(vecs)]
                for _ in range(ROWS)]
        narrow = [[cgutils.alloca_once_value(builder, ir.Constant(i16x32, None)) for _ in range(vecs)]
                  for _ in range(ROWS)]
        flush = ir.Constant(intp, FLUSH)
        runs = builder.udiv(builder.add(k4, ir.Constant(intp, FLUSH - 1)), flush)
        with cgutils.for_range(builder, runs) as run_loop:
            start = builder.mul(run_loop.index, flush)
            stop = builder.select(builder.icmp_signed("<", builder.add(start, flush), k4),
                                  builder.add(start, flush), k4)
            for r in range(ROWS):
                for c in range(vecs):
                    builder.store(ir.Constant(i16x32, None), narrow[r][c])
            with cgutils.for_range_slice(builder, start, stop, ir.Constant(intp, 1)) as (g, _):
                row = builder.gep(idx_a.data, [builder.add(builder.mul(g, n_pad), j_v)])
                index = []
                for c in range(vecs):
                    i_ptr = builder.bitcast(builder.gep(row, [ir.Constant(intp, 32 * c)]), i16x32.as_pointer())
                    index.append(builder.load(i_ptr, align=2))
                g16 = builder.mul(g, ir.Constant(intp, TABLE))
                for r in range(ROWS):
                    at = builder.add(builder.mul(ir.Constant(intp, r), tab_len), g16)
                    t_ptr = builder.bitcast(builder.gep(tabs_a.data, [at]), i16x32.as_pointer())
                    table = builder.load(t_ptr, align=2)
                    for c in range(vecs):
                        picked = builder.call(permw, [table, index[c]])
                        builder.store(builder.add(builder.load(narrow[r][c]), picked), narrow[r][c])
            for r in range(ROWS):
                for c in range(vecs):
                    widened = builder.sext(builder.load(narrow[r][c]), i32x32)
                    builder.store(builder.add(builder.load(wide[r][c]), widened), wide[r][c])
        for r in range(ROWS):
            for c in range(vecs):
                at = builder.add(builder.mul(ir.Constant(intp, r), acc_len), ir.Constant(intp, 32 * c))
                out_ptr = builder.bitcast(builder.gep(acc_a.data, [at]), i32x32.as_pointer())
                builder.store(builder.load(wide[r][c]), out_ptr, align=4)
        return context.get_dummy_value()

    return types.void(tabs, idx, j, acc), codegen


_lut16_block = _lut16_block_python if jit_disabled() else _lut16_block_intrinsic
