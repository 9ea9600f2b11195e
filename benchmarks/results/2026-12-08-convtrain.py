"""A/B of the conv recipes' training step in one process: main's fastbin against this tree.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/results/2026-12-08-convtrain.py \\
        --main /work/main --steps 8 --threads 1,2 [--activation sign,hardtanh] [--profile]

Main's package is copied (without caches) to ``--copy-to`` as ``fastbin_main`` (fastbin imports
itself relatively, so the copy is a second, independent package) and imported beside this tree's
``fastbin``. Each recipe's network (``bnn_conv(seed=0)``; ``activation="hardtanh", scale=True``
is ``binary-conv``) is built in both, from the same weights; then:

* the gradients of one batch from the same weights, both trees (the float parts differ within
  rounding: the largest difference relative to each array's largest value is printed);
* ``--steps`` training steps (batch 128, Adam 5e-3) per thread count (``numba.set_num_threads``),
  the two trees alternating step by step (A B, then B A) on the same batches: median and min of
  the wall clock and of the process CPU time per step, and main / this tree;
* ``--profile``: this tree's step phase by phase (each stage's forward and backward, the backend
  functions), medians in ms.

Two warm-up steps each (the compiles) are not timed.
"""
from __future__ import annotations

import argparse
import collections
import functools
import importlib
import os
import platform
import shutil
import sys
import time

import numba
import numpy as np

import fastbin
from fastbin.io.datasets import load_fashion_mnist


def import_main(main, copy_to):
    dst = os.path.join(copy_to, "fastbin_main")
    src = os.path.join(main, "fastbin")
    if not os.path.isdir(dst):
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    sys.path.insert(0, copy_to)
    return importlib.import_module("fastbin_main.nn.model"), importlib.import_module("fastbin_main.nn")


def build(model_mod, activation):
    return model_mod.bnn_conv(seed=0, activation=activation, scale=activation != "sign")


def copy_weights(src, dst):
    for (_, flat_a, _, _), (_, flat_b, _, _) in zip(src.groups, dst.groups, strict=True):
        flat_b[...] = flat_a
    for la, lb in zip(src.layers, dst.layers, strict=True):
        for name, value in la.buffers.items():
            lb.buffers[name][...] = value


def gradient_check(a, b, x, y):
    a.compute_gradients(x, y)
    b.compute_gradients(x, y)
    worst = 0.0
    for (_, _, ga, _), (_, _, gb, _) in zip(a.groups, b.groups, strict=True):
        scale = max(float(np.max(np.abs(ga))), 1e-30)
        worst = max(worst, float(np.max(np.abs(ga - gb))) / scale)
    return worst


TIMES = collections.defaultdict(list)


def timed(name, fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name].append(time.perf_counter() - t0)

    return run


def profile(model, opt, x, y, batches):
    be = model.backend
    for name in ("im2col", "col2im", "pack_patches", "max_pool2d", "max_pool2d_backward", "binary_matmul",
                 "dense_sign_matmul", "sign_conv2d", "sign_conv2d_backward", "batch_norm_sign_train",
                 "batch_norm_train", "batch_norm_backward", "softmax_cross_entropy", "adam_update", "signs",
                 "unit_from_uint8", "pack_weights"):
        if hasattr(be, name):
            setattr(be, name, timed("fn " + name, getattr(be, name)))
    for i, stage in enumerate(model.train_stages):
        label = f"{i:2d} {type(stage).__name__}"
        if hasattr(stage, "bn"):
            label = f"{i:2d} BatchNorm+Sign({stage.bn.n})"
        elif hasattr(stage, "filters"):
            label = f"{i:2d} Conv2D({stage.in_channels}->{stage.filters})"
        stage.forward = timed("fwd " + label, stage.forward)
        stage.backward = timed("bwd " + label, stage.backward)
    per_step = []
    for rows in batches:
        TIMES.clear()
        model.train_step(x[rows], y[rows], opt)
        per_step.append({k: sum(v) for k, v in TIMES.items()})
    for k in sorted({k for d in per_step for k in d}, key=lambda k: (k.startswith("fn"), k[4:7], k)):
        vals = [d.get(k, 0.0) for d in per_step]
        print(f"    {k:40s} median {1e3 * np.median(vals):8.1f} ms   min {1e3 * min(vals):8.1f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--main", default="/work/main")
    ap.add_argument("--copy-to", default="/tmp/convtrain-ab")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--activation", default="sign,hardtanh")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    main_model, main_nn = import_main(args.main, args.copy_to)
    from fastbin.nn import Adam
    from fastbin.nn.model import bnn_conv  # noqa: F401 - this tree's builder, through build()
    this_model = importlib.import_module("fastbin.nn.model")
    data = load_fashion_mnist(dtype="uint8", download=False)
    x, y = data.x_train, data.y_train
    print(f"this tree {os.path.dirname(fastbin.__file__)}, main copied from {args.main}; CPU "
          f"{platform.processor() or platform.machine()}, numba {numba.__version__}, numpy {np.__version__}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}, batch {args.batch}")
    rng = np.random.default_rng(0)
    batches = [rng.choice(x.shape[0], args.batch, replace=False) for _ in range(2 + args.steps)]
    for activation in args.activation.split(","):
        recipe = "bnn-conv" if activation == "sign" else "binary-conv"
        models = {"main": build(main_model, activation), "this": build(this_model, activation)}
        copy_weights(models["main"], models["this"])
        worst = gradient_check(models["main"], models["this"], x[batches[0]], y[batches[0]])
        print(f"\n{recipe}: gradients of one batch from the same weights, largest |main - this| / max|main| "
              f"over the parameter groups: {worst:.2e}")
        opts = {"main": main_nn.Adam(5e-3), "this": Adam(5e-3)}
        for name in ("main", "this"):  # warm-up: the compiles
            for rows in batches[:2]:
                models[name].train_step(x[rows], y[rows], opts[name])
        for threads in (int(t) for t in args.threads.split(",")):
            numba.set_num_threads(threads)
            wall, cpu = {"main": [], "this": []}, {"main": [], "this": []}
            for s, rows in enumerate(batches[2:]):
                order = ("main", "this") if s % 2 == 0 else ("this", "main")
                for name in order:
                    c0, t0 = time.process_time(), time.perf_counter()
                    models[name].train_step(x[rows], y[rows], opts[name])
                    wall[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
            print(f"  {threads} Numba thread(s), load average {os.getloadavg()[0]:.1f}:")
            for name in ("main", "this"):
                print(f"    {name:5s} wall median {1e3 * np.median(wall[name]):7.1f} ms  min "
                      f"{1e3 * min(wall[name]):7.1f} ms;  CPU median {1e3 * np.median(cpu[name]):7.1f} ms  min "
                      f"{1e3 * min(cpu[name]):7.1f} ms  (epoch of 469 steps at the median: "
                      f"{469 * np.median(wall[name]):.0f} s)")
            print(f"    main / this: wall median {np.median(wall['main']) / np.median(wall['this']):.2f}x, min "
                  f"{min(wall['main']) / min(wall['this']):.2f}x; CPU median "
                  f"{np.median(cpu['main']) / np.median(cpu['this']):.2f}x")
        if args.profile:
            numba.set_num_threads(int(args.threads.split(",")[-1]))
            print(f"  phases of this tree's step ({numba.get_num_threads()} threads, wall clock):")
            profile(models["this"], opts["this"], x, y, batches[2:])


if __name__ == "__main__":
    main()
