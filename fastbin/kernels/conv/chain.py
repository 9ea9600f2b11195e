"""A folded binary conv network's whole forward pass on raw uint8 images in one compiled call
(the numba engine's fused pass for conv models, ``fastbin.runtime._conv_numba``): the same
kernels as the stage path, called from one jitted function, so a small batch pays one
dispatch instead of some fifteen Python-level calls and their allocations.

* ``uint8_chain(x, w0, g0, pad0, sign0, signed0, mask0, wflat, tflat, fflat, mflat, geo, tail_w,
  tail_bits, out)``:

  - the first stage: ``fastbin.kernels.conv.first.conv_sign_uint8`` on ``x`` uint8 (m, h, w,
    c) C-contiguous with ``w0`` (float32, its layout), ``g0`` int64 (a row of ``geo``: the
    geometry and pools; the other fields unused), ``pad0`` (float32), ``sign0``, ``signed0``
    (float32), then its pools (the OR mask ``mask0``);
  - then for each row ``s`` of ``geo`` (int64 (stages, GEO), fields below) a packed stage:
    the bitpacked patches (``packed.patches``, one-padding as word 0), the product +
    threshold + packing (``binary_product.blocked.binary_dense_sign_kernel``: weights
    ``wflat[w_at : w_at + n * k_words]`` as (n, k_words), ``n_bits`` bits, thresholds
    ``tflat[t_at : t_at + n]`` int64 and flips ``fflat[t_at : t_at + n]`` bool), then a max
    pool before the batch norm (``packed.pool_words`` with the OR mask ``mflat[m_at : m_at +
    cw]``, if ``pb_h > 0``) and one after the sign (the AND: a zero mask, if ``pa_h > 0``);
  - the tail: the flattened words against ``tail_w`` (uint64 (classes, words)) over
    ``tail_bits`` bits (``binary_product.few_rows.binary_dot_rows``) into ``out`` int64 (m,
    classes): the dots the caller shifts and turns into logits.

  The stage path's kernels in the stage path's order: the same words at every stage.
"""
from __future__ import annotations

import numpy as np

from ..._config import jit
from ..binary_product.blocked import binary_dense_sign_kernel
from ..binary_product.few_rows import binary_dot_rows
from .first import conv_sign_uint8
from .packed import patches, pool_words

__all__ = ["uint8_chain", "GEO", "KH", "KW", "SH", "SW", "TOP", "LEFT", "OUT_H", "OUT_W", "N", "K_WORDS",
           "N_BITS", "W_AT", "T_AT", "M_AT", "PB_H", "PB_W", "PB_SH", "PB_SW", "PA_H", "PA_W", "PA_SH", "PA_SW"]

#: the fields of a row of ``geo``
(KH, KW, SH, SW, TOP, LEFT, OUT_H, OUT_W, N, K_WORDS, N_BITS, W_AT, T_AT, M_AT,
 PB_H, PB_W, PB_SH, PB_SW, PA_H, PA_W, PA_SH, PA_SW) = range(22)
GEO = 22


@jit
def _pooled(a, ph, pw, sh, sw, mask):
    m, h, w, cw = a.shape
    out = np.empty((m, (h - ph) // sh + 1, (w - pw) // sw + 1, cw), np.uint64)
    pool_words(a, ph, pw, sh, sw, mask, out)
    return out


@jit
def _pools(a, g, or_mask):
    """A stage's pools on its words ``a`` (m, h, w, cw): before the batch norm (the OR on
    ``or_mask``), after the sign (the AND), where ``g`` has them."""
    if g[PB_H] > 0:
        a = _pooled(a, g[PB_H], g[PB_W], g[PB_SH], g[PB_SW], or_mask)
    if g[PA_H] > 0:
        a = _pooled(a, g[PA_H], g[PA_W], g[PA_SH], g[PA_SW], np.zeros(a.shape[3], np.uint64))
    return a


@jit
def uint8_chain(x, w0, g0, pad0, sign0, signed0, mask0, wflat, tflat, fflat, mflat, geo, tail_w, tail_bits, out):
    m, c = x.shape[0], x.shape[3]
    kh, kw, sh, sw, top, left = g0[KH], g0[KW], g0[SH], g0[SW], g0[TOP], g0[LEFT]
    out_h, out_w = g0[OUT_H], g0[OUT_W]
    cw0 = (sign0.shape[0] + 63) // 64
    words = np.empty((m * out_h * out_w, cw0), np.uint64)
    image = np.empty(((out_h - 1) * sh + kh, (out_w - 1) * sw + kw, c), np.float32)
    conv_sign_uint8(x, w0, kh, kw, sh, sw, top, left, out_h, out_w, pad0, sign0, signed0, image,
                    np.empty(kh * kw * c, np.float32), np.empty((1, w0.shape[1]), np.float32), words)
    a = _pools(words.reshape(m, out_h, out_w, cw0), g0, mask0)
    for s in range(geo.shape[0]):
        g = geo[s]
        n, k_words = g[N], g[K_WORDS]
        cw = (n + 63) // 64
        rows = m * g[OUT_H] * g[OUT_W]
        cols = np.empty((rows, k_words), np.uint64)
        patches(a, g[KH], g[KW], g[SH], g[SW], g[TOP], g[LEFT], g[OUT_W], np.uint64(0), cols)
        signs = np.empty((rows, cw), np.uint64)
        w = wflat[g[W_AT] : g[W_AT] + n * k_words].reshape(n, k_words)
        binary_dense_sign_kernel(cols, w, g[N_BITS], tflat[g[T_AT] : g[T_AT] + n], fflat[g[T_AT] : g[T_AT] + n],
                                 signs)
        a = _pools(signs.reshape(m, g[OUT_H], g[OUT_W], cw), g, mflat[g[M_AT] : g[M_AT] + cw])
    flat = a.reshape(m, a.shape[1] * a.shape[2] * a.shape[3])
    binary_dot_rows(flat, tail_w, tail_bits, out)
