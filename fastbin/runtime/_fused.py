"""One compiled call per batch on the numba engine: the fused forward pass of
the commonest deployed kind, a chain of sign stages followed by a float tail
that is exactly ``[BinaryDense (+ BatchNormOp)]`` (the fully binary MLP), or
that tail alone (binary softmax regression).

:func:`build` returns a :class:`Fused` for such an
:class:`~fastbin.runtime.model.InferenceModel` (None for any other kind); the
model then sends every batch it takes (:meth:`Fused.takes`) to one jitted
function, which runs every stage row by row:

* the first layer on uint8 rows: the row's bit planes (``_lanes.plane_words``) against
  8 rows of W per load of the planes (``sign_product.plane_block.plane_sums``: an AND
  with a broadcast word, ``vpopcntq`` and an add per word and output, one transposing
  tree per 8 outputs; exact integers; on AArch64, ``_config.UINT8_MASK_ROWS``, the pixel
  sums under byte masks of ``sign_product.uint8_rows``, 4 rows of W at a time, the same
  integers; on x86 with AVX2 and no vector popcount, ``_config.FUSED_BYTE_TABLES``, 16-entry
  byte tables of the row's nibbles looked up at W's nibbles, 64 outputs per block:
  ``sign_product.nibble_block_avx2``) and the stage's int64 ``"uint8"`` thresholds (or, tail
  first, the logits);
* on float rows: ``dot = x @ sign(W)`` as the stage path gets it: tail
  first, the exact product (``exact_sign_dot_rows``); before the float
  thresholds of a sign stage, the fast product the planner picks
  (``fastbin.kernels.sign_product.plan_dense``: ``"lut_rows"``, the table
  lookups of ``sign_dot_lut`` on the cached nibbles, and ``"rows"``,
  ``sign_dot_rows``, inside the fused function; else ``dense_sign_matmul(...,
  exact=False)`` handed in) refined to the exact product near each threshold
  (``refine_row`` with the thresholds' float64 values and slack made once at build,
  as ``refine_near_thresholds`` makes them per call), so the signs are the exact
  product's;
* packed stages: ``k - 2 * popcount(a ^ w)`` (8 rows of w per load of ``a``:
  ``binary_product.count_block.xor_counts``; on AArch64, ``_config.XOR_COUNT_ROWS4``,
  4 rows in byte lanes; with ``FUSED_BYTE_TABLES``, byte tables of ``a`` looked up at w's
  nibbles, ``binary_product.count_block_avx2``) and the int64 ``"packed"`` thresholds (exact);
* the tail: ``dot * scale + bias`` (``fastbin.reference.dense_affine``) then
  ``(z - mean) * k + beta`` (``bn_affine``), each operation one IEEE
  operation in the model dtype, in that order, each result passed through
  ``opaque`` (``fastbin.kernels.intrinsics``) so that LLVM neither contracts two of them to an FMA
  nor reassociates them (Numba puts the kernels' ``contract``/``reassoc``
  flags on every float operation; without ``_opaque`` LLVM formed FMAs and
  the logits differed in the last bit); so the logits are those of the stage
  path bit for bit. ``predict`` takes each row's argmax in the same call
  (NumPy's: the first maximum, a NaN wins).

The per-stage arrays travel as a few flat arrays plus offsets (``ints``:
header, stage records and int64 thresholds; ``floats``: float thresholds and
the tail's constants; ``wflat``: the packed weights after the first layer).
Scratch (bit-plane and activation words, the few-row float dot, the exact
product's grid row, a row of logits) is per thread (``threading.local``) and reused across calls, so
concurrent calls are safe and a batch of one allocates only its output.

Batches of ``few_rows()`` rows (``fastbin.kernels.sign_product``) or more keep the stage path (its blocked and
threaded kernels; :meth:`Fused.takes`).
"""
from __future__ import annotations

import threading

import numpy as np
from numba import types
from numba.extending import overload

from .. import _tables
from .._config import BYTE_POPCOUNT_LANES, FUSED_BYTE_TABLES, UINT8_MASK_ROWS, XOR_COUNT_ROWS4, jit
from ..bits import n_words_for
from ..kernels.binary_product.avx2 import tables_of as _tables_of
from ..kernels.binary_product.count_block import COLS as _COUNT_COLS
from ..kernels.binary_product.count_block import xor_bits as _xor_bits
from ..kernels.binary_product.count_block import xor_counts as _xor_counts
from ..kernels.binary_product.count_block_avx2 import ROWS as _COUNT_ROWS
from ..kernels.binary_product.count_block_avx2 import panels_of as _count_panels
from ..kernels.binary_product.count_block_avx2 import xor_dots as _xor_dots
from ..kernels.binary_product.rows4 import xor_counts4 as _xor_counts4
from ..kernels.intrinsics import opaque as _opaque
from ..kernels.intrinsics import threshold_word as _threshold_word
from ..kernels.intrinsics import to_float as _to_float
from ..kernels.intrinsics import xor_count as _xor_count
from ..kernels.sign_product import few_rows, plan_dense, wants_dwords
from ..kernels.sign_product._lanes import plane_dot, plane_words
from ..kernels.sign_product.avx2_dwords import VECS1 as _VECS1
from ..kernels.sign_product.avx2_dwords import dwords_of, dwords_scratch, sign_dot_dwords
from ..kernels.sign_product.avx512 import lut_scratch, sign_dot_lut
from ..kernels.sign_product.exact import exact_sign_dot_rows, grid_scratch, refine_row
from ..kernels.sign_product.nibble_block_avx2 import ROWS as _TABLE_ROWS
from ..kernels.sign_product.nibble_block_avx2 import panels_of as _u8_panels
from ..kernels.sign_product.nibble_block_avx2 import row_tables as _row_tables
from ..kernels.sign_product.nibble_block_avx2 import table_dots as _table_dots
from ..kernels.sign_product.plane_block import COLS as _PLANE_COLS
from ..kernels.sign_product.plane_block import plane_bits as _plane_bits
from ..kernels.sign_product.plane_block import plane_sums as _plane_sums
from ..kernels.sign_product.portable import sign_dot_rows
from ..kernels.sign_product.uint8_rows import mask_sums1 as _mask_sums1
from ..kernels.sign_product.uint8_rows import mask_sums4 as _mask_sums4
from ..kernels.sign_product.uint8_rows import row_total as _row_total
from ..ops.dense import dense_sign_matmul
from ..reference import rounding_constants
from .model import BatchNormOp, BinaryDense, FloatStage, SignStage

__all__ = ["Fused", "build"]

_UINT8 = np.dtype(np.uint8)

# header of ``ints`` (positions)
_TAIL_FIRST, _N_PACKED, _N0, _U8_THR, _F_THR, _MAX_WORDS, _ZERO = range(7)  # ints[_ZERO] == 0
#: the first layer's byte-table panels in ``wflat`` (``_TABLES``; a packed stage's follow its w)
_U8_PANELS = 7
# tail record: ints[_TAIL + field]
_TAIL = 8
_T_W, _T_N, _T_NW, _T_BITS, _T_SCALE_F, _T_SCALE_U8, _T_BIAS, _T_BN = range(8)
# packed stage records: ints[_STAGES + 5 * s + field]
_STAGES = 16
_S_W, _S_N, _S_NW, _S_BITS, _S_THR = range(5)
#: 8 outputs per load of the planes or activation words (``plane_block``, ``count_block``) where
#: the CPU has a vector popcount (``vpopcntq``; 32 zmm registers); without it (AVX2: 16 ymm, the
#: popcounts built from byte lookups) the 8 accumulators spilled and one output at a time was
#: faster (znver3 code on Zen 5: float rows 21.2 us against 17.8 us). A compile-time choice keyed
#: by the CPU like the cache (``_config.BYTE_POPCOUNT_LANES``).
_BLOCKS = not BYTE_POPCOUNT_LANES
#: length of the int64 scratch of ``plane_sums`` and ``xor_counts``
_SUMS = max(_PLANE_COLS, _COUNT_COLS)
#: The first layer on uint8 rows and the packed stages by 16-entry byte tables (``vpshufb``:
#: ``sign_product.nibble_block_avx2``, ``binary_product.count_block_avx2``) on x86-64 with AVX2
#: and no vector popcount (``_config.FUSED_BYTE_TABLES``, a compile-time choice like ``_BLOCKS``).
#: Their panels of W are made at build and kept in ``wflat``; their tables and int32 dots use the
#: scratch past the activation words (``extra``).
_TABLES = FUSED_BYTE_TABLES


# ---------------------------------------------------------------------------
# AVX2: byte tables (compiled only where _TABLES: the pshufb intrinsics exist on x86 only)
# ---------------------------------------------------------------------------
@jit
def _groups(n, rows):
    """Panels of 32 outputs for ``n`` outputs, a multiple of ``rows``."""
    return -(-n // (32 * rows)) * rows


@jit
def _first_tables_impl(row, n0, n_words, wflat, ints, floats, tail_first, at, extra, a, out_row):
    steps = 8 * n_words
    groups = _groups(n0, _TABLE_ROWS)
    p0 = ints[_U8_PANELS]
    panels = wflat[p0 : p0 + groups * steps * 8].view(np.uint8).reshape((groups, steps, 64))
    tabs = extra[: 8 * steps].view(np.uint8).reshape((steps, 64))
    dots = extra[8 * steps : 8 * steps + 16 * groups].view(np.int32).reshape((1, 32 * groups))
    total = _row_tables(row, tabs)
    for g in range(0, groups, _TABLE_ROWS):
        _table_dots(panels, g, tabs, total, dots)
    if tail_first:
        scale_at = ints[_TAIL + _T_SCALE_U8]
        for j in range(n0):
            out_row[j] = _affine(_to_float(out_row[0], dots[0, j]), j, ints, floats, scale_at)
    else:
        sign, signed = ints[at : at + n0], ints[at + n0 : at + 2 * n0]
        for word in range((n0 + 63) // 64):
            j0 = word * 64
            a[word] = _threshold_word(dots, 0, j0, min(64, n0 - j0), sign, signed)


def _first_tables(row, n0, n_words, wflat, ints, floats, tail_first, at, extra, a, out_row):
    """The first layer on uint8 ``row`` by byte tables (``nibble_block_avx2``): tail first, the
    logits into ``out_row``; else the first sign stage's words into ``a``. In jitted code a no-op
    where not ``_TABLES`` (never called there)."""
    _first_tables_impl(row, n0, n_words, wflat, ints, floats, tail_first, at, extra, a, out_row)


@overload(_first_tables)
def _first_tables_jit(row, n0, n_words, wflat, ints, floats, tail_first, at, extra, a, out_row):
    if _TABLES:
        return lambda row, n0, n_words, wflat, ints, floats, tail_first, at, extra, a, out_row: _first_tables_impl(
            row, n0, n_words, wflat, ints, floats, tail_first, at, extra, a, out_row)
    return lambda row, n0, n_words, wflat, ints, floats, tail_first, at, extra, a, out_row: None


@jit
def _stage_tables_impl(a, wflat, p0, n, n_bits, ints, at, out, extra):
    n_words = a.shape[0]
    steps = 8 * n_words
    groups = _groups(n, _COUNT_ROWS)
    panels = wflat[p0 : p0 + groups * steps * 8].view(np.uint8).reshape((groups, steps, 64))
    tabs = extra[: 4 * steps].view(np.uint8).reshape((1, steps, 32))
    dots = extra[4 * steps : 4 * steps + 16 * groups].view(np.int32).reshape((1, 32 * groups))
    _tables_of(a.reshape((1, n_words)), 0, 0, steps, tabs, 0)
    for g in range(0, groups, _COUNT_ROWS):
        _xor_dots(panels, g, tabs, n_bits, dots)
    sign, signed = ints[at : at + n], ints[at + n : at + 2 * n]
    for word in range(out.shape[0]):
        j0 = word * 64
        out[word] = _threshold_word(dots, 0, j0, min(64, n - j0), sign, signed)


def _stage_tables(a, wflat, p0, n, n_bits, ints, at, out, extra):
    """A packed stage by byte tables (``count_block_avx2``): ``out`` the words of
    ``_packed_stage``, the panels of its w at ``wflat[p0:]``. In jitted code a no-op where not
    ``_TABLES``."""
    _stage_tables_impl(a, wflat, p0, n, n_bits, ints, at, out, extra)


@overload(_stage_tables)
def _stage_tables_jit(a, wflat, p0, n, n_bits, ints, at, out, extra):
    if _TABLES:
        return lambda a, wflat, p0, n, n_bits, ints, at, out, extra: _stage_tables_impl(
            a, wflat, p0, n, n_bits, ints, at, out, extra)
    return lambda a, wflat, p0, n, n_bits, ints, at, out, extra: None


def _table_words(n0, n_words0, stages):
    """Words of ``extra`` scratch the byte tables take: the first layer's tables (64 bytes a
    step) and dots, or a packed stage's ((n, n_words) each in ``stages``: 32 bytes a step)."""
    need = 8 * 8 * n_words0 + 16 * (-(-n0 // (32 * _TABLE_ROWS)) * _TABLE_ROWS)
    for n, n_words in stages:
        need = max(need, 4 * 8 * n_words + 16 * (-(-n // (32 * _COUNT_ROWS)) * _COUNT_ROWS))
    return need


# ---------------------------------------------------------------------------
# The kernels
# ---------------------------------------------------------------------------
@jit
def _affine(z, j, ints, floats, scale_at):
    """The tail's float formula for output ``j`` on ``z`` (model dtype)."""
    n, zero = ints[_TAIL + _T_N], ints[_ZERO]
    z = _opaque(z, zero)
    if scale_at >= 0:
        z = _opaque(z * floats[scale_at + j], zero)
    bias_at = ints[_TAIL + _T_BIAS]
    if bias_at >= 0:
        z = _opaque(z + floats[bias_at + j], zero)
    bn_at = ints[_TAIL + _T_BN]
    if bn_at >= 0:
        z = _opaque(z - floats[bn_at + j], zero)
        z = _opaque(z * floats[bn_at + n + j], zero)
        z = _opaque(z + floats[bn_at + 2 * n + j], zero)
    return z


@jit
def _argmax(row):
    best, value = 0, row[0]
    if value != value:
        return 0
    for j in range(1, row.shape[0]):
        v = row[j]
        if v != v:
            return j
        if v > value:
            best, value = j, v
    return best


@jit
def _stage_bit(count, n_bits, ints, at, n, j, j0):
    """Bit ``j - j0`` of a packed stage's word: set where ``sign * (n_bits - 2 count) < signed``."""
    if ints[at + j] * (n_bits - 2 * count) < ints[at + n + j]:
        return np.uint64(1) << np.uint64(j - j0)
    return np.uint64(0)


@jit
def _packed_stage(a, w, n_bits, ints, at, out, counts):
    """``out`` words: bit j set where ``sign * (n_bits - 2 popcount(a ^ w[j])) < signed``
    (``XOR_COUNT_ROWS4``: 4 rows of ``w`` per load of ``a``; else ``_COUNT_COLS`` rows per
    ``xor_counts``, ``counts`` its (``_COUNT_COLS``,) int64 scratch; the same counts)."""
    n, n_words = w.shape
    for word in range(out.shape[0]):
        j0 = word * 64
        j1 = min(n, j0 + 64)
        bits = np.uint64(0)
        j4 = j0
        if _BLOCKS and not XOR_COUNT_ROWS4:
            for j in range(j0, j1, _COUNT_COLS):
                bits |= _xor_bits(a, w, j, n_bits, ints, at) << np.uint64(j - j0)
            j4 = j1
        elif XOR_COUNT_ROWS4:
            j4 = j0 + (j1 - j0) // 4 * 4
            for j in range(j0, j4, 4):
                c0, c1, c2, c3 = _xor_counts4(a, 0, w, j)
                bits |= _stage_bit(c0, n_bits, ints, at, n, j, j0)
                bits |= _stage_bit(c1, n_bits, ints, at, n, j + 1, j0)
                bits |= _stage_bit(c2, n_bits, ints, at, n, j + 2, j0)
                bits |= _stage_bit(c3, n_bits, ints, at, n, j + 3, j0)
        for j in range(j4, j1):
            bits |= _stage_bit(_xor_count(a, w, j), n_bits, ints, at, n, j, j0)
        out[word] = bits


@jit
def _chain_and_tail(a, b, wflat, ints, floats, out_row, counts, extra):
    """The packed stages after the first one (words in ``a``, ``b`` the other
    buffer), then the tail's logits into ``out_row`` (``counts``: a (``_COUNT_COLS``,) int64
    scratch; ``extra``: the byte tables' scratch)."""
    for s in range(ints[_N_PACKED]):
        r = _STAGES + 5 * s
        n, n_words = ints[r + _S_N], ints[r + _S_NW]
        w0 = ints[r + _S_W]
        w = wflat[w0 : w0 + n * n_words].reshape((n, n_words))
        out = b[: (n + 63) // 64]
        if _TABLES:
            _stage_tables(a[:n_words], wflat, w0 + n * n_words, n, ints[r + _S_BITS], ints, ints[r + _S_THR], out,
                          extra)
        else:
            _packed_stage(a[:n_words], w, ints[r + _S_BITS], ints, ints[r + _S_THR], out, counts)
        a, b = out, a
    n, n_words, n_bits = ints[_TAIL + _T_N], ints[_TAIL + _T_NW], ints[_TAIL + _T_BITS]
    w0 = ints[_TAIL + _T_W]
    w = wflat[w0 : w0 + n * n_words].reshape((n, n_words))
    scale_at = ints[_TAIL + _T_SCALE_F]
    j4 = 0
    if _BLOCKS and not XOR_COUNT_ROWS4:
        for j in range(0, n, _COUNT_COLS):
            _xor_counts(a, w, j, n - 1, counts)
            for c in range(min(_COUNT_COLS, n - j)):
                out_row[j + c] = _affine(_to_float(out_row[0], n_bits - 2 * counts[c]), j + c, ints, floats, scale_at)
        j4 = n
    elif XOR_COUNT_ROWS4:
        j4 = n // 4 * 4
        for j in range(0, j4, 4):
            c0, c1, c2, c3 = _xor_counts4(a, 0, w, j)
            out_row[j] = _affine(_to_float(out_row[0], n_bits - 2 * c0), j, ints, floats, scale_at)
            out_row[j + 1] = _affine(_to_float(out_row[0], n_bits - 2 * c1), j + 1, ints, floats, scale_at)
            out_row[j + 2] = _affine(_to_float(out_row[0], n_bits - 2 * c2), j + 2, ints, floats, scale_at)
            out_row[j + 3] = _affine(_to_float(out_row[0], n_bits - 2 * c3), j + 3, ints, floats, scale_at)
    for j in range(j4, n):
        out_row[j] = _affine(_to_float(out_row[0], n_bits - 2 * _xor_count(a, w, j)), j, ints, floats, scale_at)


@jit(inline="always")
def _first_dots4(row, w0, j, total):
    """``row @ sign(w0_r)`` for ``r = j .. j + 3`` (exact int64; AArch64's byte-mask sums)."""
    s0, s1, s2, s3 = _mask_sums4(row, w0, j)
    return total - 2 * s0, total - 2 * s1, total - 2 * s2, total - 2 * s3


@jit(inline="always")
def _first_dot1(row, w0, j, total):
    """``row @ sign(w0_j)`` (exact int64; AArch64's byte-mask sums)."""
    return total - 2 * _mask_sums1(row, w0, j)


@jit(inline="always")
def _u8_bit(d, ints, at, n0, j, j0):
    """Bit ``j - j0`` of the first stage's word: set where ``sign * d < signed``."""
    if ints[at + j] * d < ints[at + n0 + j]:
        return np.uint64(1) << np.uint64(j - j0)
    return np.uint64(0)


@jit
def _first_layer_planes(row, w0, planes, tail_first, ints, floats, at, sums, a, out_row):
    """The first layer on uint8 ``row`` (k,) by its bit planes (``planes``: an (n_words, 8)
    uint64 scratch), ``_PLANE_COLS`` outputs per ``plane_sums``: tail first, the logits into
    ``out_row``; else the first sign stage's words into ``a``."""
    k = row.shape[0]
    n0, n_words = w0.shape
    total = 0
    for t in range(n_words):
        total += plane_words(row, t * 64, min(64, k - t * 64), planes, t)
    last = n0 - 1
    scale_at = ints[_TAIL + _T_SCALE_U8]
    for word in range((n0 + 63) // 64):
        j0 = word * 64
        j1 = min(n0, j0 + 64)
        bits = np.uint64(0)
        if not _BLOCKS:  # one output at a time (see _BLOCKS)
            for j in range(j0, j1):
                d = total - 2 * plane_dot(planes, w0, j)
                if tail_first:
                    out_row[j] = _affine(_to_float(out_row[0], d), j, ints, floats, scale_at)
                else:
                    bits |= _u8_bit(d, ints, at, n0, j, j0)
            j1 = j0
        for j in range(j0, j1, _PLANE_COLS):
            if tail_first:
                _plane_sums(planes, w0, j, last, sums)
                for c in range(min(_PLANE_COLS, j1 - j)):
                    d = total - 2 * sums[c]
                    out_row[j + c] = _affine(_to_float(out_row[0], d), j + c, ints, floats, scale_at)
            else:
                bits |= _plane_bits(planes, w0, j, total, ints, at) << np.uint64(j - j0)
        if not tail_first:
            a[word] = bits


@jit
def fused_uint8(x, w0, wflat, ints, floats, scratch, logits, labels, predict):
    """Every stage on uint8 rows ``x`` (m, n_in); logits into ``logits`` (m,
    n_classes), or with ``predict`` classes into ``labels`` (m,) (``logits``
    then a (1, n_classes) scratch row)."""
    m, k = x.shape
    n0, n_words = w0.shape
    planes = scratch[: n_words * 8].reshape((n_words, 8))
    width = ints[_MAX_WORDS]
    a = scratch[n_words * 8 : n_words * 8 + width]
    b = scratch[n_words * 8 + width : n_words * 8 + 2 * width]
    tail_first = ints[_TAIL_FIRST] == 1
    at = ints[_U8_THR]
    sums = np.empty(_SUMS, np.int64)  # plane_sums' and xor_counts' scratch
    extra = scratch[n_words * 8 + 2 * width :]  # the byte tables' (_TABLES)
    for i in range(m):
        row = x[i]
        out_row = logits[0] if predict else logits[i]
        if not UINT8_MASK_ROWS:
            if _TABLES:
                _first_tables(row, n0, n_words, wflat, ints, floats, tail_first, at, extra, a, out_row)
            else:
                _first_layer_planes(row, w0, planes, tail_first, ints, floats, at, sums, a, out_row)
            if not tail_first:
                _chain_and_tail(a, b, wflat, ints, floats, out_row, sums, extra)
            if predict:
                labels[i] = _argmax(out_row)
            continue
        total = _row_total(row)
        if tail_first:
            scale_at = ints[_TAIL + _T_SCALE_U8]
            n4 = n0 // 4 * 4
            for j in range(0, n4, 4):
                d0, d1, d2, d3 = _first_dots4(row, w0, j, total)
                out_row[j] = _affine(_to_float(out_row[0], d0), j, ints, floats, scale_at)
                out_row[j + 1] = _affine(_to_float(out_row[0], d1), j + 1, ints, floats, scale_at)
                out_row[j + 2] = _affine(_to_float(out_row[0], d2), j + 2, ints, floats, scale_at)
                out_row[j + 3] = _affine(_to_float(out_row[0], d3), j + 3, ints, floats, scale_at)
            for j in range(n4, n0):
                d = _first_dot1(row, w0, j, total)
                out_row[j] = _affine(_to_float(out_row[0], d), j, ints, floats, scale_at)
        else:
            for word in range((n0 + 63) // 64):
                j0 = word * 64
                j1 = min(n0, j0 + 64)
                j4 = j0 + (j1 - j0) // 4 * 4
                bits = np.uint64(0)
                for j in range(j0, j4, 4):
                    d0, d1, d2, d3 = _first_dots4(row, w0, j, total)
                    bits |= _u8_bit(d0, ints, at, n0, j, j0)
                    bits |= _u8_bit(d1, ints, at, n0, j + 1, j0)
                    bits |= _u8_bit(d2, ints, at, n0, j + 2, j0)
                    bits |= _u8_bit(d3, ints, at, n0, j + 3, j0)
                for j in range(j4, j1):
                    bits |= _u8_bit(_first_dot1(row, w0, j, total), ints, at, n0, j, j0)
                a[word] = bits
            _chain_and_tail(a, b, wflat, ints, floats, out_row, sums, extra)
        if predict:
            labels[i] = _argmax(out_row)


def _lut_dot(x, nib, dot, tab, acc):
    """``sign_dot_lut(x, nib, dot, tab, acc)`` on float32 rows and the nibbles ``nib``; in
    jitted code nothing where ``nib`` is None or the rows float64 (a model without the lookup
    form: ``fused_float`` never asks then, and the lookups' AVX-512 permutes are not
    compiled on a CPU without them)."""
    sign_dot_lut(x, nib, dot, tab, acc)


@overload(_lut_dot)
def _lut_dot_jit(x, nib, dot, tab, acc):
    if isinstance(nib, types.Array) and nib.ndim == 2 and x.dtype == types.float32:
        return lambda x, nib, dot, tab, acc: sign_dot_lut(x, nib, dot, tab, acc)
    return lambda x, nib, dot, tab, acc: None


#: how ``fused_float`` gets the first layer's product: handed in, or computed in the call by
#: ``sign_dot_rows``, by ``sign_dot_lut`` (the table lookups on the cached nibbles) or exactly
#: (``exact_sign_dot_rows``, a float tail first)
_GIVEN, _ROWS, _LUT, _EXACT, _DWORDS = range(5)


def _dwords_dot(x, wt, dot, tab, acc):
    """``sign_dot_dwords(x, wt, dot, tab, acc)`` (AVX2's 8-entry lookups on the kept word form
    ``wt``); in jitted code nothing unless ``wt`` is that form and the rows float32 (its
    ``vpermps`` is not compiled elsewhere)."""
    sign_dot_dwords(x, wt, dot, tab, acc)


@overload(_dwords_dot)
def _dwords_dot_jit(x, wt, dot, tab, acc):
    if isinstance(wt, types.Array) and wt.ndim == 3 and wt.dtype == types.uint32 and x.dtype == types.float32:
        return lambda x, wt, dot, tab, acc: sign_dot_dwords(x, wt, dot, tab, acc)
    return lambda x, wt, dot, tab, acc: None


@jit
def fused_float(x, rows, w0, nib, tab, acc, dot, how, f64, unit, near, wflat, ints, floats, scratch, logits, labels,
                predict):
    """Every stage on float rows ``x`` (m, n_in) of the model dtype. The first
    layer's ``dot`` (m, n0), by ``how`` (``_GIVEN``: as handed in; ``_ROWS``:
    ``sign_dot_rows(x, rows, dot)``; ``_LUT``: ``sign_dot_lut(x, nib, dot, tab, acc)``,
    ``nib`` the cached nibbles or None; ``_DWORDS``: ``sign_dot_dwords(x, nib, dot, tab, acc)``,
    ``nib`` AVX2's kept word form;
    ``_EXACT``: ``exact_sign_dot_rows(x, w0, dot, q)``, the logits of a tail first).
    A sign stage first: the fast product refined to the exact one near its float
    thresholds (``refine_row`` with ``t64``/``slack``, the thresholds in float64 and
    their two ulps, and ``near`` (n0,) bool scratch), as the stage path's
    ``refine_near_thresholds``. ``f64`` (2 n0 + k,) holds ``t64``, ``slack`` and ``q``, the
    grid scratch row of ``fastbin.kernels.sign_product.exact`` (one argument, not three:
    each costs the call's dispatch about 50 ns)."""
    m, k = x.shape
    n0 = dot.shape[1]
    t64, slack = f64[:n0], f64[n0 : 2 * n0]
    q = f64[2 * n0 : 2 * n0 + k].reshape((1, k))
    tail_first = ints[_TAIL_FIRST] == 1
    if how == _EXACT:
        exact_sign_dot_rows(x, w0, dot, q)
    elif how == _ROWS:
        sign_dot_rows(x, rows, dot)
    elif how == _DWORDS:
        _dwords_dot(x, nib, dot, tab, acc)
    elif how == _LUT:
        _lut_dot(x, nib, dot, tab, acc)
    if not tail_first:
        for i in range(m):
            refine_row(x[i], w0, dot[i], t64, slack, unit, q, near)
    width = ints[_MAX_WORDS]
    sums = np.empty(_SUMS, np.int64)  # xor_counts' scratch
    a = scratch[:width]
    b = scratch[width : 2 * width]
    extra = scratch[2 * width :]  # the byte tables' (_TABLES)
    at = ints[_F_THR]
    for i in range(m):
        out_row = logits[0] if predict else logits[i]
        if tail_first:
            scale_at = ints[_TAIL + _T_SCALE_F]
            for j in range(n0):
                out_row[j] = _affine(dot[i, j], j, ints, floats, scale_at)
        else:
            for word in range((n0 + 63) // 64):
                j0 = word * 64
                bits = np.uint64(0)
                for j in range(j0, min(n0, j0 + 64)):
                    if floats[at + j] * dot[i, j] < floats[at + n0 + j]:
                        bits |= np.uint64(1) << np.uint64(j - j0)
                a[word] = bits
            _chain_and_tail(a, b, wflat, ints, floats, out_row, sums, extra)
        if predict:
            labels[i] = _argmax(out_row)


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------
def _signed(t, flip, dtype):
    """``(sign, sign * t)`` of ``fastbin.kernels.binary_product.threshold.signed_thresholds``."""
    sign = np.where(np.asarray(flip, bool), -1, 1).astype(dtype)
    return sign, (sign * np.asarray(t, dtype)).astype(dtype)


def _tail_ops(stage, dtype):
    """``(dense, bn)`` of a float stage of the fusable form, else None."""
    if not isinstance(stage, FloatStage) or not 1 <= len(stage.ops) <= 2:
        return None
    dense, bn = stage.ops[0], stage.ops[1] if len(stage.ops) == 2 else None
    if type(dense) is not BinaryDense or (bn is not None and type(bn) is not BatchNormOp):
        return None
    if dense.dtype != dtype:
        return None
    arrays = [dense.scale_float, dense.scale_uint8, dense.bias] + ([bn.mean, bn.k, bn.beta] if bn else [])
    n = dense.weights.packed.rows
    for value in arrays:
        if value is not None and (not isinstance(value, np.ndarray) or value.dtype != dtype or value.shape != (n,)):
            return None
    return dense, bn


def build(model):
    """The :class:`Fused` runner of ``model`` (an ``InferenceModel`` on the
    numba engine), or None when its kind is not the fused one."""
    dtype = model.dtype
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)) or not model.stages:
        return None
    *signs, last = model.stages
    tail = _tail_ops(last, dtype)
    if tail is None or not all(type(s) is SignStage for s in signs):
        return None
    dense, bn = tail
    for s, stage in enumerate(signs):
        if stage.dtype != dtype or set(stage.thresholds) != ({"uint8", "float"} if s == 0 else {"packed"}):
            return None
    return Fused(model, signs, dense, bn)


class Fused:
    """The fused forward pass of one model (see the module doc). ``calls``
    counts the batches it ran."""

    def __init__(self, model, signs, dense, bn):
        dtype = self.dtype = model.dtype
        self.n_in = model.n_in
        ints = np.zeros(_STAGES + 5 * max(len(signs) - 1, 0), np.int64)
        floats, wflat, int_data = [], [], []
        sizes = {"floats": 0, "w": 0, "ints": len(ints)}

        def put(kind, values, store):
            at = sizes[kind]
            store.append(np.ascontiguousarray(values).ravel())
            sizes[kind] += store[-1].size
            return at

        first = signs[0] if signs else dense
        self.first_weights = first.weights
        self.w0 = np.ascontiguousarray(first.weights.packed.bits)
        self.rows0 = first.weights.rows
        #: the table-lookup form of the first layer when it is a sign stage (the engine's weight
        #: form: None unless the planner wants it, ``sign_product.wants_nibbles``), else None
        self.nibbles0 = first.weights.nibbles if signs else None
        #: AVX2: the word form of the first sign stage's float32 product (``avx2_dwords``; the
        #: planner's ``wants_dwords``), handed to ``fused_float`` where the nibbles go, else None
        self.dwords0 = dwords_of(self.w0, _VECS1) if signs and wants_dwords(dtype) else None
        self.form0 = self.nibbles0 if self.dwords0 is None else self.dwords0
        n0 = self.n0 = first.weights.packed.rows
        ints[_TAIL_FIRST] = 0 if signs else 1
        self.tail_first = not signs
        #: the first sign stage's float thresholds in float64 and their two ulps (``slack``), as
        #: ``refine_near_thresholds`` makes them, for the refinement of the fast product; or dummies
        t0 = np.asarray(signs[0].thresholds["float"][0], dtype) if signs else np.zeros(n0, dtype)
        self.unit, tiny = rounding_constants(dtype)
        self.t64 = t0.astype(np.float64)
        self.slack = 2.0 * (np.abs(self.t64) * 2.0 * self.unit + tiny)
        ints[_N_PACKED] = max(len(signs) - 1, 0)
        ints[_N0] = n0
        widths = [n_words_for(s.n_out) for s in signs] or [1]
        ints[_MAX_WORDS] = max(widths)
        if signs:
            ints[_U8_THR] = put("ints", np.concatenate(_signed(*signs[0].thresholds["uint8"], np.int64)), int_data)
            ints[_F_THR] = put("floats", np.concatenate(_signed(*signs[0].thresholds["float"], dtype)), floats)
        for s, stage in enumerate(signs[1:]):
            r = _STAGES + 5 * s
            w = stage.weights.packed
            ints[r + _S_W] = put("w", w.bits, wflat)
            if _TABLES:  # its byte-table panels right after its bits (_chain_and_tail finds them there)
                put("w", _count_panels(np.ascontiguousarray(w.bits), _COUNT_ROWS).reshape(-1).view(np.uint64), wflat)
            ints[r + _S_N], ints[r + _S_NW], ints[r + _S_BITS] = w.rows, w.bits.shape[1], w.n_bits
            ints[r + _S_THR] = put("ints", np.concatenate(_signed(*stage.thresholds["packed"], np.int64)), int_data)
        w = dense.weights.packed
        n = self.n_classes = w.rows
        t = _TAIL
        ints[t + _T_N], ints[t + _T_NW], ints[t + _T_BITS] = n, w.bits.shape[1], w.n_bits
        ints[t + _T_W] = put("w", w.bits, wflat) if signs else -1
        if _TABLES:
            ints[_U8_PANELS] = put("w", _u8_panels(self.w0).reshape(-1).view(np.uint64), wflat)
        for field, value in ((_T_SCALE_F, dense.scale_float), (_T_SCALE_U8, dense.scale_uint8),
                             (_T_BIAS, dense.bias)):
            ints[t + field] = -1 if value is None else put("floats", value, floats)
        ints[t + _T_BN] = -1 if bn is None else put("floats", np.concatenate([bn.mean, bn.k, bn.beta]), floats)
        self.ints = np.concatenate([ints, *int_data]).astype(np.int64)
        self.floats = np.concatenate(floats).astype(dtype) if floats else np.zeros(1, dtype)
        self.wflat = np.concatenate(wflat).astype(np.uint64) if wflat else np.zeros(1, np.uint64)
        self.scratch_words = 8 * self.w0.shape[1] + 2 * int(ints[_MAX_WORDS])
        if _TABLES:
            stages = [(s.weights.packed.rows, s.weights.packed.bits.shape[1]) for s in signs[1:]]
            self.scratch_words += _table_words(n0, self.w0.shape[1], stages)
        self.local = threading.local()
        self.calls = 0

    def takes(self, m):
        """Whether a batch of ``m`` rows runs fused: below ``few_rows()`` rows (the planner's),
        where the stage path takes the unblocked few-row kernels. From there on
        its blocked (and, with several Numba threads, threaded) products were
        as fast as this row-by-row pass or faster (one thread, 784-512-512-10:
        0.8-1.2x at 128 and 10000 rows; 784-10: 0.7-0.9x at 1000 rows)."""
        return m < few_rows()

    def _scratch(self):
        """This thread's ``(words, row, label)`` scratch (made on first use; also its dict of
        product buffers ``dots``, the plans ``hows``, and ``f64``, ``tables``, ``near`` for float
        rows)."""
        local = self.local
        try:
            return local.words, local.row, local.label
        except AttributeError:
            local.words = np.zeros(self.scratch_words, np.uint64)
            local.row = np.zeros((1, self.n_classes), self.dtype)
            local.label = np.zeros(1, np.int64)
            local.dots = {}
            local.hows = {}
            local.f64 = np.concatenate([self.t64, self.slack, grid_scratch(self.n_in).ravel()])
            local.tables = lut_scratch(self.n_in) if self.nibbles0 is not None else dwords_scratch(self.n_in) if (
                self.dwords0 is not None) else (np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32))
            local.near = np.zeros(self.n0, np.bool_)
            return local.words, local.row, local.label

    def _how(self, m):
        """How ``fused_float`` gets the first layer's product of ``m`` float rows: tail first,
        exactly (``_EXACT``), else the fast product the stage path's engine would take
        (``plan_dense``), refined inside the call: ``_LUT``/``_DWORDS``/``_ROWS`` computed there, or
        ``_GIVEN``. The plan is kept per thread and ``m`` until a threshold table is edited."""
        if self.tail_first:
            return _EXACT
        held = self.local.hows.get(m)
        count = _tables.edits()[0]
        if held is not None and held[0] == count:
            return held[1]
        name = plan_dense(m, self.n_in, self.n0, self.dtype, exact=False, nibbles=self.nibbles0 is not None,
                          dwords=self.dwords0 is not None).name
        how = {"lut_rows": _LUT, "dwords_rows": _DWORDS, "rows": _ROWS}.get(name, _GIVEN)
        self.local.hows[m] = (count, how)
        return how

    def __call__(self, x, predict=False):
        """Logits (m, n_classes), or with ``predict`` the classes (m,) int64,
        of checked input ``x`` (``check_model_input``)."""
        m = x.shape[0]
        words, row, label = self._scratch()
        if predict:
            labels, logits = np.empty(m, np.int64), row
        else:
            labels, logits = label, np.empty((m, self.n_classes), self.dtype)
        if x.dtype == _UINT8:
            fused_uint8(x, self.w0, self.wflat, self.ints, self.floats, words, logits, labels, predict)
        else:
            local = self.local
            dot = local.dots.get(m)
            if dot is None:
                dot = local.dots[m] = np.empty((m, self.n0), self.dtype)
            how = self._how(m)
            if how == _GIVEN:  # the very product of the stage path
                dot = dense_sign_matmul(x, self.first_weights.packed, signs=self.first_weights.signs,
                                        rows=self.rows0, nibbles=self.nibbles0, exact=False)
            fused_float(x, self.rows0, self.w0, self.form0, *local.tables, dot, how, local.f64, self.unit,
                        local.near, self.wflat, self.ints, self.floats, words, logits, labels, predict)
        self.calls += 1
        return labels if predict else logits
