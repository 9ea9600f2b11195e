"""The exact product ``x @ sign(W)`` of float rows: its contract, and how it stays cheap.

**The contract.** For float32/float64 ``x`` (m, k) and packed signs of ``W`` (k, n), the
evaluation path's product is one function of its inputs, bit for bit: every engine (the
numba engine, the NumPy-only one, the fused forward pass), every CPU (AVX-512, AVX2,
ARM64 and 32-bit ARM), every thread count and batch size, the trainer's ``Model.forward``
and the exported C give the same bits. It is ``fastbin.reference.dense_sign_matmul``:
each row of ``x`` is rounded to integers ``q`` on a grid of ``2**-G`` of its largest
``|x|`` (``fastbin.reference.sign_grid``; ``G = grid_bits(k)``), the signed sum of ``q``
is an integer below ``2**52`` (exact in float64 in any order), and the result is scaled
back by two powers of two and rounded once to the output's dtype.

**Why.** A binary layer's output is a sign: a product that rounds one way on the x86
machine a model was validated on and the other way on the board it is deployed to flips
that sign, and the flip runs through every later layer. With one exact product, a model
folded and exported predicts what the trained model predicted, class for class, on
every target (tests/test_fold.py, tests/test_cross_arch.py, the C export's tests).

**How it stays cheap.** The sum is integer arithmetic, so any order is right: the loops
below are vectorised and reassociated freely, rows go over threads, and on AVX-512 the
sums are table lookups (``exact_lut_product``: each grid integer split into
``exact_chunks(k)`` chunks whose float32 sums are exact integers). Most callers need
less than the exact value and pay for it only where it matters: a sign stage takes the
fastest product and refines it to the exact one only near a threshold
(``refine_near_thresholds``), and ``predict`` through a float tail certifies most rows'
classes from an interval around the fast product (``sign_dot_interval``), computing
exactly only the near ties. Which kernel runs is ``fastbin.kernels.sign_product.plan_dense``'s
choice.

``exact_sign_dot_rows`` and ``refine_near_thresholds`` take ``q``, a (1, k) float64
scratch row (the caller's, so that a fused forward pass allocates nothing per call).

* ``exact_sign_dot_rows(x, w_bits, out, q)``: ``out`` (m, n) of ``x``'s dtype
  gets the exact product of float ``x`` (m, k) and the packed signs
  ``w_bits`` (n, ceil(k/64)) uint64 (zero padding bits); one row at a time,
  each output a signed sum of the row's grid integers straight from the bits
  (``fastbin.kernels.sign_product._lanes.signed_dot``);
  ``exact_sign_dot_rows_parallel(x, w_bits, out)`` the same with blocks of
  rows over threads.
* ``exact_lut_product(x, w_bits, nib, out)`` / ``_parallel``: the same bits by the
  table lookups of ``avx512`` (``nib``: the nibble form of the signs; where
  ``FLOAT_LUT``), rows 4 at a time.
* ``refine_near_thresholds(x, w_bits, dot, thresholds, unit, tiny, q)``: ``dot``
  (m, n) is a fast float product of ``x`` (any summation order: BLAS,
  ``sign_matmul``, ``sign_dot_rows``). Wherever ``dot[i, j]`` is close enough
  to ``thresholds[j]`` that its rounding error could put it on the other
  side, it is replaced in place by the exact product; elsewhere the fast and
  the exact value lie on the same side of the threshold, so ``dot < t`` and
  ``dot > t`` decide as the exact product does. The bound: a sum of ``k``
  terms ``±x`` in any order, rounded with unit roundoff ``unit`` at each
  step, is within ``(k - 1) * unit / (1 - (k - 1) * unit) * sum |x|`` of the
  real sum (Higham, *Accuracy and Stability of Numerical Algorithms*, 4.2);
  every fast product here is such a sum (BLAS, ``sign_dot_rows``,
  ``sign_matmul``'s signed sums, the table lookups of
  ``fastbin.kernels.sign_product.avx512``: their table entries are partial sums), and
  the kernel takes the bound for ``k + 1`` terms
  (``fastbin.reference.THRESHOLD_BOUND_FACTOR`` times it; ``unit`` and ``tiny``
  from ``fastbin.reference.rounding_constants``), plus the grid's
  own rounding (``k`` half steps) and two ulps of the threshold (``tiny``:
  the dtype's smallest subnormal, for thresholds near zero).

The grid and the scaling are compiled without ``reassoc`` (``FASTMATH_EXACT``)
so that ``x * u1 * u2`` and ``acc * s1 * s2`` keep their order, as in NumPy.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from ..._config import FASTMATH_EXACT, jit, jit_disabled, jit_parallel
from ...reference import THRESHOLD_BOUND_FACTOR
from ._lanes import signed_dot
from .avx512 import BLOCK, ROWS, _lut_block4_upto, _tables

__all__ = ["exact_sign_dot_rows", "exact_sign_dot_rows_parallel", "exact_lut_product", "exact_lut_product_parallel",
           "exact_chunks", "refine_near_thresholds", "grid_row", "grid_scratch", "exact_row", "scaled", "grid_bits_of",
           "row_bound", "sign_dot_interval", "first_nonfinite_row"]

def grid_scratch(k):
    """A scratch row ``q`` for ``k`` inputs."""
    return np.empty((1, k), np.float64)


@jit(fastmath=set(FASTMATH_EXACT))
def grid_row(x_row, q):
    """``q[0, :] = rint(x_row * u1 * u2)`` (float64) as ``fastbin.reference.sign_grid``;
    returns ``(s1, s2)``, the grid step's two factors. A row holding a NaN or an
    infinity is copied to ``q`` as it is, with ``s1 = s2 = 1``: its signed sum is then
    the plain float64 sum (NaN or ±inf in any order)."""
    k = x_row.shape[0]
    g = grid_bits_of(k)
    # max |x| as the max of the bit patterns of |x| (their order is the numbers' order, NaN and
    # inf above every finite value): an integer reduction, which vectorises; a float max or sum
    # reduction would not without reassociation (FASTMATH_EXACT).
    top_bits = np.uint64(0)
    for t in range(k):
        top_bits = max(top_bits, _f64_bits(np.float64(x_row[t])) & _ABS_MASK)
    if top_bits >= _INF_BITS:
        for t in range(k):
            q[0, t] = np.float64(x_row[t])
        return 1.0, 1.0
    e = math.frexp(_bits_f64(top_bits))[1]
    up, down = g - e, e - g
    u1, u2 = math.ldexp(1.0, up // 2), math.ldexp(1.0, up - up // 2)
    for t in range(k):
        q[0, t] = np.rint(np.float64(x_row[t]) * u1 * u2)
    return math.ldexp(1.0, down // 2), math.ldexp(1.0, down - down // 2)


_ABS_MASK = np.uint64(0x7FFFFFFFFFFFFFFF)
_INF_BITS = np.uint64(0x7FF0000000000000)


@intrinsic
def _f64_bits(typingctx, value):
    """The IEEE bit pattern of a float64 (a bitcast)."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(value), codegen


@intrinsic
def _bits_f64(typingctx, value):
    """The float64 of an IEEE bit pattern (a bitcast)."""
    if value != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(value), codegen


if jit_disabled():  # plain-Python twins
    def _f64_bits(value):  # noqa: F811
        return np.float64(value).view(np.uint64)

    def _bits_f64(value):  # noqa: F811
        return np.uint64(value).view(np.float64)


@jit(fastmath=set(FASTMATH_EXACT))
def scaled(acc, s1, s2):
    """``acc * s1 * s2`` in that order (exact: powers of two, no underflow of the steps)."""
    return acc * s1 * s2


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def grid_bits_of(k):
    """``fastbin.reference.grid_bits(k)``: ``52 - ceil(log2(k))``."""
    v, n = k - 1, 0
    while v > 0:
        v >>= 1
        n += 1
    return 52 - n


@jit
def grid_rows(x, q, steps):
    """:func:`grid_row` for every row of ``x`` (m, k): ``q`` (m, k) float64 the grid
    integers, ``steps`` (2, m) float64 each row's two step factors ``s1``, ``s2``; the
    exact product is then ``(q @ sign(W)) * s1 * s2`` rounded once, in any summation
    order (float64 BLAS: the ``"exact_blas"`` path of ``plan_dense``)."""
    for i in range(x.shape[0]):
        s1, s2 = grid_row(x[i], q[i : i + 1])
        steps[0, i] = s1
        steps[1, i] = s2


@jit
def exact_sign_dot_rows(x, w_bits, out, q):
    for i in range(x.shape[0]):
        exact_row(x, i, w_bits, out, q)


@jit
def exact_row(x, i, w_bits, out, q):
    s1, s2 = grid_row(x[i], q)
    for j in range(w_bits.shape[0]):
        out[i, j] = scaled(signed_dot(q, 0, w_bits, j), s1, s2)


@jit_parallel
def exact_sign_dot_rows_parallel(x, w_bits, out):
    """:func:`exact_sign_dot_rows` with rows over threads (a grid row per thread's block)."""
    m = x.shape[0]
    n_blocks = (m + 63) // 64
    for b in prange(n_blocks):
        q = np.empty((1, x.shape[1]), np.float64)
        for i in range(b * 64, min(m, b * 64 + 64)):
            exact_row(x, i, w_bits, out, q)


@jit
def row_bound(x_row, unit):
    """The bound of :func:`refine_near_thresholds` for one row: ``|fast - S| <= bound``
    for any fast float product ``fast`` of the row (a k-term sum in any order, unit
    roundoff ``unit``) and the real sum ``S`` of its grid integers (the exact product
    before its one rounding); ``inf`` for a row holding a NaN or an infinity. The scan
    is branch-free (it vectorises)."""
    k = x_row.shape[0]
    g = grid_bits_of(k)
    total = 0.0
    top_bits = np.uint64(0)
    for t in range(k):
        v = np.float64(x_row[t])
        total += abs(v)  # reassociated: a bound only, 1e-9 of slack covers any order's rounding
        # max |x| as the max of the bit patterns of |x| (grid_row's integer reduction, which
        # vectorises where a float max without nnan does not); NaN and inf sit above, and
        # then bound is not finite anyway
        top_bits = max(top_bits, _f64_bits(v) & _ABS_MASK)
    top = _bits_f64(top_bits)
    nk = THRESHOLD_BOUND_FACTOR * (k + 1) * unit
    gamma = nk / (1.0 - nk)
    bound = gamma * total * (1.0 + 1e-9) + k * top * math.ldexp(1.0, -g)
    if not bound <= 1.7976931348623157e308:  # a NaN or an infinity in the row: all exact
        bound = math.inf
    return bound


@jit
def first_nonfinite_row(x):
    """The first row of float ``x`` (m, k) holding a NaN or an infinity, or -1: per row the
    largest bit pattern of ``|x|`` (``grid_row``'s integer reduction, which vectorises), at or
    above infinity's. Branch-free within a row."""
    for i in range(x.shape[0]):
        top_bits = np.uint64(0)
        for t in range(x.shape[1]):
            top_bits = max(top_bits, _f64_bits(np.float64(x[i, t])) & _ABS_MASK)
        if top_bits >= _INF_BITS:
            return i
    return -1


@jit
def refine_row(x_row, w_bits, dot_row, t64, slack, unit, q, near):
    """:func:`refine_near_thresholds` for one row: ``t64`` (n,) the thresholds in float64,
    ``slack`` (n,) their two ulps (``2 * (2 |t| unit + tiny)``), ``q`` a (1, k) float64
    scratch, ``near`` an (n,) bool scratch. The scans over the row and over the outputs
    are branch-free; only the entries found near their threshold are recomputed."""
    bound = row_bound(x_row, unit)
    count = 0
    for j in range(dot_row.shape[0]):
        is_near = not abs(np.float64(dot_row[j]) - t64[j]) > bound + slack[j]
        near[j] = is_near
        count += is_near
    if count:
        s1, s2 = grid_row(x_row, q)
        for j in range(dot_row.shape[0]):
            if near[j]:
                dot_row[j] = scaled(signed_dot(q, 0, w_bits, j), s1, s2)


@jit
def refine_near_thresholds(x, w_bits, dot, thresholds, unit, tiny, q):
    n = dot.shape[1]
    t64 = np.empty(n, np.float64)
    slack = np.empty(n, np.float64)
    for j in range(n):
        t64[j] = np.float64(thresholds[j])
        slack[j] = 2.0 * (abs(t64[j]) * 2.0 * unit + tiny)
    near = np.empty(n, np.bool_)
    for i in range(x.shape[0]):
        refine_row(x[i], w_bits, dot[i], t64, slack, unit, q, near)


@jit
def sign_dot_interval(x, fast, unit, lo, hi):
    """``lo <= e <= hi`` (each (m, n) of ``fast``'s dtype) for the exact product ``e`` of
    ``x`` (m, k) and sign(W), from a fast float product ``fast`` of them: ``fast -/+
    row_bound`` widened by ``1e-12 (|fast| + bound)`` (more than the float64 rounding of
    the two operations), then rounded to the dtype, which is monotone, as the exact
    product's own rounding is. A row holding a NaN or an infinity gets -inf and +inf."""
    for i in range(x.shape[0]):
        bound = row_bound(x[i], unit)
        for j in range(fast.shape[1]):
            f = np.float64(fast[i, j])
            width = bound + 1e-12 * (abs(f) + bound)
            lo[i, j] = f - width
            hi[i, j] = f + width


# ---------------------------------------------------------------------------
# The exact product by table lookups
# ---------------------------------------------------------------------------
@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def exact_chunks(k):
    """``(bits, count)``: the exact product splits each
    grid integer ``q`` (``|q| <= 2**G``, ``G = grid_bits(k)``) into ``count`` chunks of
    ``bits = 24 - ceil(log2 k)`` bits, ``q = sum_c chunk_c * 2**(bits * c)`` (the low
    chunks in ``[0, 2**bits)``, the top one signed, ``|chunk| <= 2**bits``), so that a
    signed sum of ``k`` chunks, and every partial sum of it, is an integer of at most
    ``k * 2**bits <= 2**24``: exact in float32, in any order, table entries included."""
    g = grid_bits_of(k)
    bits = g - 28  # 24 - ceil(log2 k), as G = 52 - ceil(log2 k)
    return bits, (g + bits - 1) // bits


@jit
def _exact_block(x, w_bits, nib, out, i0, q, chunk_row, tabs, acc, totals):
    """Rows ``i0 .. i0 + 4`` of the exact product ``out`` (fewer at the end): each row's
    grid integers (``grid_row``), then per chunk (``exact_chunks``) the tables of the
    chunk values and the lookups, whose float32 sums are exact integers, added to
    int64 ``totals`` shifted into place; the total is scaled back and rounded once
    (``scaled``), as ``exact_row``'s. A row holding a NaN or an infinity takes
    ``exact_row`` (its plain float64 sum)."""
    m, k = x.shape
    n = out.shape[1]
    k4 = nib.shape[0]
    rows = min(ROWS, m - i0)
    bits, count = exact_chunks(k)
    low = np.int64((1 << bits) - 1)
    finite = np.zeros(ROWS, np.bool_)
    steps = np.ones((ROWS, 2), np.float64)
    for r in range(rows):
        s1, s2 = grid_row(x[i0 + r], q[r : r + 1])
        steps[r, 0], steps[r, 1] = s1, s2
        ok = True
        for t in range(k):
            ok &= abs(q[r, t]) <= 4503599627370496.0  # 2**52; False for NaN and inf
        finite[r] = ok
    totals[:, :] = 0
    for c in range(count):
        shift = np.int64(bits * c)
        for r in range(ROWS):
            if r < rows and finite[r]:
                for t in range(k):
                    v = np.int64(q[r, t]) >> shift
                    if c < count - 1:
                        v &= low
                    chunk_row[t] = np.float32(v)
                _tables(chunk_row, tabs[r], 0, k4)
            else:
                tabs[r, :] = 0
        for j in range(0, n, BLOCK):
            width = n - j
            _lut_block4_upto(tabs, nib, j, width, acc)
            for r in range(rows):
                for e in range(min(BLOCK, width)):
                    totals[r, j + e] += np.int64(acc[r, e]) << shift
    for r in range(rows):
        if finite[r]:
            for j in range(n):
                out[i0 + r, j] = scaled(np.float64(totals[r, j]), steps[r, 0], steps[r, 1])
        else:
            exact_row(x, i0 + r, w_bits, out, q[r : r + 1])


@jit
def exact_lut_product(x, w_bits, nib, out):
    """``out`` (m, n) = the exact ``x @ sign(W)`` (bit for bit
    ``exact_sign_dot_rows``'s) for float ``x`` (m, k), by table lookups: ``nib`` the nibble form of
    the packed signs ``w_bits`` (n, ceil(k/64)) uint64 (zero padding bits), rows 4 at
    a time, ``exact_chunks(k)[1]`` lookups per input and output (module section)."""
    m, k = x.shape
    q = np.empty((ROWS, k), np.float64)
    chunk_row = np.empty(k, np.float32)
    tabs = np.empty((ROWS, nib.shape[0] * 16), np.float32)
    acc = np.empty((ROWS, BLOCK), np.float32)
    totals = np.empty((ROWS, out.shape[1]), np.int64)
    for i0 in range(0, m, ROWS):
        _exact_block(x, w_bits, nib, out, i0, q, chunk_row, tabs, acc, totals)


@jit_parallel
def exact_lut_product_parallel(x, w_bits, nib, out):
    """:func:`exact_lut_product` with blocks of 4 rows over threads."""
    m, k = x.shape
    n_blocks = (m + ROWS - 1) // ROWS
    for b in prange(n_blocks):
        q = np.empty((ROWS, k), np.float64)
        chunk_row = np.empty(k, np.float32)
        tabs = np.empty((ROWS, nib.shape[0] * 16), np.float32)
        acc = np.empty((ROWS, BLOCK), np.float32)
        totals = np.empty((ROWS, out.shape[1]), np.int64)
        _exact_block(x, w_bits, nib, out, b * ROWS, q, chunk_row, tabs, acc, totals)
