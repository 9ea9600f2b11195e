"""Bit convention and popcount: the two facts every packed kernel relies on.

The bit convention (stated once, here; ``tests/test_bits.py`` checks it)
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

Allocation
----------
Packed buffers start on a 64-byte boundary (``ALIGNMENT``: one cache line,
one AVX-512 register): unaligned packed operands measured about 27% slower.

Plain NumPy: the popcount the kernels use is ``fastbin.kernels.intrinsics``.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["WORD_BITS", "ALIGNMENT", "n_words_for", "aligned_empty", "aligned_zeros"]

#: Bits per packed word.
WORD_BITS = 64

#: Byte alignment of every packed buffer fastbin allocates (one cache line, one
#: AVX-512 register): unaligned packed operands measured about 27% slower.
ALIGNMENT = 64


def n_words_for(n_bits: int) -> int:
    """``ceil(n_bits / 64)``: uint64 words that hold ``n_bits`` bits."""
    return -(-int(n_bits) // WORD_BITS)


def aligned_empty(shape, dtype, alignment: int = ALIGNMENT) -> np.ndarray:
    """Uninitialised C-contiguous array whose data starts on an ``alignment``-byte
    boundary."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape
    n_bytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(n_bytes + alignment, dtype=np.uint8)
    offset = (-raw.ctypes.data) % alignment
    return raw[offset : offset + n_bytes].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype, alignment: int = ALIGNMENT) -> np.ndarray:
    """Like :func:`aligned_empty`, filled with zeros."""
    out = aligned_empty(shape, dtype, alignment)
    out.fill(0)
    return out
