"""Profile one training step of the issue-25 network (fastbin.nn.model.bnn_conv: binary 3x3
convs of 32, 32, 64, 64 channels, batch 128, Fashion-MNIST uint8 28x28x1) phase by phase.

    nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convtrain.py [--steps 6] [--activation sign]
    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python \
        benchmarks/results/2026-12-07-convtrain.py --cpu-clock

Runs on whatever ``fastbin`` is importable (so ``PYTHONPATH=/tmp/before`` runs an older tree):
each training stage's forward and backward, the loss and the optimizer step are timed, and
the backend functions and the conv module's helpers each stage calls (totals per step).
Prints medians over ``--steps`` steps after two warm-up steps (the compiles).
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import platform
import time

import numpy as np

import fastbin
from fastbin.io.datasets import load_fashion_mnist
from fastbin.nn import Adam
from fastbin.nn import conv as conv_module
from fastbin.nn.model import bnn_conv

TIMES = collections.defaultdict(list)  # phase -> seconds in the current step
CLOCK = [time.perf_counter]  # --cpu-clock: time.process_time (single-threaded runs: the work, not the waits)
_DEPTH = [0]


def timed(name, fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        top = _DEPTH[0] == 0  # only the outermost call of a helper is counted
        _DEPTH[0] += 1
        t0 = CLOCK[0]()
        try:
            return fn(*args, **kwargs)
        finally:
            _DEPTH[0] -= 1
            if top:
                TIMES[name].append(CLOCK[0]() - t0)

    return run


def stage_timer(name, fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        t0 = CLOCK[0]()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name].append(CLOCK[0]() - t0)

    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--activation", default="sign")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--cpu-clock", action="store_true", help="phases in process CPU time (for 1-thread runs)")
    args = ap.parse_args()
    if args.cpu_clock:
        CLOCK[0] = time.process_time
    data = load_fashion_mnist(dtype="uint8", download=False)
    x, y = data.x_train, data.y_train
    scale = args.activation != "sign"
    model = bnn_conv(seed=0, activation=args.activation, scale=scale)
    opt = Adam(5e-3)
    be = model.backend
    names = ["im2col", "col2im", "pack_patches", "max_pool2d", "max_pool2d_backward", "pack_signs", "pack_weights",
             "binary_matmul", "dense_sign_matmul", "batch_norm_sign_train", "batch_norm_train", "batch_norm_backward",
             "softmax_cross_entropy", "adam_update", "signs", "unit_from_uint8"]
    for name in names:
        if hasattr(be, name):
            setattr(be, name, timed("fn " + name, getattr(be, name)))
    for name in ("im2col", "col2im", "max_pool2d", "max_pool2d_backward"):  # the older tree calls these directly
        if hasattr(conv_module, name):
            setattr(conv_module, name, timed("fn " + name + " (module)", getattr(conv_module, name)))
    for i, stage in enumerate(model.train_stages):
        label = f"{i:2d} {type(stage).__name__}"
        if hasattr(stage, "bn"):
            label = f"{i:2d} BatchNorm+Sign({stage.bn.n})"
        elif hasattr(stage, "filters"):
            label = f"{i:2d} Conv2D({stage.in_channels}->{stage.filters})"
        stage.forward = stage_timer("fwd " + label, stage.forward)
        stage.backward = stage_timer("bwd " + label, stage.backward)
    opt.step = stage_timer("optimizer step", opt.step)
    steps, cpu = [], []
    per_step = []
    rng = np.random.default_rng(0)
    for s in range(2 + args.steps):
        rows = rng.choice(x.shape[0], args.batch, replace=False)
        xb, yb = np.ascontiguousarray(x[rows]), y[rows]
        TIMES.clear()
        c0, t0 = time.process_time(), time.perf_counter()
        model.train_step(xb, yb, opt)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if s >= 2:
            steps.append(dt)
            cpu.append(dc)
            per_step.append({k: sum(v) for k, v in TIMES.items()})
    print(f"fastbin {fastbin.__file__}  CPU {platform.processor() or platform.machine()}  "
          f"activation {args.activation}  batch {args.batch}  phase clock {CLOCK[0].__name__}")
    print(f"step: median {np.median(steps):.3f} s  min {min(steps):.3f} s  ({len(steps)} steps); process CPU time "
          f"median {np.median(cpu):.3f} s  min {min(cpu):.3f} s; load average {os.getloadavg()[0]:.1f}")
    keys = sorted({k for d in per_step for k in d}, key=lambda k: (not k.startswith(("fwd", "bwd")), k[4:7] if
                                                                    k.startswith(("fwd", "bwd")) else k, k))
    for k in keys:
        vals = [d.get(k, 0.0) for d in per_step]
        print(f"  {k:40s} median {1e3 * np.median(vals):8.1f} ms   min {1e3 * min(vals):8.1f} ms")


if __name__ == "__main__":
    main()
