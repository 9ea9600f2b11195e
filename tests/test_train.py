"""The trainer: stopping rules, history, reproducibility, real data."""
import numpy as np
import pytest

from fastbin.nn.model import mlp, softmax_regression
from fastbin.nn.optim import SGD, Adam, DecayOnRise, StepDecay
from fastbin.nn.train import EarlyStopping, History, fit, split_validation


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


@pytest.mark.parametrize("offset, scale", [(None, False), (0.5, False), ("mean", True)])
def test_uint8_first_layer_forward_is_the_float_one(offset, scale, rng, monkeypatch):
    """fastbin backend: a binary first layer trains on raw pixels through the exact integer
    product, ``(u @ sign(W)) / 255`` (minus the offset's product, times alpha): within float
    rounding of the float model's step on ``float32(u) / 255``, and the weight gradient the same
    bits (the float input it keeps is the float model's)."""
    u = rng.integers(0, 256, (64, 40), dtype=np.uint8)
    y = rng.integers(0, 3, 64)
    x = u.astype(np.float32) / np.float32(255)
    if offset == "mean":
        offset = x.mean(axis=0)
    out = []
    for inputs in (u, x):
        model = mlp([40, 16, 8, 3], binary_weights=True, binary_activations=True, scale=scale,
                    input_offset=offset, seed=4, backend="fastbin")
        calls = []
        be = model.backend
        real = be.sign_matmul
        def spy(a, w, calls=calls, real=real, **kw):
            calls.append(a.dtype)
            return real(a, w, **kw)

        monkeypatch.setattr(be, "sign_matmul", spy)
        loss = model.compute_gradients(inputs, y)
        monkeypatch.setattr(be, "sign_matmul", real)
        assert calls == ([np.uint8] if inputs is u else [])  # the integer product ran for pixels only
        z = model.layers[0].forward(inputs, training=True)
        out.append((loss, z, model.layers[0]._x, [g.copy() for _, _, g, _ in model.groups]))
    (loss_u, z_u, x_u, g_u), (loss_f, z_f, x_f, g_f) = out
    np.testing.assert_array_equal(x_u, x_f)
    np.testing.assert_allclose(z_u, z_f, rtol=1e-5, atol=1e-4)
    assert abs(loss_u - loss_f) <= 1e-5 * abs(loss_f)
    for a, b in zip(g_u, g_f, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


# -- own data: fit(model, opt, X, y, validation_split= / validation_data=) ---------------------------------
class _Untouchable:
    """A stand-in for test data that fails on any use."""

    def __getattr__(self, name):
        raise AssertionError(f"test data was read ({name})")

    def __len__(self):
        raise AssertionError("test data was read (len)")

    def __array__(self, *args, **kwargs):
        raise AssertionError("test data was read (as an array)")


def _spy(model):
    """Record the rows every train_step and evaluate call sees."""
    seen = {"train": [], "eval": []}
    train_step, evaluate = model.train_step, model.evaluate

    def spy_train(x, y, opt):
        seen["train"].append(x.copy())
        return train_step(x, y, opt)

    def spy_eval(x, y):
        seen["eval"].append(x.copy())
        return evaluate(x, y)

    model.train_step, model.evaluate = spy_train, spy_eval
    return seen


def test_fit_arrays_with_validation_split_trains_and_evaluates_on_disjoint_rows(rng):
    x, y, _, _ = _toy(rng)
    x = x + np.arange(len(x), dtype=np.float32)[:, None] * np.float32(1e-3)  # every row distinct
    model = mlp([20, 8, 3], binary_weights=True, binary_activations=True, seed=1, backend="reference")
    seen = _spy(model)
    h = fit(model, Adam(1e-2), x, y, epochs=3, batch_size=32, validation_split=0.2, seed=4, progress=False)
    train_idx, val_idx = split_validation(len(x), 0.2, seed=4)
    assert len(val_idx) == 60 and len(train_idx) == 240
    assert h.eval_on == "validation" and h.stopped == "epochs"
    assert h.step == [8, 16, 24]  # "auto": one evaluation per epoch of ceil(240 / 32) steps
    assert all(np.isfinite(h.loss)) and len(seen["eval"]) == 3
    for xe in seen["eval"]:  # every evaluation is on exactly the validation rows
        np.testing.assert_array_equal(xe, x[val_idx])
    trained = {row.tobytes() for batch in seen["train"] for row in batch}
    assert trained <= {row.tobytes() for row in x[train_idx]}
    assert trained.isdisjoint(row.tobytes() for row in x[val_idx])


def test_fit_never_reads_the_test_split_given_validation(rng):
    x, y, xt, yt = _toy(rng)
    untouchable = (x, y, _Untouchable(), _Untouchable())
    model = softmax_regression(20, 3, seed=0, backend="reference")
    h = fit(model, SGD(0.5, schedule=DecayOnRise(0.9, 50)), untouchable, steps=20, batch_size=16, eval_every=5,
            validation_split=0.25, early_stopping=EarlyStopping(50), progress=False)
    assert h.eval_on == "validation" and h.step == [5, 10, 15, 20]
    h = fit(model, SGD(0.5), untouchable, steps=4, batch_size=16, eval_every=2, validation_data=(xt, yt),
            progress=False)
    assert h.eval_on == "validation"
    with pytest.raises(AssertionError, match="test data was read"):  # the stand-in does fail when read
        fit(model, SGD(0.5), untouchable, steps=2, batch_size=16, progress=False)


def test_fit_dataset_form_keeps_evaluating_on_the_test_split(rng):
    data = _toy(rng)
    model = softmax_regression(20, 3, seed=0, backend="reference")
    seen = _spy(model)
    h = fit(model, SGD(0.5), data, steps=40, batch_size=16, progress=False)
    assert h.eval_on == "test" and h.step == [20, 40]  # "auto" with a dataset: every 20 steps, as before
    np.testing.assert_array_equal(seen["eval"][0], data[2])


def test_fit_arrays_without_validation_has_no_evaluation(rng):
    x, y, _, _ = _toy(rng)
    model = softmax_regression(20, 3, seed=0, backend="reference")
    seen = _spy(model)
    h = fit(model, SGD(0.5), x, y, epochs=2, batch_size=100, progress=False)
    assert h.eval_on == "" and h.step == [3, 6] and np.isnan(h.loss).all() and np.isnan(h.final_acc)
    assert seen["eval"] == [] and all(np.isfinite(h.train_loss))
    with pytest.raises(ValueError, match="early_stopping watches an evaluation loss"):
        fit(model, SGD(0.5), x, y, epochs=1, early_stopping=3, progress=False)
    with pytest.raises(ValueError, match="DecayOnRise.*validation_split"):
        fit(model, SGD(0.5, schedule=DecayOnRise()), x, y, epochs=1, progress=False)


def test_fit_arrays_equals_the_dataset_form_on_the_same_rows(rng):
    x, y, xt, yt = _toy(rng)
    weights, losses = [], []
    for args in ((x, y), ((x, y, xt, yt),)):
        model = mlp([20, 8, 3], seed=3, backend="reference")
        h = fit(model, Adam(1e-2), *args, steps=12, batch_size=16, eval_every=4, validation_data=(xt, yt),
                seed=2, progress=False)
        weights.append(np.concatenate([flat for _, flat, _, _ in model.groups]))
        losses.append(h.loss)
    np.testing.assert_array_equal(weights[0], weights[1])
    assert losses[0] == losses[1]


def test_split_validation_is_seeded_and_complete():
    a = split_validation(1000, 0.1, seed=3)
    b = split_validation(1000, 0.1, seed=3)
    c = split_validation(1000, 0.1, seed=4)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert len(a[1]) == 100
    np.testing.assert_array_equal(np.sort(np.concatenate(a)), np.arange(1000))
    for bad in (0, 1, 1.5, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match="validation_split"):
            split_validation(1000, bad)
    with pytest.raises(ValueError, match="each needs at least one"):
        split_validation(3, 0.1)


@pytest.mark.parametrize("binary", [False, True])
def test_early_stopping_restores_the_best_weights(binary, rng):
    x, y, _, _ = _toy(rng)

    def run(restore):
        model = mlp([20, 8, 3], binary_weights=binary, binary_activations=binary, seed=0, backend="reference")
        stop = EarlyStopping(4, restore_best_weights=restore)
        h = fit(model, SGD(3.0), x, y, steps=400, batch_size=8, eval_every=1, validation_split=0.3, seed=1,
                early_stopping=stop, progress=False)
        return model, h, stop

    plain, h_plain, _ = run(False)
    model, h, stop = run(True)
    assert h.loss == h_plain.loss and h.stopped == "early_stopping"  # the same run ...
    best = int(np.argmin(h.loss))
    assert h.restored_step == h.step[best] == stop.best_step < h.step[-1]
    _, val = split_validation(len(x), 0.3, seed=1)
    assert model.evaluate(x[val], y[val])[0] == h.loss[best]  # ... ending on the best evaluation's weights
    assert h_plain.restored_step is None and plain.evaluate(x[val], y[val])[0] == h.loss[-1]
    assert not all(np.array_equal(a, b) for (_, a, _, _), (_, b, _, _) in zip(model.groups, plain.groups))


def test_fit_arguments_for_own_data(rng):
    x, y, xt, yt = _toy(rng)
    model = softmax_regression(20, 3, seed=0, backend="reference")
    kw = dict(steps=2, progress=False)
    cases = [
        (ValueError, "not both", dict(validation_split=0.1, validation_data=(xt, yt))),
        (ValueError, "not both", dict(eval_data=(xt, yt), validation_data=(xt, yt))),
        (ValueError, "validation_split", dict(validation_split=1.0)),
        (TypeError, "validation_data must be a pair", dict(validation_data=xt)),
        (ValueError, r"x must have shape \(m, 20\)", dict(validation_data=(xt[:, :5], yt))),
        (ValueError, "validation_data labels", dict(validation_data=(xt, yt[:5]))),
        (ValueError, "eval_every", dict(eval_every="sometimes")),
        (ValueError, "seed", dict(seed=-1)),
        (TypeError, "early_stopping must be", dict(early_stopping="yes", validation_split=0.1)),
    ]
    for exc, match, extra in cases:
        with pytest.raises(exc, match=match):
            fit(model, SGD(0.1), x, y, **kw, **extra)
    with pytest.raises(TypeError, match="X must be a numpy.ndarray"):
        fit(model, SGD(0.1), x.tolist(), y, **kw)
    with pytest.raises(ValueError, match=r"y labels must be class indices in \[0, 3\)"):
        fit(model, SGD(0.1), x, y + 3, **kw)
    with pytest.raises(ValueError, match=r"y labels must have shape"):
        fit(model, SGD(0.1), x, y[:-1], **kw)
    with pytest.raises(TypeError, match="y must be None"):
        fit(model, SGD(0.1), (x, y, xt, yt), 5, **kw)
    with pytest.raises(TypeError, match="positional"):  # epochs= is keyword-only
        fit(model, SGD(0.1), x, y, 5)
    for bad in (dict(patience=0), dict(min_delta=-1.0)):
        with pytest.raises(ValueError):
            EarlyStopping(**bad)
    with pytest.raises(TypeError, match="restore_best_weights"):
        EarlyStopping(restore_best_weights="yes")


# -- resuming: 5 + 5 epochs == 10 epochs ---------------------------------------------------------------------
def _weights(model):
    return [flat.copy() for _, flat, _, _ in model.groups] + [
        v.copy() for layer in model.layers for v in layer.buffers.values()]


def _schedules():
    return {"step": lambda: Adam(1e-2, schedule=StepDecay(7, 0.9)),
            "rise": lambda: SGD(0.5, schedule=DecayOnRise(0.9, 100)),
            "none": lambda: Adam(1e-2)}


@pytest.mark.parametrize("schedule", ["step", "rise", "none"])
@pytest.mark.parametrize("binary", [False, True])
def test_resume_5_plus_5_epochs_equals_10(binary, schedule, rng):
    x, y, _, _ = _toy(rng, n=250)

    def build():
        return mlp([20, 8, 3], binary_weights=binary, binary_activations=binary, seed=5, backend="fastbin")

    kw = dict(batch_size=32, validation_split=0.2, seed=11, progress=False)  # 200 rows: 7 steps an epoch
    model, opt = build(), _schedules()[schedule]()
    whole = fit(model, opt, x, y, epochs=10, **kw)
    model2, opt2 = build(), _schedules()[schedule]()
    first = fit(model2, opt2, x, y, epochs=5, **kw)
    second = fit(model2, opt2, x, y, epochs=10, resume=first, **kw)
    assert first.step + second.step == whole.step == [7 * i for i in range(1, 11)]
    assert first.loss + second.loss == whole.loss and opt2.lr == opt.lr and opt2.steps == opt.steps == 70
    for a, b in zip(_weights(model), _weights(model2)):
        np.testing.assert_array_equal(a, b)
    # without resume, the second fit restarts the batch order: not the same run
    model3, opt3 = build(), _schedules()[schedule]()
    fit(model3, opt3, x, y, epochs=5, **kw)
    fit(model3, opt3, x, y, epochs=5, **kw)
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(model), _weights(model3)))


def test_resume_arguments(rng):
    x, y, _, _ = _toy(rng)
    model, opt = softmax_regression(20, 3, seed=0, backend="reference"), SGD(0.1)
    h = fit(model, opt, x, y, epochs=2, batch_size=50, seed=1, progress=False)
    assert h.state.step == 12 and h.state.seed == 1
    with pytest.raises(ValueError, match="seed=1"):
        fit(model, opt, x, y, epochs=3, batch_size=50, seed=2, resume=h, progress=False)
    with pytest.raises(ValueError, match="must ask for more"):
        fit(model, opt, x, y, epochs=2, batch_size=50, seed=1, resume=h, progress=False)
    with pytest.raises(ValueError, match="batches of 50, not 300 rows in batches of 60"):
        fit(model, opt, x, y, epochs=3, batch_size=60, seed=1, resume=h, progress=False)
    with pytest.raises(TypeError, match="resume must be"):
        fit(model, opt, x, y, epochs=3, batch_size=50, seed=1, resume=12, progress=False)


def test_early_stopping_state_follows_its_model(rng):
    """Reused on the same model (a resumed run), the best loss carries over; given another
    model, the object starts afresh and never writes the first model's weights into it."""
    x, y, _, _ = _toy(rng)
    stop = EarlyStopping(2, restore_best_weights=True)
    kw = dict(batch_size=16, eval_every=2, validation_split=0.2, seed=1, progress=False, early_stopping=stop)
    first = mlp([20, 8, 3], seed=0, backend="reference")
    h = fit(first, SGD(0.5), x, y, steps=30, **kw)
    best = stop.best
    assert best == min(h.loss)
    h2 = fit(first, SGD(1e-9), x, y, steps=8, **kw)  # no improvement on the carried best: stops, restores
    assert stop.best == best and h2.stopped == "early_stopping" and h2.restored_step is not None
    other = mlp([20, 5, 3], seed=1, backend="reference")
    h3 = fit(other, SGD(1e-9), x, y, steps=8, **kw)
    assert stop.best == h3.loss[0] != best and h3.restored_step == 2  # its own best, not the first model's
