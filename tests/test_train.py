"""The trainer: stopping rules, history, reproducibility, real data."""
import numpy as np
import pytest

from fastbin.nn.model import mlp, softmax_regression
from fastbin.nn.optim import SGD, Adam, DecayOnRise, StepDecay
from fastbin.nn.train import EarlyStopping, History, fit


def _toy(rng, n=300, k=20, c=3):
    centers = rng.normal(0, 1, (c, k))
    y_all = rng.integers(0, c, n + 100)
    x_all = np.clip(0.5 + 0.2 * (centers[y_all] + rng.normal(0, 1, (n + 100, k))), 0, 1).astype(np.float32)
    return x_all[:n], y_all[:n], x_all[n:], y_all[n:]


@pytest.mark.parametrize("backend", ["reference", "fastbin"])
@pytest.mark.parametrize("binary", [False, True])
def test_fit_is_bit_reproducible(backend, binary, rng):
    data = _toy(rng)
    params = []
    for _ in range(2):
        model = mlp([20, 8, 3], binary_weights=binary, binary_activations=binary, seed=5, backend=backend)
        history = fit(model, Adam(1e-2), data, steps=30, batch_size=16, eval_every=10, seed=7, progress=False)
        params.append([flat.copy() for _, flat, _, _ in model.groups])
        assert history.step == [10, 20, 30]
    for a, b in zip(*params):
        np.testing.assert_array_equal(a, b)
    # a different data seed gives different weights
    model = mlp([20, 8, 3], binary_weights=binary, binary_activations=binary, seed=5, backend=backend)
    fit(model, Adam(1e-2), data, steps=30, batch_size=16, eval_every=10, seed=8, progress=False)
    assert not all(np.array_equal(a, flat) for a, (_, flat, _, _) in zip(params[0], model.groups))


def test_fit_history_and_epochs(rng):
    data = _toy(rng)
    model = softmax_regression(20, 3, seed=0, backend="reference")
    h = fit(model, SGD(0.5, schedule=StepDecay(5, 0.5)), data, epochs=2, batch_size=32, eval_every=7,
            progress=False)
    assert isinstance(h, History)
    assert h.step == [7, 14, 20]  # 2 epochs of ceil(300 / 32) = 10 steps
    assert len(h.loss) == len(h.acc) == len(h.time) == len(h.train_loss) == 3
    assert h.stopped == "epochs" and h.final_acc > 0.8
    assert all(t2 >= t1 for t1, t2 in zip(h.time, h.time[1:]))
    assert h.lr[-1] == pytest.approx(0.5 * 0.5**4)
    assert h.total_time >= h.train_time > 0


def test_fit_stops_on_rises_and_early_stopping(rng):
    data = _toy(rng)
    model = softmax_regression(20, 3, binary_weights=True, seed=0, backend="reference")
    opt = SGD(5.0, schedule=DecayOnRise(0.9, 2))
    h = fit(model, opt, data, steps=1000, batch_size=16, eval_every=1, progress=False)
    assert h.stopped == "schedule" and len(h.step) < 1000 and opt.schedule.rises == 2
    model = softmax_regression(20, 3, seed=0, backend="reference")
    h = fit(model, SGD(1e-6), data, steps=1000, batch_size=16, eval_every=1, progress=False,
            early_stopping=EarlyStopping(3, min_delta=1.0))
    assert h.stopped == "early_stopping" and h.step == [1, 2, 3, 4]


def test_fit_progress_bar_and_arguments(rng, capsys):
    data = _toy(rng)
    model = softmax_regression(20, 3, seed=0, backend="reference")
    fit(model, SGD(0.1), data, steps=3, batch_size=8, eval_every=None, progress=True)
    assert "step" in capsys.readouterr().err
    for kwargs in (dict(), dict(steps=2, epochs=1), dict(steps=0), dict(steps=2, batch_size=0),
                   dict(steps=2, eval_every=-1)):
        with pytest.raises(ValueError):
            fit(model, SGD(0.1), data, progress=False, **kwargs)
    with pytest.raises(TypeError):
        fit(model, SGD(0.1), data[:2], steps=2, progress=False)


@pytest.mark.slow
def test_softmax_regression_on_fashion_mnist_reaches_80_percent():
    from fastbin.io.datasets import load_fashion_mnist

    try:
        ds = load_fashion_mnist(download=False)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    model = softmax_regression(784, 10, seed=0)
    h = fit(model, SGD(0.5, schedule=StepDecay(100, 0.6)), ds, steps=600, batch_size=128, eval_every=200,
            progress=False)
    assert h.acc[-1] >= 0.80


@pytest.mark.parametrize("binary", [False, True])
def test_uint8_dataset_trains_exactly_like_float(binary, rng):
    """Raw pixels are converted per batch to float32(u) / 255, the same values
    as the float dataset, so training is bit-identical."""
    x_u8 = rng.integers(0, 256, (200, 20), dtype=np.uint8)
    y = rng.integers(0, 3, 200)
    x_f = x_u8.astype(np.float32) / np.float32(255)
    weights = []
    for x in (x_u8, x_f):
        model = mlp([20, 8, 3], binary_weights=binary, binary_activations=binary, seed=2, backend="reference")
        h = fit(model, Adam(1e-2), (x[:150], y[:150], x[150:], y[150:]), steps=12, batch_size=16,
                eval_every=6, progress=False)
        weights.append((np.concatenate([flat for _, flat, _, _ in model.groups]), h.loss))
    np.testing.assert_array_equal(weights[0][0], weights[1][0])
    assert weights[0][1] == weights[1][1]
