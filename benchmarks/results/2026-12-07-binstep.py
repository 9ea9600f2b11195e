"""The fully binary MLP training step (784-200-100-10, batch 256, Adam) before and after branch
``binstep``, against the plain-NumPy reference and PyTorch, in ONE process, alternating
(benchmarks/results/2026-12-07-binstep.md).

    python 2026-12-07-binstep.py ab [--before DIR] [--rounds R] [--threads N] [--sizes 784,200,100,10]
    python 2026-12-07-binstep.py stages [--threads N]
    python 2026-12-07-binstep.py --avx2 ab ...      # the same in a child on the AVX2 code path

``ab``: the before package (``git archive main`` unpacked in DIR, default /tmp/binstep-before) is
imported first, its model built and warmed up, then every ``fastbin`` module is dropped from
``sys.modules`` and this worktree's package imported (objects of the first import keep their own
module globals, so both run side by side; the printout names the file each backend's
``dense_sign_matmul`` comes from). Each round runs ``steps`` steps of every implementation in
turn (reference, torch, before, after, in a rotating order); per implementation the median and
minimum over rounds of the mean step time, and the ratios of the medians.

``stages``: where the after model's step goes, per stage (forward and backward of each training
stage, the loss, the optimizer), summed over many steps.

``--threads N``: Numba's thread count (BLAS and torch stay on one thread, as in the suite:
``fastbin`` rows 1, ``fastbin-threaded`` rows Numba's default). ``--avx2``: re-run in a child
compiled for ``znver3`` with every feature a Zen 3 lacks off, OpenBLAS on its Haswell kernels, a
separate ``NUMBA_CACHE_DIR`` (as 2026-12-07-avx2b.py).
"""
from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402


def _avx2_env():
    from numba.core.registry import cpu_target

    features = cpu_target.target_context.codegen().magic_tuple()[2]
    not_zen3 = ("avx512", "avx10", "evex512", "gfni", "avxvnni")  # as tests/test_sign_avx2.py
    off = ",".join(("-" + f[1:]) if f.startswith("+") and any(p in f for p in not_zen3) else f
                   for f in features.split(","))
    return {**os.environ, "NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": off, "OPENBLAS_CORETYPE": "Haswell",
            "NUMBA_CACHE_DIR": os.environ.get("AVX2_CACHE", "/tmp/binstep-avx2-cache"),
            "ATEN_CPU_CAPABILITY": "avx2"}  # torch's kernels held to AVX2 too


def _import_fastbin(path):
    for name in [n for n in sys.modules if n == "fastbin" or n.startswith("fastbin.")]:
        del sys.modules[name]
    sys.path.insert(0, path)
    try:
        import fastbin.nn.model as models
        import fastbin.nn.optim as optim
    finally:
        sys.path.remove(path)
    return models, optim


def _batch(m, k=784, c=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((m, k), dtype=np.float32), rng.integers(0, c, size=m)


def _step_fn(models, optim, sizes, backend, x, labels, uint8=False):
    model = models.mlp(sizes, binary_weights=True, binary_activations=True, seed=0, backend=backend)
    opt = optim.Adam(lr=1e-3)
    xx = np.round(x * 255).astype(np.uint8) if uint8 else x
    loss0 = model.compute_gradients(xx, labels)

    def step():
        return model.train_step(xx, labels, opt)

    for _ in range(3):
        step()
    return step, loss0, model


def _torch_step(models, sizes, x, labels):
    try:
        import torch
    except ImportError:
        return None
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from baselines import torch_binary_mlp_step
    sys.path.pop(0)
    torch.set_num_threads(1)
    ref = models.mlp(sizes, binary_weights=True, binary_activations=True, seed=0, backend="reference")
    weights = [layer.params["W"] for layer in ref.layers if hasattr(layer, "n_out")]
    fn = torch_binary_mlp_step(torch, weights, x, labels, lr=1e-3)
    for _ in range(3):
        fn()
    return fn


def ab(args):
    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    sizes = [int(v) for v in args.sizes.split(",")]
    x, labels = _batch(args.batch)
    impls = {}
    models_b, optim_b = _import_fastbin(args.before)
    impls["before"], loss_b, mb = _step_fn(models_b, optim_b, sizes, "fastbin", x, labels)
    before_file = mb.backend.dense_sign_matmul.__code__.co_filename
    if args.uint8:
        impls["before-u8"], _, _ = _step_fn(models_b, optim_b, sizes, "fastbin", x, labels, uint8=True)
    models_a, optim_a = _import_fastbin(ROOT)
    impls["reference"], loss_r, _ = _step_fn(models_a, optim_a, sizes, "reference", x, labels)
    impls["after"], loss_a, ma = _step_fn(models_a, optim_a, sizes, "fastbin", x, labels)
    if args.uint8:
        impls["after-u8"], _, _ = _step_fn(models_a, optim_a, sizes, "fastbin", x, labels, uint8=True)
        impls["reference-u8"], _, _ = _step_fn(models_a, optim_a, sizes, "reference", x, labels, uint8=True)
    torch_fn = _torch_step(models_a, sizes, x, labels)
    if torch_fn is not None:
        impls["torch"] = torch_fn
    from fastbin import _config

    print(f"CPU kind {_config.CPU_KIND}, magic {_config._MAGIC_TUPLE[1]}, Numba threads {numba.get_num_threads()}, "
          f"OPENBLAS_NUM_THREADS {os.environ.get('OPENBLAS_NUM_THREADS')}, OPENBLAS_CORETYPE "
          f"{os.environ.get('OPENBLAS_CORETYPE')}, load {os.getloadavg()}")
    print(f"before: {before_file}\nafter:  {ma.backend.dense_sign_matmul.__code__.co_filename}")
    print(f"first-step loss: reference {loss_r:.6f} before {loss_b:.6f} after {loss_a:.6f}")
    names = list(impls)
    times = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn = impls[name]
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append((time.perf_counter() - t0) / args.steps)
    med = {name: float(np.median(t)) for name, t in times.items()}
    print(f"sizes {sizes}, batch {args.batch}, {args.rounds} rounds x {args.steps} steps; load after "
          f"{os.getloadavg()}")
    print("| impl | median ms | min ms | reference / impl | torch / impl |")
    print("|---|---|---|---|---|")
    for name in names:
        ref = med["reference"] / med[name]
        tor = f"{med['torch'] / med[name]:.2f}x" if "torch" in med else "-"
        print(f"| {name} | {med[name] * 1e3:.3f} | {min(times[name]) * 1e3:.3f} | {ref:.2f}x | {tor} |")
    if "after-u8" in med:
        print(f"uint8 input: reference-u8 / after-u8 = {med['reference-u8'] / med['after-u8']:.2f}x, "
              f"reference-u8 / before-u8 = {med['reference-u8'] / med['before-u8']:.2f}x")


def stages(args):
    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    sizes = [int(v) for v in args.sizes.split(",")]
    x, labels = _batch(args.batch)
    models, optim = _import_fastbin(ROOT)
    for backend in args.backends.split(","):
        step, _, model = _step_fn(models, optim, sizes, backend, x, labels, uint8=args.uint8)
        acc = {}

        def timed(label, fn, acc=acc):
            def wrapper(*a, **kw):
                t0 = time.perf_counter()
                out = fn(*a, **kw)
                acc.setdefault(label, []).append(time.perf_counter() - t0)
                return out
            return wrapper

        for i, stage in enumerate(model.train_stages):
            name = f"{i}:{type(stage).__name__}"
            stage.forward = timed(f"{name} fwd", stage.forward)
            stage.backward = timed(f"{name} bwd", stage.backward)
        be = model.backend
        originals = {}
        for fn in ("softmax_cross_entropy", "adam_update", "unit_from_uint8"):
            originals[fn] = getattr(be, fn)
            setattr(be, fn, timed(fn, originals[fn]))
        for _ in range(3):
            step()
        acc.clear()
        n = args.steps * args.rounds
        steps = []
        for _ in range(n):
            t0 = time.perf_counter()
            step()
            steps.append(time.perf_counter() - t0)
        total = float(np.median(steps))
        for fn, orig in originals.items():
            setattr(be, fn, orig)
        print(f"{backend}: step median {total * 1e6:.0f} us, min {min(steps) * 1e6:.0f} us (Numba threads "
              f"{numba.get_num_threads()}, load {os.getloadavg()}); per stage the median call times the calls a step")
        parts = 0.0
        for label, t in acc.items():
            part = float(np.median(t)) * len(t) / n
            parts += part
            print(f"  {label:<34} {part * 1e6:8.1f} us")
        print(f"  {'(rest: Python, checks)':<34} {(total - parts) * 1e6:8.1f} us")


DENSE_SHAPES = [(256, 784, 200), (256, 200, 100), (256, 100, 200), (256, 100, 10), (256, 10, 100),
                (128, 784, 10), (25088, 64, 576), (25088, 128, 576), (25088, 576, 64)]


def dense(args):
    """``dense_sign_matmul(exact=False)``'s paths forced at the training shapes, unthreaded (Numba on
    one thread), in rounds that alternate the paths; min and median over rounds of the mean call."""
    import numba

    numba.set_num_threads(1)
    _import_fastbin(ROOT)
    from fastbin import _config
    from fastbin.kernels.sign_product import plan_dense
    from fastbin.ops.dense import dense_product

    shapes = [tuple(int(v) for v in a.split("x")) for a in args.shapes.split(",")] if args.shapes else DENSE_SHAPES
    paths = ["blas", "packed"] + (["lut"] if _config.FLOAT_LUT else [])
    print(f"CPU kind {_config.CPU_KIND}, magic {_config._MAGIC_TUPLE[1]}, OPENBLAS_CORETYPE "
          f"{os.environ.get('OPENBLAS_CORETYPE')}, load {os.getloadavg()}")
    print("| m x k x n | planned | " + " | ".join(f"{p} min / median us" for p in paths) + " |")
    print("|---|---|" + "---|" * len(paths))
    rng = np.random.default_rng(0)
    for m, k, n in shapes:
        x = rng.standard_normal((m, k)).astype(np.float32)
        w = rng.standard_normal((k, n)).astype(np.float32)
        planned_paths = {p: plan_dense(m, k, n, np.float32, exact=False, force=p) for p in paths}
        calls = {p: functools.partial(dense_product, planned_paths[p], x, w) for p in paths}
        for fn in calls.values():
            fn()
        t0 = time.perf_counter()
        calls["blas"]()
        reps = max(1, int(0.05 / max(1e-7, time.perf_counter() - t0)))
        times = {p: [] for p in paths}
        for r in range(args.rounds):
            for p in paths[r % len(paths):] + paths[:r % len(paths)]:
                t0 = time.perf_counter()
                for _ in range(reps):
                    calls[p]()
                times[p].append((time.perf_counter() - t0) / reps)
        planned = plan_dense(m, k, n, np.float32, exact=False).name
        cells = " | ".join(f"{min(times[p]) * 1e6:.1f} / {np.median(times[p]) * 1e6:.1f}" for p in paths)
        print(f"| {m}x{k}x{n} | {planned} | {cells} |", flush=True)
    print(f"load after {os.getloadavg()}")


def main():
    argv = sys.argv[1:]
    if argv and argv[0] == "--avx2":
        sys.exit(subprocess.run([sys.executable, __file__, *argv[1:]], env=_avx2_env()).returncode)
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["ab", "stages", "dense"])
    p.add_argument("--before", default="/tmp/binstep-before")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--sizes", default="784,200,100,10")
    p.add_argument("--backends", default="fastbin")
    p.add_argument("--uint8", action="store_true")
    p.add_argument("--shapes", default="")
    args = p.parse_args(argv)
    {"ab": ab, "stages": stages, "dense": dense}[args.mode](args)


if __name__ == "__main__":
    main()
