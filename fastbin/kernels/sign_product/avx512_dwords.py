"""``x @ sign(W)`` for one or a few float32 rows by table lookups (``vpermps``, as
``avx512``) whose indices come straight from 32-bit pieces of the packed rows: no nibble
form of ``W`` per call, only a transpose of its words.

``vpermps`` reads only bits 0-3 of each 32-bit index lane. So with lane ``c`` holding
32 bits ``32 h .. 32 h + 31`` of a word of output ``j + c``'s packed row, the lane already
indexes the 16-entry table of the word's group ``8 h`` (its inputs ``32 h .. 32 h + 3``),
and after a shift right by 4 that of group ``8 h + 1``, and so on: per group of 4 inputs
and 16 outputs one permute, one add and one shift, where the mask kernels
(``avx512_masked``, ``portable.sign_matmul_bits``) take a blend and an add per 16 inputs,
and the nibble form of ``avx512.sign_matmul_lut`` costs a pass over 64-bit lanes per group.

The words reach the lanes through the 8-row panels of ``binary_product.blocked`` (one
transpose of ``W``'s words per call, ``transpose_8x8``: ``panels[8 q' ..]`` word-major, 8
outputs a panel): per word and 16 outputs two panel loads and two dword shuffles
(``vpermt2d``) give the low and the high halves of the 16 words.

The tables are ``avx512``'s (``_tables``: per group the 16 sums ``((±x0 ± x1) ± x2) ±
x3``), so every output is a sum of the ``k`` terms ``±x[t]`` in some order, within float
rounding of the reference (``fastbin.reference.THRESHOLD_BOUND_FACTOR``). Inputs past
``k`` have zero tables and zero padding bits.

* ``panel_form(w_bits, n_pad) -> panels``: uint64 (n_pad / 8 * n_words, 8), ``panels[q *
  n_words + t, r]`` = word ``t`` of row ``8 q + r`` (zero rows past n).
* ``sign_matmul_lut_dwords(x, w_bits, out) -> bool``: ``sign_matmul_bits``' contract for a
  C-contiguous float32 ``x`` (m, k), ``w_bits`` (n, ceil(k/64)) uint64, ``out`` (m, n)
  float32; False, writing nothing, for non-zero padding bits. A row at a time, 64
  outputs a block (16 for the last ones).

Available where ``fastbin._config.FLOAT_LUT`` (AVX-512F: ``llvm.x86.avx512.permvar.sf.512``
exists nowhere else; a plain-Python twin serves ``NUMBA_DISABLE_JIT=1``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled
from ..binary_product._lanes import transpose_8x8
from ..intrinsics import intp_args
from ..pack import padding_is_zero
from .avx512 import _tables

__all__ = ["BLOCK", "panel_form", "sign_matmul_lut_dwords"]

#: outputs per block (4 vectors of 16 lanes); the last outputs of a row take 16-wide blocks
BLOCK = 64


def _dword_block_python(tabs, panels, j, acc):
    width = acc.shape[1]
    n_words = tabs.shape[1] // 256  # the tables hold 16 groups (256 entries) a word
    table = tabs[0].reshape(-1, 16)
    for c in range(width):
        q, r = divmod(j + c, 8)
        total = np.float32(0)
        for t in range(n_words):
            word = int(panels[q * n_words + t, r])
            for g in range(16):
                total = np.float32(total + table[16 * t + g, (word >> (4 * g)) & 15])
        acc[0, c] = total


def _dword_block_intrinsic(vecs):
    """``block(tabs, panels, j, acc)``: ``acc[0, c] = sum_t sum_g tabs[0, 16 (16 t + g) +
    ((word t of output j + c) >> 4 g) & 15]`` for ``c < 16 * vecs`` (``j`` a multiple of 16;
    ``tabs`` (1, 256 * n_words), ``panels`` the panel form): per word ``2 vecs`` panel loads
    and dword shuffles, then per group one table load and per vector a ``vpermps``, an add
    and a shift."""

    @intrinsic
    def block(typingctx, tabs, panels, j, acc):
        ok = (isinstance(tabs, types.Array) and tabs.ndim == 2 and tabs.layout == "C"
              and tabs.dtype == types.float32 and isinstance(panels, types.Array) and panels.ndim == 2
              and panels.layout == "C" and panels.dtype == types.uint64 and isinstance(acc, types.Array)
              and acc.ndim == 2 and acc.layout == "C" and acc.dtype == types.float32 and isinstance(j, types.Integer))
        if not ok:
            return None

        def codegen(context, builder, signature, args):
            tabs_v, p_v, j_v, acc_v = intp_args(context, builder, signature, args)
            tabs_t, p_t, _, acc_t = signature.args
            tabs_a = context.make_array(tabs_t)(context, builder, tabs_v)
            p_a = context.make_array(p_t)(context, builder, p_v)
            acc_a = context.make_array(acc_t)(context, builder, acc_v)
            i32 = ir.IntType(32)
            f32x16, i32x16 = ir.VectorType(ir.FloatType(), 16), ir.VectorType(i32, 16)
            i64x8 = ir.VectorType(ir.IntType(64), 8)
            intp = context.get_value_type(types.intp)
            permvar = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32x16, [f32x16, i32x16]),
                                                     "llvm.x86.avx512.permvar.sf.512")
            n_words = builder.udiv(cgutils.unpack_tuple(builder, tabs_a.shape, 2)[1], ir.Constant(intp, 256))
            q0 = builder.udiv(j_v, ir.Constant(intp, 8))
            accs = [cgutils.alloca_once_value(builder, ir.Constant(f32x16, None)) for _ in range(vecs)]
            four = ir.Constant(i32x16, [4] * 16)
            low_lanes = ir.Constant(ir.VectorType(i32, 16), [2 * u for u in range(16)])
            high_lanes = ir.Constant(ir.VectorType(i32, 16), [2 * u + 1 for u in range(16)])
            with cgutils.for_range(builder, n_words) as loop:
                t = loop.index
                halves = [[], []]
                for c in range(vecs):
                    pair = []
                    for h in range(2):  # the two panels of 8 outputs each
                        q = builder.add(q0, ir.Constant(intp, 2 * c + h))
                        at = builder.mul(builder.add(builder.mul(q, n_words), t), ir.Constant(intp, 8))
                        ptr = builder.bitcast(builder.gep(p_a.data, [at]), i64x8.as_pointer())
                        pair.append(builder.bitcast(builder.load(ptr, align=8), i32x16))
                    halves[0].append(builder.shuffle_vector(pair[0], pair[1], low_lanes))
                    halves[1].append(builder.shuffle_vector(pair[0], pair[1], high_lanes))
                base = builder.mul(t, ir.Constant(intp, 256))  # 16 groups of 16 entries a word
                for g in range(16):
                    index = halves[g // 8]
                    t_ptr = builder.gep(tabs_a.data, [builder.add(base, ir.Constant(intp, 16 * g))])
                    table = builder.load(builder.bitcast(t_ptr, f32x16.as_pointer()), align=4)
                    for c in range(vecs):
                        picked = builder.call(permvar, [table, index[c]])
                        builder.store(builder.fadd(builder.load(accs[c]), picked), accs[c])
                        if g % 8 < 7:
                            index[c] = builder.lshr(index[c], four)
            for c in range(vecs):
                out_ptr = builder.bitcast(builder.gep(acc_a.data, [ir.Constant(intp, 16 * c)]), f32x16.as_pointer())
                builder.store(builder.load(accs[c]), out_ptr, align=4)
            return context.get_dummy_value()

        return types.void(tabs, panels, j, acc), codegen

    return block


_block = _dword_block_python if jit_disabled() else _dword_block_intrinsic(BLOCK // 16)
_block16 = _dword_block_python if jit_disabled() else _dword_block_intrinsic(1)


@jit
def panel_form(w_bits, n_pad):
    """``panels[q * n_words + t, r]`` = word ``t`` of row ``8 q + r`` of ``w_bits`` (uint64
    (n_pad / 8 * n_words, 8)), zero rows past n: 8 x 8 vector transposes (the last 8 words
    of a row overlapping the ones before), as ``binary_product.blocked``'s panels."""
    n, n_words = w_bits.shape
    panels = np.empty((n_pad // 8 * n_words, 8), np.uint64)
    full = n // 8
    words8 = n_words // 8 * 8
    for q in range(full):
        i = q * 8
        for t in range(0, words8, 8):
            transpose_8x8(w_bits, i, t, panels, q * n_words + t)
        if words8 < n_words and n_words >= 8:
            transpose_8x8(w_bits, i, n_words - 8, panels, q * n_words + n_words - 8)
        elif words8 < n_words:
            for t in range(n_words):
                for r in range(8):
                    panels[q * n_words + t, r] = w_bits[i + r, t]
    for q in range(full, n_pad // 8):
        for t in range(n_words):
            for r in range(8):
                i = q * 8 + r
                panels[q * n_words + t, r] = w_bits[i, t] if i < n else np.uint64(0)
    return panels


@jit
def sign_matmul_lut_dwords(x, w_bits, out):
    """``out = x @ sign(W)`` (module doc); False on non-zero padding bits."""
    m, k = x.shape
    if not padding_is_zero(w_bits, k):
        return False
    n = w_bits.shape[0]
    panels = panel_form(w_bits, (n + BLOCK - 1) // BLOCK * BLOCK)
    tabs = np.empty((1, 256 * w_bits.shape[1]), np.float32)  # 16 groups of 16 entries a word
    acc = np.empty((1, BLOCK), np.float32)
    acc16 = np.empty((1, 16), np.float32)
    for i in range(m):
        _tables(x[i], tabs[0])
        for j in range(0, n, BLOCK):
            if n - j > 16:
                _block(tabs, panels, j, acc)
                for c in range(min(BLOCK, n - j)):
                    out[i, j + c] = acc[0, c]
            else:
                _block16(tabs, panels, j, acc16)
                for c in range(n - j):
                    out[i, j + c] = acc16[0, c]
    return True
