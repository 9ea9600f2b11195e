"""The exact int32 ``x @ sign(W)`` for uint8 rows on AVX2, by byte multiply-adds
(``vpmaddubsw``), the way llama.cpp's Q8_0 dot products run.

``W``'s signs are unpacked once per call into ±1 int8 rows (``signs_into``: 32 bits
to 32 bytes with a byte shuffle, a bit test and a select, generic LLVM vector IR),
the rows of ``x`` are copied into zero-padded panels, and each block of ``ROWS`` rows
by ``COLS`` outputs is one ``_madd_block``: per 32 inputs, one ``vpmaddubsw`` per
(row, output) with ``x``'s bytes as the unsigned operand and the ±1 bytes as the
signed one (32 products, summed in pairs into 16 int16 lanes) and one int16 add.

Exact: a ``vpmaddubsw`` lane is ``x0 s0 + x1 s1`` with ``|.| <= 2 * 255 = 510`` (no
saturation); the int16 accumulators add at most ``FLUSH = 64`` of them
(``64 * 510 = 32640 < 2**15``) before ``vpmaddwd`` against ones widens them into
int32 accumulators; the int32 total is the exact ``sum_t x[t] * sign(W)[t, j]``
(``|total| <= 255 * k``, which ``fastbin.ops`` keeps below ``2**31``). Padding: the
inputs past ``k`` are zero in the panels, so the signs there (+1) add nothing.

* ``sign_matmul_madd(x, w_bits, out, panel_bytes) -> bool`` / ``sign_matmul_madd_parallel``:
  ``sign_matmul_uint8``'s contract (``x`` uint8 (m, k) of any strides, ``w_bits`` (n,
  ceil(k/64)) uint64, ``out`` (m, n) int32; False, writing nothing, for non-zero padding
  bits); ``panel_bytes`` bounds a panel of rows of ``x`` (it stays in L2 while every
  block of outputs passes over it; the planner passes the table's ``madd_panel_bytes``).
  The threaded one gives panels to threads.
* ``signs_into(w_bits, ws)``: ``ws`` (n_pad, kp) int8: ``ws[j, t] = 1 - 2 * bit t of row
  j`` for ``j < n``, ``t < kp`` (kp a multiple of 32, at most 64 * n_words).

Available where ``fastbin._config.INT8_MADD`` (x86-64 with AVX2, as Numba's target says):
``llvm.x86.avx2.pmadd.ub.sw`` exists nowhere else, so nothing calls it elsewhere
(plain-Python twins serve ``NUMBA_DISABLE_JIT=1``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled, jit_parallel
from ..intrinsics import intp_args
from ..pack import padding_is_zero

__all__ = ["ROWS", "COLS", "FLUSH", "STEP", "signs_into", "sign_matmul_madd", "sign_matmul_madd_parallel"]

#: rows and outputs per register block: 8 int16 accumulators, 4 sign vectors and a row's bytes
#: in the 16 ymm registers (4 x 3 spilled; 2 x 4, 3 x 3, 2 x 5 within noise of each other)
ROWS = 2
COLS = 4
#: inputs per ``vpmaddubsw``
STEP = 32
#: steps added in int16 before widening to int32: 64 * 510 = 32640 < 2**15
FLUSH = 64


# ---------------------------------------------------------------------------
# ±1 int8 rows from the packed bits
# ---------------------------------------------------------------------------
def _signs_into_python(w_bits, ws):
    n, kp = w_bits.shape[0], ws.shape[1]
    for j in range(n):
        for t in range(kp):
            ws[j, t] = 1 - 2 * int((int(w_bits[j, t // 64]) >> (t % 64)) & 1)


@intrinsic
def _signs_into_intrinsic(typingctx, w_bits, ws):
    """Per 32 bits of a row (a little-endian uint32 of its words): the 4 bytes spread
    to 8 byte lanes each (a shuffle), tested against the lane's bit (an AND and a
    compare) and selected into +1 / -1 bytes, stored 32 at a time."""
    ok = (isinstance(w_bits, types.Array) and w_bits.ndim == 2 and w_bits.layout == "C"
          and w_bits.dtype == types.uint64 and isinstance(ws, types.Array) and ws.ndim == 2
          and ws.layout == "C" and ws.dtype == types.int8)
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        w_t, ws_t = signature.args
        w_a = context.make_array(w_t)(context, builder, args[0])
        ws_a = context.make_array(ws_t)(context, builder, args[1])
        intp = context.get_value_type(types.intp)
        i8, i32 = ir.IntType(8), ir.IntType(32)
        i8x4, i8x32 = ir.VectorType(i8, 4), ir.VectorType(i8, 32)
        n, n_words = cgutils.unpack_tuple(builder, w_a.shape, 2)
        kp = cgutils.unpack_tuple(builder, ws_a.shape, 2)[1]
        chunks = builder.udiv(kp, ir.Constant(intp, STEP))
        halves = builder.mul(n_words, ir.Constant(intp, 2))
        words32 = builder.bitcast(w_a.data, i32.as_pointer())
        spread = ir.Constant(ir.VectorType(i32, 32), [b // 8 for b in range(32)])
        bits = ir.Constant(i8x32, [1 << (b % 8) for b in range(32)])
        zero = ir.Constant(i8x32, None)
        plus = ir.Constant(i8x32, [1] * 32)
        minus = ir.Constant(i8x32, [-1 & 0xFF] * 32)
        with cgutils.for_range(builder, n) as rows:
            j = rows.index
            with cgutils.for_range(builder, chunks) as loop:
                c = loop.index
                word = builder.load(builder.gep(words32, [builder.add(builder.mul(j, halves), c)]), align=4)
                four = builder.bitcast(word, i8x4)
                lanes = builder.shuffle_vector(four, ir.Constant(i8x4, None), spread)
                clear = builder.icmp_unsigned("==", builder.and_(lanes, bits), zero)
                signs = builder.select(clear, plus, minus)
                at = builder.add(builder.mul(j, kp), builder.mul(c, ir.Constant(intp, STEP)))
                builder.store(signs, builder.bitcast(builder.gep(ws_a.data, [at]), i8x32.as_pointer()), align=1)
        return context.get_dummy_value()

    return types.void(w_bits, ws), codegen


signs_into = _signs_into_python if jit_disabled() else _signs_into_intrinsic


# ---------------------------------------------------------------------------
# The register block: ROWS rows x COLS outputs over the whole (padded) row
# ---------------------------------------------------------------------------
def _madd_block_python(xp, i, ws, j, acc):
    rows, cols = acc.shape
    acc[:, :] = xp[i : i + rows].astype(np.int64) @ ws[j : j + cols].T.astype(np.int64)


def _madd_block_intrinsic(rows, cols):
    """The intrinsic ``block(xp, i, ws, j, acc)``: ``acc[r, c] = sum_t xp[i + r, t] *
    ws[j + c, t]`` (int32) for ``r < rows``, ``c < cols``; ``xp`` (.., kp) uint8 and
    ``ws`` (.., kp) int8 C-contiguous, ``kp`` a multiple of ``STEP``. Per step: ``cols``
    sign loads, then per row one load of ``x`` and ``cols`` ``vpmaddubsw`` + int16 adds
    into register accumulators, widened (``vpmaddwd`` by ones) every ``FLUSH`` steps;
    each output's 8 int32 lanes summed once at the end."""

    @intrinsic
    def block(typingctx, xp, i, ws, j, acc):
        ok = (isinstance(xp, types.Array) and xp.ndim == 2 and xp.layout == "C" and xp.dtype == types.uint8
              and isinstance(ws, types.Array) and ws.ndim == 2 and ws.layout == "C" and ws.dtype == types.int8
              and isinstance(acc, types.Array) and acc.ndim == 2 and acc.layout == "C"
              and acc.dtype == types.int32 and isinstance(i, types.Integer) and isinstance(j, types.Integer))
        if not ok:
            return None

        def codegen(context, builder, signature, args):
            xp_v, i_v, ws_v, j_v, acc_v = intp_args(context, builder, signature, args)
            xp_t, _, ws_t, _, acc_t = signature.args
            xp_a = context.make_array(xp_t)(context, builder, xp_v)
            ws_a = context.make_array(ws_t)(context, builder, ws_v)
            acc_a = context.make_array(acc_t)(context, builder, acc_v)
            intp = context.get_value_type(types.intp)
            i32 = ir.IntType(32)
            i8x32 = ir.VectorType(ir.IntType(8), 32)
            i16x16 = ir.VectorType(ir.IntType(16), 16)
            i32x8 = ir.VectorType(i32, 8)
            maddubs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i16x16, [i8x32, i8x32]),
                                                     "llvm.x86.avx2.pmadd.ub.sw")
            maddwd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32x8, [i16x16, i16x16]),
                                                    "llvm.x86.avx2.pmadd.wd")
            reduce_add = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, [i32x8]),
                                                        "llvm.vector.reduce.add.v8i32")
            kp = cgutils.unpack_tuple(builder, xp_a.shape, 2)[1]
            steps = builder.udiv(kp, ir.Constant(intp, STEP))
            x_base = builder.gep(xp_a.data, [builder.mul(i_v, kp)])
            w_base = builder.gep(ws_a.data, [builder.mul(j_v, kp)])
            wide = [[cgutils.alloca_once_value(builder, ir.Constant(i32x8, None)) for _ in range(cols)]
                    for _ in range(rows)]
            narrow = [[cgutils.alloca_once_value(builder, ir.Constant(i16x16, None)) for _ in range(cols)]
                      for _ in range(rows)]
            ones = ir.Constant(i16x16, [1] * 16)
            flush = ir.Constant(intp, FLUSH)
            runs = builder.udiv(builder.add(steps, ir.Constant(intp, FLUSH - 1)), flush)
            with cgutils.for_range(builder, runs) as run_loop:
                start = builder.mul(run_loop.index, flush)
                stop = builder.select(builder.icmp_signed("<", builder.add(start, flush), steps),
                                      builder.add(start, flush), steps)
                for r in range(rows):
                    for c in range(cols):
                        builder.store(ir.Constant(i16x16, None), narrow[r][c])
                with cgutils.for_range_slice(builder, start, stop, ir.Constant(intp, 1)) as (s, _):
                    off = builder.mul(s, ir.Constant(intp, STEP))
                    signs = []
                    for c in range(cols):
                        at = builder.add(builder.mul(ir.Constant(intp, c), kp), off)
                        ptr = builder.bitcast(builder.gep(w_base, [at]), i8x32.as_pointer())
                        signs.append(builder.load(ptr, align=1))
                    for r in range(rows):
                        at = builder.add(builder.mul(ir.Constant(intp, r), kp), off)
                        ptr = builder.bitcast(builder.gep(x_base, [at]), i8x32.as_pointer())
                        x = builder.load(ptr, align=1)
                        for c in range(cols):
                            pairs = builder.call(maddubs, [x, signs[c]])
                            builder.store(builder.add(builder.load(narrow[r][c]), pairs), narrow[r][c])
                for r in range(rows):
                    for c in range(cols):
                        widened = builder.call(maddwd, [builder.load(narrow[r][c]), ones])
                        builder.store(builder.add(builder.load(wide[r][c]), widened), wide[r][c])
            acc_len = cgutils.unpack_tuple(builder, acc_a.shape, 2)[1]
            for r in range(rows):
                for c in range(cols):
                    at = builder.add(builder.mul(ir.Constant(intp, r), acc_len), ir.Constant(intp, c))
                    total = builder.call(reduce_add, [builder.load(wide[r][c])])
                    builder.store(total, builder.gep(acc_a.data, [at]))
            return context.get_dummy_value()

        return types.void(xp, i, ws, j, acc), codegen

    return block


_madd_block = _madd_block_python if jit_disabled() else _madd_block_intrinsic(ROWS, COLS)


# ---------------------------------------------------------------------------
# The product
# ---------------------------------------------------------------------------
@jit
def _signs(w_bits, k):
    """The ±1 int8 rows of ``w_bits``, padded to a multiple of ``COLS`` rows (zeros) and
    ``STEP`` inputs (+1: the panels' zero inputs meet them)."""
    n = w_bits.shape[0]
    n_pad = -(-n // COLS) * COLS
    kp = -(-k // STEP) * STEP
    ws = np.empty((n_pad, kp), np.int8)
    signs_into(w_bits, ws)
    ws[n:, :] = 0
    return ws


@jit
def _panel_rows(m, kp, panel_bytes):
    """Rows per panel: a multiple of ``ROWS`` whose bytes fit ``panel_bytes`` (at least ``ROWS``)."""
    fit = max(ROWS, panel_bytes // kp // ROWS * ROWS)
    return min(fit, -(-m // ROWS) * ROWS)


@jit
def _panel(x, ws, out, i0, xp, acc):
    """Rows ``i0 .. i0 + xp.shape[0]`` of ``out`` (fewer at the end): the rows copied into
    the zero-padded panel ``xp``, then every block of outputs over its row blocks."""
    m, k = x.shape
    n = out.shape[1]
    height = min(xp.shape[0], m - i0)
    for r in range(height):
        row = xp[r]
        for t in range(k):
            row[t] = x[i0 + r, t]
        row[k:] = 0
    xp[height:, :] = 0
    for j in range(0, n, COLS):
        cols = min(COLS, n - j)
        for i in range(0, height, ROWS):
            _madd_block(xp, i, ws, j, acc)
            for r in range(min(ROWS, height - i)):
                for c in range(cols):
                    out[i0 + i + r, j + c] = acc[r, c]


@jit
def sign_matmul_madd(x, w_bits, out, panel_bytes):
    m, k = x.shape
    if not padding_is_zero(w_bits, k):
        return False
    ws = _signs(w_bits, k)
    kp = ws.shape[1]
    rows = _panel_rows(m, kp, panel_bytes)
    xp = np.empty((rows, kp), np.uint8)
    acc = np.empty((ROWS, COLS), np.int32)
    for i0 in range(0, m, rows):
        _panel(x, ws, out, i0, xp, acc)
    return True


@jit_parallel
def sign_matmul_madd_parallel(x, w_bits, out, panel_bytes):
    """:func:`sign_matmul_madd` with panels over threads (panels of at most
    ``ceil(m / 4)`` rows, so that two threads share even a short batch)."""
    m, k = x.shape
    if not padding_is_zero(w_bits, k):
        return False
    ws = _signs(w_bits, k)
    kp = ws.shape[1]
    rows = min(_panel_rows(m, kp, panel_bytes), -(-m // (4 * ROWS)) * ROWS)
    n_panels = -(-m // rows)
    for p in prange(n_panels):
        xp = np.empty((rows, kp), np.uint8)
        acc = np.empty((ROWS, COLS), np.int32)
        _panel(x, ws, out, p * rows, xp, acc)
    return True
