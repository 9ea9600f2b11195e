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
"one-padding", bit 0, so it costs nothing. Everything here is plain NumPy (``fastbin.reference``): the
specification of a future jitted conv engine; ``engine`` is not a choice yet.
"""
from __future__ import annotations

import math

import numpy as np

from .._validate import check_model_input
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

__all__ = ["ConvInferenceModel", "fold_conv"]

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


def fold_conv(layers, arrays, dtype, input_shape) -> ConvInferenceModel:
    """The :class:`ConvInferenceModel` of ``layers`` (configs) and ``arrays``
    (model dtype; binary layers as ``"<i>.W_bits"`` and ``"<i>.alpha"``).
    ``NotImplementedError`` for a layer pattern this slice does not fold."""
    dtype = np.dtype(dtype)
    stages, i, first = [], 0, True
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
        stages.append(_Stage(conv, arrays[f"{i}.W_bits"], thresholds, pool_before, pools_after))
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
    return ConvInferenceModel(stages, arrays[f"{d}.W_bits"], affine, input_shape, dtype)
