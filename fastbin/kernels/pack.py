"""Packing kernels: signs of real or integer matrices to bits, and back.

The layout of the packed words is the bit convention of ``fastbin.bits``.
All kernels trust their inputs and write into preallocated outputs:

* ``pack_rows(x, out) -> int``: ``x`` (m, k) C-contiguous, float or signed
  integer dtype; ``out`` uint64 (m, ceil(k/64)). Packs each row along ``k``.
  Returns a positive number if ``x`` holds a NaN, else 0 (always 0 for
  integers); where a NaN was, ``out`` is meaningless (the sign of NaN is
  undefined).
* ``pack_rows_parallel(x, out) -> int``: the same with rows split over threads.
* ``pack_columns(w, out) -> int``: ``w`` (k, n) C-contiguous; ``out`` uint64
  (n, ceil(k/64)). Packs each *column* along ``k`` (``out`` holds the rows of
  ``w.T``) without making a transposed copy. Returns the NaN count (as
  ``pack_rows``).
* ``unpack_rows(bits, n_bits, out)``: ``bits`` uint64 (m, n_words); ``out``
  (m, n_bits) of any real dtype receives -1 for bit 1 and +1 for bit 0.
* ``padding_is_zero(bits, n_bits) -> bool``: the padding bits are all 0.
* ``aligned_words(rows, n_words)``: a new uninitialised 64-byte aligned
  uint64 (rows, n_words) array (for packed outputs).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .._config import jit, jit_disabled, jit_parallel

__all__ = [
    "pack_rows",
    "pack_rows_parallel",
    "pack_columns",
    "unpack_rows",
    "padding_is_zero",
    "aligned_words",
]


def _mask_word_python(kind):
    def mask_word(x, flat):
        values = x.reshape(-1)[flat : flat + 64]
        bits = (values != values) if kind == "nan" else (values < 0)
        return np.uint64(sum(1 << b for b in range(64) if bits[b]))

    return mask_word


def _mask_word_llvm(kind):
    @intrinsic
    def mask_word(typingctx, x, flat):
        """Bit ``b`` of the uint64 result: ``x.flat[flat + b] < 0`` (kind
        "negative") or is NaN (kind "nan"), for ``b < 64``; ``x`` a
        C-contiguous float or signed integer array.

        One 64-element vector compare and a bitcast of the 64 x i1 mask to
        i64: ``vcmpps``/``kmov`` on AVX-512, ``movmskps``-style sequences
        elsewhere. ``x < 0`` is false for -0.0 (sign(0) = +1) and for NaN."""
        dtype = getattr(x, "dtype", None)
        if not (isinstance(x, types.Array) and x.layout == "C" and isinstance(dtype, (types.Float, types.Integer))):
            return None
        if kind == "nan" and not isinstance(dtype, types.Float):

            def no_nans(context, builder, signature, args):
                return ir.Constant(ir.IntType(64), 0)

            return types.uint64(x, types.intp), no_nans

        def codegen(context, builder, signature, args):
            array_value, flat_value = args
            array = context.make_array(signature.args[0])(context, builder, array_value)
            vec_type = ir.VectorType(context.get_data_type(dtype), 64)
            ptr = builder.bitcast(builder.gep(array.data, [flat_value]), vec_type.as_pointer())
            vec = builder.load(ptr, align=dtype.bitwidth // 8)
            if kind == "nan":
                mask = builder.fcmp_unordered("uno", vec, vec)
            elif isinstance(dtype, types.Float):
                mask = builder.fcmp_ordered("<", vec, ir.Constant(vec_type, None))
            else:
                mask = builder.icmp_signed("<", vec, ir.Constant(vec_type, None))
            return builder.bitcast(mask, ir.IntType(64))

        return types.uint64(x, types.intp), codegen

    return mask_word


_make_mask_word = _mask_word_python if jit_disabled() else _mask_word_llvm
_negative_word = _make_mask_word("negative")
_nan_word = _make_mask_word("nan")


@jit
def _pack_row(x, i, out):
    """Pack row ``i`` of C-contiguous ``x`` into ``out[i]``; return its NaN
    count. Whole words by 64-element vector compares (2x faster than a shifted
    OR loop for float32, 5-9x for int8). The tail word too, where 64 elements
    from its start still lie inside ``x`` (the elements past the row end are
    masked off, leaving the padding bits 0); bit by bit otherwise."""
    m, k = x.shape
    full = k // 64
    row = i * k
    nans = 0
    for t in range(full):
        out[i, t] = _negative_word(x, row + t * 64)
        nans += _nan_word(x, row + t * 64) != 0
    if full < out.shape[1]:
        base = full * 64
        if row + base + 64 <= m * k:
            keep = (np.uint64(1) << np.uint64(k - base)) - np.uint64(1)
            out[i, full] = _negative_word(x, row + base) & keep
            nans += (_nan_word(x, row + base) & keep) != 0
        else:
            word = np.uint64(0)
            for b in range(k - base):
                value = x[i, base + b]
                word |= np.uint64(value < 0) << np.uint64(b)
                nans += value != value
            out[i, full] = word
    return nans


@jit
def pack_rows(x, out):
    nans = 0
    for i in range(x.shape[0]):
        nans += _pack_row(x, i, out)
    return nans


@jit_parallel
def pack_rows_parallel(x, out):
    nans = 0
    for i in prange(x.shape[0]):
        nans += _pack_row(x, i, out)
    return nans


@jit
def pack_columns(w, out):
    k, n = w.shape
    n_words = out.shape[1]
    # One word per column at a time, built in a row-length buffer so the inner
    # loop runs along the contiguous rows of ``w`` (vectorised over columns).
    acc = np.empty(n, dtype=np.uint64)
    nans = 0
    for t in range(n_words):
        acc[:] = 0
        base = t * 64
        for b in range(min(64, k - base)):
            shift = np.uint64(b)
            for j in range(n):
                value = w[base + b, j]
                acc[j] |= np.uint64(value < 0) << shift
                nans += value != value
        for j in range(n):
            out[j, t] = acc[j]
    return nans


@jit
def unpack_rows(bits, n_bits, out):
    m, n_words = bits.shape
    for i in range(m):
        for t in range(n_words):
            word = bits[i, t]
            base = t * 64
            for b in range(min(64, n_bits - base)):
                bit = np.int64((word >> np.uint64(b)) & np.uint64(1))
                out[i, base + b] = 1 - 2 * bit


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def padding_is_zero(bits, n_bits):
    """True when every padding bit (past ``n_bits`` in the last word of each
    row of ``bits`` (rows, n_words)) is 0, as ``fastbin.bits`` requires.
    A kernel rather than NumPy: at 1 x 784 a NumPy reduction would cost more
    than the product it guards."""
    tail = n_bits % 64
    if tail == 0:
        return True
    mask = ~((np.uint64(1) << np.uint64(tail)) - np.uint64(1))
    last = bits.shape[1] - 1
    found = np.uint64(0)
    for i in range(bits.shape[0]):
        found |= bits[i, last] & mask
    return found == 0


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def aligned_words(rows, n_words):
    """Uninitialised uint64 (rows, n_words), C-contiguous, data 64-byte
    aligned: ``fastbin.packed.aligned_empty`` without its Python-level cost
    (it is called on every packed output)."""
    raw = np.empty(rows * n_words + 8, dtype=np.uint64)
    offset = ((-raw.ctypes.data) % 64) // 8
    return raw[offset : offset + rows * n_words].reshape((rows, n_words))
