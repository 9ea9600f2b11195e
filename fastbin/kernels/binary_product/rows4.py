"""The binary product a row at a time, 8 (then 4, then 1) rows of ``w`` sharing the
loads of each row of ``a`` (the C NEON reference shares them over 4): for few rows on
CPUs without a 64-bit vector popcount (AArch64 ``cnt``).

* ``xor_counts8`` / ``xor_counts4(a, i, w, j)`` -> 8 / 4 int64, ``xor_counts1`` -> int64:
  ``popcount(a_i ^ w_{j + r})`` summed over the words for ``r < 8`` (``4``, ``1``);
  ``a`` 2-D (row ``i``) or 1-D (``i`` ignored), ``w`` 2-D, C-contiguous uint64.
  The 16-byte chunks of the rows meet in byte counts (LLVM ``ctpop`` on 16 x i8:
  ``cnt`` on AArch64) summed into 16 x i8 accumulators for up to 31 chunks
  (``<= 248`` a lane), then each accumulator is reduced once (``uaddlv``). An odd last
  word is one more chunk of the last block (8 bytes: ``ldr d``, ``eor``/``cnt`` on 8 bytes,
  added with zeros above), which then holds at most 30 whole chunks. The word loops are inlined into their callers.
  Per chunk and row of ``w``: a load, ``eor``, ``cnt`` and ``add`` (the reference:
  ``eor``, ``cnt``, ``uadalp``).
* ``binary_matmul_rows4(a_bits, w_bits, n_bits, out) -> bool``: ``out`` (m, n) of
  any numeric dtype receives ``n_bits - 2 * popcount(a_i ^ w_j)``; False when a padding
  bit of either operand is set (the blocked kernel's contract; ``out`` is then
  unspecified: with an odd word count the padding of ``w`` is checked on the last words
  the counts load anyway, one ``orr`` a row of ``w`` instead of a pass over them).
* ``binary_dot_rows4(a_bits, w_bits, n_bits, out)``: the same without the padding
  check (a folded model's words; ``few_rows.binary_dot_rows``' contract).

Generic LLVM only (byte ``ctpop``, vector loads, ``vector.reduce.add``), so it
compiles on every CPU; the planner (``fastbin.kernels.binary_product.plan``) takes it
where the table says it wins (``TABLE["rows4_max_rows"]``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled
from ..pack import padding_is_zero

__all__ = ["xor_counts8", "xor_counts4", "xor_counts1", "binary_matmul_rows4", "binary_dot_rows4", "CHUNKS_PER_BLOCK"]

#: 16-byte chunks summed in byte lanes before a reduction: 31 * 8 = 248 <= 255 (the last
#: block: at most 30 whole chunks and the odd last word).
CHUNKS_PER_BLOCK = 31


def _is_words(a, ndims):
    return isinstance(a, types.Array) and a.ndim in ndims and a.layout == "C" and a.dtype == types.uint64


@intrinsic
def _xor_counts_block(typingctx, a, i, w, j, p0, p1, rows, last):
    """Byte-lane sums of ``popcount(a_i ^ w_{j+r})`` over 16-byte chunks ``p0 <= p < p1``
    (``p1 - p0 <= CHUNKS_PER_BLOCK``), reduced: a ``rows``-tuple of int64 and a uint64. With
    ``last == 1`` and an odd word count the last word is summed too (then ``p1 - p0 <
    CHUNKS_PER_BLOCK``) and the uint64 is the OR of the rows' last words of ``w``, else 0."""
    if not (_is_words(a, (1, 2)) and _is_words(w, (2,)) and isinstance(rows, types.IntegerLiteral)
            and isinstance(last, types.IntegerLiteral)):
        return None
    n_rows, with_last = rows.literal_value, last.literal_value == 1
    if n_rows not in (1, 2, 4, 8):
        return None
    result = types.Tuple((types.int64,) * n_rows + (types.uint64,))

    def codegen(context, builder, signature, args):
        a_type, _, w_type = signature.args[:3]
        a_value, w_value = args[0], args[2]
        i_value, j_value, p0_value, p1_value = (
            context.cast(builder, args[k], signature.args[k], types.intp) for k in (1, 3, 4, 5)
        )
        a_array = context.make_array(a_type)(context, builder, a_value)
        w_array = context.make_array(w_type)(context, builder, w_value)
        intp = context.get_value_type(types.intp)
        i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
        words, bytes16, wide16 = ir.VectorType(i64, 2), ir.VectorType(i8, 16), ir.VectorType(i16, 16)
        ctpop = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(bytes16, [bytes16]), "llvm.ctpop.v16i8")
        reduce_add = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i16, [wide16]), "llvm.vector.reduce.add.v16i16")
        n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)[1]
        a_row = builder.mul(i_value, n_words) if a_type.ndim == 2 else ir.Constant(intp, 0)
        a_base = builder.gep(a_array.data, [a_row])
        w_bases = [builder.gep(w_array.data, [builder.mul(builder.add(j_value, ir.Constant(intp, r)), n_words)])
                   for r in range(n_rows)]
        zero = ir.Constant(bytes16, None)
        accs = [cgutils.alloca_once_value(builder, zero) for _ in range(n_rows)]
        found = cgutils.alloca_once_value(builder, ir.Constant(i64, 0))
        count = builder.sub(p1_value, p0_value)

        def load(base, offset):
            ptr = builder.bitcast(builder.gep(base, [offset]), words.as_pointer())
            return builder.load(ptr, align=8)

        with cgutils.for_range(builder, count) as loop:
            t = builder.mul(builder.add(p0_value, loop.index), ir.Constant(intp, 2))
            x = load(a_base, t)
            for r in range(n_rows):
                c = builder.call(ctpop, [builder.bitcast(builder.xor(x, load(w_bases[r], t)), bytes16)])
                builder.store(builder.add(builder.load(accs[r]), c), accs[r])
        if with_last:
            one = ir.Constant(intp, 1)
            odd = builder.icmp_unsigned("!=", builder.and_(n_words, one), ir.Constant(intp, 0))
            with builder.if_then(odd):  # 8-byte vectors (ldr d, eor/cnt .8b), widened with zeros
                t = builder.sub(n_words, one)
                bytes8 = ir.VectorType(i8, 8)
                ctpop8 = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(bytes8, [bytes8]), "llvm.ctpop.v8i8")
                no_bytes = ir.Constant(bytes8, None)
                widen = ir.Constant(ir.VectorType(i32, 16), list(range(16)))

                def last_word(base):
                    return builder.bitcast(builder.load(builder.gep(base, [t])), bytes8)

                x = last_word(a_base)
                ored = no_bytes
                for r in range(n_rows):
                    y = last_word(w_bases[r])
                    ored = builder.or_(ored, y)
                    c = builder.call(ctpop8, [builder.xor(x, y)])
                    builder.store(builder.add(builder.load(accs[r]), builder.shuffle_vector(c, no_bytes, widen)),
                                  accs[r])
                builder.store(builder.bitcast(ored, i64), found)
        sums = [
            builder.zext(builder.call(reduce_add, [builder.zext(builder.load(acc), wide16)]), i64) for acc in accs
        ]
        return context.make_tuple(builder, result, sums + [builder.load(found)])

    return result(a, i, w, j, p0, p1, rows, last), codegen


def _xor_counts_block_python(a, i, w, j, p0, p1, rows, last):
    row = a if a.ndim == 1 else a[i]
    n_words = w.shape[1]
    words = list(range(2 * p0, 2 * p1)) + ([n_words - 1] if last and n_words % 2 else [])
    found = 0
    if last and n_words % 2:
        for r in range(rows):
            found |= int(w[j + r, n_words - 1])
    counts = tuple(sum(int(row[t] ^ w[j + r, t]).bit_count() for t in words) for r in range(rows))
    return (*counts, np.uint64(found))


_block = _xor_counts_block_python if jit_disabled() else _xor_counts_block


@jit(inline="always")
def _counts8(a, i, w, j):
    """``xor_counts8`` and the OR of the rows' last words of ``w`` (odd word counts; else 0)."""
    pairs = w.shape[1] // 2
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0
    p0 = 0
    while pairs - p0 >= CHUNKS_PER_BLOCK:  # whole blocks; the last one (< 31 chunks) takes the odd word
        c0, c1, c2, c3, c4, c5, c6, c7, _ = _block(a, i, w, j, p0, p0 + CHUNKS_PER_BLOCK, 8, 0)
        s0 += c0
        s1 += c1
        s2 += c2
        s3 += c3
        s4 += c4
        s5 += c5
        s6 += c6
        s7 += c7
        p0 += CHUNKS_PER_BLOCK
    c0, c1, c2, c3, c4, c5, c6, c7, found = _block(a, i, w, j, p0, pairs, 8, 1)
    return s0 + c0, s1 + c1, s2 + c2, s3 + c3, s4 + c4, s5 + c5, s6 + c6, s7 + c7, found


@jit(inline="always")
def _counts4(a, i, w, j):
    """``xor_counts4`` and the OR of the rows' last words of ``w`` (odd word counts; else 0)."""
    pairs = w.shape[1] // 2
    s0 = s1 = s2 = s3 = 0
    p0 = 0
    while pairs - p0 >= CHUNKS_PER_BLOCK:
        c0, c1, c2, c3, _ = _block(a, i, w, j, p0, p0 + CHUNKS_PER_BLOCK, 4, 0)
        s0 += c0
        s1 += c1
        s2 += c2
        s3 += c3
        p0 += CHUNKS_PER_BLOCK
    c0, c1, c2, c3, found = _block(a, i, w, j, p0, pairs, 4, 1)
    return s0 + c0, s1 + c1, s2 + c2, s3 + c3, found


@jit(inline="always")
def _counts1(a, i, w, j):
    """``xor_counts1`` and the row's last word of ``w`` (odd word counts; else 0)."""
    pairs = w.shape[1] // 2
    s = 0
    p0 = 0
    while pairs - p0 >= CHUNKS_PER_BLOCK:
        s += _block(a, i, w, j, p0, p0 + CHUNKS_PER_BLOCK, 1, 0)[0]
        p0 += CHUNKS_PER_BLOCK
    c, found = _block(a, i, w, j, p0, pairs, 1, 1)
    return s + c, found


@jit(inline="always")
def xor_counts8(a, i, w, j):
    """``popcount(a_i ^ w_r)`` summed over the words for ``r = j .. j + 7`` (int64 each)."""
    c0, c1, c2, c3, c4, c5, c6, c7, _ = _counts8(a, i, w, j)
    return c0, c1, c2, c3, c4, c5, c6, c7


@jit(inline="always")
def xor_counts4(a, i, w, j):
    """``popcount(a_i ^ w_r)`` summed over the words for ``r = j .. j + 3`` (int64 each)."""
    c0, c1, c2, c3, _ = _counts4(a, i, w, j)
    return c0, c1, c2, c3


@jit(inline="always")
def xor_counts1(a, i, w, j):
    """``popcount(a_i ^ w_j)`` summed over the words (int64)."""
    return _counts1(a, i, w, j)[0]


@jit
def _dot_rows4(a_bits, w_bits, n_bits, out):
    """``out[i, j] = n_bits - 2 * popcount(a_i ^ w_j)``; returns the OR of the last words of
    ``w``'s rows when the word count is odd (for the padding check), else 0."""
    m = a_bits.shape[0]
    n = w_bits.shape[0]
    n8 = n // 8 * 8
    n4 = n // 4 * 4
    found = np.uint64(0)
    for i in range(m):
        for j in range(0, n8, 8):
            s0, s1, s2, s3, s4, s5, s6, s7, f = _counts8(a_bits, i, w_bits, j)
            found |= f
            out[i, j] = n_bits - 2 * s0
            out[i, j + 1] = n_bits - 2 * s1
            out[i, j + 2] = n_bits - 2 * s2
            out[i, j + 3] = n_bits - 2 * s3
            out[i, j + 4] = n_bits - 2 * s4
            out[i, j + 5] = n_bits - 2 * s5
            out[i, j + 6] = n_bits - 2 * s6
            out[i, j + 7] = n_bits - 2 * s7
        if n8 < n4:
            s0, s1, s2, s3, f = _counts4(a_bits, i, w_bits, n8)
            found |= f
            out[i, n8] = n_bits - 2 * s0
            out[i, n8 + 1] = n_bits - 2 * s1
            out[i, n8 + 2] = n_bits - 2 * s2
            out[i, n8 + 3] = n_bits - 2 * s3
        for j in range(n4, n):
            s, f = _counts1(a_bits, i, w_bits, j)
            found |= f
            out[i, j] = n_bits - 2 * s
    return found


@jit
def binary_dot_rows4(a_bits, w_bits, n_bits, out):
    _dot_rows4(a_bits, w_bits, n_bits, out)


@jit
def binary_matmul_rows4(a_bits, w_bits, n_bits, out):
    tail = n_bits % 64
    if tail == 0:
        _dot_rows4(a_bits, w_bits, n_bits, out)
        return True
    if not padding_is_zero(a_bits, n_bits):
        return False
    odd = w_bits.shape[1] % 2 == 1
    if not odd and not padding_is_zero(w_bits, n_bits):  # an even word count: checked first
        return False
    found = _dot_rows4(a_bits, w_bits, n_bits, out)
    return not odd or (found & ~((np.uint64(1) << np.uint64(tail)) - np.uint64(1))) == 0
