"""The numba engine's conv-only operation: the first binary conv layer straight from raw
uint8 pixels to packed signs (``fastbin.kernels.conv.first.conv_sign_uint8``: no patch matrix,
no product planned for long rows, thresholds compared a vector at a time). Imported by
``fastbin.runtime.conv`` for a model on the numba engine only (it imports Numba).
"""
from __future__ import annotations

import numba  # noqa: F401 - first: without Numba this fails here, before importing any kernel package
import numpy as np

from ..bits import n_words_for
from ..kernels.binary_product.threshold import signed_thresholds
from ..kernels.conv.first import conv_sign_uint8
from ..kernels.intrinsics import COLUMN_BLOCK
from ..reference import unpack_signs

__all__ = ["FirstConvUint8", "first_conv_uint8"]

#: the kernel's float32 sums and thresholds are exact integers while every |partial sum| <= 255 * k
#: and every threshold, clipped to 255 * k + 1, are at most 2**24
MAX_K = (2**24 - 1) // 255


class FirstConvUint8:
    """The first stage's conv + folded batch norm + sign on uint8 images (m, h, w, c):
    ``w_bits`` the layer's packed signs (filters, kh * kw * c), ``t``, ``flip`` its
    ``"uint8"`` thresholds (int64, on the exact integer dot of raw pixels; float32 here), ``geometry``
    ``(kh, kw, sh, sw, top, left, out_h, out_w, padding)``, ``pad`` the padding's pixel
    value. Called on images, returns the packed words (m * out_h * out_w, ceil(filters / 64)),
    the bits of im2col + the exact product + the thresholds."""

    def __init__(self, w_bits, t, flip, geometry, pad):
        n, k = w_bits.rows, w_bits.n_bits
        self.w = np.zeros((k, -(-n // COLUMN_BLOCK) * COLUMN_BLOCK), np.float32)
        self.w[:, :n] = unpack_signs(w_bits, np.float32).T
        # every |dot| <= 255 * k: thresholds clipped to one past it mean the same, and are exact float32
        # integers (255 * k + 1 <= 2**24), so the compares run on 16 float32 lanes
        bound = 255 * k + 1
        t = np.clip(np.asarray(t, np.int64), -bound, bound).astype(np.float32)
        self.sign, self.signed = signed_thresholds(t, np.ascontiguousarray(flip))
        self.geometry, self.pad = geometry, np.float32(pad)

    def __call__(self, x):
        kh, kw, sh, sw, top, left, out_h, out_w, _ = self.geometry
        k, width = self.w.shape
        out = np.empty((x.shape[0] * out_h * out_w, n_words_for(self.sign.shape[0])), np.uint64)
        image = np.empty(((out_h - 1) * sh + kh, (out_w - 1) * sw + kw, x.shape[3]), np.float32)
        conv_sign_uint8(np.ascontiguousarray(x), self.w, kh, kw, sh, sw, top, left, out_h, out_w, self.pad,
                        self.sign, self.signed, image, np.empty(k, np.float32), np.empty((1, width), np.float32), out)
        return out


def first_conv_uint8(w_bits, t, flip, geometry, pad):
    """A :class:`FirstConvUint8`, or None where its float32 sums would not be exact
    (``kh * kw * c > MAX_K``): the general route then."""
    return FirstConvUint8(w_bits, t, flip, geometry, pad) if w_bits.n_bits <= MAX_K else None
