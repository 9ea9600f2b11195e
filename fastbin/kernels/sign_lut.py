"""``x @ sign(W)`` for a few float32 rows by table lookup (T-MAC's idea), on
AVX-512: per group of 4 inputs, the 16 signed sums ``±x0 ±x1 ±x2 ±x3`` are
made once per row, and each output's 4 weight bits of the group (a nibble,
one per byte) pick its sum with one ``vpermps`` lane: one permute and one add
per 4 inputs and 16 outputs, where a multiply-add product needs 4 FMAs.

* ``lut_nibbles(w_bits, n_bits) -> nib``: uint8 (ceil(k/4), n_pad), ``nib[g, j]``
  = bits ``4g .. 4g+3`` of row ``j`` of the packed signs (bit 1 means -1),
  ``n_pad`` = n rounded up to 64 (zero columns past n).
* ``sign_dot_lut(x, nib, out, tab, acc)``: ``out`` (m, n) float32 = ``x @
  sign(W)`` for float32 ``x`` (m, k); ``tab`` (ceil(k/4) * 16,) float32 and
  ``acc`` (64,) float32 are scratch (the caller's, so a fused call allocates
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
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import jit, jit_disabled

__all__ = ["lut_nibbles", "sign_dot_lut", "lut_scratch"]

#: outputs per call of the block kernel (4 vectors of 16 lanes)
BLOCK = 64


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
    """``(tab, acc)`` scratch of :func:`sign_dot_lut` for rows of ``n_bits`` inputs."""
    return np.empty(-(-n_bits // 4) * 16, np.float32), np.empty(BLOCK, np.float32)


def _lut_block_python(tab, nib, j, acc):
    k4 = nib.shape[0]
    total = np.zeros(BLOCK, np.float32)
    table = tab[: k4 * 16].reshape(k4, 16)
    for g in range(k4):
        total += table[g, nib[g, j : j + BLOCK]]
    acc[:] = total


@intrinsic
def _lut_block_llvm(typingctx, tab, nib, j, acc):
    """``acc[0:64] = sum_g tab[16 g + nib[g, j + c]]`` for c < 64: per group one
    16-float table load, four 16-byte nibble loads widened to i32 lanes, four
    ``vpermps`` and four adds into four vector accumulators (registers)."""
    ok = (isinstance(tab, types.Array) and tab.ndim == 1 and tab.layout == "C" and tab.dtype == types.float32
          and isinstance(nib, types.Array) and nib.ndim == 2 and nib.layout == "C" and nib.dtype == types.uint8
          and isinstance(acc, types.Array) and acc.ndim == 1 and acc.layout == "C"
          and acc.dtype == types.float32 and isinstance(j, types.Integer))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        tab_v, nib_v, j_v, acc_v = args
        tab_t, nib_t, j_t, acc_t = signature.args
        j_v = context.cast(builder, j_v, j_t, types.intp)
        tab_a = context.make_array(tab_t)(context, builder, tab_v)
        nib_a = context.make_array(nib_t)(context, builder, nib_v)
        acc_a = context.make_array(acc_t)(context, builder, acc_v)
        f32x16, i32x16, i8x16 = ir.VectorType(ir.FloatType(), 16), ir.VectorType(ir.IntType(32), 16), \
            ir.VectorType(ir.IntType(8), 16)
        intp = context.get_value_type(types.intp)
        permvar = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32x16, [f32x16, i32x16]),
                                                 "llvm.x86.avx512.permvar.sf.512")
        k4, n_pad = cgutils.unpack_tuple(builder, nib_a.shape, 2)
        accs = [cgutils.alloca_once_value(builder, ir.Constant(f32x16, None)) for _ in range(4)]
        with cgutils.for_range(builder, k4) as loop:
            g = loop.index
            t_ptr = builder.gep(tab_a.data, [builder.mul(g, ir.Constant(intp, 16))])
            table = builder.load(builder.bitcast(t_ptr, f32x16.as_pointer()), align=4)
            row = builder.gep(nib_a.data, [builder.add(builder.mul(g, n_pad), j_v)])
            for c in range(4):
                n_ptr = builder.bitcast(builder.gep(row, [ir.Constant(intp, 16 * c)]), i8x16.as_pointer())
                index = builder.zext(builder.load(n_ptr, align=1), i32x16)
                picked = builder.call(permvar, [table, index])
                builder.store(builder.fadd(builder.load(accs[c]), picked), accs[c])
        for c in range(4):
            out_ptr = builder.bitcast(builder.gep(acc_a.data, [ir.Constant(intp, 16 * c)]), f32x16.as_pointer())
            builder.store(builder.load(accs[c]), out_ptr, align=4)
        return context.get_dummy_value()

    return types.void(tab, nib, j, acc), codegen


_lut_block = _lut_block_python if jit_disabled() else _lut_block_llvm


@jit
def _tables(row, tab):
    """``tab[16 g + e] = sum_q (-1 if bit q of e else 1) * row[4 g + q]`` (zeros past the row):
    the four pair sums of inputs (0, 1) and of (2, 3), then their 16 sums."""
    k = row.shape[0]
    zero = np.float32(0)
    for g in range(tab.shape[0] // 16):
        t = 4 * g
        v0 = row[t] if t < k else zero
        v1 = row[t + 1] if t + 1 < k else zero
        v2 = row[t + 2] if t + 2 < k else zero
        v3 = row[t + 3] if t + 3 < k else zero
        lo0, lo1, lo2, lo3 = v0 + v1, v1 - v0, v0 - v1, -v0 - v1
        hi0, hi1, hi2, hi3 = v2 + v3, v3 - v2, v2 - v3, -v2 - v3
        base = 16 * g
        tab[base + 0], tab[base + 1], tab[base + 2], tab[base + 3] = lo0 + hi0, lo1 + hi0, lo2 + hi0, lo3 + hi0
        tab[base + 4], tab[base + 5], tab[base + 6], tab[base + 7] = lo0 + hi1, lo1 + hi1, lo2 + hi1, lo3 + hi1
        tab[base + 8], tab[base + 9], tab[base + 10], tab[base + 11] = lo0 + hi2, lo1 + hi2, lo2 + hi2, lo3 + hi2
        tab[base + 12], tab[base + 13], tab[base + 14], tab[base + 15] = lo0 + hi3, lo1 + hi3, lo2 + hi3, lo3 + hi3


@jit
def sign_dot_lut(x, nib, out, tab, acc):
    m = x.shape[0]
    n = out.shape[1]
    for i in range(m):
        _tables(x[i], tab)
        for j in range(0, n, BLOCK):
            _lut_block(tab, nib, j, acc)
            for c in range(min(BLOCK, n - j)):
                out[i, j + c] = acc[c]

