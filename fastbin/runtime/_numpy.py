"""The ``numpy`` engine: every packed operation in plain NumPy (>= 1.24), no
Numba anywhere on its import path (numpy and the base modules only).

Popcount is ``np.bitwise_count`` where NumPy has it (2.0+), else a SWAR
popcount of 64-bit words (NumPy 1.24, e.g. Debian 12 armhf). Products of
packed signs are exact integers either way: for a few rows, ``k - 2 *
popcount(a ^ w)`` word by word; for many rows, BLAS on the ±1 float32 matrices
(exact while ``k < 2**24``), which is faster there. The real-valued product
``x @ sign(W)`` is ``fastbin.reference.dense_sign_matmul``, the exact product
that the trainer's backends and the numba engine give bit for bit.
"""
from __future__ import annotations

import numpy as np

from .. import _tables, reference
from .._limits import EVAL_CHUNK, F32_EXACT_INT
from ..bits import n_words_for

__all__ = ["NumpyEngine", "popcount_words"]

_BLAS_EXACT_K = F32_EXACT_INT
_M1, _M2, _M4, _H01 = (np.uint64(0x5555555555555555), np.uint64(0x3333333333333333),
                       np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(0x0101010101010101))


def _swar_popcount(v):
    v = v - ((v >> np.uint64(1)) & _M1)
    v = (v & _M2) + ((v >> np.uint64(2)) & _M2)
    v = (v + (v >> np.uint64(4))) & _M4
    return (v * _H01) >> np.uint64(56)


def popcount_words(v):
    """Popcount of every uint64 of ``v`` (same shape)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(v)
    with np.errstate(over="ignore"):
        return _swar_popcount(v)


def _unpack(words, n_bits, dtype):
    """±1 (rows, n_bits) of ``dtype`` from raw words (bit 1 means -1)."""
    le = np.ascontiguousarray(words, dtype="<u8")
    bits = np.unpackbits(le.view(np.uint8), axis=1, count=n_bits, bitorder="little")
    out = np.ones(bits.shape, dtype)
    out -= 2 * bits.astype(dtype)
    return out


def _pack_negative(negative):
    """Raw words (m, ceil(n/64)) with bit 1 where ``negative`` (m, n) bool."""
    m, n = negative.shape
    n_words = n_words_for(n)
    out = np.zeros((m, n_words * 8), np.uint8)
    out[:, : -(-n // 8)] = np.packbits(negative, axis=1, bitorder="little")
    return out.view("<u8").astype(np.uint64)


class NumpyEngine:
    """Packed stages in plain NumPy (the trainer's ``"reference"`` backend)."""

    name = "numpy"
    eval_chunk = EVAL_CHUNK

    @staticmethod
    def weight_forms(packed, signs, dtype):
        """``rows_float``: ±1 (n_out, n_in) of the model dtype, C-contiguous: the very
        array ``fastbin.reference.sign_matmul`` multiplies by (``x @ rows_float.T``,
        so the same BLAS call and the same bits), and ``rows_f32`` for exact integer
        products on BLAS (float32 sums of ±1 or of pixels times ±1 are exact below
        2**24)."""
        rows = np.ascontiguousarray(signs.T)
        return {"rows_float": rows, "rows_f32": rows if rows.dtype == np.float32 else rows.astype(np.float32)}

    @staticmethod
    def binary_dot(a, weights, dtype):
        w = weights.packed
        m, k = a.shape[0], w.n_bits
        if m < _tables.ENGINE["numpy_popcount_max_rows"] or k >= _BLAS_EXACT_K:
            c = popcount_words(a[:, None, :] ^ w.bits[None, :, :]).sum(axis=2, dtype=np.int64)
            return (k - 2 * c).astype(dtype)
        dot = _unpack(a, k, np.float32) @ weights.rows_f32.T
        return dot if np.dtype(dtype) == np.float32 else dot.astype(dtype)

    @classmethod
    def dense_sign(cls, a, weights, thresholds, flip):
        return cls.threshold(cls.binary_dot(a, weights, np.int64), thresholds, flip)

    @staticmethod
    def threshold(dot, thresholds, flip):
        return _pack_negative(np.where(flip, dot > thresholds, dot < thresholds))

    @staticmethod
    def unpack(words, n_bits, dtype):
        return _unpack(words, n_bits, dtype)

    @staticmethod
    def sign_dot(x, weights):
        """``fastbin.reference.dense_sign_matmul(x, packed)`` with the unpacked signs
        cached: float ``x``, the exact product on float64 BLAS
        (``reference.exact_sign_product``); uint8 exact (int32), on float32 BLAS."""
        if x.dtype != np.uint8:
            return reference.exact_sign_product(x, weights.signs64)
        if 255 * x.shape[1] < _BLAS_EXACT_K:
            return (x.astype(np.float32) @ weights.rows_f32.T).astype(np.int32)
        return reference.sign_matmul(x, weights.packed)

    @staticmethod
    def sign_threshold_dot(x, weights, thresholds):
        """Float ``x @ sign(W)`` on the same side of each threshold as the exact
        product: for a few rows BLAS in the model dtype, then the exact product near
        a threshold (``fastbin.reference.refine_near_thresholds``); for more the
        exact product itself (float64 BLAS beats gathering the near entries)."""
        if x.shape[0] >= _tables.ENGINE["numpy_refine_max_rows"]:
            return reference.exact_sign_product(x, weights.signs64)
        dot = x @ weights.rows_float.T
        return reference.refine_near_thresholds(x, weights.rows_float, dot, thresholds)

    @staticmethod
    def signs(x):
        return reference.signs(x)

    @staticmethod
    def pack_weights(w):
        return reference.pack_weights(w)

    @staticmethod
    def patches(x, geometry, pad):
        """im2col of images ``x`` (m, h, w, c): ``fastbin.reference.im2col`` with ``geometry``
        ``(kh, kw, sh, sw, top, left, out_h, out_w, padding)`` and the padding ``pad``."""
        kh, kw, sh, sw, _, _, _, _, padding = geometry
        return reference.im2col(x, (kh, kw), (sh, sw), padding, pad_value=pad)

    @staticmethod
    def pool_bits(words, size, stride, or_mask):
        """Max pooling of packed signs ``words`` (m, h, w, cw), "valid": per word the AND of
        the window, the OR on the bits of ``or_mask`` (cw,)."""
        (ph, pw), (sh, sw) = size, stride
        out_h, out_w = (words.shape[1] - ph) // sh + 1, (words.shape[2] - pw) // sw + 1
        all_ones = any_one = None
        for i in range(ph):
            for j in range(pw):
                v = words[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw, :]
                all_ones = v.copy() if all_ones is None else all_ones & v
                any_one = v.copy() if any_one is None else any_one | v
        return (all_ones & ~or_mask) | (any_one & or_mask)

    @staticmethod
    def unpack_signs(packed, dtype):
        return _unpack(packed.bits, packed.n_bits, dtype)
