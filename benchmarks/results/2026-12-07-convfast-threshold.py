"""A/B in one process (issue 25, branch ``convfast``): the fused binary product + threshold +
packing (``binary_product.plan_sign``'s kernel, what the conv engine and every dense sign
stage call) with the vectorised ``below_word`` (``intrinsics.threshold_word``) against the
same kernel with the old one-output-at-a-time loop (a local copy, jitted here), and
``threshold_pack`` likewise; alternating, one thread. The product alone (``plan``: int32
dots) for scale. Run from the repository root:
``nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convfast-threshold.py``."""
import time

import numba
import numpy as np

from fastbin._config import JIT_OPTIONS
from fastbin.kernels import binary_product
from fastbin.kernels.binary_product.blocked import CHUNK, _dots
from fastbin.kernels.binary_product.threshold import _below_word_loop, signed_thresholds, threshold_pack

numba.set_num_threads(1)
njit = numba.njit(**{**JIT_OPTIONS, "cache": False})


@njit
def old_dense_sign(a, w, k, thresholds, flip, out):
    """``binary_dense_sign_kernel`` (serial) with the scalar threshold loop."""
    m, n = a.shape[0], w.shape[0]
    sign, signed = signed_thresholds(thresholds, flip)
    dots = np.empty((CHUNK, n), np.int64)
    for i0 in range(0, m, CHUNK):
        i1 = min(m, i0 + CHUNK)
        _dots(a, w, k, i0, i1, dots, i0)
        for i in range(i0, i1):
            for t in range(out.shape[1]):
                j0 = t * 64
                out[i, t] = _below_word_loop(dots, i - i0, j0, min(n, j0 + 64), sign, signed)
    return True


@njit
def old_threshold_pack(dot, thresholds, flip, out):
    m, n = dot.shape
    sign, signed = signed_thresholds(thresholds, flip)
    for i in range(m):
        for w in range(out.shape[1]):
            j0 = w * 64
            out[i, w] = _below_word_loop(dot, i, j0, min(n, j0 + 64), sign, signed)


def ab(name, f_old, f_new, rounds=30):
    f_old()
    f_new()
    t_old, t_new = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        f_old()
        t1 = time.perf_counter()
        f_new()
        t2 = time.perf_counter()
        t_old.append(t1 - t0)
        t_new.append(t2 - t1)
    r = np.array(t_old) / np.array(t_new)
    print(f"{name}: old min {1e3 * min(t_old):.3f} ms median {1e3 * np.median(t_old):.3f} | new min "
          f"{1e3 * min(t_new):.3f} ms median {1e3 * np.median(t_new):.3f} | median pair ratio {np.median(r):.2f}x, "
          f"min/min {min(t_old) / min(t_new):.2f}x")


def pack_case(dot, thr, flip, words_old, words_new):
    old_threshold_pack(dot, thr, flip, words_old)
    threshold_pack(dot, thr, flip, words_new)
    assert (words_old == words_new).all()
    ab(f"threshold_pack {dot.dtype.name}", lambda: old_threshold_pack(dot, thr, flip, words_old),
       lambda: threshold_pack(dot, thr, flip, words_new))


def case(rng, m, n, n_words, what):
    a = rng.integers(0, 2**63, (m, n_words), dtype=np.uint64)
    w = rng.integers(0, 2**63, (n, n_words), dtype=np.uint64)
    k = 64 * n_words
    t = rng.integers(-40, 41, n).astype(np.int64)
    flip = rng.random(n) < 0.3
    words_old, words_new = np.empty((m, -(-n // 64)), np.uint64), np.empty((m, -(-n // 64)), np.uint64)
    sign_path = binary_product.plan_sign(m, n, n_words, threads=False)
    dots_path = binary_product.plan(m, n, n_words, threads=False)
    dots = np.empty((m, n), np.int32)
    old_dense_sign(a, w, k, t, flip, words_old)
    sign_path.kernel(a, w, k, t, flip, words_new)
    assert (words_old == words_new).all()
    only = []
    for _ in range(10):
        t0 = time.perf_counter()
        dots_path.kernel(a, w, k, dots)
        only.append(time.perf_counter() - t0)
    print(f"-- {what}: m={m} n={n} words={n_words}; product alone ({dots_path.name}) min {1e3 * min(only):.3f} ms")
    ab(f"dense sign ({sign_path.name})", lambda: old_dense_sign(a, w, k, t, flip, words_old),
       lambda: sign_path.kernel(a, w, k, t, flip, words_new))
    for dtype in (np.int32, np.float32):
        pack_case(dots.astype(dtype), t if dtype == np.int32 else t.astype(dtype), flip, words_old, words_new)


rng = np.random.default_rng(0)
for m, n, n_words, what in ((25088, 64, 9, "conv layer 3x3 64->64 14x14 batch 128"),
                            (10000, 512, 8, "MLP 512->512 batch 10000"),
                            (784, 32, 9, "bnn-conv layer 2 (32->32 28x28) batch 1")):
    case(rng, m, n, n_words, what)
