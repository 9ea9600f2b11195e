"""Instructions per call of a few microsecond-scale workloads, for comparing two trees of fastbin
whose timings drown in the machine's noise (used for 2026-12-02-znver4-layering-compare.md).

Run it under callgrind twice per workload, with N calls and with 0, from the tree to measure::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python callgrind_calls.py sr1 1000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python callgrind_calls.py sr1 0

(instructions per call = difference of the two "Collected" totals / N; set NUMBA_NUM_THREADS=1 and
PYTHONHASHSEED=0, and run once beforehand so Numba's cache holds code for valgrind's CPU).
Every workload is called twice first in both runs, so compilation and first-call costs cancel.
"""
import sys

import numpy as np

import fastbin
import fastbin.reference as ref

try:
    from fastbin.nn import model as models
except ImportError:  # before the layering (5c8514c)
    from fastbin import models


def workloads():
    rng = np.random.default_rng(0)
    sr = models.softmax_regression(784, 10, binary_weights=True, seed=0).to_inference()
    x1 = rng.random((1, 784), dtype=np.float32)
    a1 = fastbin.pack_signs(rng.standard_normal((1, 784)).astype(np.float32))
    w10 = fastbin.pack_weights(rng.standard_normal((784, 10)).astype(np.float32))
    a128 = fastbin.pack_signs(rng.standard_normal((128, 784)).astype(np.float32))
    x128 = rng.standard_normal((128, 784)).astype(np.float32)
    p = rng.standard_normal((784, 10)).astype(np.float32)
    g = rng.standard_normal((784, 10)).astype(np.float32)
    return {
        "sr1": lambda: sr.predict(x1),
        "bm1": lambda: fastbin.binary_matmul(a1, w10),
        "bm128": lambda: fastbin.binary_matmul(a128, w10),
        "sgd": lambda: fastbin.sgd_update(p, g, 0.01, clip=1.0),
        "sgdref": lambda: ref.sgd_update(p, g, 0.01, clip=1.0),
        "pack128": lambda: fastbin.pack_signs(x128),
        "smf1": lambda: fastbin.sign_matmul(x1, w10),
    }


def main(name: str, n: int) -> None:
    calls = workloads()
    for call in calls.values():
        call()
        call()
    call = calls[name]
    for _ in range(n):
        call()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
