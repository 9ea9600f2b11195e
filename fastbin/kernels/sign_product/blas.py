"""``x @ sign(W)`` by BLAS on unpacked ±1 signs, a block of outputs at a time.

* ``blas_product(x, w_bits, out, chunk_bytes) -> bool``: ``x`` float32/float64
  (m, k) C-contiguous (or uint8 rows converted to float32 by the caller: exact
  integers while ``k <= fastbin._limits.UINT8_F32_EXACT_MAX_K``); ``out`` (m, n)
  of ``x``'s dtype or int32. Each block's signs (``chunk_bytes`` of them) are
  unpacked into one reused buffer that stays in cache for BLAS, so a large W is
  never unpacked whole (64 MiB of float32 at 4096 x 4096, whose first touch alone
  cost more than the product). BLAS's own threads. False, writing nothing, for
  non-zero padding bits. Plain NumPy around the jitted ``unpack_rows``.
"""
from __future__ import annotations

import numpy as np

from ..pack import padding_is_zero, unpack_rows

__all__ = ["blas_product"]


def blas_product(x, w_bits, out, chunk_bytes) -> bool:
    k = x.shape[1]
    n = w_bits.shape[0]
    if not padding_is_zero(w_bits, k):
        return False
    cols = min(n, max(16, chunk_bytes // (x.itemsize * k) // 16 * 16))
    buffer = np.empty((cols, k), x.dtype)
    same = out.dtype == x.dtype
    for j0 in range(0, n, cols):
        j1 = min(n, j0 + cols)
        signs = buffer[: j1 - j0]
        unpack_rows(w_bits[j0:j1], k, signs)
        if same:
            np.matmul(x, signs.T, out=out[:, j0:j1])
        else:  # uint8 rows as float32: exact integers, cast to the int32 out
            out[:, j0:j1] = np.matmul(x, signs.T)
    return True
