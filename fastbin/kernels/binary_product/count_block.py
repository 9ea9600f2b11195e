"""One row of packed signs against ``COLS`` rows of ``w`` at once: the packed stages of the
runtime's fused batch-1 pass (``fastbin.runtime._fused``) on CPUs with 8-word vectors.

``intrinsics.xor_count`` counts one output at a time: per 8 words two masked loads, an
XOR, a popcount and an add, then a horizontal sum per output. Here each 8-word chunk of
``a`` is loaded once for ``COLS`` outputs and the ``COLS`` counts come out of one
transposing tree (``intrinsics.tree_sum``): per chunk and output one (masked) load of
``w``, an XOR, a ``vpopcntq`` (AVX-512 VPOPCNTDQ; LLVM's generic ``ctpop`` lowering
elsewhere) and an add.

* ``xor_counts(a, w, j, last, counts)``: ``counts[c] = sum_t popcount(a[t] ^ w[min(j + c,
  last), t])`` for ``c < COLS`` and ``t < w.shape[1]``: ``a`` uint64 1-D, ``w`` uint64
  (n, n_words), ``counts`` int64 (COLS,), all C-contiguous; nothing past a row is read
  (the last chunk's loads are masked).
* ``xor_bits(a, w, j, n_bits, ints, at) -> uint64``: bit ``c`` set where ``j + c < n`` and
  ``sign * (n_bits - 2 popcount(a ^ w[j + c])) < signed`` with ``sign = ints[at + j + c]``
  (±1) and ``signed = ints[at + n + j + c]``: a packed stage's threshold test of ``COLS``
  outputs in vector lanes (``emit_below_bits``), where a scalar test per output cost as
  much as its counts.

Only generic LLVM operations; a plain-Python twin serves ``NUMBA_DISABLE_JIT=1``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit_disabled
from ..intrinsics import intp_args, is_words, popcount, tree_sum

__all__ = ["COLS", "xor_counts", "xor_bits", "emit_below_bits", "ints_ok"]

#: outputs per call (8 vector accumulators of 8 words and one tree of 8 vectors of 8 lanes)
COLS = 8


def _xor_counts_python(a, w, j, last, counts):
    for c in range(counts.shape[0]):
        row = min(j + c, last)
        counts[c] = sum(popcount(a[t] ^ w[row, t]) for t in range(w.shape[1]))


def _counts_ok(a, w, j):
    return (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.uint64
            and is_words(w) and isinstance(j, types.Integer))


def _emit_counts(context, builder, a_t, a_v, w_t, w_v, j_v, last_v):
    """The ``<COLS x i64>`` counts ``popcount(a ^ w[min(j + c, last)])`` (module doc)."""
    a_a = context.make_array(a_t)(context, builder, a_v)
    w_a = context.make_array(w_t)(context, builder, w_v)
    i1, i32, i64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
    intp = context.get_value_type(types.intp)
    vec, mask_type = ir.VectorType(i64, 8), ir.VectorType(i1, 8)
    ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), "llvm.ctpop.v8i64")
    masked_load = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec, [vec.as_pointer(), i32, mask_type, vec]), "llvm.masked.load.v8i64.p0")
    n_words = cgutils.unpack_tuple(builder, w_a.shape, 2)[1]
    rows = []
    for c in range(COLS):
        row = builder.add(j_v, ir.Constant(intp, c))
        row = builder.select(builder.icmp_signed("<", row, last_v), row, last_v)
        rows.append(builder.gep(w_a.data, [builder.mul(row, n_words)]))
    zeros = ir.Constant(vec, None)
    accs = [cgutils.alloca_once_value(builder, zeros) for _ in range(COLS)]
    lanes = ir.Constant(ir.VectorType(intp, 8), list(range(8)))
    n_chunks = builder.udiv(builder.add(n_words, ir.Constant(intp, 7)), ir.Constant(intp, 8))
    with cgutils.for_range(builder, n_chunks) as loop:
        t0 = builder.mul(loop.index, ir.Constant(intp, 8))
        left = builder.insert_element(ir.Constant(ir.VectorType(intp, 8), ir.Undefined), builder.sub(n_words, t0),
                                      ir.Constant(i32, 0))
        left = builder.shuffle_vector(left, ir.Constant(ir.VectorType(intp, 8), ir.Undefined),
                                      ir.Constant(ir.VectorType(i32, 8), [0] * 8))
        mask = builder.icmp_signed("<", lanes, left)
        a_ptr = builder.bitcast(builder.gep(a_a.data, [t0]), vec.as_pointer())
        x = builder.call(masked_load, [a_ptr, ir.Constant(i32, 8), mask, zeros])
        for c in range(COLS):
            w_ptr = builder.bitcast(builder.gep(rows[c], [t0]), vec.as_pointer())
            y = builder.call(masked_load, [w_ptr, ir.Constant(i32, 8), mask, zeros])
            builder.store(builder.add(builder.load(accs[c]), builder.call(ctpop, [builder.xor(x, y)])), accs[c])
    return tree_sum(builder, [builder.load(acc) for acc in accs], lambda b, u, v: b.add(u, v))


def emit_below_bits(context, builder, values, j_v, n_v, ints_t, ints_v, at_v):
    """``sum_c 2**c [j + c < n and sign_c * values_c < signed_c]`` (i64) for the ``<COLS x
    i64>`` ``values``, ``sign_c = ints[at + j + c]`` (±1) and ``signed_c = ints[at + n + j +
    c]`` (the layout of ``binary_product.threshold.signed_thresholds`` in the fused pass's
    ``ints``; only the lanes below ``n`` are loaded): the compare of ``below_word`` for
    ``COLS`` outputs at once. ``sign * v`` is taken as ``-v`` where ``sign < 0``."""
    i1, i32, i64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
    intp = context.get_value_type(types.intp)
    vec, mask_type = ir.VectorType(i64, COLS), ir.VectorType(i1, COLS)
    masked_load = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec, [vec.as_pointer(), i32, mask_type, vec]), "llvm.masked.load.v8i64.p0")
    ints_a = context.make_array(ints_t)(context, builder, ints_v)
    left = builder.insert_element(ir.Constant(ir.VectorType(intp, COLS), ir.Undefined), builder.sub(n_v, j_v),
                                  ir.Constant(i32, 0))
    left = builder.shuffle_vector(left, ir.Constant(ir.VectorType(intp, COLS), ir.Undefined),
                                  ir.Constant(ir.VectorType(i32, COLS), [0] * COLS))
    valid = builder.icmp_signed("<", ir.Constant(ir.VectorType(intp, COLS), list(range(COLS))), left)
    zeros = ir.Constant(vec, None)
    base = builder.add(at_v, j_v)
    sign = builder.call(masked_load, [builder.bitcast(builder.gep(ints_a.data, [base]), vec.as_pointer()),
                                      ir.Constant(i32, 8), valid, zeros])
    signed = builder.call(masked_load, [builder.bitcast(builder.gep(ints_a.data, [builder.add(base, n_v)]),
                                                        vec.as_pointer()), ir.Constant(i32, 8), valid, zeros])
    flipped = builder.select(builder.icmp_signed("<", sign, zeros), builder.neg(values), values)
    below = builder.and_(builder.icmp_signed("<", flipped, signed), valid)
    return builder.zext(builder.bitcast(below, ir.IntType(COLS)), i64)


def ints_ok(ints, *scalars):
    return (isinstance(ints, types.Array) and ints.ndim == 1 and ints.layout == "C" and ints.dtype == types.int64
            and all(isinstance(v, types.Integer) for v in scalars))


@intrinsic
def _xor_counts_llvm(typingctx, a, w, j, last, counts):
    ok = (_counts_ok(a, w, j) and isinstance(counts, types.Array) and counts.ndim == 1 and counts.layout == "C"
          and counts.dtype == types.int64 and isinstance(last, types.Integer))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        a_v, w_v, j_v, last_v, counts_v = intp_args(context, builder, signature, args)
        a_t, w_t, _, _, counts_t = signature.args
        totals = _emit_counts(context, builder, a_t, a_v, w_t, w_v, j_v, last_v)
        counts_a = context.make_array(counts_t)(context, builder, counts_v)
        builder.store(totals, builder.bitcast(counts_a.data, totals.type.as_pointer()), align=8)
        return context.get_dummy_value()

    return types.void(a, w, j, last, counts), codegen


def _xor_bits_python(a, w, j, n_bits, ints, at):
    n = w.shape[0]
    bits = 0
    for c in range(min(COLS, n - j)):
        count = sum(popcount(a[t] ^ w[j + c, t]) for t in range(w.shape[1]))
        if int(ints[at + j + c]) * (int(n_bits) - 2 * count) < int(ints[at + n + j + c]):
            bits |= 1 << c
    return np.uint64(bits)


@intrinsic
def _xor_bits_llvm(typingctx, a, w, j, n_bits, ints, at):
    if not (_counts_ok(a, w, j) and ints_ok(ints, n_bits, at)):
        return None

    def codegen(context, builder, signature, args):
        a_v, w_v, j_v, n_bits_v, ints_v, at_v = intp_args(context, builder, signature, args)
        a_t, w_t, _, _, ints_t, _ = signature.args
        n_v = cgutils.unpack_tuple(builder, context.make_array(w_t)(context, builder, w_v).shape, 2)[0]
        last_v = builder.sub(n_v, ir.Constant(n_v.type, 1))
        counts = _emit_counts(context, builder, a_t, a_v, w_t, w_v, j_v, last_v)
        i64 = ir.IntType(64)
        base = builder.insert_element(ir.Constant(counts.type, ir.Undefined), builder.sext(n_bits_v, i64)
                                      if n_bits_v.type.width < 64 else n_bits_v, ir.Constant(ir.IntType(32), 0))
        base = builder.shuffle_vector(base, ir.Constant(counts.type, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), COLS), [0] * COLS))
        dots = builder.sub(base, builder.shl(counts, ir.Constant(counts.type, [1] * COLS)))
        return emit_below_bits(context, builder, dots, j_v, n_v, ints_t, ints_v, at_v)

    return types.uint64(a, w, j, n_bits, ints, at), codegen


xor_counts = _xor_counts_python if jit_disabled() else _xor_counts_llvm
xor_bits = _xor_bits_python if jit_disabled() else _xor_bits_llvm
