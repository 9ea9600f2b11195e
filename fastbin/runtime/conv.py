"""Folded convolutional models (issue 25, first slice: plain NumPy).

A conv model's layer list (configs, checked by :mod:`fastbin.io.modelschema`)
and arrays (binary kernels as packed signs ``"<i>.W_bits"``, ``"<i>.alpha"``)
fold into *sign stages* and a float tail:

* a sign stage is ``Conv2D -> [MaxPool2D] -> [BatchNorm] -> Sign ->
  [MaxPool2D ...]`` with binary weights. Its output is the sign bits (bit 1 =
  -1) of every channel: ``dot < t`` (or ``dot > t`` where ``flip``) with
  integer thresholds ``t`` per output channel found by
  :func:`fastbin.runtime.fold.int_thresholds` (the first stage, which sees
  the image, has uint8 and float thresholds like an MLP's first stage). The
  thresholds are searched on the same float formula the unfolded model
  evaluates, so the bits equal the unfolded model's, ties included.
* a max pool *before* the batch norm acts on the bits: batch norm + sign is
  monotone per channel, so ``sign(bn(max dot))`` is the AND of the window's
  bits where the batch norm keeps the order (``flip`` False) and the OR where
  it reverses it (``flip`` True, a negative ``gamma``). A max pool after the
  sign is the AND of the bits.
* the tail: ``Flatten -> Dense (binary) -> [BatchNorm]``: the exact integer
  product of the ±1 features, then the unfolded model's own float formula
  (``dense_affine``, ``bn_affine``).

The binary products of later stages are the XNOR-popcount integers on patches
of the previous stage's bits (computed as BLAS on ±1 float32, exact for up to
2**24 terms: the same integers as ``binary_matmul``); padding is
"one-padding", bit 0, so it costs nothing. :class:`ConvInferenceModel` is plain NumPy
(``fastbin.reference``, bits as bool arrays): the specification, what ``fold_conv`` returns
without an engine (``ConvModel.to_inference()``).

On an engine (``fold_conv(..., engine=)``, what ``fastbin.runtime.load`` does) the same stages
run on packed words: :class:`PackedConvModel`, an :class:`~fastbin.runtime.model.InferenceModel`
whose activations are images of packed signs, uint64 (m, h, w, cw), the c channels of a pixel in
``cw = ceil(c / 64)`` words (bits past c are 0):

* the first stage takes the patch rows of the image (``engine.patches``, padded with the
  layer's pad value in the input's units) through a :class:`~fastbin.runtime.model.SignStage`,
  the dense layers' first stage: the exact uint8 product or, on float input, a product on the
  same side of every float threshold as the exact one; its packed output rows are the pixels.
  On the numba engine raw uint8 pixels take one direct kernel instead
  (``fastbin.runtime._conv_numba``: the taps times the ±1 weights summed per output pixel,
  exact integers, then the uint8 thresholds; no patch rows), the same bits;
* a later stage takes the patch rows of the previous words (``engine.patches`` with pad 0:
  one-padding is bit 0, free; a row is kh * kw pixels of cw words) and the engine's
  ``dense_sign`` (``fastbin.kernels.binary_product.plan_sign`` on the numba engine): the
  product, the threshold and the packing in one kernel. The weights are laid out the same way,
  each pixel's c bits in cw words (:func:`pixel_words`), so the kernel sees ``K' = 64 * kh * kw
  * cw`` bits of which the ``K' - k`` padding bits are 0 on both sides: its ``K' - 2 *
  popcount`` is the true dot plus ``K' - k``, and the thresholds are shifted by as much (exact
  integers);
* pooling is ``engine.pool_bits``: per word the AND of the window's words, the OR on the
  channels whose thresholds are flipped for a pool before the batch norm;
* the tail: the flattened words against the dense weights laid out per pixel the same way, the
  engine's ``binary_dot`` (int64, minus the shift), then the unfolded model's float formula.

The bits at every stage, and so the logits, are those of :class:`ConvInferenceModel` and of the
unfolded model, on either engine.
"""
from __future__ import annotations

import math

import numpy as np

from .._validate import check_model_input
from ..bits import n_words_for
from ..packed import PackedSigns
from ..reference import (
    binary_matmul,
    conv_geometry,
    dense_sign_matmul,
    im2col,
    max_pool2d,
    pack_signs,
    sign_matmul,
    softmax,
    unpack_signs,
)
from .fold import Affine, _bn, _scale, float_thresholds, int_thresholds
from .model import InferenceModel, SignStage, SignWeights

__all__ = ["ConvInferenceModel", "PackedConvModel", "fold_conv", "pixel_words"]

_UINT8 = np.dtype(np.uint8)


def _float_signs(w_bits):
    """``sign(W)`` (k, n) as float32 ±1 when every product of k ±1 terms is an exact
    float32 integer (k <= 2**24), else None."""
    return unpack_signs(w_bits, np.float32).T.copy() if w_bits.n_bits <= 2**24 else None


def _sign_product(bits, w_bits, signs):
    """``sign(A) @ sign(W)`` (int64) of bits (rows, k) bool (True = -1): the packed
    ``binary_matmul``'s integers. With ``signs`` the same integers from BLAS on ±1
    float32: every partial sum is an integer of magnitude <= k <= 2**24, exact in any
    order (NumPy's integer matmul, which ``binary_matmul`` uses, has no BLAS)."""
    if signs is None:
        return binary_matmul(pack_signs(np.where(bits, -1, 1).astype(np.int8)), w_bits).astype(np.int64)
    return (np.where(bits, np.float32(-1), np.float32(1)) @ signs).astype(np.int64)


class _Stage:
    """One sign stage: conv (+ pool) + batch norm + sign (+ pools on the bits)."""

    def __init__(self, conv, w_bits, thresholds, pool_before, pools_after):
        self.conv, self.w_bits, self.thresholds = conv, w_bits, thresholds
        self.signs = _float_signs(w_bits)
        self.pool_before, self.pools_after = pool_before, pools_after

    def dot(self, x, kind):
        """The conv product (m, out_h, out_w, filters): int64 for uint8 images and
        packed bits, the exact float product for float images."""
        c = self.conv
        m = x.shape[0]
        if kind == "packed":  # x: bits (m, h, w, c) bool, True = -1; one-padding = bit 0
            cols = im2col(x, c["kernel_size"], c["stride"], c["padding"], pad_value=False)
            dot = _sign_product(cols, self.w_bits, self.signs)
        elif kind == "uint8":
            cols = im2col(x, c["kernel_size"], c["stride"], c["padding"], pad_value=255 * int(c["pad_value"]))
            dot = sign_matmul(cols, self.w_bits).astype(np.int64)
        else:
            cols = im2col(x, c["kernel_size"], c["stride"], c["padding"], pad_value=x.dtype.type(c["pad_value"]))
            dot = dense_sign_matmul(cols, self.w_bits)
        out_h, out_w, _, _ = conv_geometry(x.shape[1], x.shape[2], c["kernel_size"], c["stride"], c["padding"])
        return dot.reshape(m, out_h, out_w, -1)

    def __call__(self, x, kind):
        dot = self.dot(x, kind)
        t, flip = self.thresholds[kind]
        below, above = dot < t, dot > t
        if self.pool_before is None:
            bits = np.where(flip, above, below)
        else:  # max before the batch norm: AND of "below" bits (order kept), OR of "above" bits (reversed)
            size, stride = self.pool_before
            all_below = ~max_pool2d(~below, size, stride)
            any_above = max_pool2d(above, size, stride)
            bits = np.where(flip, any_above, all_below)
        for size, stride in self.pools_after:  # the max of ±1 values: AND of the bits
            bits = ~max_pool2d(~bits, size, stride)
        return bits


class ConvInferenceModel:
    """A folded conv model: :attr:`stages` (sign stages) then the tail
    (flatten, binary dense, optional batch norm). ``forward(x)`` takes images
    (m, h, w, c) or rows (m, h * w * c), raw uint8 or float in [0, 1], as the
    trainable :class:`fastbin.nn.model.ConvModel`, and returns the same logits
    bit for bit."""

    #: images per pass of :meth:`forward`
    chunk = 256

    def __init__(self, stages, dense_bits, affine, input_shape, dtype):
        self.stages, self.dense_bits, self.affine = stages, dense_bits, affine
        self.dense_signs = _float_signs(dense_bits)
        self.input_shape, self.dtype = tuple(input_shape), np.dtype(dtype)
        self.n_in = math.prod(self.input_shape)

    def forward(self, x):
        """Logits (m, n_classes) of the model's dtype."""
        if isinstance(x, np.ndarray) and x.ndim == 4:
            if x.shape[1:] != self.input_shape:
                raise ValueError(f"x must be images of shape (m, {', '.join(map(str, self.input_shape))}) or rows "
                                 f"(m, {self.n_in}), got {x.shape}")
            x = x.reshape(x.shape[0], self.n_in)
        x = check_model_input(x, self.n_in, self.dtype)
        if x.shape[0] == 0:  # an empty batch: an empty result, as the other engines give
            return np.empty((0, self.affine.n), self.dtype)
        if x.shape[0] > self.chunk:  # the patch matrices grow with h * w * kh * kw * c per image
            return np.concatenate([self._forward(x[i : i + self.chunk]) for i in range(0, x.shape[0], self.chunk)])
        return self._forward(x)

    def _forward(self, x):
        h = x.reshape(x.shape[0], *self.input_shape)
        kind = "uint8" if x.dtype == _UINT8 else "float"
        for stage in self.stages:
            h, kind = stage(h, kind), "packed"
        dot = _sign_product(h.reshape(h.shape[0], -1), self.dense_bits, self.dense_signs)
        return self.affine(dot.astype(self.dtype))

    logits = forward

    def predict(self, x):
        """Class indices (m,) int64."""
        return np.argmax(self.forward(x), axis=1)

    def predict_proba(self, x):
        """Class probabilities (m, n_classes)."""
        return softmax(self.forward(x))


def _unsupported(i, layer, what):
    return NotImplementedError(f"folding a conv model: layers[{i}] ({layer['kind']}) {what}; folded are "
                               "binary Conv2D -> [MaxPool2D] -> [BatchNorm] -> Sign -> [MaxPool2D] stages, then "
                               "Flatten -> binary Dense -> [BatchNorm]")


def pixel_words(w_bits, pixels, channels) -> PackedSigns:
    """``w_bits`` (rows, pixels * channels bits, pixel-major, channel fastest: a conv kernel's
    ``(kh * kw * c_in)`` or a flattened image's ``(h * w * c)``) with each pixel's bits in
    ``cw = ceil(channels / 64)`` words of their own, the layout of the packed activations:
    ``PackedSigns`` (rows, ``64 * pixels * cw`` bits), the added bits 0 (+1)."""
    cw = n_words_for(channels)
    negative = unpack_signs(w_bits, np.int8) < 0
    rows = negative.shape[0]
    padded = np.zeros((rows, pixels, 64 * cw), bool)
    padded[:, :, :channels] = negative.reshape(rows, pixels, channels)
    words = np.packbits(padded, axis=2, bitorder="little").view("<u8").astype(np.uint64)
    return PackedSigns(np.ascontiguousarray(words.reshape(rows, pixels * cw)), 64 * pixels * cw)


def _geometry(shape, kernel_size, stride, padding):
    """``(kh, kw, sh, sw, top, left, out_h, out_w, padding)`` of a window over images of
    ``shape`` (h, w, c): what ``engine.patches`` takes."""
    out_h, out_w, (top, _), (left, _) = conv_geometry(shape[0], shape[1], kernel_size, stride, padding)
    (kh, kw), (sh, sw) = kernel_size, stride
    return kh, kw, sh, sw, top, left, out_h, out_w, padding


def _pooled(shape, pool):
    size, stride = pool
    out_h, out_w, _, _ = conv_geometry(shape[0], shape[1], size, stride, "valid")
    return out_h, out_w, shape[2]


class _PackedStage:
    """One sign stage of :class:`PackedConvModel`: images (m, h, w, c) of the model input
    (first stage) or packed words (m, h, w, cw) in, packed words (m, h', w', ceil(filters/64))
    out. Keeps :class:`_Stage`'s description (``conv``, ``w_bits``, ``thresholds``,
    ``pool_before``, ``pools_after``) and ``in_shape`` (h, w, c) for the summary."""

    kind = "conv_sign"

    def __init__(self, engine, conv, w_bits, thresholds, pool_before, pools_after, in_shape, first, dtype):
        self.engine, self.conv, self.w_bits, self.thresholds = engine, conv, w_bits, thresholds
        self.pool_before, self.pools_after, self.in_shape, self.first = pool_before, pools_after, in_shape, first
        self.geometry = _geometry(in_shape, conv["kernel_size"], conv["stride"], conv["padding"])
        n = conv["filters"]
        self.direct = None
        if first:  # the dense layers' first stage on the patch rows
            self.sign = SignStage(engine, SignWeights(engine, w_bits, dtype), thresholds, dtype)
            if getattr(engine, "name", None) == "numba":  # raw pixels: the direct kernel, no patch rows
                from ._conv_numba import first_conv_uint8

                t, flip = thresholds["uint8"]
                self.direct = first_conv_uint8(w_bits, t, flip, self.geometry, 255 * int(conv["pad_value"]))
        else:
            kh, kw = conv["kernel_size"]
            self.weights = SignWeights(engine, pixel_words(w_bits, kh * kw, in_shape[2]), dtype)
            t, flip = thresholds["packed"]
            shift = self.weights.packed.n_bits - w_bits.n_bits  # the kernel's dot exceeds the true one by this
            self.packed_t, self.flip = t + shift, flip
        # pooling before the batch norm: OR on the flipped channels (module doc), AND elsewhere. A
        # channel's flips may differ between input kinds only where one kind's thresholds are
        # constant (all bits equal: AND = OR), so the OR of the kinds' flips serves every kind
        or_bits = np.zeros(64 * n_words_for(n), bool)
        or_bits[:n] = np.logical_or.reduce([flip for _, flip in thresholds.values()])
        self.or_mask = np.packbits(or_bits, bitorder="little").view("<u8").astype(np.uint64)
        self.and_mask = np.zeros_like(self.or_mask)
        shape = self.geometry[6], self.geometry[7], n
        if pool_before is not None:
            shape = _pooled(shape, pool_before)
        for pool in pools_after:
            shape = _pooled(shape, pool)
        self.out_shape = shape

    def __call__(self, x):
        engine, g = self.engine, self.geometry
        m = x.shape[0]
        if self.first and self.direct is not None and x.dtype == _UINT8:
            words = self.direct(x)
        elif self.first:
            pad = self.conv["pad_value"]
            pad = x.dtype.type(255 * int(pad)) if x.dtype == _UINT8 else x.dtype.type(pad)
            words = self.sign(engine.patches(x, g, pad))
        else:
            words = engine.dense_sign(engine.patches(x, g, x.dtype.type(0)), self.weights, self.packed_t, self.flip)
        words = words.reshape(m, g[6], g[7], -1)
        if self.pool_before is not None:
            words = engine.pool_bits(words, *self.pool_before, self.or_mask)
        for size, stride in self.pools_after:  # the max of ±1 values: AND of the bits
            words = engine.pool_bits(words, size, stride, self.and_mask)
        return words


class _PackedTail:
    """``Flatten -> binary Dense -> [BatchNorm]`` on packed words (m, h, w, cw): the exact
    integer product (``engine.binary_dot`` on the weights laid out per pixel, minus the
    padding's shift), then the unfolded model's float formula. ``dense_bits``: the layer's
    own packed signs (the summary's)."""

    kind = "conv_tail"

    def __init__(self, engine, dense_bits, affine, in_shape, dtype):
        self.engine, self.dense_bits, self.affine, self.in_shape = engine, dense_bits, affine, in_shape
        self.dtype = np.dtype(dtype)
        self.weights = SignWeights(engine, pixel_words(dense_bits, in_shape[0] * in_shape[1], in_shape[2]), dtype)
        self.shift = self.weights.packed.n_bits - dense_bits.n_bits

    def __call__(self, words):
        return self.logits_of(self.engine.binary_dot(words.reshape(words.shape[0], -1), self.weights, np.int64))

    def logits_of(self, dot):
        """The logits of the kernel's int64 ``dot`` (m, classes) (shifted by the padding bits)."""
        dot -= self.shift
        return self.affine(dot.astype(self.dtype))


class PackedConvModel(InferenceModel):
    """A folded conv model on an engine (module doc): :attr:`stages` are the sign stages
    then the tail; ``logits`` (``forward``), ``predict``, ``predict_proba`` and ``summary``
    as :class:`~fastbin.runtime.model.InferenceModel`'s, on images (m, h, w, c) or rows
    (m, h * w * c), raw uint8 or float in [0, 1]; the logits of :class:`ConvInferenceModel`
    and of the unfolded model bit for bit."""

    #: images per pass (the patch rows grow with h * w * kh * kw * cw per image)
    eval_chunk = 64

    def __init__(self, stages, input_shape, dtype, engine):
        self.input_shape = tuple(input_shape)
        super().__init__(stages, math.prod(self.input_shape), dtype, engine)
        if getattr(engine, "name", None) == "numba":  # uint8 images in one compiled call
            from ._conv_numba import conv_chain

            self.fused = conv_chain(self)

    def _rows(self, x):
        if isinstance(x, np.ndarray) and x.ndim == 4:
            if x.shape[1:] != self.input_shape:
                raise ValueError(f"x must be images of shape (m, {', '.join(map(str, self.input_shape))}) or rows "
                                 f"(m, {self.n_in}), got {x.shape}")
            x = x.reshape(x.shape[0], self.n_in)
        return x

    def logits(self, x):
        return super().logits(self._rows(x))

    forward = logits

    def predict(self, x):
        return super().predict(self._rows(x))

    def predict_proba(self, x):
        return super().predict_proba(self._rows(x))

    def _run(self, a):
        a = a.reshape(a.shape[0], *self.input_shape)
        for stage in self.stages:
            a = stage(a)
        return a

    def __repr__(self):
        return f"PackedConvModel(input_shape={self.input_shape}, stages={len(self.stages) - 1} conv + tail)"


def fold_conv(layers, arrays, dtype, input_shape, engine=None):
    """The folded model of ``layers`` (configs) and ``arrays`` (model dtype; binary layers
    as ``"<i>.W_bits"`` and ``"<i>.alpha"``): a :class:`ConvInferenceModel` (plain NumPy,
    the specification) without ``engine``, a :class:`PackedConvModel` on ``engine`` (an
    engine class with ``patches`` and ``pool_bits``). ``NotImplementedError`` for a layer
    pattern this slice does not fold."""
    dtype = np.dtype(dtype)
    specs, i, first = [], 0, True
    shape = tuple(input_shape)
    while i < len(layers) and layers[i]["kind"] == "conv2d":
        conv = layers[i]
        if not conv["binary"]:
            raise _unsupported(i, conv, "has float weights")
        if not first and conv["padding"] == "same" and conv["pad_value"] == 0:  # the packed stages pad with bit 0
            raise _unsupported(i, conv, "pads its ±1 input with 0 (pad_value=0), not with +1 (one-padding)")
        j = i + 1
        pool_before = bn = None
        if j < len(layers) and layers[j]["kind"] == "maxpool2d":
            pool_before, j = (layers[j]["pool_size"], layers[j]["stride"]), j + 1
        if j < len(layers) and layers[j]["kind"] == "batchnorm":
            bn, j = j, j + 1
        if j >= len(layers) or layers[j]["kind"] != "sign":
            raise _unsupported(i, conv, "is not followed by [maxpool2d] [batchnorm] sign")
        j += 1
        pools_after = []
        while j < len(layers) and layers[j]["kind"] == "maxpool2d":
            pools_after.append((layers[j]["pool_size"], layers[j]["stride"]))
            j += 1
        n = conv["filters"]
        kh, kw = conv["kernel_size"]
        n_in = kh * kw * conv["in_channels"]
        bias = arrays.get(f"{i}.b")
        bn_args = _bn(arrays, bn, layers, dtype)

        def affine(uint8_input, i=i, n=n, bias=bias, bn_args=bn_args):
            return Affine(_scale(arrays, i, n, dtype, uint8_input), bias, bn_args, dtype, n)

        if first:
            thresholds = {"uint8": int_thresholds(affine(True), 255 * n_in), "float": float_thresholds(affine(False))}
        else:
            thresholds = {"packed": int_thresholds(affine(False), n_in)}
        specs.append((conv, arrays[f"{i}.W_bits"], thresholds, pool_before, pools_after, shape, first))
        g = _geometry(shape, conv["kernel_size"], conv["stride"], conv["padding"])
        shape = (g[6], g[7], n)
        for pool in ([pool_before] if pool_before is not None else []) + pools_after:
            shape = _pooled(shape, pool)
        i, first = j, False
    if first:
        raise _unsupported(0, layers[0], "does not start a sign stage")
    rest = [layer["kind"] for layer in layers[i:]]
    if rest not in (["flatten", "dense"], ["flatten", "dense", "batchnorm"]) or not layers[i + 1]["binary"]:
        raise _unsupported(i, layers[i], "starts a tail other than flatten -> binary dense -> [batchnorm]")
    d = i + 1
    n = layers[d]["n_out"]
    bn_args = _bn(arrays, d + 1 if len(rest) == 3 else None, layers, dtype)
    affine = Affine(arrays.get(f"{d}.alpha"), arrays.get(f"{d}.b"), bn_args, dtype, n)
    if engine is None or not hasattr(engine, "patches"):  # the specification (also for engines without patches)
        stages = [_Stage(conv, w_bits, thresholds, pool_before, pools_after)
                  for conv, w_bits, thresholds, pool_before, pools_after, _, _ in specs]
        return ConvInferenceModel(stages, arrays[f"{d}.W_bits"], affine, input_shape, dtype)
    stages = [_PackedStage(engine, *spec, dtype) for spec in specs]
    stages.append(_PackedTail(engine, arrays[f"{d}.W_bits"], affine, shape, dtype))
    return PackedConvModel(stages, input_shape, dtype, engine)
