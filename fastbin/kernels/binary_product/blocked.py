"""XOR/popcount products of two packed sign matrices.

Every dot product is ``k - 2 * popcount(a_bits XOR w_bits)`` (the
back-transform in ``fastbin.bits``). Kernels trust their inputs' shapes and
dtypes and write into preallocated outputs. Each first checks that the padding
bits of both packed operands are zero and returns False, writing nothing, if
not (True on success): a few loads here, where a separate check would cost a
whole extra dispatch on a 1 x 784 call.

* ``binary_matmul_kernel(a_bits, w_bits, n_bits, out) -> bool``: ``a_bits``
  uint64 (m, n_words), ``w_bits`` uint64 (n, n_words), both C-contiguous;
  ``n_bits`` = k; ``out`` int32 (m, n) receives ``sign(A) @ sign(W)``.
* ``binary_matmul_rows(...)``: the same with the row blocks only (no lane
  panels in its call graph: a cold first call compiles less); the planner's
  kernel below 8 rows of ``a`` or ``w``.
* ``binary_matmul_parallel(...)``: the same, rows of ``a`` split over threads.
* ``binary_dense_sign_kernel(a_bits, w_bits, n_bits, thresholds, flip,
  out_bits) -> bool``: ``thresholds`` int64 (n,), ``flip`` bool (n,), ``out_bits``
  uint64 (m, ceil(n/64)), every word written; bit ``j`` of row ``i`` is 1 where
  ``dot < thresholds[j]`` (``flip[j]`` False) or ``dot > thresholds[j]``
  (``flip[j]`` True), i.e. the packed signs of the next layer's input.
* ``binary_dense_sign_parallel(...)``: the same over threads.

Speed: with at least 8 rows in both operands (``_dots_lanes``) the rows of
``a`` are transposed into panels of 8 (word-major) so that one 512-bit vector
holds a word of 8 rows; each panel meets 8 rows of ``w`` at a time with one
register accumulator per row of ``w`` (xor with a broadcast word, popcount,
add: no horizontal sums, no loop tails; without a native vector popcount,
byte-popcount sums or Harley-Seal adders, ``_lanes_bytes``), written by an
LLVM intrinsic that also stores the 8 x 8 result block with masked stores.
It measured 1.4x to 6x faster than the row kernel below from 1 to 64 words
per row (about 14-15 Gwords/s at 4096^3 on Zen 4, above a plain streaming
xor+popcount of two arrays).
Otherwise (fewer than 8 rows, e.g. batch 1) a 4 x 2 register block
(``_dots_rows``: 4 rows of ``a`` times 2 rows of ``w``, eight accumulators)
lets LLVM vectorise the word loop (``vpopcntq`` on AVX-512 VPOPCNTDQ). Rows
of ``w`` are visited in blocks that fit in L2 while the rows of ``a`` pass
over them.
The dense-sign kernels compute CHUNK rows of dots into a small scratch, then
threshold and pack them, so no (m, n) int32 matrix is ever written.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..._config import BYTE_POPCOUNT_LANES, jit, jit_parallel
from ..intrinsics import popcount
from ..pack import aligned_words, padding_is_zero
from ._lanes import LANES, lane_blocks, transpose_8x8
from ._lanes_bytes import byte_lane_blocks
from .threshold import below_word, signed_thresholds

__all__ = [
    "binary_matmul_kernel",
    "binary_matmul_rows",
    "binary_matmul_parallel",
    "binary_dense_sign_kernel",
    "binary_dense_sign_parallel",
]

#: Rows of ``a`` per register block.
ROW_BLOCK = 4
#: Bytes of ``w`` rows kept hot while the rows of ``a`` pass over them.
W_BLOCK_BYTES = 1 << 19
#: The lane kernel runs when both ``a`` and ``w`` have at least LANES rows
#: (measured faster at every such size tried, 1 to 64 words per row; with
#: fewer rows its vectors run partly empty and the row kernel wins).
#: Rows per task of the fused dense-sign kernels (int64 scratch of CHUNK x n).
CHUNK = 64

# The register blocks below are inlined into ``_dots_rows`` at Numba's IR level
# (``inline="always"``): as separate functions each was compiled and optimised on its
# own and then again linked into every caller; inlined, a cold first call of
# ``binary_matmul_rows`` (1 x 784 x 512) compiled in 0.7-0.8x the time (run time unchanged:
# benchmarks/results/2026-12-07-cold3.md).


@jit(inline="always")
def _pc_1x1(a, i, w, j):
    s = 0
    for t in range(a.shape[1]):
        s += popcount(a[i, t] ^ w[j, t])
    return s


@jit(inline="always")
def _pc_1x2(a, i, w, j):
    s0 = 0
    s1 = 0
    for t in range(a.shape[1]):
        x = a[i, t]
        s0 += popcount(x ^ w[j, t])
        s1 += popcount(x ^ w[j + 1, t])
    return s0, s1


@jit(inline="always")
def _pc_4x1(a, i, w, j):
    s0 = 0
    s1 = 0
    s2 = 0
    s3 = 0
    for t in range(a.shape[1]):
        y = w[j, t]
        s0 += popcount(a[i, t] ^ y)
        s1 += popcount(a[i + 1, t] ^ y)
        s2 += popcount(a[i + 2, t] ^ y)
        s3 += popcount(a[i + 3, t] ^ y)
    return s0, s1, s2, s3


@jit(inline="always")
def _pc_4x2(a, i, w, j):
    s00 = 0
    s01 = 0
    s10 = 0
    s11 = 0
    s20 = 0
    s21 = 0
    s30 = 0
    s31 = 0
    for t in range(a.shape[1]):
        y0 = w[j, t]
        y1 = w[j + 1, t]
        x0 = a[i, t]
        x1 = a[i + 1, t]
        x2 = a[i + 2, t]
        x3 = a[i + 3, t]
        s00 += popcount(x0 ^ y0)
        s01 += popcount(x0 ^ y1)
        s10 += popcount(x1 ^ y0)
        s11 += popcount(x1 ^ y1)
        s20 += popcount(x2 ^ y0)
        s21 += popcount(x2 ^ y1)
        s30 += popcount(x3 ^ y0)
        s31 += popcount(x3 ^ y1)
    return s00, s01, s10, s11, s20, s21, s30, s31


@jit(inline="always")
def _w_block(n, n_words):
    """Rows of ``w`` per cache block (even, at least 2)."""
    rows = W_BLOCK_BYTES // (8 * n_words)
    return max(2, rows - rows % 2)


@jit
def _dots_rows(a, w, k, i0, i1, out, o0):
    """``out[i - o0, j] = dot(a_i, w_j)`` for ``i0 <= i < i1`` and every ``j``.

    ``i1 - i0`` need not be a multiple of the row block; leftover rows and
    columns use the smaller blocks."""
    n = w.shape[0]
    block = _w_block(n, a.shape[1])
    i4 = i0 + (i1 - i0) // ROW_BLOCK * ROW_BLOCK
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        j2 = j0 + (j1 - j0) // 2 * 2
        for i in range(i0, i4, ROW_BLOCK):
            r = i - o0
            for j in range(j0, j2, 2):
                s00, s01, s10, s11, s20, s21, s30, s31 = _pc_4x2(a, i, w, j)
                out[r, j] = k - 2 * s00
                out[r, j + 1] = k - 2 * s01
                out[r + 1, j] = k - 2 * s10
                out[r + 1, j + 1] = k - 2 * s11
                out[r + 2, j] = k - 2 * s20
                out[r + 2, j + 1] = k - 2 * s21
                out[r + 3, j] = k - 2 * s30
                out[r + 3, j + 1] = k - 2 * s31
            if j2 < j1:
                s0, s1, s2, s3 = _pc_4x1(a, i, w, j2)
                out[r, j2] = k - 2 * s0
                out[r + 1, j2] = k - 2 * s1
                out[r + 2, j2] = k - 2 * s2
                out[r + 3, j2] = k - 2 * s3
        for i in range(i4, i1):
            r = i - o0
            for j in range(j0, j2, 2):
                s0, s1 = _pc_1x2(a, i, w, j)
                out[r, j] = k - 2 * s0
                out[r, j + 1] = k - 2 * s1
            if j2 < j1:
                out[r, j2] = k - 2 * _pc_1x1(a, i, w, j2)


#: Without a native vector popcount the blocks sum byte popcounts
#: (``_lanes_bytes``; Zen 2, AVX2, kernel alone: 1.17x at 1024^3, 1.5x at
#: 4096^3, 1.05x at 128 x 784 -> 10).
#: Only the set this CPU takes is made (8 intrinsics each).
_lane_block1, _lane_block2, _lane_block3, _lane_block4, _lane_block5, _lane_block6, _lane_block7, _lane_block8 = (
    byte_lane_blocks() if BYTE_POPCOUNT_LANES else lane_blocks()
)


@jit  # not inlined into _dots_lanes: inlined, 2048^3 threaded ran 3.2x slower (results/2026-12-08-cold4.md)
def _lane_block(panels, p, w, j, cols, k, out, row, valid):
    """The lane block for ``cols`` (1..8) rows of ``w`` from ``j``."""
    if cols >= 8:
        _lane_block8(panels, p, w, j, k, out, row, valid)
    elif cols == 7:
        _lane_block7(panels, p, w, j, k, out, row, valid)
    elif cols == 6:
        _lane_block6(panels, p, w, j, k, out, row, valid)
    elif cols == 5:
        _lane_block5(panels, p, w, j, k, out, row, valid)
    elif cols == 4:
        _lane_block4(panels, p, w, j, k, out, row, valid)
    elif cols == 3:
        _lane_block3(panels, p, w, j, k, out, row, valid)
    elif cols == 2:
        _lane_block2(panels, p, w, j, k, out, row, valid)
    else:
        _lane_block1(panels, p, w, j, k, out, row, valid)


@jit
def _dots_lanes(a, w, k, i0, i1, out, o0):
    """``_dots_rows`` with the vector lanes over rows of ``a``: the rows
    ``i0:i1`` are transposed into panels of LANES rows (panel ``q`` is rows
    ``q * n_words ..`` of ``panels``, word-major, contiguous and 64-byte
    aligned), then each panel meets 8 rows of ``w`` at a time
    (``_lane_block``), over blocks of ``w`` that fit in L2. No horizontal
    sums and no loop tails, so it beats the row-blocked kernel at every
    size measured with at least 8 rows of ``a`` and ``w`` each."""
    n_words = a.shape[1]
    rows = i1 - i0
    full = rows // LANES
    n_panels = (rows + LANES - 1) // LANES
    panels = aligned_words(n_panels * n_words, LANES)
    words8 = n_words // 8 * 8
    for q in range(full):
        i = i0 + q * LANES
        for t in range(0, words8, 8):
            transpose_8x8(a, i, t, panels, q * n_words + t)
        if words8 < n_words and n_words >= 8:
            # The last 8 words, overlapping the block before (written twice,
            # same values): no scalar tail loop.
            transpose_8x8(a, i, n_words - 8, panels, q * n_words + n_words - 8)
        elif words8 < n_words:
            for t in range(n_words):
                for r in range(LANES):
                    panels[q * n_words + t, r] = a[i + r, t]
    for q in range(full, n_panels):
        for t in range(n_words):
            for r in range(LANES):
                i = i0 + q * LANES + r
                # Lanes past the last row are computed but never stored.
                panels[q * n_words + t, r] = a[i, t] if i < i1 else np.uint64(0)
    n = w.shape[0]
    block = max(8, W_BLOCK_BYTES // (8 * n_words) // 8 * 8)
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        for q in range(n_panels):
            row = i0 + q * LANES - o0
            valid = min(LANES, i1 - i0 - q * LANES)
            for j in range(j0, j1, 8):
                _lane_block(panels, q * n_words, w, j, min(8, j1 - j), k, out, row, valid)


@jit
def _dots(a, w, k, i0, i1, out, o0):
    """``out[i - o0, j] = dot(a_i, w_j)`` for ``i0 <= i < i1``, every ``j``."""
    if i1 - i0 >= LANES and w.shape[0] >= LANES:
        _dots_lanes(a, w, k, i0, i1, out, o0)
    else:
        _dots_rows(a, w, k, i0, i1, out, o0)


#: Row chunks of the threaded kernels (a fixed count: ``get_num_threads()``
#: inside a kernel would make it uncacheable). Each chunk is contiguous, so it
#: keeps the L2 blocking of ``w``; 64 chunks balance up to ~16 threads.
MAX_TASKS = 64


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def _n_tasks(m):
    """Row chunks for the threaded kernels: at most MAX_TASKS, one vector
    of LANES rows at least (so chunks keep the lane kernel)."""
    blocks = (m + LANES - 1) // LANES
    return max(1, min(blocks, MAX_TASKS))


@jit
def binary_matmul_kernel(a_bits, w_bits, n_bits, out):
    # ``_dots`` (main's): the lanes alone here measured 0.98-1.79x main's time at 64x784x512 in
    # four in-process A/B runs on a loaded machine (benchmarks/results/2026-12-08-cold4.md)
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    _dots(a_bits, w_bits, n_bits, 0, a_bits.shape[0], out, 0)
    return True


@jit
def binary_matmul_rows(a_bits, w_bits, n_bits, out):
    """``binary_matmul_kernel`` with the row blocks only (``_dots_rows``): the
    planner's kernel for fewer than LANES rows of ``a`` or ``w``, where
    ``_dots`` takes them anyway. Its call graph has no lane blocks, so a
    first call on a cold cache compiles a third of ``binary_matmul_kernel``'s
    code (Numba types and compiles both branches of ``_dots``)."""
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    _dots_rows(a_bits, w_bits, n_bits, 0, a_bits.shape[0], out, 0)
    return True


@jit_parallel
def binary_matmul_parallel(a_bits, w_bits, n_bits, out):
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    m = a_bits.shape[0]
    tasks = _n_tasks(m)
    rows = (m + tasks - 1) // tasks
    rows = (rows + LANES - 1) // LANES * LANES
    for task in prange(tasks):
        i0 = min(m, task * rows)
        i1 = min(m, i0 + rows)
        _dots_lanes(a_bits, w_bits, n_bits, i0, i1, out, 0)  # the lanes alone (exact for any shape)
    return True


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def _pack_below(dots, i0, i1, sign, signed_thr, out_bits):
    """The packed threshold signs (``threshold``) of the rows ``i0:i1`` whose dots are
    the scratch ``dots`` (CHUNK, n) rows ``0:i1 - i0``, into ``out_bits[i0:i1]``."""
    n = dots.shape[1]
    for i in range(i0, i1):
        for t in range(out_bits.shape[1]):
            j0 = t * 64
            out_bits[i, t] = below_word(dots, i - i0, j0, min(n, j0 + 64), sign, signed_thr)


@jit
def _threshold_rows(a, w, k, sign, signed_thr, i0, i1, dots, out_bits):
    """Dots of rows ``i0:i1`` into the scratch ``dots`` (CHUNK, n), then
    their packed threshold signs into ``out_bits[i0:i1]`` (``threshold``)."""
    _dots(a, w, k, i0, i1, dots, i0)
    _pack_below(dots, i0, i1, sign, signed_thr, out_bits)


@jit
def binary_dense_sign_kernel(a_bits, w_bits, n_bits, thresholds, flip, out_bits):
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    m = a_bits.shape[0]
    sign, signed_thr = signed_thresholds(thresholds, flip)
    dots = np.empty((CHUNK, w_bits.shape[0]), dtype=np.int64)
    for i0 in range(0, m, CHUNK):
        i1 = min(m, i0 + CHUNK)
        _threshold_rows(a_bits, w_bits, n_bits, sign, signed_thr, i0, i1, dots, out_bits)
    return True


@jit_parallel
def binary_dense_sign_parallel(a_bits, w_bits, n_bits, thresholds, flip, out_bits):
    if not (padding_is_zero(a_bits, n_bits) and padding_is_zero(w_bits, n_bits)):
        return False
    m = a_bits.shape[0]
    sign, signed_thr = signed_thresholds(thresholds, flip)
    n_chunks = (m + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        dots = np.empty((CHUNK, w_bits.shape[0]), dtype=np.int64)
        i0 = c * CHUNK
        i1 = min(m, i0 + CHUNK)
        # the lanes alone (exact for any shape), as binary_matmul_parallel
        _dots_lanes(a_bits, w_bits, n_bits, i0, i1, dots, i0)
        _pack_below(dots, i0, i1, sign, signed_thr, out_bits)
    return True
