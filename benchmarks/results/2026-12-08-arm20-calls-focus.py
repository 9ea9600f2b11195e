"""Focused in-process A/B of one-row calls (2026-12-08-arm20-calls.md): main's ``binary_matmul`` /
``sign_matmul`` (``fastbin/ops/matmul.py`` loaded as a second module over the same kernels) against
this branch's, without and with ``out``; ROUNDS rounds of CALLS calls each, the implementations in
turn within each round; ns a call, median [min].

``python 2026-12-08-arm20-calls-focus.py BEFORE [ROUNDS] [CALLS]``"""
import importlib.util
import os
import statistics
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import fastbin  # noqa: E402


def load_before(path):
    spec = importlib.util.spec_from_file_location("fastbin.ops._matmul_before", path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "fastbin.ops"
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main():
    before = load_before(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    calls = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    rng = np.random.default_rng(0)
    print(f"# load {os.getloadavg()[0]:.1f}; {rounds} rounds x {calls} calls; ns a call, median [min]")
    for kind, (m, k, n) in [("binary", (1, 784, 10)), ("binary", (16, 784, 10)), ("binary", (1, 784, 512)),
                            ("uint8", (1, 784, 10)), ("float32", (1, 784, 10))]:
        w = fastbin.pack_weights(rng.standard_normal((k, n)).astype(np.float32))
        if kind == "binary":
            args, name = (fastbin.pack_signs(rng.standard_normal((m, k)).astype(np.float32)), w), "binary_matmul"
        elif kind == "uint8":
            args, name = (rng.integers(0, 256, (m, k), dtype=np.uint8), w), "sign_matmul"
        else:
            args, name = (rng.random((m, k), dtype=np.float32), w), "sign_matmul"
        new, old = getattr(fastbin, name), getattr(before, name)
        out = np.empty_like(new(*args))
        fns = {"main": lambda f=old, a=args: f(*a), "branch": lambda f=new, a=args: f(*a),
               "branch out=": lambda f=new, a=args, o=out: f(*a, out=o),
               "branch out positional": lambda f=new, a=args, o=out: f(*a, o)}
        for fn in fns.values():
            fn()
        times = {label: [] for label in fns}
        for _ in range(rounds):
            for label, fn in fns.items():
                t0 = time.perf_counter_ns()
                for _ in range(calls):
                    fn()
                times[label].append((time.perf_counter_ns() - t0) / calls)
        parts = [f"{label} {statistics.median(t):.0f} [{min(t):.0f}]" for label, t in times.items()]
        base = statistics.median(times["main"])
        ratios = [f"{label}/main {statistics.median(t) / base:.3f}" for label, t in times.items() if label != "main"]
        print(f"{kind} {m}x{k}x{n}: " + " | ".join(parts) + " | " + " ".join(ratios), flush=True)


main()
