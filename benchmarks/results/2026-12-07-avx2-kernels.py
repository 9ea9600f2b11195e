"""Timing of the AVX2 kernels against sgemm on ±1 floats (benchmarks/results/2026-12-07-avx2-kernels.md).

One thread, medians of many repeats; the ratio is sgemm's median time over fastbin's, both in this
process. Run on the AVX2 code path with NUMBA_CPU_NAME / NUMBA_CPU_FEATURES (AVX-512 off) and
OPENBLAS_CORETYPE=Haswell, OPENBLAS_NUM_THREADS=1, NUMBA_NUM_THREADS=1 (the .md gives the command).

    python 2026-12-07-avx2-kernels.py uint8|float32|binary [path ...]
"""
from __future__ import annotations

import functools
import sys
import time

import numpy as np

import fastbin
from fastbin import _config
from fastbin.kernels import binary_product, sign_product

SHAPES = [(1, 784, 512), (16, 784, 512), (64, 784, 512), (256, 784, 512), (128, 2048, 2048),
          (2048, 1024, 1024), (512, 4096, 4096)]
BINARY_SHAPES = [(1, 784, 512), (16, 784, 512), (128, 784, 512), (10000, 784, 512), (2048, 2048, 2048)]


def timed(fn, *args, budget=1.5, least=7, most=400):
    """(median, first quartile, third quartile) seconds of ``fn(*args)`` over as many repeats as fit
    ``budget``."""
    fn(*args)
    times = []
    start = time.perf_counter()
    while len(times) < least or (len(times) < most and time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return med, q1, q3


def row(label, shape, sgemm, ours):
    m, k, n = shape
    spread = 100 * (ours[2] - ours[1]) / ours[0]
    print(f"| {label} | {m}x{k}x{n} | {sgemm[0] * 1e6:.0f} us | {ours[0] * 1e6:.0f} us | "
          f"{sgemm[0] / ours[0]:.2f}x | {spread:.0f}% |", flush=True)


def main(kind, paths):
    serial_binary = functools.partial(fastbin.binary_matmul, threads=False)
    serial_sign = functools.partial(fastbin.sign_matmul, threads=False)
    rng = np.random.default_rng(0)
    print(f"CPU kind {_config.CPU_KIND}, magic {_config._MAGIC_TUPLE[1]}, Numba threads "
          f"{__import__('numba').get_num_threads()}")
    print("| path | m x k x n | sgemm | fastbin | ratio | IQR/median (fastbin) |")
    print("|---|---|---|---|---|---|")
    for shape in BINARY_SHAPES if kind == "binary" else SHAPES:
        m, k, n = shape
        signs = np.where(rng.random((k, n)) < 0.5, -1.0, 1.0).astype(np.float32)
        xf = rng.standard_normal((m, k)).astype(np.float32)
        sgemm = timed(np.matmul, xf, signs)
        w = fastbin.pack_weights(signs)
        if kind == "binary":
            a = fastbin.pack_signs(xf)
            out = np.empty((m, n), np.int32)
            for name in paths or ["public"]:
                if name == "public":
                    row("binary_matmul", shape, sgemm, timed(serial_binary, a, w))
                else:
                    p = binary_product.plan(m, n, a.n_words, force=name)
                    row(name, shape, sgemm, timed(p, a.bits, w.bits, k, out))
            continue
        x = rng.integers(0, 256, (m, k), dtype=np.uint8) if kind == "uint8" else xf
        out = np.empty((m, n), np.int32 if kind == "uint8" else np.float32)
        for name in paths or ["public"]:
            if name == "public":
                p = sign_product.plan(m, k, n, x.dtype, threads=False)
                row(f"sign_matmul ({p.name})", shape, sgemm, timed(serial_sign, x, w))
            else:
                p = sign_product.plan(m, k, n, x.dtype, force=name)
                row(name, shape, sgemm, timed(p, x, w.bits, out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
