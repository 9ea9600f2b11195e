"""Binary x binary products (xor + popcount): the kernels side by side, and the planner.

* ``blocked``: the blocked kernels, with 8-row lane panels (serial and threaded),
  for ``binary_matmul`` and ``binary_dense_sign``, and the row blocks alone
  (``blocked_rows``: below 8 rows of ``a``, or of ``w`` unthreaded). The threaded kernels
  (``blocked_parallel`` of both planners) run the lane panels alone (a cold first call
  compiles what it runs); the serial ``blocked`` ones pick lanes or row blocks by shape;
* ``_lanes``: the lane block with a native vector popcount; ``_lanes_bytes``: the
  same with byte popcounts (CPUs without VPOPCNTDQ; a compile-time choice keyed by
  the CPU like the cache: ``_config.BYTE_POPCOUNT_LANES``);
* ``few_rows``: unblocked kernels, no scratch (batch 1);
* ``rows4``: a row at a time, 4 rows of ``w`` sharing the loads of each row of ``a``,
  byte popcounts in byte lanes (CPUs without a 64-bit vector popcount: AArch64);
  taken for at most ``TABLE["rows4_max_rows"]`` rows (0: never);
* ``threshold``: the folded batch norm + sign as one compare and the packed words;
* ``avx2``: 16-entry ``vpshufb`` tables of one operand's nibbles looked up at the other's
  byte-transposed nibbles (x86-64 with AVX2, no vector popcount); planned from the AVX2
  table's ``nibbles_min_rows`` rows and ``nibbles_min_cols`` outputs.

``xor_count`` and ``popcount`` are ``fastbin.kernels.intrinsics``'. This module is the
one place that chooses among the kernels, reading ``fastbin._config``'s thresholds
(``TABLE``) when called.

* :func:`plan` ``(m, n, n_words, *, threads=None, few=False, tail=False)``: the
  product ``k - 2 * popcount(a ^ w)`` into ``out`` (m, n); ``path(a_bits, w_bits,
  n_bits, out)``. ``few``: the caller (a folded model) takes the unblocked kernel
  below ``TABLE["few_rows"]`` rows (it writes any numeric dtype); ``tail``: a float
  tail's product, threaded only from ``TABLE["threaded_min_cols"]`` outputs.
* :func:`plan_sign` ``(m, n, n_words, *, threads=None, few=False)``: the product, a
  threshold test and packing (``binary_dense_sign``); ``path(a_bits, w_bits, n_bits,
  thresholds, flip, out_bits)``.

The blocked kernels return False (writing nothing) for non-zero padding bits; the
unblocked ones trust their input (a folded model's words).
"""
from __future__ import annotations

from ... import _config
from .._plan import Path, memoized
from ._lanes import LANES
from .avx2 import binary_matmul_nibbles, binary_matmul_nibbles_parallel
from .blocked import (
    binary_dense_sign_kernel,
    binary_dense_sign_parallel,
    binary_matmul_kernel,
    binary_matmul_parallel,
    binary_matmul_rows,
)
from .few_rows import binary_dot_rows, dense_sign_rows, dense_sign_rows4
from .rows4 import binary_dot_rows4, binary_matmul_rows4

__all__ = ["PATHS", "SIGN_PATHS", "NEEDS", "plan", "plan_sign"]

#: The paths of :func:`plan`.
PATHS: dict[str, Path] = {
    "blocked": Path("blocked", binary_matmul_kernel),
    "blocked_parallel": Path("blocked_parallel", binary_matmul_parallel),
    "blocked_rows": Path("blocked_rows", binary_matmul_rows),
    "few_rows": Path("few_rows", binary_dot_rows),
    "rows4": Path("rows4", binary_matmul_rows4),
    "few_rows4": Path("few_rows4", binary_dot_rows4),
    "nibbles": Path("nibbles", binary_matmul_nibbles),
    "nibbles_parallel": Path("nibbles_parallel", binary_matmul_nibbles_parallel),
}
#: What a path needs of the CPU (``fastbin._config`` probe names); absent: any CPU.
NEEDS: dict[str, str] = {"nibbles": "BYTE_LUT16", "nibbles_parallel": "BYTE_LUT16"}
#: The paths of :func:`plan_sign`.
SIGN_PATHS: dict[str, Path] = {
    "blocked": Path("blocked", binary_dense_sign_kernel),
    "blocked_parallel": Path("blocked_parallel", binary_dense_sign_parallel),
    "few_rows": Path("few_rows", dense_sign_rows),
    "few_rows4": Path("few_rows4", dense_sign_rows4),
}


@memoized(3, "binary_matmul", lambda m, n, n_words, *_: m * n * n_words)
def plan(m: int, n: int, n_words: int, threads=None, *, few: bool = False, tail: bool = False,
         force: str | None = None) -> Path:
    """The kernel of ``sign(A) @ sign(W)`` for ``a`` (m, n_words) and ``w`` (n, n_words)."""
    config = _config
    table = config.TABLE
    rows4 = m <= table["rows4_max_rows"]
    if rows4 and not (few or tail or force):  # the public few-row product, in a few steps (1 x 784)
        return PATHS["rows4"]
    if force is not None:
        return PATHS[force]
    if few and m < table["few_rows"]:
        return PATHS["few_rows4" if rows4 else "few_rows"]
    if tail and n < table["threaded_min_cols"]:
        return PATHS["rows4" if rows4 else "blocked" if m >= LANES and n >= LANES else "blocked_rows"]
    if rows4:
        return PATHS["rows4"]
    if (config.BYTE_LUT16 and "nibbles_min_rows" in table and m >= table["nibbles_min_rows"]
            and n >= table["nibbles_min_cols"] and n_words >= table["nibbles_min_words"]):
        # byte tables of a's nibbles (AVX2 tables only), ahead of the byte-popcount lanes
        return PATHS["nibbles_parallel" if config.use_threads("binary_matmul", m * n * n_words, threads)
                     else "nibbles"]
    threaded = config.use_threads("binary_matmul", m * n * n_words, threads)
    if m < LANES or (n < LANES and not threaded):
        # what "blocked" runs there (its row blocks; threaded: one task below LANES rows), without
        # compiling its lane blocks on a cold cache's first call
        return PATHS["blocked_rows"]
    return PATHS["blocked_parallel" if threaded else "blocked"]


@memoized(3, "binary_matmul", lambda m, n, n_words, *_: m * n * n_words)
def plan_sign(m: int, n: int, n_words: int, threads=None, *, few: bool = False, force: str | None = None) -> Path:
    """The kernel of the binary dense layer + threshold + packing."""
    if force is not None:
        return SIGN_PATHS[force]
    config = _config
    if few and m < config.TABLE["few_rows"]:
        return SIGN_PATHS["few_rows4" if m <= config.TABLE["rows4_max_rows"] else "few_rows"]
    if m < LANES:  # one task of the threaded kernel, whose lanes alone would run half empty: the row blocks
        if threads is not None:
            config.use_threads("binary_matmul", 0, threads)  # the TypeError for threads=2 etc.
        return SIGN_PATHS["blocked"]
    return SIGN_PATHS["blocked_parallel" if config.use_threads("binary_matmul", m * n * n_words, threads)
                      else "blocked"]
