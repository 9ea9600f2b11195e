"""The backend of a model (``fastbin`` kernels or the NumPy reference) and
the sign helpers shared by :mod:`fastbin.layers` and :mod:`fastbin.inference`
(re-exported by :mod:`fastbin.layers`)."""
from __future__ import annotations

import numpy as np

from ._options import jit_disabled, use_threads
from .kernels.model_kernels import signs_into

__all__ = ["BACKEND_FUNCTIONS", "Backend", "get_backend", "float_dot_kernel", "signs_rows_int8"]

_NO_JIT = jit_disabled()  # plain-Python kernels: keep NumPy for the signs

#: Functions a model takes from its backend (fast API names).
BACKEND_FUNCTIONS = (
    "pack_signs",
    "pack_weights",
    "unpack_signs",
    "binary_matmul",
    "sign_matmul",
    "binary_dense_sign",
    "softmax_cross_entropy",
    "linear_softmax_cross_entropy",
    "sgd_update",
    "adam_update",
)


class Backend:
    """The kernels a model calls: ``"fastbin"`` (Numba, ``import fastbin``) or
    ``"reference"`` (plain NumPy, ``fastbin.reference``); same names and results.

    ``missing`` lists fast functions not available in this build; those are
    taken from the reference (shown by ``repr`` and ``Model.summary``)."""

    def __init__(self, name: str = "fastbin"):
        if name not in ("fastbin", "reference"):
            raise ValueError(f"backend must be 'fastbin' or 'reference', got {name!r}")
        import fastbin
        from fastbin import reference

        self.name = name
        self.missing = []
        for fn in BACKEND_FUNCTIONS:
            if name == "fastbin" and hasattr(fastbin, fn):
                setattr(self, fn, getattr(fastbin, fn))
            else:
                if name == "fastbin":
                    self.missing.append(fn)
                setattr(self, fn, getattr(reference, fn))

    def __repr__(self) -> str:
        extra = f", reference for {', '.join(self.missing)}" if self.missing else ""
        return f"Backend({self.name!r}{extra})"


_BACKENDS: dict = {}


def get_backend(backend) -> Backend:
    """A :class:`Backend` from a name (cached) or an existing instance."""
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str):
        raise TypeError(f"backend must be 'fastbin' or 'reference', got {type(backend).__name__}")
    if backend not in _BACKENDS:
        _BACKENDS[backend] = Backend(backend)
    return _BACKENDS[backend]


def float_dot_kernel(m, n_out, n_in) -> str:
    """How :meth:`Dense.eval_dot` computes a float ``x @ sign(W)`` (m rows) on
    the fastbin backend: ``"rows"`` (``sign_dot_rows`` on int8 signs, one
    row or tiny products: 1.1 us vs BLAS 2.3 us at 1 x 784 -> 10, 15 us vs
    20 us at 1 x 784 -> 512), ``"blas"`` (BLAS on ±1 floats: 20 us vs 82 us
    for ``sign_matmul`` at 1 x 784 -> 512, which unpacks W on every call) or
    ``"packed"`` (``sign_matmul``: 22 us vs 43 us at 128 x 784 -> 10).
    Measured on Zen 4, one thread. With more than one Numba thread, large
    products go to ``sign_matmul``'s threaded kernel (2 cores: 34 ms vs 64 ms
    for one-thread BLAS at 8192 x 784 -> 512). The choice depends only on
    the shapes and the thread count, so the folded model (which calls the
    same function) makes the same one."""
    if m == 1 or m * n_out <= 64:
        return "rows"
    if m < 16:
        return "blas"
    if use_threads("sign_matmul", m * n_out * n_in, None):
        return "packed"
    return "blas" if n_out >= 64 else "packed"


def signs_rows_int8(w):
    """``sign(w).T`` as C-contiguous int8 (n_out, n_in): the weights of
    ``sign_dot_rows`` (4x fewer bytes than floats)."""
    return np.ascontiguousarray(_signs(w).T).astype(np.int8)


def _signs(x):
    """``sign(x)`` as +-1 in ``x``'s dtype, sign(0) = sign(-0.0) = +1 (NaN:
    +1): ``signs_into`` (one jitted pass) for C-contiguous arrays, else three
    in-place NumPy passes (10x faster than ``ones_like`` + masked ``copyto``)."""
    if x.flags.c_contiguous and not _NO_JIT:
        s = np.empty_like(x)
        signs_into(x.reshape(-1), s.reshape(-1))
        return s
    s = np.less(x, 0, out=np.empty_like(x))  # 1.0 where negative, else 0.0
    s *= -2
    s += 1
    return s


