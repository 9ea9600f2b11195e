"""The numba engine's conv-only operations, imported by ``fastbin.runtime.conv`` for a model
on the numba engine only (this imports Numba):

* :class:`FirstConvUint8` (:func:`first_conv_uint8`): the first binary conv layer straight
  from raw uint8 pixels to packed signs (``fastbin.kernels.conv.first.conv_sign_uint8``: no
  patch matrix, no product planned for long rows, thresholds compared a vector at a time);
* :class:`DirectChain` (:func:`conv_chain`): the fused pass of a ``PackedConvModel`` on raw
  uint8 images, every stage and the tail's product in one compiled call
  (``fastbin.kernels.conv.direct.direct_chain``: each conv reads its taps in place, 16 filters
  per vector, thresholds and pools on the words, then the tail's float formula as the stage
  path has it): the same logits bit for bit. Float images take the stage path.
"""
from __future__ import annotations

import numba  # noqa: F401 - first: without Numba this fails here, before importing any kernel package
import numpy as np

from ..bits import n_words_for
from ..kernels.binary_product.threshold import signed_thresholds
from ..kernels.conv import direct
from ..kernels.conv.first import conv_sign_uint8
from ..kernels.intrinsics import COLUMN_BLOCK, FILTER_LANES
from ..reference import unpack_signs

__all__ = ["FirstConvUint8", "first_conv_uint8", "DirectChain", "conv_chain"]

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


def _words32(w_bits, pixels, channels):
    """``w_bits`` (rows, pixels * channels bits, pixel-major, channel fastest) with each pixel's
    bits in ``ceil(channels / 32)`` 32-bit words of their own (the layout of the direct pass's
    activations, ``fastbin.kernels.conv.direct``): uint32 (rows, pixels * cw), the added bits 0."""
    cw = -(-channels // 32)
    negative = unpack_signs(w_bits, np.int8) < 0
    rows = negative.shape[0]
    padded = np.zeros((rows, pixels, 32 * cw), bool)
    padded[:, :, :channels] = negative.reshape(rows, pixels, channels)
    words = np.packbits(padded, axis=2, bitorder="little").view("<u4").astype(np.uint32)
    return np.ascontiguousarray(words.reshape(rows, pixels * cw))


def _lane_blocks(rows, npad):
    """Per-filter rows (n, K) as ``direct``'s lane blocks (npad // 16 * K, 16), flattened: row
    ``b * K + t`` holds value ``t`` of filters ``16 b .. 16 b + 15``, filters past n zero."""
    n, k = rows.shape
    padded = np.zeros((npad, k), rows.dtype)
    padded[:n] = rows
    return np.ascontiguousarray(padded.reshape(npad // FILTER_LANES, FILTER_LANES, k).transpose(0, 2, 1)).ravel()


def _padded_thresholds(sign, signed, npad, never):
    """``sign``, ``signed`` (n,) padded to ``npad`` with 1 and ``never`` (no dot is below it: bit 0)."""
    n = sign.shape[0]
    out = np.ones(2 * npad, sign.dtype)
    out[:n] = sign
    out[npad:] = never
    out[npad : npad + n] = signed
    return out


def _extent(stage):
    """``(hp, wp, top, left)``: the padded extent a stage's windows read, and the image's place in it."""
    kh, kw, sh, sw, top, left, out_h, out_w, _ = stage.geometry
    return (out_h - 1) * sh + kh, (out_w - 1) * sw + kw, top, left


def _offsets(stage, per_pixel):
    """The tap offsets (int64) of ``stage``'s windows in its flat padded extent, ``per_pixel`` values a pixel."""
    kh, kw = stage.geometry[:2]
    wp = _extent(stage)[1]
    i, j, u = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(per_pixel), indexing="ij")
    return ((i * wp + j) * per_pixel + u).ravel().astype(np.int64)


class DirectChain:
    """The one-call forward pass of ``model`` (a ``PackedConvModel`` on the numba engine whose
    first stage has the direct uint8 kernel, whose stages pool at most once before the batch norm
    and once after the sign or twice after it, and whose tail is the binary dense one) on uint8
    images (``fastbin.kernels.conv.direct.direct_chain``: taps read in place, 32-bit activation
    words, thresholds and pools on the registers, the tail's float formula one IEEE operation at a
    time as the stage path has it): the same logits bit for bit. Float images take the stage path. The ``fused``
    protocol of ``InferenceModel``: ``takes(m)``, ``__call__(x, predict)`` on rows (m, n_in)
    checked by the model."""

    def __init__(self, model):
        self.model = model
        *stages, tail = model.stages
        records, offsets, f32, wbits, thr, masks = [], [], [], [], [], []
        sizes = {"ints": direct.HEAD + direct.GEO * len(stages), "f32": 0, "wbits": 0, "thr": 0, "masks": 0}

        def put(kind, values, store):
            at = sizes[kind]
            store.append(np.ascontiguousarray(values).ravel())
            sizes[kind] += store[-1].size
            return at

        scratch = 0
        for s, stage in enumerate(stages):
            g = np.zeros(direct.GEO, np.int64)
            kh, kw, sh, sw, top, left, _, _, _ = stage.geometry
            hp, wp, _, _ = _extent(stage)
            c_in, n = stage.in_shape[2], stage.conv["filters"]
            per_pixel = c_in if s == 0 else -(-c_in // 32)
            npad = -(-n // FILTER_LANES) * FILTER_LANES
            k = kh * kw * per_pixel
            g[[direct.IN_HP, direct.IN_WP, direct.IN_C, direct.TOP, direct.LEFT, direct.SH, direct.SW]] = (
                hp, wp, per_pixel, top, left, sh, sw)
            pools = ([stage.pool_before] if stage.pool_before is not None else []) + list(stage.pools_after)
            g[direct.PH : direct.PSW + 1] = g[direct.AH : direct.ASW + 1] = 1  # 1 x 1: no pool
            for (field, pool) in zip((direct.PH, direct.AH), pools):
                (ph, pw), (psh, psw) = pool
                g[field : field + 4] = ph, pw, psh, psw
            mask = stage.or_mask if stage.pool_before is not None else np.zeros_like(stage.or_mask)
            g[direct.M_AT] = put("masks", mask.astype(np.uint64), masks)
            g[direct.OUT_H], g[direct.OUT_W] = stage.out_shape[:2]
            g[direct.N], g[direct.CWO] = n, -(-n // 32)
            if s + 1 < len(stages):
                dhp, dwp, dtop, dleft = _extent(stages[s + 1])
            else:
                dhp, dwp, dtop, dleft = *stage.out_shape[:2], 0, 0
            g[[direct.DST_HP, direct.DST_WP, direct.DST_TOP, direct.DST_LEFT]] = dhp, dwp, dtop, dleft
            g[direct.K], g[direct.NPAD] = k, npad
            g[direct.OFF_AT] = sizes["ints"]
            offsets.append(_offsets(stage, per_pixel))
            sizes["ints"] += k
            if s == 0:
                first = stage.direct
                signs = unpack_signs(stage.w_bits, np.float32)
                g[direct.W_AT] = put("f32", _lane_blocks(signs, npad), f32)
                g[direct.T_AT] = put("f32", _padded_thresholds(first.sign, first.signed, npad, -np.inf), f32)
                g[direct.PAD] = int(round(float(first.pad)))
            else:
                k_bits = 32 * k
                g[direct.K_BITS] = k_bits
                g[direct.W_AT] = put("wbits", _lane_blocks(_words32(stage.w_bits, kh * kw, c_in), npad), wbits)
                t, flip = stage.thresholds["packed"]
                # the kernel's dot is the true one plus the k_bits - k padding bits; every such dot lies in
                # [-k_bits, k_bits], so thresholds clipped one past it mean the same, in int32
                shifted = np.clip(np.asarray(t, np.int64) + (k_bits - stage.w_bits.n_bits), -k_bits - 1, k_bits + 1)
                sign = np.where(np.asarray(flip, bool), -1, 1).astype(np.int32)
                thresholds = _padded_thresholds(sign, (sign * shifted).astype(np.int32), npad,
                                                np.iinfo(np.int32).min)
                g[direct.T_AT] = put("thr", thresholds, thr)
                g[direct.SRC_AT] = records[-1][direct.DST_AT]
            g[direct.DST_AT] = scratch
            scratch += dhp * dwp * g[direct.CWO]
            records.append(g)
        h, w, c = tail.in_shape
        self.tail_w = _words32(tail.dense_bits, h * w, c)
        header = np.zeros(direct.HEAD, np.int64)
        header[[direct.H_STAGES, direct.H_SCRATCH, direct.H_TAIL_AT, direct.H_TAIL_WORDS, direct.H_TAIL_BITS,
                direct.H_CLASSES]] = (len(stages), scratch, records[-1][direct.DST_AT], self.tail_w.shape[1],
                                      tail.dense_bits.n_bits, tail.affine.n)
        affine, dtype = tail.affine, tail.dtype
        consts = [np.zeros(1, dtype)]
        at = 1
        for field, value in ((direct.H_SCALE, affine.scale), (direct.H_BIAS, affine.bias),
                             (direct.H_BN, None if affine.bn is None else np.concatenate(affine.bn))):
            header[field] = -1 if value is None else at
            if value is not None:
                consts.append(value)
                at += value.size
        self.consts = np.concatenate(consts).astype(dtype)
        self.ints = np.concatenate([header, *records, *offsets]).astype(np.int64)
        self.f32 = np.concatenate([np.zeros(0, np.float32), *f32]).astype(np.float32)
        self.wbits = np.concatenate([np.zeros(0, np.uint32), *wbits]).astype(np.uint32)
        self.thr = np.concatenate([np.zeros(0, np.int32), *thr]).astype(np.int32)
        self.masks = np.concatenate([np.zeros(0, np.uint64), *masks]).astype(np.uint64)
        self.tail = tail
        self.calls = 0

    def takes(self, m):
        """Every batch (a chunk of ``eval_chunk`` images at most)."""
        return True

    def __call__(self, x, predict):
        model = self.model
        if x.dtype != np.uint8:  # float images: the stage path (its float first product)
            z = model._run(x)
        else:
            images = np.ascontiguousarray(x.reshape(x.shape[0], *model.input_shape))
            z = np.empty((x.shape[0], self.tail_w.shape[0]), self.consts.dtype)
            direct.direct_chain(images, self.ints, self.f32, self.wbits, self.thr, self.masks, self.tail_w,
                                self.consts, z)
            self.calls += 1
        return z.argmax(axis=1) if predict else z


def conv_chain(model):
    """A :class:`DirectChain` of ``model``, or None where it does not apply (its doc)."""
    *stages, tail = model.stages
    if getattr(stages[0], "direct", None) is None or getattr(tail, "kind", None) != "conv_tail":
        return None
    affine = tail.affine
    for value in (affine.scale, affine.bias, *(affine.bn or ())):  # the float formula in the model dtype
        if value is not None and (value.dtype != tail.dtype or value.shape != (affine.n,)):
            return None
    for s, stage in enumerate(stages):
        if len(stage.pools_after) > (1 if stage.pool_before is not None else 2):
            return None
        kh, kw = stage.geometry[:2]
        if s and 32 * kh * kw * -(-stage.in_shape[2] // 32) >= 2**30:  # int32 dots and thresholds
            return None
    return DirectChain(model)
