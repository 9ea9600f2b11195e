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

The model's arrays travel in one 64-byte aligned uint64 buffer ``data`` made at load, read
through three views with positions in its header (``ints``: the header, stage records
and int64 thresholds; ``floats``: float thresholds and the tail's constants in the
model dtype; ``wflat``: the packed weights, each layer's at a 64-byte boundary; also the
float64 thresholds of the refinement), and the scratch in one uint64 buffer per thread:
each array argument costs a call its unboxing (a Numba meminfo). Scratch (bit-plane and
activation words, the few-row float dot, the exact product's grid row, the lookups' tables,
a row of logits) is per thread (``threading.local``) and reused across calls, so
concurrent calls are safe and a batch of one allocates only its output.

The call: ``InferenceModel.predict``/``logits`` hand their input to :meth:`Fused.quick`,
which serves the common batch (an aligned C-contiguous ndarray of uint8 or the model
dtype, n_in wide, fewer than ``few_rows()`` rows) in a few attribute tests through the
kernel's compiled entry point (``fastbin.kernels._plan.entry_point``: no argument typing),
kept per thread after that thread's first checked call; anything else is checked
(``check_model_input``) and goes through Numba's dispatcher. Float rows are tested for
NaN and infinity by the kernel itself, first, in one vectorised pass (a NumPy
``isfinite(x).all()`` costs about 1 us at 1 x 784, most of a batch of one): it returns the
first bad row before computing or writing anything, and ``quick`` raises
``check_model_input``'s ValueError.

Batches of ``few_rows()`` rows (``fastbin.kernels.sign_product``) or more keep the stage path (its blocked and
threaded kernels; :meth:`Fused.takes`).
"""
from __future__ import annotations

import threading

import numpy as np
from numba import types
from numba.extending import overload

from .._config import BYTE_POPCOUNT_LANES, FUSED_BYTE_TABLES, UINT8_MASK_ROWS, XOR_COUNT_ROWS4, jit
from .._tables import edits
from .._validate import check_model_input
from ..bits import n_words_for
from ..kernels._plan import entry_point
from ..kernels.binary_product.avx2 import tables_of as _tables_of
from ..kernels.binary_product.count_block import COLS as _COUNT_COLS
from ..kernels.binary_product.count_block import xor_bits as _xor_bits
from ..kernels.binary_product.count_block import xor_counts as _xor_counts
from ..kernels.binary_product.count_block_avx2 import ROWS as _COUNT_ROWS
from ..kernels.binary_product.count_block_avx2 import panels_of as _count_panels
from ..kernels.binary_product.count_block_avx2 import xor_dots as _xor_dots
from ..kernels.binary_product.rows4 import xor_counts4 as _xor_counts4
from ..kernels.binary_product.threshold import below_word as _below_word
from ..kernels.intrinsics import opaque as _opaque
from ..kernels.intrinsics import threshold_word as _threshold_word
from ..kernels.intrinsics import to_float as _to_float
from ..kernels.intrinsics import xor_count as _xor_count
from ..kernels.pack import aligned_words
from ..kernels.sign_product import few_rows, plan_dense, wants_dwords
from ..kernels.sign_product._lanes import plane_dot, plane_words
from ..kernels.sign_product.avx2_dwords import VECS1 as _VECS1
from ..kernels.sign_product.avx2_dwords import dwords_of, dwords_scratch, sign_dot_dwords
from ..kernels.sign_product.avx512 import lut_scratch, sign_dot_lut
from ..kernels.sign_product.exact import exact_sign_dot_rows, first_nonfinite_row, refine_row
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

_UINT8, _INT64 = np.dtype(np.uint8), np.dtype(np.int64)
_NDARRAY = np.ndarray
_empty = np.empty
#: the count of table and probe edits (``fastbin._tables.edits``): a record of ``Fused.quick`` serves
#: while it is the count the record was made at
_EDITS = edits()

# header of ``ints`` (positions). Positions in ``data`` count in the units of the view they index
# (``ints``/``wflat``/``f64``: words; ``floats``: the model dtype); in ``scratch``: ``_SC_Q``, ``_SC_A`` and
# ``_SC_EXTRA`` words, ``_SC_TAB``/``_SC_ACC`` float32s, ``_SC_NEAR`` bytes, ``_SC_DOT`` the model dtype.
# ``_U8_PANELS``: the first layer's byte-table panels in ``wflat`` (``_TABLES``); ``_TAB_R``/``_TAB_C``,
# ``_ACC_R``/``_ACC_C``: the shapes of the float lookups' tables and accumulators (``sign_dot_lut``'s or
# ``sign_dot_dwords``').
(_TAIL_FIRST, _N_PACKED, _N0, _U8_THR, _F_THR, _MAX_WORDS, _ZERO, _W0, _NW0, _T64, _SLACK, _UNIT, _SC_A, _SC_Q,
 _SC_TAB, _SC_ACC, _SC_NEAR, _SC_DOT, _U8_PANELS, _SC_EXTRA, _TAB_R, _TAB_C, _ACC_R, _ACC_C) = range(24)
# ints[_ZERO] == 0
# tail record: ints[_TAIL + field]
_TAIL = 24
_T_W, _T_N, _T_NW, _T_BITS, _T_SCALE_F, _T_SCALE_U8, _T_BIAS, _T_BN = range(8)
# packed stage records: ints[_STAGES + _FIELDS * s + field] (``_S_PAN``: its byte-table panels, ``_TABLES``)
_STAGES = 32
_S_W, _S_N, _S_NW, _S_BITS, _S_THR, _S_PAN = range(6)
_FIELDS = 6
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
        r = _STAGES + _FIELDS * s
        n, n_words = ints[r + _S_N], ints[r + _S_NW]
        w0 = ints[r + _S_W]
        w = wflat[w0 : w0 + n * n_words].reshape((n, n_words))
        out = b[: (n + 63) // 64]
        if _TABLES:
            _stage_tables(a[:n_words], wflat, ints[r + _S_PAN], n, ints[r + _S_BITS], ints, ints[r + _S_THR], out,
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
def fused_uint8(x, data, scratch, logits, labels, predict):
    """Every stage on uint8 rows ``x`` (m, n_in) of the model in ``data`` (``Fused.data``);
    logits into ``logits`` (m, n_classes), or with ``predict`` classes into ``labels`` (m,)
    (``logits`` then a (1, n_classes) scratch row); ``scratch`` this thread's words."""
    m, k = x.shape
    ints, wflat = data.view(np.int64), data
    floats = data.view(logits.dtype)
    n0, n_words = ints[_N0], ints[_NW0]
    w0 = data[ints[_W0] : ints[_W0] + n0 * n_words].reshape((n0, n_words))
    planes = scratch[: n_words * 8].reshape((n_words, 8))
    width = ints[_MAX_WORDS]
    a = scratch[n_words * 8 : n_words * 8 + width]
    b = scratch[n_words * 8 + width : n_words * 8 + 2 * width]
    tail_first = ints[_TAIL_FIRST] == 1
    at = ints[_U8_THR]
    sums = scratch[n_words * 8 + 2 * width : n_words * 8 + 2 * width + _SUMS].view(np.int64)  # plane_sums', xor_counts'
    extra = scratch[ints[_SC_EXTRA] : ints[_SC_Q]]  # the byte tables' (_TABLES)
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
    """``sign_dot_lut(x, nib, dot, tab, acc)`` on float32 rows and the uint8 nibbles ``nib``; in
    jitted code nothing where ``nib`` is another array (the int8 rows of a model without the
    lookup form: ``fused_float`` never asks then, and the lookups' AVX-512 permutes are not
    compiled on a CPU without them) or the rows float64."""
    sign_dot_lut(x, nib, dot, tab, acc)


@overload(_lut_dot)
def _lut_dot_jit(x, nib, dot, tab, acc):
    if (isinstance(nib, types.Array) and nib.ndim == 2 and nib.dtype == types.uint8
            and x.dtype == types.float32):
        return lambda x, nib, dot, tab, acc: sign_dot_lut(x, nib, dot, tab, acc)
    return lambda x, nib, dot, tab, acc: None


#: how ``fused_float`` gets the first layer's product: handed in, or computed in the call by
#: ``sign_dot_rows``, by ``sign_dot_lut`` (the table lookups on the cached nibbles) or exactly
#: (``exact_sign_dot_rows``, a float tail first)
_GIVEN, _ROWS, _LUT, _EXACT, _DWORDS = range(5)


def _rows_dot(x, rows, dot):
    """``sign_dot_rows(x, rows, dot)`` on the ±1 int8 ``rows``; in jitted code nothing where
    ``first`` is another form (the nibbles, AVX2's word form: never asked then)."""
    sign_dot_rows(x, rows, dot)


@overload(_rows_dot)
def _rows_dot_jit(x, rows, dot):
    if isinstance(rows, types.Array) and rows.ndim == 2 and rows.dtype == types.int8:
        return lambda x, rows, dot: sign_dot_rows(x, rows, dot)
    return lambda x, rows, dot: None


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
def fused_float(x, first, data, scratch, logits, labels, how, predict):
    """Every stage on float rows ``x`` (m, n_in) of the model dtype, of the model in ``data``
    (``Fused.data``), ``scratch`` this thread's words (``Fused._scratch``). First
    the input's test: the first row holding a NaN or an infinity is returned, before anything
    is computed or written (``predict`` then raises); else -1, after:
    the first layer's ``dot`` (m, n0) (in ``scratch``), by ``how`` (``_GIVEN``: as written
    there by the caller; ``_ROWS``: ``sign_dot_rows(x, rows, dot)``, ``first`` the ±1 int8
    ``rows``; ``_LUT``: ``sign_dot_lut(x, nib, dot, tab, acc)``, ``first`` the nibbles ``nib``;
    ``_DWORDS``: ``sign_dot_dwords(x, wt, dot, tab, acc)``, ``first`` AVX2's kept word form ``wt``;
    ``_EXACT``: ``exact_sign_dot_rows(x, w0, dot, q)``, the logits of a tail first).
    A sign stage first: the fast product refined to the exact one near its float
    thresholds (``refine_row`` with ``t64``/``slack``, the thresholds in float64 and
    their two ulps, and ``near`` (n0,) bool scratch), as the stage path's
    ``refine_near_thresholds``. The model's arrays travel in ``data`` and the scratch in
    ``scratch``: every array argument costs the call (its unboxing)."""
    m, k = x.shape
    bad = first_nonfinite_row(x)
    if bad >= 0:
        return bad
    ints, wflat = data.view(np.int64), data
    floats, f64 = data.view(logits.dtype), data.view(np.float64)
    n0, nw0 = ints[_N0], ints[_NW0]
    w0 = data[ints[_W0] : ints[_W0] + n0 * nw0].reshape((n0, nw0))
    t64, slack = f64[ints[_T64] : ints[_T64] + n0], f64[ints[_SLACK] : ints[_SLACK] + n0]
    unit = f64[ints[_UNIT]]
    q = scratch[ints[_SC_Q] : ints[_SC_Q] + k].view(np.float64).reshape((1, k))
    tab_r, tab_c, acc_r, acc_c = ints[_TAB_R], ints[_TAB_C], ints[_ACC_R], ints[_ACC_C]
    tab = scratch.view(np.float32)[ints[_SC_TAB] : ints[_SC_TAB] + tab_r * tab_c].reshape((tab_r, tab_c))
    acc = scratch.view(np.float32)[ints[_SC_ACC] : ints[_SC_ACC] + acc_r * acc_c].reshape((acc_r, acc_c))
    near = scratch.view(np.bool_)[ints[_SC_NEAR] : ints[_SC_NEAR] + n0]
    dot = scratch.view(logits.dtype)[ints[_SC_DOT] : ints[_SC_DOT] + m * n0].reshape((m, n0))
    rows = nib = first
    tail_first = ints[_TAIL_FIRST] == 1
    if how == _EXACT:
        exact_sign_dot_rows(x, w0, dot, q)
    elif how == _ROWS:
        _rows_dot(x, rows, dot)
    elif how == _DWORDS:
        _dwords_dot(x, nib, dot, tab, acc)
    elif how == _LUT:
        _lut_dot(x, nib, dot, tab, acc)
    if not tail_first:
        for i in range(m):
            refine_row(x[i], w0, dot[i], t64, slack, unit, q, near)
    width = ints[_MAX_WORDS]
    sums = scratch[ints[_SC_A] + 2 * width : ints[_SC_A] + 2 * width + _SUMS].view(np.int64)  # xor_counts'
    a = scratch[ints[_SC_A] : ints[_SC_A] + width]
    b = scratch[ints[_SC_A] + width : ints[_SC_A] + 2 * width]
    extra = scratch[ints[_SC_EXTRA] : ints[_SC_Q]]  # the byte tables' (_TABLES)
    at = ints[_F_THR]
    sign, signed = floats[at : at + n0], floats[at + n0 : at + 2 * n0]
    for i in range(m):
        out_row = logits[0] if predict else logits[i]
        if tail_first:
            scale_at = ints[_TAIL + _T_SCALE_F]
            for j in range(n0):
                out_row[j] = _affine(dot[i, j], j, ints, floats, scale_at)
        else:
            for word in range((n0 + 63) // 64):  # bit j set where sign * dot < signed, a vector at a time
                j0 = word * 64
                a[word] = _below_word(dot, i, j0, min(n0, j0 + 64), sign, signed)
            _chain_and_tail(a, b, wflat, ints, floats, out_row, sums, extra)
        if predict:
            labels[i] = _argmax(out_row)
    return -1


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
    counts the batches it ran. ``data``: the model's arrays in one 64-byte aligned uint64
    buffer (the ``ints`` header with the positions of the rest; module doc)."""

    def __init__(self, model, signs, dense, bn):
        dtype = self.dtype = model.dtype
        self.n_in = k = model.n_in
        per = 8 // dtype.itemsize  # values of the model dtype per word
        ints = np.zeros(_STAGES + _FIELDS * max(len(signs) - 1, 0), np.int64)
        parts, size = [ints.view(np.uint64)], [len(ints)]  # the header's bits (filled in below)

        def put(values, align=1):
            """Append ``values`` (any dtype) at a word position, a multiple of ``align``; returns it."""
            raw = np.ascontiguousarray(values).ravel()
            pad = -size[0] % align
            words = np.zeros(pad + -(-raw.nbytes // 8), np.uint64)
            words[pad:].view(np.uint8)[: raw.nbytes] = raw.view(np.uint8)
            parts.append(words)
            size[0] += len(words)
            return size[0] - len(words) + pad

        first = signs[0] if signs else dense
        self.first_weights = first.weights
        w0 = first.weights.packed.bits
        self.rows0 = first.weights.rows
        #: the table-lookup form of the first layer when it is a sign stage (the engine's weight
        #: form: None unless the planner wants it, ``sign_product.wants_nibbles``), else None
        self.nibbles0 = first.weights.nibbles if signs else None
        #: AVX2: the word form of the first sign stage's float32 product (``avx2_dwords``; the
        #: planner's ``wants_dwords``), handed to ``fused_float`` where the nibbles go, else None
        self.dwords0 = dwords_of(w0, _VECS1) if signs and wants_dwords(dtype) else None
        n0 = self.n0 = first.weights.packed.rows
        ints[_TAIL_FIRST] = 0 if signs else 1
        self.tail_first = not signs
        ints[_W0], ints[_N0], ints[_NW0] = put(w0, 8), n0, w0.shape[1]
        #: the first sign stage's float thresholds in float64 and their two ulps (``slack``), as
        #: ``refine_near_thresholds`` makes them, for the refinement of the fast product; or dummies
        t0 = np.asarray(signs[0].thresholds["float"][0], dtype) if signs else np.zeros(n0, dtype)
        unit, tiny = rounding_constants(dtype)
        t64 = t0.astype(np.float64)
        ints[_T64], ints[_SLACK] = put(t64), put(2.0 * (np.abs(t64) * 2.0 * unit + tiny))
        ints[_UNIT] = put(np.array([unit], np.float64))
        ints[_N_PACKED] = max(len(signs) - 1, 0)
        widths = [n_words_for(s.n_out) for s in signs] or [1]
        width = ints[_MAX_WORDS] = max(widths)
        if signs:
            ints[_U8_THR] = put(np.concatenate(_signed(*signs[0].thresholds["uint8"], np.int64)))
            ints[_F_THR] = per * put(np.concatenate(_signed(*signs[0].thresholds["float"], dtype)))
        for s, stage in enumerate(signs[1:]):
            r = _STAGES + _FIELDS * s
            w = stage.weights.packed
            ints[r + _S_W] = put(w.bits, 8)
            if _TABLES:  # its byte-table panels (``_chain_and_tail``)
                ints[r + _S_PAN] = put(_count_panels(np.ascontiguousarray(w.bits), _COUNT_ROWS), 8)
            ints[r + _S_N], ints[r + _S_NW], ints[r + _S_BITS] = w.rows, w.bits.shape[1], w.n_bits
            ints[r + _S_THR] = put(np.concatenate(_signed(*stage.thresholds["packed"], np.int64)))
        w = dense.weights.packed
        n = self.n_classes = w.rows
        t = _TAIL
        ints[t + _T_N], ints[t + _T_NW], ints[t + _T_BITS] = n, w.bits.shape[1], w.n_bits
        ints[t + _T_W] = put(w.bits, 8) if signs else ints[_W0]
        if _TABLES:  # the first layer's byte-table panels (``_first_tables``)
            ints[_U8_PANELS] = put(_u8_panels(w0), 8)
        for field, value in ((_T_SCALE_F, dense.scale_float), (_T_SCALE_U8, dense.scale_uint8),
                             (_T_BIAS, dense.bias)):
            ints[t + field] = -1 if value is None else per * put(np.asarray(value, dtype))
        ints[t + _T_BN] = -1 if bn is None else per * put(np.concatenate([bn.mean, bn.k, bn.beta]).astype(dtype))
        # A thread's scratch words: the uint8 row's bit planes, the activation words a and b, the
        # (_SUMS,) int64 of ``plane_sums``/``xor_counts``, the byte tables' scratch (``_TABLES``), then
        # for float rows the exact product's grid row q (k float64), the lookups' tables and
        # accumulators (``sign_dot_lut``'s or, AVX2's word form, ``sign_dot_dwords``'), the (n0,)
        # bool ``near``, and the first layer's dot (m, n0) last; each region from a 64-byte boundary
        # past the activation words.
        ints[_SC_A] = 8 * ints[_NW0]
        ints[_SC_EXTRA] = -(-(ints[_SC_A] + 2 * width + _SUMS) // 8) * 8
        stages = [(s.weights.packed.rows, s.weights.packed.bits.shape[1]) for s in signs[1:]]
        extra = -(-_table_words(n0, w0.shape[1], stages) // 8) * 8 if _TABLES else 0
        ints[_SC_Q] = ints[_SC_EXTRA] + extra
        scratch_of = dwords_scratch if self.dwords0 is not None else lut_scratch  # the shapes the kernel takes
        tab_shape, acc_shape = (part.shape for part in scratch_of(k))
        (ints[_TAB_R], ints[_TAB_C]), (ints[_ACC_R], ints[_ACC_C]) = tab_shape, acc_shape
        tab = -(-(ints[_SC_Q] + k) // 8) * 8
        acc = tab + -(-(tab_shape[0] * tab_shape[1]) // 16) * 8  # float32s, two a word
        near = acc + -(-(acc_shape[0] * acc_shape[1]) // 16) * 8
        ints[_SC_TAB], ints[_SC_ACC], ints[_SC_NEAR] = 2 * tab, 2 * acc, 8 * near
        self.dot_word = -(-(near + -(-n0 // 8)) // 8) * 8
        ints[_SC_DOT] = per * self.dot_word
        self.per = per
        self.data = aligned_words(1, size[0])[0]
        self.data[:] = np.concatenate(parts)
        self.local = threading.local()
        self.calls = 0

    def takes(self, m):
        """Whether a batch of ``m`` rows runs fused: below ``few_rows()`` rows (the planner's),
        where the stage path takes the unblocked few-row kernels. From there on
        its blocked (and, with several Numba threads, threaded) products were
        as fast as this row-by-row pass or faster (one thread, 784-512-512-10:
        0.8-1.2x at 128 and 10000 rows; 784-10: 0.7-0.9x at 1000 rows)."""
        return m < few_rows()

    def _scratch(self, m):
        """This thread's ``(words, row, label)`` scratch, ``words`` long enough for ``m`` rows
        (made on first use, longer when a larger batch comes; also its dict of plans ``hows``)."""
        local = self.local
        words = getattr(local, "words", None)
        if words is None:
            local.row = np.zeros((1, self.n_classes), self.dtype)
            local.label = np.zeros(1, np.int64)
            local.hows = {}
            local.rows = 0
        if words is None or m > local.rows:
            local.rows = m
            local.words = aligned_words(1, self.dot_word + -(-m * self.n0 // self.per))[0]
        return local.words, local.row, local.label

    def _how(self, m):
        """How ``fused_float`` gets the first layer's product of ``m`` float rows: tail first,
        exactly (``_EXACT``), else the fast product the stage path's engine would take
        (``plan_dense``), refined inside the call: ``_LUT``/``_DWORDS``/``_ROWS`` computed there, or
        ``_GIVEN``. The plan is kept per thread and ``m`` until a threshold table is edited."""
        if self.tail_first:
            return _EXACT
        held = self.local.hows.get(m)
        count = _EDITS[0]
        if held is not None and held[0] == count:
            return held[1]
        name = plan_dense(m, self.n_in, self.n0, self.dtype, exact=False, nibbles=self.nibbles0 is not None,
                          dwords=self.dwords0 is not None).name
        how = {"lut_rows": _LUT, "dwords_rows": _DWORDS, "rows": _ROWS}.get(name, _GIVEN)
        self.local.hows[m] = (count, how)
        return how

    def __call__(self, x, predict=False):
        """Logits (m, n_classes), or with ``predict`` the classes (m,) int64,
        of checked input ``x`` (``check_model_input``), through Numba's dispatcher; then
        the calling thread's record for :meth:`quick` of this kind of input is made."""
        m = x.shape[0]
        made_at = _EDITS[0]
        words, row, label = self._scratch(m)
        if predict:
            labels, logits = np.empty(m, np.int64), row
        else:
            labels, logits = label, np.empty((m, self.n_classes), self.dtype)
        local = self.local
        if x.dtype == _UINT8:
            fused_uint8(x, self.data, words, logits, labels, predict)
            held = getattr(local, "u8", None)
            if held is None or held[1] != made_at or held[3] is not words:
                run = entry_point(fused_uint8, x, self.data, words, logits, labels, predict)
                local.u8 = (run, made_at, few_rows(), words, row, label)
        else:
            how = self._how(m)
            first = self.nibbles0 if how == _LUT else self.dwords0 if how == _DWORDS else self.rows0
            if how == _GIVEN:  # the very product of the stage path, written where the kernel reads it
                dot = dense_sign_matmul(x, self.first_weights.packed, signs=self.first_weights.signs,
                                        rows=self.rows0, nibbles=self.nibbles0, exact=False)
                at = self.dot_word * self.per
                words.view(self.dtype)[at : at + dot.size] = dot.ravel()
            fused_float(x, first, self.data, words, logits, labels, how, predict)  # x is finite: checked
            held = getattr(local, "fl", None)
            if held is None or held[0] != made_at or held[3] is not words:
                held = local.fl = (made_at, few_rows(), local.rows, words, row, label, {})
            if how != _GIVEN and m not in held[6]:
                held[6][m] = (entry_point(fused_float, x, first, self.data, words, logits, labels, how, predict),
                              first, how)
        self.calls += 1
        return labels if predict else logits

    def quick(self, x, predict):
        """``self(x, predict)`` for unchecked ``x`` in a few Python steps, or None (then the
        caller checks ``x`` and calls ``self``): the common batch, an ndarray (not a subclass)
        C-contiguous and aligned, (m, n_in) of uint8 or the model dtype with 1 <= m <
        ``few_rows()``, in a thread that ran such a batch through ``self`` since the last table
        edit (its record: the kernel's compiled entry point, ``kernels._plan.entry_point``, and
        its scratch; on float rows also the plan for this ``m``, unless ``_GIVEN``). Float
        rows holding a NaN or an infinity are refused by the kernel before it computes
        anything; this raises ``check_model_input``'s ValueError then."""
        # Written for speed (each attribute test here is tens of ns of a ~3 us call): x.shape
        # builds a tuple, so the width is tested as ``x.size == m * n_in`` with ``m = len(x)``.
        if type(x) is not _NDARRAY or x.ndim != 2:
            return None
        m = len(x)
        flags = x.flags
        if x.size != m * self.n_in or not (flags.c_contiguous and flags.aligned):
            return None
        dtype = x.dtype
        if dtype is _UINT8:
            try:
                run, made_at, few, words, row, label = self.local.u8
            except AttributeError:  # no record in this thread yet
                return None
            if made_at != _EDITS[0] or not 0 < m < few:
                return None
            if predict:
                labels = _empty(m, _INT64)
                run(x, self.data, words, row, labels, True)
                self.calls += 1
                return labels
            logits = _empty((m, self.n_classes), self.dtype)
            run(x, self.data, words, logits, label, False)
            self.calls += 1
            return logits
        if dtype is not self.dtype:
            return None
        try:
            made_at, few, rows, words, row, label, plans = self.local.fl
        except AttributeError:
            return None
        plan = plans.get(m)
        if made_at != _EDITS[0] or not 0 < m < few or m > rows or plan is None:
            return None
        run, first, how = plan
        if predict:
            out = labels = _empty(m, _INT64)
            bad = run(x, first, self.data, words, row, labels, how, True)
        else:
            out = logits = _empty((m, self.n_classes), self.dtype)
            bad = run(x, first, self.data, words, logits, label, how, False)
        if bad >= 0:  # a NaN or an infinity: nothing was computed
            check_model_input(x, self.n_in, self.dtype)  # raises the checked path's ValueError
            return None
        self.calls += 1
        return out
