"""``x @ sign(W)`` for float32 rows by 8-entry table lookups on AVX2 (``vpermps`` on
ymm), the AVX2 form of :mod:`fastbin.kernels.sign_product.avx512`'s 16-entry tables.

Per group of 3 inputs the 8 signed sums ``±x0 ±x1 ±x2`` of a row are one 8-lane
float32 vector (entry ``e``: bit ``q`` of ``e`` set means ``-x_q``, as a set bit of the
packed signs), and each output's 3 weight bits of the group (one byte of the index
form, widened to an int32 lane) pick its sum with one ``vpermps`` lane: one permute
and one add per 3 inputs and 8 outputs, where sgemm needs 3 FMAs (about 1.5x sgemm is
the limit, before the tables and the index form are paid for).

* ``triples_of(w_bits, k) -> idx``: the index form, uint8 (ceil(k/3), n_pad): ``idx[g, j]``
  = bits ``3g .. 3g+2`` of row ``j`` (zero past ``k``), ``n_pad`` = n rounded up to ``BLOCK``
  (zero columns past n). Made per call: k/3 bytes per output.
* ``sign_matmul_lut3(x, w_bits, out, chunk_bytes) -> bool`` / ``sign_matmul_lut3_parallel``:
  ``sign_matmul_float``'s contract for C-contiguous float32 ``x`` (m, k) (False, writing
  nothing, for non-zero padding bits): rows ``ROWS`` at a time (tables of those rows,
  each index vector loaded once for them), in passes over as many groups as keep a
  pass's index bytes within ``chunk_bytes`` (the planner passes the table's
  ``lut3_chunk_bytes``), each pass adding to ``out``; row blocks over threads in the
  parallel one. A sum of the k terms ``±x`` in another order than BLAS's: within float
  rounding (the bound of ``fastbin.kernels.sign_product.exact``), not bit for bit.

Available where ``fastbin._config.FLOAT_LUT8`` (x86-64 with AVX2, as Numba's target
says): ``llvm.x86.avx2.permps`` exists nowhere else, so nothing calls it elsewhere
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

__all__ = ["ROWS", "VECS", "BLOCK", "triples_of", "sign_matmul_lut3", "sign_matmul_lut3_parallel"]

#: rows per block and 8-lane output vectors per block: ROWS * VECS accumulators, VECS
#: index vectors and a table in the 16 ymm registers
ROWS = 4
VECS = 2
#: outputs per block
BLOCK = 8 * VECS


@jit
def triples_of(w_bits, k):
    """The index form (module doc). The words are transposed first (``words[t, j]`` = word
    ``t`` of row ``j``, one zero word past the last) so that every group's shift and mask
    runs along contiguous outputs and vectorises; a group across two words takes the high
    bits from the next word."""
    n, n_words = w_bits.shape
    k3 = (k + 2) // 3
    n_pad = (n + BLOCK - 1) // BLOCK * BLOCK
    words = np.zeros((n_words + 1, n_pad), np.uint64)
    for j0 in range(0, n, 64):  # 64 rows of w_bits stay in L1 while their words are spread
        j1 = min(n, j0 + 64)
        for t in range(n_words):
            row = words[t]
            for j in range(j0, j1):
                row[j] = w_bits[j, t]
    idx = np.empty((k3, n_pad), np.uint8)
    seven = np.uint64(7)
    for g in range(k3):
        t, s = divmod(3 * g, 64)
        low = words[t]
        dst = idx[g]
        shift = np.uint64(s)
        if s <= 61:
            for j in range(n_pad):
                dst[j] = (low[j] >> shift) & seven
        else:
            high = words[t + 1]
            up = np.uint64(64 - s)
            for j in range(n_pad):
                dst[j] = ((low[j] >> shift) | (high[j] << up)) & seven
    return idx


# ---------------------------------------------------------------------------
# The lookup block: ROWS rows x BLOCK outputs over the groups of a pass
# ---------------------------------------------------------------------------
def _lut3_block_python(tabs, idx, g0, g1, j, acc):
    for r in range(tabs.shape[0]):
        total = np.zeros(BLOCK, np.float32)
        for g in range(g0, g1):
            table = tabs[r, 8 * (g - g0) : 8 * (g - g0) + 8]
            total += table[idx[g, j : j + BLOCK]]
        acc[r, :] = total


@intrinsic
def _lut3_block_intrinsic(typingctx, tabs, idx, g0, g1, j, acc):
    """``acc[r, c] = sum_{g0 <= g < g1} tabs[r, 8 (g - g0) + idx[g, j + c]]`` for the ROWS
    rows and BLOCK outputs ``c``. Per group: VECS 8-byte index loads widened to int32
    lanes, then per row one 8-float table load, VECS ``vpermps`` and as many adds into
    register accumulators."""
    ok = (isinstance(tabs, types.Array) and tabs.ndim == 2 and tabs.layout == "C" and tabs.dtype == types.float32
          and isinstance(idx, types.Array) and idx.ndim == 2 and idx.layout == "C" and idx.dtype == types.uint8
          and isinstance(acc, types.Array) and acc.ndim == 2 and acc.layout == "C" and acc.dtype == types.float32
          and all(isinstance(v, types.Integer) for v in (g0, g1, j)))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        tabs_v, idx_v, g0_v, g1_v, j_v, acc_v = intp_args(context, builder, signature, args)
        tabs_t, idx_t, _, _, _, acc_t = signature.args
        tabs_a = context.make_array(tabs_t)(context, builder, tabs_v)
        idx_a = context.make_array(idx_t)(context, builder, idx_v)
        acc_a = context.make_array(acc_t)(context, builder, acc_v)
        intp = context.get_value_type(types.intp)
        f32x8, i32x8 = ir.VectorType(ir.FloatType(), 8), ir.VectorType(ir.IntType(32), 8)
        i8x8 = ir.VectorType(ir.IntType(8), 8)
        permps = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32x8, [f32x8, i32x8]),
                                                "llvm.x86.avx2.permps")
        n_pad = cgutils.unpack_tuple(builder, idx_a.shape, 2)[1]
        tab_len = cgutils.unpack_tuple(builder, tabs_a.shape, 2)[1]
        acc_len = cgutils.unpack_tuple(builder, acc_a.shape, 2)[1]
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(f32x8, None)) for _ in range(VECS)]
                for _ in range(ROWS)]
        with cgutils.for_range_slice(builder, g0_v, g1_v, ir.Constant(intp, 1)) as (g, _):
            row = builder.gep(idx_a.data, [builder.add(builder.mul(g, n_pad), j_v)])
            index = []
            for c in range(VECS):
                i_ptr = builder.bitcast(builder.gep(row, [ir.Constant(intp, 8 * c)]), i8x8.as_pointer())
                index.append(builder.zext(builder.load(i_ptr, align=1), i32x8))
            g8 = builder.mul(builder.sub(g, g0_v), ir.Constant(intp, 8))
            for r in range(ROWS):
                at = builder.add(builder.mul(ir.Constant(intp, r), tab_len), g8)
                table = builder.load(builder.bitcast(builder.gep(tabs_a.data, [at]), f32x8.as_pointer()), align=4)
                for c in range(VECS):
                    picked = builder.call(permps, [table, index[c]])
                    builder.store(builder.fadd(builder.load(accs[r][c]), picked), accs[r][c])
        for r in range(ROWS):
            for c in range(VECS):
                at = builder.add(builder.mul(ir.Constant(intp, r), acc_len), ir.Constant(intp, 8 * c))
                out_ptr = builder.bitcast(builder.gep(acc_a.data, [at]), f32x8.as_pointer())
                builder.store(builder.load(accs[r][c]), out_ptr, align=4)
        return context.get_dummy_value()

    return types.void(tabs, idx, g0, g1, j, acc), codegen


_lut3_block = _lut3_block_python if jit_disabled() else _lut3_block_intrinsic


# ---------------------------------------------------------------------------
# Tables and passes
# ---------------------------------------------------------------------------
@jit
def _tables(x, i, g0, g1, tab, xrow):
    """``tab[8 (g - g0) + e]`` = the signed sum of entry ``e`` of group ``g`` of row ``i`` of
    ``x`` for ``g0 <= g < g1``; ``xrow`` (3 * ceil(k/3),) float32 scratch, zero past k."""
    k = x.shape[1]
    for t in range(3 * g0, min(k, 3 * g1)):
        xrow[t] = x[i, t]
    for g in range(g0, g1):
        x0, x1, x2 = xrow[3 * g], xrow[3 * g + 1], xrow[3 * g + 2]
        s01, d01 = x0 + x1, x0 - x1
        b = 8 * (g - g0)
        tab[b] = s01 + x2
        tab[b + 1] = x2 - d01
        tab[b + 2] = d01 + x2
        tab[b + 3] = x2 - s01
        tab[b + 4] = s01 - x2
        tab[b + 5] = -d01 - x2
        tab[b + 6] = d01 - x2
        tab[b + 7] = -s01 - x2


@jit
def _row_block(x, idx, out, i0, g0, g1, tabs, acc, xrow):
    """Rows ``i0 .. i0 + ROWS`` of ``out`` (fewer at the end: zero tables) over the groups
    ``g0 .. g1``: written for the first groups (``g0 == 0``), added after."""
    m = x.shape[0]
    n = out.shape[1]
    rows = min(ROWS, m - i0)
    for r in range(ROWS):
        if r < rows:
            _tables(x, i0 + r, g0, g1, tabs[r], xrow)
        else:
            tabs[r, :] = 0
    for j in range(0, n, BLOCK):
        _lut3_block(tabs, idx, g0, g1, j, acc)
        width = min(BLOCK, n - j)
        for r in range(rows):
            if g0 == 0:
                for e in range(width):
                    out[i0 + r, j + e] = acc[r, e]
            else:
                for e in range(width):
                    out[i0 + r, j + e] += acc[r, e]


@jit
def _group_chunk(idx, chunk_bytes):
    """Groups per pass: their index bytes within ``chunk_bytes`` (at least one)."""
    return max(1, min(idx.shape[0], chunk_bytes // idx.shape[1]))


@jit
def _scratch(k3, chunk):
    return (np.empty((ROWS, chunk * 8), np.float32), np.empty((ROWS, BLOCK), np.float32),
            np.zeros(3 * k3, np.float32))


@jit
def sign_matmul_lut3(x, w_bits, out, chunk_bytes):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    idx = triples_of(w_bits, x.shape[1])
    chunk = _group_chunk(idx, chunk_bytes)
    tabs, acc, xrow = _scratch(idx.shape[0], chunk)
    for g0 in range(0, idx.shape[0], chunk):
        g1 = min(idx.shape[0], g0 + chunk)
        for i0 in range(0, x.shape[0], ROWS):
            _row_block(x, idx, out, i0, g0, g1, tabs, acc, xrow)
    return True


@jit_parallel
def sign_matmul_lut3_parallel(x, w_bits, out, chunk_bytes):
    """:func:`sign_matmul_lut3` with the blocks of ROWS rows over threads."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    idx = triples_of(w_bits, x.shape[1])
    chunk = _group_chunk(idx, chunk_bytes)
    n_blocks = (x.shape[0] + ROWS - 1) // ROWS
    for g0 in range(0, idx.shape[0], chunk):
        g1 = min(idx.shape[0], g0 + chunk)
        for b in prange(n_blocks):
            tabs, acc, xrow = _scratch(idx.shape[0], g1 - g0)
            _row_block(x, idx, out, b * ROWS, g0, g1, tabs, acc, xrow)
    return True
