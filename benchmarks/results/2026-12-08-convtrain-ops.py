"""The gradients of the issue-25 network's binary conv layers, main's way against the
alternatives: the input gradient as the convolution with the flipped kernel
(``fastbin.nn.conv.Conv2D._dx_flipped``, kept) and the weight gradient of ±1 patches through the
planned sign product (tried and withdrawn: benchmarks/results/2026-12-08-convtrain.md); one
process, alternating.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/results/2026-12-08-convtrain-ops.py \\
        [--repeat 5] [--threads 1,2]

* ``dx main``: ``col2im(dense_sign_matmul(dz, W.T, exact=False))``: (m*h*w, f) @ (f, 9c), then col2im;
* ``dx flipped``: ``dense_sign_matmul(im2col(dz, "same", 0), W', exact=False)`` with ``W'`` the
  kernel flipped in both axes, channels swapped: (m*h*w, 9f) @ (9f, c), no col2im;
* ``dW (BLAS)``: ``im2col(x).T @ dz`` (main);
* ``dW (signs)``: ``dense_sign_matmul(dz.T, im2col(x), exact=False).T`` on ±1 images ``x``: (f, m*h*w)
  @ (m*h*w, 9c), the patches as the signs (withdrawn).

Batch 128, 3x3 "same", stride 1; min / median ms of ``--repeat``; the largest differences of the
two forms relative to the largest value.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

from fastbin import ops

LAYERS = [(28, 28, 32, 32), (14, 14, 32, 64), (14, 14, 64, 64)]  # (h, w, c_in, c_out): bnn_conv's convs 2-4


def dx_main(dz, w):
    f = w.shape[3]
    d = ops.dense_sign_matmul(np.ascontiguousarray(dz.reshape(-1, f)), np.ascontiguousarray(w.reshape(-1, f).T),
                              exact=False)
    return ops.col2im(d, dz.shape[:3] + (w.shape[2],), 3, 1, "same")


def dx_flipped(dz, w):
    flipped = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, w.shape[2])
    cols = ops.im2col(dz, 3, 1, "same", 0)
    return ops.dense_sign_matmul(cols, flipped, exact=False).reshape(dz.shape[:3] + (w.shape[2],))


def dw(x, dz):
    return ops.im2col(x, 3, 1, "same", 1).T @ dz.reshape(-1, dz.shape[3])


def dw_signs(x, dz):
    cols = ops.im2col(x, 3, 1, "same", 1)
    return ops.dense_sign_matmul(np.ascontiguousarray(dz.reshape(-1, dz.shape[3]).T), cols, exact=False).T


def clock(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"CPU {platform.processor() or platform.machine()}, numba {numba.__version__}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}, batch 128")
    for h, wd, c, f in LAYERS:
        w = rng.uniform(-1, 1, (3, 3, c, f)).astype(np.float32)
        dz = rng.standard_normal((128, h, wd, f)).astype(np.float32)
        x = np.where(rng.random((128, h, wd, c)) < 0.5, -1, 1).astype(np.float32)
        a, b = dx_main(dz, w), dx_flipped(dz, w)  # compiles
        err = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
        g, g_signs = dw(x, dz), dw_signs(x, dz)
        err_w = float(np.max(np.abs(g - g_signs)) / np.max(np.abs(g)))
        for threads in (int(t) for t in args.threads.split(",")):
            numba.set_num_threads(threads)
            times = {"dx main": [], "dx flipped": [], "dW (BLAS)": [], "dW (signs)": []}
            for _ in range(args.repeat):
                times["dx main"].append(clock(dx_main, dz, w))
                times["dx flipped"].append(clock(dx_flipped, dz, w))
                times["dW (BLAS)"].append(clock(dw, x, dz))
                times["dW (signs)"].append(clock(dw_signs, x, dz))
            cells = "  ".join(f"{k} {1e3 * min(v):6.1f}/{1e3 * np.median(v):6.1f}" for k, v in times.items())
            print(f"{h}x{wd}x{c}->{f}, {threads} thread(s), load {os.getloadavg()[0]:.1f}: {cells}  "
                  f"(max |diff| / max |value|: dx {err:.1e}, dW {err_w:.1e})")


if __name__ == "__main__":
    main()
