"""A folded binary conv network on raw uint8 images, direct: every conv layer reads its taps in
place (no patch rows), 16 filters per vector lane block, the folded batch norm + sign and the
max pooling done on the registers' words; one compiled call per batch (the numba engine's fused
pass for conv models, ``fastbin.runtime._conv_numba``).

Activations between stages are images of packed signs in **32-bit** words, ``(h, w, cw)`` with
``cw = ceil(c / 32)`` (bit ``ch % 32`` of word ``ch // 32`` is 1 where channel ``ch`` is -1; the
bits past ``c`` are 0), each held inside its consumer's padded extent: the ``(hp, wp)`` window
extent of the next conv (``(out_h - 1) * sh + kh`` by ``(out_w - 1) * sw + kw``), the image at
``(top, left)``, zero words around it: one-padding, +1 is bit 0, free. With 32-bit words a pixel
of 32 channels fills its word (64-bit words would carry 32 padding bits through every popcount).

Per output pixel and group of 64 filters, ``fastbin.kernels.intrinsics.filter_word`` gives the
word: ``dot_f = k_bits - 2 * sum_t popcount(v_t ^ w_t)`` over the ``K = kh * kw * cw``
words ``v_t = src[base + offsets[t]]`` of the window (``base = (p * sh * wp + q * sw) * cw``,
``offsets[t] = (i * wp + j) * cw + u`` for tap ``(i, j)``, word ``u``), ``k_bits = 32 * K``: the
true dot plus the ``32 * K - k`` padding bits (zero on both sides), which the thresholds carry;
bit set where ``sign * dot < signed``. The first stage is the same on the image converted to
float32 and padded once (``first._padded_image``), ``dot_f = sum_t v_t * w_t`` with ±1 float32
weights: exact integers (``255 * k < 2**24``, the caller's bound).

Pools (two per stage at most: the first before the batch norm, the AND of the words on the bits
where the stage's mask is 0 and the OR where it is 1, the channels whose folded batch norm
reverses the order, or after the sign with a zero mask; a second after the sign, the AND) are
taken over the words of their windows' conv pixels as they are computed (overlapping windows
compute a pixel more than once); the pooled word goes straight into the next stage's padded
extent.

* ``direct_chain(x, ints, f32, wbits, thr, masks, tail_w, consts, logits)``: ``x`` uint8 (m, h, w, c)
  C-contiguous; ``ints`` int64: the header (``H_*``), one record of ``GEO`` fields per stage at
  ``HEAD + s * GEO`` (fields below) and the tap offsets; ``f32`` float32: the first stage's
  weights, lane blocks (``npad // 16 * K``, 16) (row ``b * K + t`` holds tap ``t`` of filters
  ``16 b .. 16 b + 15``; filters past ``n`` zero), then ``sign`` and ``signed`` (``npad`` each;
  past ``n``: 1 and -inf, bit 0); ``wbits`` uint32: each later stage's weights as lane blocks the
  same way; ``thr`` int32: their ``sign``, ``signed`` (past ``n``: 1 and INT32_MIN); ``masks``
  uint64: per stage one word per group of 64 filters (the pool's OR mask); ``tail_w`` uint32
  (classes, words): the flattened last stage's words against the dense layer's weights in the same
  layout; ``consts`` (the model dtype, at least one value): the tail's scale, bias and batch norm
  (``mean``, ``k``, ``beta``) where the header has them; ``logits`` (m, classes) of that dtype
  receives, per class, the dense layer's exact integer product ``tail_bits - 2 * popcount``
  (``tail_bits`` its true input length, the padding bits zero on both sides) through the float
  formula of ``fastbin.reference.dense_affine`` and ``bn_affine``, one IEEE operation at a time
  in their order: the stage path's logits bit for bit.
"""
from __future__ import annotations

import numpy as np

from ..._config import jit
from ..intrinsics import FILTER_BLOCKS, FILTER_LANES, filter_word, opaque, popcount, to_float
from .first import _padded_image

__all__ = ["direct_chain", "HEAD", "GEO", "H_STAGES", "H_SCRATCH", "H_TAIL_AT", "H_TAIL_WORDS", "H_TAIL_BITS",
           "H_CLASSES", "H_SCALE", "H_BIAS", "H_BN", "H_ZERO",
           "IN_HP", "IN_WP", "IN_C", "TOP", "LEFT", "SH", "SW", "PH", "PW", "PSH", "PSW", "AH", "AW", "ASH", "ASW",
           "OUT_H", "OUT_W", "N", "CWO", "DST_HP", "DST_WP", "DST_TOP", "DST_LEFT", "K", "K_BITS", "OFF_AT", "W_AT",
           "T_AT", "NPAD", "M_AT", "SRC_AT", "DST_AT", "PAD"]

#: the header of ``ints``: stages, scratch words, the tail's input (offset in the scratch, words), its bits,
#: its classes, where its scale, bias and batch norm (mean, k, beta) are in ``consts`` (-1: none), a zero
H_STAGES, H_SCRATCH, H_TAIL_AT, H_TAIL_WORDS, H_TAIL_BITS, H_CLASSES, H_SCALE, H_BIAS, H_BN, H_ZERO = range(10)
HEAD = 10
#: the fields of a stage record: its input's padded extent and values (words) per pixel, the image's
#: offset in it, the conv strides, the pools (the first, with the stage's mask: before the batch norm,
#: or the first after the sign; a second after the sign, the AND; each 1 x 1, stride 1 where none),
#: the output size (pooled), filters and words per output pixel, where the output goes (the next extent
#: and offset), the taps, ``k_bits``,
#: where its offsets, weights, thresholds (``npad`` filters) and masks are, its input and output in the
#: scratch, and the first stage's pad value (a pixel value)
(IN_HP, IN_WP, IN_C, TOP, LEFT, SH, SW, PH, PW, PSH, PSW, AH, AW, ASH, ASW, OUT_H, OUT_W, N, CWO, DST_HP,
 DST_WP, DST_TOP, DST_LEFT, K, K_BITS, OFF_AT, W_AT, T_AT, NPAD, M_AT, SRC_AT, DST_AT, PAD) = range(33)
GEO = 33

_WORD_LOW = np.uint64(0xFFFFFFFF)


@jit
def _conv_stage(src, g, offsets, w, sign, signed, masks, dst):
    """One stage: conv + pools + thresholds from ``src`` (flat padded extent) into ``dst``
    (flat, the next extent), as ``g`` (a record) says. The pixel loop calls only the intrinsic
    (a jitted helper taking the arrays would add reference counting per pixel)."""
    wp, cin, sh, sw, k_bits = g[IN_WP], g[IN_C], g[SH], g[SW], g[K_BITS]
    ph, pw, psh, psw, ah, aw, ash, asw = g[PH], g[PW], g[PSH], g[PSW], g[AH], g[AW], g[ASH], g[ASW]
    n, cwo = g[N], g[CWO]
    dhp, dwp, dtop, dleft = g[DST_HP], g[DST_WP], g[DST_TOP], g[DST_LEFT]
    for group in range((n + 63) // 64):
        blocks = min(FILTER_BLOCKS, (n - 64 * group + FILTER_LANES - 1) // FILTER_LANES)
        blk0 = FILTER_BLOCKS * group
        mask = masks[g[M_AT] + group]
        for pp in range(g[OUT_H]):
            y = pp + dtop
            if y >= dhp:  # past the next conv's windows: never read
                break
            for qq in range(g[OUT_W]):
                xq = qq + dleft
                if xq >= dwp:
                    break
                v = ~np.uint64(0)
                for i2 in range(ah):  # the second pool, after the sign: the AND (1 x 1 for none)
                    for j2 in range(aw):
                        all_ones = ~np.uint64(0)
                        any_one = np.uint64(0)
                        for i in range(ph):  # the first pool, its mask (1 x 1 for none)
                            p = (pp * ash + i2) * psh + i
                            for j in range(pw):
                                q = (qq * asw + j2) * psw + j
                                u = filter_word(src, (p * sh * wp + q * sw) * cin, offsets, w, blk0, blocks, k_bits,
                                                sign, signed)
                                all_ones &= u
                                any_one |= u
                        v &= (all_ones & ~mask) | (any_one & mask)
                at = (y * dwp + xq) * cwo + 2 * group
                dst[at] = np.uint32(v & _WORD_LOW)
                if 2 * group + 1 < cwo:
                    dst[at + 1] = np.uint32(v >> np.uint64(32))


@jit
def _record(ints, s):
    return ints[HEAD + s * GEO : HEAD + (s + 1) * GEO]


@jit
def direct_chain(x, ints, f32, wbits, thr, masks, tail_w, consts, logits):
    scratch = np.zeros(ints[H_SCRATCH], np.uint32)
    g0 = _record(ints, 0)
    k0, npad0 = g0[K], g0[NPAD]
    image = np.empty((g0[IN_HP], g0[IN_WP], g0[IN_C]), np.float32)
    flat = image.reshape(-1)
    pad = np.float32(g0[PAD])
    off0 = ints[g0[OFF_AT] : g0[OFF_AT] + k0]
    w0 = f32[g0[W_AT] : g0[W_AT] + npad0 * k0].reshape((npad0 // FILTER_LANES * k0, FILTER_LANES))
    sign0 = f32[g0[T_AT] : g0[T_AT] + npad0]
    signed0 = f32[g0[T_AT] + npad0 : g0[T_AT] + 2 * npad0]
    tail_at, tail_words, tail_bits = ints[H_TAIL_AT], ints[H_TAIL_WORDS], ints[H_TAIL_BITS]
    features = scratch[tail_at : tail_at + tail_words]
    for img in range(x.shape[0]):
        _padded_image(x, img, g0[TOP], g0[LEFT], pad, image)
        _conv_stage(flat, g0, off0, w0, sign0, signed0, masks, scratch[g0[DST_AT] :])
        for s in range(1, ints[H_STAGES]):
            g = _record(ints, s)
            k, npad = g[K], g[NPAD]
            w = wbits[g[W_AT] : g[W_AT] + npad * k].reshape((npad // FILTER_LANES * k, FILTER_LANES))
            _conv_stage(scratch[g[SRC_AT] :], g, ints[g[OFF_AT] : g[OFF_AT] + k], w, thr[g[T_AT] : g[T_AT] + npad],
                        thr[g[T_AT] + npad : g[T_AT] + 2 * npad], masks, scratch[g[DST_AT] :])
        for c in range(tail_w.shape[0]):
            count = 0
            for t in range(tail_words):
                count += popcount(features[t] ^ tail_w[c, t])
            logits[img, c] = _affine(tail_bits - 2 * count, c, ints, consts)


@jit
def _affine(dot, c, ints, consts):
    """The tail's float formula on class ``c``'s integer ``dot``, one IEEE operation of the model
    dtype at a time (``opaque``: no FMA contraction, no reassociation), NumPy's order:
    ``fastbin.reference.dense_affine`` then ``bn_affine``."""
    zero = ints[H_ZERO]
    z = opaque(to_float(consts[0], dot), zero)
    if ints[H_SCALE] >= 0:
        z = opaque(z * consts[ints[H_SCALE] + c], zero)
    if ints[H_BIAS] >= 0:
        z = opaque(z + consts[ints[H_BIAS] + c], zero)
    at = ints[H_BN]
    if at >= 0:
        n = ints[H_CLASSES]
        z = opaque(z - consts[at + c], zero)
        z = opaque(z * consts[at + n + c], zero)
        z = opaque(z + consts[at + 2 * n + c], zero)
    return z
