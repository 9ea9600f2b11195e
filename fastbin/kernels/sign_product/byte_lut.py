"""``x @ sign(W)`` for one or a few float rows by 256-entry byte tables (T-MAC's idea
with groups of 8 inputs): plain scalar loads, no index form to make per call.

Per group of 8 inputs, the 256 signed sums ``±x0 ±x1 .. ±x7`` of a row (entry ``e``:
bit ``q`` of ``e`` set means ``-x_q``, as a set bit of the packed signs) are built by
doubling (``2 + 4 + .. + 256`` adds: each entry the signed sum in the order ``x0, x1,
..``); each output then adds one entry per group, picked by the byte of its packed row
(the bytes of the little-endian words are the groups): ``k / 8`` loads and adds per
output, where a multiply-add product needs ``k``. The tables of a pass (``CHUNK_GROUPS``
groups, 32 KiB of float32) stay in L1 while every output reads them.

* ``sign_matmul_bytes(x, w_bits, out) -> bool``: ``sign_matmul_float``'s contract for
  C-contiguous float32/float64 ``x`` (m, k) (False, writing nothing, for non-zero padding
  bits); tables in ``x``'s dtype. A sum of the k terms ``±x`` in another order than
  BLAS's: within float rounding (the bound of ``fastbin.kernels.sign_product.exact``).

Portable (scalar loads and adds, the table build vectorises anywhere); planned where the
table measured it (the AVX2 kind, one row).
"""
from __future__ import annotations

import numpy as np

from ..._config import jit
from ..pack import padding_is_zero

__all__ = ["CHUNK_GROUPS", "sign_matmul_bytes"]

#: groups per pass: 32 x 256 float32 entries = 32 KiB (L1)
CHUNK_GROUPS = 32


@jit
def _byte_tables(x, i, g0, g1, tab):
    """``tab[g - g0, e]`` = the signed sum of entry ``e`` of group ``g`` of row ``i``, for
    ``g0 <= g < g1`` (inputs past ``k`` count as 0), by doubling."""
    k = x.shape[1]
    zero = x.dtype.type(0)
    for g in range(g0, g1):
        row = tab[g - g0]
        t = 8 * g
        v = x[i, t] if t < k else zero
        row[0] = v
        row[1] = -v
        h = 2
        for q in range(1, 8):
            t = 8 * g + q
            v = x[i, t] if t < k else zero
            for e in range(h):
                row[h + e] = row[e] - v
                row[e] = row[e] + v
            h *= 2


@jit
def sign_matmul_bytes(x, w_bits, out):
    m, k = x.shape
    if not padding_is_zero(w_bits, k):
        return False
    n, n_words = w_bits.shape
    words = CHUNK_GROUPS // 8
    tab = np.empty((CHUNK_GROUPS, 256), x.dtype)
    zero = x.dtype.type(0)
    mask = np.uint64(255)
    for i in range(m):
        for t0 in range(0, n_words, words):
            t1 = min(n_words, t0 + words)
            _byte_tables(x, i, 8 * t0, 8 * t1, tab)  # groups past k: zero tables
            for j in range(n):
                s0, s1, s2, s3, s4, s5, s6, s7 = zero, zero, zero, zero, zero, zero, zero, zero
                for t in range(t0, t1):
                    word = w_bits[j, t]
                    b = 8 * (t - t0)
                    # eight independent sums, one per byte of the word: no add-latency chain
                    s0 += tab[b, word & mask]
                    s1 += tab[b + 1, (word >> np.uint64(8)) & mask]
                    s2 += tab[b + 2, (word >> np.uint64(16)) & mask]
                    s3 += tab[b + 3, (word >> np.uint64(24)) & mask]
                    s4 += tab[b + 4, (word >> np.uint64(32)) & mask]
                    s5 += tab[b + 5, (word >> np.uint64(40)) & mask]
                    s6 += tab[b + 6, (word >> np.uint64(48)) & mask]
                    s7 += tab[b + 7, word >> np.uint64(56)]
                total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
                if t0 == 0:
                    out[i, j] = total
                else:
                    out[i, j] += total
    return True
