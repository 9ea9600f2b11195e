"""``x @ sign(W)`` on few float32 rows by sign flips and adds straight from ``W``'s bits (the C
NEON reference's one-row kernel, ``benchmarks/arm64/neon_ref.c``), within float rounding.

* ``sign_sums4(x, w, j)`` -> 4 float32 / ``sign_sums1(x, w, j)`` -> float32: ``sum_t (x[t] if
  bit t of w_{j + r} is 0 else -x[t])`` for a 1-D float32 row ``x`` (C-contiguous, length ``k``)
  and rows ``j + r`` of ``w`` (uint64 (n, ceil(k/64)), ``fastbin.bits``); padding bits never read.
* ``sign_matmul_f32_rows(x, w_bits, out) -> bool``: ``out`` float32 (m, n) receives ``x @
  sign(W)``, ``x`` float32 (m, k) any strides (copied to C order when not); False, writing
  nothing, on non-zero padding bits.

Per 4 elements and row of ``w``: the 4 bits moved to the sign position of 4 lanes (a shift by a
per-lane constant of the 32-bit word broadcast once per 32 elements: ``ushl``), masked to the
sign bit (``and``), flipped into ``x`` (``eor``) and added (``fadd``) into 4 lane sums, summed
at the end as ``(l0 + l2) + (l1 + l3)``: the same terms as a plain signed sum, in another
order (so within float rounding of it), then the ``k % 4`` last elements one by one; plain IEEE
additions (no fast-math flags), so the same bits on every CPU. 4 rows of ``w`` share each load of
``x``. Generic LLVM (vector shifts, ``and``, ``xor``, ``fadd``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled
from ..pack import padding_is_zero
from ._neon_ir import row_block, row_operands
from .portable import _c_order

__all__ = ["sign_sums4", "sign_sums1", "sign_matmul_f32_rows"]


@intrinsic
def _sign_sums(typingctx, x, w, j, rows):
    """``sum_t ±x[t]`` for rows ``j .. j + rows - 1`` of ``w``: a ``rows``-tuple of float32
    (``rows`` 1 or 4); every addition a plain IEEE one in the documented order (no fast-math
    flags: the ``k % 4`` last ones too)."""
    n_rows = row_block(x, types.float32, w, rows)
    if n_rows is None:
        return None
    result = types.UniTuple(types.float32, n_rows)

    def codegen(context, builder, signature, args):
        x_array, w_array, ints = row_operands(context, builder, signature, args)
        j_value = ints[2]
        intp = context.get_value_type(types.intp)
        i32, f32 = ir.IntType(32), ir.FloatType()
        v4i, v4f = ir.VectorType(i32, 4), ir.VectorType(f32, 4)
        k = cgutils.unpack_tuple(builder, x_array.shape, 1)[0]
        n_rows_w, n_words = cgutils.unpack_tuple(builder, w_array.shape, 2)
        bases = [builder.bitcast(builder.gep(w_array.data, [builder.mul(builder.add(j_value, ir.Constant(intp, r)),
                                                                        n_words)]), i32.as_pointer())
                 for r in range(n_rows)]
        x_words = builder.bitcast(x_array.data, i32.as_pointer())

        def fadd(a, b):  # a flag of its own (arcp: nothing for an addition), so that Numba's fast-math
            return builder.fadd(a, b, flags=("arcp",))  # pass, which flags unflagged ones, keeps it strict

        accs = [cgutils.alloca_once_value(builder, ir.Constant(v4f, None)) for _ in range(n_rows)]
        sign = ir.Constant(v4i, [-(2**31)] * 4)
        undef = ir.Constant(v4i, ir.Undefined)
        splat0 = ir.Constant(v4i, [0] * 4)
        # The lanes' shift counts as a vector LLVM cannot fold to constants (plus a shape's sign bit:
        # 0), moved by 4 a group: one register, where 8 constants were reloaded from memory per word
        zero = builder.zext(builder.icmp_signed("<", n_rows_w, ir.Constant(intp, 0)), i32)
        zeros = builder.shuffle_vector(builder.insert_element(undef, zero, ir.Constant(i32, 0)), undef, splat0)
        first_shifts = builder.add(ir.Constant(v4i, [31, 30, 29, 28]), zeros)
        four = ir.Constant(v4i, [4] * 4)
        groups = builder.udiv(k, ir.Constant(intp, 4))
        whole = builder.udiv(groups, ir.Constant(intp, 8))
        left = builder.urem(groups, ir.Constant(intp, 8))

        def word_splats(h):  # the 32 bits for elements 32h .. 32h + 31, in every lane (ld1r)
            out = []
            for base in bases:
                word = builder.load(builder.gep(base, [h]))
                out.append(builder.shuffle_vector(builder.insert_element(undef, word, ir.Constant(i32, 0)), undef,
                                                  splat0))
            return out

        def group(us, h, g, shifts):  # elements 32h + 4g .. + 3
            at = builder.add(builder.mul(h, ir.Constant(intp, 32)), ir.Constant(intp, 4 * g))
            xv = builder.load(builder.bitcast(builder.gep(x_words, [at]), v4i.as_pointer()), align=4)
            for r in range(n_rows):
                flip = builder.and_(builder.shl(us[r], shifts), sign)
                term = builder.bitcast(builder.xor(xv, flip), v4f)
                builder.store(fadd(builder.load(accs[r]), term), accs[r])

        with cgutils.for_range(builder, whole) as loop:
            us = word_splats(loop.index)
            shifts = first_shifts
            for g in range(8):
                group(us, loop.index, g, shifts)
                shifts = builder.sub(shifts, four)
        with builder.if_then(builder.icmp_unsigned("!=", left, ir.Constant(intp, 0))):
            us = word_splats(whole)  # the word of the last 1-7 groups exists: their bits are < k
            shifts = first_shifts
            for g in range(7):
                with builder.if_then(builder.icmp_unsigned("<", ir.Constant(intp, g), left)):
                    group(us, whole, g, shifts)
                shifts = builder.sub(shifts, four)
        slots = []
        for acc in accs:
            v = builder.load(acc)
            lanes = [builder.extract_element(v, ir.Constant(i32, q)) for q in range(4)]
            total = fadd(fadd(lanes[0], lanes[2]), fadd(lanes[1], lanes[3]))
            slots.append(cgutils.alloca_once_value(builder, total))
        k4 = builder.mul(groups, ir.Constant(intp, 4))
        for q in range(3):  # the k % 4 last elements, one by one
            t = builder.add(k4, ir.Constant(intp, q))
            with builder.if_then(builder.icmp_unsigned("<", t, k)):
                xt = builder.load(builder.gep(x_words, [t]))
                at = builder.udiv(t, ir.Constant(intp, 32))
                shift = builder.trunc(builder.urem(t, ir.Constant(intp, 32)), i32)
                for r in range(n_rows):
                    word = builder.load(builder.gep(bases[r], [at]))
                    bit = builder.and_(builder.lshr(word, shift), ir.Constant(i32, 1))
                    term = builder.bitcast(builder.xor(xt, builder.shl(bit, ir.Constant(i32, 31))), f32)
                    builder.store(fadd(builder.load(slots[r]), term), slots[r])
        return context.make_tuple(builder, result, [builder.load(slot) for slot in slots])

    return result(x, w, j, rows), codegen


def _sign_sums_python(x, w, j, rows):
    k4 = x.shape[0] // 4 * 4
    sums = []
    for r in range(rows):
        lanes = [np.float32(0)] * 4
        for t in range(k4):
            v = x[t]
            lanes[t % 4] = np.float32(lanes[t % 4] + (-v if (int(w[j + r, t // 64]) >> (t % 64)) & 1 else v))
        s = np.float32((lanes[0] + lanes[2]) + (lanes[1] + lanes[3]))
        for t in range(k4, x.shape[0]):
            v = x[t]
            s = np.float32(s + (-v if (int(w[j + r, t // 64]) >> (t % 64)) & 1 else v))
        sums.append(s)
    return tuple(sums)


_sums = _sign_sums_python if jit_disabled() else _sign_sums


@jit(inline="always")
def sign_sums4(x, w, j):
    """``x @ sign(w_r)`` for ``r = j .. j + 3`` (float32 each)."""
    return _sums(x, w, j, 4)


@jit(inline="always")
def sign_sums1(x, w, j):
    """``x @ sign(w_j)`` (float32)."""
    return _sums(x, w, j, 1)[0]


@jit
def _f32_rows(x, w_bits, out):
    m = x.shape[0]
    n = w_bits.shape[0]
    n4 = n // 4 * 4
    for i in range(m):
        row = x[i]
        for j in range(0, n4, 4):
            s0, s1, s2, s3 = sign_sums4(row, w_bits, j)
            out[i, j] = s0
            out[i, j + 1] = s1
            out[i, j + 2] = s2
            out[i, j + 3] = s3
        for j in range(n4, n):
            out[i, j] = sign_sums1(row, w_bits, j)


@jit
def sign_matmul_f32_rows(x, w_bits, out):
    """``out = x @ sign(W)`` (float32) by sign flips from ``W``'s bits (module docstring)."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    _f32_rows(_c_order(x), w_bits, out)
    return True
