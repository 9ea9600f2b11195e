"""``x @ sign(W)`` on float32/float64/uint8 rows ``x`` and packed signs: the planner.

The kernels live side by side in this folder (the layout of Larq Compute Engine's
``core/bgemm/``):

* ``portable``: the loops LLVM vectorises on any CPU (signed sums from the bits,
  register blocks on unpacked signs, bit planes of uint8 rows, the int8 few-row
  kernel); the reference the others are tested against;
* ``avx512``: float32 table lookups (``vpermps``), and the exact product by lookups;
* ``avx512_int16``: int16 table lookups of uint8 rows (``vpermw``, ``vpmaddubsw``);
* ``avx512_vnni``: the exact product of uint8 rows by byte dot products (``vpdpbusd``)
  on byte masks of the packed bits (``vpmovm2b``; AVX-512 VNNI);
* ``avx512_dwords``: one or a few float32 rows by the lookups of ``avx512`` indexed by
  32-bit pieces of the packed rows (shifted by 4 per group: no nibble form per call);
* ``avx2``: the exact product of uint8 rows by byte multiply-adds (``vpmaddubsw``)
  on ±1 int8 signs (x86-64 with AVX2);
* ``avx2_lut``: float32 8-entry table lookups (``vpermps`` on ymm, groups of 3 inputs;
  x86-64 with AVX2);
* ``avx2_dwords``: the same lookups indexed by W's 32-bit words shifted (no index form
  to make per call), for a few float32 rows (x86-64 with AVX2);
* ``byte_lut``: one float row by 256-entry tables of 8 inputs, one scalar lookup per
  byte of W's packed rows (portable; planned on the AVX2 kind);
* ``uint8_masks``: uint8 rows in integers on byte masks of ``W`` unpacked once (and +
  pairwise adds: ``uadalp`` on AArch64), exact for every ``k`` the int32 result holds;
* ``f32_rows``: few float32 rows by sign flips straight from ``W``'s bits (``ushl``/``and``/
  ``eor``/``fadd`` on AArch64), 4 rows of ``W`` per load of ``x``, within float rounding;
* ``uint8_rows``: few uint8 rows in integers, the byte masks made from ``W``'s bits on the
  fly (``tbl`` + ``cmtst``, then and + ``uadalp`` on AArch64), 4 rows of ``W`` per load of ``x``;
* ``blas``: BLAS on unpacked ±1 signs, a cache-sized block at a time (x86-64 without
  AVX-512F);
* ``exact``: the exact float product (same bits on every engine, CPU and thread count);
* ``_dot_blocks``, ``_lanes``: the register blocks and the lane helpers they share.

This module is the one place that chooses among them. :func:`plan` (``sign_matmul``
on packed bits) and :func:`plan_dense` (``dense_sign_matmul``: the exact product, or
the fastest one within float rounding, with a layer's cached weight forms) read the
CPU probes of ``fastbin._config`` and its per-CPU threshold table ``TABLE``
(``fastbin._tables``) *when called*: no threshold is frozen into jitted code, so an
edited table never leaves stale machine code in Numba's cache. ``ops``, the trainer's
layers (through ``ops``), both runtime engines and the fused pass all ask here.

A plan is a :class:`Path`: a name from ``PATHS`` / ``DENSE_PATHS`` and the kernel to
call. ``plan(...)(x, w_bits, out) -> bool`` runs it (False, writing nothing, for
non-zero padding bits). ``force=name`` returns that path whatever the CPU and
thresholds say (tests run every path this way; a path the CPU lacks cannot run).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ... import _config
from ..._limits import UINT8_F32_EXACT_MAX_K
from ..._tables import AVX2, AVX512
from .._plan import Path, memoized
from .avx2 import sign_matmul_madd, sign_matmul_madd_parallel
from .avx2_dwords import sign_dot_dwords, sign_matmul_dwords
from .avx2_lut import sign_matmul_lut3, sign_matmul_lut3_parallel
from .avx512 import (
    lut_product,
    lut_product_parallel,
    sign_dot_lut,
    sign_matmul_lut,
    sign_matmul_lut16,
    sign_matmul_lut16_parallel,
    sign_matmul_lut_parallel,
)
from .avx512_dwords import sign_matmul_lut_dwords
from .avx512_vnni import sign_matmul_dot, sign_matmul_dot_parallel
from .blas import blas_product
from .byte_lut import sign_matmul_bytes
from .exact import exact_lut_product, exact_lut_product_parallel, exact_sign_dot_rows, exact_sign_dot_rows_parallel
from .f32_rows import sign_matmul_f32_rows
from .portable import (
    sign_dot_rows,
    sign_matmul_bits,
    sign_matmul_bits_parallel,
    sign_matmul_float,
    sign_matmul_float_parallel,
    sign_matmul_uint8,
    sign_matmul_uint8_float,
)
from .uint8_masks import sign_matmul_uint8_masks
from .uint8_rows import sign_matmul_uint8_rows

__all__ = ["Path", "PATHS", "DENSE_PATHS", "NEEDS", "plan", "path", "plan_dense", "wants_nibbles", "wants_dwords",
           "few_rows"]

_FLOAT32 = np.dtype(np.float32)


def _contiguous(kernel):
    """``kernel`` on a C-contiguous copy of a strided ``x`` (the lookup kernels'
    row loads need unit stride)."""
    def run(x, w_bits, out, *args):
        return kernel(np.ascontiguousarray(x), w_bits, out, *args)

    run.__name__ = run.__qualname__ = f"contiguous_{kernel.__name__}"
    run.kernel = kernel
    return run


def _uint8_blas(x, w_bits, out, chunk_bytes):
    """uint8 rows as float32 through BLAS: sums of integers below ``255 * k < 2**24``,
    exact in any order, BLAS's included."""
    return blas_product(x.astype(_FLOAT32), w_bits, out, chunk_bytes)


#: A forced path's arguments on a CPU kind whose table lacks them (its own kind's values).
_ELSEWHERE = {**AVX2, **AVX512}


def _table_args(*keys):
    """The table entries a path's kernel takes, read now."""
    table = _config.TABLE
    return tuple(table[key] if key in table else _ELSEWHERE[key] for key in keys)


#: ``sign_matmul`` on packed bits: name -> (kernel, table keys of its extra arguments,
#: dtypes it takes). The float paths write ``x``'s dtype; the uint8 ones the exact int32.
_SIGN_MATMUL = {
    # float rows
    "bits": (sign_matmul_bits, (), "f"),
    "bits_parallel": (sign_matmul_bits_parallel, (), "f"),
    "bytes": (_contiguous(sign_matmul_bytes), (), "f"),
    "unpack": (sign_matmul_float, (), "f"),
    "unpack_parallel": (sign_matmul_float_parallel, (), "f"),
    "f32_rows": (sign_matmul_f32_rows, (), "s"),
    "lut": (sign_matmul_lut, ("lut_chunk_bytes",), "s"),
    "lut_parallel": (sign_matmul_lut_parallel, ("lut_chunk_bytes",), "s"),
    "blas": (blas_product, ("blas_chunk_bytes",), "s"),
    "lut3": (_contiguous(sign_matmul_lut3), ("lut3_chunk_bytes",), "s"),
    "lut3_parallel": (_contiguous(sign_matmul_lut3_parallel), ("lut3_chunk_bytes",), "s"),
    "lut_dwords": (sign_matmul_lut_dwords, (), "s"),  # float rows come C-contiguous from ops
    "dwords": (sign_matmul_dwords, (), "s"),
    # uint8 rows (exact int32)
    "uint8_planes": (sign_matmul_uint8, (), "u"),
    "uint8_float": (sign_matmul_uint8_float, (), "u"),
    "uint8_masks": (sign_matmul_uint8_masks, (), "u"),
    "uint8_rows": (sign_matmul_uint8_rows, (), "u"),
    "uint8_lut16": (_contiguous(sign_matmul_lut16), ("lut_chunk_bytes",), "u"),
    "uint8_lut16_parallel": (_contiguous(sign_matmul_lut16_parallel), ("lut_chunk_bytes",), "u"),
    "uint8_lut": (_contiguous(sign_matmul_lut), ("lut_chunk_bytes",), "u"),
    "uint8_lut_parallel": (_contiguous(sign_matmul_lut_parallel), ("lut_chunk_bytes",), "u"),
    "uint8_blas": (_uint8_blas, ("blas_chunk_bytes",), "u"),
    "uint8_madd": (sign_matmul_madd, ("madd_panel_bytes",), "u"),
    "uint8_madd_parallel": (sign_matmul_madd_parallel, ("madd_panel_bytes",), "u"),
    "uint8_dot": (sign_matmul_dot, (), "u"),  # copies a strided x itself
    "uint8_dot_parallel": (sign_matmul_dot_parallel, (), "u"),
}
#: Paths without table arguments, made once (the hot 1 x 784 calls allocate no plan).
_FIXED = {name: Path(name, kernel) for name, (kernel, keys, _) in _SIGN_MATMUL.items() if not keys}

#: Every path :func:`plan` can return, with the dtypes of ``x`` it takes:
#: ``"f"`` float32 and float64, ``"s"`` float32 only, ``"u"`` uint8.
PATHS: dict[str, str] = {name: kinds for name, (_, _, kinds) in _SIGN_MATMUL.items()}
#: What each path needs of the CPU (``fastbin._config`` probe names); absent: any CPU.
NEEDS: dict[str, str] = {
    "lut": "FLOAT_LUT", "lut_parallel": "FLOAT_LUT", "uint8_lut": "FLOAT_LUT",
    "uint8_lut_parallel": "FLOAT_LUT", "uint8_lut16": "INT16_LUT", "uint8_lut16_parallel": "INT16_LUT",
    "uint8_madd": "INT8_MADD", "uint8_madd_parallel": "INT8_MADD",
    "lut3": "FLOAT_LUT8", "lut3_parallel": "FLOAT_LUT8", "dwords": "FLOAT_LUT8",
    "uint8_dot": "INT8_DOT", "uint8_dot_parallel": "INT8_DOT", "lut_dwords": "FLOAT_LUT",
    "exact_lut": "FLOAT_LUT", "exact_lut_parallel": "FLOAT_LUT", "lut_rows": "FLOAT_LUT",
    "dwords_rows": "FLOAT_LUT8",
}


def path(name: str) -> Path:
    """The ``sign_matmul`` path ``name`` with its table arguments read now."""
    fixed = _FIXED.get(name)
    if fixed is not None:
        return fixed
    kernel, keys, _ = _SIGN_MATMUL[name]
    return Path(name, kernel, _table_args(*keys))


def _blas_rows(table, m, k, n) -> bool:
    """Whether BLAS on unpacked signs takes an (m, k) x (k, n) product."""
    return n >= table["blas_min_cols"] and (
        m >= table["blas_min_rows"] or (m >= table["blas_min_rows_big"] and k * n >= table["blas_big"])
    )


@memoized(4, "sign_matmul", lambda m, k, n, *_: m * n * k)
def plan(m: int, k: int, n: int, dtype, threads=None, *, force: str | None = None) -> Path:
    """The kernel of ``sign_matmul`` on ``x`` (m, k) of ``dtype`` (a ``numpy.dtype``:
    float32, float64 or uint8) and packed signs of ``n`` rows: ``threads`` None (automatic), True or False
    (``fastbin._config.use_threads``); ``force`` a name of ``PATHS``. Reads the probes
    and ``_config.TABLE`` now. Call the result as ``path(x, w_bits, out)`` (or, saving a
    Python frame on the hot paths, ``path.kernel(x, w_bits, out, *path.args)``)."""
    if force is not None:
        return path(force)
    config = _config
    table = config.TABLE
    char = dtype.char  # "B" uint8, "f" float32, "d" float64 (a dtype's == costs 50 ns)
    if char == "B":
        if m <= table["uint8_rows_max_rows"]:
            # byte masks made from W's bits per row of x, integer sums: exact for every k (first:
            # the tables that take it, NEON's, have none of the paths below for few rows)
            return _FIXED["uint8_rows"]
        if config.INT8_DOT and "uint8_dot_min_rows" in table and m >= table["uint8_dot_min_rows"]:
            # byte dot products on byte masks of the packed bits (AVX-512 VNNI), int32 sums: exact
            return _FIXED["uint8_dot_parallel" if config.use_threads("sign_matmul", m * n * k, threads)
                          else "uint8_dot"]
        if config.INT16_LUT and m >= table["uint8_lut16_min_rows"] and n >= table["lut_min_cols"]:
            # int16 tables, widened to int32 every 32 groups: exact for every k the int32 result holds
            return path("uint8_lut16_parallel" if config.use_threads("sign_matmul", m * n * k, threads)
                        else "uint8_lut16")
        if config.INT8_MADD and "uint8_madd_min_rows" in table and m >= table["uint8_madd_min_rows"]:
            # ±1 int8 signs by vpmaddubsw (AVX2 tables only), int16 sums widened every 64 steps: exact
            return path("uint8_madd_parallel" if config.use_threads("sign_matmul", m * n * k, threads)
                        else "uint8_madd")
        if (config.SIGN_MATMUL_BLAS and config.SIGN_MATMUL_UINT8_FLOAT_PATH and k <= UINT8_F32_EXACT_MAX_K
                and _blas_rows(table, m, k, n)):
            return path("uint8_blas")
        if (config.FLOAT_LUT and m >= table["uint8_lut_min_rows"] and n >= table["lut_min_cols"]
                and k <= UINT8_F32_EXACT_MAX_K):
            # float32 tables of uint8 rows: every partial sum an integer <= 255 * k < 2**24, exact
            return path("uint8_lut_parallel" if config.use_threads("sign_matmul", m * n * k, threads)
                        else "uint8_lut")
        if table["uint8_masks_min_rows"] and m >= table["uint8_masks_min_rows"]:
            # byte masks of W unpacked once, integer sums: exact for every k
            return _FIXED["uint8_masks"]
        if (config.SIGN_MATMUL_UINT8_FLOAT_PATH and k <= UINT8_F32_EXACT_MAX_K
                and m * (n + table["uint8_float_half_cols"]) >= table["uint8_float_min_rows"] * n):
            # unpacking costs ~n, each row saves its plane split: few rows repay a narrow W
            return _FIXED["uint8_float"]
        return _FIXED["uint8_planes"]
    f32 = char == "f"
    if (config.FLOAT_LUT and f32 and "lut_dwords_max_rows" in table and m <= table["lut_dwords_max_rows"]
            and n >= table["lut_dwords_min_cols"] and (m < table["lut_min_rows"] or n < table["lut_min_cols"])):
        # few rows by lookups indexed by the packed words themselves (AVX-512 tables only; serial:
        # tested before use_threads, which costs as much as a 1 x 784 x 10 product)
        if not (threads is None or threads is False or threads is True):
            config.use_threads("sign_matmul", 0, threads)  # raises the TypeError for threads=2 etc.
        return _FIXED["lut_dwords"]
    threaded = config.use_threads("sign_matmul", m * n * k, threads)
    if config.FLOAT_LUT and f32 and m >= table["lut_min_rows"] and n >= table["lut_min_cols"]:
        return path("lut_parallel" if threaded else "lut")
    if (config.FLOAT_LUT8 and f32 and not threaded and "dwords_max_rows" in table and n >= table["dwords_min_cols"]
            and (m <= table["dwords_max_rows"] or n < table["lut3_min_cols"])):
        # 8-entry tables indexed by W's words (AVX2 tables only): few rows, or outputs too few for lut3
        return _FIXED["dwords"]
    if f32 and "bytes_max_rows" in table and m <= table["bytes_max_rows"] and n >= table["bytes_min_cols"]:
        # one row: 256-entry tables of 8 inputs, one lookup per byte of W (AVX2 tables only)
        return _FIXED["bytes"]
    if (config.FLOAT_LUT8 and f32 and "lut3_min_rows" in table and m >= table["lut3_min_rows"]
            and n >= table["lut3_min_cols"]):
        # 8-entry tables of 3 inputs (AVX2 tables only), ahead of BLAS
        return path("lut3_parallel" if threaded else "lut3")
    if config.SIGN_MATMUL_BLAS and f32 and _blas_rows(table, m, k, n):
        return path("blas")
    if f32 and not threaded and m <= table["f32_rows_max_rows"]:
        # sign flips from W's bits, 4 rows of W per load of x
        return _FIXED["f32_rows"]
    if m < table["unpack_min_rows_f32" if f32 else "unpack_min_rows_f64"]:
        return _FIXED["bits_parallel" if threaded else "bits"]
    return _FIXED["unpack_parallel" if threaded else "unpack"]


# ---------------------------------------------------------------------------
# dense_sign_matmul on float rows: the exact product, or the fastest one
# ---------------------------------------------------------------------------
#: The paths of :func:`plan_dense`, each with the form of ``sign(W)`` its kernel takes:
#: ``"bits"`` the packed rows, ``"nibbles"`` the lookup form (``avx512.nibbles_of``),
#: ``"rows"`` ±1 int8 (n, k), ``"signs"`` ±1 (k, n) of ``x``'s dtype (BLAS: ``x @ signs``),
#: ``"dwords"`` W's 32-bit words 8 outputs side by side (``avx2_dwords.dwords_of(bits, VECS1)``),
#: ``"packed"`` the packed signs for :func:`plan` (``sign_matmul``), ``"grid"`` ±1 float64 (k, n)
#: times the grid integers of ``x`` (``exact.grid_rows``; BLAS: ``q @ signs64``). Kernels:
#: ``exact_*`` ``(x, w_bits[, nibbles], out)`` (``exact_blas``: ``np.matmul``); ``lut*`` ``(x, nibbles, out, chunk)``;
#: ``lut_rows`` ``(x, nibbles, out, *lut_scratch(k))``; ``dwords_rows`` ``(x, dwords, out,
#: *dwords_scratch(k))``; ``rows`` ``(x, rows, out)``.
DENSE_PATHS: dict[str, tuple[Callable | None, str]] = {
    # exact (the same bits everywhere: fastbin.kernels.sign_product.exact)
    "exact_lut": (exact_lut_product, "nibbles"),
    "exact_lut_parallel": (exact_lut_product_parallel, "nibbles"),
    "exact_rows": (exact_sign_dot_rows, "bits"),
    "exact_rows_parallel": (exact_sign_dot_rows_parallel, "bits"),
    "exact_blas": (np.matmul, "grid"),  # the grid integers (exact.grid_rows) times ±1 float64 by BLAS
    # within float rounding
    "lut": (lut_product, "nibbles"),
    "lut_parallel": (lut_product_parallel, "nibbles"),
    "lut_rows": (sign_dot_lut, "nibbles"),
    "dwords_rows": (sign_dot_dwords, "dwords"),
    "rows": (sign_dot_rows, "rows"),
    "blas": (np.matmul, "signs"),
    "packed": (None, "packed"),
}
_DENSE = {name: Path(name, kernel) for name, (kernel, _) in DENSE_PATHS.items()}


def plan_dense(m: int, k: int, n: int, dtype, *, exact: bool, nibbles: bool = False, dwords: bool = False,
               force: str | None = None) -> Path:
    """The kernel of ``dense_sign_matmul`` on float ``x`` (m, k) of ``dtype`` times
    ``sign(W)`` (k, n): ``exact`` the exact product, else the fastest within float
    rounding; ``nibbles``: the caller holds the lookup form (a folded model's cache),
    so few float32 rows take the lookups of ``avx512.sign_dot_lut``; ``dwords``: the caller
    holds ``avx2_dwords``' word form (the fused pass, ``wants_dwords``), so few float32 rows
    take its 8-entry lookups (``sign_dot_dwords``; AVX2 tables). Threads are
    automatic (``use_threads``). ``force``: a name of ``DENSE_PATHS``. The path's
    ``args`` hold its table arguments (the lookups' pass size)."""
    if force is not None:
        return _dense(force)
    config = _config
    table = config.TABLE
    if exact:
        threaded = config.use_threads("sign_matmul", m * n * k, None)
        if config.FLOAT_LUT and m >= table["exact_lut_min_rows"] and n >= (
                table["exact_lut_min_cols"] if k < 2048 else table["exact_lut_min_cols_long"]):
            return _DENSE["exact_lut_parallel" if threaded else "exact_lut"]
        if (table["dense_exact_blas_min_rows"] and m >= table["dense_exact_blas_min_rows"]
                and n >= table["dense_exact_blas_min_cols"]):
            return _DENSE["exact_blas"]
        return _DENSE["exact_rows_parallel" if threaded else "exact_rows"]
    f32 = dtype == _FLOAT32
    if nibbles and f32 and config.FLOAT_LUT and m < table["few_rows"]:
        return _DENSE["lut_rows"]
    if dwords and f32 and config.FLOAT_LUT8 and "dwords_max_rows" in table and m < table["few_rows"]:
        return _DENSE["dwords_rows"]
    if m == 1 or m * n <= table["dense_rows_max_product"]:
        return _DENSE["rows"]
    if (config.FLOAT_LUT and f32 and n >= table["dense_lut_min_cols"] and k >= table["dense_lut_min_k"]
            and m >= table["dense_lut_min_rows" if k >= 512 else "dense_lut_min_rows_short"]):
        return _dense("lut_parallel" if config.use_threads("sign_matmul", m * n * k, None) else "lut")
    if m < table["dense_blas_max_rows"]:
        return _DENSE["blas"]
    if config.use_threads("sign_matmul", m * n * k, None):
        return _DENSE["packed"]
    if table["dense_packed_min_k"] and k >= table["dense_packed_min_k"]:
        return _DENSE["packed"]
    return _DENSE["blas" if n >= table["dense_blas_min_cols"] else "packed"]


def _dense(name: str) -> Path:
    if name in ("lut", "lut_parallel"):
        return Path(name, DENSE_PATHS[name][0], _table_args("lut_chunk_bytes"))
    return _DENSE[name]


def wants_nibbles(dtype) -> bool:
    """Whether a folded model of ``dtype`` keeps the lookup form of its first layer's
    signs (float32 where the lookup kernels run)."""
    return _config.FLOAT_LUT and np.dtype(dtype) == _FLOAT32


def wants_dwords(dtype) -> bool:
    """Whether the runtime's fused pass keeps ``avx2_dwords``' word form of a float32 model's
    first layer (where its 8-entry lookups run and the AVX-512 ones do not)."""
    return _config.FLOAT_LUT8 and "dwords_max_rows" in _config.TABLE and np.dtype(dtype) == _FLOAT32


def few_rows() -> int:
    """Batches below this many rows take the unblocked kernels and the fused pass of a
    folded model (``TABLE["few_rows"]``)."""
    return _config.TABLE["few_rows"]
