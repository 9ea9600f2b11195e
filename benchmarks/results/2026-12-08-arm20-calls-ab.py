"""Interleaved A/B of the public products' fixed cost (2026-12-08-arm20-calls.md; the script of
2026-12-07-calls.md with this branch's ``out=`` call as one more implementation and a --shapes option).

``python 2026-12-08-arm20-calls-ab.py [--before PATH] [--rounds R] [--threads none|false] [--label L]``

In one process, one thread (Numba and BLAS), per case: NumPy sgemm on the ±1 float32 forms
(``x @ sign(W)``, the suite's baseline), this checkout's ``fastbin.binary_matmul`` /
``fastbin.sign_matmul`` and, with ``--before``, the same functions from another version of
``fastbin/ops/matmul.py`` (e.g. main's, ``git show main:fastbin/ops/matmul.py > /tmp/m.py``)
loaded as a second module over the same kernels and planners: only the Python of the public
call differs. Each round times every implementation once (a loop of ~20 ms), the
implementations in turn; the figure is the median of the rounds' per-call times (min in
brackets). Printed: us per call and the ratio sgemm / fastbin ("x sgemm", higher is faster).
Without ``--before`` it measures whatever ``fastbin`` imports (an old commit's venv).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402

import fastbin  # noqa: E402

SHAPES = "1x784x10,16x784x10,128x784x10,1x784x32,1x784x512"
KINDS = ("binary", "uint8", "float32")


def load_before(path):
    """``path`` (a version of ``fastbin/ops/matmul.py``) as module ``fastbin.ops._matmul_before``."""
    spec = importlib.util.spec_from_file_location("fastbin.ops._matmul_before", path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "fastbin.ops"
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cell(kind, m, k, n, rng):
    w_real = rng.standard_normal((k, n)).astype(np.float32)
    w = fastbin.pack_weights(w_real)
    s = np.where(w_real < 0, np.float32(-1), np.float32(1))
    if kind == "binary":
        a_pm = np.where(rng.standard_normal((m, k)) < 0, np.float32(-1), np.float32(1))
        return (fastbin.pack_signs(a_pm), w), (a_pm, s)
    if kind == "uint8":
        x = rng.integers(0, 256, (m, k), dtype=np.uint8)
        return (x, w), (x.astype(np.float32), s)
    x = rng.random((m, k), dtype=np.float32)
    return (x, w), (x, s)


def per_call(fn, budget=0.02):
    fn()
    t0 = time.perf_counter()
    fn()
    reps = max(1, int(budget / max(1e-7, time.perf_counter() - t0)))
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="another fastbin/ops/matmul.py to compare in this process")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", choices=("none", "false"), default="false")
    parser.add_argument("--label", default="")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--shapes", default=SHAPES)
    args = parser.parse_args(argv)
    threads = None if args.threads == "none" else False
    impls = {"after": fastbin}
    if args.before:
        before = load_before(args.before)
        impls = {"before": before, "after": fastbin}
    from numba.core.registry import cpu_target

    triple, cpu, features = cpu_target.target_context.codegen().magic_tuple()
    print(f"# {args.label} fastbin {os.path.dirname(fastbin.__file__)}; Numba {numba.__version__} for {cpu} "
          f"({'AVX-512' if '+avx512f' in features.split(',') else 'no AVX-512'}); NumPy {np.__version__}; "
          f"Python {platform.python_version()}; threads={threads}; {args.rounds} rounds; load "
          f"{os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(0)
    for kind in args.kinds.split(","):
        for m, k, n in (map(int, s.split("x")) for s in args.shapes.split(",")):
            fast_args, (xs, ss) = cell(kind, m, k, n, rng)
            name = "binary_matmul" if kind == "binary" else "sign_matmul"
            fns = {"sgemm": lambda xs=xs, ss=ss: xs @ ss}
            for label, module in impls.items():
                fn = getattr(module, name)
                fns[label] = lambda fn=fn, fast_args=fast_args: fn(*fast_args, threads=threads)
                got = fns[label]()
                expected = xs @ ss
                ok = np.array_equal(got, expected) if kind != "float32" else np.allclose(got, expected, atol=1e-3)
                assert ok, (label, kind, m, k, n)
            buf = np.empty_like(fns["after"]())
            public = getattr(fastbin, name)
            fns["out="] = lambda fn=public, fast_args=fast_args, buf=buf: fn(*fast_args, out=buf, threads=threads)
            assert fns["out="]() is buf and np.array_equal(buf, fns["after"]())
            times = {label: [] for label in fns}
            for _ in range(args.rounds):
                for label, fn in fns.items():
                    times[label].append(per_call(fn))
            med = {label: statistics.median(t) for label, t in times.items()}
            low = {label: min(t) for label, t in times.items()}
            parts = [f"sgemm {med['sgemm'] * 1e6:.2f} us"]
            for label in (*impls, "out="):
                parts.append(f"{label} {med[label] * 1e6:.3f} us [{low[label] * 1e6:.3f}] "
                             f"{med['sgemm'] / med[label]:.2f}x sgemm")
            if "before" in med:
                parts.append(f"after/before {med['after'] / med['before']:.3f} "
                             f"(min {low['after'] / low['before']:.3f})")
                parts.append(f"out=/before {med['out='] / med['before']:.3f} "
                             f"(min {low['out='] / low['before']:.3f})")
            print(f"{kind:7s} {m}x{k}x{n}: " + " | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
