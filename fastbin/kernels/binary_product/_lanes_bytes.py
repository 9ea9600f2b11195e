"""The word loop of the lane block (``fastbin.kernels.binary_product._lanes``) for CPUs
without a native vector popcount (``fastbin._config.VECTOR_POPCOUNT``
False: AVX2, NEON, ...). There LLVM lowers ``ctpop.v8i64`` per 256-bit
vector to two ``vpshufb`` nibble lookups + add + ``vpsadbw`` (byte sums to
64-bit lanes) + a 64-bit add, about ten vector ops per 4 word pairs, and the
loop is bound by vector op throughput. Two cheaper sums, both plain LLVM IR
(exact on any CPU):

* rows of at most 31 words: per-byte popcounts (``ctpop.v64i8``: no
  ``vpsadbw``, no 64-bit add) summed in i8 lanes, which cannot overflow
  (at most 8 * 31 = 248 < 256), widened once at the end; 4 columns per pass
  keep the byte accumulators in registers (8 columns: 1.05x, spills).
* longer rows: a Harley-Seal carry-save adder (Mula, Kurz, Lemire, "Faster
  population counts using AVX2 instructions") per column over groups of 4
  words: 3 CSAs (5 logic ops each) + one byte popcount per 4 words, the
  carries' byte counts widened every ``CHUNK_GROUPS`` groups. One column
  per pass (its 2 states + byte sum: 6 ymm); its per-column tail (state
  popcounts, widening) only pays off on long rows.

Measured on Zen 2 (AVX2), ``binary_matmul_kernel`` alone, medians of
interleaved runs vs ``ctpop.v8i64`` sums: 128 x 784 -> 10 (13 words)
1.05-1.07x, 1024^3 (16 words) 1.16-1.17x, 1024 x 2048 x 1024 1.52x, 4096^3
(64 words) 1.48-1.51x (294 -> 195 ms).
"""
from __future__ import annotations

import functools

from llvmlite import ir
from numba.core import cgutils

from ..._config import jit_disabled
from ._lanes import LANES, lane_block_llvm, lane_blocks

__all__ = ["HARLEY_SEAL_MIN_WORDS", "byte_lane_blocks"]

#: Rows from this many words take the Harley-Seal loop, shorter ones the
#: byte sums (which must stay below 32 words: i8 lanes). Measured at
#: 1024 x k x 1024, vs ``ctpop.v8i64``: byte sums / Harley-Seal 1.18x /
#: 1.07x at 16 words, 1.22x / 1.20x at 24, 1.24x / 1.12x at 31; at 32 and 48
#: words Harley-Seal 1.52x / 1.62x, byte sums widened every 31 words 1.29x /
#: 1.34x.
HARLEY_SEAL_MIN_WORDS = 32
#: Carry-save levels: groups of 2**LEVELS words per byte popcount. 2 measured
#: best at 4096^3 (prototype: 1.55x; 3 levels 1.40x; 1 level, 2 columns a
#: pass 1.32x; 2 levels, 2 columns a pass spilled).
LEVELS = 2
#: Groups per byte-accumulation chunk: each adds at most 8 per byte,
#: 31 * 8 = 248 < 256.
CHUNK_GROUPS = 31
#: Columns per pass of the byte-sum loop (2 ymm per accumulator).
BYTE_COLUMNS = 4


def _sum_bytes(builder, x, vec):
    """Each 64-bit lane of ``x`` (``vec``) -> the sum of its 8 bytes."""

    def splat(value):
        return ir.Constant(vec, [value] * LANES)

    for shift, mask in ((8, 0x00FF00FF00FF00FF), (16, 0x0000FFFF0000FFFF)):
        x = builder.add(builder.and_(x, splat(mask)), builder.and_(builder.lshr(x, splat(shift)), splat(mask)))
    return builder.add(builder.and_(x, splat(0xFFFFFFFF)), builder.lshr(x, splat(32)))


def _byte_ctpop(b):
    bvec = ir.VectorType(ir.IntType(8), 8 * LANES)
    fn = cgutils.get_or_insert_function(b.builder.module, ir.FunctionType(bvec, [bvec]), "llvm.ctpop.v64i8")
    return bvec, lambda x: b.builder.call(fn, [b.builder.bitcast(x, bvec)])


def _byte_sums(b, accs):
    """``accs[c] = sum_t popcount(lanes_t ^ w_{j+c,t})`` in i8 lanes (rows
    of fewer than HARLEY_SEAL_MIN_WORDS <= 32 words)."""
    builder = b.builder
    bvec, ctpop8 = _byte_ctpop(b)
    for c0 in range(0, b.cols, BYTE_COLUMNS):
        cols = range(c0, min(b.cols, c0 + BYTE_COLUMNS))
        sums = {c: cgutils.alloca_once_value(builder, ir.Constant(bvec, None)) for c in cols}
        with cgutils.for_range(builder, b.n_words) as loop:
            lanes = b.lanes(loop.index)
            for c in cols:
                count = ctpop8(builder.xor(lanes, b.w_word(loop.index, c)))
                builder.store(builder.add(builder.load(sums[c]), count), sums[c])
        for c in cols:
            builder.store(_sum_bytes(builder, builder.bitcast(builder.load(sums[c]), b.vec), b.vec), accs[c])


def _harley_seal(b, accs):
    """``accs[c]`` as in ``_byte_sums``, one column at a time: a carry-save
    adder tree folds each group of 2**LEVELS xor words into LEVELS state
    vectors (weights 1, 2, ..) and one carry of weight 2**LEVELS whose byte
    popcounts are summed; the states' popcounts and the last
    ``n_words % 2**LEVELS`` words are added at the end."""
    builder = b.builder
    const = b.const
    bvec, ctpop8 = _byte_ctpop(b)
    group = 1 << LEVELS
    n_full = builder.mul(builder.sdiv(b.n_words, const(group)), const(group))
    for c in range(b.cols):
        states = [cgutils.alloca_once_value(builder, ir.Constant(b.vec, None)) for _ in range(LEVELS)]
        carries = cgutils.alloca_once_value(builder, ir.Constant(b.vec, None))
        sums = cgutils.alloca_once_value(builder, ir.Constant(bvec, None))
        with cgutils.for_range_slice(builder, const(0), n_full, const(group * CHUNK_GROUPS)) as (start, _):
            end = builder.add(start, const(group * CHUNK_GROUPS))
            end = builder.select(builder.icmp_signed("<", end, n_full), end, n_full)
            builder.store(ir.Constant(bvec, None), sums)
            with cgutils.for_range_slice(builder, start, end, const(group)) as (t0, _):
                st = [builder.load(s) for s in states]

                def carry(level, offset):
                    """The weight 2**(level + 1) carry of 2**(level + 1) words."""
                    if level == 0:
                        t1, t2 = builder.add(t0, const(offset)), builder.add(t0, const(offset + 1))
                        x = builder.xor(b.lanes(t1), b.w_word(t1, c))
                        y = builder.xor(b.lanes(t2), b.w_word(t2, c))
                    else:
                        x = carry(level - 1, offset)
                        y = carry(level - 1, offset + (1 << level))
                    half = builder.xor(st[level], x)
                    high = builder.or_(builder.and_(st[level], x), builder.and_(half, y))
                    st[level] = builder.xor(half, y)
                    return high

                top = carry(LEVELS - 1, 0)
                for s, value in zip(states, st):
                    builder.store(value, s)
                builder.store(builder.add(builder.load(sums), ctpop8(top)), sums)
            wide = _sum_bytes(builder, builder.bitcast(builder.load(sums), b.vec), b.vec)
            builder.store(builder.add(builder.load(carries), wide), carries)
        total = builder.shl(builder.load(carries), ir.Constant(b.vec, [LEVELS] * LANES))
        for level, s in enumerate(states):
            count = builder.call(b.ctpop, [builder.load(s)])
            total = builder.add(total, builder.shl(count, ir.Constant(b.vec, [level] * LANES)))
        builder.store(total, accs[c])
        with cgutils.for_range_slice(builder, n_full, b.n_words, const(1)) as (t, _):
            count = builder.call(b.ctpop, [builder.xor(b.lanes(t), b.w_word(t, c))])
            builder.store(builder.add(builder.load(accs[c]), count), accs[c])


def accumulate_counts(b):
    """The ``accumulate`` of ``fastbin.kernels.binary_product._lanes.lane_block_llvm`` for
    CPUs without a native vector popcount: byte sums below
    HARLEY_SEAL_MIN_WORDS words, Harley-Seal from there."""
    builder = b.builder
    accs = [cgutils.alloca_once_value(builder, ir.Constant(b.vec, None)) for _ in range(b.cols)]
    long_rows = builder.icmp_signed(">=", b.n_words, b.const(HARLEY_SEAL_MIN_WORDS))
    with builder.if_else(long_rows) as (then, otherwise):
        with then:
            _harley_seal(b, accs)
        with otherwise:
            _byte_sums(b, accs)
    return accs


@functools.cache
def byte_lane_blocks() -> tuple:
    """``byte_lane_blocks()[cols - 1]`` is ``_lanes.lane_blocks()[cols - 1]`` with these sums (the
    same plain-Python twin under ``NUMBA_DISABLE_JIT=1``); made on the first call, as those."""
    if jit_disabled():
        return lane_blocks()
    return tuple(lane_block_llvm(cols, accumulate_counts) for cols in range(1, 9))
