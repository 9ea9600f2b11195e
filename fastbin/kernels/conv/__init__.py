"""Convolutions over NHWC images (m, height, width, channels): the data movement
kernels of training and evaluation, beside the products they feed.

* ``patches``: ``im2col`` (patch rows), its adjoint ``col2im`` (patch gradients summed
  back onto the pixels), and the packed patch rows of ±1 images gathered from the
  packed signs of each pixel (``pack_patches``: no float patch matrix);
* ``pool``: max pooling forward and backward (the gradient to the first maximum of
  each window);
* ``packed``: the folded runtime's data movement on any dtype and on packed words
  (``patches``: im2col with one-padding as word 0; ``pool_words``: pooling as AND/OR of
  words), imported by ``fastbin.runtime._numba`` directly;
* ``first``: the folded first layer straight from raw uint8 pixels to packed words
  (``conv_sign_uint8``), and ``direct``: a whole folded network on uint8 images in one call
  (``direct_chain``: every conv reads its taps in place, 16 filters per vector, thresholds and
  pools on the words), both imported by ``fastbin.runtime._conv_numba`` directly.

The formulas are ``fastbin.reference``'s (``im2col``, ``col2im``, ``pack_patches``,
``max_pool2d``, ``max_pool2d_backward``); ``fastbin.ops.conv`` validates, allocates and
chooses the threaded form (``_parallel``: images split over threads). Kernels trust
their inputs: C-contiguous arrays of the documented shapes and dtypes.
"""
from .patches import (
    col2im_into,
    col2im_parallel,
    im2col_into,
    im2col_parallel,
    pack_patches_into,
    pack_patches_parallel,
)
from .pool import max_pool_backward_into, max_pool_backward_parallel, max_pool_into, max_pool_parallel

__all__ = [
    "im2col_into",
    "im2col_parallel",
    "col2im_into",
    "col2im_parallel",
    "pack_patches_into",
    "pack_patches_parallel",
    "max_pool_into",
    "max_pool_parallel",
    "max_pool_backward_into",
    "max_pool_backward_parallel",
]
