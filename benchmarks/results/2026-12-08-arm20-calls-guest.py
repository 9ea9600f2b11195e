"""Guest of 2026-12-08-arm20-calls.md: instructions per call of the public 1x784x512 products
under QEMU, this checkout's ``fastbin.ops.matmul`` (the default call and the ``out=`` call)
against main's (loaded as a second module over the same kernels), next to the kernels from an
``@njit`` loop (benchmarks/arm64/guest.py's loops) and pieces of the binary call, among them
the kernel's compiled entry point with and without ``nogil`` (a twin compiled here, own name).

``python 2026-12-08-arm20-calls-guest.py BEFORE OUT.json [--warm-only] [VARIANT]`` (run by
2026-12-08-arm20-calls-host.py); VARIANT: one more ``fastbin/ops/matmul.py`` whose binary calls are
counted beside (a scratch variant of this branch's)."""
import gc
import importlib.util
import json
import os
import sys

import numba
import numpy as np

sys.path.insert(0, os.environ["ARM_BENCH_DIR"])
import guest  # noqa: E402  (benchmarks/arm64/guest.py: inputs, loops)

import fastbin  # noqa: E402
from fastbin import reference  # noqa: E402
from fastbin.kernels import binary_product  # noqa: E402
from fastbin.kernels._plan import entry_point  # noqa: E402
from fastbin.kernels.binary_product.rows4 import binary_matmul_rows4  # noqa: E402
from fastbin.ops import matmul  # noqa: E402


@numba.njit(cache=True)  # nogil=False: Numba's wrapper keeps the GIL (no release and re-take)
def rows4_with_gil(a_bits, w_bits, n_bits, out):
    return binary_matmul_rows4(a_bits, w_bits, n_bits, out)


def load_before(path, name="fastbin.ops._matmul_before"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "fastbin.ops"
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def loop(fn, args, kwargs=None):
    if kwargs:
        def run(reps):
            for _ in range(reps):
                fn(*args, **kwargs)
    else:
        def run(reps):
            for _ in range(reps):
                fn(*args)
    return run


def main():
    before = load_before(sys.argv[1])
    out_json = sys.argv[2]
    warm_only = "--warm-only" in sys.argv[3:]
    variants = [load_before(path, f"fastbin.ops._matmul_variant{i}")
                for i, path in enumerate(a for a in sys.argv[3:] if a != "--warm-only")]
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
        out = np.empty(expected.shape, expected.dtype)
        for label, got in (("after", fn_new(*args)), ("before", fn_old(*args)), ("out", fn_new(*args, out=out)),
                           ("out positional", fn_new(*args, out))):
            ok = np.array_equal(got, expected) if product != "float32" else np.allclose(got, expected, atol=1e-3)
            if not ok:
                raise SystemExit(f"{label} {product} differs")
        cases += [(f"{product}|kernel", kernel), (f"{product}|public-after", loop(fn_new, args)),
                  (f"{product}|public-out", loop(fn_new, args, {"out": out})),
                  (f"{product}|public-out-positional", loop(fn_new, (*args, out))),
                  (f"{product}|public-before", loop(fn_old, args))]
        for i, variant in enumerate(variants):
            fn = getattr(variant, fn_new.__name__)
            np.testing.assert_array_equal(fn(*args, out=out), fn_new(*args))
            cases += [(f"{product}|variant{i}", loop(fn, args)),
                      (f"{product}|variant{i}-out", loop(fn, args, {"out": out}))]
    # pieces of the binary call (each from its own Python loop; "lambda" is the floor of a piece)
    out = np.empty((m, n), np.int32)
    path = binary_product.plan(m, n, a.n_words, None)
    entry = matmul._ENTRIES[(path.kernel, np.dtype(np.int32))]
    ab, wb, i32, nd = a.bits, w.bits, np.dtype(np.int32), np.ndarray
    rows4_with_gil(ab, wb, k, out)
    twin = entry_point(rows4_with_gil, ab, wb, k, out)
    np.testing.assert_array_equal(out, reference.binary_matmul(a, w))

    def nothing(*args):
        return None

    def nothing_kw(a, w, out=None, *, threads=None):
        return None

    def piece(f):
        def run(reps):
            for _ in range(reps):
                f()
        return run

    cases += [("piece|lambda", piece(lambda: None)),
              ("piece|np.empty", piece(lambda: np.empty((m, n), i32))),
              ("piece|kernel-entry", piece(lambda: entry(ab, wb, k, out))),
              ("piece|twin-entry-gil", piece(lambda: twin(ab, wb, k, out))),
              ("piece|out test", piece(lambda: type(out) is nd and out.dtype is i32 and out.shape == (m, n)
                                       and (f := out.flags).carray and f.owndata and a.owns_bits and w.owns_bits)),
              ("piece|out test: type, dtype", piece(lambda: type(out) is nd and out.dtype is i32)),
              ("piece|out test: shape == (m, n)", piece(lambda: out.shape == (m, n))),
              ("piece|out test: ndim, len, size", piece(lambda: out.ndim == 2 and len(out) == m and out.size == m * n)),
              ("piece|out test: flags", piece(lambda: (f := out.flags).carray and f.owndata)),
              ("piece|out test: owns_bits", piece(lambda: a.owns_bits and w.owns_bits)),
              ("piece|may_share_memory x2",
               piece(lambda: np.may_share_memory(out, ab) or np.may_share_memory(out, wb))),
              ("piece|out.flags.carray", piece(lambda: out.flags.carray)),
              ("floor|call kw-only", loop(nothing_kw, (a, w))),
              ("floor|call out=", loop(nothing_kw, (a, w), {"out": out})),
              ("floor|call out positional", loop(nothing_kw, (a, w, out))),
              ("python-floor|-|public", guest._python_floor())]
    for _, run in cases:
        run(1)
        run(16)
        run(16)
    if warm_only:
        print(f"probe: {len(cases)} cases warm, entry {entry!r}, twin {twin!r}", file=sys.stderr)
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
        json.dump({"order": order, "entry": repr(entry), "twin": repr(twin)}, fh)


main()
