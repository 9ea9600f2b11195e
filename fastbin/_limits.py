"""Sizes and exactness bounds shared by the Numba side and the NumPy-only runtime.

Numba-free (``fastbin.runtime``'s numpy engine imports it), and not per CPU:
the per-CPU dispatch thresholds are ``fastbin._tables``.
"""
from __future__ import annotations

__all__ = ["EVAL_CHUNK", "F32_EXACT_INT", "UINT8_F32_EXACT_MAX_K"]

#: Rows per forward pass of ``Model.forward`` and of a folded model (bounds memory; the
#: folded and unfolded models chunk alike, so their products match bit for bit).
EVAL_CHUNK: int = 8192

#: float32 holds every integer of magnitude <= 2**24 exactly.
F32_EXACT_INT: int = 1 << 24

#: The largest ``k`` for which float32 sums of uint8 rows times ±1 are exact: every
#: partial sum, in any order, is an integer of magnitude <= 255 * k, and
#: ``255 * k < 2**24`` holds up to k = 65793 (255 * 65793 = 2**24 - 1). Bounds the
#: uint8 rows' float32 paths of ``sign_matmul`` (register blocks, BLAS, float32 tables).
UINT8_F32_EXACT_MAX_K: int = (F32_EXACT_INT - 1) // 255
