"""The validated public API: every function checks its arguments, allocates
its outputs, picks the serial or threaded kernel and calls ``fastbin.kernels``.

``__all__`` is also the function set of a model's backend
(``fastbin.ops.backend``): ``fastbin.reference`` defines every name in it, with
the same arguments and results.
"""
from .batch_norm import batch_norm_backward, batch_norm_sign_train, batch_norm_train
from .conv import col2im, im2col, max_pool2d, max_pool2d_backward, pack_patches
from .convert import signs, unit_from_uint8
from .dense import dense_sign_matmul
from .loss import linear_softmax_cross_entropy, softmax_cross_entropy
from .matmul import binary_dense_sign, binary_matmul, sign_matmul
from .pack import pack_signs, pack_weights, unpack_signs
from .updates import adam_update, sgd_update

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
