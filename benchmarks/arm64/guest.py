"""The guest side of ``make bench-arm64``: runs under ``qemu-aarch64`` with the counting plugin
(``insncount.c``, ``marker=173``) and brackets every measurement with ``os.getppid()`` (system
call 173 on AArch64), whose marks the plugin prints with the instruction count so far.

``python guest.py --lib neon_ref.so --model mlp.fbm --out cases.json``

Each case is a callable ``run(reps)``; it is called a few times to warm up (Numba compiles or
loads its cache, the interpreter specialises the loop, all outside the brackets), then measured
with ``reps = N, 2N, N`` calls between two marks each (so ``(count(2N) - count(N)) / N`` is the
cost of one call, set-up cancelled, and the two ``N`` runs show whether the count is exact).
``cases.json`` lists the cases in mark order; the host (``run.py``) pairs them with the plugin's
log. The garbage collector is off while counting.

Cases, per product and shape: the C NEON reference (``neon_ref.c`` through ctypes, its own
loop in C), fastbin's kernel called from an ``@njit`` loop, and the public call from a Python
loop; and the runtime's batch-1 ``predict`` of a 784-512-512-10 binary MLP, uint8 and float
input, on the numba and numpy engines, next to the references of its three layers' products.
Every result is checked against ``fastbin.reference`` first.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import sys

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

import fastbin
from fastbin import reference
from fastbin.bits import aligned_empty
from fastbin.kernels import binary_product, sign_product
from fastbin.kernels.binary_product.blocked import binary_matmul_kernel
from fastbin.kernels.binary_product.rows4 import binary_matmul_rows4
from fastbin.kernels.sign_product.f32_rows import sign_matmul_f32_rows
from fastbin.kernels.sign_product.portable import (
    sign_matmul_bits,
    sign_matmul_float,
    sign_matmul_uint8,
    sign_matmul_uint8_float,
)
from fastbin.kernels.sign_product.uint8_masks import sign_matmul_uint8_masks
from fastbin.kernels.sign_product.uint8_rows import sign_matmul_uint8_rows

__all__ = ["main"]

K, N_OUT = 784, 512
ROWS = (1, 64)
#: calls per measurement by rows: the counts are exact, so a few calls suffice
REPS = {1: 8, 64: 2}
MLP_LAYERS = ((784, 512), (512, 512), (512, 10))


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def _reference_lib(path):
    lib = ctypes.CDLL(path)
    i, p, long_ = ctypes.c_int, ctypes.c_void_p, ctypes.c_long
    lib.bench_binary.argtypes = [long_, p, p, i, i, i, i, p]
    lib.bench_uint8.argtypes = [long_, p, p, i, i, i, i, p]
    lib.bench_float32.argtypes = [long_, p, p, i, i, i, i, p]
    for name in ("bench_binary", "bench_uint8", "bench_float32"):
        getattr(lib, name).restype = None
    return lib


def _aligned(x):
    """``x`` copied to a 64-byte aligned array (as fastbin's packed operands are): the counts of
    kernels with vector loads may depend on the address, so every run places the rows alike."""
    out = aligned_empty(x.shape, x.dtype)
    out[...] = x
    return out


def _inputs(rng, m, k, n):
    """(uint8 x, float32 x in [0, 1], packed a, packed w) for an (m, k) by (n, k) product."""
    x8 = _aligned(rng.integers(0, 256, (m, k), dtype=np.uint8))
    xf = _aligned((x8 / np.float32(255)).astype(np.float32))
    a = fastbin.pack_signs(rng.standard_normal((m, k)).astype(np.float32))
    w = fastbin.pack_weights(rng.standard_normal((k, n)).astype(np.float32))
    return x8, xf, a, w


def _reference_cases(lib, product, m, k, n, data):
    """The C reference's ``run(reps)`` for one product, its result checked."""
    x8, xf, a, w = data
    nw = w.bits.shape[1]
    if product == "binary":
        out = aligned_empty((m, n), np.int32)
        args = (_ptr(a.bits), _ptr(w.bits), m, n, nw, k, _ptr(out))
        fn, expected = lib.bench_binary, reference.binary_matmul(a, w)
    elif product == "uint8":
        out = aligned_empty((m, n), np.int32)
        args = (_ptr(x8), _ptr(w.bits), m, n, k, nw, _ptr(out))
        fn, expected = lib.bench_uint8, reference.sign_matmul(x8, w)
    else:
        out = aligned_empty((m, n), np.float32)
        args = (_ptr(xf), _ptr(w.bits), m, n, k, nw, _ptr(out))
        fn, expected = lib.bench_float32, reference.sign_matmul(xf, w)
    fn(1, *args)
    _check(f"C reference {product} {m}x{k}x{n}", out, expected)
    return lambda reps: fn(reps, *args)


def _check(what, got, expected):
    if got.dtype.kind == "f":
        ok = np.allclose(got, expected, rtol=1e-4, atol=1e-3)
    else:
        ok = np.array_equal(got, expected)
    if not ok:
        raise SystemExit(f"guest: {what} differs from fastbin.reference")


#: planned path name -> the serial kernel the public call takes for it (binary products, then
#: sign_matmul's)
BINARY_KERNELS = {"blocked": binary_matmul_kernel, "rows4": binary_matmul_rows4}
SIGN_KERNELS = {"bits": sign_matmul_bits, "f32_rows": sign_matmul_f32_rows, "unpack": sign_matmul_float,
                "uint8_planes": sign_matmul_uint8, "uint8_float": sign_matmul_uint8_float,
                "uint8_masks": sign_matmul_uint8_masks, "uint8_rows": sign_matmul_uint8_rows}


def _kernel(path, args):
    """The kernel of ``path`` (a literal string) called on the tuple ``args``; compiled code only."""
    raise NotImplementedError


@overload(_kernel)
def _kernel_overload(path, args):
    if not isinstance(path, types.StringLiteral):
        return None
    kernel = {**BINARY_KERNELS, **SIGN_KERNELS}[path.literal_value]

    def call(path, args):
        kernel(*args)

    return call


def _kernel_loop(path):
    """An @njit loop: ``loop(reps, args)`` calls the kernel of ``path`` ``reps`` times on the tuple
    ``args``. ``path`` is a constant of the closure (a literal string where it is typed, and part of
    the cache's key), so each path has its own cached loop, chosen in Python by the dict below, and
    the loop's calls dispatch on its arguments' types alone."""

    @numba.njit(cache=True)
    def loop(reps, args):
        for _ in range(reps):
            _kernel(path, args)

    return loop


#: planned path name -> its @njit loop
LOOPS = {path: _kernel_loop(path) for path in {**BINARY_KERNELS, **SIGN_KERNELS}}


#: the kernel each case ran: (product, shape) -> planned path name (written to the JSON)
PLANNED: dict = {}


def _fastbin_cases(product, m, k, n, data):
    """(kernel ``run(reps)`` from an @njit loop, public ``run(reps)`` from Python), checked."""
    x8, xf, a, w = data
    if product == "binary":
        out = aligned_empty((m, n), np.int32)
        name = binary_product.plan(m, n, a.bits.shape[1], threads=False).name
        loop = LOOPS[name]

        def kernel(reps):
            loop(reps, (a.bits, w.bits, k, out))

        def public(reps):
            for _ in range(reps):
                fastbin.binary_matmul(a, w)

        expected, result = reference.binary_matmul(a, w), lambda: fastbin.binary_matmul(a, w)
    else:
        x = x8 if product == "uint8" else xf
        out = aligned_empty((m, n), np.int32 if product == "uint8" else np.float32)
        name = sign_product.plan(m, k, n, x.dtype, threads=False).name
        loop = LOOPS[name]

        def kernel(reps):
            loop(reps, (x, w.bits, out))

        def public(reps):
            for _ in range(reps):
                fastbin.sign_matmul(x, w)

        expected, result = reference.sign_matmul(x, w), lambda: fastbin.sign_matmul(x, w)
    PLANNED[f"{product}|{m}x{k}x{n}"] = name
    kernel(1)
    _check(f"fastbin kernel {product} {m}x{k}x{n}", out, expected)
    _check(f"fastbin public {product} {m}x{k}x{n}", result(), expected)
    return kernel, public


def _kernels_as_public():
    """The kernels the harness loops over are those the public calls take on this CPU: no
    lookup tables (x86 AVX-512 only), no BLAS path (x86-64 only), one thread."""
    from fastbin import _config

    chosen = {"FLOAT_LUT": _config.FLOAT_LUT, "INT16_LUT": _config.INT16_LUT,
              "SIGN_MATMUL_BLAS": _config.SIGN_MATMUL_BLAS, "threads": numba.get_num_threads()}
    if chosen != {"FLOAT_LUT": False, "INT16_LUT": False, "SIGN_MATMUL_BLAS": False, "threads": 1}:
        raise SystemExit(f"guest: the public calls would not take the looped kernels here: {chosen}")


def _predict_cases(model_path):
    """``run(reps)`` of batch-1 ``predict`` per (engine, input kind), checked against the numpy engine."""
    from fastbin import runtime

    rng = np.random.default_rng(5)
    x8 = _aligned(rng.integers(0, 256, (1, 784), dtype=np.uint8))
    inputs = {"uint8": x8, "float": _aligned((x8 / np.float32(255)).astype(np.float32))}
    models = {engine: runtime.load(model_path, engine=engine) for engine in ("numba", "numpy")}
    cases = {}
    for engine, model in models.items():
        for kind, x in inputs.items():
            got, expected = model.predict(x), models["numpy"].logits(x).argmax(axis=1)
            if not np.array_equal(got, expected):
                raise SystemExit(f"guest: predict {engine} {kind} differs from the numpy engine's logits")

            def run(reps, model=model, x=x):
                for _ in range(reps):
                    model.predict(x)

            cases[(engine, kind)] = run
    return cases


def _python_floor():
    """A Python loop calling a no-op function: the floor under every public call's count."""

    def nothing(*args):
        return None

    def run(reps):
        for _ in range(reps):
            nothing(1, 2)

    return run


def _versions():
    import llvmlite
    import llvmlite.binding as llvm
    from numba.core.registry import cpu_target

    triple, cpu, features = cpu_target.target_context.codegen().magic_tuple()
    return {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "llvmlite": llvmlite.__version__, "llvm": ".".join(map(str, llvm.llvm_version_info)),
            "triple": triple, "numba_cpu": cpu, "numba_features": features, "machine": platform.machine()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True, help="the C reference kernels, neon_ref.c built as a .so")
    parser.add_argument("--model", required=True, help="the 784-512-512-10 binary MLP model file")
    parser.add_argument("--out", help="JSON: the cases in mark order, N, versions")
    parser.add_argument("--warm-only", action="store_true",
                        help="only build and check every case (fills the Numba cache), count nothing")
    parser.add_argument("--only", default="",
                        help="comma-separated subset of binary,float32,uint8,predict (default: all)")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(","))) or {"binary", "float32", "uint8", "predict"}
    if not args.warm_only and not args.out:
        parser.error("--out is required unless --warm-only")

    _kernels_as_public()
    lib = _reference_lib(args.lib)
    rng = np.random.default_rng(2026)
    cases = []  # (name, run, N)
    for m in ROWS:
        data = _inputs(rng, m, K, N_OUT)
        for product in [p for p in ("binary", "float32", "uint8") if p in only]:
            shape = f"{m}x{K}x{N_OUT}"
            kernel, public = _fastbin_cases(product, m, K, N_OUT, data)
            cases.append((f"{product}|{shape}|ref", _reference_cases(lib, product, m, K, N_OUT, data), REPS[m]))
            cases.append((f"{product}|{shape}|kernel", kernel, REPS[m]))
            cases.append((f"{product}|{shape}|public", public, REPS[m]))
    # the first layer's references are the 1x784x512 ones above
    for k, n in MLP_LAYERS[1:] if "predict" in only else ():
        data = _inputs(rng, 1, k, n)
        cases.append((f"binary|1x{k}x{n}|ref", _reference_cases(lib, "binary", 1, k, n, data), REPS[1]))
    for (engine, kind), run in _predict_cases(args.model).items() if "predict" in only else ():
        cases.append((f"predict-{kind}|{engine}|public", run, REPS[1]))
    cases.append(("python-floor|-|public", _python_floor(), REPS[1]))

    # Warm: everything compiled or loaded, and the Python code of every loop specialised by the
    # interpreter (3.11's adaptive bytecode), before the first mark.
    for _, run, reps in cases:
        run(1)
        run(2 * reps)
        run(2 * reps)
    if args.warm_only:
        print(f"guest: {len(cases)} cases compiled and checked", file=sys.stderr)
        return
    order = []
    gc.collect()
    gc.disable()
    for name, run, reps in cases:
        for calls in (reps, 2 * reps, reps):
            os.getppid()  # mark: start
            run(calls)
            os.getppid()  # mark: stop
            order.append([name, calls])
    gc.enable()
    with open(args.out, "w") as fh:
        json.dump({"order": order, "versions": _versions(), "planned": PLANNED}, fh, indent=1)
    print(f"guest: {len(order)} measurements, {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
