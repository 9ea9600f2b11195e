"""Elementwise conversions of the model paths.

* ``uint8_to_unit_f32(x, out)``: ``out = float32(x) / 255`` for 1-D uint8
  ``x`` and float32 ``out`` (flat views of C-contiguous arrays): a product
  with 1/255 plus one FMA residual correction, the same float32 as the
  correctly rounded division for all 256 values (checked at first use by
  ``fastbin.ops.convert`` and in the tests); one pass instead of NumPy's cast
  + divide.
* ``signs_into(x, out)``: ±1 signs of a flat float array, sign(0) = +1
  (``fastbin.bits``), in one pass instead of three NumPy passes.
"""
from __future__ import annotations

import numpy as np

from .._config import FASTMATH_EXACT, jit

__all__ = ["uint8_to_unit_f32", "signs_into"]


@jit(fastmath=set(FASTMATH_EXACT))
def uint8_to_unit_f32(x, out):
    # q = a * (1/255) is off by one ulp for 126 of the 256 values; one
    # correction with the residual a - 255 q (exact with an FMA) rounds it
    # like the division. FASTMATH_EXACT keeps LLVM from re-associating this
    # (and from turning a division into a multiply, ``arcp``). Callers check
    # the 256 values once (``fastbin.ops.convert``).
    r = np.float32(1.0 / 255.0)
    for t in range(x.size):
        a = np.float32(x[t])
        q = a * r
        e = a - q * np.float32(255.0)
        out[t] = q + e * r


@jit
def signs_into(x, out):
    """``out = sign(x)`` as ±1 of ``out``'s dtype, sign(0) = sign(-0.0) = +1
    and NaN -> +1 (as ``x < 0`` is false); 1-D flat views."""
    for t in range(x.size):
        out[t] = -1.0 if x[t] < 0 else 1.0
