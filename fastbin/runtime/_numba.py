"""The ``numba`` engine: the packed operations on the jitted kernels (unblocked
ones for fewer than ``FEW_ROWS`` rows), and ``fastbin.ops.dense_sign_matmul``
for the real-valued product (exact, as the trainer's backends and the numpy
engine give it; before a threshold, the fast product refined near it).
Importing this module imports Numba (through ``fastbin._config``).
"""
from __future__ import annotations

import numpy as np

from .._config import (
    ALIGNED_MIN_WORDS,
    EVAL_CHUNK,
    FEW_ROWS,
    FLOAT_LUT,
    THREADED_MIN_COLS,
    use_threads,
)
from ..bits import n_words_for
from ..kernels.binary_matmul import (
    binary_dense_sign_kernel,
    binary_dense_sign_parallel,
    binary_matmul_kernel,
    binary_matmul_parallel,
)
from ..kernels.exact_dot import grid_scratch, refine_near_thresholds, sign_dot_interval
from ..kernels.few_rows import binary_dot_rows, dense_sign_rows
from ..kernels.pack import aligned_words, unpack_rows
from ..kernels.sign_lut import lut_nibbles, lut_scratch, sign_dot_lut
from ..kernels.threshold import threshold_pack
from ..ops.convert import signs as _signs
from ..ops.dense import dense_sign_matmul
from ..ops.pack import pack_weights as _pack_weights
from ..reference import rounding_constants
from ._numpy import NumpyEngine

__all__ = ["NumbaEngine"]


def _words(rows, n_words):
    """Output words: 64-byte aligned for large outputs (``aligned_words``);
    small ones skip its ``ctypes`` call."""
    if rows * n_words < ALIGNED_MIN_WORDS:
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
        ``nibbles`` (float32 models where ``FLOAT_LUT``, else None): the table-lookup form
        (``fastbin.kernels.sign_lut``) for few float rows before a threshold."""
        nibbles = lut_nibbles(packed.bits, packed.n_bits) if FLOAT_LUT and dtype == np.float32 else None
        return {"rows": np.ascontiguousarray(signs.T).astype(np.int8), "nibbles": nibbles}

    @staticmethod
    def dense_sign(a, weights, thresholds, flip):
        w = weights.packed
        m = a.shape[0]
        out = _words(m, n_words_for(w.rows))
        if m < FEW_ROWS:
            kernel = dense_sign_rows
        elif use_threads("binary_matmul", m * w.rows * a.shape[1], None):
            kernel = binary_dense_sign_parallel
        else:
            kernel = binary_dense_sign_kernel
        kernel(a, w.bits, w.n_bits, thresholds, flip, out)
        return out

    @staticmethod
    def binary_dot(a, weights, dtype):
        w = weights.packed
        m, n = a.shape[0], w.rows
        if m < FEW_ROWS:  # exact integers written as floats: the same as astype
            dot = np.empty((m, n), dtype)
            binary_dot_rows(a, w.bits, w.n_bits, dot)
            return dot
        dot = np.empty((m, n), np.int32)
        threaded = n >= THREADED_MIN_COLS and use_threads("binary_matmul", m * n * a.shape[1], None)
        (binary_matmul_parallel if threaded else binary_matmul_kernel)(a, w.bits, w.n_bits, dot)
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
        (few float32 rows: the table lookups of ``fastbin.kernels.sign_lut`` on the cached
        nibbles where ``FLOAT_LUT``; else ``dense_sign_matmul(exact=False)`` with the caches)."""
        if weights.nibbles is not None and x.shape[0] < FEW_ROWS and x.dtype == np.float32:
            dot = np.empty((x.shape[0], weights.packed.rows), np.float32)
            sign_dot_lut(x, weights.nibbles, dot, *lut_scratch(x.shape[1]))
            return dot
        return dense_sign_matmul(x, weights.packed, signs=weights.signs, rows=weights.rows,
                                 nibbles=weights.nibbles, exact=False)

    @staticmethod
    def sign_threshold_dot(x, weights, thresholds):
        """Float ``x @ sign(W)`` on the same side of each threshold as the exact
        product: the fastest product (few float32 rows: the table lookups of
        ``fastbin.kernels.sign_lut`` where ``FLOAT_LUT``), then the exact one near
        a threshold (``fastbin.kernels.exact_dot.refine_near_thresholds``)."""
        x = np.ascontiguousarray(x)
        dot = NumbaEngine.fast_dot(x, weights)
        refine_near_thresholds(x, weights.packed.bits, dot, thresholds, *rounding_constants(x.dtype),
                               grid_scratch(x.shape[1]))
        return dot

    @staticmethod
    def sign_dot_interval(x, weights):
        """``(lo, hi)``, (m, n) of ``x``'s float dtype, holding the exact ``x @ sign(W)``
        (``lo <= sign_dot(x, weights) <= hi``) from the fastest product of float rows
        and its error bound (``fastbin.kernels.exact_dot.sign_dot_interval``): what
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
    def fuse(model):
        """The one-call forward pass of ``model`` (``fastbin.runtime._fused``), or None for other kinds."""
        from ._fused import build

        return build(model)

    #: once per layer at load: the NumPy engine's (same values; loads no kernel from the cache)
    unpack_signs = NumpyEngine.unpack_signs
