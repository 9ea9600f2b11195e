"""The binary product a row at a time, 8 (then 4, then 1) rows of ``w`` sharing the
loads of each row of ``a`` (the C NEON reference shares them over 4): for few rows on
CPUs without a 64-bit vector popcount (AArch64 ``cnt``).

* ``xor_counts8`` / ``xor_counts4(a, i, w, j)`` -> 8 / 4 int64, ``xor_counts1`` -> int64:
  ``popcount(a_i ^ w_{j + r})`` summed over the words for ``r < 8`` (``4``, ``1``);
  ``a`` 2-D (row ``i``) or 1-D (``i`` ignored), ``w`` 2-D, C-contiguous uint64.
  The 16-byte chunks of the rows meet in byte counts (LLVM ``ctpop`` on 16 x i8:
  ``cnt`` on AArch64) summed into 16 x i8 accumulators for up to 31 chunks
  (``<= 248`` a lane), then each accumulator is reduced once (``uaddlv``); an odd
  last word by a scalar ``ctpop``. The word loops are inlined into their callers.
  Per chunk and row of ``w``: a load, ``eor``, ``cnt`` and ``add`` (the reference:
  ``eor``, ``cnt``, ``uadalp``).
* ``binary_matmul_rows4(a_bits, w_bits, n_bits, out) -> bool``: ``out`` (m, n) of
  any numeric dtype receives ``n_bits - 2 * popcount(a_i ^ w_j)``; False, writing
  nothing, when a padding bit of either operand is set (the blocked kernel's contract).
* ``binary_dot_rows4(a_bits, w_bits, n_bits, out)``: the same without the padding
  check (a folded model's words; ``few_rows.binary_dot_rows``' contract).

Generic LLVM only (byte ``ctpop``, vector loads, ``vector.reduce.add``), so it
compiles on every CPU; the planner (``fastbin.kernels.binary_product.plan``) takes it
where the table says it wins (``TABLE["rows4_max_rows"]``).
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled
from ..pack import padding_is_zero

__all__ = ["xor_counts8", "xor_counts4", "xor_counts1", "binary_matmul_rows4", "binary_dot_rows4", "CHUNKS_PER_BLOCK"]

#: 16-byte chunks summed in byte lanes before a reduction: 31 * 8 = 248 <= 255.
CHUNKS_PER_BLOCK = 31


def _is_words(a, ndims):
    return isinstance(a, types.Array) and a.ndim in ndims and a.layout == "C" and a.dtype == types.uint64


@intrinsic
def _xor_counts_block(typingctx, a, i, w, j, p0, p1, rows):
    """Byte-lane sums of ``popcount(a_i ^ w_{j+r})`` over 16-byte chunks ``p0 <= p < p1``
    (``p1 - p0 <= CHUNKS_PER_BLOCK``), reduced: a ``rows``-tuple of int64."""
    if not (_is_words(a, (1, 2)) and _is_words(w, (2,)) and isinstance(rows, types.IntegerLiteral)):
        return None
    n_rows = rows.literal_value
    if n_rows not in (1, 2, 4, 8):
        return None
    result = types.UniTuple(types.int64, n_rows)

    def codegen(context, builder, signature, args):
        a_type, _, w_type = signature.args[:3]
        a_value, w_value = args[0], args[2]
        i_value, j_value, p0_value, p1_value = (
            context.cast(builder, args[k], signature.args[k], types.intp) for k in (1, 3, 4, 5)
        )
        a_array = context.make_array(a_type)(context, builder, a_value)
        w_array = context.make_array(w_type)(context, builder, w_value)
        intp = context.get_value_type(types.intp)
        i8, i16, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(64)
        words, bytes16, wide16 = ir.VectorType(i64, 2), ir.VectorType(i8, 16), ir.VectorType(i16, 16)
        ctpop = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(bytes16, [bytes16]), "llvm.ctpop.v16i8")
        reduce_add = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i16, [wide16]), "llvm.vector.reduce.add.v16i16")
        n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)[1]
        a_row = builder.mul(i_value, n_words) if a_type.ndim == 2 else ir.Constant(intp, 0)
        w_rows = [builder.mul(builder.add(j_value, ir.Constant(intp, r)), n_words) for r in range(n_rows)]
        zero = ir.Constant(bytes16, None)
        accs = [cgutils.alloca_once_value(builder, zero) for _ in range(n_rows)]
        count = builder.sub(p1_value, p0_value)

        def load(data, offset):
            ptr = builder.bitcast(builder.gep(data, [offset]), words.as_pointer())
            return builder.load(ptr, align=8)

        with cgutils.for_range(builder, count) as loop:
            t = builder.mul(builder.add(p0_value, loop.index), ir.Constant(intp, 2))
            x = load(a_array.data, builder.add(a_row, t))
            for r in range(n_rows):
                y = load(w_array.data, builder.add(w_rows[r], t))
                c = builder.call(ctpop, [builder.bitcast(builder.xor(x, y), bytes16)])
                builder.store(builder.add(builder.load(accs[r]), c), accs[r])
        sums = [
            builder.zext(builder.call(reduce_add, [builder.zext(builder.load(acc), wide16)]), i64) for acc in accs
        ]
        return context.make_tuple(builder, result, sums)

    return result(a, i, w, j, p0, p1, rows), codegen


@intrinsic
def _odd_word_counts(typingctx, a, i, w, j, rows):
    """``popcount(a_i[t] ^ w_{j+r}[t])`` for the last word ``t`` when the word count is odd
    (else zeros): a ``rows``-tuple of int64 (``a`` 1-D or 2-D, as ``_xor_counts_block``)."""
    if not (_is_words(a, (1, 2)) and _is_words(w, (2,)) and isinstance(rows, types.IntegerLiteral)):
        return None
    n_rows = rows.literal_value
    if n_rows not in (1, 2, 4, 8):
        return None
    result = types.UniTuple(types.int64, n_rows)

    def codegen(context, builder, signature, args):
        a_type, _, w_type = signature.args[:3]
        i_value, j_value = (context.cast(builder, args[k], signature.args[k], types.intp) for k in (1, 3))
        a_array = context.make_array(a_type)(context, builder, args[0])
        w_array = context.make_array(w_type)(context, builder, args[2])
        intp = context.get_value_type(types.intp)
        i64 = ir.IntType(64)
        n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)[1]
        one = ir.Constant(intp, 1)
        odd = builder.icmp_unsigned("!=", builder.and_(n_words, one), ir.Constant(intp, 0))
        last = builder.sub(n_words, one)
        slots = [cgutils.alloca_once_value(builder, ir.Constant(i64, 0)) for _ in range(n_rows)]
        with builder.if_then(odd):
            a_row = builder.mul(i_value, n_words) if a_type.ndim == 2 else ir.Constant(intp, 0)
            x = builder.load(builder.gep(a_array.data, [builder.add(a_row, last)]))
            for r in range(n_rows):
                row = builder.mul(builder.add(j_value, ir.Constant(intp, r)), n_words)
                y = builder.load(builder.gep(w_array.data, [builder.add(row, last)]))
                builder.store(builder.ctpop(builder.xor(x, y)), slots[r])
        return context.make_tuple(builder, result, [builder.load(slot) for slot in slots])

    return result(a, i, w, j, rows), codegen


def _odd_word_counts_python(a, i, w, j, rows):
    row = a if a.ndim == 1 else a[i]
    t = w.shape[1] - 1
    return tuple(int(row[t] ^ w[j + r, t]).bit_count() if w.shape[1] % 2 else 0 for r in range(rows))


def _xor_counts_block_python(a, i, w, j, p0, p1, rows):
    row = a if a.ndim == 1 else a[i]
    return tuple(
        sum(int(row[t] ^ w[j + r, t]).bit_count() for t in range(2 * p0, 2 * p1)) for r in range(rows)
    )


_block = _xor_counts_block_python if jit_disabled() else _xor_counts_block
_odd = _odd_word_counts_python if jit_disabled() else _odd_word_counts


@jit(inline="always")
def xor_counts4(a, i, w, j):
    """``popcount(a_i ^ w_r)`` summed over the words for ``r = j .. j + 3`` (int64 each)."""
    n_words = w.shape[1]
    pairs = n_words // 2
    s0 = s1 = s2 = s3 = 0
    for p0 in range(0, pairs, CHUNKS_PER_BLOCK):
        c0, c1, c2, c3 = _block(a, i, w, j, p0, min(pairs, p0 + CHUNKS_PER_BLOCK), 4)
        s0 += c0
        s1 += c1
        s2 += c2
        s3 += c3
    t0, t1, t2, t3 = _odd(a, i, w, j, 4)
    return s0 + t0, s1 + t1, s2 + t2, s3 + t3


@jit(inline="always")
def xor_counts8(a, i, w, j):
    """``popcount(a_i ^ w_r)`` summed over the words for ``r = j .. j + 7`` (int64 each)."""
    n_words = w.shape[1]
    pairs = n_words // 2
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0
    for p0 in range(0, pairs, CHUNKS_PER_BLOCK):
        c0, c1, c2, c3, c4, c5, c6, c7 = _block(a, i, w, j, p0, min(pairs, p0 + CHUNKS_PER_BLOCK), 8)
        s0 += c0
        s1 += c1
        s2 += c2
        s3 += c3
        s4 += c4
        s5 += c5
        s6 += c6
        s7 += c7
    t0, t1, t2, t3, t4, t5, t6, t7 = _odd(a, i, w, j, 8)
    return s0 + t0, s1 + t1, s2 + t2, s3 + t3, s4 + t4, s5 + t5, s6 + t6, s7 + t7


@jit(inline="always")
def xor_counts1(a, i, w, j):
    """``popcount(a_i ^ w_j)`` summed over the words (int64)."""
    n_words = w.shape[1]
    pairs = n_words // 2
    s = 0
    for p0 in range(0, pairs, CHUNKS_PER_BLOCK):
        s += _block(a, i, w, j, p0, min(pairs, p0 + CHUNKS_PER_BLOCK), 1)[0]
    return s + _odd(a, i, w, j, 1)[0]


@jit
def binary_dot_rows4(a_bits, w_bits, n_bits, out):
    m = a_bits.shape[0]
    n = w_bits.shape[0]
    n8 = n // 8 * 8
    n4 = n // 4 * 4
    for i in range(m):
        for j in range(0, n8, 8):
            s0, s1, s2, s3, s4, s5, s6, s7 = xor_counts8(a_bits, i, w_bits, j)
            out[i, j] = n_bits - 2 * s0
            out[i, j + 1] = n_bits - 2 * s1
            out[i, j + 2] = n_bits - 2 * s2
            out[i, j + 3] = n_bits - 2 * s3
            out[i, j + 4] = n_bits - 2 * s4
            out[i, j + 5] = n_bits - 2 * s5
            out[i, j + 6] = n_bits - 2 * s6
            out[i, j + 7] = n_bits - 2 * s7
        if n8 < n4:
            s0, s1, s2, s3 = xor_counts4(a_bits, i, w_bits, n8)
            out[i, n8] = n_bits - 2 * s0
            out[i, n8 + 1] = n_bits - 2 * s1
            out[i, n8 + 2] = n_bits - 2 * s2
            out[i, n8 + 3] = n_bits - 2 * s3
        for j in range(n4, n):
            out[i, j] = n_bits - 2 * xor_counts1(a_bits, i, w_bits, j)


@jit
def binary_matmul_rows4(a_bits, w_bits, n_bits, out):
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    binary_dot_rows4(a_bits, w_bits, n_bits, out)
    return True
