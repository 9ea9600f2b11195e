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

Only generic LLVM operations; a plain-Python twin serves ``NUMBA_DISABLE_JIT=1``.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit_disabled
from ..intrinsics import intp_args, is_words, popcount, tree_sum

__all__ = ["COLS", "xor_counts"]

#: outputs per call (8 vector accumulators of 8 words and one tree of 8 vectors of 8 lanes)
COLS = 8


def _xor_counts_python(a, w, j, last, counts):
    for c in range(counts.shape[0]):
        row = min(j + c, last)
        counts[c] = sum(popcount(a[t] ^ w[row, t]) for t in range(w.shape[1]))


@intrinsic
def _xor_counts_llvm(typingctx, a, w, j, last, counts):
    ok = (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.uint64
          and is_words(w) and isinstance(counts, types.Array) and counts.ndim == 1 and counts.layout == "C"
          and counts.dtype == types.int64 and isinstance(j, types.Integer) and isinstance(last, types.Integer))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        a_v, w_v, j_v, last_v, counts_v = intp_args(context, builder, signature, args)
        a_t, w_t, _, _, counts_t = signature.args
        a_a = context.make_array(a_t)(context, builder, a_v)
        w_a = context.make_array(w_t)(context, builder, w_v)
        counts_a = context.make_array(counts_t)(context, builder, counts_v)
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
        totals = tree_sum(builder, [builder.load(acc) for acc in accs], lambda b, u, v: b.add(u, v))
        builder.store(totals, builder.bitcast(counts_a.data, vec.as_pointer()), align=8)
        return context.get_dummy_value()

    return types.void(a, w, j, last, counts), codegen


xor_counts = _xor_counts_python if jit_disabled() else _xor_counts_llvm
