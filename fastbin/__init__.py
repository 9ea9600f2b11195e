"""fastbin: binarized neural networks on the CPU, from NumPy.

The facade: the public names below, each loaded from its layer on first use
(so ``import fastbin.runtime`` alone does not load the trainer, and importing
fastbin compiles nothing: every kernel is compiled, and cached on disk, the
first time it is called). The layers, calls going one way (``tests/
test_layering.py`` holds it):

* ``fastbin.tools``: command line, demo, benchmark runner
* ``fastbin.nn``: the trainer (layers, models, optimizers, ``fit``, folding)
* ``fastbin.runtime``: folded models and the engines that run them
* ``fastbin.ops``: the validated public API; ``fastbin.io``: model files and
  datasets
* ``fastbin.kernels``: the raw jitted kernels, callable from your own
  ``@njit`` code (no validation: they trust their inputs)
* base: ``fastbin.bits`` (the bit convention), ``fastbin.packed``
  (``PackedSigns``), ``fastbin.reference`` (the same functions in plain NumPy:
  the specification), ``fastbin._config``, ``fastbin._validate``
"""
from __future__ import annotations

import importlib

from ._version import __version__

#: public name -> the module that defines it
_SOURCES = {
    **dict.fromkeys(
        ["pack_signs", "pack_weights", "unpack_signs", "binary_matmul", "sign_matmul", "binary_dense_sign",
         "dense_sign_matmul", "signs", "unit_from_uint8", "softmax_cross_entropy",
         "linear_softmax_cross_entropy", "sgd_update", "adam_update", "batch_norm_train", "batch_norm_sign_train",
         "batch_norm_backward"],
        "fastbin.ops",
    ),
    "PackedSigns": "fastbin.packed",
    **dict.fromkeys(["BatchIterator", "Dataset", "load_fashion_mnist", "load_mnist", "one_hot"],
                    "fastbin.io.datasets"),
    **dict.fromkeys(["ModelFileError", "load_arrays", "save_arrays"], "fastbin.io.modelfile"),
    **dict.fromkeys(["softmax_regression", "mlp", "SGD", "Adam", "fit"], "fastbin.nn"),
    "InferenceModel": "fastbin.runtime",
}
_RENAMED = {"load_model": ("fastbin.nn", "load")}
_SUBMODULES = ("reference", "kernels", "ops", "nn", "runtime", "io", "tools", "bits", "packed", "dask", "sklearn")

__all__ = [*_SOURCES, *_RENAMED, "reference", "__version__"]


def __getattr__(name):
    if name in _SOURCES:
        value = getattr(importlib.import_module(_SOURCES[name]), name)
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted({*globals(), *__all__, *_SUBMODULES})
