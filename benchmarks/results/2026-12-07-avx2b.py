"""Timing of the AVX2 binary nibble tables and the float32 word-indexed tables against sgemm on ±1
floats (benchmarks/results/2026-12-07-avx2b.md).

One thread, medians of many repeats; the ratio is sgemm's median time over fastbin's, both in this
process, a moment apart. Run on the AVX2 code path: ``--avx2`` re-runs this script in a child with
NUMBA_CPU_NAME=znver3, NUMBA_CPU_FEATURES = the host's with every feature a Zen 3 lacks off (AVX-512, GFNI, AVX-VNNI),
OPENBLAS_CORETYPE=Haswell and one thread everywhere.

    python 2026-12-07-avx2b.py --avx2 binary|float32 [path ...]
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import time

import numpy as np

BINARY_SHAPES = [(16, 784, 512), (128, 784, 512), (10000, 784, 512), (2048, 2048, 2048),
                 (16, 784, 10), (128, 784, 10), (2048, 784, 10), (16, 2048, 2048), (256, 2048, 512),
                 (16, 4096, 4096), (128, 4096, 512), (256, 784, 4096)]
FLOAT_SHAPES = [(1, 784, 512), (1, 784, 64), (1, 784, 256), (1, 2048, 2048), (1, 4096, 4096), (1, 784, 32),
                (2, 784, 512), (4, 784, 512), (8, 784, 64), (16, 784, 64), (64, 784, 64), (256, 784, 64),
                (15, 784, 512), (16, 784, 512)]


def timed(fn, *args, budget=1.0, least=7, most=400):
    """(median, first quartile, third quartile) seconds of ``fn(*args)``."""
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
    print(f"| {label} | {m}x{k}x{n} | {sgemm[0] * 1e6:.1f} us | {ours[0] * 1e6:.1f} us | "
          f"{sgemm[0] / ours[0]:.2f}x | {spread:.0f}% |", flush=True)


def main(kind, paths, shapes):
    import fastbin
    from fastbin import _config
    from fastbin.kernels import binary_product, sign_product

    serial_binary = functools.partial(fastbin.binary_matmul, threads=False)
    serial_sign = functools.partial(fastbin.sign_matmul, threads=False)
    rng = np.random.default_rng(0)
    print(f"CPU kind {_config.CPU_KIND}, magic {_config._MAGIC_TUPLE[1]}, Numba threads "
          f"{__import__('numba').get_num_threads()}, OPENBLAS_CORETYPE {os.environ.get('OPENBLAS_CORETYPE')}")
    print("| path | m x k x n | sgemm | fastbin | ratio | IQR/median (fastbin) |")
    print("|---|---|---|---|---|---|")
    for shape in shapes or (BINARY_SHAPES if kind == "binary" else FLOAT_SHAPES):
        m, k, n = shape
        signs = np.where(rng.random((k, n)) < 0.5, -1.0, 1.0).astype(np.float32)
        xf = rng.standard_normal((m, k)).astype(np.float32)
        if kind == "binary":
            xf = np.where(xf < 0, -1.0, 1.0).astype(np.float32)
        sgemm = timed(np.matmul, xf, signs)
        w = fastbin.pack_weights(signs)
        if kind == "binary":
            a = fastbin.pack_signs(xf)
            out = np.empty((m, n), np.int32)
            for name in paths or ["public"]:
                if name == "public":
                    planned = binary_product.plan(m, n, a.n_words, threads=False).name
                    row(f"binary_matmul ({planned})", shape, sgemm, timed(serial_binary, a, w))
                else:
                    p = binary_product.plan(m, n, a.n_words, force=name)
                    row(name, shape, sgemm, timed(p, a.bits, w.bits, k, out))
            continue
        out = np.empty((m, n), np.float32)
        for name in paths or ["public"]:
            if name == "public":
                p = sign_product.plan(m, k, n, xf.dtype, threads=False)
                row(f"sign_matmul ({p.name})", shape, sgemm, timed(serial_sign, xf, w))
            else:
                p = sign_product.plan(m, k, n, xf.dtype, force=name)
                row(name, shape, sgemm, timed(p, xf, w.bits, out))


def avx2_env():
    from numba.core.registry import cpu_target

    features = cpu_target.target_context.codegen().magic_tuple()[2]
    not_zen3 = ("avx512", "avx10", "evex512", "gfni", "avxvnni")  # as tests/test_sign_avx2.py
    off = ",".join(("-" + f[1:]) if f.startswith("+") and any(p in f for p in not_zen3) else f
                   for f in features.split(","))
    one = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**os.environ, **one, "NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": off,
            "OPENBLAS_CORETYPE": "Haswell"}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--avx2":
        sys.exit(subprocess.run([sys.executable, __file__, *args[1:]], env=avx2_env()).returncode)
    kind, rest = args[0], args[1:]
    shapes = [tuple(int(v) for v in a.split("x")) for a in rest if "x" in a and a[0].isdigit()]
    main(kind, [a for a in rest if not (a[0].isdigit() and "x" in a)], shapes)
