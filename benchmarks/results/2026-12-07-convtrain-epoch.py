"""A short Fashion-MNIST training run of the issue-25 network (``bnn_conv``, seed 0, batch 128,
Adam with cosine decay over the run): wall-clock training time and test accuracy.

    nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convtrain-epoch.py --epochs 1 [--lr 5e-3]
        [--activation sign]

Training time excludes the two warm-up steps (the compiles) and the final evaluation;
evaluation uses the exact products (``model.evaluate``).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

from fastbin.io.datasets import load_fashion_mnist
from fastbin.nn import Adam, CosineDecay, fit
from fastbin.nn.model import bnn_conv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="updates instead of epochs (0: --epochs)")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--activation", default="sign")
    args = ap.parse_args()
    data = load_fashion_mnist(dtype="uint8", download=False)
    scale = args.activation != "sign"
    warm = bnn_conv(seed=0, activation=args.activation, scale=scale)
    warm.train_step(data.x_train[:128], data.y_train[:128], Adam(1e-3))  # compiles, not timed
    warm.train_step(data.x_train[128:256], data.y_train[128:256], Adam(1e-3))
    model = bnn_conv(seed=0, activation=args.activation, scale=scale)
    steps = args.steps or args.epochs * -(-data.x_train.shape[0] // 128)
    opt = Adam(args.lr, schedule=CosineDecay(steps))
    bound = dict(steps=steps) if args.steps else dict(epochs=args.epochs)
    c0, t0 = time.process_time(), time.perf_counter()
    fit(model, opt, data.x_train, data.y_train, **bound, batch_size=128, eval_every=None, seed=0, progress=False)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    t1 = time.perf_counter()
    loss, acc = model.evaluate(data.x_test, data.y_test)
    eval_s = time.perf_counter() - t1
    print(f"CPU {platform.processor() or platform.machine()}  activation {args.activation}  steps {steps}  "
          f"lr {args.lr}  load average {os.getloadavg()[0]:.1f}")
    print(f"training {train_s:.1f} s ({train_s / steps * 1e3:.0f} ms/step; process CPU time {train_cpu:.1f} s, "
          f"{train_cpu / steps * 1e3:.0f} ms/step)  test accuracy {100 * acc:.2f}%  "
          f"loss {loss:.4f}  evaluation {eval_s:.1f} s")


if __name__ == "__main__":
    main()
