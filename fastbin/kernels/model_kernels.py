"""Small kernels for the model paths (folded inference).

* ``threshold_pack(dot, thresholds, flip, out_bits)``: the folded batch norm +
  sign of :mod:`fastbin.inference` on an already computed product.
  ``dot`` (m, n) float32/float64/int32, C-contiguous; ``thresholds`` (n,)
  (float of ``dot``'s dtype, or int64); ``flip`` bool (n,); ``out_bits``
  uint64 (m, ceil(n/64)) receives bit ``(i, j)`` = 1 (sign -1, see
  ``fastbin.bitops``) where ``dot[i, j] > thresholds[j]`` (``flip[j]``) or
  ``dot[i, j] < thresholds[j]`` (not ``flip[j]``); padding bits 0. NaN
  compares false both ways, i.e. +1, like ``sign`` of the unfolded model.
  One pass instead of NumPy's compare / where / pack (measured ~10x fewer
  passes over a 10000 x 512 product).
* ``dense_sign_rows(a_bits, w_bits, n_bits, thresholds, flip, out_bits)``:
  ``binary_dense_sign`` for a few rows (batch 1): ``dot = n_bits - 2 *
  popcount(a ^ w)`` then the same test as ``threshold_pack`` (int64
  thresholds); no scratch buffers (the blocked kernel in
  ``fastbin.kernels.binary_matmul`` allocates a block of dots per call,
  3.5 us at 1 x 512 -> 512 vs 0.6 us here).
* ``binary_dot_rows(a_bits, w_bits, n_bits, out)``: ``binary_matmul`` for a
  few rows, written straight into ``out`` (m, n) of any numeric dtype
  (exact: |dot| <= n_bits).
* ``sign_dot_rows(x, signs, out)``: ``x @ signs.T`` for float ``x`` (m, k)
  and ``signs`` (n, k) ±1 (int8, or any dtype); one row or tiny products
  (1 x 784 -> 10: 1.1 us vs 2.3 us for BLAS's call; 1 x 784 -> 512 on int8
  signs: 15 us vs 20 us, the weights stay in L2).
* ``uint8_to_unit_f32(x, out)``: ``out = float32(x) / 255`` for 1-D uint8
  ``x`` and float32 ``out`` (flat views of C-contiguous arrays): a product
  with 1/255 plus one FMA residual correction, the same float32 as the
  correctly rounded division for all 256 values (checked at first use and
  in the tests); 7 us vs NumPy's cast + divide 22 us at 128 x 784.
* ``signs_into(x, out)``: ±1 signs of a flat float array (4x faster than
  three NumPy passes).
"""
from __future__ import annotations

import numpy as np

from .._options import FASTMATH_EXACT, jit
from ..bitops import popcount

__all__ = ["threshold_pack", "dense_sign_rows", "binary_dot_rows", "sign_dot_rows", "uint8_to_unit_f32", "signs_into"]


@jit
def threshold_pack(dot, thresholds, flip, out_bits):
    m, n = dot.shape
    n_words = out_bits.shape[1]
    for i in range(m):
        for w in range(n_words):
            j0 = w * 64
            j1 = min(n, j0 + 64)
            word = np.uint64(0)
            for j in range(j0, j1):
                v = dot[i, j]
                t = thresholds[j]
                negative = (v > t) if flip[j] else (v < t)
                if negative:
                    word |= np.uint64(1) << np.uint64(j - j0)
            out_bits[i, w] = word


@jit
def dense_sign_rows(a_bits, w_bits, n_bits, thresholds, flip, out_bits):
    m, n_in_words = a_bits.shape
    n = w_bits.shape[0]
    for i in range(m):
        for w in range(out_bits.shape[1]):
            j0 = w * 64
            j1 = min(n, j0 + 64)
            word = np.uint64(0)
            for j in range(j0, j1):
                c = 0
                for t in range(n_in_words):
                    c += popcount(a_bits[i, t] ^ w_bits[j, t])
                dot = n_bits - 2 * c
                negative = (dot > thresholds[j]) if flip[j] else (dot < thresholds[j])
                if negative:
                    word |= np.uint64(1) << np.uint64(j - j0)
            out_bits[i, w] = word


@jit
def binary_dot_rows(a_bits, w_bits, n_bits, out):
    m, n_in_words = a_bits.shape
    n = w_bits.shape[0]
    for i in range(m):
        for j in range(n):
            c = 0
            for t in range(n_in_words):
                c += popcount(a_bits[i, t] ^ w_bits[j, t])
            out[i, j] = n_bits - 2 * c


@jit
def sign_dot_rows(x, signs, out):
    """``out[i, j] = dot(x[i], signs[j])``: ``x`` (m, k) float, ``signs`` (n, k)
    the ±1 rows of ``W.T`` (int8), ``out`` (m, n) of ``x``'s dtype. One
    vectorised reduction per entry, summed in ``out``'s dtype."""
    m, k = x.shape
    n = signs.shape[0]
    zero = np.zeros(1, out.dtype)[0]
    for i in range(m):
        for j in range(n):
            acc = zero
            for t in range(k):
                acc += x[i, t] * zero_plus(zero, signs[j, t])
            out[i, j] = acc



@jit(fastmath=set(FASTMATH_EXACT))
def uint8_to_unit_f32(x, out):
    # q = a * (1/255) is off by one ulp for 126 of the 256 values; one
    # correction with the residual a - 255 q (exact with an FMA) rounds it
    # like the division. FASTMATH_EXACT keeps LLVM from re-associating this
    # (and from turning a division into a multiply, ``arcp``). Callers check
    # the 256 values once (``fastbin.models.unit_from_uint8``).
    r = np.float32(1.0 / 255.0)
    for t in range(x.size):
        a = np.float32(x[t])
        q = a * r
        e = a - q * np.float32(255.0)
        out[t] = q + e * r


@jit
def signs_into(x, out):
    """``out = sign(x)`` as ±1 of ``out``'s dtype, sign(0) = sign(-0.0) = +1
    and NaN -> +1 (as ``x < 0`` is false); 1-D flat views."""
    for t in range(x.size):
        out[t] = -1.0 if x[t] < 0 else 1.0


@jit(inline="always")
def zero_plus(zero, v):
    """``v`` converted to ``zero``'s float type (exact for ±1)."""
    return zero + v
