"""Where the binary conv layer's time goes (issue 25): the binary_product planner's kernels on
the layer's shape at batch 128 (25,088 patch rows of 9 words, 64 filters), one thread, in one
process, alternating: the product alone (``plan``: int32 dots) against the product + threshold
+ packing (``plan_sign``, what the conv engine calls). Run from the repository root:
``nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convrt-split.py``."""
import time

import numba
import numpy as np

from fastbin.kernels import binary_product

numba.set_num_threads(1)
rng = np.random.default_rng(0)
m, n, n_words = 25088, 64, 9
a = rng.integers(0, 2**63, (m, n_words), dtype=np.uint64)
w = rng.integers(0, 2**63, (n, n_words), dtype=np.uint64)
t = rng.integers(-40, 41, n).astype(np.int64)
flip = rng.random(n) < 0.3
dots_path, sign_path = binary_product.plan(m, n, n_words), binary_product.plan_sign(m, n, n_words)
dots, words = np.empty((m, n), np.int32), np.empty((m, 1), np.uint64)
dots_path.kernel(a, w, 64 * n_words, dots)
sign_path.kernel(a, w, 64 * n_words, t, flip, words)
only, fused = [], []
for _ in range(30):
    t0 = time.perf_counter()
    dots_path.kernel(a, w, 64 * n_words, dots)
    t1 = time.perf_counter()
    sign_path.kernel(a, w, 64 * n_words, t, flip, words)
    t2 = time.perf_counter()
    only.append(t1 - t0)
    fused.append(t2 - t1)
print(f"{dots_path.name} / {sign_path.name}: dots only {1e3 * min(only):.2f} ms, dots + threshold + pack "
      f"{1e3 * min(fused):.2f} ms (min); medians {1e3 * np.median(only):.2f} / {1e3 * np.median(fused):.2f} ms")
