"""Thresholds to packed signs: the folded batch norm + sign of a binary layer.

One encoding of ``flip`` and one bit-word loop, shared by every kernel that
turns dot products into the next layer's packed signs
(``binary_dense_sign_*``, ``dense_sign_rows``, ``threshold_pack``, the first
conv layer of ``fastbin.kernels.conv.first``):

* :func:`signed_thresholds` ``(thresholds, flip) -> (sign, signed)``:
  ``sign[j] = -1`` where ``flip[j]`` else ``+1``, ``signed = sign * thresholds``
  (exact: a negation). Then ``dot < t`` (not flipped) and ``dot > t``
  (flipped) are both ``sign * dot < signed``, one compare that vectorises.
  NaN compares false, i.e. bit 0 (sign +1), as ``sign`` of the unfolded model.
* :func:`below_word` ``(dots, r, j0, j1, sign, signed) -> uint64``: bit
  ``j - j0`` set where ``sign[j] * dots[r, j] < signed[j]``, for ``j`` in
  ``[j0, j1)`` (at most 64; the bit convention of ``fastbin.bits``: bit 1 is
  -1, higher bits 0 = zero padding). Jitted, on C-contiguous arrays of signed
  integers or floats, it is ``fastbin.kernels.intrinsics.threshold_word``: a
  vector of compares at a time, the mask moved into the word (8 or 16 outputs
  per compare instead of a compare and a shift-or each); otherwise (other
  layouts) the loop of this module, which is also its plain-Python form.
* ``threshold_pack(dot, thresholds, flip, out_bits)``: ``dot`` (m, n)
  float32/float64/int32, C-contiguous; ``thresholds`` (n,) of ``dot``'s float
  dtype or int64; ``flip`` bool (n,); ``out_bits`` uint64 (m, ceil(n/64))
  receives every word. One pass instead of NumPy's compare / where / pack.
"""
from __future__ import annotations

import numpy as np
from numba.extending import overload

from ..._config import jit, jit_disabled
from ..intrinsics import threshold_word, threshold_word_types

__all__ = ["signed_thresholds", "below_word", "threshold_pack"]


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def signed_thresholds(thresholds, flip):
    n = thresholds.shape[0]
    sign = np.empty(n, dtype=thresholds.dtype)
    signed = np.empty(n, dtype=thresholds.dtype)
    for j in range(n):
        sign[j] = -1 if flip[j] else 1
        signed[j] = sign[j] * thresholds[j]
    return sign, signed


def below_word(dots, r, j0, j1, sign, signed):
    word = np.uint64(0)
    for j in range(j0, j1):
        negative = sign[j] * dots[r, j] < signed[j]
        word |= np.uint64(negative) << np.uint64(j - j0)
    return word


if not jit_disabled():
    _below_word_loop = jit(inline="always")(below_word)

    @overload(below_word, inline="always")
    def _below_word_jit(dots, r, j0, j1, sign, signed):
        if threshold_word_types(dots, sign, signed) is not None:
            def vector(dots, r, j0, j1, sign, signed):
                return threshold_word(dots, r, j0, j1 - j0, sign, signed)

            return vector

        def loop(dots, r, j0, j1, sign, signed):
            return _below_word_loop(dots, r, j0, j1, sign, signed)

        return loop


@jit
def threshold_pack(dot, thresholds, flip, out_bits):
    m, n = dot.shape
    sign, signed = signed_thresholds(thresholds, flip)
    for i in range(m):
        for w in range(out_bits.shape[1]):
            j0 = w * 64
            out_bits[i, w] = below_word(dot, i, j0, min(n, j0 + 64), sign, signed)
