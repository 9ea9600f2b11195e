"""One uint8 row times packed signs on AVX2 (no vector popcount): the first layer of the
runtime's fused batch-1 pass (``fastbin.runtime._fused``) where ``_config.FUSED_BYTE_TABLES``;
the sibling of ``plane_block`` (bit planes and ``vpopcntq``).

The row's pixels become 16-entry byte tables, W's rows are looked up in them by their
nibbles (``vpshufb``, as ``binary_product.avx2`` does for binary rows):

* a *step* is one byte of W's rows (8 inputs: the low nibble the group ``8s .. 8s+3``,
  the high nibble ``8s+4 .. 8s+7``); W's form is ``binary_product.avx2``'s panels
  (``panels_of``: ``panels[g, s, 0:32]`` the low nibbles of byte ``s`` of rows ``32 g ..
  32 g + 31``, ``[32:64]`` the high ones), made once per model;
* per row of ``x`` (``row_tables``): each pixel split ``x = xl + 16 xh`` (two nibbles), and
  per group of 4 pixels the subset sums of their ``xl`` and of their ``xh`` (16 entries each,
  at most 60: bytes): ``tabs[s, 0:16]`` / ``[16:32]`` the ``xl`` tables of the low / high
  group of step ``s``, ``[32:48]`` / ``[48:64]`` the ``xh`` ones;
* the register block (``table_dots``): ``ROWS`` panels (32 outputs each) over every step.
  Per step and panel 4 ``vpshufb`` (2 groups x ``xl``/``xh``) and 4 byte adds give
  ``Sl``/``Sh``, the ``xl``/``xh`` sums under the -1 bits of 32 outputs; every ``PAIR``
  steps the two byte sums are interleaved (``vpunpck[lh]bw``) and one ``vpmaddubsw`` by
  ``(1, 16)`` makes ``Sl + 16 Sh`` in uint16 lanes (the pixel sum: the widening and the
  recombination in one instruction); every ``RUN`` steps the uint16 lanes are added into
  ``dots`` in int32; at the end ``dots = total - 2 S`` (``x @ sign(W)``, exact).

Exact: a byte sum gains at most ``2 * 60`` per step, ``PAIR = 2`` steps: 240 < 256; a
``vpmaddubsw`` lane is at most ``240 + 16 * 240 = 4080`` (no saturation); a uint16 lane
gains at most ``8 * 255 = 2040`` per step, ``RUN = 32`` steps: 65280 < 2**16. Padding: the
inputs past ``k`` are zero in the tables, the padding bits of W zero in the panels.
Per step and 64 outputs: 8 ``vpshufb`` and one unpack (shuffle ports), ~22 vector ops in
all, where the bit planes need 8 ANDs and 8 byte-lookup popcounts (LLVM's ``ctpop``
lowering: ~6 ops each) per output and word.

* ``panels_of(w_bits) -> panels`` uint8 (groups, 8 n_words, 64), groups a multiple of ``ROWS``
  (rows past n zero);
* ``row_tables(row, tabs) -> total`` (int64, the row's pixel sum): ``row`` uint8 (k,)
  C-contiguous, ``tabs`` uint8 (n_steps, 64) C-contiguous, ``8 n_steps >= k``;
* ``table_dots(panels, g, tabs, total, dots)``: ``dots[0, 32 g + i] = total - 2 sum_t x_t
  [bit t of row 32 g + i]`` for ``i < 32 ROWS`` (int32; ``dots`` (1, >= 32 (g + ROWS))
  C-contiguous); ``panels.shape[1]`` steps, an even number (``8 n_words``).

Runs where ``fastbin._config.FUSED_BYTE_TABLES`` (x86-64 with AVX2: ``llvm.x86.avx2.pshuf.b``
and ``pmadd.ub.sw`` exist nowhere else); plain-Python twins serve ``NUMBA_DISABLE_JIT=1``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit_disabled
from ..binary_product.avx2 import PANEL
from ..binary_product.count_block_avx2 import UNPACK_HI, UNPACK_LO, emit_natural_order
from ..binary_product.count_block_avx2 import panels_of as _panels_of
from ..intrinsics import avx2_pshufb, intp_args

__all__ = ["ROWS", "PAIR", "RUN", "panels_of", "row_tables", "table_dots"]

#: panels (32 outputs each) per register block: 2 byte sums and 2 uint16 sums per panel, the 4
#: tables of a step and the 2 nibble vectors of a panel in the 16 ymm registers
ROWS = 2
#: steps summed in byte lanes: 2 steps x 2 groups x 4 * 15 = 240 < 256
PAIR = 2
#: steps summed in uint16 lanes: 32 x 8 x 255 = 65280 < 2**16
RUN = 32

_I8 = ir.IntType(8)
_I8X8 = ir.VectorType(_I8, 8)
_I8X16 = ir.VectorType(_I8, 16)
_I8X32 = ir.VectorType(_I8, 32)
_I16X16 = ir.VectorType(ir.IntType(16), 16)
_I32X8 = ir.VectorType(ir.IntType(32), 8)
_I32X16 = ir.VectorType(ir.IntType(32), 16)


def _mask(values):
    return ir.Constant(ir.VectorType(ir.IntType(32), len(values)), list(values))


#: a 16-byte table broadcast to both lanes (``vbroadcasti128``)
_BROADCAST = _mask(list(range(16)) * 2)
#: entry e of a table holds input q of its group where bit q of e is set
_MEMBER = [ir.Constant(_I8X32, [0xFF if (e >> q) & 1 else 0 for e in range(16)] * 2) for q in range(4)]
#: ``Sl + 16 Sh`` of an interleaved (Sl, Sh) byte pair
_WEIGHTS = ir.Constant(_I8X32, [1, 16] * 16)


def panels_of(w_bits):
    """W's panels (``binary_product.count_block_avx2.panels_of``), groups a multiple of ``ROWS``."""
    return _panels_of(w_bits, ROWS)


# ---------------------------------------------------------------------------
# The tables of a row
# ---------------------------------------------------------------------------
def _row_tables_python(row, tabs):
    k = row.shape[0]
    total = 0
    for s in range(tabs.shape[0]):
        x = [int(row[8 * s + q]) if 8 * s + q < k else 0 for q in range(8)]
        total += sum(x)
        for half in range(2):
            for e in range(16):
                inside = [x[4 * half + q] for q in range(4) if (e >> q) & 1]
                tabs[s, 16 * half + e] = sum(v & 15 for v in inside)
                tabs[s, 32 + 16 * half + e] = sum(v >> 4 for v in inside)
    return np.int64(total)


@intrinsic
def _row_tables_intrinsic(typingctx, row, tabs):
    """Per step: the row's 8 bytes (a copy with zeros at the row's end), their nibbles, and
    per table 4 byte broadcasts (group ``2s`` in the low 128-bit lane, ``2s + 1`` in the high
    one), ANDed with the membership masks and added; one 32-byte store per 2 tables."""
    ok = (isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C" and row.dtype == types.uint8
          and isinstance(tabs, types.Array) and tabs.ndim == 2 and tabs.layout == "C" and tabs.dtype == types.uint8)
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        row_t, tabs_t = signature.args
        row_a = context.make_array(row_t)(context, builder, args[0])
        tabs_a = context.make_array(tabs_t)(context, builder, args[1])
        intp = context.get_value_type(types.intp)
        i64 = ir.IntType(64)

        def const(value):
            return ir.Constant(intp, value)

        k = cgutils.unpack_tuple(builder, row_a.shape, 1)[0]
        n_steps = cgutils.unpack_tuple(builder, tabs_a.shape, 2)[0]
        buf = cgutils.alloca_once(builder, _I8X8)
        sums = cgutils.alloca_once_value(builder, ir.Constant(_I32X8, None))
        with cgutils.for_range(builder, n_steps) as loop:
            start = builder.mul(loop.index, const(8))
            whole = builder.icmp_signed("<=", builder.add(start, const(8)), k)
            with builder.if_else(whole, likely=True) as (fast, edge):
                with fast:
                    ptr = builder.bitcast(builder.gep(row_a.data, [start]), _I8X8.as_pointer())
                    builder.store(builder.load(ptr, align=1), buf)
                with edge:  # the row's last bytes, zeros after
                    builder.store(ir.Constant(_I8X8, None), buf)
                    one = builder.bitcast(buf, _I8.as_pointer())
                    with cgutils.for_range_slice(builder, start, k, const(1)) as (b, _):
                        builder.store(builder.load(builder.gep(row_a.data, [b])),
                                      builder.gep(one, [builder.sub(b, start)]))
            x = builder.load(buf)
            builder.store(builder.add(builder.load(sums), builder.zext(x, _I32X8)), sums)
            low = builder.and_(x, ir.Constant(_I8X8, [15] * 8))
            high = builder.lshr(x, ir.Constant(_I8X8, [4] * 8))
            base = builder.gep(tabs_a.data, [builder.mul(loop.index, const(64))])
            for offset, nibbles in ((0, low), (32, high)):
                table = ir.Constant(_I8X32, None)
                for q in range(4):
                    spread = builder.shuffle_vector(nibbles, nibbles, _mask([q] * 16 + [4 + q] * 16))
                    table = builder.add(table, builder.and_(spread, _MEMBER[q]))
                ptr = builder.bitcast(builder.gep(base, [const(offset)]), _I8X32.as_pointer())
                builder.store(table, ptr, align=1)
        reduce_add = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), [_I32X8]),
                                                    "llvm.vector.reduce.add.v8i32")
        return builder.zext(builder.call(reduce_add, [builder.load(sums)]), i64)

    return types.int64(row, tabs), codegen


row_tables = _row_tables_python if jit_disabled() else _row_tables_intrinsic


# ---------------------------------------------------------------------------
# The register block
# ---------------------------------------------------------------------------
def _table_dots_python(panels, g, tabs, total, dots):
    n_steps = panels.shape[1]
    for r in range(ROWS):
        for i in range(PANEL):
            s_sum = 0
            for s in range(n_steps):
                lo, hi = int(panels[g + r, s, i]), int(panels[g + r, s, PANEL + i])
                s_sum += int(tabs[s, lo]) + int(tabs[s, 16 + hi]) + 16 * (int(tabs[s, 32 + lo]) + int(tabs[s, 48 + hi]))
            dots[0, PANEL * (g + r) + i] = int(total) - 2 * s_sum


@intrinsic
def _table_dots_intrinsic(typingctx, panels, g, tabs, total, dots):
    ok = (isinstance(panels, types.Array) and panels.ndim == 3 and panels.layout == "C"
          and panels.dtype == types.uint8 and isinstance(tabs, types.Array) and tabs.ndim == 2
          and tabs.layout == "C" and tabs.dtype == types.uint8 and isinstance(dots, types.Array)
          and dots.ndim == 2 and dots.layout == "C" and dots.dtype == types.int32
          and isinstance(g, types.Integer) and isinstance(total, types.Integer))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        panels_v, g_v, tabs_v, total_v, dots_v = intp_args(context, builder, signature, args)
        panels_t, _, tabs_t, _, dots_t = signature.args
        panels_a = context.make_array(panels_t)(context, builder, panels_v)
        tabs_a = context.make_array(tabs_t)(context, builder, tabs_v)
        dots_a = context.make_array(dots_t)(context, builder, dots_v)
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        maddubs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I16X16, [_I8X32, _I8X32]),
                                                 "llvm.x86.avx2.pmadd.ub.sw")

        def const(value):
            return ir.Constant(intp, value)

        n_steps = cgutils.unpack_tuple(builder, panels_a.shape, 3)[1]
        p_base = [builder.gep(panels_a.data, [builder.mul(builder.mul(builder.add(g_v, const(r)), n_steps),
                                                          const(2 * PANEL))]) for r in range(ROWS)]
        out = builder.bitcast(dots_a.data, i32.as_pointer())
        out = [builder.gep(out, [builder.mul(builder.add(g_v, const(r)), const(PANEL))]) for r in range(ROWS)]
        zero8 = ir.Constant(_I8X32, None)
        for r in range(ROWS):  # the int32 sums start at 0
            for half in range(2):
                ptr = builder.bitcast(builder.gep(out[r], [const(16 * half)]), _I32X16.as_pointer())
                builder.store(ir.Constant(_I32X16, None), ptr, align=4)
        wide = [[cgutils.alloca_once(builder, _I16X16) for _ in range(2)] for _ in range(ROWS)]

        def load(base, at, vec):
            return builder.load(builder.bitcast(builder.gep(base, [at]), vec.as_pointer()), align=1)

        with cgutils.for_range_slice(builder, const(0), n_steps, const(RUN)) as (run, _):
            stop = builder.add(run, const(RUN))
            stop = builder.select(builder.icmp_signed("<", stop, n_steps), stop, n_steps)
            for r in range(ROWS):
                for half in range(2):
                    builder.store(ir.Constant(_I16X16, None), wide[r][half])
            with cgutils.for_range_slice(builder, run, stop, const(PAIR)) as (s0, _):
                sl = [zero8] * ROWS
                sh = [zero8] * ROWS
                for step in range(PAIR):
                    s = builder.add(s0, const(step))
                    at = builder.mul(s, const(64))
                    tables = [load(tabs_a.data, builder.add(at, const(o)), _I8X16) for o in (0, 16, 32, 48)]
                    tl0, tl1, th0, th1 = (builder.shuffle_vector(t, t, _BROADCAST) for t in tables)
                    for r in range(ROWS):
                        low = load(p_base[r], at, _I8X32)
                        high = load(p_base[r], builder.add(at, const(PANEL)), _I8X32)
                        sl[r] = builder.add(sl[r], builder.add(avx2_pshufb(builder, tl0, low),
                                                               avx2_pshufb(builder, tl1, high)))
                        sh[r] = builder.add(sh[r], builder.add(avx2_pshufb(builder, th0, low),
                                                               avx2_pshufb(builder, th1, high)))
                for r in range(ROWS):
                    for half, unpack in enumerate((UNPACK_LO, UNPACK_HI)):
                        pairs = builder.shuffle_vector(sl[r], sh[r], unpack)
                        sums = builder.call(maddubs, [pairs, _WEIGHTS])
                        builder.store(builder.add(builder.load(wide[r][half]), sums), wide[r][half])
            for r in range(ROWS):  # uint16 -> int32, added into dots in the outputs' order
                lanes = [builder.zext(builder.load(wide[r][half]), _I32X16) for half in range(2)]
                for half, value in enumerate(emit_natural_order(builder, *lanes)):
                    ptr = builder.bitcast(builder.gep(out[r], [const(16 * half)]), _I32X16.as_pointer())
                    builder.store(builder.add(builder.load(ptr, align=4), value), ptr, align=4)
        total32 = builder.trunc(total_v, i32) if total_v.type.width > 32 else total_v
        totals = builder.shuffle_vector(builder.insert_element(ir.Constant(_I32X16, ir.Undefined), total32,
                                                               ir.Constant(i32, 0)),
                                        ir.Constant(_I32X16, ir.Undefined), _mask([0] * 16))
        for r in range(ROWS):
            for half in range(2):
                ptr = builder.bitcast(builder.gep(out[r], [const(16 * half)]), _I32X16.as_pointer())
                value = builder.load(ptr, align=4)
                builder.store(builder.sub(totals, builder.add(value, value)), ptr, align=4)
        return context.get_dummy_value()

    return types.void(panels, g, tabs, total, dots), codegen


table_dots = _table_dots_python if jit_disabled() else _table_dots_intrinsic
