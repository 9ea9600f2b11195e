"""Whole training steps and whole inference calls, through ``fastbin.nn.model``.

``reference`` rows run the same model on ``backend="reference"`` (plain
NumPy); ``fastbin`` rows on ``backend="fastbin"`` with Numba pinned to one
thread; ``fastbin-threaded`` with Numba's default thread count.
"""
import numpy as np
import pytest
from baselines import (
    autograd_mlp_step,
    numpy_binary_forward,
    torch_binary_forward,
    torch_binary_mlp_step,
    torch_mlp_step,
    torch_softmax_regression_step,
)
from benchutil import assert_same, measure, size

import fastbin.nn.model as models
import fastbin.nn.optim as optim
from fastbin.nn.layers import Dense


def _backend(impl):
    return "reference" if impl == "reference" else "fastbin"


def _batch(rng, m, k=784, c=10):
    x = rng.random((m, k), dtype=np.float32)
    labels = rng.integers(0, c, size=m)
    return x, labels


# --------------------------------------------------------------------------
# Training steps
# --------------------------------------------------------------------------
SR_LR = 0.01


@pytest.mark.parametrize("impl", ["reference", "fastbin", "torch"])
@pytest.mark.parametrize("variant", ["float", "binaryconnect"])
def test_train_softmax_regression(benchmark, request, rng, variant, impl):
    m = 128
    x, labels = _batch(rng, m)
    binary = variant == "binaryconnect"
    if impl == "torch":
        fn = torch_softmax_regression_step(request.getfixturevalue("torch"), x, labels, binary=binary, lr=SR_LR)
    else:
        model = models.softmax_regression(784, 10, binary_weights=binary, seed=0, backend=_backend(impl))
        opt = optim.SGD(lr=SR_LR)
        fn = lambda: model.train_step(x, labels, opt)  # noqa: E731
    loss = measure(
        benchmark, fn, group=f"train_softmax_regression_{variant}/batch128", impl=impl,
        shape="784->10, batch 128, SGD" + (" + clip" if binary else ""),
        work=4.0 * m * 784 * 10, unit="flop",
    )
    assert np.isfinite(loss)


MLP_SIZES = [784, 200, 100, 10]


@pytest.mark.parametrize("impl", ["reference", "fastbin", "fastbin-threaded", "autograd", "torch"])
def test_train_mlp_adam(benchmark, request, rng, impl):
    m = 256
    x, labels = _batch(rng, m)
    note = ""
    if impl == "torch":
        fn = torch_mlp_step(request.getfixturevalue("torch"), MLP_SIZES, x, labels)
    elif impl == "autograd":
        request.getfixturevalue("autograd")
        # Notebook 004 as written: X / max(X) and prng.randn parameters are
        # float64, so autograd differentiates float64 arrays.
        fn = autograd_mlp_step(MLP_SIZES, x.astype(np.float64), labels)
        note = "float64, as notebook 004 ran"
    else:
        model = models.mlp(MLP_SIZES, activation="tanh", seed=0, backend=_backend(impl))
        opt = optim.Adam(lr=1e-3)
        fn = lambda: model.train_step(x, labels, opt)  # noqa: E731
    macs = sum(a * b for a, b in zip(MLP_SIZES[:-1], MLP_SIZES[1:]))
    measure(
        benchmark, fn, group="train_mlp_adam/784-200-100-10", impl=impl,
        shape="tanh MLP 784-200-100-10, batch 256, Adam", work=6.0 * m * macs, unit="flop", note=note,
    )


BINARY_MLP_SIZES = [784, 512, 512, 10]
#: issue 9's fully binary MLP (the notebook's 784-200-100-10 with binary weights and activations)
BINARY_MLP_SMALL_SIZES = [784, 200, 100, 10]
BINARY_MLP_IMPLS = ["reference", "fastbin", "fastbin-threaded", "torch"]


def _binary_mlp(sizes, backend):
    return models.mlp(sizes, binary_weights=True, binary_activations=True, seed=0, backend=backend)


def _binary_mlp_step(benchmark, request, rng, sizes, impl):
    """Time one Adam step of the fully binary MLP ``sizes`` (binary weights and
    activations, batch norm) for ``impl``; torch starts from the fastbin
    model's initial weights. The first step's loss (the untimed warm-up call)
    is checked against the reference model's."""
    m = size(256, 64)
    x, labels = _batch(rng, m)
    if impl == "torch":
        torch = request.getfixturevalue("torch")
        weights = [layer.params["W"] for layer in _binary_mlp(sizes, "reference").layers
                   if isinstance(layer, Dense)]
        fn = torch_binary_mlp_step(torch, weights, x, labels, lr=1e-3)
    else:
        model = _binary_mlp(sizes, _backend(impl))
        opt = optim.Adam(lr=1e-3)
        fn = lambda: model.train_step(x, labels, opt)  # noqa: E731
    name = "-".join(map(str, sizes))
    loss = measure(
        benchmark, fn, group=f"train_binary_mlp/{name}", impl=impl,
        shape=f"binary weights+activations {name}, batch {m}, Adam",
    )
    want = _binary_mlp(sizes, "reference").compute_gradients(x, labels)
    assert_same(float(loss), want, rtol=1e-4, atol=0, what=f"{impl} first-step loss")


@pytest.mark.parametrize("impl", BINARY_MLP_IMPLS)
def test_train_binary_mlp(benchmark, request, rng, impl):
    _binary_mlp_step(benchmark, request, rng, BINARY_MLP_SIZES, impl)


@pytest.mark.parametrize("impl", BINARY_MLP_IMPLS)
def test_train_binary_mlp_small(benchmark, request, rng, impl):
    _binary_mlp_step(benchmark, request, rng, BINARY_MLP_SMALL_SIZES, impl)


# --------------------------------------------------------------------------
# Inference: folded, packed models
# --------------------------------------------------------------------------
INFER_MODELS = {
    "binary_softmax_regression": [784, 10],
    "binary_mlp": [784, 512, 512, 10],
}
INFER_BATCHES = {"batch1": 1, "batch10000": size(10_000, 500)}
INFER_CASES = [
    (model_id, batch_id, impl)
    for model_id in INFER_MODELS
    for batch_id in INFER_BATCHES
    for impl in ("reference", "numpy", "fastbin", "fastbin-threaded", "torch")
    if impl != "fastbin-threaded" or batch_id == "batch10000"
]


def _inference_model(model_id, backend):
    sizes = INFER_MODELS[model_id]
    if len(sizes) == 2:
        # normal init: notebook 1's uniform one makes every logit tie (see test_bench_runtime.py)
        model = models.softmax_regression(sizes[0], sizes[1], binary_weights=True, init="normal", seed=0,
                                          backend=backend)
    else:
        model = models.mlp(sizes, binary_weights=True, binary_activations=True, seed=0, backend=backend)
    return model.to_inference()


@pytest.mark.parametrize(("model_id", "batch_id", "impl"), INFER_CASES)
def test_inference(benchmark, request, rng, model_id, batch_id, impl):
    m = INFER_BATCHES[batch_id]
    sizes = INFER_MODELS[model_id]
    x = rng.random((m, sizes[0]), dtype=np.float32)
    if impl == "numpy":
        fn = numpy_binary_forward(sizes, x)
    elif impl == "torch":
        fn = torch_binary_forward(request.getfixturevalue("torch"), sizes, x)
    else:
        infer = _inference_model(model_id, _backend(impl))
        fn = lambda: infer.predict(x)  # noqa: E731
    pred = measure(
        benchmark, fn, group=f"inference_{model_id}/{batch_id}", impl=impl,
        shape=f"{'-'.join(map(str, sizes))}, batch {m}, float32 x",
        slow=impl == "reference" and m > 1000,
    )
    pred = np.asarray(pred)
    assert pred.shape[0] == m
