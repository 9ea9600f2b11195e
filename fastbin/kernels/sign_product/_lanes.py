"""The vector building blocks of ``fastbin.kernels.sign_product.portable``, as LLVM
intrinsics, each with a plain-Python twin for ``NUMBA_DISABLE_JIT=1``:

* ``signed_dot(x, i, w_bits, j)``: ``x[i] @ sign(W)[:, j]`` straight from the
  bits (the few-rows float path);
* ``plane_words(row, start, count, planes, t)``: the 8 bit-plane words of 64
  bytes of a uint8 row;
* ``plane_dot(planes, w, j)``: the pixel sum under row ``j``'s -1 bits.

Only generic LLVM operations (masked loads, selects, shuffles, ``ctpop``):
LLVM lowers them for whichever CPU compiles the kernel.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit_disabled
from ..intrinsics import intp_args as _intp_args
from ..intrinsics import is_words as _is_words
from ..intrinsics import popcount

__all__ = ["signed_dot", "plane_words", "plane_dot"]


def _signed_dot_python(x, i, w_bits, j):
    """Plain-Python ``_signed_dot`` for ``NUMBA_DISABLE_JIT=1``."""
    k = x.shape[1]
    acc = x.dtype.type(0)
    for t in range(w_bits.shape[1]):
        word = int(w_bits[j, t])
        for b in range(min(64, k - t * 64)):
            v = x[i, t * 64 + b]
            acc += -v if (word >> b) & 1 else v
    return acc


@intrinsic
def _signed_dot_llvm(typingctx, x, i, w_bits, j):
    """``sum_t (x[i, t] if bit t of row j of w_bits is 0 else -x[i, t])``:
    ``x @ sign(W)`` for one row and one column, straight from the bits.

    ``x``: 2-D C-contiguous float32/float64 (m, k); ``w_bits``: 2-D
    C-contiguous uint64 (n, ceil(k/64)) with zero padding bits. Per word:
    one 64-lane load of ``x`` (masked for the last, partial word: nothing
    past the row is read, and its zero padding bits select the loaded
    zeros), the word bitcast to a 64 x i1 mask selects ``-x`` or ``x``, one
    vector add into 64 lane sums. The lanes are then summed as a pairwise
    tree (halving shuffles). A direct signed sum: no ``sum(x) - 2 *
    sum(x where bit)`` cancellation."""
    arrays_ok = (
        isinstance(x, types.Array)
        and x.ndim == 2
        and x.layout == "C"
        and x.dtype in (types.float32, types.float64)
        and _is_words(w_bits)
    )
    if not arrays_ok:
        return None

    def codegen(context, builder, signature, args):
        x_value, i_value, w_value, j_value = _intp_args(context, builder, signature, args)
        x_type, _, w_type, _ = signature.args
        x_array = context.make_array(x_type)(context, builder, x_value)
        w_array = context.make_array(w_type)(context, builder, w_value)
        i32 = ir.IntType(32)
        intp = context.get_value_type(types.intp)
        elem = context.get_value_type(x_type.dtype)
        align = context.get_abi_sizeof(elem)
        vec = ir.VectorType(elem, 64)
        mask_type = ir.VectorType(ir.IntType(1), 64)
        masked_load = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(vec, [vec.as_pointer(), i32, mask_type, vec]),
            f"llvm.masked.load.v64{'f32' if align == 4 else 'f64'}.p0",
        )
        k = cgutils.unpack_tuple(builder, x_array.shape, 2)[1]
        n_full = builder.udiv(k, ir.Constant(intp, 64))
        tail = builder.urem(k, ir.Constant(intp, 64))
        acc = cgutils.alloca_once_value(builder, ir.Constant(vec, None))

        def add_word(t, values):
            word = builder.load(cgutils.get_item_pointer(context, builder, w_type, w_array, [j_value, t]))
            negative = builder.bitcast(word, mask_type)
            signed = builder.select(negative, builder.fneg(values), values)
            builder.store(builder.fadd(builder.load(acc), signed), acc)

        def row_pointer(t):
            start = builder.mul(t, ir.Constant(intp, 64))
            ptr = cgutils.get_item_pointer(context, builder, x_type, x_array, [i_value, start])
            return builder.bitcast(ptr, vec.as_pointer())

        with cgutils.for_range(builder, n_full) as loop:
            add_word(loop.index, builder.load(row_pointer(loop.index), align=align))
        with builder.if_then(builder.icmp_unsigned("!=", tail, ir.Constant(intp, 0))):
            tails = builder.insert_element(
                ir.Constant(ir.VectorType(intp, 64), ir.Undefined), tail, ir.Constant(i32, 0)
            )
            tails = builder.shuffle_vector(
                tails, ir.Constant(ir.VectorType(intp, 64), ir.Undefined), ir.Constant(ir.VectorType(i32, 64), [0] * 64)
            )
            in_row = builder.icmp_signed("<", ir.Constant(ir.VectorType(intp, 64), list(range(64))), tails)
            values = builder.call(
                masked_load, [row_pointer(n_full), ir.Constant(i32, align), in_row, ir.Constant(vec, None)]
            )
            add_word(n_full, values)
        total = builder.load(acc)
        width = 64
        while width > 1:  # pairwise: lanes [0, w/2) + [w/2, w)
            width //= 2
            low = builder.shuffle_vector(total, total, ir.Constant(ir.VectorType(i32, width), list(range(width))))
            high = builder.shuffle_vector(
                total, total, ir.Constant(ir.VectorType(i32, width), list(range(width, 2 * width)))
            )
            total = builder.fadd(low, high)
        return builder.extract_element(total, ir.Constant(i32, 0))

    return x.dtype(x, i, w_bits, j), codegen


def _plane_words_python(row, start, count, planes, t):
    """Plain-Python ``_plane_words`` for ``NUMBA_DISABLE_JIT=1``."""
    for p in range(8):
        word = 0
        for b in range(count):
            word |= ((int(row[start + b]) >> p) & 1) << b
        planes[t, p] = np.uint64(word)
    return sum(int(v) for v in row[start : start + count])


@intrinsic
def _plane_words_llvm(typingctx, row, start, count, planes, t):
    """``planes[t, p]`` for ``p < 8``: bit ``b`` is bit ``p`` of
    ``row[start + b]`` for ``b < count`` (<= 64), 0 above. Returns the sum
    of those ``count`` bytes (int64: ``sum_p 2**p * popcount(plane p)``).

    ``row``: 1-D C-contiguous uint8; ``planes``: 2-D C-contiguous uint64
    (n_words, 8). One 64-byte load, masked when ``count < 64`` (nothing past
    the row is read), then per plane: shift the plane's bit into each byte's
    sign bit, compare with 0, bitcast the 64 x i1 mask to i64
    (``vpsllw``/``vpmovb2m`` on AVX-512BW; LLVM's generic lowering on other
    targets)."""
    row_ok = isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C" and row.dtype == types.uint8
    if not (row_ok and _is_words(planes)):
        return None

    def codegen(context, builder, signature, args):
        row_value, start_value, count_value, planes_value, t_value = _intp_args(context, builder, signature, args)
        row_type, _, _, planes_type, _ = signature.args
        row_array = context.make_array(row_type)(context, builder, row_value)
        planes_array = context.make_array(planes_type)(context, builder, planes_value)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        intp = context.get_value_type(types.intp)
        vec_type = ir.VectorType(ir.IntType(8), 64)
        mask_type = ir.VectorType(ir.IntType(1), 64)
        masked_load = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(vec_type, [vec_type.as_pointer(), i32, mask_type, vec_type]),
            "llvm.masked.load.v64i8.p0",
        )
        ptr = builder.bitcast(builder.gep(row_array.data, [start_value]), vec_type.as_pointer())
        index_type = ir.VectorType(intp, 64)
        counts = builder.insert_element(ir.Constant(index_type, ir.Undefined), count_value, ir.Constant(i32, 0))
        counts = builder.shuffle_vector(
            counts, ir.Constant(index_type, ir.Undefined), ir.Constant(ir.VectorType(i32, 64), [0] * 64)
        )
        in_row = builder.icmp_signed("<", ir.Constant(index_type, list(range(64))), counts)
        data = builder.call(masked_load, [ptr, ir.Constant(i32, 1), in_row, ir.Constant(vec_type, None)])
        total = ir.Constant(i64, 0)
        for p in range(8):
            negative = builder.icmp_signed(
                "<", builder.shl(data, ir.Constant(vec_type, [7 - p] * 64)), ir.Constant(vec_type, None)
            )
            word = builder.bitcast(negative, i64)
            out_ptr = cgutils.get_item_pointer(
                context, builder, planes_type, planes_array, [t_value, ir.Constant(intp, p)]
            )
            builder.store(word, out_ptr)
            total = builder.add(total, builder.shl(builder.ctpop(word), ir.Constant(i64, p)))
        return total

    return types.int64(row, start, count, planes, t), codegen


def _plane_dot_python(planes, w, j):
    """Plain-Python ``_plane_dot`` for ``NUMBA_DISABLE_JIT=1``."""
    return sum(
        popcount(planes[t, p] & w[j, t]) << p for t in range(w.shape[1]) for p in range(8)
    )


@intrinsic
def _plane_dot_llvm(typingctx, planes, w, j):
    """``sum_t sum_p 2**p * popcount(planes[t, p] & w[j, t])`` (int64): the
    sum of the pixels where row ``j`` of ``w`` is -1.

    ``planes``: uint64 (n_words, 8), ``w``: uint64 (n, n_words), both 2-D
    C-contiguous. The 8 planes of a word are the lanes of one vector: per
    word one load, an AND with the broadcast word of ``w``, ``vpopcntq`` and
    an add; the weights 2**p are applied once at the end (lane shift, sum).
    LLVM's own vectorisation of the plane-major loop left a 5-word scalar
    tail of 8 popcounts each at 13 words (half the kernel's time)."""
    if not _is_words(planes, w):
        return None

    def codegen(context, builder, signature, args):
        planes_value, w_value, j_value = _intp_args(context, builder, signature, args)
        planes_type, w_type, _ = signature.args
        planes_array = context.make_array(planes_type)(context, builder, planes_value)
        w_array = context.make_array(w_type)(context, builder, w_value)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        intp = context.get_value_type(types.intp)
        vec = ir.VectorType(i64, 8)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), "llvm.ctpop.v8i64")
        reduce_add = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [vec]), "llvm.vector.reduce.add.v8i64"
        )
        n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)[1]
        acc = cgutils.alloca_once_value(builder, ir.Constant(vec, None))
        with cgutils.for_range(builder, n_words) as loop:
            t = loop.index
            ptr = cgutils.get_item_pointer(context, builder, planes_type, planes_array, [t, ir.Constant(intp, 0)])
            lanes = builder.load(builder.bitcast(ptr, vec.as_pointer()), align=8)
            y = builder.load(cgutils.get_item_pointer(context, builder, w_type, w_array, [j_value, t]))
            ys = builder.insert_element(ir.Constant(vec, ir.Undefined), y, ir.Constant(i32, 0))
            ys = builder.shuffle_vector(ys, ir.Constant(vec, ir.Undefined), ir.Constant(ir.VectorType(i32, 8), [0] * 8))
            builder.store(builder.add(builder.load(acc), builder.call(ctpop, [builder.and_(lanes, ys)])), acc)
        weighted = builder.shl(builder.load(acc), ir.Constant(vec, list(range(8))))
        return builder.call(reduce_add, [weighted])

    return types.int64(planes, w, j), codegen


signed_dot = _signed_dot_python if jit_disabled() else _signed_dot_llvm
plane_words = _plane_words_python if jit_disabled() else _plane_words_llvm
plane_dot = _plane_dot_python if jit_disabled() else _plane_dot_llvm
