"""Popcount for the kernels (the bit convention is ``fastbin.bits``').

Numba has no popcount builtin. :func:`popcount` is an ``@intrinsic`` that
emits LLVM's ``ctpop``; LLVM lowers it to ``popcnt`` (x86), ``cnt`` (ARM64) or, in a
vectorised loop on a CPU with AVX-512 VPOPCNTDQ, ``vpopcntq``. Under
``NUMBA_DISABLE_JIT=1`` the same name is a plain-Python function, so every
kernel still runs (slowly) as ordinary Python.
"""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic

from .._config import jit_disabled

__all__ = ["popcount"]


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
