"""Convolutions over NHWC images: the patch layout and max pooling (validated public
API). Each function mirrors the function of the same name in ``fastbin.reference``
(same arguments, same results: the same values, bit for bit, also for the float sums of
``col2im`` and ``max_pool2d_backward``, which add each pixel's terms in the reference's
order); the kernels are ``fastbin.kernels.conv``, threaded over the images from
``TABLE["parallel_min_work"]["conv_patches"]`` values moved.

* :func:`im2col` ``(x, kernel_size, stride=1, padding="valid", pad_value=1)``: patch rows;
* :func:`col2im` ``(cols, input_shape, kernel_size, stride=1, padding="valid")``: its adjoint;
* :func:`pack_patches` ``(x, kernel_size, stride=1, padding="valid")``: the packed signs of
  the patches of ±1 images with one-padding, gathered from the packed signs of each pixel
  (the float patch matrix is never made);
* :func:`max_pool2d` ``(x, pool_size, stride=None)`` and :func:`max_pool2d_backward`
  ``(dy, x, pool_size, stride=None)``.
"""
from __future__ import annotations

import numpy as np

from .._config import use_threads
from .._validate import FLOAT_DTYPES, check_array
from ..bits import n_words_for
from ..kernels.conv import (
    col2im_into,
    col2im_parallel,
    im2col_into,
    im2col_parallel,
    max_pool_backward_into,
    max_pool_backward_parallel,
    max_pool_into,
    max_pool_parallel,
    pack_patches_into,
    pack_patches_parallel,
)
from ..kernels.pack import aligned_words
from ..packed import PackedSigns
from ..reference import conv_geometry, int_pair
from .pack import pack_signs

__all__ = ["im2col", "col2im", "pack_patches", "max_pool2d", "max_pool2d_backward"]


def _images(name, x):
    """Non-empty images (m, h, w, c) of a real native dtype, C-contiguous."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.kind not in "uif" or x.dtype.itemsize > 8 or x.dtype == np.float16:
        raise TypeError(f"{name} must have a float32/float64 or integer dtype, got {x.dtype}")
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{name} must be non-empty images (m, height, width, channels), got shape {x.shape}")
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    return np.ascontiguousarray(x)


def _threads(values):
    return use_threads("conv_patches", values, None)


def im2col(x, kernel_size, stride=1, padding="valid", pad_value=1) -> np.ndarray:
    """The patches of images ``x`` (m, h, w, c) as rows (m * out_h * out_w, kh * kw *
    c) of ``x``'s dtype (``fastbin.reference.im2col``: row ``(n * out_h + p) * out_w +
    q``, column ``(i * kw + j) * c + ch``); the padding holds ``pad_value`` in ``x``'s
    units (1: one-padding), which an integer ``x`` must hold exactly."""
    x = _images("x", x)
    m, h, w, c = x.shape
    kh, kw = int_pair("kernel_size", kernel_size)
    sh, sw = int_pair("stride", stride)
    out_h, out_w, (top, _), (left, _) = conv_geometry(h, w, (kh, kw), (sh, sw), padding)
    try:
        pad = x.dtype.type(pad_value)  # float images: rounded as the reference's np.pad rounds it
        exact = x.dtype.kind == "f" or pad == pad_value
    except (TypeError, ValueError, OverflowError):
        exact = False
    if not exact:
        raise ValueError(f"pad_value must be a number {x.dtype} holds exactly, got {pad_value!r}")
    out = np.empty((m * out_h * out_w, kh * kw * c), x.dtype)
    kernel = im2col_parallel if _threads(out.size) else im2col_into
    kernel(x, kh, kw, sh, sw, top, left, out_h, out_w, pad, out)
    return out


def col2im(cols, input_shape, kernel_size, stride=1, padding="valid") -> np.ndarray:
    """The adjoint of :func:`im2col`: the patch gradients ``cols`` (m * out_h * out_w,
    kh * kw * c) float32/float64 summed onto the pixels they came from, (m, h, w, c) of
    ``cols``' dtype with ``input_shape = (m, h, w, c)``; the padding's gradients are dropped."""
    if not (isinstance(input_shape, (tuple, list)) and len(input_shape) == 4
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in input_shape)):
        raise ValueError(f"input_shape must be (m, height, width, channels) of ints >= 1, got {input_shape!r}")
    m, h, w, c = (int(v) for v in input_shape)
    kh, kw = int_pair("kernel_size", kernel_size)
    sh, sw = int_pair("stride", stride)
    out_h, out_w, (top, _), (left, _) = conv_geometry(h, w, (kh, kw), (sh, sw), padding)
    cols = check_array("cols", cols, FLOAT_DTYPES, 2)
    if cols.shape != (m * out_h * out_w, kh * kw * c):
        raise ValueError(f"cols must have shape {(m * out_h * out_w, kh * kw * c)}, got {cols.shape}")
    out = np.zeros((m, h, w, c), cols.dtype)
    kernel = col2im_parallel if _threads(cols.size) else col2im_into
    kernel(cols, kh, kw, sh, sw, top, left, out_h, out_w, out)
    return out


def pack_patches(x, kernel_size, stride=1, padding="valid") -> PackedSigns:
    """The signs of the patches of images ``x`` (m, h, w, c) (float or signed
    integer), packed: ``pack_signs(im2col(x, kernel_size, stride, padding, 1))``,
    PackedSigns (m * out_h * out_w, kh * kw * c), one-padding (+1, bit 0). Each
    pixel's ``c`` signs are packed once, then shifted into the patch rows."""
    x = _images("x", x)
    m, h, w, c = x.shape
    kh, kw = int_pair("kernel_size", kernel_size)
    sh, sw = int_pair("stride", stride)
    out_h, out_w, (top, _), (left, _) = conv_geometry(h, w, (kh, kw), (sh, sw), padding)
    pixels = pack_signs(x.reshape(m * h * w, c)).bits  # TypeError for unsigned, ValueError for NaN
    n_bits = kh * kw * c
    out = aligned_words(m * out_h * out_w, n_words_for(n_bits))
    kernel = pack_patches_parallel if _threads(out.size * 64) else pack_patches_into
    kernel(pixels, h, w, kh, kw, sh, sw, top, left, out_h, out_w, c, out)
    return PackedSigns(out, n_bits)


def _pool_geometry(x, pool_size, stride):
    ph, pw = int_pair("pool_size", pool_size)
    sh, sw = int_pair("stride", (ph, pw) if stride is None else stride)
    out_h, out_w, _, _ = conv_geometry(x.shape[1], x.shape[2], (ph, pw), (sh, sw), "valid")
    return ph, pw, sh, sw, out_h, out_w


def max_pool2d(x, pool_size, stride=None) -> np.ndarray:
    """Max pooling of images ``x`` (m, h, w, c) over ``pool_size`` windows moved by
    ``stride`` (default: the pool size), no padding: (m, out_h, out_w, c) of ``x``'s dtype."""
    x = _images("x", x)
    ph, pw, sh, sw, out_h, out_w = _pool_geometry(x, pool_size, stride)
    out = np.empty((x.shape[0], out_h, out_w, x.shape[3]), x.dtype)
    kernel = max_pool_parallel if _threads(x.size) else max_pool_into
    kernel(x, ph, pw, sh, sw, out)
    return out


def max_pool2d_backward(dy, x, pool_size, stride=None) -> np.ndarray:
    """Gradient of :func:`max_pool2d` w.r.t. ``x`` from ``dy`` (m, out_h, out_w, c)
    float32/float64: each window's gradient goes to its first maximum in row-major
    window order, summed where windows overlap; (m, h, w, c) of ``dy``'s dtype."""
    x = _images("x", x)
    ph, pw, sh, sw, out_h, out_w = _pool_geometry(x, pool_size, stride)
    dy = check_array("dy", dy, FLOAT_DTYPES)
    if dy.shape != (x.shape[0], out_h, out_w, x.shape[3]):
        raise ValueError(f"dy must have shape {(x.shape[0], out_h, out_w, x.shape[3])}, got {dy.shape}")
    dx = np.zeros(x.shape, dy.dtype)
    kernel = max_pool_backward_parallel if _threads(x.size) else max_pool_backward_into
    kernel(dy, x, ph, pw, sh, sw, dx)
    return dx
