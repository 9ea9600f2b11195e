"""fastbin: binarized neural networks on the CPU, from NumPy.

Importing fastbin compiles nothing: every kernel is compiled (and cached on
disk) the first time it is called.

Public API (validated; see README.md):

* packing and binary products: ``pack_signs``, ``pack_weights``,
  ``unpack_signs``, ``binary_matmul``, ``sign_matmul``, ``binary_dense_sign``
* losses: ``softmax_cross_entropy``, ``linear_softmax_cross_entropy``
* in-place parameter updates: ``sgd_update``, ``adam_update``
* ``fastbin.reference``: the same functions in plain NumPy (the specification)
* ``fastbin.kernels``: the raw jitted kernels, callable from your own ``@njit``
  code (no validation: they trust their inputs)
"""
from . import reference
from .packed import PackedSigns
from .binary import binary_dense_sign, binary_matmul, pack_signs, pack_weights, sign_matmul, unpack_signs
from .loss import linear_softmax_cross_entropy, softmax_cross_entropy
from .updates import adam_update, sgd_update

from .datasets import BatchIterator, Dataset, load_fashion_mnist, load_mnist, one_hot
from .modelfile import ModelFileError, load_arrays, save_arrays
from .models import load as load_model, mlp, softmax_regression
from .optim import SGD, Adam
from .train import fit

__version__ = "0.1.0"

__all__ = [
    "pack_signs",
    "pack_weights",
    "unpack_signs",
    "binary_matmul",
    "sign_matmul",
    "binary_dense_sign",
    "softmax_cross_entropy", "linear_softmax_cross_entropy", "sgd_update", "adam_update",
    "BatchIterator", "Dataset", "load_fashion_mnist", "load_mnist", "one_hot",
    "ModelFileError", "load_arrays", "save_arrays",
    "softmax_regression", "mlp", "load_model", "SGD", "Adam", "fit",
    "PackedSigns", "reference", "__version__"]
