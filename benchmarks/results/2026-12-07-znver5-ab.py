"""Interleaved A/B of a few `sign_matmul` calls (2026-12-07-znver5-bench-compare.md): run it with
the old and the new code's Python alternately; prints the min of 5 loops of ~0.3 s per case, in us."""
import sys
import time

import numpy as np

import fastbin

CASES = [("u8", 2048, 2048, 4096), ("f32", 2048, 784, 512), ("f32", 1, 4096, 512), ("u8", 1, 2048, 4096),
         ("f32", 1, 4096, 2048), ("f32", 1, 784, 10), ("u8", 1, 784, 10)]


def main(label):
    rng = np.random.default_rng(0)
    res = []
    for dt, m, k, n in CASES:
        w = fastbin.pack_weights(rng.standard_normal((k, n)).astype(np.float32))
        x = rng.integers(0, 256, (m, k), dtype=np.uint8) if dt == "u8" else rng.random((m, k), dtype=np.float32)

        def call(x=x, w=w):
            return fastbin.sign_matmul(x, w, threads=False)

        call()
        t0 = time.perf_counter()
        call()
        reps = max(1, int(0.3 / max(1e-7, time.perf_counter() - t0)))
        best = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                call()
            best.append((time.perf_counter() - t0) / reps)
        res.append(f"{dt} {m}x{k}x{n}: {min(best) * 1e6:.1f}")
    print(label, " | ".join(res))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
