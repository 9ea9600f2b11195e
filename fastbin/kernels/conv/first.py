"""The first binary conv layer on raw uint8 pixels, direct: images in, packed signs out.

A network's first layer sees the image: few channels (1 for grey images), so a patch row is
short (9 values for a 3x3 kernel) and the general route (im2col of the pixels, the exact
uint8 product of ``fastbin.kernels.sign_product``, thresholds) spends its time in calls,
patch copies and a product planned for long rows. This kernel does the layer in one pass
per output pixel: the taps' pixels times the ±1 weights summed into one accumulator row
(integers: exact in any order; LLVM vectorises the loop over the filters), then the
folded batch norm + sign of ``fastbin.kernels.binary_product.threshold`` (``below_word``,
a vector of compares at a time) into the pixel's packed words.

* ``conv_sign_uint8(x, w, kh, kw, sh, sw, top, left, out_h, out_w, pad, sign, signed, acc,
  out)``: ``x`` uint8 (m, h, wd, c) C-contiguous; ``w`` (kh * kw * c, n) the ±1 weights,
  row ``(i * kw + j) * c + ch`` (``fastbin.nn.conv.Conv2D``'s layout), of ``acc``'s dtype;
  ``pad`` the padding's pixel value (an integer in [0, 255]; 0 skips the taps outside the
  image); ``sign``, ``signed`` (n,) int64 of ``threshold.signed_thresholds``; ``acc`` a
  scratch (1, n), int32 where ``255 * kh * kw * c`` fits in it (exact), else int64;
  ``out`` uint64 (m * out_h * out_w, ceil(n / 64)) receives every word: row ``(img *
  out_h + p) * out_w + q`` (the patch rows' order), bit ``f`` set where ``sign[f] *
  dot[f] < signed[f]`` for ``dot = patch @ w``, i.e. ``dot < t`` (``dot > t`` where
  flipped). The same bits as im2col + the exact product + ``threshold_pack``.
"""
from __future__ import annotations

from ..._config import jit
from ..binary_product.threshold import below_word

__all__ = ["conv_sign_uint8"]


@jit
def conv_sign_uint8(x, w, kh, kw, sh, sw, top, left, out_h, out_w, pad, sign, signed, acc, out):
    m, h, wd, c = x.shape
    n = w.shape[1]
    for img in range(m):
        for p in range(out_h):
            for q in range(out_w):
                for f in range(n):
                    acc[0, f] = 0
                for i in range(kh):
                    y = p * sh + i - top
                    inside_y = 0 <= y < h
                    for j in range(kw):
                        xx = q * sw + j - left
                        inside = inside_y and 0 <= xx < wd
                        if not inside and pad == 0:
                            continue
                        base = (i * kw + j) * c
                        for ch in range(c):
                            v = x[img, y, xx, ch] if inside else pad
                            row = base + ch
                            for f in range(n):
                                acc[0, f] += v * w[row, f]
                r = (img * out_h + p) * out_w + q
                for t in range(out.shape[1]):
                    j0 = t * 64
                    out[r, t] = below_word(acc, 0, j0, min(n, j0 + 64), sign, signed)
