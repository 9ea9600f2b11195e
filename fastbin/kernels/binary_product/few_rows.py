"""Unblocked kernels for a few rows (batch 1): no scratch buffers, no
register blocks, nothing to amortise.

* ``binary_dot_rows(a_bits, w_bits, n_bits, out)``: ``binary_matmul`` for a
  few rows, written straight into ``out`` (m, n) of any numeric dtype
  (exact: |dot| <= n_bits).
* ``dense_sign_rows(a_bits, w_bits, n_bits, thresholds, flip, out_bits)``:
  ``binary_dense_sign`` for a few rows: one row of dots at a time, then the
  threshold words of ``fastbin.kernels.binary_product.threshold`` (int64 thresholds). The
  blocked kernel in ``fastbin.kernels.binary_product.blocked`` allocates a block of
  dots per call, several times slower at 1 x 512 -> 512.
"""
from __future__ import annotations

import numpy as np

from ..._config import jit
from ..intrinsics import popcount
from .threshold import below_word, signed_thresholds

__all__ = ["binary_dot_rows", "dense_sign_rows"]


@jit
def binary_dot_rows(a_bits, w_bits, n_bits, out):
    m, n_in_words = a_bits.shape
    n = w_bits.shape[0]
    for i in range(m):
        for j in range(n):
            c = 0
            for t in range(n_in_words):
                c += popcount(a_bits[i, t] ^ w_bits[j, t])
            out[i, j] = n_bits - 2 * c


@jit
def dense_sign_rows(a_bits, w_bits, n_bits, thresholds, flip, out_bits):
    n = w_bits.shape[0]
    sign, signed = signed_thresholds(thresholds, flip)
    dots = np.empty((1, n), dtype=np.int64)
    for i in range(a_bits.shape[0]):
        binary_dot_rows(a_bits[i : i + 1], w_bits, n_bits, dots)
        for w in range(out_bits.shape[1]):
            j0 = w * 64
            out_bits[i, w] = below_word(dots, 0, j0, min(n, j0 + 64), sign, signed)
