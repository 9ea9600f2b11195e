"""One row of packed signs against the rows of ``w`` on AVX2 (no vector popcount): the packed
stages of the runtime's fused batch-1 pass (``fastbin.runtime._fused``) where
``_config.FUSED_BYTE_TABLES``; the sibling of ``count_block`` (``vpopcntq``, 8 rows per load).

``binary_product.avx2``'s nibble tables for one row: ``w``'s rows in panels of 32, bytes
transposed and split into nibbles once per model (``panels_of``), the row ``a`` as 16-entry
tables per byte (``avx2.tables_of``: ``T_lo[x] = popcount(x ^ (byte & 15))``, ``T_hi``
likewise), so that ``popcount(w_byte ^ a_byte) = T_lo[w_lo] + T_hi[w_hi]`` for 32 rows of
``w`` at once: per byte of k and panel 2 ``vpshufb`` and 2 byte adds, no xor and no popcount
in the loop. The byte lanes (at most 8 a byte) are widened into the int32 ``dots`` every
``CHUNK`` bytes; at the end ``dots = n_bits - 2 * count``.

* ``panels_of(w_bits, rows) -> panels`` uint8 (groups, 8 n_words, 64), groups a multiple of
  ``rows`` (``ROWS`` here; ``sign_product.nibble_block_avx2`` takes the same form);
* ``xor_dots(panels, g, tabs, n_bits, dots)``: ``dots[0, 32 g + i] = n_bits - 2
  popcount(a ^ w[32 g + i])`` for ``i < 32 ROWS`` (int32 (1, >= 32 (g + ROWS)) C-contiguous),
  ``tabs`` uint8 (1, panels.shape[1], 32) from ``avx2.tables_of`` on ``a``.

Runs where ``fastbin._config.FUSED_BYTE_TABLES`` (x86-64 with AVX2); plain-Python twins serve
``NUMBA_DISABLE_JIT=1``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled
from ..intrinsics import avx2_pshufb, intp_args
from .avx2 import CHUNK, PANEL, panel_nibbles

__all__ = ["ROWS", "UNPACK_LO", "UNPACK_HI", "panels_of", "xor_dots", "emit_natural_order"]

#: panels (32 rows of w each) per register block: a byte sum per panel, its 2 nibble vectors and
#: the 2 tables of a byte (the int32 sums are in memory, touched once per CHUNK bytes)
ROWS = 4

_I8X16 = ir.VectorType(ir.IntType(8), 16)
_I8X32 = ir.VectorType(ir.IntType(8), 32)
_I16X16 = ir.VectorType(ir.IntType(16), 16)
_I32X16 = ir.VectorType(ir.IntType(32), 16)
_BROADCAST = ir.Constant(ir.VectorType(ir.IntType(32), 32), list(range(16)) * 2)


@jit
def panels_of(w_bits, rows):
    """``w_bits``' panels: ``panels[g, s, 0:32]`` the low nibbles of byte ``s`` of rows ``32 g
    .. 32 g + 31``, ``[32:64]`` the high ones (``avx2.panel_nibbles``; rows past n zero), the
    groups a multiple of ``rows``."""
    n, n_words = w_bits.shape
    groups = -(-n // (PANEL * rows)) * rows
    panels = np.zeros((groups, 8 * n_words, 2 * PANEL), np.uint8)
    for g in range(groups):
        for t in range(0, n_words, 2):
            panel_nibbles(w_bits, g * PANEL, t, panels, g)
    return panels


def _mask(values):
    return ir.Constant(ir.VectorType(ir.IntType(32), len(values)), list(values))


#: ``vpunpcklbw`` / ``vpunpckhbw`` (per 128-bit lane: bytes 0-7 / 8-15 of a and b interleaved)
UNPACK_LO = _mask([lane + j + 32 * side for lane in (0, 16) for j in range(8) for side in (0, 1)])
UNPACK_HI = _mask([lane + 8 + j + 32 * side for lane in (0, 16) for j in range(8) for side in (0, 1)])


def emit_natural_order(builder, low, high):
    """``(outputs 0-15, outputs 16-31)`` (``<16 x i32>`` each) of the widened unpacks of 32
    byte lanes: ``low`` holds outputs 0-7 | 16-23, ``high`` 8-15 | 24-31 (the unpacks work
    per 128-bit lane)."""
    first = builder.shuffle_vector(low, high, _mask(list(range(8)) + list(range(16, 24))))
    second = builder.shuffle_vector(low, high, _mask(list(range(8, 16)) + list(range(24, 32))))
    return first, second


def _xor_dots_python(panels, g, tabs, n_bits, dots):
    n_steps = panels.shape[1]
    for r in range(ROWS):
        for i in range(PANEL):
            count = sum(int(tabs[0, s, panels[g + r, s, i]]) + int(tabs[0, s, 16 + panels[g + r, s, PANEL + i]])
                        for s in range(n_steps))
            dots[0, PANEL * (g + r) + i] = int(n_bits) - 2 * count


@intrinsic
def _xor_dots_intrinsic(typingctx, panels, g, tabs, n_bits, dots):
    ok = (isinstance(panels, types.Array) and panels.ndim == 3 and panels.layout == "C"
          and panels.dtype == types.uint8 and isinstance(tabs, types.Array) and tabs.ndim == 3
          and tabs.layout == "C" and tabs.dtype == types.uint8 and isinstance(dots, types.Array)
          and dots.ndim == 2 and dots.layout == "C" and dots.dtype == types.int32
          and isinstance(g, types.Integer) and isinstance(n_bits, types.Integer))
    if not ok:
        return None

    def codegen(context, builder, signature, args):
        panels_v, g_v, tabs_v, n_bits_v, dots_v = intp_args(context, builder, signature, args)
        panels_t, _, tabs_t, _, dots_t = signature.args
        panels_a = context.make_array(panels_t)(context, builder, panels_v)
        tabs_a = context.make_array(tabs_t)(context, builder, tabs_v)
        dots_a = context.make_array(dots_t)(context, builder, dots_v)
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)

        def const(value):
            return ir.Constant(intp, value)

        def load(base, at, vec):
            return builder.load(builder.bitcast(builder.gep(base, [at]), vec.as_pointer()), align=1)

        n_steps = cgutils.unpack_tuple(builder, panels_a.shape, 3)[1]
        p_base = [builder.gep(panels_a.data, [builder.mul(builder.mul(builder.add(g_v, const(r)), n_steps),
                                                          const(2 * PANEL))]) for r in range(ROWS)]
        out = builder.bitcast(dots_a.data, i32.as_pointer())
        out = [builder.gep(out, [builder.mul(builder.add(g_v, const(r)), const(PANEL))]) for r in range(ROWS)]
        for r in range(ROWS):
            for half in range(2):
                ptr = builder.bitcast(builder.gep(out[r], [const(16 * half)]), _I32X16.as_pointer())
                builder.store(ir.Constant(_I32X16, None), ptr, align=4)
        counts = [cgutils.alloca_once(builder, _I8X32) for _ in range(ROWS)]
        zero8 = ir.Constant(_I8X32, None)
        with cgutils.for_range_slice(builder, const(0), n_steps, const(CHUNK)) as (c0, _):
            stop = builder.add(c0, const(CHUNK))
            stop = builder.select(builder.icmp_signed("<", stop, n_steps), stop, n_steps)
            for r in range(ROWS):
                builder.store(zero8, counts[r])
            with cgutils.for_range_slice(builder, c0, stop, const(1)) as (s, _):
                t_at = builder.mul(s, const(32))
                t_lo = load(tabs_a.data, t_at, _I8X16)
                t_hi = load(tabs_a.data, builder.add(t_at, const(16)), _I8X16)
                t_lo = builder.shuffle_vector(t_lo, t_lo, _BROADCAST)
                t_hi = builder.shuffle_vector(t_hi, t_hi, _BROADCAST)
                at = builder.mul(s, const(2 * PANEL))
                for r in range(ROWS):
                    low = load(p_base[r], at, _I8X32)
                    high = load(p_base[r], builder.add(at, const(PANEL)), _I8X32)
                    count = builder.add(avx2_pshufb(builder, t_lo, low), avx2_pshufb(builder, t_hi, high))
                    builder.store(builder.add(builder.load(counts[r]), count), counts[r])
            for r in range(ROWS):  # bytes -> int32, added into dots in the rows' order
                acc = builder.load(counts[r])
                lanes = [builder.zext(builder.bitcast(builder.shuffle_vector(acc, zero8, unpack), _I16X16), _I32X16)
                         for unpack in (UNPACK_LO, UNPACK_HI)]
                for half, value in enumerate(emit_natural_order(builder, *lanes)):
                    ptr = builder.bitcast(builder.gep(out[r], [const(16 * half)]), _I32X16.as_pointer())
                    builder.store(builder.add(builder.load(ptr, align=4), value), ptr, align=4)
        n32 = builder.trunc(n_bits_v, i32) if n_bits_v.type.width > 32 else n_bits_v
        lanes = builder.shuffle_vector(builder.insert_element(ir.Constant(_I32X16, ir.Undefined), n32,
                                                              ir.Constant(i32, 0)),
                                       ir.Constant(_I32X16, ir.Undefined),
                                       ir.Constant(ir.VectorType(i32, 16), [0] * 16))
        for r in range(ROWS):
            for half in range(2):
                ptr = builder.bitcast(builder.gep(out[r], [const(16 * half)]), _I32X16.as_pointer())
                value = builder.load(ptr, align=4)
                builder.store(builder.sub(lanes, builder.add(value, value)), ptr, align=4)
        return context.get_dummy_value()

    return types.void(panels, g, tabs, n_bits, dots), codegen


xor_dots = _xor_dots_python if jit_disabled() else _xor_dots_intrinsic
