"""Fused linear layer + softmax cross-entropy: one softmax-regression (or
BinaryConnect) training step's loss and weight/bias gradients.

With ``x`` (m, k), ``W`` (k, c), ``b`` (c,)::

    z  = x @ W + b                         (m, c)
    dz = (softmax(z) * rowsum(t) - t) / m  (see fastbin.kernels.softmax_ce)
    dw = x.T @ dz                          (k, c)
    db = sum_i dz[i]                       (c,)

How (why it is fast for small ``c``): rows of ``x`` are taken ``ROWS`` (8) at
a time. For each block the ``ROWS x c`` logits are dot products along ``k``
against ``W`` transposed to (c, k), in 8 x 2 register blocks (4 x 3 with 16
vector registers, ``_block_logits``), so the inner loop is contiguous in
``k`` and vectorises, each loaded weight serving several rows.
Softmax and ``dz`` of the block stay in a ``ROWS x c`` buffer, and then
``dw.T[j] += sum_r dz[r, j] * x[r]`` while the block's rows are still in
cache, each load/store of ``dw.T`` serving ``ROWS`` rows. So ``x`` comes
from memory once, and the only intermediates are the transposed ``W`` and
``dw`` (c, k), the same size as the output, and the ROWS x c block buffer;
``dw`` is transposed back into the output at the end. Both inner loops run
near the FMA throughput bound (measured 21-27 us of 17 us ideal per pass for
float32 128 x 784 x 10 on Zen 4); splitting ``k`` into cache-sized chunks was
measured slower.

A packed ``w`` (``PackedSigns`` bits, c rows of k bits meaning ``sign(W)``;
convention in ``fastbin.bits``) is unpacked once per call into the same
(c, k) buffer of +-1, so both variants share the core.

Kernels trust their inputs: shapes, dtypes, C-contiguity, label range and
zero padding bits are checked by :func:`fastbin.linear_softmax_cross_entropy`.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .._config import LOGITS_BLOCK, jit, jit_parallel
from .pack import unpack_rows
from .sign_product._dot_blocks import dot_rows_4x3
from .softmax_ce import ce_block_labels, ce_block_targets

__all__ = [
    "ROWS",
    "linear_softmax_ce_labels",
    "linear_softmax_ce_targets",
    "linear_softmax_ce_packed_labels",
    "linear_softmax_ce_packed_targets",
    "linear_softmax_ce_parallel",
]

#: Rows of ``x`` per block: each weight load serves ROWS rows in the forward
#: pass and each load/store of dw serves ROWS rows in the backward pass
#: (measured on Zen 4, 128 x 784 x 10: 8 rows x 2 classes beat 4 x 2 by 1.1-1.4x
#: in the forward pass and 4 x 1 by 2x in the backward pass). The kernel
#: bodies below are written out for exactly 8.
ROWS = 8


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def _aligned_empty(rows, cols, like):
    """Uninitialised C-contiguous (rows, cols) array of ``like``'s dtype whose
    data starts on a 64-byte boundary (Numba's own allocations are only
    32-byte aligned; a zmm load that straddles two cache lines costs two, and
    when ``cols * itemsize`` is a multiple of 64, e.g. k = 784, every row
    starts aligned. Measured about 10% for 128 x 784 x 10)."""
    itemsize = like.itemsize
    buf = np.empty(rows * cols + 64 // itemsize, dtype=like.dtype)
    offset = ((64 - buf.ctypes.data % 64) % 64) // itemsize
    return buf[offset : offset + rows * cols].reshape((rows, cols))


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def _aligned_zeros(rows, cols, like):
    out = _aligned_empty(rows, cols, like)
    for i in range(rows):  # loops, not out[:] = 0: inlined into the threaded driver that is no parfor
        for j in range(cols):
            out[i, j] = 0
    return out


# The register blocks stay functions: inlined at Numba's IR level (fewer libraries on a cold
# first call) the serial 128 x 784 x 10 step ran 3.5x slower (benchmarks/results/2026-12-08-cold4.md).
@jit
def _dots_8x2(xb, wa, wb, zero, z, j):
    """``z[r, j] = xb[r] . wa`` and ``z[r, j + 1] = xb[r] . wb`` for the 8 rows
    of ``xb``: 16 FMAs per 10 loads, so the FMA units, not the loads, set the
    pace (4 rows x 1 class was load-bound, measured 1.4x slower)."""
    x0, x1, x2, x3, x4, x5, x6, x7 = xb[0], xb[1], xb[2], xb[3], xb[4], xb[5], xb[6], xb[7]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = zero
    for kk in range(x0.shape[0]):
        wv = wa[kk]
        wu = wb[kk]
        v = x0[kk]
        a0 += v * wv
        b0 += v * wu
        v = x1[kk]
        a1 += v * wv
        b1 += v * wu
        v = x2[kk]
        a2 += v * wv
        b2 += v * wu
        v = x3[kk]
        a3 += v * wv
        b3 += v * wu
        v = x4[kk]
        a4 += v * wv
        b4 += v * wu
        v = x5[kk]
        a5 += v * wv
        b5 += v * wu
        v = x6[kk]
        a6 += v * wv
        b6 += v * wu
        v = x7[kk]
        a7 += v * wv
        b7 += v * wu
    z[0, j], z[1, j], z[2, j], z[3, j] = a0, a1, a2, a3
    z[4, j], z[5, j], z[6, j], z[7, j] = a4, a5, a6, a7
    z[0, j + 1], z[1, j + 1], z[2, j + 1], z[3, j + 1] = b0, b1, b2, b3
    z[4, j + 1], z[5, j + 1], z[6, j + 1], z[7, j + 1] = b4, b5, b6, b7


@jit
def _dots_8x1(xb, wa, zero, z, j):
    x0, x1, x2, x3, x4, x5, x6, x7 = xb[0], xb[1], xb[2], xb[3], xb[4], xb[5], xb[6], xb[7]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
    for kk in range(x0.shape[0]):
        wv = wa[kk]
        a0 += x0[kk] * wv
        a1 += x1[kk] * wv
        a2 += x2[kk] * wv
        a3 += x3[kk] * wv
        a4 += x4[kk] * wv
        a5 += x5[kk] * wv
        a6 += x6[kk] * wv
        a7 += x7[kk] * wv
    z[0, j], z[1, j], z[2, j], z[3, j] = a0, a1, a2, a3
    z[4, j], z[5, j], z[6, j], z[7, j] = a4, a5, a6, a7


@jit
def _logits_8x2(xb, w_t, zero, z):
    """``z[r, j] = xb[r] . w_t[j]`` for the ROWS rows of ``xb``, two classes at
    a time (16 vector accumulators: for 32 vector registers)."""
    c = w_t.shape[0]
    c_even = c - c % 2
    for j in range(0, c_even, 2):
        _dots_8x2(xb, w_t[j], w_t[j + 1], zero, z, j)
    if c_even < c:
        _dots_8x1(xb, w_t[c_even], zero, z, c_even)


@jit
def _logits_4x3(xb, w_t, zero, z):
    """The same in 4 x 3 blocks (12 accumulators) for 16 vector registers,
    where 8 x 2 spills: whole step 128 x 784 x 10 on Zen 2 (AVX2) 1.16-1.19x
    faster (float32 106 -> 89 us, float64 199 -> 172; 8x1, 4x2 <= 1.1x)."""
    dot_rows_4x3(xb, w_t, 0, ROWS, z)


# Picked by the CPU's vector register count (fastbin._config; per-CPU at
# import is safe with the cache, keyed by CPU + features).
_block_logits = _logits_8x2 if LOGITS_BLOCK == "8x2" else _logits_4x3


@jit
def _axpy_8x2(xb, dz, j, ga, gb):
    """``ga += sum_r dz[r, j] * xb[r]`` and ``gb`` likewise with column j + 1:
    each load of a row of ``xb`` serves both gradient rows, and each
    load/store of ``ga``/``gb`` serves 8 rows."""
    x0, x1, x2, x3, x4, x5, x6, x7 = xb[0], xb[1], xb[2], xb[3], xb[4], xb[5], xb[6], xb[7]
    d0, d1, d2, d3, d4, d5, d6, d7 = dz[0, j], dz[1, j], dz[2, j], dz[3, j], dz[4, j], dz[5, j], dz[6, j], dz[7, j]
    e0, e1, e2, e3 = dz[0, j + 1], dz[1, j + 1], dz[2, j + 1], dz[3, j + 1]
    e4, e5, e6, e7 = dz[4, j + 1], dz[5, j + 1], dz[6, j + 1], dz[7, j + 1]
    for kk in range(x0.shape[0]):
        # one FMA chain per output (measured 1.25x faster in float32 than a
        # balanced sum tree, which costs extra adds)
        v = x0[kk]
        g = ga[kk] + d0 * v
        h = gb[kk] + e0 * v
        v = x1[kk]
        g += d1 * v
        h += e1 * v
        v = x2[kk]
        g += d2 * v
        h += e2 * v
        v = x3[kk]
        g += d3 * v
        h += e3 * v
        v = x4[kk]
        g += d4 * v
        h += e4 * v
        v = x5[kk]
        g += d5 * v
        h += e5 * v
        v = x6[kk]
        g += d6 * v
        h += e6 * v
        v = x7[kk]
        g += d7 * v
        h += e7 * v
        ga[kk] = g
        gb[kk] = h


@jit
def _axpy_8x1(xb, dz, j, ga):
    x0, x1, x2, x3, x4, x5, x6, x7 = xb[0], xb[1], xb[2], xb[3], xb[4], xb[5], xb[6], xb[7]
    d0, d1, d2, d3, d4, d5, d6, d7 = dz[0, j], dz[1, j], dz[2, j], dz[3, j], dz[4, j], dz[5, j], dz[6, j], dz[7, j]
    for kk in range(x0.shape[0]):
        g = ga[kk] + d0 * x0[kk]
        g += d1 * x1[kk]
        g += d2 * x2[kk]
        g += d3 * x3[kk]
        g += d4 * x4[kk]
        g += d5 * x5[kk]
        g += d6 * x6[kk]
        g += d7 * x7[kk]
        ga[kk] = g


def _ce_rows(z, labels, targets, use_targets, i0, i1, inv_m):
    """The softmax cross-entropy of the block ``z`` (rows ``i0:i1`` of the step), ``dz``
    written over it: against ``targets`` where ``labels`` is None or ``use_targets``, else
    against ``labels``; returns the sum of the rows' losses."""
    if labels is None or (targets is not None and use_targets):
        return ce_block_targets(z, targets[i0:i1], z, inv_m)
    return ce_block_labels(z, labels[i0:i1], z, inv_m)


@overload(_ce_rows, inline="always")
def _ce_rows_jit(z, labels, targets, use_targets, i0, i1, inv_m):
    # chosen by the argument types: a variant given None compiles one cross-entropy block
    # (Numba's branch pruning resolves ``x is None`` only where x is None, not where it is an array)
    if isinstance(labels, types.NoneType):
        return lambda z, labels, targets, use_targets, i0, i1, inv_m: ce_block_targets(z, targets[i0:i1], z, inv_m)
    if isinstance(targets, types.NoneType):
        return lambda z, labels, targets, use_targets, i0, i1, inv_m: ce_block_labels(z, labels[i0:i1], z, inv_m)

    def both(z, labels, targets, use_targets, i0, i1, inv_m):
        if use_targets:
            return ce_block_targets(z, targets[i0:i1], z, inv_m)
        return ce_block_labels(z, labels[i0:i1], z, inv_m)

    return both


@jit
def _rows_loss_grad(x, w_t, b, labels, targets, use_targets, lo, hi, inv_m, dw_t, db):
    """Rows ``lo:hi`` of the step: adds their ``dz.T @ x`` to ``dw_t`` (c, k)
    and their column sums of ``dz`` to ``db``; returns the sum (not mean) of
    their row losses. ``labels`` (m,) is used when ``use_targets`` is False,
    ``targets`` (m, c) otherwise; either may be None instead (the other is used:
    ``_ce_rows``, so a variant given None compiles one cross-entropy block and a
    cold first call compiles what it runs)."""
    k = x.shape[1]
    c = w_t.shape[0]
    z = np.empty((ROWS, c), dtype=x.dtype)
    zero = np.zeros(1, dtype=x.dtype)[0]  # 0 in x's dtype: float32 sums stay float32
    total = 0.0
    n_full = lo + (hi - lo) // ROWS * ROWS
    c_even = c - c % 2
    for i0 in range(lo, n_full, ROWS):
        xb = x[i0 : i0 + ROWS]
        # forward: z = x @ W + b for the block
        _block_logits(xb, w_t, zero, z)
        for r in range(ROWS):
            for j in range(c):
                z[r, j] += b[j]
        # softmax cross-entropy of the block, dz written over z
        total += _ce_rows(z, labels, targets, use_targets, i0, i0 + ROWS, inv_m)
        # backward: dw.T += dz.T @ x_block, db += column sums of dz
        for r in range(ROWS):
            for j in range(c):
                db[j] += z[r, j]
        for j in range(0, c_even, 2):
            _axpy_8x2(xb, z, j, dw_t[j], dw_t[j + 1])
        if c_even < c:
            _axpy_8x1(xb, z, c_even, dw_t[c_even])
    # the (hi - lo) % ROWS remaining rows, one at a time
    z1 = np.empty((1, c), dtype=x.dtype)
    for i in range(n_full, hi):
        xi = x[i]
        for j in range(c):
            wj = w_t[j]
            a0 = zero
            for kk in range(k):
                a0 += xi[kk] * wj[kk]
            z1[0, j] = a0 + b[j]
        total += _ce_rows(z1, labels, targets, use_targets, i, i + 1, inv_m)
        for j in range(c):
            d0 = z1[0, j]
            db[j] += d0
            gj = dw_t[j]
            for kk in range(k):
                gj[kk] += d0 * xi[kk]
    return total


@jit(inline="always")
def _linear_ce_core(x, w_t, b, labels, targets, use_targets, dw, db):
    """Serial driver. ``w_t`` is W transposed (c, k), C-contiguous. Writes
    ``dw`` (k, c) and ``db`` (c,); returns the mean loss (float64)."""
    m, k = x.shape
    c = w_t.shape[0]
    inv_m = 1.0 / m
    dw_t = _aligned_zeros(c, k, x)
    db[:] = 0
    total = _rows_loss_grad(x, w_t, b, labels, targets, use_targets, 0, m, inv_m, dw_t, db)
    for kk in range(k):
        for j in range(c):
            dw[kk, j] = dw_t[j, kk]
    return total * inv_m


@jit_parallel
def _linear_ce_core_parallel(x, w_t, b, labels, targets, use_targets, dw, db, n_parts):
    """Threaded driver: ``n_parts`` slices of rows (multiples of ROWS), one
    per thread, each with its own (c, k) gradient buffer, summed at the end."""
    m, k = x.shape
    c = w_t.shape[0]
    inv_m = 1.0 / m
    n_parts = max(1, min(n_parts, m // ROWS))
    rows_per_part = -(-m // n_parts)
    rows_per_part = -(-rows_per_part // ROWS) * ROWS
    dw_parts = _aligned_zeros(n_parts * c, k, x).reshape((n_parts, c, k))
    db_parts = np.zeros((n_parts, c), dtype=x.dtype)
    losses = np.zeros(n_parts)
    for part in numba.prange(n_parts):
        lo = min(m, part * rows_per_part)
        hi = min(m, lo + rows_per_part)
        losses[part] = _rows_loss_grad(
            x, w_t, b, labels, targets, use_targets, lo, hi, inv_m, dw_parts[part], db_parts[part]
        )
    for j in range(c):
        acc = db_parts[0, j]
        for part in range(1, n_parts):
            acc += db_parts[part, j]
        db[j] = acc
    for kk in range(k):
        for j in range(c):
            acc = dw_parts[0, j, kk]
            for part in range(1, n_parts):
                acc += dw_parts[part, j, kk]
            dw[kk, j] = acc
    return losses.sum() * inv_m


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def _transpose(w):
    c = w.shape[1]
    k = w.shape[0]
    w_t = _aligned_empty(c, k, w)
    for kk in range(k):
        for j in range(c):
            w_t[j, kk] = w[kk, j]
    return w_t


@jit(inline="always")  # small: inlined, no code library of its own (results/2026-12-08-cold4.md)
def _unpacked(w_bits, k, dtype_like):
    w_t = _aligned_empty(w_bits.shape[0], k, dtype_like)
    unpack_rows(w_bits, k, w_t)
    return w_t


def _w_transposed(w, w_bits, x):
    """W transposed (c, k) in ``x``'s dtype: from ``w`` where ``w_bits`` is None or has no
    rows (and ``w`` is not None), else unpacked from ``w_bits``."""
    if w_bits is None or (w is not None and w_bits.shape[0] == 0):
        return _transpose(w)
    return _unpacked(w_bits, x.shape[1], x)


@overload(_w_transposed, inline="always")
def _w_transposed_jit(w, w_bits, x):
    # by the argument types, as _ce_rows: a variant given None compiles one of the two
    if isinstance(w_bits, types.NoneType):
        return lambda w, w_bits, x: _transpose(w)
    if isinstance(w, types.NoneType):
        return lambda w, w_bits, x: _unpacked(w_bits, x.shape[1], x)

    def both(w, w_bits, x):
        if w_bits.shape[0] == 0:
            return _transpose(w)
        return _unpacked(w_bits, x.shape[1], x)

    return both


@jit
def linear_softmax_ce_labels(x, w, b, labels, dw, db):
    """Loss and gradients of ``softmax_ce(x @ w + b, labels)``.

    x : float32/float64 (m, k), C-contiguous; w : (k, c) and b : (c,) of x's
    dtype; labels : integer (m,) in [0, c); dw : (k, c), db : (c,) of x's
    dtype, written. Returns the mean loss (float64)."""
    return _linear_ce_core(x, _transpose(w), b, labels, None, False, dw, db)


@jit
def linear_softmax_ce_targets(x, w, b, targets, dw, db):
    """As :func:`linear_softmax_ce_labels` with targets (m, c) of x's dtype
    (finite, >= 0) instead of class indices."""
    return _linear_ce_core(x, _transpose(w), b, None, targets, True, dw, db)


@jit
def linear_softmax_ce_packed_labels(x, w_bits, b, labels, dw, db):
    """As :func:`linear_softmax_ce_labels` with ``W = sign`` matrix given packed:
    ``w_bits`` uint64 (c, ceil(k / 64)), the ``bits`` of ``pack_weights(W)``
    (zero padding). ``dw`` is the gradient w.r.t. ``sign(W)``."""
    w_t = _unpacked(w_bits, x.shape[1], x)
    return _linear_ce_core(x, w_t, b, labels, None, False, dw, db)


@jit
def linear_softmax_ce_packed_targets(x, w_bits, b, targets, dw, db):
    """As :func:`linear_softmax_ce_packed_labels` with targets (m, c)."""
    w_t = _unpacked(w_bits, x.shape[1], x)
    return _linear_ce_core(x, w_t, b, None, targets, True, dw, db)


@jit
def linear_softmax_ce_parallel(x, w, w_bits, b, labels, targets, use_targets, dw, db, n_parts):
    """Threaded form of all four kernels above, for large ``m``: rows are split
    into ``n_parts`` slices (pass ``numba.get_num_threads()``), each with its
    own (c, k) gradient buffer. ``w`` (k, c) is used when ``w_bits`` has no rows
    (pass ``np.empty((0, 1), np.uint64)``), else ``w_bits`` (c, ceil(k/64));
    ``labels`` when ``use_targets`` is False, else ``targets``. The other
    argument of each pair is a placeholder of the right dtype, or None: then
    only the branch of the given one is compiled (``fastbin.ops`` passes None)."""
    w_t = _w_transposed(w, w_bits, x)
    return _linear_ce_core_parallel(x, w_t, b, labels, targets, use_targets, dw, db, n_parts)
