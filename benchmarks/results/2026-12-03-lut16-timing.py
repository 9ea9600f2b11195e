"""Timing script of benchmarks/results/2026-12-03-rocketlake-lut16.md.

Run with one thread: ``OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python <this file> [sgemm]``.
Without an argument: the uint8 kernels against each other over a grid of shapes (the
threshold table); with ``sgemm``: against NumPy's ``x @ S`` (uint8 -> float32 cast included).
"""
import sys
import timeit

import numpy as np

from fastbin import pack_weights
from fastbin.kernels.sign_lut import index_words, lut16_product, sign_matmul_lut, sign_matmul_lut16
from fastbin.kernels.sign_matmul import sign_matmul_uint8


def best(fn, budget=0.03, repeat=3):
    """Best time per call of ``fn`` over ``repeat`` runs of about ``budget`` seconds."""
    fn()
    number = max(1, int(budget / (timeit.timeit(fn, number=1) + 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def kernels(x, w):
    out = np.empty((x.shape[0], w.bits.shape[0]), np.int32)
    return {
        "bit planes": lambda: sign_matmul_uint8(x, w.bits, out),
        "float32 tables": lambda: sign_matmul_lut(x, w.bits, out),
        "int16 tables": lambda: sign_matmul_lut16(x, w.bits, out),
    }


def thresholds(rng):
    print("| m x k x n | bit planes | float32 tables | int16 tables | int16 / bit planes | int16 / float32 |")
    print("|---|---|---|---|---|---|")
    for k in (784, 2048, 4096):
        for n in (64, 256, 512, 2048):
            w = pack_weights(rng.standard_normal((k, n)).astype(np.float32))
            for m in (8, 16, 32, 64, 128):
                x = rng.integers(0, 256, (m, k), dtype=np.uint8)
                tb, tf, tl = (best(fn) for fn in kernels(x, w).values())
                print(f"| {m}x{k}x{n} | {tb * 1e6:.1f} us | {tf * 1e6:.1f} us | {tl * 1e6:.1f} us "
                      f"| {tb / tl:.2f}x | {tf / tl:.2f}x |")


def against_sgemm(rng):
    print("| m x k x n | sgemm | bit planes | float32 tables | int16 tables | int16, cached indices | int16 vs sgemm |")
    print("|---|---|---|---|---|---|---|")
    for m, k, n in [(16, 784, 512), (16, 2048, 2048), (128, 784, 512), (128, 2048, 2048), (256, 784, 512),
                    (256, 4096, 512), (2048, 784, 2048), (2048, 2048, 4096)]:
        x = rng.integers(0, 256, (m, k), dtype=np.uint8)
        weights = rng.standard_normal((k, n)).astype(np.float32)
        signs = np.where(weights < 0, -1, 1).astype(np.float32)
        w = pack_weights(weights)
        ts = best(lambda: x @ signs, 0.05, 5)  # noqa: B023 (timed at once)
        tb, tf, tl = (best(fn, 0.05, 5) for fn in kernels(x, w).values())
        idx = index_words(w.bits, k)
        out = np.empty((m, n), np.int32)
        tc = best(lambda: lut16_product(x, idx, out), 0.05, 5)  # noqa: B023
        print(f"| {m}x{k}x{n} | {ts * 1e6:.0f} us | {tb * 1e6:.0f} us | {tf * 1e6:.0f} us | {tl * 1e6:.0f} us "
              f"| {tc * 1e6:.0f} us | {ts / tl:.2f}x |")


if __name__ == "__main__":
    generator = np.random.default_rng(1)
    against_sgemm(generator) if sys.argv[1:] == ["sgemm"] else thresholds(generator)
