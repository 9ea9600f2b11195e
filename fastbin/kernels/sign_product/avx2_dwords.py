"""``x @ sign(W)`` for a few float32 rows on AVX2 by 8-entry tables (``vpermps``) indexed
straight by W's packed bits: the index form is W's 32-bit words regrouped, not made group
by group.

``vpermps`` reads only the low 3 bits of each int32 lane. Each 32-bit word (``dword``) of
a row of W holds 10 groups of 3 inputs (bits ``3g .. 3g+2``) and one of 2 (bits 30, 31):
shifting a vector of 8 outputs' dword ``d`` right by ``3 g`` makes it the index vector of
group ``g`` for those 8 outputs. So the per-call form (``dwords_of``) is W's dwords with
8 outputs side by side, ``wt[b, d, l]`` = dword ``d`` of row ``8 b + l`` (the size of W's
bits, one pass), where ``avx2_lut.triples_of`` writes a byte per 3 inputs and output.

Per row of ``x`` the tables (``_tables``): ``tab[(11 d + g) 8 + e]`` = the signed sum
``±x0 ±x1 ±x2`` of group ``g`` of dword ``d`` (entry ``e``: bit ``q`` set means ``-x_q``,
as a set bit of the packed signs; the 2-input group's third input is 0). Per (dword, group)
and 8 outputs: one shift, then per row one ``vpermps`` and one add, where sgemm needs 3 FMAs.

* ``sign_dot_dwords(x, wt, out, tabs, acc)``: the same for a few C-contiguous rows from a word
  form ``wt`` the caller keeps (the runtime's fused batch-1 pass), scratch from ``dwords_scratch``;
* ``sign_matmul_dwords(x, w_bits, out) -> bool``: ``sign_matmul_float``'s contract for
  float32 ``x`` (m, k) of any strides (read an element at a time into the tables; False,
  writing nothing, for non-zero padding bits);
  ``ROWS`` rows a block (a last lone row by the one-row block), passes of ``PASS_DWORDS``
  dwords adding to ``out``. A sum of the k terms ``±x`` in another order than BLAS's:
  within float rounding (the bound of ``fastbin.kernels.sign_product.exact``).

Available where ``fastbin._config.FLOAT_LUT8`` (x86-64 with AVX2): ``intrinsics.avx2_permps``
exists nowhere else (plain-Python twins serve ``NUMBA_DISABLE_JIT=1``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled
from ..binary_product._lanes import _transpose_vectors
from ..intrinsics import avx2_permps, intp_args
from ..pack import padding_is_zero

__all__ = ["GROUPS", "ROWS", "VECS", "VECS1", "PASS_DWORDS", "dwords_of", "sign_matmul_dwords", "dwords_scratch",
           "sign_dot_dwords"]

#: groups per dword: 10 of 3 bits, one of 2
GROUPS = 11
#: rows and 8-output vectors per block (8 accumulators, 2 index vectors, 2 shifted, a table);
#: one row alone: 4 vectors
ROWS = 4
VECS = 2
VECS1 = 4
#: dwords per pass: ROWS rows' tables (4 * 22 * 11 * 32 B = 31 KiB) stay in L1
PASS_DWORDS = 22


def _transpose8_python(w_bits, b, c, wt):
    for lane in range(8):
        for e in range(4):
            word = int(w_bits[8 * b + lane, 4 * c + e])
            wt[b, 8 * c + 2 * e, lane] = word & 0xFFFFFFFF
            wt[b, 8 * c + 2 * e + 1, lane] = word >> 32


@intrinsic
def _transpose8_intrinsic(typingctx, w_bits, b, c, wt):
    """``wt[b, 8 c + i, l]`` = dword ``8 c + i`` of row ``8 b + l`` for ``i, l < 8`` (rows
    ``8 b ..`` and words ``4 c .. 4 c + 3`` exist): eight 256-bit loads, the 8 x 8 shuffle
    network of ``binary_product._lanes``, eight stores."""
    ok = (isinstance(w_bits, types.Array) and w_bits.ndim == 2 and w_bits.layout == "C"
          and w_bits.dtype == types.uint64 and isinstance(wt, types.Array) and wt.ndim == 3
          and wt.layout == "C" and wt.dtype == types.uint32)
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        w_v, b_v, c_v, wt_v = intp_args(context, builder, signature, args)
        w_t, _, _, wt_t = signature.args
        w_a = context.make_array(w_t)(context, builder, w_v)
        wt_a = context.make_array(wt_t)(context, builder, wt_v)
        intp = context.get_value_type(types.intp)
        i32x8 = ir.VectorType(ir.IntType(32), 8)
        n_words = cgutils.unpack_tuple(builder, w_a.shape, 2)[1]
        n_dwords = cgutils.unpack_tuple(builder, wt_a.shape, 3)[1]
        src = builder.bitcast(w_a.data, ir.IntType(32).as_pointer())
        dst = builder.bitcast(wt_a.data, ir.IntType(32).as_pointer())
        eight = ir.Constant(intp, 8)
        rows = []
        for lane in range(8):
            row = builder.add(builder.mul(b_v, eight), ir.Constant(intp, lane))
            at = builder.add(builder.mul(row, builder.mul(n_words, ir.Constant(intp, 2))), builder.mul(c_v, eight))
            rows.append(builder.load(builder.bitcast(builder.gep(src, [at]), i32x8.as_pointer()), align=4))
        columns = _transpose_vectors(builder, rows)
        for i in range(8):
            d = builder.add(builder.mul(c_v, eight), ir.Constant(intp, i))
            at = builder.mul(builder.add(builder.mul(b_v, n_dwords), d), eight)
            builder.store(columns[i], builder.bitcast(builder.gep(dst, [at]), i32x8.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.void(w_bits, b, c, wt), codegen


_transpose8 = _transpose8_python if jit_disabled() else _transpose8_intrinsic


@jit
def dwords_of(w_bits, vecs):
    """``wt`` uint32 (n_blocks, 2 n_words, 8): ``wt[b, d, l]`` = dword ``d`` of row ``8 b + l``
    (zero past n); n_blocks = ceil(n / 8) rounded up to ``vecs``. Full blocks of 8 rows 4
    words at a time by an 8 x 8 transpose in registers, the rest an element at a time."""
    n, n_words = w_bits.shape
    blocks = (n + 7) // 8
    blocks = (blocks + vecs - 1) // vecs * vecs
    wt = np.empty((blocks, 2 * n_words, 8), np.uint32)
    low = np.uint64(0xFFFFFFFF)
    half = np.uint64(32)
    full = n // 8
    quads = n_words // 4
    for b in range(full):
        for c in range(quads):
            _transpose8(w_bits, b, c, wt)
        for t in range(4 * quads, n_words):
            for lane in range(8):
                word = w_bits[8 * b + lane, t]
                wt[b, 2 * t, lane] = np.uint32(word & low)
                wt[b, 2 * t + 1, lane] = np.uint32(word >> half)
    for b in range(full, blocks):
        for t in range(n_words):
            for lane in range(8):
                j = 8 * b + lane
                word = w_bits[j, t] if j < n else np.uint64(0)
                wt[b, 2 * t, lane] = np.uint32(word & low)
                wt[b, 2 * t + 1, lane] = np.uint32(word >> half)
    return wt


#: the sign of input q in entry e: -1 where bit q of e is set (a set bit of the packed signs)
_SIGNS = np.array([[1.0 - 2.0 * ((e >> q) & 1) for e in range(8)] for q in range(3)], np.float32)


def _entries_python(tab, b, x0, x1, x2):
    tab[b : b + 8] = (x0 * _SIGNS[0] + x1 * _SIGNS[1]) + x2 * _SIGNS[2]


@intrinsic
def _entries_intrinsic(typingctx, tab, b, x0, x1, x2):
    """``tab[b .. b + 8]`` = the 8 signed sums of ``x0, x1, x2`` (float32) as vector IR:
    three broadcasts, products by constant ±1 vectors (exact), two adds, one store."""
    ok = (isinstance(tab, types.Array) and tab.ndim == 1 and tab.dtype == types.float32
          and all(v == types.float32 for v in (x0, x1, x2)))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        tab_v, b_v, x0_v, x1_v, x2_v = intp_args(context, builder, signature, args)
        tab_a = context.make_array(signature.args[0])(context, builder, tab_v)
        f32, i32 = ir.FloatType(), ir.IntType(32)
        f32x8 = ir.VectorType(f32, 8)
        zeros = ir.Constant(ir.VectorType(i32, 8), [0] * 8)

        def term(value, q):
            one = builder.insert_element(ir.Constant(f32x8, ir.Undefined), value, ir.Constant(i32, 0))
            splat = builder.shuffle_vector(one, ir.Constant(f32x8, ir.Undefined), zeros)
            return builder.fmul(splat, ir.Constant(f32x8, [float(v) for v in _SIGNS[q]]))

        total = builder.fadd(builder.fadd(term(x0_v, 0), term(x1_v, 1)), term(x2_v, 2))
        ptr = builder.bitcast(builder.gep(builder.bitcast(tab_a.data, f32.as_pointer()), [b_v]), f32x8.as_pointer())
        builder.store(total, ptr, align=4)
        return context.get_dummy_value()

    return types.void(tab, b, x0, x1, x2), codegen


_entries = _entries_python if jit_disabled() else _entries_intrinsic


@jit
def _tables(x, i, d0, d1, tab, xrow):
    """``tab[(11 (d - d0) + g) 8 + e]`` for dwords ``d0 <= d < d1`` of row ``i`` (``_entries``
    per group), from ``xrow`` (32 (d1 - d0) float32 scratch) holding the row, zero past k
    (no branch per input; the 2-input group's third input is 0)."""
    k = x.shape[1]
    t0 = 32 * d0
    t1 = min(k, 32 * d1)
    for t in range(t0, t1):
        xrow[t - t0] = x[i, t]
    for t in range(t1 - t0, 32 * (d1 - d0)):
        xrow[t] = 0
    zero = np.float32(0)
    for d in range(d1 - d0):
        for g in range(GROUPS - 1):
            t = 32 * d + 3 * g
            _entries(tab, 8 * (GROUPS * d + g), xrow[t], xrow[t + 1], xrow[t + 2])
        _entries(tab, 8 * (GROUPS * d + GROUPS - 1), xrow[32 * d + 30], xrow[32 * d + 31], zero)


def _block_python(rows, vecs):
    def block(tabs, wt, b0, d0, d1, acc):
        for r in range(rows):
            for v in range(vecs):
                total = np.zeros(8, np.float32)
                for d in range(d0, d1):
                    word = wt[b0 + v, d].astype(np.int64)
                    for g in range(GROUPS):
                        base = 8 * (GROUPS * (d - d0) + g)
                        total += tabs[r, base : base + 8][(word >> (3 * g)) & 7]
                acc[r, 8 * v : 8 * v + 8] = total

    return block


def _block_intrinsic(rows, vecs):
    @intrinsic
    def block(typingctx, tabs, wt, b0, d0, d1, acc):
        """``acc[r, 8 v + l] = sum_{d0 <= d < d1, g} tabs[r, (11 (d - d0) + g) 8 + ((wt[b0 + v,
        d, l] >> 3 g) & 7)]`` for ``rows`` rows and ``vecs`` 8-output vectors."""
        ok = (isinstance(tabs, types.Array) and tabs.ndim == 2 and tabs.layout == "C"
              and tabs.dtype == types.float32 and isinstance(wt, types.Array) and wt.ndim == 3
              and wt.layout == "C" and wt.dtype == types.uint32 and isinstance(acc, types.Array)
              and acc.ndim == 2 and acc.layout == "C" and acc.dtype == types.float32)
        if not ok:
            return None

        def codegen(context, builder, signature, args):
            tabs_v, wt_v, b0_v, d0_v, d1_v, acc_v = intp_args(context, builder, signature, args)
            tabs_t, wt_t, _, _, _, acc_t = signature.args
            tabs_a = context.make_array(tabs_t)(context, builder, tabs_v)
            wt_a = context.make_array(wt_t)(context, builder, wt_v)
            acc_a = context.make_array(acc_t)(context, builder, acc_v)
            intp = context.get_value_type(types.intp)
            f32x8, i32x8 = ir.VectorType(ir.FloatType(), 8), ir.VectorType(ir.IntType(32), 8)

            def const(value):
                return ir.Constant(intp, value)

            tab_len = cgutils.unpack_tuple(builder, tabs_a.shape, 2)[1]
            acc_len = cgutils.unpack_tuple(builder, acc_a.shape, 2)[1]
            n_dwords = cgutils.unpack_tuple(builder, wt_a.shape, 3)[1]
            wt_data = builder.bitcast(wt_a.data, ir.IntType(32).as_pointer())
            tab_data = builder.bitcast(tabs_a.data, ir.FloatType().as_pointer())
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(f32x8, None)) for _ in range(vecs)]
                    for _ in range(rows)]
            with cgutils.for_range_slice(builder, d0_v, d1_v, const(1)) as (d, _):
                words = []
                for v in range(vecs):
                    at = builder.mul(builder.add(builder.mul(builder.add(b0_v, const(v)), n_dwords), d), const(8))
                    words.append(builder.load(builder.bitcast(builder.gep(wt_data, [at]), i32x8.as_pointer()),
                                              align=4))
                base = builder.mul(builder.sub(d, d0_v), const(8 * GROUPS))
                for g in range(GROUPS):
                    shift = ir.Constant(i32x8, [3 * g] * 8)
                    index = [builder.lshr(word, shift) if g else word for word in words]
                    for r in range(rows):
                        at = builder.add(builder.add(builder.mul(const(r), tab_len), base), const(8 * g))
                        table = builder.load(builder.bitcast(builder.gep(tab_data, [at]), f32x8.as_pointer()),
                                             align=4)
                        for v in range(vecs):
                            picked = avx2_permps(builder, table, index[v])
                            builder.store(builder.fadd(builder.load(accs[r][v]), picked), accs[r][v])
            acc_data = builder.bitcast(acc_a.data, ir.FloatType().as_pointer())
            for r in range(rows):
                for v in range(vecs):
                    at = builder.add(builder.mul(const(r), acc_len), const(8 * v))
                    builder.store(builder.load(accs[r][v]),
                                  builder.bitcast(builder.gep(acc_data, [at]), f32x8.as_pointer()), align=4)
            return context.get_dummy_value()

        return types.void(tabs, wt, b0, d0, d1, acc), codegen

    return block


_make_block = _block_python if jit_disabled() else _block_intrinsic
_block = _make_block(ROWS, VECS)
_block1 = _make_block(1, VECS1)


@jit
def _rows_pass(x, wt, out, i0, rows, d0, d1, tabs, acc, xrow, vecs, first):
    """Rows ``i0 .. i0 + rows`` (ROWS, or 1 with the one-row block) over dwords ``d0 .. d1``."""
    n = out.shape[1]
    for r in range(rows):
        _tables(x, i0 + r, d0, d1, tabs[r], xrow)
    for b0 in range(0, wt.shape[0], vecs):
        if rows == 1:
            _block1(tabs, wt, b0, d0, d1, acc)
        else:
            _block(tabs, wt, b0, d0, d1, acc)
        j0 = 8 * b0
        width = min(8 * vecs, n - j0)
        for r in range(rows):
            if first:
                for e in range(width):
                    out[i0 + r, j0 + e] = acc[r, e]
            else:
                for e in range(width):
                    out[i0 + r, j0 + e] += acc[r, e]


@jit
def sign_matmul_dwords(x, w_bits, out):
    m, k = x.shape
    if not padding_is_zero(w_bits, k):
        return False
    n_dwords = 2 * w_bits.shape[1]
    full = m // ROWS * ROWS
    # the one-row block takes VECS1 vectors, a multiple of VECS: the form padded for both
    wt = dwords_of(w_bits, max(VECS, VECS1))
    span = min(n_dwords, PASS_DWORDS)
    tabs = np.empty((min(m, ROWS) if full else 1, 8 * GROUPS * span), np.float32)
    acc = np.empty((ROWS, 8 * max(VECS, VECS1)), np.float32)
    xrow = np.empty(32 * span, np.float32)
    for d0 in range(0, n_dwords, span):
        d1 = min(n_dwords, d0 + span)
        for i0 in range(0, full, ROWS):
            _rows_pass(x, wt, out, i0, ROWS, d0, d1, tabs, acc, xrow, VECS, d0 == 0)
        for i in range(full, m):
            _rows_pass(x, wt, out, i, 1, d0, d1, tabs, acc, xrow, VECS1, d0 == 0)
    return True


def dwords_scratch(k):
    """``(tabs, acc)`` scratch of :func:`sign_dot_dwords` for rows of ``k`` inputs: (2, 8 GROUPS
    span) and (ROWS, 8 VECS1) float32 (row 1 of ``tabs`` holds the row's copy)."""
    span = min(2 * (-(-k // 64)), PASS_DWORDS)
    return np.empty((2, 8 * GROUPS * span), np.float32), np.empty((ROWS, 8 * max(VECS, VECS1)), np.float32)


@jit
def sign_dot_dwords(x, wt, out, tabs, acc):
    """``out = x @ sign(W)`` for float32 rows ``x`` (m, k) C-contiguous, from W's word form ``wt``
    (``dwords_of(w_bits, VECS1)``, made once by the caller), a row at a time by the one-row
    block: ``sign_matmul_dwords``'s lone-row path without the per-call form; ``tabs``, ``acc``
    from :func:`dwords_scratch`. Within float rounding (the bound of ``exact``)."""
    m = x.shape[0]
    n_dwords = wt.shape[1]
    span = min(n_dwords, PASS_DWORDS)
    xrow = tabs[1]
    for i in range(m):
        for d0 in range(0, n_dwords, span):
            _rows_pass(x, wt, out, i, 1, d0, min(n_dwords, d0 + span), tabs, acc, xrow, VECS1, d0 == 0)
