"""``x @ sign(W)`` for a few float32 rows by table lookup (T-MAC's idea), on
AVX-512: per group of 4 inputs, the 16 signed sums ``±x0 ±x1 ±x2 ±x3`` are
made once per row, and each output's 4 weight bits of the group (a nibble,
one per byte) pick its sum with one ``vpermps`` lane: one permute and one add
per 4 inputs and 16 outputs, where a multiply-add product needs 4 FMAs.

* ``lut_nibbles(w_bits, n_bits) -> nib``: uint8 (ceil(k/4), n_pad), ``nib[g, j]``
  = bits ``4g .. 4g+3`` of row ``j`` of the packed signs (bit 1 means -1),
  ``n_pad`` = n rounded up to 64 (zero columns past n).
* ``nibbles_into(w_bits, n_bits, nib)``: the same, jitted, into ``nib``
  (``sign_matmul``'s float32 path converts per call: k/4 bytes per output,
  a sixteenth of unpacking ``W`` to float32).
* ``sign_matmul_lut(x, w_bits, out) -> bool`` / ``sign_matmul_lut_parallel``:
  ``sign_matmul_float``'s contract for float32 ``x`` (False, writing
  nothing, for non-zero padding bits): the nibbles made per call, then rows
  4 at a time (tables of 4 rows, each nibble vector loaded once for the 4),
  row blocks over threads in the parallel one; in passes over as many groups
  of inputs as keep a pass's nibbles within ``chunk_bytes`` (default
  ``fastbin._config.LUT_NIBBLE_CHUNK_BYTES``), each pass adding to ``out``.
* ``sign_dot_lut(x, nib, out, tab, acc)``: ``out`` (m, n) float32 = ``x @
  sign(W)`` for float32 ``x`` (m, k); ``tab`` (1, ceil(k/4) * 16) float32 and
  ``acc`` (1, 64) float32 are scratch (``lut_scratch``) (the caller's, so a fused call allocates
  nothing). A sum of the k terms ``±x`` in another order than BLAS's: within
  float rounding (the bound of ``fastbin.kernels.exact_dot``), not bit for bit.

Available where ``fastbin._config.FLOAT_LUT`` (x86-64 with AVX-512F, as
Numba's target says): the permute is ``llvm.x86.avx512.permvar.sf.512``,
which no other target has, so nothing calls it elsewhere (a plain-Python twin
serves ``NUMBA_DISABLE_JIT=1``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import LUT_NIBBLE_CHUNK_BYTES, jit, jit_disabled, jit_parallel
from .pack import padding_is_zero

__all__ = ["lut_nibbles", "sign_dot_lut", "lut_scratch", "nibbles_into", "sign_matmul_lut", "sign_matmul_lut_parallel"]

#: outputs per call of the block kernel (4 vectors of 16 lanes)
BLOCK = 64
#: rows per block of the many-row kernel (4 x 4 vector accumulators)
ROWS = 4


def lut_nibbles(w_bits, n_bits):
    """The nibble form of packed signs ``w_bits`` (n, ceil(n_bits/64)) uint64 (module doc)."""
    n = w_bits.shape[0]
    k4 = -(-n_bits // 4)
    n_pad = -(-max(n, 1) // BLOCK) * BLOCK
    as_bytes = np.ascontiguousarray(w_bits, dtype="<u8").view(np.uint8).reshape(n, -1)  # bits 8b.. in byte b
    low, high = as_bytes & 0x0F, as_bytes >> 4
    nibbles = np.empty((n, as_bytes.shape[1] * 2), np.uint8)
    nibbles[:, 0::2], nibbles[:, 1::2] = low, high
    out = np.zeros((k4, n_pad), np.uint8)
    out[:, :n] = nibbles[:, :k4].T
    return out


def lut_scratch(n_bits):
    """``(tab, acc)`` scratch of :func:`sign_dot_lut` for rows of ``n_bits`` inputs:
    (1, ceil(n_bits/4) * 16) and (1, 64) float32."""
    return np.empty((1, -(-n_bits // 4) * 16), np.float32), np.empty((1, BLOCK), np.float32)


def _lut_block_python(tabs, nib, j, acc):
    k4 = nib.shape[0]
    for r in range(tabs.shape[0]):
        total = np.zeros(BLOCK, np.float32)
        table = tabs[r, : k4 * 16].reshape(k4, 16)
        for g in range(k4):
            total += table[g, nib[g, j : j + BLOCK]]
        acc[r, :] = total


def _lut_block_intrinsic(rows):
    """The intrinsic ``block(tabs, nib, j, acc)`` for ``rows`` rows: ``acc[r, 0:64] =
    sum_g tabs[r, 16 g + nib[g, j + c]]``. Per group four 16-byte nibble loads widened
    to i32 lanes once, then per row one 16-float table load, four ``vpermps`` and four
    adds into 4 * ``rows`` vector accumulators (registers)."""

    @intrinsic
    def block(typingctx, tabs, nib, j, acc):
        ok = (isinstance(tabs, types.Array) and tabs.ndim == 2 and tabs.layout == "C"
              and tabs.dtype == types.float32 and isinstance(nib, types.Array) and nib.ndim == 2
              and nib.layout == "C" and nib.dtype == types.uint8 and isinstance(acc, types.Array)
              and acc.ndim == 2 and acc.layout == "C" and acc.dtype == types.float32
              and isinstance(j, types.Integer))
        if not ok:
            return None

        def codegen(context, builder, signature, args):
            tabs_v, nib_v, j_v, acc_v = args
            tabs_t, nib_t, j_t, acc_t = signature.args
            j_v = context.cast(builder, j_v, j_t, types.intp)
            tabs_a = context.make_array(tabs_t)(context, builder, tabs_v)
            nib_a = context.make_array(nib_t)(context, builder, nib_v)
            acc_a = context.make_array(acc_t)(context, builder, acc_v)
            f32x16, i32x16 = ir.VectorType(ir.FloatType(), 16), ir.VectorType(ir.IntType(32), 16)
            i8x16 = ir.VectorType(ir.IntType(8), 16)
            intp = context.get_value_type(types.intp)
            permvar = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32x16, [f32x16, i32x16]),
                                                     "llvm.x86.avx512.permvar.sf.512")
            k4, n_pad = cgutils.unpack_tuple(builder, nib_a.shape, 2)
            tab_len = cgutils.unpack_tuple(builder, tabs_a.shape, 2)[1]
            acc_len = cgutils.unpack_tuple(builder, acc_a.shape, 2)[1]
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(f32x16, None)) for _ in range(4)]
                    for _ in range(rows)]
            with cgutils.for_range(builder, k4) as loop:
                g = loop.index
                row = builder.gep(nib_a.data, [builder.add(builder.mul(g, n_pad), j_v)])
                index = []
                for c in range(4):
                    n_ptr = builder.bitcast(builder.gep(row, [ir.Constant(intp, 16 * c)]), i8x16.as_pointer())
                    index.append(builder.zext(builder.load(n_ptr, align=1), i32x16))
                g16 = builder.mul(g, ir.Constant(intp, 16))
                for r in range(rows):
                    at = builder.add(builder.mul(ir.Constant(intp, r), tab_len), g16)
                    t_ptr = builder.bitcast(builder.gep(tabs_a.data, [at]), f32x16.as_pointer())
                    table = builder.load(t_ptr, align=4)
                    for c in range(4):
                        picked = builder.call(permvar, [table, index[c]])
                        builder.store(builder.fadd(builder.load(accs[r][c]), picked), accs[r][c])
            for r in range(rows):
                for c in range(4):
                    at = builder.add(builder.mul(ir.Constant(intp, r), acc_len), ir.Constant(intp, 16 * c))
                    out_ptr = builder.bitcast(builder.gep(acc_a.data, [at]), f32x16.as_pointer())
                    builder.store(builder.load(accs[r][c]), out_ptr, align=4)
            return context.get_dummy_value()

        return types.void(tabs, nib, j, acc), codegen

    return block


#: one row (few-row calls), and ``ROWS`` rows (many-row calls)
_lut_block = _lut_block_python if jit_disabled() else _lut_block_intrinsic(1)
_lut_block4 = _lut_block_python if jit_disabled() else _lut_block_intrinsic(ROWS)


@jit
def nibbles_into(w_bits, n_bits, nib):
    """A byte transpose, 64 rows of ``w_bits`` at a time (their bytes stay in L1):
    byte ``b`` of a row holds the nibbles of groups ``2b`` (low) and ``2b + 1`` (high),
    the words being little-endian (x86)."""
    n, n_words = w_bits.shape
    k4 = nib.shape[0]
    as_bytes = w_bits.view(np.uint8).reshape((n, n_words * 8))
    half = k4 // 2
    for j0 in range(0, n, 64):
        j1 = min(n, j0 + 64)
        for b in range(half):
            low, high = nib[2 * b], nib[2 * b + 1]
            for j in range(j0, j1):
                v = as_bytes[j, b]
                low[j] = v & np.uint8(15)
                high[j] = v >> np.uint8(4)
        if k4 % 2:
            last = nib[k4 - 1]
            for j in range(j0, j1):
                last[j] = as_bytes[j, half] & np.uint8(15)
    for g in range(k4):
        for j in range(n, nib.shape[1]):
            nib[g, j] = 0


@jit
def _row_block(x, nib, out, i0, g0, g1, tabs, acc):
    """Rows ``i0 .. i0 + 4`` of ``out`` (fewer at the end: zero tables) over the groups
    ``g0 .. g1`` of inputs: written for the first groups (``g0 == 0``), added after.
    ``tabs`` (4, >= 16 (g1 - g0)): the tables of the pass, from the start of each row."""
    m = x.shape[0]
    n = out.shape[1]
    rows = min(ROWS, m - i0)
    for r in range(ROWS):
        if r < rows:
            _tables(x[i0 + r], tabs[r], g0, g1)
        else:
            tabs[r, :] = 0
    part = nib[g0:g1]
    for j in range(0, n, BLOCK):
        _lut_block4(tabs, part, j, acc)
        for r in range(rows):
            for c in range(min(BLOCK, n - j)):
                if g0 == 0:
                    out[i0 + r, j + c] = acc[r, c]
                else:
                    out[i0 + r, j + c] += acc[r, c]


@jit
def _group_chunk(nib, chunk_bytes):
    """Groups per pass over the rows: the nibble rows of a pass fit ``chunk_bytes``."""
    return max(1, min(nib.shape[0], chunk_bytes // nib.shape[1]))


@jit
def _nibbles_of(w_bits, k):
    nib = np.empty(((k + 3) // 4, (w_bits.shape[0] + BLOCK - 1) // BLOCK * BLOCK), np.uint8)
    nibbles_into(w_bits, k, nib)
    return nib


@jit
def sign_matmul_lut(x, w_bits, out, chunk_bytes=LUT_NIBBLE_CHUNK_BYTES):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    nib = _nibbles_of(w_bits, x.shape[1])
    chunk = _group_chunk(nib, chunk_bytes)
    tabs = np.empty((ROWS, chunk * 16), np.float32)
    acc = np.empty((ROWS, BLOCK), np.float32)
    for g0 in range(0, nib.shape[0], chunk):
        g1 = min(nib.shape[0], g0 + chunk)
        for i0 in range(0, x.shape[0], ROWS):
            _row_block(x, nib, out, i0, g0, g1, tabs, acc)
    return True


@jit_parallel
def sign_matmul_lut_parallel(x, w_bits, out, chunk_bytes=LUT_NIBBLE_CHUNK_BYTES):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    nib = _nibbles_of(w_bits, x.shape[1])
    chunk = _group_chunk(nib, chunk_bytes)
    n_blocks = (x.shape[0] + ROWS - 1) // ROWS
    for g0 in range(0, nib.shape[0], chunk):
        g1 = min(nib.shape[0], g0 + chunk)
        for b in prange(n_blocks):
            tabs = np.empty((ROWS, (g1 - g0) * 16), np.float32)
            acc = np.empty((ROWS, BLOCK), np.float32)
            _row_block(x, nib, out, b * ROWS, g0, g1, tabs, acc)
    return True


@jit
def _tables(row, tab, g0=0, g1=-1):
    """``tab[16 (g - g0) + e] = sum_q (-1 if bit q of e else 1) * row[4 g + q]`` for the groups
    ``g0 <= g < g1`` (default: all that ``tab`` holds; zeros past the row): the four pair sums of
    inputs (0, 1) and of (2, 3), then their 16 sums."""
    k = row.shape[0]
    zero = np.float32(0)
    if g1 < 0:
        g1 = g0 + tab.shape[0] // 16
    for g in range(g0, g1):
        t = 4 * g
        v0 = np.float32(row[t]) if t < k else zero  # uint8 rows too: exact as float32
        v1 = np.float32(row[t + 1]) if t + 1 < k else zero
        v2 = np.float32(row[t + 2]) if t + 2 < k else zero
        v3 = np.float32(row[t + 3]) if t + 3 < k else zero
        lo0, lo1, lo2, lo3 = v0 + v1, v1 - v0, v0 - v1, -v0 - v1
        hi0, hi1, hi2, hi3 = v2 + v3, v3 - v2, v2 - v3, -v2 - v3
        base = 16 * (g - g0)
        tab[base + 0], tab[base + 1], tab[base + 2], tab[base + 3] = lo0 + hi0, lo1 + hi0, lo2 + hi0, lo3 + hi0
        tab[base + 4], tab[base + 5], tab[base + 6], tab[base + 7] = lo0 + hi1, lo1 + hi1, lo2 + hi1, lo3 + hi1
        tab[base + 8], tab[base + 9], tab[base + 10], tab[base + 11] = lo0 + hi2, lo1 + hi2, lo2 + hi2, lo3 + hi2
        tab[base + 12], tab[base + 13], tab[base + 14], tab[base + 15] = lo0 + hi3, lo1 + hi3, lo2 + hi3, lo3 + hi3


@jit
def sign_dot_lut(x, nib, out, tab, acc):
    m = x.shape[0]
    n = out.shape[1]
    for i in range(m):
        _tables(x[i], tab[0])
        for j in range(0, n, BLOCK):
            _lut_block(tab, nib, j, acc)
            for c in range(min(BLOCK, n - j)):
                out[i, j + c] = acc[0, c]

