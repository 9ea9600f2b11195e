"""Checks the public API runs before any kernel: kernels trust their inputs.

Each helper raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong
shape, size or value) with a message that names the argument and says what was
expected. They return the array (possibly made C-contiguous) so callers can
write ``x = check_matrix("x", x, FLOAT_DTYPES)``.
"""
from __future__ import annotations

import numbers

import numpy as np

from .packed import PackedSigns

__all__ = [
    "FLOAT_DTYPES",
    "check_array",
    "check_matrix",
    "check_packed",
    "check_finite",
    "check_labels",
    "check_positive_float",
    "check_int",
    "check_fraction",
    "check_model_input",
    "check_same_dtype",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _names(dtypes) -> str:
    return ", ".join(str(np.dtype(d)) for d in dtypes)


def check_array(name, value, dtypes=None, ndim=None, *, contiguous=True, allow_empty=False, writeable=False):
    """``value`` must be an ndarray of one of ``dtypes`` with ``ndim`` dims.

    Non-contiguous input is copied to C order unless ``writeable`` (an in-place
    argument, which must already be C-contiguous and writeable)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    if dtypes is not None and value.dtype not in tuple(np.dtype(d) for d in dtypes):
        raise TypeError(f"{name} must have dtype {_names(dtypes)}, got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {value.shape}")
    if not allow_empty and value.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {value.shape}")
    if writeable:
        if not value.flags.c_contiguous:
            raise ValueError(f"{name} is updated in place and must be C-contiguous")
        if not value.flags.writeable:
            raise ValueError(f"{name} is updated in place and must be writeable")
    elif contiguous and not value.flags.c_contiguous:
        value = np.ascontiguousarray(value)
    return value


def check_matrix(name, value, dtypes=None, **kwargs):
    """:func:`check_array` with ``ndim=2``."""
    return check_array(name, value, dtypes, 2, **kwargs)


def check_packed(name, value) -> PackedSigns:
    """``value`` must be a :class:`~fastbin.packed.PackedSigns` with zero padding."""
    if not isinstance(value, PackedSigns):
        raise TypeError(
            f"{name} must be fastbin.PackedSigns (from pack_signs / pack_weights), "
            f"got {type(value).__name__}"
        )
    if value.rows == 0:
        raise ValueError(f"{name} must have at least one row")
    if not value.padding_is_zero():
        raise ValueError(f"{name} has non-zero padding bits past n_bits={value.n_bits}")
    return value


def check_finite(name, value) -> None:
    """No NaN or infinity in ``value`` (float arrays only)."""
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or infinity")


def check_same_dtype(**arrays) -> None:
    """All arrays share one dtype."""
    dtypes = {name: a.dtype for name, a in arrays.items()}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{n}={d}" for n, d in dtypes.items())
        raise TypeError(f"dtypes must match, got {listing}")


def check_labels(name, labels, m, c, dtype):
    """Integer class indices (m,) in [0, c), or finite non-negative targets
    (m, c) of ``dtype``. Returns them as ``intp`` (m,) or C-contiguous (m, c)."""
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(labels).__name__}")
    if labels.ndim == 1:
        if labels.dtype.kind not in "iu":
            raise TypeError(f"{name} of shape (m,) must hold integer class indices, got {labels.dtype}")
        if labels.shape[0] != m:
            raise ValueError(f"{name} must have shape ({m},) to match {m} rows, got {labels.shape}")
        if m and (labels.min() < 0 or labels.max() >= c):
            raise ValueError(f"{name} must be class indices in [0, {c}), got min {labels.min()} max {labels.max()}")
        return labels.astype(np.intp, copy=False)
    if labels.ndim == 2:
        if labels.shape != (m, c):
            raise ValueError(f"{name} as targets must have shape ({m}, {c}), got {labels.shape}")
        if labels.dtype != dtype:
            raise TypeError(f"{name} as targets must have dtype {dtype} (as the logits), got {labels.dtype}")
        if not np.isfinite(labels).all() or (labels < 0).any():
            raise ValueError(f"{name} as targets must be finite and non-negative")
        return np.ascontiguousarray(labels)
    raise ValueError(f"{name} must be class indices (m,) or targets (m, c), got shape {labels.shape}")


def check_positive_float(name, value, *, allow_zero=False) -> float:
    """A real, finite number > 0 (or >= 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return value


def check_int(name, value, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer (Python or NumPy, not bool) in ``[minimum, maximum]``;
    ``ValueError`` otherwise. Returns it as a Python int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")
    return int(value)


_UINT8 = np.dtype(np.uint8)


def check_model_input(x, n_in: int, dtype) -> np.ndarray:
    """A model's input batch ``x`` (m, n_in): raw uint8 pixels (meaning
    ``x / 255``) or float (scaled to [0, 1]; cast to the model's ``dtype``).
    ``TypeError`` for a non-array or another dtype kind, ``ValueError`` for
    the shape or a NaN or infinity (also one made by the cast). Returns it
    C-contiguous."""
    if type(x) is np.ndarray and x.ndim == 2 and x.shape[1] == n_in and x.flags.c_contiguous:
        if x.dtype == _UINT8:
            return x  # the common cases, in a few attribute tests
        if x.dtype == dtype:
            return _finite_input(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy.ndarray, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"x must have shape (m, {n_in}), got {x.shape}")
    if x.dtype == _UINT8:
        return np.ascontiguousarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"x must be float (scaled to [0, 1]) or raw uint8 pixels, got {x.dtype}")
    with np.errstate(over="ignore"):  # a value beyond dtype's range becomes inf: refused below
        return _finite_input(np.ascontiguousarray(x, dtype=dtype))


def _finite_input(x):
    if not np.isfinite(x).all():
        rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise ValueError(f"x must be finite (float scaled to [0, 1]): row {rows[0]} holds a NaN or an infinity"
                         f"{f' (and {rows.size - 1} more rows)' if rows.size > 1 else ''} in {x.dtype}")
    return x


def check_fraction(name, value) -> float:
    """A real number in ``[0, 1)`` (a decay rate, a momentum, a dropout rate); returns it as a float."""
    value = check_positive_float(name, value, allow_zero=True)
    if value >= 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value}")
    return value
