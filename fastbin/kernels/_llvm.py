"""Small helpers for the LLVM intrinsics of the kernels (``llvmlite.ir``).

Only generic LLVM operations are emitted (vector loads, shuffles, ``ctpop``,
masked stores): LLVM lowers them for whatever CPU compiles the kernel
(AVX-512 here, NEON on ARM64), so no result depends on the CPU.
"""
from __future__ import annotations

from numba import types

__all__ = ["intp_args", "is_words"]


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
