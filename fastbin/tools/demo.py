"""The demo: both seed notebooks, plus binary MLPs, on fastbin and on the NumPy
reference, with a results table (``python -m fastbin demo`` / ``make demo``).

Recipes (``RECIPES``) are also what ``fastbin train --recipe NAME`` uses:

* ``nb1-float``  notebook 1: softmax regression, W ~ rand[0, 1), b = 1, SGD
  lr 0.5, batch 128, 500 steps, lr x0.8 every 20 steps.
* ``nb1-binary`` notebook 1's BinaryConnect loop: sign(W) forward, W clipped,
  evaluation every 200 steps, lr x0.9 when the test loss rises, stop after 5.
* ``nb2-mlp``    notebook 2: MLP 784-200-100-10 tanh, sigma 0.1 init, Adam
  1e-3, batch 256, 5 epochs.
* ``softmax``, ``binary-softmax``, ``mlp``, ``binary-mlp``, ``bnn``: fastbin's
  recipes for the accuracy targets on Fashion-MNIST (longer schedules, batch
  norm on binary layers).
* ``bnn-conv``, ``binary-conv``: binary convolutional networks (issue 25,
  :func:`fastbin.nn.model.bnn_conv`), fully binary and BinaryConnect with
  hardtanh; slow on a small CPU, so ``fastbin train --recipe`` only, not in
  the demo's lists.

Every recipe trains on a :class:`fastbin.datasets.Dataset`, so ``fit`` evaluates
on its test split, and ``nb1-binary``'s decay-on-rise watches the test loss:
the seed notebooks' behaviour, kept so that their figures reproduce. Training
on your own data, pass ``validation_split=`` or ``validation_data=`` to ``fit``
instead (then the test split is never read).
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from ..nn.model import bnn_conv, mlp, softmax_regression
from ..nn.optim import SGD, Adam, CosineDecay, DecayOnRise, StepDecay

__all__ = ["Recipe", "RECIPES", "DEMO_RECIPES", "load_data", "run_recipe", "main"]


@dataclass
class Recipe:
    """A model constructor, an optimizer constructor and ``fit`` arguments."""

    description: str
    weights: str
    activations: str
    build: object  # (backend, seed, data) -> Model; data (a Dataset) may be None
    optimizer: object  # () -> Optimizer
    fit: dict = field(default_factory=dict)
    quick_fit: dict = field(default_factory=dict)  # overrides for --quick

    def fit_args(self, quick=False):
        return {**self.fit, **(self.quick_fit if quick else {})}


_MLP = [784, 200, 100, 10]


def _mean_image(data):
    """Training-set mean pixel (784,), the input offset of the centred
    recipes (0.5 when no data is at hand, e.g. ``fastbin summary``)."""
    if data is None:
        return 0.5
    mean = data.x_train.mean(axis=0, dtype="float64")
    return (mean / 255 if data.x_train.dtype == "uint8" else mean).astype("float32")

RECIPES = {
    "nb1-float": Recipe(
        "notebook 1 softmax regression (SGD 0.5, x0.8/20 steps, 500 steps)", "float32", "-",
        lambda be, seed, data=None: softmax_regression(784, 10, seed=seed, backend=be),
        lambda: SGD(0.5, schedule=StepDecay(20, 0.8)),
        dict(steps=500, batch_size=128, eval_every=20)),
    "nb1-binary": Recipe(
        "notebook 1 BinaryConnect loop (x0.9 on test-loss rise, stop after 5)", "1-bit", "-",
        lambda be, seed, data=None: softmax_regression(784, 10, binary_weights=True, seed=seed, backend=be),
        lambda: SGD(0.5, schedule=DecayOnRise(0.9, 5)),
        dict(steps=10000, batch_size=128, eval_every=200)),
    "nb2-mlp": Recipe(
        "notebook 2 MLP 784-200-100-10 tanh (Adam 1e-3, batch 256, 5 epochs)", "float32", "tanh",
        lambda be, seed, data=None: mlp(_MLP, activation="tanh", seed=seed, backend=be),
        lambda: Adam(1e-3),
        dict(epochs=5, batch_size=256, eval_every=235), dict(epochs=2)),
    "softmax": Recipe(
        "softmax regression, mean-centred input, SGD 1.0 x0.5 every 3 epochs, 20 epochs", "float32", "-",
        lambda be, seed, data=None: softmax_regression(784, 10, input_offset=_mean_image(data), seed=seed,
                                                       backend=be),
        lambda: SGD(1.0, schedule=StepDecay(1407, 0.5)),
        dict(epochs=20, batch_size=128, eval_every=938), dict(epochs=5)),
    "binary-softmax": Recipe(
        "BinaryConnect softmax regression, alpha scale, mean-centred input, batch norm on the logits, Adam",
        "1-bit", "-",
        lambda be, seed, data=None: mlp([784, 10], binary_weights=True, scale=True, output_bn=True,
                                        input_offset=_mean_image(data), seed=seed, backend=be),
        lambda: Adam(3e-3, schedule=StepDecay(938, 0.5)),
        dict(epochs=10, batch_size=128, eval_every=469), dict(epochs=3)),
    "mlp": Recipe(
        "notebook 2's MLP with Adam 2e-3 x0.7 every epoch, 12 epochs", "float32", "tanh",
        lambda be, seed, data=None: mlp(_MLP, activation="tanh", seed=seed, backend=be),
        lambda: Adam(2e-3, schedule=StepDecay(235, 0.7)),
        dict(epochs=12, batch_size=256, eval_every=235), dict(epochs=2)),
    "binary-mlp": Recipe(
        "BinaryConnect MLP 784-200-100-10 tanh + batch norm, mean-centred input, Adam 1e-2 decaying",
        "1-bit", "tanh",
        lambda be, seed, data=None: mlp(_MLP, activation="tanh", binary_weights=True, batch_norm=True,
                                        output_bn=True, input_offset=_mean_image(data), seed=seed, backend=be),
        lambda: Adam(1e-2, schedule=StepDecay(470, 0.6)),
        dict(epochs=10, batch_size=256, eval_every=235), dict(epochs=2)),
    "bnn": Recipe(
        "fully binary MLP 784-200-100-10 (1-bit weights and activations, batch norm)", "1-bit", "1-bit",
        lambda be, seed, data=None: mlp(_MLP, binary_weights=True, binary_activations=True, seed=seed, backend=be),
        lambda: Adam(1e-2, schedule=StepDecay(470, 0.6)),
        dict(epochs=10, batch_size=256, eval_every=235), dict(epochs=2)),
    # issue 25: binary convolutional networks (fastbin.nn.model.bnn_conv); slow here (several minutes an
    # epoch on 2 shared cores), so in neither demo list
    "bnn-conv": Recipe(
        "fully binary CNN: 4 binary 3x3 convs (32, 32, 64, 64) with max pooling, batch norm, sign; "
        "binary dense", "1-bit", "1-bit",
        lambda be, seed, data=None: bnn_conv((28, 28, 1), 10, seed=seed, backend=be),
        # 12 epochs of cosine decay: 90.29% on Fashion-MNIST, seed 0 (docs/conv.md); 3 epochs halving: 88.53%.
        # The same with augment=ImageAugment((28, 28, 1), shift=1, flip=True), label_smoothing=0.1: 89.81%
        # (benchmarks/results/2026-12-08-conv91.md): this network underfits, so not in the recipe
        lambda: Adam(5e-3, schedule=CosineDecay(12 * 469)),
        dict(epochs=12, batch_size=128, eval_every=469), dict(epochs=1)),
    "binary-conv": Recipe(
        "BinaryConnect CNN: the same binary weights with alpha scales, hardtanh activations", "1-bit", "hardtanh",
        lambda be, seed, data=None: bnn_conv((28, 28, 1), 10, activation="hardtanh", scale=True, seed=seed,
                                             backend=be),
        # 12 epochs of cosine decay: 92.75% on Fashion-MNIST, seed 0 (docs/conv.md)
        lambda: Adam(5e-3, schedule=CosineDecay(12 * 469)),
        dict(epochs=12, batch_size=128, eval_every=469), dict(epochs=1)),
}

#: Recipes the demo runs, in order.
DEMO_RECIPES = ["nb1-float", "nb1-binary", "nb2-mlp", "softmax", "binary-softmax", "mlp", "binary-mlp", "bnn"]
QUICK_RECIPES = ["nb1-float", "nb1-binary", "nb2-mlp", "binary-mlp", "bnn"]


def load_data(name="fashion-mnist", data_dir=None, dtype="uint8"):
    """Fashion-MNIST (default; Debian's copy when installed) or MNIST
    (downloaded into the user cache when missing), as raw uint8 pixels by
    default (the trainer converts each batch to float32 / 255)."""
    from ..io.datasets import load_fashion_mnist, load_mnist

    loader = {"fashion-mnist": load_fashion_mnist, "mnist": load_mnist}[name]
    return loader(data_dir, dtype=dtype)


def run_recipe(name, dataset, backend="fastbin", seed=0, quick=False, progress=False, out_dir=None):
    """Train recipe ``name``; returns a dict of results (and the model)."""
    recipe = RECIPES[name]
    _warm_up(recipe, backend, seed, dataset)
    model = recipe.build(backend, seed, dataset)
    history = fit_model(model, recipe.optimizer(), dataset, progress=progress, seed=seed, **recipe.fit_args(quick))
    row = dict(recipe=name, weights=recipe.weights, activations=recipe.activations, backend=backend,
               acc=history.final_acc, time=history.total_time, steps=history.step[-1], model=model)
    if out_dir is not None:
        path = os.path.join(out_dir, f"{name}-{backend}.fbm")
        model.save(path)
        row["path"], row["bytes"] = path, os.path.getsize(path)
        t = time.perf_counter()
        folded_pred = _runtime_model(path, backend).predict(dataset.x_test)  # uint8: the exact integer path
        row["folded_acc"] = float((folded_pred == dataset.y_test).mean())
        row["infer_time"] = time.perf_counter() - t
    return row


def _warm_up(recipe, backend, seed, dataset):
    """Compile (or load from Numba's cache) every kernel the timed run uses,
    so that the table's times are training times, not compile times."""
    model = recipe.build(backend, seed, dataset)
    opt = recipe.optimizer()
    batch = recipe.fit_args().get("batch_size", 128)
    for _ in range(2):
        model.train_step(dataset.x_train[:batch], dataset.y_train[:batch], opt)
    # The whole test set as ``fit`` evaluates it (scaled to the model's float
    # dtype): large batches take the threaded kernels, which a small batch
    # leaves uncompiled (3 s of compilation inside nb1-binary's timed loop,
    # measured on a cold cache).
    model.evaluate(np.divide(dataset.x_test, model.dtype.type(255), dtype=model.dtype), dataset.y_test)
    model.to_inference().predict(dataset.x_test[:64])


def _runtime_model(path, backend):
    """The saved model as the inference runtime loads it (``fastbin.runtime.load``:
    the folded file, no trainable model), on the engine of ``backend``."""
    from ..runtime import engine_for, load

    return load(path, engine=engine_for(backend))


def fit_model(model, opt, dataset, **kwargs):
    from ..nn.train import fit

    return fit(model, opt, dataset, **kwargs)


def format_table(rows) -> str:
    head = (f"{'model':<15}{'weights':>8}{'activ.':>7}{'backend':>10}{'steps':>7}{'test acc':>9}"
            f"{'folded':>8}{'time s':>8}{'speedup':>8}{'file':>10}")
    lines = [head, "-" * len(head)]
    ref_time = {r["recipe"]: r["time"] for r in rows if r["backend"] == "reference"}
    for r in rows:
        speed = ""
        if r["backend"] == "fastbin" and r["recipe"] in ref_time:
            speed = f"{ref_time[r['recipe']] / r['time']:.1f}x"
        size = f"{r['bytes'] / 1024:.1f} KiB" if "bytes" in r else ""
        folded = f"{100 * r['folded_acc']:.2f}" if "folded_acc" in r else ""
        lines.append(f"{r['recipe']:<15}{r['weights']:>8}{r['activations']:>7}{r['backend']:>10}{r['steps']:>7}"
                     f"{100 * r['acc']:>8.2f}%{folded:>8}{r['time']:>8.2f}{speed:>8}{size:>10}")
    return "\n".join(lines)


def main(quick=False, out_dir=None, dataset="fashion-mnist", data_dir=None, backends=("fastbin", "reference"),
         recipes=None, seed=0, progress=True, stream=None, data=None) -> int:
    """Run the demo and print the table; returns an exit code. ``data``: an
    already loaded ``Dataset`` (else ``dataset`` / ``data_dir`` are loaded)."""
    stream = stream or sys.stdout
    data = data if data is not None else load_data(dataset, data_dir)
    print(f"dataset: {data.name} ({data.x_train.shape[0]} train / {data.x_test.shape[0]} test), "
          f"source: {data.source}", file=stream)
    print(f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset: all cores)')}; "
          f"float matrix products use NumPy's BLAS on both backends", file=stream)
    if out_dir is None:
        out_dir = tempfile.mkdtemp(prefix="fastbin-demo-")
    os.makedirs(out_dir, exist_ok=True)
    names = list(recipes) if recipes else (QUICK_RECIPES if quick else DEMO_RECIPES)
    print(f"recipes: {', '.join(names)}{' (quick: shorter schedules)' if quick else ''}; model files in {out_dir}",
          file=stream)
    rows = []
    start = time.perf_counter()
    for name in names:
        print(f"- {name}: {RECIPES[name].description}", file=stream, flush=True)
        for backend in backends:
            row = run_recipe(name, data, backend, seed=seed, quick=quick, progress=progress, out_dir=out_dir)
            row.pop("model")
            rows.append(row)
            print(f"    {backend:<9} acc {100 * row['acc']:.2f}%  {row['time']:.2f} s  ({row['steps']} steps)",
                  file=stream, flush=True)
    print(file=stream)
    print(format_table(rows), file=stream)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; 'time s' = training wall time including the "
          f"periodic test evaluations; speedup = reference time / fastbin time; 'folded' = test accuracy "
          f"of the saved file loaded by fastbin.runtime.load (folded, packed); file = saved model (binary "
          f"weights packed).", file=stream)
    if any(math.isnan(r["acc"]) for r in rows):
        return 1
    return 0
