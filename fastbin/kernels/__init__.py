"""The raw Numba kernels, for use inside your own ``@numba.njit`` functions.

They trust their inputs (C-contiguous arrays of the documented dtypes and
shapes, zero padding bits) and write into preallocated outputs; the public
functions in ``fastbin`` validate and allocate, then call these.
"""
from ..bitops import WORD_BITS, popcount

__all__ = ["WORD_BITS", "popcount"]
