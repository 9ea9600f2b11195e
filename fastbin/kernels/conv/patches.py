"""Patch layout of convolutions (the formulas: ``fastbin.reference.im2col``, ``col2im``,
``pack_patches``).

Geometry arguments, as ``fastbin.reference.conv_geometry`` gives them: kernel
``kh, kw``, stride ``sh, sw``, the padding before the image ``top, left`` and the
output size ``out_h, out_w``. Patch row ``(n * out_h + p) * out_w + q`` holds, in
column ``(i * kw + j) * c + ch``, pixel ``(p * sh + i - top, q * sw + j - left)``,
channel ``ch`` of image ``n``, or the padding value outside the image.

* ``im2col_into(x, kh, kw, sh, sw, top, left, out_h, out_w, pad, out)``: ``x`` (m, h,
  w, c) any real dtype, ``pad`` a scalar of its dtype, ``out`` (m * out_h * out_w,
  kh * kw * c) of its dtype.
* ``col2im_into(cols, kh, kw, sh, sw, top, left, out_h, out_w, out)``: ``out`` (m, h,
  w, c) *zeroed* by the caller, receives the sum of the patch gradients ``cols``
  (float) over the pixels they came from, each pixel's terms added in the order of
  the taps ``(i, j)``, as the reference adds them (the same bits).
* ``pack_patches_into(pixels, h, w, kh, kw, sh, sw, top, left, out_h, out_w, c, out)``:
  ``pixels`` uint64 (m * h * w, ceil(c / 64)) the packed signs of each pixel's ``c``
  channels (``fastbin.bits``' convention, zero padding bits), ``out`` uint64 (m *
  out_h * out_w, ceil(kh * kw * c / 64)) the packed patch rows: each pixel's ``c``
  bits are shifted into place at bit ``(i * kw + j) * c``; a tap outside the image
  is one-padding, +1, bit 0, so it writes nothing.

``*_parallel``: the same with the images split over threads (each image's rows and
pixels belong to one thread).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..._config import jit, jit_parallel

__all__ = [
    "im2col_into",
    "im2col_parallel",
    "col2im_into",
    "col2im_parallel",
    "pack_patches_into",
    "pack_patches_parallel",
]


@jit
def _im2col_image(x, n, kh, kw, sh, sw, top, left, out_h, out_w, pad, out):
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    row = n * out_h * out_w
    for p in range(out_h):
        for q in range(out_w):
            dst = out[row]
            for i in range(kh):
                y = p * sh + i - top
                for j in range(kw):
                    xx = q * sw + j - left
                    base = (i * kw + j) * c
                    inside = y >= 0 and y < h and xx >= 0 and xx < w
                    if c == 1:  # one value (a grey pixel, a pixel's word): no inner loop to set up
                        dst[base] = x[n, y, xx, 0] if inside else pad
                    elif inside:
                        src = x[n, y, xx]
                        for ch in range(c):
                            dst[base + ch] = src[ch]
                    else:
                        for ch in range(c):
                            dst[base + ch] = pad
            row += 1


@jit
def im2col_into(x, kh, kw, sh, sw, top, left, out_h, out_w, pad, out):
    """Patch rows of images ``x`` into ``out`` (module doc)."""
    for n in range(x.shape[0]):
        _im2col_image(x, n, kh, kw, sh, sw, top, left, out_h, out_w, pad, out)


@jit_parallel
def im2col_parallel(x, kh, kw, sh, sw, top, left, out_h, out_w, pad, out):
    """:func:`im2col_into` with the images split over threads."""
    for n in prange(x.shape[0]):
        _im2col_image(x, n, kh, kw, sh, sw, top, left, out_h, out_w, pad, out)


@jit
def _col2im_image(cols, n, kh, kw, sh, sw, top, left, out_h, out_w, out):
    h, w, c = out.shape[1], out.shape[2], out.shape[3]
    first = n * out_h * out_w
    image = out[n]
    # taps outermost: each pixel receives its terms in tap order, as the reference sums them;
    # one image's patch rows (out_h * out_w * kh * kw * c values) stay in cache over the taps
    for i in range(kh):
        for j in range(kw):
            base = (i * kw + j) * c
            for p in range(out_h):
                y = p * sh + i - top
                if y < 0 or y >= h:
                    continue
                for q in range(out_w):
                    xx = q * sw + j - left
                    if xx < 0 or xx >= w:
                        continue
                    src = cols[first + p * out_w + q]
                    dst = image[y, xx]
                    for ch in range(c):
                        dst[ch] += src[base + ch]


@jit
def col2im_into(cols, kh, kw, sh, sw, top, left, out_h, out_w, out):
    """Patch gradients ``cols`` summed onto the zeroed images ``out`` (module doc)."""
    for n in range(out.shape[0]):
        _col2im_image(cols, n, kh, kw, sh, sw, top, left, out_h, out_w, out)


@jit_parallel
def col2im_parallel(cols, kh, kw, sh, sw, top, left, out_h, out_w, out):
    """:func:`col2im_into` with the images split over threads."""
    for n in prange(out.shape[0]):
        _col2im_image(cols, n, kh, kw, sh, sw, top, left, out_h, out_w, out)


@jit
def _pack_patches_image(pixels, n, h, w, kh, kw, sh, sw, top, left, out_h, out_w, c, out):
    n_src = pixels.shape[1]
    n_words = out.shape[1]
    row = n * out_h * out_w
    for p in range(out_h):
        for q in range(out_w):
            dst = out[row]
            for k in range(n_words):
                dst[k] = np.uint64(0)
            for i in range(kh):
                y = p * sh + i - top
                if y < 0 or y >= h:
                    continue  # one-padding: bit 0
                for j in range(kw):
                    xx = q * sw + j - left
                    if xx < 0 or xx >= w:
                        continue
                    src = pixels[(n * h + y) * w + xx]
                    bit = (i * kw + j) * c
                    for k in range(n_src):
                        word = src[k]
                        at = bit + 64 * k
                        index = at >> 6
                        shift = at & 63
                        dst[index] |= word << np.uint64(shift)
                        if shift != 0 and index + 1 < n_words:
                            # the high bits spill into the next word (zero where the channels end)
                            dst[index + 1] |= word >> np.uint64(64 - shift)
            row += 1


@jit
def pack_patches_into(pixels, h, w, kh, kw, sh, sw, top, left, out_h, out_w, c, out):
    """Packed patch rows of ±1 images from the packed signs of their pixels (module doc)."""
    m = pixels.shape[0] // (h * w)
    for n in range(m):
        _pack_patches_image(pixels, n, h, w, kh, kw, sh, sw, top, left, out_h, out_w, c, out)


@jit_parallel
def pack_patches_parallel(pixels, h, w, kh, kw, sh, sw, top, left, out_h, out_w, c, out):
    """:func:`pack_patches_into` with the images split over threads."""
    m = pixels.shape[0] // (h * w)
    for n in prange(m):
        _pack_patches_image(pixels, n, h, w, kh, kw, sh, sw, top, left, out_h, out_w, c, out)
