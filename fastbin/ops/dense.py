"""``x @ sign(W)`` for a dense layer's evaluation path (validated public API).

:func:`dense_sign_matmul` is the product both the trainable model
(``fastbin.nn.layers.Dense``) and the folded runtime (``fastbin.runtime``) call
for a binary layer on real-valued input, so that the two give bit-identical
results.

On float ``x`` it is *exact* by default (``fastbin.reference.dense_sign_matmul``:
``x`` rounded to a per-row grid of ``2**-43`` or so of its largest ``|x|``,
summed without rounding, rounded once), so every backend, engine, batch size,
thread count and CPU gives the same bits: row by row on the jitted
``exact_sign_dot_rows`` (rows over threads when due), each output a signed
sum of the row's grid integers straight from the bits. ``exact=False`` gives the fastest product within float rounding
instead, which a folded sign stage uses together with
``fastbin.kernels.exact_dot.refine_near_thresholds`` (exact where a threshold
is near); it picks, with the thresholds in ``fastbin._config`` (``DENSE_*``):

* ``"rows"``: the few-row kernel ``sign_dot_rows`` on int8 signs (one row,
  or tiny products, where a BLAS call costs more than the product);
* ``"blas"``: NumPy's BLAS on the ±1 float matrix (a few rows, or wide W);
* ``"packed"``: :func:`fastbin.sign_matmul` on the packed bits (many rows and
  narrow W, or whenever its threaded kernel is due);
* ``"lut"`` (float32 where ``FLOAT_LUT``, many rows and outputs, checked first):
  the table-lookup kernel of ``fastbin.kernels.sign_lut`` on the nibbles of
  ``sign(W)``, made straight from the real weights (or the packed bits).

uint8 ``x``: the exact int32 product of :func:`fastbin.sign_matmul` either way.
Mirrors ``fastbin.reference.dense_sign_matmul``.
"""
from __future__ import annotations

import numpy as np

from .._config import (
    DENSE_BLAS_MAX_ROWS,
    DENSE_BLAS_MIN_COLS,
    DENSE_LUT_MIN_COLS,
    DENSE_LUT_MIN_K,
    DENSE_LUT_MIN_ROWS,
    DENSE_LUT_MIN_ROWS_SHORT,
    DENSE_ROWS_MAX_PRODUCT,
    EXACT_LUT_MIN_COLS,
    EXACT_LUT_MIN_COLS_LONG,
    EXACT_LUT_MIN_ROWS,
    FLOAT_LUT,
    use_threads,
)
from .._validate import FLOAT_DTYPES, check_array
from ..kernels.exact_dot import exact_sign_dot_rows, exact_sign_dot_rows_parallel, grid_scratch
from ..kernels.few_rows import sign_dot_rows
from ..kernels.sign_lut import (
    exact_lut_product,
    exact_lut_product_parallel,
    lut_product,
    lut_product_parallel,
    nibbles_of,
    weight_nibbles,
)
from ..packed import PackedSigns
from .convert import signs as _signs
from .matmul import sign_matmul
from .pack import pack_weights, unpack_signs

__all__ = ["dense_sign_matmul", "dense_product_kind", "exact_by_lookup"]

_UINT8 = np.dtype(np.uint8)
_INT8 = np.dtype(np.int8)
_FLOAT32 = np.dtype(np.float32)


def dense_product_kind(m: int, n: int, k: int, dtype=None) -> str:
    """How :func:`dense_sign_matmul` computes a float (m, k) @ sign(W) (k, n)
    of ``dtype`` (None: not float32): ``"rows"``, ``"lut"``, ``"blas"`` or
    ``"packed"`` (see the module docstring). Depends only on the shapes, the
    dtype, the CPU (``FLOAT_LUT``) and the Numba thread count."""
    if m == 1 or m * n <= DENSE_ROWS_MAX_PRODUCT:
        return "rows"
    if (FLOAT_LUT and dtype == _FLOAT32 and n >= DENSE_LUT_MIN_COLS and k >= DENSE_LUT_MIN_K
            and m >= (DENSE_LUT_MIN_ROWS if k >= 512 else DENSE_LUT_MIN_ROWS_SHORT)):
        return "lut"
    if m < DENSE_BLAS_MAX_ROWS:
        return "blas"
    if use_threads("sign_matmul", m * n * k, None):
        return "packed"
    return "blas" if n >= DENSE_BLAS_MIN_COLS else "packed"


def dense_sign_matmul(x, w, *, signs=None, rows=None, nibbles=None, exact=True) -> np.ndarray:
    """``x @ sign(W)``: ``x`` (m, k) float32/float64 (result of its dtype) or
    uint8 (exact int32, as :func:`fastbin.sign_matmul`).

    ``w``: the real weights ``W`` (k, n) of ``x``'s dtype, or
    ``pack_weights(W)``. ``exact`` (float ``x``): True, the exact product
    (module doc; the same bits everywhere); False, the fastest product within
    float rounding. ``signs`` ((k, n) ±1 of ``x``'s dtype, C-contiguous) and
    ``rows`` ((n, k) ±1 int8, C-contiguous) are optional caches of ``sign(W)``
    and ``sign(W).T`` for the fast product (a folded model keeps them), and
    so is ``nibbles`` (``fastbin.kernels.sign_lut.lut_nibbles`` of the packed
    signs, for the ``"lut"`` kind); what is missing is derived from ``w``."""
    if type(x) is not np.ndarray or x.ndim != 2:
        x = check_array("x", x, None, 2)
    packed = type(w) is PackedSigns
    if packed:
        k, n = w.n_bits, w.rows
    else:
        w = check_array("w", w, FLOAT_DTYPES, 2)
        k, n = w.shape
    if x.shape[1] != k:
        raise ValueError(f"x must have shape (m, {k}) to match w, got {x.shape}")
    if x.dtype == _UINT8:
        return sign_matmul(x, w if packed else pack_weights(w))
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x must have dtype uint8, float32 or float64, got {x.dtype}")
    if not packed and w.dtype != x.dtype:
        raise TypeError(f"w must have x's dtype {x.dtype}, got {w.dtype}")
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    if exact:
        out = np.empty((x.shape[0], n), x.dtype)
        w_bits = (w if packed else pack_weights(w)).bits
        threaded = use_threads("sign_matmul", x.shape[0] * n * k, None)
        if exact_by_lookup(x.shape[0], n, k):  # the same bits, by table lookups on chunks of the grid
            nibbles = nibbles_of(w_bits, k) if nibbles is None else _checked_nibbles(nibbles, n, k)
            (exact_lut_product_parallel if threaded else exact_lut_product)(x, w_bits, nibbles, out)
        elif threaded:  # row by row on the jitted kernel: as fast as float64 BLAS, without its grid passes
            exact_sign_dot_rows_parallel(x, w_bits, out)
        else:
            exact_sign_dot_rows(x, w_bits, out, grid_scratch(k))
        return out
    kind = dense_product_kind(x.shape[0], n, k, x.dtype)
    if kind == "lut":
        if nibbles is None:
            nibbles = nibbles_of(w.bits, k) if packed else weight_nibbles(w)
        else:
            nibbles = _checked_nibbles(nibbles, n, k)
        out = np.empty((x.shape[0], n), x.dtype)
        if use_threads("sign_matmul", x.shape[0] * n * k, None):
            lut_product_parallel(x, nibbles, out)
        else:
            lut_product(x, nibbles, out)
        return out
    if kind == "rows":
        rows = _checked_rows(w, packed, rows, n, k)
        out = np.empty((x.shape[0], n), x.dtype)
        sign_dot_rows(x, rows, out)
        return out
    if kind == "blas":
        if signs is None:
            signs = np.ascontiguousarray(unpack_signs(w, x.dtype).T) if packed else _signs(w)
        elif type(signs) is not np.ndarray or signs.dtype != x.dtype or signs.shape != (k, n):
            raise ValueError(f"signs must be a {x.dtype} array of shape ({k}, {n})")
        return x @ signs
    return sign_matmul(x, w if packed else pack_weights(w))


def exact_by_lookup(m: int, n: int, k: int) -> bool:
    """Whether the exact float product of (m, k) rows and (k, n) signs runs on
    table lookups (``_config.EXACT_LUT_*``), where ``FLOAT_LUT``."""
    return FLOAT_LUT and m >= EXACT_LUT_MIN_ROWS and n >= (EXACT_LUT_MIN_COLS if k < 2048 else EXACT_LUT_MIN_COLS_LONG)


def _checked_nibbles(nibbles, n, k):
    """``nibbles``, a cached nibble form of sign(W) (k, n), checked."""
    shape = ((k + 3) // 4, -(-n // 64) * 64)
    if (type(nibbles) is not np.ndarray or nibbles.dtype != _UINT8 or not nibbles.flags.c_contiguous
            or nibbles.shape != shape):
        raise ValueError(f"nibbles must be the C-contiguous uint8 nibble form {shape} of sign(W) "
                         "(fastbin.kernels.sign_lut.lut_nibbles)")
    return nibbles


def _checked_rows(w, packed, rows, n, k):
    """``rows`` ((n, k) ±1 int8) as given (checked), or derived from ``w``."""
    if rows is None:
        return unpack_signs(w, _INT8) if packed else np.ascontiguousarray(_signs(w).T).astype(_INT8)
    if type(rows) is not np.ndarray or rows.dtype != _INT8 or rows.shape != (n, k) or not rows.flags.c_contiguous:
        raise ValueError(f"rows must be a C-contiguous int8 array of shape ({n}, {k})")
    return rows
