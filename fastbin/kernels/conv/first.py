"""The first binary conv layer on raw uint8 pixels, direct: images in, packed signs out.

A network's first layer sees the image: few channels (1 for grey images), so a patch row is
short (9 values for a 3x3 kernel) and the general route (im2col of the pixels, the exact
uint8 product of ``fastbin.kernels.sign_product``, thresholds) spends its time in calls,
patch copies and a product planned for long rows. This kernel does the layer in one pass
per output pixel: the pixel's patch (``kh * kw * c`` values) copied from the image converted
to float32 once and padded, times the ±1 weights, 16 filters per vector accumulator
(``fastbin.kernels.intrinsics.column_block_dot``), then the folded batch norm + sign of
``fastbin.kernels.binary_product.threshold`` (``below_word``, a vector of compares at a
time) into the pixel's packed words. The sums are integers of magnitude at most ``255 * k``:
exact in float32 for ``255 * k <= 2**24`` (the caller's bound; any order, any contraction).

* ``conv_sign_uint8(x, w, kh, kw, sh, sw, top, left, out_h, out_w, pad, sign, signed, image,
  patch, dots, out)``: ``x`` uint8 (m, h, wd, c) C-contiguous; ``w`` float32 (kh * kw * c,
  n16) the ±1 weights, row ``(i * kw + j) * c + ch`` (``fastbin.nn.conv.Conv2D``'s layout),
  the columns past the ``n`` filters 0 up to ``n16``, a multiple of ``COLUMN_BLOCK`` (16);
  ``pad`` the padding's pixel value (float32, an integer in [0, 255]); ``sign``, ``signed``
  (n,) of ``threshold.signed_thresholds`` (float32 thresholds: exact integers up to 2**24);
  scratch: ``image`` float32 ((out_h - 1) * sh + kh, (out_w - 1) * sw + kw, c) C-contiguous
  (an image converted once and padded: the windows' whole extent), ``patch`` float32 (kh *
  kw * c,), ``dots`` float32 (1, n16); ``out`` uint64 (m * out_h * out_w, ceil(n / 64))
  receives every word: row ``(img * out_h + p) * out_w + q`` (the patch rows' order), bit
  ``f`` set where ``sign[f] * dot[f] < signed[f]`` for ``dot = patch @ w``, i.e. ``dot < t``
  (``dot > t`` where flipped). The same bits as im2col + the exact product +
  ``threshold_pack``.
"""
from __future__ import annotations

from ..._config import jit
from ..binary_product.threshold import below_word
from ..intrinsics import COLUMN_BLOCK, column_block_dot

__all__ = ["conv_sign_uint8"]


@jit
def _padded_image(x, img, top, left, pad, image):
    """``image`` (hp, wp, c) float32 <- image ``img`` of ``x`` at offset (top, left), ``pad``
    elsewhere: one conversion per pixel (a vector loop), where converting inside the patch
    loop cost a serial ``cvtsi2ss`` chain per tap."""
    h, wd, c = x.shape[1], x.shape[2], x.shape[3]
    hp, wp = image.shape[0], image.shape[1]
    flat = image.reshape(-1)
    src = x[img].reshape(-1)
    # per padded row, three runs of the flat row: pad, the image's pixels (one contiguous run of
    # values: a vector conversion), pad
    s0 = min(max(left, 0), wp)  # the first column inside the image
    s1 = max(min(left + wd, wp), s0)  # one past the last
    for r in range(hp):
        y = r - top
        at = r * wp * c
        if 0 <= y < h:
            for e in range(s0 * c):
                flat[at + e] = pad
            first = (y * wd + s0 - left) * c
            for e in range((s1 - s0) * c):
                flat[at + s0 * c + e] = src[first + e]
            for e in range(s1 * c, wp * c):
                flat[at + e] = pad
        else:
            for e in range(wp * c):
                flat[at + e] = pad


@jit
def conv_sign_uint8(x, w, kh, kw, sh, sw, top, left, out_h, out_w, pad, sign, signed, image, patch, dots, out):
    c = x.shape[3]
    n = sign.shape[0]
    flat = image.reshape(-1)
    wp = image.shape[1]
    span = kw * c
    for img in range(x.shape[0]):
        _padded_image(x, img, top, left, pad, image)
        for p in range(out_h):
            for q in range(out_w):
                t = 0
                for i in range(kh):  # a window row: kw pixels of c values, contiguous in the padded image
                    at = ((p * sh + i) * wp + q * sw) * c
                    for u in range(span):
                        patch[t + u] = flat[at + u]
                    t += span
                for f0 in range(0, w.shape[1], COLUMN_BLOCK):
                    column_block_dot(patch, w, f0, dots)
                r = (img * out_h + p) * out_w + q
                for word in range(out.shape[1]):
                    j0 = word * 64
                    out[r, word] = below_word(dots, 0, j0, min(n, j0 + 64), sign, signed)
