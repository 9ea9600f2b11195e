"""The ``numba`` engine: the packed operations on the jitted kernels the planners
pick (``fastbin.kernels.binary_product``: unblocked ones for few rows;
``fastbin.kernels.sign_product``), and ``fastbin.ops.dense_sign_matmul``
for the real-valued product (exact, as the trainer's backends and the numpy
engine give it; before a threshold, the fast product refined near it).
Importing this module imports Numba (through ``fastbin._config``).
"""
from __future__ import annotations

import numba  # noqa: F401 - first: without Numba this engine fails here, before importing any kernel package
import numpy as np

from .. import _tables
from .._limits import EVAL_CHUNK
from ..bits import n_words_for
from ..kernels import binary_product, sign_product
from ..kernels.binary_product.threshold import threshold_pack
from ..kernels.conv.packed import patches as _patches
from ..kernels.conv.packed import pool_words as _pool_words
from ..kernels.pack import aligned_words, unpack_rows
from ..kernels.sign_product.avx512 import nibbles_of
from ..kernels.sign_product.exact import grid_scratch, refine_near_thresholds, sign_dot_interval
from ..ops.convert import signs as _signs
from ..ops.dense import dense_product, dense_sign_matmul
from ..ops.pack import pack_weights as _pack_weights
from ..reference import rounding_constants
from ._numpy import NumpyEngine

__all__ = ["NumbaEngine"]


def _words(rows, n_words):
    """Output words: 64-byte aligned for large outputs (``aligned_words``);
    small ones skip its ``ctypes`` call."""
    if rows * n_words < _tables.ENGINE["aligned_min_words"]:
        return np.empty((rows, n_words), np.uint64)
    return aligned_words(rows, n_words)


class NumbaEngine:
    """Packed stages on the jitted kernels (the trainer's ``"fastbin"`` backend)."""

    name = "numba"
    eval_chunk = EVAL_CHUNK

    @staticmethod
    def threshold(dot, thresholds, flip):
        out = _words(dot.shape[0], n_words_for(dot.shape[1]))
        threshold_pack(dot, thresholds, flip, out)
        return out

    @staticmethod
    def weight_forms(packed, signs, dtype):
        """``rows``: ±1 int8 (n_out, n_in), for the few-row kernel of ``dense_sign_matmul``;
        ``nibbles`` (where the planner wants them: ``sign_product.wants_nibbles``, else None):
        the table-lookup form (``fastbin.kernels.sign_product.avx512``) for few float rows
        before a threshold."""
        nibbles = nibbles_of(packed.bits, packed.n_bits) if sign_product.wants_nibbles(dtype) else None
        return {"rows": np.ascontiguousarray(signs.T).astype(np.int8), "nibbles": nibbles}

    @staticmethod
    def dense_sign(a, weights, thresholds, flip):
        w = weights.packed
        m = a.shape[0]
        out = _words(m, n_words_for(w.rows))
        path = binary_product.plan_sign(m, w.rows, a.shape[1], few=True)
        path.kernel(a, w.bits, w.n_bits, thresholds, flip, out)
        return out

    @staticmethod
    def binary_dot(a, weights, dtype):
        w = weights.packed
        m, n = a.shape[0], w.rows
        path = binary_product.plan(m, n, a.shape[1], few=True, tail=True)
        if path.name == "few_rows":  # exact integers written as floats: the same as astype
            dot = np.empty((m, n), dtype)
            path.kernel(a, w.bits, w.n_bits, dot)
            return dot
        dot = np.empty((m, n), np.int32)
        path.kernel(a, w.bits, w.n_bits, dot)
        return dot.astype(dtype)

    @staticmethod
    def unpack(words, n_bits, dtype):
        out = np.empty((words.shape[0], n_bits), dtype)
        unpack_rows(words, n_bits, out)
        return out

    @staticmethod
    def sign_dot(x, weights):
        """The exact ``x @ sign(W)`` (``fastbin.ops.dense_sign_matmul``)."""
        return dense_sign_matmul(x, weights.packed, nibbles=weights.nibbles)

    @staticmethod
    def fast_dot(x, weights):
        """The fastest float ``x @ sign(W)`` of C-contiguous float rows, within float rounding
        (``sign_product.plan_dense(exact=False)`` with the cached weight forms: few float32
        rows by table lookups on the cached nibbles where the CPU has them)."""
        path = sign_product.plan_dense(x.shape[0], x.shape[1], weights.packed.rows, x.dtype, exact=False,
                                       nibbles=weights.nibbles is not None)
        return dense_product(path, x, weights.packed, signs=weights.signs, rows=weights.rows,
                             nibbles=weights.nibbles)

    @staticmethod
    def sign_threshold_dot(x, weights, thresholds):
        """Float ``x @ sign(W)`` on the same side of each threshold as the exact
        product: the fastest product (``fast_dot``), then the exact one near
        a threshold (``fastbin.kernels.sign_product.exact.refine_near_thresholds``)."""
        x = np.ascontiguousarray(x)
        dot = NumbaEngine.fast_dot(x, weights)
        refine_near_thresholds(x, weights.packed.bits, dot, thresholds, *rounding_constants(x.dtype),
                               grid_scratch(x.shape[1]))
        return dot

    @staticmethod
    def sign_dot_interval(x, weights):
        """``(lo, hi)``, (m, n) of ``x``'s float dtype, holding the exact ``x @ sign(W)``
        (``lo <= sign_dot(x, weights) <= hi``) from the fastest product of float rows
        and its error bound (``fastbin.kernels.sign_product.exact.sign_dot_interval``): what
        ``predict`` through a float tail certifies its classes with."""
        x = np.ascontiguousarray(x)
        fast = NumbaEngine.fast_dot(x, weights)
        lo, hi = np.empty_like(fast), np.empty_like(fast)
        sign_dot_interval(x, fast, rounding_constants(x.dtype)[0], lo, hi)
        return lo, hi

    @staticmethod
    def signs(x):
        return _signs(x)

    @staticmethod
    def pack_weights(w):
        return _pack_weights(w)

    @staticmethod
    def patches(x, geometry, pad):
        """im2col of images ``x`` (m, h, w, c), any dtype, C-contiguous: (m * out_h * out_w,
        kh * kw * c) of ``x``'s dtype, the padding ``pad`` (``fastbin.kernels.conv.packed.patches``;
        ``geometry`` = ``(kh, kw, sh, sw, top, left, out_h, out_w, padding)``)."""
        kh, kw, sh, sw, top, left, out_h, out_w, _ = geometry
        out = np.empty((x.shape[0] * out_h * out_w, kh * kw * x.shape[3]), x.dtype)
        _patches(x, kh, kw, sh, sw, top, left, out_w, pad, out)
        return out

    @staticmethod
    def pool_bits(words, size, stride, or_mask):
        """Max pooling of packed signs ``words`` (m, h, w, cw), "valid": per word the AND of
        the window, the OR on the bits of ``or_mask`` (cw,) (``fastbin.kernels.conv.packed.pool_words``)."""
        (ph, pw), (sh, sw) = size, stride
        m, h, w, cw = words.shape
        out = np.empty((m, (h - ph) // sh + 1, (w - pw) // sw + 1, cw), np.uint64)
        _pool_words(words, ph, pw, sh, sw, or_mask, out)
        return out

    @staticmethod
    def fuse(model):
        """The one-call forward pass of ``model`` (``fastbin.runtime._fused``), or None for other kinds."""
        from ._fused import build

        return build(model)

    #: once per layer at load: the NumPy engine's (same values; loads no kernel from the cache)
    unpack_signs = NumpyEngine.unpack_signs
