"""Elementwise conversions of the model paths (validated public API).

* :func:`signs` ``(x) -> ndarray``: ``sign(x)`` as ±1 in ``x``'s dtype and
  shape, ``sign(0) = sign(-0.0) = +1`` and NaN -> +1 (the bit convention of
  ``fastbin.bits``: "negative" means ``x < 0``).
* :func:`unit_from_uint8` ``(x, dtype=float32) -> ndarray``: raw pixels to
  ``dtype(x) / 255``, the correctly rounded division.

Both mirror ``fastbin.reference`` (same names, same results, bit for bit).
"""
from __future__ import annotations

import numpy as np

from .._config import jit_disabled
from .._validate import FLOAT_DTYPES, check_array
from ..kernels.convert import signs_into, uint8_to_unit_f32

__all__ = ["signs", "unit_from_uint8"]

_NO_JIT = jit_disabled()  # plain-Python kernels: NumPy's passes are faster
_FLOAT32 = np.dtype(np.float32)


def signs(x) -> np.ndarray:
    """``sign(x)`` as ±1 of ``x``'s dtype (float32/float64, any shape).

    C-contiguous input takes one jitted pass (``signs_into``), other layouts
    three in-place NumPy passes."""
    if type(x) is not np.ndarray or x.dtype not in FLOAT_DTYPES:
        x = check_array("x", x, FLOAT_DTYPES, contiguous=False, allow_empty=True)
    if x.flags.c_contiguous and not _NO_JIT:
        s = np.empty_like(x)
        signs_into(x.reshape(-1), s.reshape(-1))
        return s
    s = np.less(x, 0, out=np.empty_like(x))  # 1.0 where negative, else 0.0
    s *= -2
    s += 1
    return s


def unit_from_uint8(x, dtype=np.float32) -> np.ndarray:
    """``dtype(x) / 255`` for uint8 ``x`` (any shape), correctly rounded.

    float32 takes one jitted pass (``uint8_to_unit_f32``: checked against the
    division on all 256 values at first use, else NumPy is used); other dtypes
    ``np.divide``."""
    x = check_array("x", x, (np.uint8,), contiguous=True, allow_empty=True)
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    if dtype == _FLOAT32 and _uint8_kernel_ok():
        out = np.empty(x.shape, np.float32)
        uint8_to_unit_f32(x.reshape(-1), out.reshape(-1))
        return out
    return np.divide(x, dtype.type(255), dtype=dtype)


_UINT8_KERNEL_OK: list = []


def _uint8_kernel_ok() -> bool:
    """The kernel equals the division on all 256 values (checked once)."""
    if not _UINT8_KERNEL_OK:
        ok = not _NO_JIT  # as plain Python the loop is slow
        if ok:
            u = np.arange(256, dtype=np.uint8)
            out = np.empty(256, np.float32)
            uint8_to_unit_f32(u, out)
            ok = bool(np.array_equal(out, np.divide(u, np.float32(255), dtype=np.float32)))
        _UINT8_KERNEL_OK.append(ok)
    return _UINT8_KERNEL_OK[0]
