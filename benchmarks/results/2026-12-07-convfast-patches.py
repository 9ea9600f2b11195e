"""A/B in one process (branch ``convfast``): the im2col kernel (``fastbin.kernels.conv.patches.im2col_into``,
which ``packed.patches`` now calls) against the runtime's old ``packed.patches`` (a local copy,
jitted here), on packed words (the conv engine's later stages) and float32 (training).
Run from the repository root: ``nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convfast-patches.py``."""
import time

import numba
import numpy as np

from fastbin._config import JIT_OPTIONS
from fastbin.kernels.conv.packed import patches

numba.set_num_threads(1)


@numba.njit(**{**JIT_OPTIONS, "cache": False})
def old_patches(x, kh, kw, sh, sw, top, left, out_w, pad, out):
    m, h, w, c = x.shape
    out_h = out.shape[0] // max(m * out_w, 1)
    for n in range(m):
        for p in range(out_h):
            for q in range(out_w):
                row = (n * out_h + p) * out_w + q
                for i in range(kh):
                    r = p * sh + i - top
                    for j in range(kw):
                        s = q * sw + j - left
                        base = (i * kw + j) * c
                        if 0 <= r < h and 0 <= s < w:
                            for ch in range(c):
                                out[row, base + ch] = x[n, r, s, ch]
                        else:
                            for ch in range(c):
                                out[row, base + ch] = pad


rng = np.random.default_rng(0)
for shape, dtype, reps in (((1, 28, 28, 1), np.uint64, 3000), ((1, 14, 14, 1), np.uint64, 3000),
                           ((128, 14, 14, 1), np.uint64, 100), ((128, 28, 28, 1), np.uint64, 50),
                           ((128, 14, 14, 32), np.float32, 20)):
    x = rng.integers(0, 2**40, shape).astype(dtype)
    m, h, w, c = shape
    a, b = np.empty((m * h * w, 9 * c), dtype), np.empty((m * h * w, 9 * c), dtype)
    args = (3, 3, 1, 1, 1, 1, w, dtype(0))
    old_patches(x, *args, a)
    patches(x, *args, b)
    assert (a == b).all()
    t_old, t_new = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        old_patches(x, *args, a)
        t1 = time.perf_counter()
        patches(x, *args, b)
        t2 = time.perf_counter()
        t_old.append(t1 - t0)
        t_new.append(t2 - t1)
    r = np.array(t_old) / np.array(t_new)
    print(f"{shape} {np.dtype(dtype).name}: old min {1e6 * min(t_old):.1f} us median {1e6 * np.median(t_old):.1f} | "
          f"new min {1e6 * min(t_new):.1f} us median {1e6 * np.median(t_new):.1f} | median pair ratio "
          f"{np.median(r):.2f}x")
