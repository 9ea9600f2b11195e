"""The fast product ``dense_sign_matmul(x, W, exact=False)`` of the conv training step, each
path of ``plan_dense`` forced, against the path the planner picks (float32, threads automatic).

    nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convtrain-products.py [--repeat 5]

Shapes: the issue-25 network at batch 128 (forward on real-valued patches: binary-conv's
hardtanh layers and the first layer; dx = dz @ sign(W).T of every conv layer; the
output layer's dx), plus a few small-k shapes around the table entry.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from fastbin.kernels.sign_product import plan_dense
from fastbin.ops.dense import dense_product

SHAPES = [  # (what, m, k, n)
    ("conv1 fwd (100352x9)@(9x32)", 100352, 9, 32),
    ("conv2 fwd real (100352x288)@(288x32)", 100352, 288, 32),
    ("conv3 fwd real (25088x288)@(288x64)", 25088, 288, 64),
    ("conv4 fwd real (25088x576)@(576x64)", 25088, 576, 64),
    ("conv2 dx (100352x32)@(32x288)", 100352, 32, 288),
    ("conv3 dx (25088x64)@(64x288)", 25088, 64, 288),
    ("conv4 dx (25088x64)@(64x576)", 25088, 64, 576),
    ("dense dx (128x10)@(10x3136)", 128, 10, 3136),
    ("k=128 (25088x128)@(128x576)", 25088, 128, 576),
    ("k=256 (25088x256)@(256x576)", 25088, 256, 576),
    ("k=512 (4096x512)@(512x512)", 4096, 512, 512),
]
PATHS = ["blas", "packed", "lut_parallel"]


def best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'shape':40s} {'planned':>14s} " + " ".join(f"{p:>16s}" for p in PATHS) + "   (min/median ms)")
    for what, m, k, n in SHAPES:
        x = rng.standard_normal((m, k)).astype(np.float32)
        w = rng.standard_normal((k, n)).astype(np.float32)
        planned = plan_dense(m, k, n, np.dtype(np.float32), exact=False).name
        cells = []
        for name in PATHS:
            path = plan_dense(m, k, n, np.dtype(np.float32), exact=False, force=name)
            lo, med = best(lambda path=path, x=x, w=w: dense_product(path, x, w), args.repeat)
            cells.append(f"{1e3 * lo:7.1f}/{1e3 * med:7.1f}")
        print(f"{what:40s} {planned:>14s} " + " ".join(f"{c:>16s}" for c in cells))


if __name__ == "__main__":
    main()
