"""The LLVM IR pieces of the NEON-shaped kernels ``sign_product.uint8_rows``, ``uint8_masks`` and
``f32_rows`` (helpers of their intrinsics' typing and code generation, nothing jitted):

* ``row_block(x, dtype, w, rows)`` -> int or None: the literal ``rows`` (1 or 4) when ``x`` is a
  1-D C-contiguous ``dtype`` row and ``w`` packed words (``intrinsics.is_words``), else None
  (the typing of a one-row-by-``rows``-rows-of-W intrinsic);
  ``row_operands(context, builder, signature, args)`` -> ``(x, w, ints)``: the first two
  arguments as arrays (``context.make_array``), every argument cast to intp where an integer.

* ``accumulator(builder, select)`` -> ``(zero, accumulate, reduce)``: ``S = sum of x where the
  mask is 0xFF`` over 16-byte chunks of ``x`` and of byte masks (0 or 0xFF each):
  ``accumulate(acc, x, mask)`` adds the 16 bytes ``select(x, mask)`` (``x & mask``)
  pairwise into 8 uint16 lanes (``uaddlp`` + ``add``, which LLVM folds to ``uadalp``, on
  AArch64; generic shuffles elsewhere; ``<= 2 * 255`` a chunk a lane), starting from ``zero``;
  ``reduce(acc)`` is the lanes' total, int64. With the dot-product extension (``UDOT``:
  ``_config.UINT8_UDOT`` on AArch64) ``udot`` of ``x`` with the mask into 4 uint32 lanes
  instead (``255 * S``, ``<= 4 * 255 * 255`` a chunk a lane; ``reduce`` divides once).
* ``spread_chunks(builder, rows, c0, c1, nonneg, body)``: calls ``body(c, mask)`` for every
  16-byte chunk ``c0 <= c < c1`` (intp, ``c0 % 8 == 0``) in order, ``mask(r)`` emitting the 16
  byte masks (0xFF where the bit is 1) of bits ``16c .. 16c + 15`` of the packed row whose first
  word ``rows[r]`` points to (``i64*``, ``fastbin.bits``): 128 bits of each row loaded once per
  8 chunks, spread over the byte lanes (a byte shuffle: ``tbl`` on AArch64, its index moving
  by 2 a chunk) and tested against each lane's bit (``cmtst``). Words past chunk ``c1 - 1``
  are never read. ``nonneg``: any intp LLVM cannot prove non-negative (a shape).
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils

from ..._config import UINT8_UDOT
from ..intrinsics import intp_args, is_words

__all__ = ["UDOT", "row_block", "row_operands", "accumulator", "spread_chunks"]

_AARCH64 = platform.machine() in ("aarch64", "arm64")
#: ``udot`` of the pixels with the 0xFF masks (``_config.UINT8_UDOT``: the dot-product extension)
UDOT = UINT8_UDOT and _AARCH64

_I8, _I16, _I32, _I64 = (ir.IntType(b) for b in (8, 16, 32, 64))
_V16, _V8H, _V8W, _V4W, _V2D = (ir.VectorType(_I8, 16), ir.VectorType(_I16, 8), ir.VectorType(_I32, 8),
                                ir.VectorType(_I32, 4), ir.VectorType(_I64, 2))


def row_block(x, dtype, w, rows):
    """``rows.literal_value`` for a row ``x`` of ``dtype`` by 1 or 4 rows of ``w`` (module docstring)."""
    if (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" and x.dtype == dtype and is_words(w)
            and isinstance(rows, types.IntegerLiteral) and rows.literal_value in (1, 4)):
        return rows.literal_value
    return None


def row_operands(context, builder, signature, args):
    """``(x, w, ints)`` of a row intrinsic's code generation (module docstring)."""
    x, w = (context.make_array(t)(context, builder, a) for t, a in zip(signature.args[:2], args[:2]))
    return x, w, intp_args(context, builder, signature, args)


def _function(builder, name, ret, *args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, list(args)), name)


def _pairwise(builder):
    """``v16 -> v8h``: the 16 bytes added pairwise (``uaddlp`` on AArch64)."""
    if _AARCH64:
        fn = _function(builder, "llvm.aarch64.neon.uaddlp.v8i16.v16i8", _V8H, _V16)
        return lambda v: builder.call(fn, [v])
    undef = ir.Constant(_V16, ir.Undefined)
    even, odd = (ir.Constant(_V8W, list(range(s, 16, 2))) for s in (0, 1))

    def pairwise(v):
        lo = builder.zext(builder.shuffle_vector(v, undef, even), _V8H)
        hi = builder.zext(builder.shuffle_vector(v, undef, odd), _V8H)
        return builder.add(lo, hi)

    return pairwise


def accumulator(builder, select):
    """``(zero, accumulate, reduce)`` of the mask sums (module docstring)."""
    if UDOT:
        udot = _function(builder, "llvm.aarch64.neon.udot.v4i32.v16i8", _V4W, _V4W, _V16, _V16)
        reduce4 = _function(builder, "llvm.vector.reduce.add.v4i32", _I32, _V4W)

        def accumulate(acc, xv, mask):
            return builder.call(udot, [acc, xv, mask])

        def reduce(acc):  # 255 * S: an exact division
            return builder.udiv(builder.zext(builder.call(reduce4, [acc]), _I64), ir.Constant(_I64, 255))

        return ir.Constant(_V4W, None), accumulate, reduce
    pairwise = _pairwise(builder)
    reduce8 = _function(builder, "llvm.vector.reduce.add.v8i32", _I32, _V8W)

    def accumulate(acc, xv, mask):
        return builder.add(acc, pairwise(select(xv, mask)))

    def reduce(acc):
        return builder.zext(builder.call(reduce8, [builder.zext(acc, _V8W)]), _I64)

    return ir.Constant(_V8H, None), accumulate, reduce


def spread_chunks(builder, rows, c0, c1, nonneg, body):
    """``body(c, mask)`` for the chunks ``c0 <= c < c1`` (module docstring)."""
    intp = c0.type
    undef = ir.Constant(_V16, ir.Undefined)
    if _AARCH64:
        tbl = _function(builder, "llvm.aarch64.neon.tbl1.v16i8", _V16, _V16, _V16)

        def spread(piece, q, index):
            return builder.call(tbl, [piece, index])
    else:
        def spread(piece, q, index):
            return builder.shuffle_vector(piece, undef, ir.Constant(ir.VectorType(_I32, 16),
                                                                    [2 * q] * 8 + [2 * q + 1] * 8))
    # The byte shuffles' indices and the lanes' bits as vectors LLVM cannot fold to constants
    # (plus nonneg's sign bit: 0): computed once into registers, where constants were reloaded from
    # memory at every chunk (an address of 4 instructions each); the index moves by 2 a chunk.
    zero = builder.zext(builder.icmp_signed("<", nonneg, ir.Constant(intp, 0)), _I8)
    zeros = builder.shuffle_vector(builder.insert_element(undef, zero, ir.Constant(_I32, 0)), undef,
                                   ir.Constant(ir.VectorType(_I32, 16), [0] * 16))
    bit = builder.add(ir.Constant(_V16, [1 << b for b in range(8)] * 2), zeros)
    first = builder.add(ir.Constant(_V16, [0] * 8 + [1] * 8), zeros)
    two = ir.Constant(_V16, [2] * 16)
    no_bits = ir.Constant(_V16, None)
    eight = ir.Constant(intp, 8)
    g0 = builder.udiv(c0, eight)
    count = builder.sub(c1, c0)
    whole = builder.udiv(count, eight)
    left = builder.urem(count, eight)

    def chunk(pieces, g, q, index):
        def mask(r):  # emitted where the body asks for it (after its loads: LLVM's order, and counts, as before)
            return builder.sext(builder.icmp_unsigned("!=", builder.and_(spread(pieces[r], q, index), bit), no_bits),
                                _V16)

        body(builder.add(builder.mul(g, eight), ir.Constant(intp, q)), mask)

    with cgutils.for_range(builder, whole) as loop:  # 8 chunks per 128 bits of each row
        g = builder.add(g0, loop.index)
        pieces = [builder.load(builder.bitcast(builder.gep(row, [builder.mul(g, ir.Constant(intp, 2))]),
                                               _V16.as_pointer()), align=8)
                  for row in rows]
        index = first
        for q in range(8):
            chunk(pieces, g, q, index)
            index = builder.add(index, two)
    with builder.if_then(builder.icmp_unsigned("!=", left, ir.Constant(intp, 0))):
        # 1-7 chunks: one word of each row, and the next one from the fifth chunk on (the words
        # past the chunks may not exist)
        g = builder.add(g0, whole)
        t = builder.mul(g, ir.Constant(intp, 2))
        second = builder.icmp_unsigned(">", left, ir.Constant(intp, 4))
        pieces = []
        for row in rows:
            lo = builder.insert_element(ir.Constant(_V2D, None), builder.load(builder.gep(row, [t])),
                                        ir.Constant(_I32, 0))
            slot = cgutils.alloca_once_value(builder, lo)
            with builder.if_then(second):
                hi = builder.load(builder.gep(row, [builder.add(t, ir.Constant(intp, 1))]))
                builder.store(builder.insert_element(lo, hi, ir.Constant(_I32, 1)), slot)
            pieces.append(builder.bitcast(builder.load(slot), _V16))
        index = first
        for q in range(7):
            with builder.if_then(builder.icmp_unsigned("<", ir.Constant(intp, q), left)):
                chunk(pieces, g, q, index)
            index = builder.add(index, two)
