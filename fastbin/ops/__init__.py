"""The validated public API: every function checks its arguments, allocates
its outputs, picks the serial or threaded kernel and calls ``fastbin.kernels``.

``__all__`` is also the function set of a model's backend
(``fastbin.ops.backend``): ``fastbin.reference`` defines every name in it, with
the same arguments and results.

Each name is loaded from its module on first use (module ``__getattr__``), so that
importing one of them (the runtime's products) does not import the others' kernels
(the losses, the optimizer updates, the batch norm of training).
"""
from __future__ import annotations

import importlib

__all__ = [
    "pack_signs",
    "pack_weights",
    "unpack_signs",
    "binary_matmul",
    "sign_matmul",
    "binary_dense_sign",
    "dense_sign_matmul",
    "signs",
    "unit_from_uint8",
    "softmax_cross_entropy",
    "linear_softmax_cross_entropy",
    "sgd_update",
    "adam_update",
    "batch_norm_train",
    "batch_norm_sign_train",
    "batch_norm_backward",
    "im2col",
    "col2im",
    "pack_patches",
    "max_pool2d",
    "max_pool2d_backward",
]

#: public name -> the submodule of ``fastbin.ops`` that defines it
_SOURCES = {
    **dict.fromkeys(["pack_signs", "pack_weights", "unpack_signs"], "pack"),
    **dict.fromkeys(["binary_matmul", "sign_matmul", "binary_dense_sign"], "matmul"),
    "dense_sign_matmul": "dense",
    **dict.fromkeys(["signs", "unit_from_uint8"], "convert"),
    **dict.fromkeys(["softmax_cross_entropy", "linear_softmax_cross_entropy"], "loss"),
    **dict.fromkeys(["sgd_update", "adam_update"], "updates"),
    **dict.fromkeys(["batch_norm_train", "batch_norm_sign_train", "batch_norm_backward"], "batch_norm"),
    **dict.fromkeys(["im2col", "col2im", "pack_patches", "max_pool2d", "max_pool2d_backward"], "conv"),
}


def __getattr__(name):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted({*globals(), *__all__})
