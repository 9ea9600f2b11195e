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
from .packed import PackedSigns

__version__ = "0.1.0"

__all__ = ["PackedSigns", "__version__"]
