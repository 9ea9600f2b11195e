"""``x @ sign(W)`` for float32 rows by table lookup (T-MAC's idea), on
AVX-512: per group of 4 inputs, the 16 signed sums ``±x0 ±x1 ±x2 ±x3`` are
made once per row, and each output's 4 weight bits of the group (a nibble,
one per byte) pick its sum with one ``vpermps`` lane: one permute and one add
per 4 inputs and 16 outputs, where a multiply-add product needs 4 FMAs.

* ``nibbles_of(w_bits, n_bits) -> nib``, the nibble form: uint8 (ceil(k/4), n_pad), ``nib[g, j]``
  = bits ``4g .. 4g+3`` of row ``j`` of the packed signs (bit 1 means -1),
  ``n_pad`` = n rounded up to 64 (zero columns past n).
* ``nibbles_into(w_bits, n_bits, nib, times=1)``: the same (times ``times``), jitted,
  into ``nib`` of any unsigned dtype (``sign_matmul``'s float32 path converts per
  call: k/4 bytes per output, a sixteenth of unpacking ``W`` to float32;
  ``avx512_int16`` takes twice the nibbles as uint16).
* ``sign_matmul_lut(x, w_bits, out) -> bool`` / ``sign_matmul_lut_parallel``:
  ``sign_matmul_float``'s contract for float32 ``x`` (False, writing
  nothing, for non-zero padding bits): the nibbles made per call, then rows
  4 at a time (tables of 4 rows, each nibble vector loaded once for the 4),
  row blocks over threads in the parallel one; in passes over as many groups
  of inputs as keep a pass's nibbles within ``chunk_bytes`` (the planner passes
  the table's ``lut_chunk_bytes``), each pass adding to ``out``.
* ``sign_dot_lut(x, nib, out, tab, acc)``: ``out`` (m, n) float32 = ``x @
  sign(W)`` for float32 ``x`` (m, k); ``tab`` (1, ceil(k/4) * 16) float32 and
  ``acc`` (1, 64) float32 are scratch (``lut_scratch``) (the caller's, so a fused call allocates
  nothing). A sum of the k terms ``±x`` in another order than BLAS's: within
  float rounding (the bound of ``fastbin.kernels.sign_product.exact``), not bit for bit.
* ``nibbles_of_weights(w) -> nib``: the nibble form of ``sign(w)`` straight from real
  weights ``w`` (k, n) (one pass along its rows; no packing first).
* ``lut_product(x, nib, out)`` / ``lut_product_parallel``: the many-row product on
  a nibble form (``sign_matmul_lut`` is it on packed bits; ``fastbin.ops.dense_sign_matmul``
  calls it with nibbles from the weights or a model's cache).
* ``index_words(w_bits, n_bits) -> idx``: uint16, twice the nibbles: the index form of
  the int16 tables of ``fastbin.kernels.sign_product.avx512_int16`` (AVX-512BW).
* ``lut16_product(x, idx, out)`` / ``lut16_product_parallel``, ``sign_matmul_lut16(x,
  w_bits, out) -> bool`` / ``sign_matmul_lut16_parallel``: the exact int32 product of
  uint8 rows by those int16 tables (``sign_matmul_uint8``'s contract), through the
  same passes over rows and groups as the float32 tables (``_lookup_passes``: the
  accumulator dtype picks the table kind).
* The exact product by these lookups is ``fastbin.kernels.sign_product.exact``'s
  (``exact_lut_product``).

The 16 table entries of a group are one 16-lane vector (four broadcasts, four
multiplies by constant ±1 vectors, three adds: ``_tables_group_intrinsic``).

Available where ``fastbin._config.FLOAT_LUT`` (x86-64 with AVX-512F, as
Numba's target says): the permute is ``llvm.x86.avx512.permvar.sf.512``,
which no other target has, so nothing calls it elsewhere (a plain-Python twin
serves ``NUMBA_DISABLE_JIT=1``); the int16 kernels where ``INT16_LUT`` (AVX-512BW).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..._config import jit, jit_disabled, jit_parallel
from ..intrinsics import intp_args
from ..pack import padding_is_zero
from .avx512_int16 import TABLE as TABLE16
from .avx512_int16 import _lut16_block, _tables16_group

__all__ = [
    "sign_dot_lut",
    "lut_scratch",
    "nibbles_into",
    "sign_matmul_lut",
    "sign_matmul_lut_parallel",
    "lut_product",
    "lut_product_parallel",
    "nibbles_of_weights",
    "nibbles_of",
    "index_words",
    "lut16_product",
    "lut16_product_parallel",
    "sign_matmul_lut16",
    "sign_matmul_lut16_parallel",
]

#: outputs per call of the block kernel (4 vectors of 16 lanes)
BLOCK = 64
#: rows per block of the many-row kernel (4 x 4 vector accumulators)
ROWS = 4


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


def _lut_block_intrinsic(rows, vecs=4):
    """The intrinsic ``block(tabs, nib, j, acc)`` for ``rows`` rows and ``16 * vecs``
    outputs: ``acc[r, c] = sum_g tabs[r, 16 g + nib[g, j + c]]`` for ``c < 16 * vecs``.
    Per group ``vecs`` 16-byte nibble loads widened to i32 lanes once, then per row
    one 16-float table load, ``vecs`` ``vpermps`` and as many adds into
    ``vecs * rows`` vector accumulators (registers). Narrower blocks serve the
    last outputs of a row, so a width of 16 j + 8 costs 16 (j + 1), not a full 64."""

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
            tabs_v, nib_v, j_v, acc_v = intp_args(context, builder, signature, args)
            tabs_t, nib_t, _, acc_t = signature.args
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
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(f32x16, None)) for _ in range(vecs)]
                    for _ in range(rows)]
            with cgutils.for_range(builder, k4) as loop:
                g = loop.index
                row = builder.gep(nib_a.data, [builder.add(builder.mul(g, n_pad), j_v)])
                index = []
                for c in range(vecs):
                    n_ptr = builder.bitcast(builder.gep(row, [ir.Constant(intp, 16 * c)]), i8x16.as_pointer())
                    index.append(builder.zext(builder.load(n_ptr, align=1), i32x16))
                g16 = builder.mul(g, ir.Constant(intp, 16))
                for r in range(rows):
                    at = builder.add(builder.mul(ir.Constant(intp, r), tab_len), g16)
                    t_ptr = builder.bitcast(builder.gep(tabs_a.data, [at]), f32x16.as_pointer())
                    table = builder.load(t_ptr, align=4)
                    for c in range(vecs):
                        picked = builder.call(permvar, [table, index[c]])
                        builder.store(builder.fadd(builder.load(accs[r][c]), picked), accs[r][c])
            for r in range(rows):
                for c in range(vecs):
                    at = builder.add(builder.mul(ir.Constant(intp, r), acc_len), ir.Constant(intp, 16 * c))
                    out_ptr = builder.bitcast(builder.gep(acc_a.data, [at]), f32x16.as_pointer())
                    builder.store(builder.load(accs[r][c]), out_ptr, align=4)
            return context.get_dummy_value()

        return types.void(tabs, nib, j, acc), codegen

    return block


#: one row (few-row calls), and ``ROWS`` rows (many-row calls)
_lut_block = _lut_block_python if jit_disabled() else _lut_block_intrinsic(1)
_lut_block4 = _lut_block_python if jit_disabled() else _lut_block_intrinsic(ROWS)
#: ``ROWS`` rows, the last 48, 32 or 16 outputs of a row
_lut_block4_48 = _lut_block_python if jit_disabled() else _lut_block_intrinsic(ROWS, 3)
_lut_block4_32 = _lut_block_python if jit_disabled() else _lut_block_intrinsic(ROWS, 2)
_lut_block4_16 = _lut_block_python if jit_disabled() else _lut_block_intrinsic(ROWS, 1)


@jit
def _lut_block4_upto(tabs, nib, j, width, acc):
    """The ``ROWS``-row block at output ``j``, as wide as the ``width`` outputs left need
    (16, 32, 48 or 64)."""
    if width > 48:
        _lut_block4(tabs, nib, j, acc)
    elif width > 32:
        _lut_block4_48(tabs, nib, j, acc)
    elif width > 16:
        _lut_block4_32(tabs, nib, j, acc)
    else:
        _lut_block4_16(tabs, nib, j, acc)


@jit
def nibbles_into(w_bits, n_bits, nib, times=1):
    """``nib[g, j]`` = bits ``4g .. 4g+3`` of row ``j`` of ``w_bits``, times ``times``
    (``nib`` of any unsigned dtype that holds ``15 * times``). The words are
    transposed first (``words[t, j]`` = word ``t`` of row ``j``, zero columns past
    n), so that every group's shift and mask runs along contiguous outputs and
    vectorises; a byte-by-byte transpose ran scalar (measurements:
    benchmarks/results/2026-12-03-rocketlake-lut16.md)."""
    n, n_words = w_bits.shape
    k4, n_pad = nib.shape
    words = np.zeros((n_words, n_pad), np.uint64)
    for j0 in range(0, n, 64):  # 64 rows of w_bits stay in L1 while their words are spread
        j1 = min(n, j0 + 64)
        for t in range(n_words):
            row = words[t]
            for j in range(j0, j1):
                row[j] = w_bits[j, t]
    scale = np.uint64(times)
    for g in range(k4):
        src = words[g // 16]
        shift = np.uint64(4 * (g % 16))
        dst = nib[g]
        for j in range(n_pad):
            dst[j] = ((src[j] >> shift) & np.uint64(15)) * scale


# ---------------------------------------------------------------------------
# The passes over rows and groups, shared by the float32 tables (float32
# accumulators) and the int16 tables of ``avx512_int16`` (int32 accumulators):
# the accumulator dtype picks the table kind (``_pass_tables``, ``_lookup_block``,
# and ``_tables`` by the table dtype through ``_table_group``: Python functions
# with a jitted overload each, so the choice is made at compile time and
# ``NUMBA_DISABLE_JIT=1`` runs the same code).
# ---------------------------------------------------------------------------
def _pass_tables(acc_like, rows, groups):
    """Table scratch for ``rows`` rows and ``groups`` groups: int16, ``TABLE16`` lanes
    a group (``avx512_int16``) for int32 ``acc_like``, else float32, 16 a group."""
    if acc_like.dtype == np.int32:
        return np.empty((rows, groups * TABLE16), np.int16)
    return np.empty((rows, groups * 16), np.float32)


@overload(_pass_tables)
def _pass_tables_jit(acc_like, rows, groups):
    if acc_like.dtype == types.int32:
        return lambda acc_like, rows, groups: np.empty((rows, groups * TABLE16), np.int16)
    return lambda acc_like, rows, groups: np.empty((rows, groups * 16), np.float32)


def _lookup_block(tabs, nib, j, width, acc):
    """The ROWS-row block at output ``j``: int16 tables 64 outputs wide, float32 ones
    as wide as the ``width`` outputs left need (16, 32, 48 or 64)."""
    if tabs.dtype == np.int16:
        _lut16_block(tabs, nib, j, acc)
    else:
        _lut_block4_upto(tabs, nib, j, width, acc)


@overload(_lookup_block)
def _lookup_block_jit(tabs, nib, j, width, acc):
    if tabs.dtype == types.int16:
        return lambda tabs, nib, j, width, acc: _lut16_block(tabs, nib, j, acc)
    return lambda tabs, nib, j, width, acc: _lut_block4_upto(tabs, nib, j, width, acc)


@jit
def _row_block(x, nib, out, i0, g0, g1, tabs, acc):
    """Rows ``i0 .. i0 + 4`` of ``out`` (fewer at the end: zero tables) over the groups
    ``g0 .. g1`` of inputs: written for the first groups (``g0 == 0``), added after.
    ``tabs`` (4, >= (g1 - g0) tables): the tables of the pass, from the start of each row."""
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
        _lookup_block(tabs, part, j, n - j, acc)
        width = min(BLOCK, n - j)
        for r in range(rows):  # the pass test outside the copy loops: they vectorise
            dst = out[i0 + r]
            src = acc[r]
            if g0 == 0:
                for c in range(width):
                    dst[j + c] = src[c]
            else:
                for c in range(width):
                    dst[j + c] += src[c]


@jit
def _group_chunk(nib, chunk_bytes):
    """Groups per pass over the rows: the nibble (index) rows of a pass fit ``chunk_bytes``."""
    return max(1, min(nib.shape[0], chunk_bytes // (nib.shape[1] * nib.itemsize)))


@jit
def _lookup_passes(x, nib, out, chunk_bytes, acc_like):
    """``out = x @ sign(W)`` from the nibble (index) form ``nib``: rows 4 at a time, in
    passes over the groups whose nibbles fit ``chunk_bytes``; the tables of
    ``acc_like``'s kind (float32: float32 tables, int32: int16 tables)."""
    chunk = _group_chunk(nib, chunk_bytes)
    tabs = _pass_tables(acc_like, ROWS, chunk)
    acc = np.empty((ROWS, BLOCK), acc_like.dtype)
    for g0 in range(0, nib.shape[0], chunk):
        g1 = min(nib.shape[0], g0 + chunk)
        for i0 in range(0, x.shape[0], ROWS):
            _row_block(x, nib, out, i0, g0, g1, tabs, acc)


@jit_parallel
def _lookup_passes_parallel(x, nib, out, chunk_bytes, acc_like):
    """:func:`_lookup_passes` with the blocks of 4 rows over threads."""
    chunk = _group_chunk(nib, chunk_bytes)
    n_blocks = (x.shape[0] + ROWS - 1) // ROWS
    for g0 in range(0, nib.shape[0], chunk):
        g1 = min(nib.shape[0], g0 + chunk)
        for b in prange(n_blocks):
            tabs = _pass_tables(acc_like, ROWS, g1 - g0)
            acc = np.empty((ROWS, BLOCK), acc_like.dtype)
            _row_block(x, nib, out, b * ROWS, g0, g1, tabs, acc)


@jit
def _nibble_form(w_bits, k, like, times):
    """A new (ceil(k/4), n_pad) array of ``like``'s dtype holding the nibbles of
    ``w_bits`` times ``times`` (:func:`nibbles_into`)."""
    nib = np.empty(((k + 3) // 4, (w_bits.shape[0] + BLOCK - 1) // BLOCK * BLOCK), like.dtype)
    nibbles_into(w_bits, k, nib, times)
    return nib


@jit
def nibbles_of(w_bits, k):
    """The nibble form (module doc) of packed signs ``w_bits`` of ``k`` bits a row."""
    return _nibble_form(w_bits, k, np.empty(0, np.uint8), 1)


@jit
def index_words(w_bits, k):
    """The uint16 index form (ceil(k/4), n_pad) of the int16 tables (``avx512_int16``):
    twice the nibbles (the lane of table entry ``e`` is ``2e``)."""
    return _nibble_form(w_bits, k, np.empty(0, np.uint16), 2)


@jit
def lut_product(x, nib, out, chunk_bytes):
    """``out`` (m, n) = ``x @ sign(W)`` for float32 (or uint8: exact while
    ``255 * k <= 2**24``) ``x`` (m, k) and the nibble form ``nib`` (ceil(k/4), n_pad)
    of ``W``, by float32 tables."""
    _lookup_passes(x, nib, out, chunk_bytes, np.empty(0, np.float32))


@jit  # the threads are _lookup_passes_parallel's
def lut_product_parallel(x, nib, out, chunk_bytes):
    """:func:`lut_product` with the blocks of 4 rows over threads."""
    _lookup_passes_parallel(x, nib, out, chunk_bytes, np.empty(0, np.float32))


@jit
def lut16_product(x, idx, out, chunk_bytes):
    """``out`` (m, n) int32 = the exact ``x @ sign(W)`` for uint8 ``x`` (m, k) and the
    index form ``idx`` (:func:`index_words`) of ``W``, by int16 tables (``avx512_int16``)."""
    _lookup_passes(x, idx, out, chunk_bytes, np.empty(0, np.int32))


@jit  # the threads are _lookup_passes_parallel's
def lut16_product_parallel(x, idx, out, chunk_bytes):
    """:func:`lut16_product` with the blocks of 4 rows over threads."""
    _lookup_passes_parallel(x, idx, out, chunk_bytes, np.empty(0, np.int32))


@jit
def sign_matmul_lut(x, w_bits, out, chunk_bytes):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    lut_product(x, nibbles_of(w_bits, x.shape[1]), out, chunk_bytes)
    return True


@jit
def sign_matmul_lut_parallel(x, w_bits, out, chunk_bytes):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    lut_product_parallel(x, nibbles_of(w_bits, x.shape[1]), out, chunk_bytes)
    return True


@jit
def sign_matmul_lut16(x, w_bits, out, chunk_bytes):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    lut16_product(x, index_words(w_bits, x.shape[1]), out, chunk_bytes)
    return True


@jit
def sign_matmul_lut16_parallel(x, w_bits, out, chunk_bytes):
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    lut16_product_parallel(x, index_words(w_bits, x.shape[1]), out, chunk_bytes)
    return True


@jit
def nibbles_of_weights(w):
    """The nibble form (ceil(k/4), n_pad) uint8 of ``sign(w)`` for real weights
    ``w`` (k, n) of a float dtype, C-contiguous, straight from the floats:
    ``nib[g, j]`` has bit ``q`` set where ``w[4 g + q, j] < 0`` (sign(0) = sign(-0.0)
    = +1, NaN +1, as ``signs``), rows past k and columns past n zero. One pass
    over ``w`` along its rows, where packing it first reads it by columns."""
    k, n = w.shape
    k4 = (k + 3) // 4
    nib = np.zeros((k4, (n + BLOCK - 1) // BLOCK * BLOCK), np.uint8)
    zero = w.dtype.type(0)
    for g in range(k // 4):
        out = nib[g]
        r0, r1, r2, r3 = w[4 * g], w[4 * g + 1], w[4 * g + 2], w[4 * g + 3]
        for j in range(n):  # selects, not branches: the loop vectorises
            out[j] = ((np.uint8(1) if r0[j] < zero else np.uint8(0)) | (np.uint8(2) if r1[j] < zero else np.uint8(0))
                      | (np.uint8(4) if r2[j] < zero else np.uint8(0)) | (np.uint8(8) if r3[j] < zero else np.uint8(0)))
    if k % 4:
        out = nib[k4 - 1]
        for q in range(k % 4):
            src = w[4 * (k4 - 1) + q]
            for j in range(n):
                if src[j] < zero:
                    out[j] |= np.uint8(1 << q)
    return nib


def _table_sign(q, e):
    """The sign of input ``q`` of a group in table entry ``e``: -1 where bit ``q``
    of ``e`` is set (bit 1 means -1)."""
    return -1.0 if (e >> q) & 1 else 1.0


def _tables_group_python(row, t, tab, base):
    v = [np.float32(row[t + q]) for q in range(4)]
    for e in range(16):
        total = np.float32(v[0] * np.float32(_table_sign(0, e)))
        for q in range(1, 4):
            total = np.float32(total + v[q] * np.float32(_table_sign(q, e)))
        tab[base + e] = total


@intrinsic
def _tables_group_intrinsic(typingctx, row, t, tab, base):
    """``tab[base + e] = ((±row[t] ± row[t+1]) ± row[t+2]) ± row[t+3]`` for the 16
    entries ``e`` (the signs of ``_table_sign``), one 16-lane vector: four
    broadcasts, four multiplies by constant ±1 vectors (exact), three adds and
    one store. ``row`` float32 or uint8 (converted exactly), ``tab`` float32, both 1-D C."""
    ok = (isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C"
          and row.dtype in (types.float32, types.uint8) and isinstance(tab, types.Array) and tab.ndim == 1
          and tab.layout == "C" and tab.dtype == types.float32 and isinstance(t, types.Integer)
          and isinstance(base, types.Integer))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        row_v, t_v, tab_v, base_v = intp_args(context, builder, signature, args)
        row_t, _, tab_t, _ = signature.args
        row_a = context.make_array(row_t)(context, builder, row_v)
        tab_a = context.make_array(tab_t)(context, builder, tab_v)
        f32 = ir.FloatType()
        f32x16 = ir.VectorType(f32, 16)
        intp = context.get_value_type(types.intp)
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), 16), [0] * 16)
        total = None
        for q in range(4):
            value = builder.load(builder.gep(row_a.data, [builder.add(t_v, ir.Constant(intp, q))]))
            if row_t.dtype == types.uint8:
                value = builder.uitofp(value, f32)
            one = builder.insert_element(ir.Constant(f32x16, None), value, ir.Constant(ir.IntType(32), 0))
            broadcast = builder.shuffle_vector(one, ir.Constant(f32x16, None), lanes)
            signs = ir.Constant(f32x16, [_table_sign(q, e) for e in range(16)])
            term = builder.fmul(broadcast, signs)
            total = term if total is None else builder.fadd(total, term)
        out_ptr = builder.bitcast(builder.gep(tab_a.data, [base_v]), f32x16.as_pointer())
        builder.store(total, out_ptr, align=4)
        return context.get_dummy_value()

    return types.void(row, t, tab, base), codegen


_tables_group = _tables_group_python if jit_disabled() else _tables_group_intrinsic


def _table_group(row, t, tab, base):
    """One group's table into ``tab`` from ``base``, of ``tab``'s kind: float32 sums
    (``_tables_group``, 16 lanes) or int16 ones (``avx512_int16``, ``TABLE16`` lanes)."""
    if tab.dtype == np.int16:
        _tables16_group(row, t, tab, base)
    else:
        _tables_group(row, t, tab, base)


@overload(_table_group)
def _table_group_jit(row, t, tab, base):
    if tab.dtype == types.int16:
        return lambda row, t, tab, base: _tables16_group(row, t, tab, base)
    return lambda row, t, tab, base: _tables_group(row, t, tab, base)


def _group_width(tab):
    """Table lanes per group in ``tab``: ``TABLE16`` for int16, 16 for float32."""
    return TABLE16 if tab.dtype == np.int16 else 16


@overload(_group_width)
def _group_width_jit(tab):
    width = TABLE16 if tab.dtype == types.int16 else 16
    return lambda tab: width


@jit
def _tables(row, tab, g0=0, g1=-1):
    """``tab[w (g - g0) + e] = sum_q (-1 if bit q of e else 1) * row[4 g + q]`` for the groups
    ``g0 <= g < g1`` (default: all that ``tab`` holds; zeros past the row), ``w`` lanes a group
    (``_group_width``): float32 ``tab`` summed in the order q = 0, 1, 2, 3 (the products by ±1
    are exact), int16 ``tab`` (uint8 rows) exactly, entry ``e`` in lane ``2e``."""
    k = row.shape[0]
    width = _group_width(tab)
    if g1 < 0:
        g1 = g0 + tab.shape[0] // width
    full = min(g1, k // 4)
    for g in range(g0, full):
        _table_group(row, 4 * g, tab, width * (g - g0))
    if full < g1:  # the group the row ends in, and groups past it: the same sums on zero-padded copies
        pad = np.zeros(4, row.dtype)
        for g in range(max(g0, full), g1):
            for q in range(4):
                pad[q] = row[4 * g + q] if 4 * g + q < k else 0
            _table_group(pad, 0, tab, width * (g - g0))


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
