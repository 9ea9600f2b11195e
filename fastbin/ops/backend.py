"""The backend of a model: the functions it calls, from ``fastbin.ops`` (Numba
kernels) or from ``fastbin.reference`` (plain NumPy), name for name.

The function set is ``fastbin.ops.__all__``; the reference must define every
one of them (there is no fallback from one to the other).
"""
from __future__ import annotations

from .. import ops, reference

__all__ = ["BACKENDS", "Backend", "get_backend"]

#: Backend name -> the module its functions come from.
BACKENDS = {"fastbin": ops, "reference": reference}


class Backend:
    """The functions a model calls: ``"fastbin"`` (``fastbin.ops``) or
    ``"reference"`` (``fastbin.reference``); same names, same results (exact
    for integers, within the float tolerance for floats). ``functions`` lists
    the names: ``fastbin.ops.__all__``."""

    functions = tuple(ops.__all__)

    def __init__(self, name: str = "fastbin"):
        if name not in BACKENDS:
            raise ValueError(f"backend must be 'fastbin' or 'reference', got {name!r}")
        module = BACKENDS[name]
        missing = [fn for fn in self.functions if not callable(getattr(module, fn, None))]
        if missing:
            raise RuntimeError(f"{module.__name__} lacks backend functions {missing}")
        self.name = name
        #: Whether a binary layer trains on the packed and planned products (``fastbin.ops``:
        #: ``binary_matmul`` on ±1 input, ``dense_sign_matmul(exact=False)`` on real input)
        #: instead of BLAS on the float ``sign(W)`` (the reference: plain NumPy all the way down).
        self.sign_products = module is ops
        for fn in self.functions:
            setattr(self, fn, getattr(module, fn))

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


_CACHE: dict = {}


def get_backend(backend) -> Backend:
    """A :class:`Backend` from a name (cached) or an existing instance."""
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str):
        raise TypeError(f"backend must be 'fastbin' or 'reference', got {type(backend).__name__}")
    if backend not in _CACHE:
        _CACHE[backend] = Backend(backend)
    return _CACHE[backend]
