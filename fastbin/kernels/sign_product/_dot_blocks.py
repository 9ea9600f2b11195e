"""Row-by-row dot products in register blocks, for ``sign_matmul``'s float path.

* ``dot_rows(x, s, i0, i1, out)``: ``x`` float32/float64 (m, k) and ``s``
  (n, k) of the same dtype (in fastbin: ``W``'s unpacked ±1 signs, n >= 1),
  both C-contiguous; ``out`` (m, n) of that dtype receives
  ``out[i, j] = sum_t x[i, t] * s[j, t]`` for rows ``i0 <= i < i1`` and every
  ``j`` (other rows untouched). Sums are vectorised along ``t`` and
  reassociated (``fastbin._config.FASTMATH``).

``dot_rows`` is one of two kernels with the same contract, picked at import
by ``fastbin._config.DOT_BLOCK`` (each register-block's accumulators
must stay in vector registers, see the measurements there):

* ``dot_rows_4x5``: 4 rows x 5 columns, 20 vector accumulators, for 32
  vector registers (x86 AVX-512, AArch64).
* ``dot_rows_4x3``: 4 rows x 3 columns, 12 accumulators + 3 loaded rows of
  ``s``, for 16 (x86 AVX2/AVX/SSE).

Both are compiled only when called, so the tests run both on any CPU. Both
use ``ROW_BLOCK`` = 4 rows, which the threaded kernel uses as its unit of work.
"""
from __future__ import annotations

from ..._config import DOT_BLOCK, jit

__all__ = [
    "COL_BLOCK",
    "ROW_BLOCK",
    "dot_rows",
    "dot_rows_4x3",
    "dot_rows_4x5",
]

ROW_BLOCK = 4
COL_BLOCK_4X5 = 5
COL_BLOCK_4X3 = 3


@jit
def _dot_4x1(x, s, i, j, zero, out):
    """Rows ``i..i+3`` times column ``j`` (the leftover columns of a block)."""
    a0 = b0 = c0 = d0 = zero
    for t in range(x.shape[1]):
        y = s[j, t]
        a0 += x[i, t] * y
        b0 += x[i + 1, t] * y
        c0 += x[i + 2, t] * y
        d0 += x[i + 3, t] * y
    out[i, j] = a0
    out[i + 1, j] = b0
    out[i + 2, j] = c0
    out[i + 3, j] = d0


@jit
def _dot_1x1(x, s, i, j, zero, out):
    """Row ``i`` times column ``j`` (leftover rows and columns)."""
    a0 = zero
    for t in range(x.shape[1]):
        a0 += x[i, t] * s[j, t]
    out[i, j] = a0


@jit
def dot_rows_4x5(x, s, i0, i1, out):
    """``out[i, j] = dot(x_i, s_j)`` for rows ``i0:i1`` and every ``j``.

    4 x 5 register blocks (20 vector accumulators, 9 loads per 20 FMAs; a
    4 x 2 block measured 1.2x (float32) to 1.5x (float64) slower at
    128 x 784 -> 10 on Zen 4), then 4 x 1 for leftover columns and 1 x 5 /
    1 x 1 for leftover rows."""
    k = x.shape[1]
    n = s.shape[0]
    # A zero of x's dtype (s holds finite ±1): sums start at 0 and keep the
    # dtype; starting from the t = 0 products instead left an odd trip count
    # and measured 1.5x slower.
    zero = s[0, 0] - s[0, 0]
    n5 = n // COL_BLOCK_4X5 * COL_BLOCK_4X5
    i4 = i0 + (i1 - i0) // ROW_BLOCK * ROW_BLOCK
    for i in range(i0, i4, ROW_BLOCK):
        for j in range(0, n5, COL_BLOCK_4X5):
            a0 = a1 = a2 = a3 = a4 = zero
            b0 = b1 = b2 = b3 = b4 = zero
            c0 = c1 = c2 = c3 = c4 = zero
            d0 = d1 = d2 = d3 = d4 = zero
            for t in range(k):
                y0 = s[j, t]
                y1 = s[j + 1, t]
                y2 = s[j + 2, t]
                y3 = s[j + 3, t]
                y4 = s[j + 4, t]
                x0 = x[i, t]
                x1 = x[i + 1, t]
                x2 = x[i + 2, t]
                x3 = x[i + 3, t]
                a0 += x0 * y0
                a1 += x0 * y1
                a2 += x0 * y2
                a3 += x0 * y3
                a4 += x0 * y4
                b0 += x1 * y0
                b1 += x1 * y1
                b2 += x1 * y2
                b3 += x1 * y3
                b4 += x1 * y4
                c0 += x2 * y0
                c1 += x2 * y1
                c2 += x2 * y2
                c3 += x2 * y3
                c4 += x2 * y4
                d0 += x3 * y0
                d1 += x3 * y1
                d2 += x3 * y2
                d3 += x3 * y3
                d4 += x3 * y4
            out[i, j] = a0
            out[i, j + 1] = a1
            out[i, j + 2] = a2
            out[i, j + 3] = a3
            out[i, j + 4] = a4
            out[i + 1, j] = b0
            out[i + 1, j + 1] = b1
            out[i + 1, j + 2] = b2
            out[i + 1, j + 3] = b3
            out[i + 1, j + 4] = b4
            out[i + 2, j] = c0
            out[i + 2, j + 1] = c1
            out[i + 2, j + 2] = c2
            out[i + 2, j + 3] = c3
            out[i + 2, j + 4] = c4
            out[i + 3, j] = d0
            out[i + 3, j + 1] = d1
            out[i + 3, j + 2] = d2
            out[i + 3, j + 3] = d3
            out[i + 3, j + 4] = d4
        for j in range(n5, n):
            _dot_4x1(x, s, i, j, zero, out)
    for i in range(i4, i1):
        for j in range(0, n5, COL_BLOCK_4X5):
            a0 = a1 = a2 = a3 = a4 = zero
            for t in range(k):
                v = x[i, t]
                a0 += v * s[j, t]
                a1 += v * s[j + 1, t]
                a2 += v * s[j + 2, t]
                a3 += v * s[j + 3, t]
                a4 += v * s[j + 4, t]
            out[i, j] = a0
            out[i, j + 1] = a1
            out[i, j + 2] = a2
            out[i, j + 3] = a3
            out[i, j + 4] = a4
        for j in range(n5, n):
            _dot_1x1(x, s, i, j, zero, out)


@jit
def dot_rows_4x3(x, s, i0, i1, out):
    """``dot_rows_4x5``'s contract with 4 x 3 register blocks: 12 vector
    accumulators + 3 rows of ``s`` in registers (the rows of ``x`` are FMA
    memory operands) + 1 temporary fill 16 ymm without spills. On Zen 2 it
    beat 2x4, 3x4, 2x5, 4x2, 3x3, 5x2, 6x2, 5x3 and 4x4 (times in
    ``fastbin._config``). Then 4 x 1 for leftover columns (LLVM interleaves
    it to 8 accumulators) and 1 x 3 / 1 x 1 for leftover rows."""
    k = x.shape[1]
    n = s.shape[0]
    zero = s[0, 0] - s[0, 0]  # as in dot_rows_4x5
    n3 = n // COL_BLOCK_4X3 * COL_BLOCK_4X3
    i4 = i0 + (i1 - i0) // ROW_BLOCK * ROW_BLOCK
    for i in range(i0, i4, ROW_BLOCK):
        for j in range(0, n3, COL_BLOCK_4X3):
            a0 = a1 = a2 = zero
            b0 = b1 = b2 = zero
            c0 = c1 = c2 = zero
            d0 = d1 = d2 = zero
            for t in range(k):
                y0 = s[j, t]
                y1 = s[j + 1, t]
                y2 = s[j + 2, t]
                x0 = x[i, t]
                x1 = x[i + 1, t]
                x2 = x[i + 2, t]
                x3 = x[i + 3, t]
                a0 += x0 * y0
                a1 += x0 * y1
                a2 += x0 * y2
                b0 += x1 * y0
                b1 += x1 * y1
                b2 += x1 * y2
                c0 += x2 * y0
                c1 += x2 * y1
                c2 += x2 * y2
                d0 += x3 * y0
                d1 += x3 * y1
                d2 += x3 * y2
            out[i, j] = a0
            out[i, j + 1] = a1
            out[i, j + 2] = a2
            out[i + 1, j] = b0
            out[i + 1, j + 1] = b1
            out[i + 1, j + 2] = b2
            out[i + 2, j] = c0
            out[i + 2, j + 1] = c1
            out[i + 2, j + 2] = c2
            out[i + 3, j] = d0
            out[i + 3, j + 1] = d1
            out[i + 3, j + 2] = d2
        for j in range(n3, n):
            _dot_4x1(x, s, i, j, zero, out)
    for i in range(i4, i1):
        for j in range(0, n3, COL_BLOCK_4X3):
            a0 = a1 = a2 = zero
            for t in range(k):
                v = x[i, t]
                a0 += v * s[j, t]
                a1 += v * s[j + 1, t]
                a2 += v * s[j + 2, t]
            out[i, j] = a0
            out[i, j + 1] = a1
            out[i, j + 2] = a2
        for j in range(n3, n):
            _dot_1x1(x, s, i, j, zero, out)


# The block for this CPU. Choosing at import is safe with Numba's on-disk
# cache: callers' cache entries are keyed by the CPU name + features that
# DOT_BLOCK is derived from (fastbin._config).
if DOT_BLOCK == "4x5":
    dot_rows = dot_rows_4x5
    COL_BLOCK = COL_BLOCK_4X5
else:
    dot_rows = dot_rows_4x3
    COL_BLOCK = COL_BLOCK_4X3
