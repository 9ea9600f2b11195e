"""One uint8 row times ``COLS`` rows of packed signs at once, on the row's bit planes:
the first layer of the runtime's fused batch-1 pass (``fastbin.runtime._fused``) on x86.

``_lanes.plane_dot`` sums one output at a time: per word a load of the row's 8 planes, an
AND with the broadcast word of ``W``, a popcount and an add, then per output a shift and
a horizontal sum. Here one load of the planes of a word serves ``COLS`` outputs (``COLS``
vector accumulators of 8 plane counts each), and the ``COLS`` weighted sums come out of
one transposing tree (``intrinsics.tree_sum``): per word and output an AND with a
broadcast load, a ``vpopcntq`` and an add on AVX-512 VPOPCNTDQ (LLVM's generic lowering
of ``ctpop`` elsewhere), ``k * n / 64`` of each for the whole product.

* ``plane_sums(planes, w, j, last, sums)``: ``sums[c] = sum_t sum_p 2**p *
  popcount(planes[t, p] & w[min(j + c, last), t])`` for ``c < COLS``: the sum of the
  row's pixels where row ``min(j + c, last)`` of ``W`` is -1 (so ``x @ sign(W)[:, j + c]
  = total - 2 * sums[c]``, exact integers). ``planes`` uint64 (n_words, 8) from
  ``_lanes.plane_words``, ``w`` uint64 (n, n_words) C-contiguous, ``sums`` int64
  (COLS,) C-contiguous.
* ``plane_bits(planes, w, j, total, ints, at) -> uint64``: bit ``c`` set where ``j + c < n``
  and ``sign * (total - 2 * sums[c]) < signed`` (``sign = ints[at + j + c]``, ``signed =
  ints[at + n + j + c]``; ``total`` the row's pixel sum): the first sign stage's threshold
  test of ``COLS`` outputs in vector lanes (``binary_product.count_block.emit_below_bits``).

Only generic LLVM operations (``ctpop``, shuffles, shifts); a plain-Python twin serves
``NUMBA_DISABLE_JIT=1``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit_disabled
from ..binary_product.count_block import emit_below_bits, ints_ok
from ..intrinsics import intp_args, is_words, popcount, tree_sum

__all__ = ["COLS", "plane_sums", "plane_bits"]

#: outputs per call: 8 accumulators (8 plane counts each), the planes and the broadcast words
#: in registers, and one transposing tree of 8 vectors of 8 lanes
COLS = 8


def _plane_sums_python(planes, w, j, last, sums):
    for c in range(sums.shape[0]):
        row = min(j + c, last)
        sums[c] = sum(popcount(planes[t, p] & w[row, t]) << p for t in range(w.shape[1]) for p in range(8))


def _planes_ok(planes, w, j):
    return is_words(planes, w) and isinstance(j, types.Integer)


def _emit_sums(context, builder, planes_t, planes_v, w_t, w_v, j_v, last_v):
    """The ``<COLS x i64>`` sums of ``plane_sums`` (module doc)."""
    planes_a = context.make_array(planes_t)(context, builder, planes_v)
    w_a = context.make_array(w_t)(context, builder, w_v)
    i32, i64 = ir.IntType(32), ir.IntType(64)
    intp = context.get_value_type(types.intp)
    vec = ir.VectorType(i64, 8)
    ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), "llvm.ctpop.v8i64")
    n_words = cgutils.unpack_tuple(builder, w_a.shape, 2)[1]
    rows = []
    for c in range(COLS):
        row = builder.add(j_v, ir.Constant(intp, c))
        row = builder.select(builder.icmp_signed("<", row, last_v), row, last_v)
        rows.append(builder.gep(w_a.data, [builder.mul(row, n_words)]))
    accs = [cgutils.alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(COLS)]
    splat = ir.Constant(ir.VectorType(i32, 8), [0] * 8)
    plane_words = builder.bitcast(planes_a.data, vec.as_pointer())
    with cgutils.for_range(builder, n_words) as loop:
        t = loop.index
        lanes = builder.load(builder.gep(plane_words, [t]), align=8)
        for c in range(COLS):
            word = builder.load(builder.gep(rows[c], [t]), align=8)
            words = builder.shuffle_vector(builder.insert_element(ir.Constant(vec, ir.Undefined), word,
                                                                  ir.Constant(i32, 0)),
                                           ir.Constant(vec, ir.Undefined), splat)
            counts = builder.call(ctpop, [builder.and_(lanes, words)])
            builder.store(builder.add(builder.load(accs[c]), counts), accs[c])
    weights = ir.Constant(vec, list(range(8)))  # plane p counts 2**p
    weighted = [builder.shl(builder.load(acc), weights) for acc in accs]
    return tree_sum(builder, weighted, lambda b, u, v: b.add(u, v))


@intrinsic
def _plane_sums_llvm(typingctx, planes, w, j, last, sums):
    ok = (_planes_ok(planes, w, j) and isinstance(sums, types.Array) and sums.ndim == 1 and sums.layout == "C"
          and sums.dtype == types.int64 and isinstance(last, types.Integer))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        planes_v, w_v, j_v, last_v, sums_v = intp_args(context, builder, signature, args)
        planes_t, w_t, _, _, sums_t = signature.args
        totals = _emit_sums(context, builder, planes_t, planes_v, w_t, w_v, j_v, last_v)
        sums_a = context.make_array(sums_t)(context, builder, sums_v)
        builder.store(totals, builder.bitcast(sums_a.data, totals.type.as_pointer()), align=8)
        return context.get_dummy_value()

    return types.void(planes, w, j, last, sums), codegen


def _plane_bits_python(planes, w, j, total, ints, at):
    n = w.shape[0]
    bits = 0
    for c in range(min(COLS, n - j)):
        s = sum(popcount(planes[t, p] & w[j + c, t]) << p for t in range(w.shape[1]) for p in range(8))
        if int(ints[at + j + c]) * (int(total) - 2 * s) < int(ints[at + n + j + c]):
            bits |= 1 << c
    return np.uint64(bits)


@intrinsic
def _plane_bits_llvm(typingctx, planes, w, j, total, ints, at):
    if not (_planes_ok(planes, w, j) and ints_ok(ints, total, at)):
        return None

    def codegen(context, builder, signature, args):
        planes_v, w_v, j_v, total_v, ints_v, at_v = intp_args(context, builder, signature, args)
        planes_t, w_t, _, _, ints_t, _ = signature.args
        n_v = cgutils.unpack_tuple(builder, context.make_array(w_t)(context, builder, w_v).shape, 2)[0]
        last_v = builder.sub(n_v, ir.Constant(n_v.type, 1))
        sums = _emit_sums(context, builder, planes_t, planes_v, w_t, w_v, j_v, last_v)
        i32 = ir.IntType(32)
        base = builder.insert_element(ir.Constant(sums.type, ir.Undefined), total_v, ir.Constant(i32, 0))
        base = builder.shuffle_vector(base, ir.Constant(sums.type, ir.Undefined),
                                      ir.Constant(ir.VectorType(i32, COLS), [0] * COLS))
        dots = builder.sub(base, builder.shl(sums, ir.Constant(sums.type, [1] * COLS)))
        return emit_below_bits(context, builder, dots, j_v, n_v, ints_t, ints_v, at_v)

    return types.uint64(planes, w, j, total, ints, at), codegen


plane_sums = _plane_sums_python if jit_disabled() else _plane_sums_llvm
plane_bits = _plane_bits_python if jit_disabled() else _plane_bits_llvm
