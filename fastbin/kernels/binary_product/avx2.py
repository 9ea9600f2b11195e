"""``k - 2 * popcount(a ^ w)`` on x86-64 with AVX2 but no vector popcount (Zen 2/3,
Haswell to Alder Lake): one operand's nibbles looked up in 16-entry tables made from the
other's (``vpshufb``), so the word loop holds no xor, no nibble split and no popcount.

``w`` is the *panel* side P (p rows), ``a`` the *table* side T (q rows), except for
narrow ``w`` (fewer than ``TRANSPOSE_BELOW`` rows) and more rows of ``a``; a byte of k is a
*step*:

* P in panels of ``PANEL = 32`` rows, transposed to bytes and split into nibbles once per
  call (``panel_nibbles``): ``panels[g, s, 0:32]`` are the low nibbles of byte ``s`` (bits
  8s .. 8s+7) of rows ``32 g .. 32 g + 31``, ``panels[g, s, 32:64]`` the high nibbles;
* T's rows as tables (``tables_of``), a pass of steps at a time: ``tables[c, s, x] =
  popcount(x ^ (byte s & 15))`` and ``tables[c, s, 16 + x] = popcount(x ^ (byte s >> 4))``;
* the register block (``_block``): ``ROWS`` panels x ``COLS`` table rows. Per step and
  (panel, table row): ``popcount(P_byte ^ T_byte) = T_lo[P_lo] + T_hi[P_hi]`` for 32 rows
  at once, two ``vpshufb`` and two byte adds (256 bit products, 4 vector ops, where a
  byte-popcount of xor'd words takes 8: xor, and, shift, and, 2 ``vpshufb``, 2 adds). The
  tables are 128-bit broadcast loads shared by ``ROWS`` panels, the panel vectors shared by
  ``COLS`` table rows.

Exact: a step adds at most 4 + 4 to a byte lane; the bytes are widened into int16 lanes
(unpacked against zero) every ``CHUNK = 31`` steps (248 < 256); a pass holds at most
``MAX_PASS = 8191`` steps (8 * 8191 < 2**16) and adds its counts into ``out`` (int32); the
last pass writes ``k - 2 * count``. Padding bits are zero on both sides and count nothing.

* ``binary_matmul_nibbles(a_bits, w_bits, n_bits, out) -> bool`` and
  ``binary_matmul_nibbles_parallel``: ``binary_product.blocked.binary_matmul_kernel``'s
  contract (``a_bits`` (m, n_words), ``w_bits`` (n, n_words) uint64 C-contiguous, ``out``
  int32 (m, n) C-contiguous; False, writing nothing, for non-zero padding bits).

Runs where ``fastbin._config.BYTE_LUT16`` (x86-64 with AVX2, as Numba's target says):
``llvm.x86.avx2.pshuf.b`` (``intrinsics.avx2_pshufb``) exists nowhere else, so nothing calls
it elsewhere (plain-Python twins serve ``NUMBA_DISABLE_JIT=1``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled, jit_parallel
from ..intrinsics import avx2_pshufb, intp_args
from ..pack import padding_is_zero

__all__ = ["PANEL", "ROWS", "COLS", "CHUNK", "MAX_PASS", "PASS_STEPS", "TRANSPOSE_BELOW", "panel_nibbles", "tables_of",
           "binary_matmul_nibbles", "binary_matmul_nibbles_parallel"]

#: rows of P per panel (a ymm of bytes)
PANEL = 32
#: panels and table rows per register block: 8 byte accumulators, 4 panel vectors and 2
#: tables in the 16 ymm registers
ROWS = 2
COLS = 4
#: steps summed in byte lanes: 31 * (4 + 4) = 248 < 256
CHUNK = 31
#: steps summed in int16 lanes: 8191 * 8 = 65528 < 2**16
MAX_PASS = 8191
#: steps per pass (at most MAX_PASS): 4 rows' tables (16 KiB) stay in L1
PASS_STEPS = 128
#: bytes of tables made per pass (kept in L2 while the panels pass over them)
TABLE_BYTES = 64 * 1024
#: bytes of panels per block of panels (L2)
PANEL_BYTES = 256 * 1024
#: ``a`` is the panel side only where ``w`` has fewer rows than this (and ``a`` more): ``w``'s
#: panels then keep the output rows contiguous, ``a``'s tables cost 32 bytes per byte of ``a``
#: (at 10000 x 784 x 512 the element stores of ``a``'s panels took 80 ms, ``w``'s 7 ms)
TRANSPOSE_BELOW = PANEL * ROWS

_I8 = ir.IntType(8)
_I8X16 = ir.VectorType(_I8, 16)
_I8X32 = ir.VectorType(_I8, 32)


def _mask(values):
    return ir.Constant(ir.VectorType(ir.IntType(32), len(values)), list(values))


def _splat8(value, lanes=32):
    return ir.Constant(ir.VectorType(_I8, lanes), [value] * lanes)


#: ``vpunpcklbw`` / ``vpunpckhbw`` (per 128-bit lane: bytes 0-7 / 8-15 of a and b interleaved)
_UNPACK_LO = _mask([lane + j + 32 * side for lane in (0, 16) for j in range(8) for side in (0, 1)])
_UNPACK_HI = _mask([lane + 8 + j + 32 * side for lane in (0, 16) for j in range(8) for side in (0, 1)])
#: a 16-byte table broadcast to both lanes (``vbroadcasti128``)
_BROADCAST = _mask(list(range(16)) * 2)
#: ``x`` for ``x`` in 0..15 in each lane
_IOTA = ir.Constant(_I8X32, list(range(16)) * 2)
#: popcount of 0..15 in each lane
_POP4 = ir.Constant(_I8X32, [bin(x).count("1") for x in range(16)] * 2)


def _nibbles(builder, x):
    """``(x & 15, x >> 4)`` of a ``<32 x i8>``."""
    low = builder.and_(x, _splat8(15))
    return low, builder.and_(builder.lshr(x, _splat8(4)), _splat8(15))


# ---------------------------------------------------------------------------
# P: panels of 32 rows, bytes transposed, nibbles split
# ---------------------------------------------------------------------------
def _panel_nibbles_python(src, r0, t, dst, g):
    p, n_words = src.shape
    for c in range(16):
        s = 8 * t + c
        if s >= 8 * n_words:
            break
        for r in range(PANEL):
            row = r0 + r
            byte = (int(src[row, s // 8]) >> (8 * (s % 8))) & 0xFF if row < p else 0
            dst[g, s, r] = byte & 15
            dst[g, s, PANEL + r] = byte >> 4


def _transpose_lanes(builder, vectors, emit):
    """16 ``<32 x i8>`` -> their per-lane 16 x 16 byte transposes, ``emit(c, column)`` called
    for each result as soon as it is made: four rounds of byte unpacks of vectors ``i`` and
    ``i + 8`` into ``2 i`` and ``2 i + 1``, each a rotation of the (vector, byte) index bits by
    one, so four swap them. Emitted depth first (each pair of a round when its result is
    needed), so that fewer of the 16 vectors are live at once (16 ymm registers)."""
    made = {(0, i): v for i, v in enumerate(vectors)}

    def get(level, index):
        if (level, index) not in made:
            i = index // 2
            a, b = get(level - 1, i), get(level - 1, i + 8)
            made[(level, 2 * i)] = builder.shuffle_vector(a, b, _UNPACK_LO)
            made[(level, 2 * i + 1)] = builder.shuffle_vector(a, b, _UNPACK_HI)
        return made[(level, index)]

    for c in range(16):
        emit(c, get(4, c))


@intrinsic
def _panel_nibbles_intrinsic(typingctx, src, r0, t, dst, g):
    """Words ``t, t + 1`` of rows ``r0 .. r0 + 31`` of ``src`` (uint64 (p, n_words); rows
    past p and word n_words read as 0) into steps ``8 t .. 8 t + 15`` (those below
    ``8 n_words``) of panel ``g`` of ``dst`` (uint8 (groups, 8 n_words, 64)): 16 vectors of
    rows ``r`` and ``r + 16``, a per-lane byte transpose (64 unpacks), the nibble split.
    Interior blocks load 16 bytes a row; the edges (last rows, odd last word) one word at a
    time with zeros."""
    ok = (isinstance(src, types.Array) and src.ndim == 2 and src.layout == "C" and src.dtype == types.uint64
          and isinstance(dst, types.Array) and dst.ndim == 3 and dst.layout == "C" and dst.dtype == types.uint8)
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        src_v, r0_v, t_v, dst_v, g_v = intp_args(context, builder, signature, args)
        src_t, _, _, dst_t, _ = signature.args
        src_a = context.make_array(src_t)(context, builder, src_v)
        dst_a = context.make_array(dst_t)(context, builder, dst_v)
        intp = context.get_value_type(types.intp)
        i64 = ir.IntType(64)

        def const(value):
            return ir.Constant(intp, value)

        p, n_words = cgutils.unpack_tuple(builder, src_a.shape, 2)
        n_steps = cgutils.unpack_tuple(builder, dst_a.shape, 3)[1]
        src_bytes = builder.bitcast(src_a.data, _I8.as_pointer())
        src_words = builder.bitcast(src_a.data, i64.as_pointer())
        row_bytes = builder.mul(n_words, const(8))
        two = builder.add(t_v, const(1))
        interior = builder.and_(builder.icmp_signed("<=", builder.add(r0_v, const(PANEL)), p),
                                builder.icmp_signed("<", two, n_words))
        rows_ptr = cgutils.alloca_once(builder, _I8X16, size=PANEL)

        with builder.if_else(interior, likely=True) as (fast, edge):
            with fast:  # one address, then a row's stride at a time (no multiply per row)
                ptr = builder.gep(src_bytes, [builder.add(builder.mul(r0_v, row_bytes), builder.mul(t_v, const(8)))])
                for r in range(PANEL):
                    builder.store(builder.load(builder.bitcast(ptr, _I8X16.as_pointer()), align=1),
                                  builder.gep(rows_ptr, [const(r)]))
                    ptr = builder.gep(ptr, [row_bytes])
            with edge:
                has_two = builder.icmp_signed("<", two, n_words)
                two_c = builder.select(has_two, two, t_v)
                zero = ir.Constant(i64, 0)
                for r in range(PANEL):
                    row = builder.add(r0_v, const(r))
                    valid = builder.icmp_signed("<", row, p)
                    row_c = builder.select(valid, row, const(0))
                    base = builder.mul(row_c, n_words)
                    w0 = builder.load(builder.gep(src_words, [builder.add(base, t_v)]))
                    w1 = builder.load(builder.gep(src_words, [builder.add(base, two_c)]))
                    w0 = builder.select(valid, w0, zero)
                    w1 = builder.select(builder.and_(valid, has_two), w1, zero)
                    pair = ir.Constant(ir.VectorType(i64, 2), None)
                    pair = builder.insert_element(pair, w0, ir.Constant(ir.IntType(32), 0))
                    pair = builder.insert_element(pair, w1, ir.Constant(ir.IntType(32), 1))
                    builder.store(builder.bitcast(pair, _I8X16), builder.gep(rows_ptr, [const(r)]))
        rows = [builder.load(builder.gep(rows_ptr, [const(r)])) for r in range(PANEL)]
        halves = PANEL // 2
        vectors = [builder.shuffle_vector(rows[r], rows[r + halves], _mask(range(32))) for r in range(halves)]
        dst_bytes = builder.bitcast(dst_a.data, _I8.as_pointer())
        first = builder.mul(t_v, const(8))
        # the last word alone (odd n_words): only its 8 steps are stored
        limit = builder.select(builder.icmp_signed("<", two, n_words), const(16), const(8))

        dst_base = builder.gep(dst_bytes, [builder.mul(builder.add(builder.mul(g_v, n_steps), first),
                                                       const(2 * PANEL))])

        def emit(c, column):
            low, high = _nibbles(builder, column)
            with builder.if_then(builder.icmp_signed("<", const(c), limit), likely=True):
                ptr = builder.gep(dst_base, [const(2 * PANEL * c)])
                builder.store(low, builder.bitcast(ptr, _I8X32.as_pointer()), align=1)
                ptr = builder.gep(dst_base, [const(2 * PANEL * c + PANEL)])
                builder.store(high, builder.bitcast(ptr, _I8X32.as_pointer()), align=1)

        _transpose_lanes(builder, vectors, emit)
        return context.get_dummy_value()

    return types.void(src, r0, t, dst, g), codegen


panel_nibbles = _panel_nibbles_python if jit_disabled() else _panel_nibbles_intrinsic


# ---------------------------------------------------------------------------
# T: 16-entry tables of each nibble
# ---------------------------------------------------------------------------
def _tables_of_python(t_bits, row, s0, s1, tables, c):
    for s in range(s0, s1):
        byte = (int(t_bits[row, s // 8]) >> (8 * (s % 8))) & 0xFF
        for x in range(16):
            tables[c, s - s0, x] = bin(x ^ (byte & 15)).count("1")
            tables[c, s - s0, 16 + x] = bin(x ^ (byte >> 4)).count("1")


@intrinsic
def _tables_of_intrinsic(typingctx, t_bits, row, s0, s1, tables, c):
    """``tables[c, s - s0]`` for ``s0 <= s < s1`` from byte ``s`` of row ``row`` of ``t_bits``
    (uint64 (q, n_words)) into ``tables`` (uint8 (rows, steps, 32)). 16 bytes at a time:
    their low and high nibbles in the two lanes of a ymm, then per step a ``vpshufb``
    broadcast of the step's nibbles, an xor with 0..15 and a ``vpshufb`` in the popcounts of
    0..15 (3 vector ops and a store for the two tables of a step)."""
    ok = (isinstance(t_bits, types.Array) and t_bits.ndim == 2 and t_bits.layout == "C"
          and t_bits.dtype == types.uint64 and isinstance(tables, types.Array) and tables.ndim == 3
          and tables.layout == "C" and tables.dtype == types.uint8)
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        t_v, row_v, s0_v, s1_v, tab_v, c_v = intp_args(context, builder, signature, args)
        t_t, _, _, _, tab_t, _ = signature.args
        t_a = context.make_array(t_t)(context, builder, t_v)
        tab_a = context.make_array(tab_t)(context, builder, tab_v)
        intp = context.get_value_type(types.intp)

        def const(value):
            return ir.Constant(intp, value)

        n_words = cgutils.unpack_tuple(builder, t_a.shape, 2)[1]
        tab_steps = cgutils.unpack_tuple(builder, tab_a.shape, 3)[1]
        row_bytes = builder.mul(n_words, const(8))
        src = builder.gep(builder.bitcast(t_a.data, _I8.as_pointer()), [builder.mul(row_v, row_bytes)])
        dst = builder.gep(builder.bitcast(tab_a.data, _I8.as_pointer()), [builder.mul(builder.mul(c_v, tab_steps),
                                                                                       const(32))])
        bytes_ptr = cgutils.alloca_once(builder, _I8X16)
        with cgutils.for_range_slice(builder, s0_v, s1_v, const(16)) as (s, _):
            whole = builder.icmp_signed("<=", builder.add(s, const(16)), row_bytes)
            with builder.if_else(whole, likely=True) as (fast, edge):
                with fast:
                    ptr = builder.bitcast(builder.gep(src, [s]), _I8X16.as_pointer())
                    builder.store(builder.load(ptr, align=1), bytes_ptr)
                with edge:  # the row's last bytes: the rest zero
                    builder.store(ir.Constant(_I8X16, None), bytes_ptr)
                    one = builder.bitcast(bytes_ptr, _I8.as_pointer())
                    with cgutils.for_range_slice(builder, s, row_bytes, const(1)) as (b, _):
                        builder.store(builder.load(builder.gep(src, [b])), builder.gep(one, [builder.sub(b, s)]))
            raw = builder.load(bytes_ptr)
            both = builder.shuffle_vector(raw, raw, _mask(range(32)))
            low, high = _nibbles(builder, both)
            # lane 0: the low nibbles, lane 1: the high ones
            halves = builder.shuffle_vector(low, high, _mask(list(range(16)) + list(range(48, 64))))
            base = builder.gep(dst, [builder.mul(builder.sub(s, s0_v), const(32))])

            def table(e):
                spread = avx2_pshufb(builder, halves, _splat8(e))
                value = avx2_pshufb(builder, _POP4, builder.xor(spread, _IOTA))
                builder.store(value, builder.bitcast(builder.gep(base, [const(32 * e)]), _I8X32.as_pointer()),
                              align=1)

            all16 = builder.icmp_signed("<=", builder.add(s, const(16)), s1_v)
            with builder.if_else(all16, likely=True) as (whole_run, part):
                with whole_run:  # no test per step
                    for e in range(16):
                        table(e)
                with part:
                    for e in range(16):
                        with builder.if_then(builder.icmp_signed("<", builder.add(s, const(e)), s1_v)):
                            table(e)
        return context.get_dummy_value()

    return types.void(t_bits, row, s0, s1, tables, c), codegen


tables_of = _tables_of_python if jit_disabled() else _tables_of_intrinsic


# ---------------------------------------------------------------------------
# The register block
# ---------------------------------------------------------------------------
def _block_python(panels, g, tables, c, s0, s1, out, trow, p_rows, t_rows, first, last, k, transposed):
    for r in range(ROWS):
        low = panels[g + r, s0:s1, :PANEL].astype(np.intp)
        high = panels[g + r, s0:s1, PANEL:].astype(np.intp)
        for cc in range(COLS):
            t_row = trow + cc
            if t_row >= t_rows:
                continue
            tab = tables[c + cc, : s1 - s0].astype(np.int64)
            counts = (np.take_along_axis(tab[:, :16], low, axis=1).sum(axis=0)
                      + np.take_along_axis(tab[:, 16:], high, axis=1).sum(axis=0))
            for lane in range(PANEL):
                p_row = PANEL * (g + r) + lane
                if p_row >= p_rows:
                    break
                i, j = (p_row, t_row) if transposed else (t_row, p_row)
                count = int(counts[lane]) + (0 if first else int(out[i, j]))
                out[i, j] = k - 2 * count if last else count


@intrinsic
def _block_intrinsic(typingctx, panels, g, tables, c, s0, s1, out, trow, p_rows, t_rows, first, last, k,
                     transposed):
    """Panels ``g .. g + ROWS - 1`` against table rows ``c .. c + COLS - 1`` (T rows ``trow
    ..``) over steps ``s0 .. s1`` (``tables`` from step s0 on): the counts are added to
    ``out`` (``first`` 0), or written (``first`` 1); ``last`` 1 writes ``k - 2 * count``.
    ``out[t_row, p_row]``, or ``out[p_row, t_row]`` when ``transposed`` is 1; P rows from
    ``p_rows`` and T rows from ``t_rows`` on are not written."""
    ok = (isinstance(panels, types.Array) and panels.ndim == 3 and panels.layout == "C"
          and panels.dtype == types.uint8 and isinstance(tables, types.Array) and tables.ndim == 3
          and tables.layout == "C" and tables.dtype == types.uint8 and isinstance(out, types.Array)
          and out.ndim == 2 and out.layout == "C" and out.dtype == types.int32)
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        (panels_v, g_v, tab_v, c_v, s0_v, s1_v, out_v, trow_v, p_rows_v, t_rows_v, first_v, last_v, k_v,
         transposed_v) = intp_args(context, builder, signature, args)
        panels_t, _, tab_t, _, _, _, out_t = signature.args[:7]
        panels_a = context.make_array(panels_t)(context, builder, panels_v)
        tab_a = context.make_array(tab_t)(context, builder, tab_v)
        out_a = context.make_array(out_t)(context, builder, out_v)
        intp = context.get_value_type(types.intp)
        i1, i16, i32 = ir.IntType(1), ir.IntType(16), ir.IntType(32)
        i16x16, i32x8 = ir.VectorType(i16, 16), ir.VectorType(i32, 8)

        def const(value):
            return ir.Constant(intp, value)

        n_steps = cgutils.unpack_tuple(builder, panels_a.shape, 3)[1]
        tab_steps = cgutils.unpack_tuple(builder, tab_a.shape, 3)[1]
        panel_bytes = builder.bitcast(panels_a.data, _I8.as_pointer())
        tab_bytes = builder.bitcast(tab_a.data, _I8.as_pointer())
        p_base = [builder.gep(panel_bytes, [builder.mul(builder.add(builder.mul(builder.add(g_v, const(r)), n_steps),
                                                                    s0_v), const(2 * PANEL))])
                  for r in range(ROWS)]
        t_base = [builder.gep(tab_bytes, [builder.mul(builder.mul(builder.add(c_v, const(cc)), tab_steps), const(32))])
                  for cc in range(COLS)]
        n = builder.sub(s1_v, s0_v)
        zero8 = ir.Constant(_I8X32, None)
        wide = [[(cgutils.alloca_once_value(builder, ir.Constant(i16x16, None)),
                  cgutils.alloca_once_value(builder, ir.Constant(i16x16, None))) for _ in range(COLS)]
                for _ in range(ROWS)]
        accs = [[cgutils.alloca_once(builder, _I8X32) for _ in range(COLS)] for _ in range(ROWS)]
        with cgutils.for_range_slice(builder, const(0), n, const(CHUNK)) as (cs, _):
            ce = builder.add(cs, const(CHUNK))
            ce = builder.select(builder.icmp_signed("<", ce, n), ce, n)
            for row in accs:
                for acc in row:
                    builder.store(zero8, acc)
            with cgutils.for_range_slice(builder, cs, ce, const(1)) as (s, _):
                at = builder.mul(s, const(2 * PANEL))
                low = [builder.load(builder.bitcast(builder.gep(p_base[r], [at]), _I8X32.as_pointer()), align=1)
                       for r in range(ROWS)]
                at_high = builder.add(at, const(PANEL))
                high = [builder.load(builder.bitcast(builder.gep(p_base[r], [at_high]), _I8X32.as_pointer()),
                                     align=1) for r in range(ROWS)]
                at = builder.mul(s, const(32))
                for cc in range(COLS):
                    ptr = builder.gep(t_base[cc], [at])
                    t_low = builder.load(builder.bitcast(ptr, _I8X16.as_pointer()), align=1)
                    t_high = builder.load(builder.bitcast(builder.gep(ptr, [const(16)]), _I8X16.as_pointer()),
                                          align=1)
                    t_low = builder.shuffle_vector(t_low, t_low, _BROADCAST)
                    t_high = builder.shuffle_vector(t_high, t_high, _BROADCAST)
                    for r in range(ROWS):
                        count = builder.add(avx2_pshufb(builder, t_low, low[r]), avx2_pshufb(builder, t_high, high[r]))
                        builder.store(builder.add(builder.load(accs[r][cc]), count), accs[r][cc])
            for r in range(ROWS):
                for cc in range(COLS):
                    acc = builder.load(accs[r][cc])
                    for half, mask in zip(wide[r][cc], (_UNPACK_LO, _UNPACK_HI)):
                        spread = builder.bitcast(builder.shuffle_vector(acc, zero8, mask), i16x16)
                        builder.store(builder.add(builder.load(half), spread), half)
        # wide[r][cc][0]: rows 0-7 | 16-23, [1]: rows 8-15 | 24-31 (the unpacks work per lane)
        is_first = builder.icmp_signed("!=", first_v, const(0))
        is_last = builder.icmp_signed("!=", last_v, const(0))
        is_transposed = builder.icmp_signed("!=", transposed_v, const(0))
        k_lanes = ir.Constant(i32x8, None)
        k32 = builder.trunc(k_v, i32)
        for e in range(8):
            k_lanes = builder.insert_element(k_lanes, k32, ir.Constant(i32, e))
        mask_type = ir.VectorType(i1, 8)
        masked_load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32x8, [i32x8.as_pointer(), i32, mask_type, i32x8]),
            "llvm.masked.load.v8i32.p0")
        masked_store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i32x8, i32x8.as_pointer(), i32, mask_type]),
            "llvm.masked.store.v8i32.p0")
        lanes = ir.Constant(ir.VectorType(intp, 8), list(range(8)))

        def finish(value, old):
            value = builder.select(is_first, value, builder.add(value, old))
            return builder.select(is_last, builder.sub(k_lanes, builder.add(value, value)), value)

        for r in range(ROWS):
            p_row0 = builder.mul(builder.add(g_v, const(r)), const(PANEL))
            for cc in range(COLS):
                t_row = builder.add(trow_v, const(cc))
                with builder.if_then(builder.icmp_signed("<", t_row, t_rows_v), likely=True):
                    pieces = []
                    for half, offsets in zip(wide[r][cc], ((0, 16), (8, 24))):
                        value = builder.zext(builder.load(half), ir.VectorType(i32, 16))
                        for part, offset in enumerate(offsets):
                            piece = builder.shuffle_vector(value, value, _mask(range(8 * part, 8 * part + 8)))
                            pieces.append((offset, piece))
                    with builder.if_else(is_transposed) as (columns, rows):
                        with rows:  # out[t_row, p_row0 + lane]: 8 lanes a vector (masked at the end)
                            for offset, piece in pieces:
                                p_row = builder.add(p_row0, const(offset))
                                left = builder.sub(p_rows_v, p_row)
                                ptr = cgutils.get_item_pointer(context, builder, out_t, out_a, [t_row, p_row])
                                ptr = builder.bitcast(ptr, i32x8.as_pointer())
                                whole = builder.icmp_signed(">=", left, const(8))
                                with builder.if_else(whole, likely=True) as (plain, edge):
                                    with plain:  # no read of out on the first pass (a cold 20 MB out)
                                        value = cgutils.alloca_once_value(builder, piece)
                                        with builder.if_then(builder.not_(is_first)):
                                            old = builder.load(ptr, align=4)
                                            builder.store(builder.add(builder.load(value), old), value)
                                        final = builder.load(value)
                                        final = builder.select(is_last, builder.sub(k_lanes, builder.add(final, final)),
                                                               final)
                                        builder.store(final, ptr, align=4)
                                    with edge:
                                        left_v = builder.insert_element(ir.Constant(ir.VectorType(intp, 8), None),
                                                                        left, ir.Constant(i32, 0))
                                        left_v = builder.shuffle_vector(left_v, left_v, _mask([0] * 8))
                                        mask = builder.icmp_signed("<", lanes, left_v)
                                        with builder.if_then(builder.icmp_signed(">", left, const(0))):
                                            old = builder.call(masked_load, [ptr, ir.Constant(i32, 4), mask,
                                                                             ir.Constant(i32x8, None)])
                                            builder.call(masked_store, [finish(piece, old), ptr, ir.Constant(i32, 4),
                                                                        mask])
                        with columns:  # out[p_row0 + lane, t_row]: one element at a time
                            for offset, piece in pieces:
                                for e in range(8):
                                    p_row = builder.add(p_row0, const(offset + e))
                                    with builder.if_then(builder.icmp_signed("<", p_row, p_rows_v), likely=True):
                                        ptr = cgutils.get_item_pointer(context, builder, out_t, out_a, [p_row, t_row])
                                        value = builder.extract_element(piece, ir.Constant(i32, e))
                                        value = builder.select(is_first, value, builder.add(value, builder.load(ptr)))
                                        value = builder.select(is_last, builder.sub(k32, builder.add(value, value)),
                                                               value)
                                        builder.store(value, ptr)
        return context.get_dummy_value()

    sig = types.void(panels, g, tables, c, s0, s1, out, trow, p_rows, t_rows, first, last, k, transposed)
    return sig, codegen


_block = _block_python if jit_disabled() else _block_intrinsic


# ---------------------------------------------------------------------------
# Drivers
# ---------------------------------------------------------------------------
@jit
def _groups(p):
    """Panels of P, a multiple of ROWS (the last ones zero)."""
    groups = (p + PANEL - 1) // PANEL
    return (groups + ROWS - 1) // ROWS * ROWS


@jit
def _panels_into(p_bits, panels, g):
    for t in range(0, p_bits.shape[1], 2):
        panel_nibbles(p_bits, g * PANEL, t, panels, g)


@jit
def _sides(a_bits, w_bits):
    """(P, T, transposed): P is ``w`` (out[i, j] = out[t_row, p_row], contiguous: transposed 0)
    unless ``w`` has fewer than TRANSPOSE_BELOW rows and ``a`` more (then ``a``: its panels
    would run mostly empty and its tables cost 32 bytes a byte; the stores go one element at
    a time)."""
    if w_bits.shape[0] >= TRANSPOSE_BELOW or w_bits.shape[0] >= a_bits.shape[0]:
        return w_bits, a_bits, 0
    return a_bits, w_bits, 1


@jit
def _table_rows(steps):
    """Rows of T per table block: TABLE_BYTES of tables, a multiple of COLS."""
    return max(COLS, TABLE_BYTES // (32 * steps) // COLS * COLS)


@jit
def _panel_groups(steps):
    """Panels per block of panels: PANEL_BYTES, a multiple of ROWS."""
    return max(ROWS, PANEL_BYTES // (2 * PANEL * steps) // ROWS * ROWS)


@jit
def _tables_into(t_bits, tables, s0, s1, t0, t1):
    """Tables of T rows ``t0 .. t1`` (rows past q are read as row q - 1: computed, never
    written) over steps ``s0 .. s1``."""
    q = t_bits.shape[0]
    for c in range(t1 - t0):
        tables_of(t_bits, min(t0 + c, q - 1), s0, s1, tables, c)


@jit
def _tile(p_bits, k, out, transposed, panels, tables, q, s0, s1, t0, t1, g0, g1):
    """T rows ``t0 .. t1`` (a multiple of COLS apart, their tables in ``tables``) against
    panels ``g0 .. g1`` over steps ``s0 .. s1``."""
    first = 1 if s0 == 0 else 0
    last = 1 if s1 == panels.shape[1] else 0
    if transposed:  # out[p_row, t_row]: a panel pair's output rows done together
        for g in range(g0, g1, ROWS):
            for c in range(0, t1 - t0, COLS):
                _block(panels, g, tables, c, s0, s1, out, t0 + c, p_bits.shape[0], q, first, last, k, transposed)
    else:  # a table group in L1 while the panels pass
        for c in range(0, t1 - t0, COLS):
            for g in range(g0, g1, ROWS):
                _block(panels, g, tables, c, s0, s1, out, t0 + c, p_bits.shape[0], q, first, last, k, transposed)


@jit
def binary_matmul_nibbles(a_bits, w_bits, n_bits, out):
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    p_bits, t_bits, transposed = _sides(a_bits, w_bits)
    groups = _groups(p_bits.shape[0])
    n_steps = 8 * p_bits.shape[1]
    panels = np.empty((groups, n_steps, 2 * PANEL), np.uint8)
    for g in range(groups):
        _panels_into(p_bits, panels, g)
    q_pad = (t_bits.shape[0] + COLS - 1) // COLS * COLS
    span = min(MAX_PASS, PASS_STEPS)
    rows = min(q_pad, _table_rows(min(span, n_steps)))
    tables = np.empty((rows, min(span, n_steps), 32), np.uint8)
    block = _panel_groups(min(span, n_steps))
    for t0 in range(0, q_pad, rows):  # the passes of a block of T rows in a row: their outputs stay in cache
        t1 = min(q_pad, t0 + rows)
        for s0 in range(0, n_steps, span):
            s1 = min(n_steps, s0 + span)
            _tables_into(t_bits, tables, s0, s1, t0, t1)
            for g0 in range(0, groups, block):
                _tile(p_bits, n_bits, out, transposed, panels, tables, t_bits.shape[0], s0, s1, t0, t1, g0,
                      min(groups, g0 + block))
    return True


@jit_parallel
def binary_matmul_nibbles_parallel(a_bits, w_bits, n_bits, out):
    """:func:`binary_matmul_nibbles` with the panels made, and the (table block, panel block)
    tiles run (each its passes, with tables of its own), over threads."""
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    p_bits, t_bits, transposed = _sides(a_bits, w_bits)
    groups = _groups(p_bits.shape[0])
    n_steps = 8 * p_bits.shape[1]
    panels = np.empty((groups, n_steps, 2 * PANEL), np.uint8)
    for g in prange(groups):
        _panels_into(p_bits, panels, g)
    q_pad = (t_bits.shape[0] + COLS - 1) // COLS * COLS
    span = min(MAX_PASS, PASS_STEPS)
    rows = min(q_pad, _table_rows(min(span, n_steps)))
    block = _panel_groups(min(span, n_steps))
    n_t = (q_pad + rows - 1) // rows
    n_g = (groups + block - 1) // block
    for tile in prange(n_t * n_g):
        t0 = (tile // n_g) * rows
        g0 = (tile % n_g) * block
        t1 = min(q_pad, t0 + rows)
        tables = np.empty((rows, min(span, n_steps), 32), np.uint8)
        for s0 in range(0, n_steps, span):
            s1 = min(n_steps, s0 + span)
            _tables_into(t_bits, tables, s0, s1, t0, t1)
            _tile(p_bits, n_bits, out, transposed, panels, tables, t_bits.shape[0], s0, s1, t0, t1, g0,
                  min(groups, g0 + block))
    return True
