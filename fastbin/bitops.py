"""Bit convention and popcount: the two facts every packed kernel relies on.

The bit convention (stated once, here; ``tests/test_bitops.py`` checks it)
------------------------------------------------------------------------
A vector of ``k`` signs is stored in ``n_words = ceil(k / 64)`` ``uint64``
words along the *contraction* axis:

* element ``j`` lives in word ``j // 64``, bit ``j % 64``; the least
  significant bit comes first;
* bit 1 means -1, bit 0 means +1; ``sign(0) = +1`` (also for ``-0.0``), so the
  bit is simply ``x < 0``;
* padding bits (positions ``k .. 64 * n_words - 1`` of the last word) are 0 in
  every packed operand, so they cancel in ``a ^ w`` and vanish in ``a & w`` and
  never change a result.

The back-transform (where the maths lives)
------------------------------------------
For two sign vectors ``a, w`` in {-1, +1}^k, each product ``a_j * w_j`` is +1
where the bits agree and -1 where they differ, so

    dot(a, w) = (k - d) - d = k - 2 * popcount(a_bits XOR w_bits)

with ``d`` the number of differing positions (padding bits agree: both 0).
For a 0/1 vector ``b`` (a bit-plane of uint8 pixels) against signs ``w``:

    dot(b, w) = popcount(b) - 2 * popcount(b AND w_bits)

and ``x = sum_p 2**p * b_p`` gives an exact integer ``dot(x, w)`` for uint8 x.

Popcount
--------
Numba has no popcount builtin. :func:`popcount` is an ``@intrinsic`` that emits
LLVM's ``ctpop``; LLVM lowers it to ``popcnt`` (x86), ``cnt`` (ARM64) or, in a
vectorised loop on a CPU with AVX-512 VPOPCNTDQ, ``vpopcntq``. Under
``NUMBA_DISABLE_JIT=1`` the same name is a plain-Python function, so every
kernel still runs (slowly) as ordinary Python.
"""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic

from ._options import jit, jit_disabled

__all__ = ["WORD_BITS", "popcount", "n_words_for"]

#: Bits per packed word.
WORD_BITS = 64


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


@jit
def n_words_for(n_bits):
    """Number of uint64 words that hold ``n_bits`` bits: ``ceil(n_bits / 64)``."""
    return (n_bits + (WORD_BITS - 1)) // WORD_BITS
