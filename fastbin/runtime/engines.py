"""The engines of a folded model: the packed-stage operations on raw uint64
words (the bit convention of ``fastbin.bits``), one class per backend.

Every stage of :mod:`fastbin.runtime.model` passes raw words from one binary
layer to the next (no ``PackedSigns`` objects, no re-validation: the words are
valid by construction) and calls the same four methods on its engine:

* ``threshold(dot, thresholds, flip) -> words``: bit ``(i, j)`` = 1 where
  ``dot[i, j] < thresholds[j]`` (``flip[j]`` False) or ``> thresholds[j]``
  (``flip[j]`` True);
* ``dense_sign(a_words, w, thresholds, flip) -> words``: the same on
  ``dot = binary_matmul(a, w)`` (int64 thresholds);
* ``binary_dot(a_words, w, dtype) -> dot``: ``binary_matmul(a, w)`` as
  ``dtype`` (exact integers);
* ``unpack(words, n_bits, dtype) -> ±1``.

:class:`NumbaEngine` (backend ``"fastbin"``) calls the jitted kernels,
unblocked ones for fewer than ``FEW_ROWS`` rows; :class:`NumpyEngine` (backend
``"reference"``) calls ``fastbin.reference``, plain NumPy.
"""
from __future__ import annotations

import numpy as np

from .. import reference
from .._config import ALIGNED_MIN_WORDS, FEW_ROWS, THREADED_MIN_COLS, use_threads
from ..bits import n_words_for
from ..kernels.binary_matmul import (
    binary_dense_sign_kernel,
    binary_dense_sign_parallel,
    binary_matmul_kernel,
    binary_matmul_parallel,
)
from ..kernels.few_rows import binary_dot_rows, dense_sign_rows
from ..kernels.pack import aligned_words, unpack_rows
from ..kernels.threshold import threshold_pack
from ..packed import PackedSigns

__all__ = ["NumbaEngine", "NumpyEngine", "engine_for"]


def _words(rows, n_words):
    """Output words: 64-byte aligned for large outputs (``aligned_words``);
    small ones skip its ``ctypes`` call."""
    if rows * n_words < ALIGNED_MIN_WORDS:
        return np.empty((rows, n_words), np.uint64)
    return aligned_words(rows, n_words)


class NumbaEngine:
    """Packed stages on the jitted kernels (backend ``"fastbin"``)."""

    name = "fastbin"

    @staticmethod
    def threshold(dot, thresholds, flip):
        out = _words(dot.shape[0], n_words_for(dot.shape[1]))
        threshold_pack(dot, thresholds, flip, out)
        return out

    @staticmethod
    def dense_sign(a, w, thresholds, flip):
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
    def binary_dot(a, w, dtype):
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


class NumpyEngine:
    """Packed stages in plain NumPy through ``fastbin.reference`` (backend
    ``"reference"``)."""

    name = "reference"

    @staticmethod
    def threshold(dot, thresholds, flip):
        negative = np.where(flip, dot > thresholds, dot < thresholds)
        return reference.pack_signs(np.where(negative, -1, 1).astype(np.int8)).bits

    @staticmethod
    def dense_sign(a, w, thresholds, flip):
        return reference.binary_dense_sign(PackedSigns(a, w.n_bits), w, thresholds, flip).bits

    @staticmethod
    def binary_dot(a, w, dtype):
        return reference.binary_matmul(PackedSigns(a, w.n_bits), w).astype(dtype)

    @staticmethod
    def unpack(words, n_bits, dtype):
        return reference.unpack_signs(PackedSigns(words, n_bits), dtype)


_ENGINES = {"fastbin": NumbaEngine, "reference": NumpyEngine}


def engine_for(backend_name: str):
    """The engine of a backend name (``"fastbin"`` or ``"reference"``)."""
    if backend_name not in _ENGINES:
        raise ValueError(f"backend must be 'fastbin' or 'reference', got {backend_name!r}")
    return _ENGINES[backend_name]
