"""Choosing the engine that runs a folded model.

Two engines, same methods, the same results bit for bit: ``"numba"``
(:mod:`fastbin.runtime._numba`, the jitted kernels) and ``"numpy"``
(:mod:`fastbin.runtime._numpy`, plain NumPy; imports no Numba). Every stage
of :mod:`fastbin.runtime.model` calls, on raw uint64 words (the bit
convention of ``fastbin.bits``):

* ``threshold(dot, thresholds, flip) -> words``: bit ``(i, j)`` = 1 where
  ``dot[i, j] < thresholds[j]`` (``flip[j]`` False) or ``> thresholds[j]``
  (``flip[j]`` True);
* ``dense_sign(a_words, w, thresholds, flip) -> words``: the same on
  ``dot = binary_matmul(a, w)`` (int64 thresholds);
* ``binary_dot(a_words, w, dtype) -> dot``: ``binary_matmul(a, w)`` as
  ``dtype`` (exact integers);
* ``unpack(words, n_bits, dtype) -> ±1``; ``sign_dot(x, weights)``: the exact
  ``x @ sign(W)`` for float/uint8 ``x`` (``fastbin.reference.dense_sign_matmul``:
  the same bits on both engines); ``sign_threshold_dot(x, weights, t)``: a float
  ``x @ sign(W)`` on the same side of every threshold ``t[j]`` as the exact one;
  ``signs``, ``pack_weights``, ``unpack_signs``;
* for conv models (:mod:`fastbin.runtime.conv`): ``patches(x, geometry, pad) -> rows``,
  the im2col of images (m, h, w, c) of any dtype (packed words included, padded with 0:
  one-padding), and ``pool_bits(words, size, stride, or_mask) -> words``, max pooling of
  packed signs (m, h, w, cw): the AND of each window's words, the OR on ``or_mask``'s bits;
* optionally (the numba engine) ``sign_dot_interval(x, weights) -> (lo, hi)``: bounds
  on the exact ``x @ sign(W)`` from a fast product, with which ``predict`` through a
  float tail certifies classes (``fastbin.runtime.model.certified_classes``).

:func:`get_engine` picks one: the ``engine`` argument, else ``$FASTBIN_ENGINE``,
else ``"numba"`` when Numba can be imported and ``"numpy"`` when it cannot.
The trainer's backend names map onto them: ``"fastbin"`` -> numba,
``"reference"`` -> numpy.
"""
from __future__ import annotations

import importlib
import os

__all__ = ["ENGINES", "get_engine", "engine_for"]

#: Engine name -> module and class.
ENGINES = {"numba": ("fastbin.runtime._numba", "NumbaEngine"), "numpy": ("fastbin.runtime._numpy", "NumpyEngine")}
_ALIASES = {"fastbin": "numba", "reference": "numpy"}
ENV = "FASTBIN_ENGINE"


def _load(name):
    module, cls = ENGINES[name]
    return getattr(importlib.import_module(module), cls)


def get_engine(engine=None):
    """The engine class for ``engine`` (``"numba"``, ``"numpy"``, an engine
    class, or None: ``$FASTBIN_ENGINE``, else numba if importable, else numpy).
    ``ValueError`` for an unknown name; ``ImportError`` when ``"numba"`` is
    asked for by name and Numba cannot be imported."""
    if engine is not None and not isinstance(engine, str):
        if all(hasattr(engine, m) for m in ("threshold", "dense_sign", "binary_dot", "sign_dot")):
            return engine
        raise TypeError(f"engine must be 'numba', 'numpy' or None, got {type(engine).__name__}")
    source = "engine"
    if engine is None:
        engine, source = os.environ.get(ENV) or None, f"${ENV}"
    if engine is None:
        try:
            return _load("numba")
        except ImportError:
            return _load("numpy")
    name = _ALIASES.get(engine, engine)
    if name not in ENGINES:
        raise ValueError(f"{source} must be 'numba' or 'numpy', got {engine!r}")
    try:
        return _load(name)
    except ImportError as exc:
        raise ImportError(f"the {name!r} engine needs Numba, which cannot be imported ({exc}); "
                          f"use engine='numpy'") from exc


def engine_for(backend_name: str):
    """The engine of a trainer backend name (``"fastbin"`` or ``"reference"``)."""
    if backend_name not in _ALIASES:
        raise ValueError(f"backend must be 'fastbin' or 'reference', got {backend_name!r}")
    return get_engine(_ALIASES[backend_name])
