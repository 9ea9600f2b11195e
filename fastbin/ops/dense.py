"""``x @ sign(W)`` for a dense layer's evaluation path (validated public API).

:func:`dense_sign_matmul` is the product both the trainable model
(``fastbin.nn.layers.Dense``) and the folded runtime (``fastbin.runtime``) call
for a binary layer on real-valued input, so that the two give bit-identical
results.

On float ``x`` it is *exact* by default (``fastbin.reference.dense_sign_matmul``:
``x`` rounded to a per-row grid of ``2**-43`` or so of its largest ``|x|``,
summed without rounding, rounded once; ``fastbin.kernels.sign_product.exact``),
so every backend, engine, batch size, thread count and CPU gives the same bits.
``exact=False`` gives the fastest product within float rounding instead, which a
folded sign stage uses together with ``refine_near_thresholds`` (exact where a
threshold is near). Which kernel runs is the planner's choice
(``fastbin.kernels.sign_product.plan_dense``, its ``DENSE_PATHS``): exact on rows
or by table lookups; fast on int8 rows (``"rows"``), BLAS on ±1 floats
(``"blas"``), table lookups on the nibbles of ``sign(W)`` made straight from the
real weights (``"lut"``), or :func:`fastbin.sign_matmul` on the packed bits
(``"packed"``).

uint8 ``x``: the exact int32 product of :func:`fastbin.sign_matmul` either way.
Mirrors ``fastbin.reference.dense_sign_matmul``.
"""
from __future__ import annotations

import numpy as np

from .._validate import FLOAT_DTYPES, check_array
from ..kernels.sign_product import DENSE_PATHS, Path, plan_dense
from ..kernels.sign_product.avx2_dwords import VECS1, dwords_of, dwords_scratch
from ..kernels.sign_product.avx512 import lut_scratch, nibbles_of, nibbles_of_weights
from ..kernels.sign_product.exact import grid_rows, grid_scratch
from ..packed import PackedSigns
from .convert import signs as _signs
from .matmul import sign_matmul
from .pack import pack_weights, unpack_signs

__all__ = ["dense_sign_matmul", "dense_product", "dense_product_kind", "exact_by_lookup"]

_UINT8 = np.dtype(np.uint8)
_INT8 = np.dtype(np.int8)


def dense_product_kind(m: int, n: int, k: int, dtype=None, exact: bool = False) -> str:
    """The name of the path (``fastbin.kernels.sign_product.DENSE_PATHS``) by which
    :func:`dense_sign_matmul` computes a float (m, k) @ sign(W) (k, n) of ``dtype``
    (None: not float32): for the fast product ``"rows"``, ``"lut"``/``"lut_parallel"``,
    ``"blas"`` or ``"packed"``. Depends only on the shapes, the dtype, the CPU and the
    Numba thread count."""
    return plan_dense(m, k, n, dtype, exact=exact).name


def dense_sign_matmul(x, w, *, signs=None, rows=None, nibbles=None, exact=True) -> np.ndarray:
    """``x @ sign(W)``: ``x`` (m, k) float32/float64 (result of its dtype) or
    uint8 (exact int32, as :func:`fastbin.sign_matmul`).

    ``w``: the real weights ``W`` (k, n) of ``x``'s dtype, or
    ``pack_weights(W)``. ``exact`` (float ``x``): True, the exact product
    (module doc; the same bits everywhere); False, the fastest product within
    float rounding. ``signs`` ((k, n) ±1 of ``x``'s dtype, C-contiguous) and
    ``rows`` ((n, k) ±1 int8, C-contiguous) are optional caches of ``sign(W)``
    and ``sign(W).T`` for the fast product (a folded model keeps them), and
    so is ``nibbles`` (``fastbin.kernels.sign_product.avx512.nibbles_of`` of the packed
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
    return dense_product(plan_dense(x.shape[0], k, n, x.dtype, exact=exact), x, w, signs, rows, nibbles)


def dense_product(path: Path, x, w, signs=None, rows=None, nibbles=None) -> np.ndarray:
    """``x @ sign(W)`` by the planned ``path`` (``plan_dense``) on checked float ``x``
    (m, k) C-contiguous and ``w`` (real (k, n) of ``x``'s dtype, or packed), deriving
    the form of ``sign(W)`` the path takes unless cached (``signs``, ``rows``,
    ``nibbles``: :func:`dense_sign_matmul`'s)."""
    packed = type(w) is PackedSigns
    k, n = (w.n_bits, w.rows) if packed else w.shape
    name = path.name
    form = DENSE_FORMS[name]
    if form == "nibbles":
        exact = name.startswith("exact")
        w_bits = (w if packed else pack_weights(w)).bits if packed or exact else None
        if nibbles is not None:
            nibbles = _checked_nibbles(nibbles, n, k)
        else:
            nibbles = nibbles_of_weights(w) if w_bits is None else nibbles_of(w_bits, k)
        out = np.empty((x.shape[0], n), x.dtype)
        if exact:
            path(x, w_bits, nibbles, out)
        elif name == "lut_rows":
            path(x, nibbles, out, *lut_scratch(k))
        else:
            path(x, nibbles, out)  # + the pass size the plan read (path.args)
        return out
    if form == "dwords":  # AVX2's word form, kept by the fused pass; made here per call
        out = np.empty((x.shape[0], n), x.dtype)
        path(x, dwords_of((w if packed else pack_weights(w)).bits, VECS1), out, *dwords_scratch(k))
        return out
    if form == "bits":  # the exact product row by row
        out = np.empty((x.shape[0], n), x.dtype)
        w_bits = (w if packed else pack_weights(w)).bits
        if name == "exact_rows":
            path(x, w_bits, out, grid_scratch(k))
        else:
            path(x, w_bits, out)
        return out
    if form == "grid":  # the exact product: grid integers times ±1 in float64 BLAS, rounded once
        q, steps = np.empty(x.shape, np.float64), np.empty((2, x.shape[0]), np.float64)
        grid_rows(x, q, steps)
        signs64 = unpack_signs(w, np.float64).T if packed else _signs(w).astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # rows with NaN/inf: their float64 sums
            dot = path(q, signs64)
        dot *= steps[0][:, None]
        dot *= steps[1][:, None]
        with np.errstate(over="ignore"):  # beyond the dtype's range: ±inf, as a float sum gives
            return dot.astype(x.dtype)
    if form == "rows":
        rows = _checked_rows(w, packed, rows, n, k)
        out = np.empty((x.shape[0], n), x.dtype)
        path(x, rows, out)
        return out
    if form == "signs":
        if signs is None:
            signs = np.ascontiguousarray(unpack_signs(w, x.dtype).T) if packed else _signs(w)
        elif type(signs) is not np.ndarray or signs.dtype != x.dtype or signs.shape != (k, n):
            raise ValueError(f"signs must be a {x.dtype} array of shape ({k}, {n})")
        return path(x, signs)  # np.matmul: x @ signs
    return sign_matmul(x, w if packed else pack_weights(w))  # "packed": sign_matmul's own plan


#: The form of ``sign(W)`` each path takes (``DENSE_PATHS``).
DENSE_FORMS = {name: form for name, (_, form) in DENSE_PATHS.items()}


def exact_by_lookup(m: int, n: int, k: int) -> bool:
    """Whether the exact float product of (m, k) rows and (k, n) signs runs on
    table lookups (the planner's ``"exact_lut"`` paths)."""
    return plan_dense(m, k, n, None, exact=True).name.startswith("exact_lut")


def _checked_nibbles(nibbles, n, k):
    """``nibbles``, a cached nibble form of sign(W) (k, n), checked."""
    shape = ((k + 3) // 4, -(-n // 64) * 64)
    if (type(nibbles) is not np.ndarray or nibbles.dtype != _UINT8 or not nibbles.flags.c_contiguous
            or nibbles.shape != shape):
        raise ValueError(f"nibbles must be the C-contiguous uint8 nibble form {shape} of sign(W) "
                         "(fastbin.kernels.sign_product.avx512.nibbles_of)")
    return nibbles


def _checked_rows(w, packed, rows, n, k):
    """``rows`` ((n, k) ±1 int8) as given (checked), or derived from ``w``."""
    if rows is None:
        return unpack_signs(w, _INT8) if packed else np.ascontiguousarray(_signs(w).T).astype(_INT8)
    if type(rows) is not np.ndarray or rows.dtype != _INT8 or rows.shape != (n, k) or not rows.flags.c_contiguous:
        raise ValueError(f"rows must be a C-contiguous int8 array of shape ({n}, {k})")
    return rows
