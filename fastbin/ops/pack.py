"""Packing signs to bits and back: the validated public API.

Each function mirrors the function of the same name in ``fastbin.reference``
(same arguments, same results); the bit layout is ``fastbin.bits``'. The
functions check their arguments, allocate outputs (64-byte aligned), pick the
serial or threaded kernel and call ``fastbin.kernels.pack``.
"""
from __future__ import annotations

import numpy as np

from .._config import use_threads
from .._validate import FLOAT_DTYPES, check_packed
from ..bits import aligned_empty, n_words_for
from ..kernels.pack import aligned_words, pack_columns, pack_rows, pack_rows_parallel, padding_is_zero, unpack_rows
from ..packed import PackedSigns

__all__ = ["pack_signs", "pack_weights", "unpack_signs", "check_packed_lean"]


def _check_signable(name, x):
    """A non-empty 2-D array of float or signed-integer dtype (any strides)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.kind not in "fi":
        raise TypeError(f"{name} must have a float or signed integer dtype, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    if x.dtype.kind == "f" and x.dtype not in FLOAT_DTYPES:
        if x.dtype.itemsize <= 8:
            # float16 (Numba has no half floats) or a byte-swapped float: the
            # native float32/float64 copy keeps every value, so every sign.
            x = x.astype(np.float64 if x.dtype.itemsize == 8 else np.float32)
        else:
            # long double: a float64 copy could round -1e-400 to -0.0 (+1).
            if np.isnan(x).any():
                raise ValueError(f"{name} contains NaN: the sign of NaN is undefined")
            x = np.negative((x < 0).view(np.int8))
    elif not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))  # Numba needs native byte order
    return x


def _pack(name, x, along_rows: bool) -> PackedSigns:
    """Pack ``x`` (rows along the packed axis when ``along_rows``) without a
    transposed copy: an F-ordered matrix is packed as its C-ordered transpose."""
    if along_rows:
        rows, n_bits = x.shape
    else:
        n_bits, rows = x.shape
    bits = aligned_words(rows, n_words_for(n_bits))
    source = x if along_rows else x.T  # source: (rows, n_bits) view
    if source.flags.c_contiguous:
        if use_threads("pack_signs", source.size, None):
            nans = pack_rows_parallel(source, bits)
        else:
            nans = pack_rows(source, bits)
    else:
        # (rows, n_bits) is F-ordered, i.e. its transpose (n_bits, rows) is
        # C-ordered: pack that along columns; anything else gets one copy.
        transposed = source.T if source.T.flags.c_contiguous else np.ascontiguousarray(source.T)
        nans = pack_columns(transposed, bits)
    if nans:
        raise ValueError(f"{name} contains NaN: the sign of NaN is undefined")
    return PackedSigns.fresh(bits, n_bits)  # aligned_words: a new allocation


def pack_signs(x) -> PackedSigns:
    """Pack the signs of each row of ``x`` (m, k) into ``PackedSigns`` (m, k).

    ``x``: float32/float64 or signed integer, any strides. NaN raises
    ``ValueError``. Bits follow ``fastbin.bits``."""
    return _pack("x", _check_signable("x", x), along_rows=True)


def pack_weights(w) -> PackedSigns:
    """Pack ``w`` (k, n) for ``x @ sign(w)``: column ``j`` becomes packed row
    ``j`` along ``k`` (``pack_signs(w.T)`` without the transposed copy)."""
    return _pack("w", _check_signable("w", w), along_rows=False)


#: The dtypes the unpacking kernel writes directly (native byte order).
_KERNEL_DTYPES = frozenset(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.float32, np.float64))
_INT8 = np.dtype(np.int8)


def unpack_signs(packed, dtype=np.float32) -> np.ndarray:
    """The ±1 matrix (rows, n_bits) of ``dtype`` stored in ``packed``.

    ``dtype``: any float or signed integer dtype (±1 is exact in each); the
    ones Numba has no type for (float16, long double, non-native byte order)
    are unpacked to int8 first and converted."""
    check_packed_lean("packed", packed)
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a float or signed integer dtype, got {dtype!r}") from exc
    if dtype.kind not in "fi":
        raise TypeError(f"dtype must be a float or signed integer dtype, got {dtype}")
    out = aligned_empty(packed.shape, dtype)
    if dtype in _KERNEL_DTYPES:
        unpack_rows(packed.bits, packed.n_bits, out)
    else:
        signs = np.empty(packed.shape, _INT8)
        unpack_rows(packed.bits, packed.n_bits, signs)
        out[...] = signs
    return out


def check_packed_lean(name, p) -> None:
    """``p`` is a PackedSigns with at least one row and zero padding (the lean
    version of ``_validate.check_packed`` for the hot path)."""
    if type(p) is not PackedSigns:
        check_packed(name, p)  # raises TypeError unless a subclass
    if p.bits.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row")
    if not padding_is_zero(p.bits, p.n_bits):
        raise ValueError(f"{name} has non-zero padding bits past n_bits={p.n_bits}")
