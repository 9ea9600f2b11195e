"""Binary convolutional networks over NHWC images (m, height, width, channels).

A convolution is a dense product on patches (:func:`fastbin.reference.im2col`),
so :class:`Conv2D` *is* a :class:`~fastbin.nn.layers.Dense` on the patch rows:
the same weights (``W`` (kh * kw * c_in, c_out), BinaryConnect with clip 1,
optional ``alpha`` per output channel), the same training products on the
fastbin backend (``binary_matmul`` on packed patches after a ``Sign``,
``dense_sign_matmul(..., exact=False)`` for a real-valued input and for
``dx``) and the same exact evaluation product (uint8 pixels exact in
integers). The patch layout (``im2col``, ``col2im``, ``pack_patches``) and
max pooling are backend functions: jitted kernels on the fastbin backend
(``fastbin.ops.conv``), the NumPy specification on the reference backend,
the same values bit for bit. After a ``Sign`` the training forward packs the
patches straight from the ±1 images (``pack_patches``: each pixel's signs
packed once, no float patch matrix); the float patches the weight gradient
needs are made in the backward pass and dropped after it.

Padding ``"same"`` writes ``pad_value`` around the image: 1 by default,
"one-padding" (+1 is bit 0 of a packed sign, free in the packed form; true
zero padding of ±1 activations would need a correction term). A layer whose
input is real-valued (the first) may pad with 0 instead (``pad_value=0``).

Where pooling sits: ``Conv2D -> MaxPool2D -> BatchNorm -> Sign``, as in
Larq's and the PyTorch peer's networks: the max is taken over the integer
conv outputs, before the batch norm. Batch norm + sign is monotone per
channel, so when folded this is ``sign(bn(max z)) = max sign(bn(z))`` (the
AND of the packed bits, bit 1 = -1) for a channel with ``gamma > 0``, and
the *min* (the OR of the bits) for ``gamma < 0``.

The model on images, :class:`fastbin.nn.model.ConvModel`, its builder
:func:`fastbin.nn.model.sequential` and the issue's network
:func:`fastbin.nn.model.bnn_conv` live with the other models (``load`` builds them).

>>> from fastbin.nn.model import bnn_conv
>>> model = bnn_conv(seed=0)               # Fashion-MNIST sized, (m, 28, 28, 1) images
>>> loss = model.train_step(x, labels, Adam(1e-3))    # x uint8 (m, 28, 28, 1) or (m, 784)
"""
from __future__ import annotations

import math

import numpy as np

from ..reference import conv_geometry, dense_affine, int_pair
from .layers import Dense, Layer

__all__ = ["Conv2D", "MaxPool2D", "Flatten"]

_UINT8 = np.dtype(np.uint8)


class Conv2D(Dense):
    """2-D convolution of images (m, h, w, ``in_channels``) with ``filters``
    output channels: ``z = im2col(x) @ W_eff + b`` as (m, out_h, out_w,
    filters), ``W`` (kh * kw * in_channels, filters), row ``(i * kw + j) *
    in_channels + ch`` (a (kh, kw, c_in, c_out) kernel reshaped).

    ``binary`` (default True): ``W_eff = sign(W) * alpha`` as :class:`Dense`
    (``scale``: ``alpha = mean |W|`` per output channel). ``stride``: int or
    pair. ``padding``: ``"valid"`` or ``"same"`` (:func:`fastbin.reference.conv_geometry`),
    ``pad_value`` 1 (one-padding) or 0, in units of the [0, 1] input (raw uint8
    pixels pad with ``255 * pad_value``). Training: the :class:`Dense` paths
    on the patch rows, ``dx = col2im(dpatches)`` (on the fastbin backend, stride 1 and
    "same" padding of an odd kernel: the convolution of ``dz`` with the flipped kernel,
    :meth:`_dx_flipped`; after a ``Sign`` the weight gradient of the ±1 patches by the
    sign product, :meth:`_weight_grad`). Evaluation: Dense's exact
    product, or, when the input is ±1 (``sign_input``), the packed
    ``binary_matmul`` (the same integers), then ``dense_affine``."""

    kind = "conv2d"

    def __init__(self, in_channels, filters, kernel_size=3, *, stride=1, padding="valid", pad_value=1.0,
                 binary=True, scale=False, bias=True, init="glorot", sigma=0.1, rng=None, dtype=np.float32,
                 backend="fastbin"):
        for name, value in (("in_channels", in_channels), ("filters", filters)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.kernel_size = int_pair("kernel_size", kernel_size)
        self.stride = int_pair("stride", stride)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        if pad_value not in (0, 1):
            raise ValueError(f"pad_value must be 1 (one-padding) or 0, got {pad_value!r}")
        self.in_channels, self.filters = int(in_channels), int(filters)
        self.padding, self.pad_value = padding, float(pad_value)
        kh, kw = self.kernel_size
        super().__init__(kh * kw * self.in_channels, self.filters, binary=binary, scale=scale, bias=bias,
                         init=init, sigma=sigma, rng=rng, dtype=dtype, backend=backend)
        #: output pixels per image (set by :func:`sequential`; the summary's MAC count)
        self.output_positions = 1
        self._input_shape = None
        self._images = None  # ±1 input images kept by a packed training forward

    @property
    def sign_input(self):
        """True when the input is known to be ±1 *and* the patches are too
        (no zero padding): the training forward then packs the patches and
        uses the exact ``binary_matmul``."""
        zero_pad = self.padding == "same" and self.pad_value == 0
        return self._sign_input and not zero_pad

    @sign_input.setter
    def sign_input(self, value):
        self._sign_input = bool(value)

    def output_shape(self, shape):
        """(out_h, out_w, filters) for an input image shape (h, w, in_channels)."""
        if len(shape) != 3 or shape[2] != self.in_channels:
            raise ValueError(f"conv2d expects images (h, w, {self.in_channels}), gets {tuple(shape)}")
        out_h, out_w, _, _ = conv_geometry(shape[0], shape[1], self.kernel_size, self.stride, self.padding)
        return out_h, out_w, self.filters

    def patches(self, x):
        """``im2col`` of images ``x`` (m, h, w, in_channels) with this layer's geometry
        (the backend's: jitted on the fastbin backend)."""
        if x.ndim != 4 or x.shape[3] != self.in_channels:
            raise ValueError(f"conv2d expects images (m, h, w, {self.in_channels}), got shape {x.shape}")
        pad = self.pad_value * 255 if x.dtype == _UINT8 else self.pad_value
        return self.backend.im2col(x, self.kernel_size, self.stride, self.padding, pad)

    def packed_patches(self, x):
        """The packed signs of the patches of ±1 images ``x`` (one-padding): the backend's
        ``pack_patches``, what ``pack_signs(patches(x))`` gives."""
        return self.backend.pack_patches(x, self.kernel_size, self.stride, self.padding)

    def forward(self, x, training=False):
        out_h, out_w, _ = self.output_shape(x.shape[1:])
        be = self.backend
        if training:
            self._input_shape, self._images = x.shape, None
        if not training and self.binary and self.sign_input:
            # ±1 input: the packed XNOR-popcount product is the exact integer product the
            # evaluation path of Dense computes (dense_sign_matmul), the same bits, much faster
            dot = be.binary_matmul(self.packed_patches(x), self.packed_weights()).astype(self.dtype)
            z = dense_affine(dot, self.eval_scale(False), self.eval_bias())
        elif training and self.binary and self.sign_input and not self.scale and be.sign_products:
            # ±1 input times ±1 weights, as Dense's packed training product, on patches packed
            # straight from the images; the weight gradient's float patches wait for backward
            z = be.binary_matmul(self.packed_patches(x), self.packed_weights()).astype(self.dtype)
            if self.use_bias:
                z += self.params["b"]
            self._x, self._w_eff, self._images = None, None, x
        else:
            z = super().forward(self.patches(x), training)
        return z.reshape(x.shape[0], out_h, out_w, self.filters)

    def backward(self, dz, need_dx=True):
        self._sign_patches = getattr(self, "_images", None) is not None  # ±1 images of the packed forward
        if self._sign_patches:
            self._x = self.patches(self._images)
        flipped = need_dx and self._dx_by_flipped_kernel()
        dcols = super().backward(np.ascontiguousarray(dz.reshape(-1, self.filters)), need_dx and not flipped)
        self._x = self._images = None  # the patch matrix is the largest array of a step: drop it now
        if flipped:
            return self._dx_flipped(dz)
        if not need_dx:
            return None
        return self.backend.col2im(dcols, self._input_shape, self.kernel_size, self.stride, self.padding)

    def _weight_grad(self, x, dz):
        """``grads["W"] <- x.T @ dz``; on ±1 patches (the packed forward's, fastbin backend) as
        ``(dz.T @ x).T``, the planned product of float rows and signs (``x`` is its own sign), where
        :class:`Dense` multiplies the floats by BLAS; within float rounding of it."""
        if not getattr(self, "_sign_patches", False):
            return super()._weight_grad(x, dz)
        self.grads["W"][...] = self.backend.dense_sign_matmul(np.ascontiguousarray(dz.T), x, exact=False).T

    def _dx_by_flipped_kernel(self):
        """Whether :meth:`backward` takes ``dx`` as the convolution of ``dz`` with the flipped
        kernel (:meth:`_dx_flipped`): a binary layer on the fastbin backend, stride 1, "same"
        padding of an odd kernel (the zero padding ``dz`` needs is then "same" again)."""
        kh, kw = self.kernel_size
        return (self.binary and self.backend.sign_products and self.stride == (1, 1) and self.padding == "same"
                and kh % 2 == 1 and kw % 2 == 1)

    def _dx_flipped(self, dz):
        """``dx = col2im((dz * alpha) @ sign(W).T)`` computed as a convolution: pixel ``(y, x)``
        receives ``dz[y + top - i, x + left - j] @ sign(W[i, j]).T * alpha`` over the taps, i.e.
        ``im2col(dz * alpha, "same", zero padding) @ sign(W')`` with ``W'`` the kernel flipped in
        both axes and its channels swapped, (kh * kw * filters, in_channels). The product has
        ``in_channels`` outputs and a long ``k`` (the planner's fast lookups), where ``dz @
        sign(W).T`` had ``kh * kw * in_channels`` outputs from ``k = filters``, and no ``col2im``
        pass follows; within float rounding of it (benchmarks/results/2026-12-08-convtrain.md)."""
        be = self.backend
        kh, kw = self.kernel_size
        alpha = self.alpha()
        d = np.ascontiguousarray(dz if alpha is None else dz * alpha)
        cols = be.im2col(d, (kh, kw), 1, "same", 0)
        w4 = self.params["W"].reshape(kh, kw, self.in_channels, self.filters)
        flipped = np.ascontiguousarray(w4[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, self.in_channels)
        return be.dense_sign_matmul(cols, flipped, exact=False).reshape(self._input_shape)

    def config(self):
        return {"kind": self.kind, "in_channels": self.in_channels, "filters": self.filters,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": self.padding,
                "pad_value": self.pad_value, "binary": self.binary, "scale": self.scale, "bias": self.use_bias}


class MaxPool2D(Layer):
    """Max pooling of images (m, h, w, c) over ``pool_size`` windows moved by
    ``stride`` (default: the pool size), "valid" (no padding):
    the backend's ``max_pool2d`` (:func:`fastbin.reference.max_pool2d`); backward
    to the first maximum of each window (``max_pool2d_backward``)."""

    kind = "maxpool2d"

    def __init__(self, pool_size=2, stride=None):
        super().__init__()
        self.pool_size = int_pair("pool_size", pool_size)
        self.stride = self.pool_size if stride is None else int_pair("stride", stride)

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(f"maxpool2d expects images (h, w, c), gets {tuple(shape)}")
        out_h, out_w, _, _ = conv_geometry(shape[0], shape[1], self.pool_size, self.stride, "valid")
        return out_h, out_w, shape[2]

    def forward(self, x, training=False):
        if training:
            self._x = x
        return self.backend.max_pool2d(x, self.pool_size, self.stride)

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return self.backend.max_pool2d_backward(dy, self._x, self.pool_size, self.stride)

    def config(self):
        return {"kind": self.kind, "pool_size": list(self.pool_size), "stride": list(self.stride)}


class Flatten(Layer):
    """(m, h, w, c) -> (m, h * w * c), NHWC order (channel fastest)."""

    kind = "flatten"

    def output_shape(self, shape):
        return (math.prod(shape),)

    def forward(self, x, training=False):
        if training:
            self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        return dy.reshape(self._shape) if need_dx else None
