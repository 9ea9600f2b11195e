"""Scratch guest (2026-12-07-calls.md): instructions per call of the public 1x784x512 products,
this checkout's ops.matmul against main's (loaded as a second module over the same kernels),
next to the kernels from an @njit loop (benchmarks/arm64/guest.py's loops) and pieces of the call."""
import gc
import importlib.util
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.environ["ARM_BENCH_DIR"])
import guest  # noqa: E402  (benchmarks/arm64/guest.py: inputs, loops)

import fastbin  # noqa: E402
from fastbin import reference  # noqa: E402
from fastbin.bits import aligned_empty  # noqa: E402
from fastbin.kernels import binary_product  # noqa: E402
from fastbin.ops import matmul  # noqa: E402


def load_before(path):
    spec = importlib.util.spec_from_file_location("fastbin.ops._matmul_before", path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "fastbin.ops"
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main():
    before = load_before(sys.argv[1])
    out_json = sys.argv[2]
    warm_only = len(sys.argv) > 3 and sys.argv[3] == "--warm-only"
    guest._kernels_as_public()
    rng = np.random.default_rng(2026)
    m, k, n = 1, guest.K, guest.N_OUT
    x8, xf, a, w = guest._inputs(rng, m, k, n)
    cases = []
    for product in ("binary", "uint8", "float32"):
        kernel, _ = guest._fastbin_cases(product, m, k, n, (x8, xf, a, w))
        if product == "binary":
            args = (a, w)
            fn_new, fn_old = fastbin.binary_matmul, before.binary_matmul
            expected = reference.binary_matmul(a, w)
        else:
            x = x8 if product == "uint8" else xf
            args = (x, w)
            fn_new, fn_old = fastbin.sign_matmul, before.sign_matmul
            expected = reference.sign_matmul(x, w)
        for label, fn in (("after", fn_new), ("before", fn_old)):
            got = fn(*args)
            ok = np.array_equal(got, expected) if product != "float32" else np.allclose(got, expected, atol=1e-3)
            if not ok:
                raise SystemExit(f"{label} {product} differs")

        def public(reps, fn=fn_new, args=args):
            for _ in range(reps):
                fn(*args)

        def public_before(reps, fn=fn_old, args=args):
            for _ in range(reps):
                fn(*args)

        cases += [(f"{product}|kernel", kernel), (f"{product}|public-after", public),
                  (f"{product}|public-before", public_before)]
    # pieces of the binary call
    out = aligned_empty((m, n), np.int32)
    path = binary_product.plan(m, n, a.n_words, None)
    entry = matmul._ENTRIES[(path.kernel, np.dtype(np.int32))]
    ab, wb, i32 = a.bits, w.bits, np.dtype(np.int32)

    def piece(f):
        def run(reps):
            for _ in range(reps):
                f()
        return run

    cases += [("piece|np.empty", piece(lambda: np.empty((m, n), i32))),
              ("piece|kernel-dispatch", piece(lambda: path.kernel(ab, wb, k, out))),
              ("piece|kernel-entry", piece(lambda: entry(ab, wb, k, out))),
              ("piece|plan-memo", piece(lambda: binary_product.plan(m, n, 13, None))),
              ("python-floor|-|public", guest._python_floor())]
    for _, run in cases:
        run(1)
        run(16)
        run(16)
    if warm_only:
        print(f"probe: {len(cases)} cases warm, entry {entry!r}", file=sys.stderr)
        return
    order = []
    reps = 8
    gc.collect()
    gc.disable()
    for name, run in cases:
        for calls in (reps, 2 * reps, reps):
            os.getppid()
            run(calls)
            os.getppid()
            order.append([name, calls])
    gc.enable()
    with open(out_json, "w") as fh:
        json.dump({"order": order, "entry": repr(entry)}, fh)


main()
