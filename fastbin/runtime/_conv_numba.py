"""The numba engine's conv-only operations, imported by ``fastbin.runtime.conv`` for a model
on the numba engine only (this imports Numba):

* :class:`FirstConvUint8` (:func:`first_conv_uint8`): the first binary conv layer straight
  from raw uint8 pixels to packed signs (``fastbin.kernels.conv.first.conv_sign_uint8``: no
  patch matrix, no product planned for long rows, thresholds compared a vector at a time);
* :class:`ConvChain` (:func:`conv_chain`): the fused pass of a ``PackedConvModel`` on raw
  uint8 images, every stage and the tail's product in one compiled call
  (``fastbin.kernels.conv.chain.uint8_chain``), then the tail's float formula as the stage
  path has it: the same logits bit for bit. Float images take the stage path.
"""
from __future__ import annotations

import numba  # noqa: F401 - first: without Numba this fails here, before importing any kernel package
import numpy as np

from ..bits import n_words_for
from ..kernels.binary_product.threshold import signed_thresholds
from ..kernels.conv import chain
from ..kernels.conv.first import conv_sign_uint8
from ..kernels.intrinsics import COLUMN_BLOCK
from ..reference import unpack_signs

__all__ = ["FirstConvUint8", "first_conv_uint8", "ConvChain", "conv_chain"]

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


def _geo_row(geometry, pool_before, pools_after):
    """A row of ``chain``'s ``geo`` (the product's fields left 0)."""
    g = np.zeros(chain.GEO, np.int64)
    g[chain.KH : chain.OUT_W + 1] = geometry[:8]
    if pool_before is not None:
        (ph, pw), (sh, sw) = pool_before
        g[chain.PB_H : chain.PB_SW + 1] = ph, pw, sh, sw
    if pools_after:
        (ph, pw), (sh, sw) = pools_after[0]
        g[chain.PA_H : chain.PA_SW + 1] = ph, pw, sh, sw
    return g


class ConvChain:
    """The one-call forward pass of ``model`` (a ``PackedConvModel`` on the numba engine whose
    first stage has the direct uint8 kernel and whose stages pool at most once after the
    sign) on uint8 images; the ``fused`` protocol of ``InferenceModel``: ``takes(m)``,
    ``__call__(x, predict)`` on rows (m, n_in) checked by the model."""

    def __init__(self, model):
        self.model = model
        first, *packed, tail = model.stages
        direct = first.direct
        self.w0, self.pad0, self.sign0, self.signed0 = direct.w, direct.pad, direct.sign, direct.signed
        self.g0 = _geo_row(first.geometry, first.pool_before, first.pools_after)
        self.mask0 = first.or_mask
        geo, weights, thresholds, flips, masks = [], [], [], [], []
        sizes = [0, 0, 0]
        for stage in packed:
            g = _geo_row(stage.geometry, stage.pool_before, stage.pools_after)
            w = stage.weights.packed
            g[chain.N], g[chain.K_WORDS], g[chain.N_BITS] = w.rows, w.bits.shape[1], w.n_bits
            g[chain.W_AT], g[chain.T_AT], g[chain.M_AT] = sizes
            weights.append(w.bits.ravel())
            thresholds.append(np.asarray(stage.packed_t, np.int64))
            flips.append(np.asarray(stage.flip, bool))
            masks.append(np.ascontiguousarray(stage.or_mask, np.uint64))
            sizes = [sizes[0] + w.bits.size, sizes[1] + w.rows, sizes[2] + stage.or_mask.size]
            geo.append(g)
        self.geo = np.array(geo, np.int64).reshape(len(geo), chain.GEO)
        self.wflat = np.concatenate([np.zeros(0, np.uint64), *weights])
        self.tflat = np.concatenate([np.zeros(0, np.int64), *thresholds])
        self.fflat = np.concatenate([np.zeros(0, bool), *flips])
        self.mflat = np.concatenate([np.zeros(0, np.uint64), *masks])
        self.tail = tail
        self.tail_w = np.ascontiguousarray(tail.weights.packed.bits)
        self.tail_bits = tail.weights.packed.n_bits
        self.calls = 0

    def takes(self, m):
        """Every batch (a chunk of ``eval_chunk`` images at most): the same kernels in one call."""
        return True

    def __call__(self, x, predict):
        model = self.model
        if x.dtype != np.uint8:  # float images: the stage path (its float first product)
            z = model._run(x)
        else:
            images = np.ascontiguousarray(x.reshape(x.shape[0], *model.input_shape))
            dot = np.empty((x.shape[0], self.tail_w.shape[0]), np.int64)
            chain.uint8_chain(images, self.w0, self.g0, self.pad0, self.sign0, self.signed0, self.mask0,
                              self.wflat, self.tflat, self.fflat, self.mflat, self.geo, self.tail_w, self.tail_bits,
                              dot)
            self.calls += 1
            z = self.tail.logits_of(dot)
        return z.argmax(axis=1) if predict else z


def conv_chain(model):
    """A :class:`ConvChain` of ``model``, or None where it does not apply (module doc)."""
    first, *packed, _ = model.stages
    if getattr(first, "direct", None) is None or any(len(s.pools_after) > 1 for s in model.stages[:-1]):
        return None
    return ConvChain(model)
