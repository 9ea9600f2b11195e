"""The generic LLVM intrinsics of the kernels, and the helpers to write them.

Generic LLVM operations are emitted here (``ctpop``, vector loads and
masked loads, integer casts and bitcasts): LLVM lowers them for whatever CPU
compiles the kernel (AVX-512 here, NEON on ARM64), so no result depends on the
CPU. The AVX2 emitters (``avx2_*``) serve only kernels planned where Numba's target
has AVX2. The older CPU-specific intrinsics (the ``vpermps``/``vpermw`` table lookups)
stay next to their kernels in ``fastbin.kernels.sign_product.avx512*`` and ``avx2*``;
the vector lane blocks beside theirs (``sign_product._lanes``, ``binary_product._lanes``).
Under ``NUMBA_DISABLE_JIT=1`` each public name is a plain-Python function, so
every kernel still runs (slowly) as ordinary Python.

* :func:`popcount` ``(value) -> intp``: LLVM ``ctpop`` (``popcnt`` on x86, ``cnt``
  on ARM64, ``vpopcntq`` in a vectorised loop with AVX-512 VPOPCNTDQ). Numba has
  no popcount builtin.
* :func:`xor_count` ``(a, w, j) -> int64``: ``sum_t popcount(a[t] ^ w[j, t])``,
  eight words per vector with masked loads at the row's end (the fused forward
  pass's packed stages).
* :func:`opaque` ``(value, zero) -> value``: ``value`` through an integer OR with
  a run-time zero, so that LLVM neither contracts the float operations around it
  to an FMA nor reassociates them (the fused pass's bit-exact float tail).
* :func:`to_float` ``(like, value)``: integer ``value`` as ``like``'s float type,
  correctly rounded.
* :func:`threshold_word` ``(dots, r, j0, count, sign, signed) -> uint64``: bit ``q`` set where
  ``sign[j0 + q] * dots[r, j0 + q] < signed[j0 + q]`` for ``q < count`` (<= 64), ``sign`` ±1:
  the folded batch norm + sign of ``fastbin.kernels.binary_product.threshold``, a vector of
  outputs per compare (``vpcmpq`` into a mask register on AVX-512, ``vpcmpgtq`` +
  ``vmovmskpd`` on AVX2, compares and a horizontal add of lane bits on NEON: the generic
  ``bitcast <L x i1> to iL`` lowers everywhere), the last ``count % L`` outputs one at a time.
* :func:`column_block_dot` ``(patch, w, f0, dots)``: ``dots[0, f0 + l] = sum_t patch[t] * w[t, f0
  + l]`` for the 16 lanes ``l`` (float32): three ``<16 x float>`` accumulators in registers over
  the ``t`` loop (a broadcast, a load, a multiply and an add each), one store; the first conv
  layer's few-tap product (``fastbin.kernels.conv.first``), where LLVM's own vectorisation of
  the filter loop (16 lanes times an interleave of 4) needs 64 filters before its vector body runs.
* :func:`filter_word` ``(x, base, offsets, w, blk0, blocks, k_bits, sign, signed) -> uint64``:
  one output pixel of a convolution for ``blocks`` (1..4; more count as 4) blocks of
  ``FILTER_LANES`` (16) filters, the taps read in place (no patch row): for block ``b`` and lane
  ``l``, filter ``f = (blk0 + b) * 16 + l``, with ``K = offsets.shape[0]`` taps ``v_t = x[base +
  offsets[t]]`` and ``w_t = w[(blk0 + b) * K + t, l]``, ``dot_f = sum_t v_t * w_t`` (float32 ``x``,
  ``w``, ``sign``, ``signed``: the first conv layer on pixels; exact while the sums are integers
  below 2**24) or ``dot_f = k_bits - 2 * sum_t popcount(v_t ^ w_t)`` (uint32 ``x``, ``w``, int32
  ``sign``, ``signed``: packed signs); bit ``16 b + l`` of the result set where ``sign[f] * dot_f
  < signed[f]`` (the folded batch norm + sign, as :func:`threshold_word`). One ``<16 x i32>`` or
  ``<16 x float>`` accumulator per block in a register over the taps (a broadcast of the tap, a
  load of the block's weights, ``vpxord`` + ``vpopcntd`` + ``vpaddd`` or a multiply-add), then a
  compare per block into the word (``fastbin.kernels.conv.direct``).
* :func:`intp_args`, :func:`is_words`: helpers for writing intrinsics.
* :func:`tree_sum` ``(builder, vectors, add)``: the lane sums of up to ``lanes``
  vectors as one vector (a transposing tree of shuffles and adds), for the register
  blocks of ``sign_product.avx512_vnni``.
* :func:`avx2_pshufb` ``(builder, table, index)``: emits AVX2's byte shuffle ``vpshufb``
  on ymm (``llvm.x86.avx2.pshuf.b``: per 128-bit lane, byte ``i`` of the result is
  ``table[lane][index[i] & 15]``, or 0 where bit 7 of ``index[i]`` is set), for the
  kernels of x86-64 CPUs with AVX2 (``fastbin.kernels.binary_product.avx2``); no generic
  LLVM operation looks a byte up in a register table.
* :func:`avx2_permps` ``(builder, table, index)``: emits AVX2's ``vpermps`` on ymm
  (``llvm.x86.avx2.permps``: lane ``i`` of the result is ``table[index[i] & 7]``, the
  upper bits of each index ignored) for ``fastbin.kernels.sign_product.avx2_dwords``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import jit_disabled

__all__ = ["popcount", "xor_count", "opaque", "to_float", "threshold_word", "threshold_word_types",
           "column_block_dot", "COLUMN_BLOCK", "filter_word", "FILTER_LANES", "FILTER_BLOCKS", "intp_args", "is_words",
           "tree_sum", "avx2_pshufb", "avx2_permps"]


def intp_args(context, builder, signature, args):
    """The arguments, integers cast to intp (arrays unchanged)."""
    return [
        context.cast(builder, value, typ, types.intp) if isinstance(typ, types.Integer) else value
        for value, typ in zip(args, signature.args)
    ]


def is_words(*arrays):
    return all(
        isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and a.dtype == types.uint64 for a in arrays
    )


def tree_sum(builder, vectors, add):
    """``<n x T>``: lane ``i`` the sum of the lanes of ``vectors[i]``, for ``n =
    len(vectors)`` a power of two at most the lanes ``L`` of each (``<L x T>``, all of one
    type); ``add(builder, a, b)`` adds two vectors (``builder.add`` for integers,
    ``builder.fadd`` for floats: then the order is a pairwise tree, a valid order of a
    float sum). Pairs of vectors are folded into one by two shuffles and one add (each
    half of every segment from one of the two), so ``n`` vectors take ``3 (n - 1)``
    operations and then ``2 log2(L / n)`` fold the segments left: 45 for 16 vectors of 16
    lanes, where 16 separate reductions take 128."""
    i32 = ir.IntType(32)
    lanes = vectors[0].type.count
    count = len(vectors)
    if count & (count - 1) or count > lanes:
        raise ValueError(f"tree_sum takes a power of two of at most {lanes} vectors, got {count}")
    # (vector, owner of each lane): the lanes of a segment hold partial sums of one input vector
    items = [(v, [i] * lanes) for i, v in enumerate(vectors)]
    width = lanes  # the segment width of the current vectors
    while len(items) > 1:
        half = width // 2
        folded = []
        for (a, own_a), (b, own_b) in zip(items[0::2], items[1::2]):
            low, high, owners = [], [], []
            for s in range(0, lanes, width):
                low += [s + q for q in range(half)] + [lanes + s + q for q in range(half)]
                high += [s + half + q for q in range(half)] + [lanes + s + half + q for q in range(half)]
                owners += [own_a[s]] * half + [own_b[s]] * half
            lo = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, lanes), low))
            hi = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, lanes), high))
            folded.append((add(builder, lo, hi), owners))
        items = folded
        width = half
    total, owners = items[0]
    segment = width
    while width > 1:  # fold each segment onto its first lane
        half = width // 2
        moved = [q + half if q % width < half else q for q in range(lanes)]
        total = add(builder, total, builder.shuffle_vector(total, total, ir.Constant(ir.VectorType(i32, lanes), moved)))
        width = half
    where = {owners[s]: s for s in range(0, lanes, segment)}
    order = ir.Constant(ir.VectorType(i32, count), [where[i] for i in range(count)])
    return builder.shuffle_vector(total, total, order)


def avx2_pshufb(builder, table, index):
    """``vpshufb`` of two ``<32 x i8>`` values (``table`` looked up at ``index``, per
    128-bit lane): an IR emitter for intrinsics, valid only where Numba compiles for
    x86-64 with AVX2 (``fastbin._config.INT8_MADD``)."""
    vec = ir.VectorType(ir.IntType(8), 32)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec]), "llvm.x86.avx2.pshuf.b")
    return builder.call(fn, [table, index])


def avx2_permps(builder, table, index):
    """``vpermps`` of a ``<8 x float>`` ``table`` at ``<8 x i32>`` ``index`` (low 3 bits of
    each lane): an IR emitter, valid only for x86-64 with AVX2 (``fastbin._config.FLOAT_LUT8``)."""
    f32x8, i32x8 = ir.VectorType(ir.FloatType(), 8), ir.VectorType(ir.IntType(32), 8)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32x8, [f32x8, i32x8]),
                                        "llvm.x86.avx2.permps")
    return builder.call(fn, [table, index])


@intrinsic
def _ctpop(typingctx, value):
    """LLVM ``ctpop`` on any integer; returns ``intp`` so that arithmetic with
    it stays signed (Numba turns ``uint64 - int64`` into float64)."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        [arg] = args
        count = builder.ctpop(arg)
        intp = context.get_value_type(types.intp)
        if count.type.width < intp.width:
            return builder.zext(count, intp)
        if count.type.width > intp.width:
            return builder.trunc(count, intp)
        return count

    return types.intp(value), codegen


def _popcount_python(value) -> int:
    """Plain-Python popcount for ``NUMBA_DISABLE_JIT=1``."""
    return int(value).bit_count()


# The public name: the intrinsic when Numba compiles, plain Python otherwise.
popcount = _popcount_python if jit_disabled() else _ctpop


# ---------------------------------------------------------------------------
# The fused forward pass's: one IEEE operation at a time (no FMA contraction, no
# reassociation), and the xor-popcount of a packed row
# ---------------------------------------------------------------------------
@intrinsic
def _opaque_llvm(typingctx, value, zero):
    """``value`` unchanged, through an integer OR with ``zero`` (a run-time 0
    that LLVM cannot see): the float operations before and after it cannot
    be fused (Numba puts ``contract``/``reassoc`` on every float operation of
    a function, intrinsics included, and LLVM then forms FMAs)."""
    if not (isinstance(value, types.Float) and isinstance(zero, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        float_type = context.get_value_type(value)
        int_type = ir.IntType(value.bitwidth)
        z = context.cast(builder, args[1], zero, types.int64)
        z = builder.trunc(z, int_type) if value.bitwidth < 64 else z
        return builder.bitcast(builder.or_(builder.bitcast(args[0], int_type), z), float_type)

    return value(value, zero), codegen


@intrinsic
def _to_float_llvm(typingctx, like, value):
    """``value`` (integer) as ``like``'s float type, correctly rounded (``astype``)."""
    if not (isinstance(like, types.Float) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        target = context.get_value_type(like)
        if value.signed:
            return builder.sitofp(args[1], target)
        return builder.uitofp(args[1], target)

    return like(like, value), codegen


@intrinsic
def _xor_count_llvm(typingctx, a, w, j):
    """``sum_t popcount(a[t] ^ w[j, t])`` (int64) over the ``w.shape[1]``
    words: ``a`` 1-D and ``w`` 2-D C-contiguous uint64. Eight words per
    vector (masked loads at the end, zeros past it), one ``ctpop`` and add
    each; LLVM's own vectorisation of the word loop needs 32 words before its
    vector body runs (a 512-bit row has 8)."""
    a_ok = isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.uint64
    if not (a_ok and is_words(w)):
        return None

    def codegen(context, builder, signature, args):
        a_value, w_value, j_value = intp_args(context, builder, signature, args)
        a_type, w_type, _ = signature.args
        a_array = context.make_array(a_type)(context, builder, a_value)
        w_array = context.make_array(w_type)(context, builder, w_value)
        i1, i32, i64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
        intp = context.get_value_type(types.intp)
        vec, mask_type = ir.VectorType(i64, 8), ir.VectorType(i1, 8)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), "llvm.ctpop.v8i64")
        reduce_add = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [vec]), "llvm.vector.reduce.add.v8i64"
        )
        masked_load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec, [vec.as_pointer(), i32, mask_type, vec]), "llvm.masked.load.v8i64.p0"
        )
        n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)[1]
        n_chunks = builder.udiv(builder.add(n_words, ir.Constant(intp, 7)), ir.Constant(intp, 8))
        index_type = ir.VectorType(intp, 8)
        lanes = ir.Constant(index_type, list(range(8)))
        zeros = ir.Constant(vec, None)
        acc = cgutils.alloca_once_value(builder, zeros)
        with cgutils.for_range(builder, n_chunks) as loop:
            t0 = builder.mul(loop.index, ir.Constant(intp, 8))
            left = builder.sub(n_words, t0)
            left_v = builder.insert_element(ir.Constant(index_type, ir.Undefined), left, ir.Constant(i32, 0))
            left_v = builder.shuffle_vector(left_v, ir.Constant(index_type, ir.Undefined),
                                            ir.Constant(ir.VectorType(i32, 8), [0] * 8))
            mask = builder.icmp_signed("<", lanes, left_v)
            a_ptr = builder.bitcast(builder.gep(a_array.data, [t0]), vec.as_pointer())
            w_ptr = builder.bitcast(cgutils.get_item_pointer(context, builder, w_type, w_array, [j_value, t0]),
                                    vec.as_pointer())
            x = builder.call(masked_load, [a_ptr, ir.Constant(i32, 8), mask, zeros])
            y = builder.call(masked_load, [w_ptr, ir.Constant(i32, 8), mask, zeros])
            builder.store(builder.add(builder.load(acc), builder.call(ctpop, [builder.xor(x, y)])), acc)
        return builder.call(reduce_add, [builder.load(acc)])

    return types.int64(a, w, j), codegen


def _xor_count_python(a, w, j):
    return sum(popcount(a[t] ^ w[j, t]) for t in range(w.shape[1]))


def _opaque_python(value, zero):
    return value


def _to_float_python(like, value):
    return type(like)(value)


# Under NUMBA_DISABLE_JIT: NumPy scalars of the model dtype, one correctly rounded operation each.
opaque = _opaque_python if jit_disabled() else _opaque_llvm
to_float = _to_float_python if jit_disabled() else _to_float_llvm
xor_count = _xor_count_python if jit_disabled() else _xor_count_llvm


# ---------------------------------------------------------------------------
# Thresholds to packed words: a vector of compares, its mask as bits of a word
# ---------------------------------------------------------------------------
def threshold_word_types(dots, sign, signed):
    """The Numba type the comparison ``sign * dots < signed`` is evaluated in (Numba's own
    promotion: the widest signed integer if all three are signed integers; the widest float
    if all are floats; float64 if they mix), or None where :func:`threshold_word` does not
    apply: ``dots`` not a 2-D C-contiguous array, ``sign``/``signed`` not 1-D C-contiguous,
    an unsigned integer among them."""
    ok = (isinstance(dots, types.Array) and dots.ndim == 2 and dots.layout == "C"
          and all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in (sign, signed)))
    if not ok:
        return None
    dtypes = (dots.dtype, sign.dtype, signed.dtype)
    if all(isinstance(d, types.Integer) and d.signed for d in dtypes):
        return max(dtypes, key=lambda d: d.bitwidth)
    if all(isinstance(d, types.Float) for d in dtypes):
        return max(dtypes, key=lambda d: d.bitwidth)
    if all(isinstance(d, types.Float) or (isinstance(d, types.Integer) and d.signed) for d in dtypes):
        return types.float64
    return None


def _convert(builder, value, source, target):
    """``value`` (scalar or vector of Numba type ``source``'s element) as ``target``'s element
    type, exactly as Numba converts (``sext``, ``sitofp``, ``fpext``; the identity)."""
    ty = ir.VectorType(_llvm_scalar(target), value.type.count) if isinstance(value.type, ir.VectorType) \
        else _llvm_scalar(target)
    if source == target:
        return value
    if isinstance(target, types.Integer):
        return builder.sext(value, ty)
    if isinstance(source, types.Integer):
        return builder.sitofp(value, ty)
    return builder.fpext(value, ty)


def _llvm_scalar(numba_type):
    if isinstance(numba_type, types.Integer):
        return ir.IntType(numba_type.bitwidth)
    return ir.DoubleType() if numba_type.bitwidth == 64 else ir.FloatType()


@intrinsic
def _threshold_word_llvm(typingctx, dots, r, j0, count, sign, signed):
    """``threshold_word`` (module doc): the compares ``L`` outputs at a time (``L`` = 512 bits
    / the compared type's width: 8 or 16), each vector's ``<L x i1>`` mask bitcast to an
    ``L``-bit integer and shifted into the word; ``sign * d`` as ``(d ^ m) - m`` with ``m =
    sign >> (width - 1)`` for integers (the same wrapping negation as a multiply by -1, no
    64-bit vector multiply on AVX2), a multiply by ±1 for floats (exact); ``<`` is ordered
    (NaN compares false: bit 0)."""
    compare = threshold_word_types(dots, sign, signed)
    if compare is None or not all(isinstance(a, types.Integer) for a in (r, j0, count)):
        return None

    def codegen(context, builder, signature, args):
        dots_v, r_v, j0_v, count_v, sign_v, signed_v = intp_args(context, builder, signature, args)
        dots_t, _, _, _, sign_t, signed_t = signature.args
        dots_a = context.make_array(dots_t)(context, builder, dots_v)
        sign_a = context.make_array(sign_t)(context, builder, sign_v)
        signed_a = context.make_array(signed_t)(context, builder, signed_v)
        intp = context.get_value_type(types.intp)
        i64 = ir.IntType(64)
        elem = _llvm_scalar(compare)
        lanes = min(64, 512 // compare.bitwidth)
        is_int = isinstance(compare, types.Integer)

        def load(array_t, array, j, n):
            """``n`` (1 or ``lanes``) elements from index ``j`` (row ``r`` of ``dots``), converted."""
            if array_t.ndim == 2:
                ptr = cgutils.get_item_pointer(context, builder, array_t, array, [r_v, j])
            else:
                ptr = builder.gep(array.data, [j])
            width = _llvm_scalar(array_t.dtype)
            if n == 1:
                value = builder.load(ptr)
            else:
                vec = ir.VectorType(width, n)
                value = builder.load(builder.bitcast(ptr, vec.as_pointer()), align=array_t.dtype.bitwidth // 8)
            return _convert(builder, value, array_t.dtype, compare)

        def below(j, n):
            """The ``<n x i1>`` (or ``i1``) compares of outputs ``j .. j + n - 1``."""
            d = load(dots_t, dots_a, j, n)
            s = load(sign_t, sign_a, j, n)
            t = load(signed_t, signed_a, j, n)
            if is_int:
                width = ir.Constant(elem, elem.width - 1)
                if n > 1:
                    width = ir.Constant(ir.VectorType(elem, n), [elem.width - 1] * n)
                m = builder.ashr(s, width)
                product = builder.sub(builder.xor(d, m), m)
                return builder.icmp_signed("<", product, t)
            return builder.fcmp_ordered("<", builder.fmul(s, d), t)

        word = cgutils.alloca_once_value(builder, ir.Constant(i64, 0))
        full = builder.udiv(count_v, ir.Constant(intp, lanes))
        with cgutils.for_range(builder, full) as loop:
            offset = builder.mul(loop.index, ir.Constant(intp, lanes))
            mask = below(builder.add(j0_v, offset), lanes)
            bits = builder.zext(builder.bitcast(mask, ir.IntType(lanes)), i64)
            shifted = builder.shl(bits, context.cast(builder, offset, types.intp, types.uint64))
            builder.store(builder.or_(builder.load(word), shifted), word)
        done = builder.mul(full, ir.Constant(intp, lanes))
        with cgutils.for_range(builder, builder.sub(count_v, done)) as loop:
            q = builder.add(done, loop.index)
            bit = builder.zext(below(builder.add(j0_v, q), 1), i64)
            shifted = builder.shl(bit, context.cast(builder, q, types.intp, types.uint64))
            builder.store(builder.or_(builder.load(word), shifted), word)
        return builder.load(word)

    return types.uint64(dots, r, j0, count, sign, signed), codegen


def _threshold_word_python(dots, r, j0, count, sign, signed):
    word = np.uint64(0)
    for q in range(count):
        j = j0 + q
        if sign[j] * dots[r, j] < signed[j]:
            word |= np.uint64(1) << np.uint64(q)
    return word


threshold_word = _threshold_word_python if jit_disabled() else _threshold_word_llvm


# ---------------------------------------------------------------------------
# A few taps times a block of filters: one vector accumulator in a register
# ---------------------------------------------------------------------------
#: Lanes of :func:`column_block_dot` (float32: one 512-bit vector, two on AVX2, four on NEON).
COLUMN_BLOCK = 16


@intrinsic
def _column_block_dot_llvm(typingctx, patch, w, f0, dots):
    """``column_block_dot`` (module doc): ``patch`` float32 1-D C-contiguous (k,), ``w``
    float32 2-D C-contiguous (k, n) with ``f0 + 16 <= n``, ``dots`` float32 2-D C-contiguous
    (., n), row 0 written at columns ``f0 .. f0 + 15``. The multiply and add are exact here
    (integers below 2**24), so their order and contraction do not matter."""
    f32 = types.float32
    ok = (isinstance(patch, types.Array) and patch.ndim == 1 and patch.layout == "C" and patch.dtype == f32
          and all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and a.dtype == f32 for a in (w, dots))
          and isinstance(f0, types.Integer))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        patch_v, w_v, f0_v, dots_v = intp_args(context, builder, signature, args)
        patch_t, w_t, _, dots_t = signature.args
        patch_a = context.make_array(patch_t)(context, builder, patch_v)
        w_a = context.make_array(w_t)(context, builder, w_v)
        dots_a = context.make_array(dots_t)(context, builder, dots_v)
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        vec = ir.VectorType(ir.FloatType(), COLUMN_BLOCK)
        k = cgutils.unpack_tuple(builder, patch_a.shape, 1)[0]

        def term(t):
            value = builder.load(builder.gep(patch_a.data, [t]))
            one = builder.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(i32, 0))
            splat = builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                           ir.Constant(ir.VectorType(i32, COLUMN_BLOCK), [0] * COLUMN_BLOCK))
            ptr = cgutils.get_item_pointer(context, builder, w_t, w_a, [t, f0_v])
            return builder.fmul(splat, builder.load(builder.bitcast(ptr, vec.as_pointer()), align=4))

        # three accumulators over the taps (t mod 3): a third of the add latency chain
        accs = [cgutils.alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(3)]
        triples = builder.udiv(k, ir.Constant(intp, 3))
        with cgutils.for_range(builder, triples) as loop:
            t0 = builder.mul(loop.index, ir.Constant(intp, 3))
            for a, acc in enumerate(accs):
                builder.store(builder.fadd(builder.load(acc), term(builder.add(t0, ir.Constant(intp, a)))), acc)
        done = builder.mul(triples, ir.Constant(intp, 3))
        with cgutils.for_range(builder, builder.sub(k, done)) as loop:
            builder.store(builder.fadd(builder.load(accs[0]), term(builder.add(done, loop.index))), accs[0])
        total = builder.fadd(builder.fadd(builder.load(accs[0]), builder.load(accs[1])), builder.load(accs[2]))
        out = cgutils.get_item_pointer(context, builder, dots_t, dots_a, [ir.Constant(intp, 0), f0_v])
        builder.store(total, builder.bitcast(out, vec.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(patch, w, f0, dots), codegen


def _column_block_dot_python(patch, w, f0, dots):
    dots[0, f0 : f0 + COLUMN_BLOCK] = patch @ w[:, f0 : f0 + COLUMN_BLOCK]


column_block_dot = _column_block_dot_python if jit_disabled() else _column_block_dot_llvm


# ---------------------------------------------------------------------------
# A conv output pixel's word: 16 filters per vector lane block, the taps read in place
# ---------------------------------------------------------------------------
#: Filters per lane block of :func:`filter_word` (one 512-bit vector of 32-bit lanes).
FILTER_LANES = 16
#: Lane blocks per :func:`filter_word` at most (64 filters: one 64-bit word).
FILTER_BLOCKS = 4


def _filter_word_kind(x, offsets, w, sign, signed, ints):
    """The element kind of :func:`filter_word`'s operands (``"bits"``: uint32 words, int32
    thresholds; ``"float"``: float32 values and thresholds), or None."""
    def arr(a, ndim):
        return isinstance(a, types.Array) and a.ndim == ndim and a.layout == "C"

    if not (arr(x, 1) and arr(offsets, 1) and arr(w, 2) and arr(sign, 1) and arr(signed, 1)
            and offsets.dtype == types.int64 and all(isinstance(v, types.Integer) for v in ints)):
        return None
    if x.dtype == w.dtype == types.uint32 and sign.dtype == signed.dtype == types.int32:
        return "bits"
    if x.dtype == w.dtype == sign.dtype == signed.dtype == types.float32:
        return "float"
    return None


@intrinsic
def _filter_word_llvm(typingctx, x, base, offsets, w, blk0, blocks, k_bits, sign, signed):
    """``filter_word`` (module doc): a switch on ``blocks`` (1..4) to a loop over the taps with
    that many ``<16 x i32>`` / ``<16 x float>`` accumulators in registers, then a compare per
    block into the word. Arrays are read through their data pointers (no reference counting in
    the caller's pixel loop)."""
    kind = _filter_word_kind(x, offsets, w, sign, signed, (base, blk0, blocks, k_bits))
    if kind is None:
        return None

    def codegen(context, builder, signature, args):
        x_v, base_v, off_v, w_v, blk0_v, blocks_v, kbits_v, sign_v, signed_v = intp_args(
            context, builder, signature, args)
        x_t, _, off_t, w_t, _, _, _, sign_t, signed_t = signature.args
        x_a = context.make_array(x_t)(context, builder, x_v)
        off_a = context.make_array(off_t)(context, builder, off_v)
        w_a = context.make_array(w_t)(context, builder, w_v)
        sign_a = context.make_array(sign_t)(context, builder, sign_v)
        signed_a = context.make_array(signed_t)(context, builder, signed_v)
        intp = context.get_value_type(types.intp)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        lanes = FILTER_LANES
        elem = i32 if kind == "bits" else ir.FloatType()
        vec = ir.VectorType(elem, lanes)
        zero_idx = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), "llvm.ctpop.v16i32") \
            if kind == "bits" else None
        k = cgutils.unpack_tuple(builder, off_a.shape, 1)[0]
        w_row = builder.mul(blk0_v, k)  # the first block's first row
        w_stride = builder.mul(k, ir.Constant(intp, lanes))  # elements from one block to the next
        w_data = builder.bitcast(w_a.data, elem.as_pointer())
        w_data = builder.gep(w_data, [builder.mul(w_row, ir.Constant(intp, lanes))])

        def splat(value):
            one = builder.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), zero_idx)

        def load_vec(ptr):
            return builder.load(builder.bitcast(ptr, vec.as_pointer()), align=4)

        def word_of(count):
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(count)]
            with cgutils.for_range(builder, k) as loop:
                t = loop.index
                offset = context.cast(builder, builder.load(builder.gep(off_a.data, [t])), types.int64, types.intp)
                xv = splat(builder.load(builder.gep(x_a.data, [builder.add(base_v, offset)])))
                row = builder.gep(w_data, [builder.mul(t, ir.Constant(intp, lanes))])
                for b, acc in enumerate(accs):
                    wv = load_vec(builder.gep(row, [builder.mul(w_stride, ir.Constant(intp, b))]))
                    if kind == "bits":
                        term = builder.call(ctpop, [builder.xor(xv, wv)])
                        builder.store(builder.add(builder.load(acc), term), acc)
                    else:
                        builder.store(builder.fadd(builder.load(acc), builder.fmul(xv, wv)), acc)
            word = ir.Constant(i64, 0)
            kb = splat(builder.trunc(kbits_v, i32)) if kind == "bits" else None
            for b, acc in enumerate(accs):
                j = builder.mul(builder.add(blk0_v, ir.Constant(intp, b)), ir.Constant(intp, lanes))
                s = load_vec(builder.gep(sign_a.data, [j]))
                thr = load_vec(builder.gep(signed_a.data, [j]))
                total = builder.load(acc)
                if kind == "bits":  # dot = k_bits - 2 * count; sign * dot as (dot ^ m) - m, m = sign >> 31
                    dot = builder.sub(kb, builder.shl(total, ir.Constant(vec, [1] * lanes)))
                    m = builder.ashr(s, ir.Constant(vec, [31] * lanes))
                    below = builder.icmp_signed("<", builder.sub(builder.xor(dot, m), m), thr)
                else:
                    below = builder.fcmp_ordered("<", builder.fmul(s, total), thr)
                bits = builder.zext(builder.bitcast(below, ir.IntType(lanes)), i64)
                word = builder.or_(word, builder.shl(bits, ir.Constant(i64, lanes * b)))
            return word

        result = cgutils.alloca_once(builder, i64)
        end = builder.append_basic_block("filter_word.end")
        cases = [builder.append_basic_block(f"filter_word.blocks{b}") for b in range(1, FILTER_BLOCKS + 1)]
        switch = builder.switch(blocks_v, cases[-1])  # 4 or more: 4
        for b, block in enumerate(cases, 1):
            if b < FILTER_BLOCKS:
                switch.add_case(ir.Constant(intp, b), block)
            builder.position_at_end(block)
            builder.store(word_of(b), result)
            builder.branch(end)
        builder.position_at_end(end)
        return builder.load(result)

    return types.uint64(x, base, offsets, w, blk0, blocks, k_bits, sign, signed), codegen


def _filter_word_python(x, base, offsets, w, blk0, blocks, k_bits, sign, signed):
    k = offsets.shape[0]
    xs = x[base + offsets]
    word = 0
    for b in range(min(int(blocks), FILTER_BLOCKS)):
        rows = w[(blk0 + b) * k : (blk0 + b + 1) * k]
        j = (blk0 + b) * FILTER_LANES
        s, thr = sign[j : j + FILTER_LANES], signed[j : j + FILTER_LANES]
        if x.dtype == np.uint32:
            count = np.bitwise_count(xs[:, None] ^ rows).sum(axis=0, dtype=np.int64)
            below = s.astype(np.int64) * (int(k_bits) - 2 * count) < thr
        else:  # exact: integers below 2**24
            below = s.astype(np.float64) * (xs.astype(np.float64) @ rows.astype(np.float64)) < thr
        for lane in np.flatnonzero(below):
            word |= 1 << (FILTER_LANES * b + int(lane))
    return np.uint64(word)


filter_word = _filter_word_python if jit_disabled() else _filter_word_llvm
