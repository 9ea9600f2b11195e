"""Data movement of the folded binary convolution (issue 25): patches and pooling.

Activations between binary conv layers are images of packed signs, uint64
``(m, h, w, cw)``: the ``c`` channels of a pixel in ``cw = ceil(c / 64)`` words
(the bit convention of ``fastbin.bits``: bit ``ch % 64`` of word ``ch // 64`` is
1 where channel ``ch`` is -1; the bits past ``c`` are 0). The products are the
``fastbin.kernels.binary_product`` kernels on the patch rows these build; these
kernels only move words. They trust their inputs (shapes, dtypes, geometry
consistent with ``fastbin.reference.conv_geometry``) and write every element of
their preallocated outputs.

* ``patches(x, kh, kw, sh, sw, top, left, out_w, pad, out)``: im2col of images
  ``x`` (m, h, w, c) of any dtype into ``out`` (m * out_h * out_w, kh * kw * c)
  of ``x``'s dtype, row ``(n * out_h + p) * out_w + q``, column ``(i * kw + j)
  * c + ch`` (:func:`fastbin.reference.im2col`'s layout; ``out_h`` follows from
  ``out``'s rows), strides ``sh``, ``sw``, ``top``/``left`` the padding before
  the image, the padding holding ``pad`` (a scalar of ``x``'s dtype). On packed words ``pad`` is 0: "one-
  padding", +1 is bit 0, free; the word layout makes a patch row ``kh * kw``
  pixels of ``cw`` words each. The kernel is training's
  ``fastbin.kernels.conv.patches.im2col_into``, ``out_h`` taken from ``out``'s rows.
* ``pool_words(x, ph, pw, sh, sw, or_mask, out)``: max pooling of packed signs
  ``x`` (m, h, w, cw) into ``out`` (m, out_h, out_w, cw), "valid": per word the
  AND of the window's words (the max of ±1 values is -1 only where all are -1)
  on the bits where ``or_mask`` (cw,) is 0, the OR on the bits where it is 1
  (the channels whose folded batch norm reverses the order, for a pool that
  sits before the batch norm: ``fastbin.runtime.conv``).
"""
from __future__ import annotations

import numpy as np

from ..._config import jit
from .patches import im2col_into

__all__ = ["patches", "pool_words"]


@jit
def patches(x, kh, kw, sh, sw, top, left, out_w, pad, out):
    out_h = out.shape[0] // max(x.shape[0] * out_w, 1)
    im2col_into(x, kh, kw, sh, sw, top, left, out_h, out_w, pad, out)


@jit
def pool_words(x, ph, pw, sh, sw, or_mask, out):
    m, out_h, out_w, cw = out.shape
    for n in range(m):
        for p in range(out_h):
            for q in range(out_w):
                for t in range(cw):
                    all_ones = ~np.uint64(0)
                    any_one = np.uint64(0)
                    for i in range(ph):
                        for j in range(pw):
                            v = x[n, p * sh + i, q * sw + j, t]
                            all_ones &= v
                            any_one |= v
                    mask = or_mask[t]
                    out[n, p, q, t] = (all_ones & ~mask) | (any_one & mask)
