"""Two shapes in turn (the last record misses every call): main's ops/matmul.py (BEFORE, loaded
beside this checkout's over the same kernels) against this checkout's, one process, ns a call.

``python 2026-12-07-calls-alternate.py BEFORE`` (2026-12-07-calls.md)."""
import importlib.util
import statistics
import sys
import time

import numpy as np

import fastbin


def load_before(path):
    spec = importlib.util.spec_from_file_location("fastbin.ops._matmul_before", path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "fastbin.ops"
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(path):
    before = load_before(path)
    rng = np.random.default_rng(0)

    def operands(n):
        return (fastbin.pack_signs(rng.standard_normal((1, 784)).astype(np.float32)),
                fastbin.pack_weights(rng.standard_normal((784, n)).astype(np.float32)))

    (a1, w1), (_, w2) = operands(10), operands(32)
    x1 = rng.random((1, 784), dtype=np.float32)

    def loop(module, kind):
        if kind == "binary":
            f, args1, args2 = module.binary_matmul, (a1, w1), (a1, w2)
        else:
            f, args1, args2 = module.sign_matmul, (x1, w1), (x1, w2)

        def run():
            for _ in range(500):
                f(*args1)
                f(*args2)
        return run

    for kind in ("binary", "float32"):
        fns = {"before": loop(before, kind), "after": loop(fastbin, kind)}
        times = {label: [] for label in fns}
        for _ in range(25):
            for label, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[label].append((time.perf_counter() - t0) / 1000 * 1e9)
        med = {label: statistics.median(t) for label, t in times.items()}
        low = {label: min(t) for label, t in times.items()}
        print(f"{kind} two shapes in turn (1x784x10, 1x784x32), ns a call: before {med['before']:.0f} "
              f"[{low['before']:.0f}] after {med['after']:.0f} [{low['after']:.0f}] after/before "
              f"{med['after'] / med['before']:.3f} (min {low['after'] / low['before']:.3f})")


if __name__ == "__main__":
    main(sys.argv[1])
