"""Dropout (fastbin.nn.Dropout, mlp(dropout=)): inverted dropout in training, seeded by step,
absent from evaluation, folding, model files; gradients; exact resume from a checkpoint."""
import numpy as np
import pytest

from fastbin.io.modelfile import ModelFileError, load_arrays, save_arrays
from fastbin.nn import SGD, Adam, Dropout, HardTanh, Model, fit, load, load_checkpoint, mlp, save_checkpoint
from fastbin.nn.layers import Dense


def test_dropout_forward_backward_and_seeding(rng):
    x = rng.normal(0, 1, (200, 50)).astype(np.float32)
    layer = Dropout(0.25, seed=3, index=1)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert 0.7 < kept.mean() < 0.8 and y.dtype == np.float32
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1 / 0.75))
    dy = rng.normal(0, 1, x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(dy), dy * kept * np.float32(1 / 0.75))
    assert layer.step == 1
    again = Dropout(0.25, seed=3, index=1)
    np.testing.assert_array_equal(again.forward(x, training=True), y)  # same seed, index, step
    assert not np.array_equal(again.forward(x, training=True), y)  # the next step: another mask
    other = Dropout(0.25, seed=3, index=2)
    assert not np.array_equal(other.forward(x, training=True), y)
    assert layer.forward(x) is x and Dropout(0.0).forward(x, training=True) is x


@pytest.mark.parametrize("backend", ["reference", "fastbin"])
@pytest.mark.parametrize("activation", ["tanh", "hardtanh"])
def test_gradients_with_dropout_match_finite_differences(backend, activation, rng):
    model = mlp([7, 6, 5, 3], activation=activation, dropout=0.3, sigma=0.5, seed=1, backend=backend,
                dtype="float64")
    x, labels = rng.random((9, 7)), rng.integers(0, 3, 9)

    def loss():
        for layer in model.dropout:
            layer.step = 4  # the same masks for every pass
        return model.backend.softmax_cross_entropy(model.forward(x, training=True), labels)[0]

    for layer in model.dropout:
        layer.step = 4
    model.compute_gradients(x, labels)
    h = 1e-6
    for _, flat, grad, _ in model.groups:
        for idx in range(0, flat.size, 3):
            saved = flat[idx]
            flat[idx] = saved + h
            up = loss()
            flat[idx] = saved - h
            down = loss()
            flat[idx] = saved
            numeric = (up - down) / (2 * h)
            assert abs(numeric - grad[idx]) <= 1e-6 + 1e-5 * abs(numeric)
    assert any((layer._mask == 0).any() for layer in model.dropout)


def _data(rng, n=240, k=12, c=3):
    centers = rng.normal(0, 1, (c, k))
    y = rng.integers(0, c, n)
    return np.clip(0.5 + 0.2 * (centers[y] + rng.normal(0, 1, (n, k))), 0, 1).astype(np.float32), y


def test_dropout_trains_then_is_the_identity_in_evaluation_files_and_folding(rng, tmp_path):
    x, y = _data(rng)
    model = mlp([12, 16, 16, 3], dropout=0.5, binary_weights=True, seed=4)
    plain = mlp([12, 16, 16, 3], binary_weights=True, seed=4)
    assert len(model.layers) == len(plain.layers) and len(model.train_stages) == len(plain.train_stages) + 2
    h1 = fit(model, Adam(1e-2), x, y, epochs=2, batch_size=40, seed=0, progress=False)
    h2 = fit(plain, Adam(1e-2), x, y, epochs=2, batch_size=40, seed=0, progress=False)
    assert h1.train_loss != h2.train_loss  # the masks changed training
    for (_, a, _, _), (_, b, _, _) in zip(model.groups, plain.groups):
        b[...] = a
    for layer, other in zip(model.layers, plain.layers):
        for name, value in layer.buffers.items():
            other.buffers[name][...] = value
    np.testing.assert_array_equal(model.forward(x), plain.forward(x))
    np.testing.assert_array_equal(model.to_inference().predict(x), model.predict(x))
    model.save(tmp_path / "m.fbm")
    loaded = load(tmp_path / "m.fbm")
    assert loaded.config["dropout"] == 0.5 and [d.rate for d in loaded.dropout] == [0.5, 0.5]
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert "dropout" not in str(model.file_contents()[0])  # no layer in the file


def test_resume_with_dropout_is_exact(rng, tmp_path):
    x, y = _data(rng)
    kw = dict(batch_size=32, seed=2, progress=False)
    whole, opt = mlp([12, 10, 3], dropout=0.2, seed=7), SGD(0.2, momentum=0.9)
    fit(whole, opt, x, y, epochs=4, **kw)
    part, part_opt = mlp([12, 10, 3], dropout=0.2, seed=7), SGD(0.2, momentum=0.9)
    h = fit(part, part_opt, x, y, epochs=2, **kw)
    save_checkpoint(tmp_path / "c.fbc", part, part_opt, h)
    resumed, resumed_opt, state = load_checkpoint(tmp_path / "c.fbc")
    fit(resumed, resumed_opt, x, y, epochs=4, resume=state, **kw)
    for (_, a, _, _), (_, b, _, _) in zip(whole.groups, resumed.groups):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, match", [
    (lambda: mlp([4, 3, 2], dropout=1.0), "dropout must be a number in \\[0, 1\\)"),
    (lambda: mlp([4, 3, 2], dropout=-0.1), "dropout must be a finite number >= 0"),
    (lambda: mlp([4, 3, 2], activation="sign", dropout=0.1), "dropout acts on float activations"),
    (lambda: mlp([4, 3, 2], binary_activations=True, dropout=0.1), "dropout acts on float activations"),
    (lambda: mlp([4, 2], dropout=0.1), "has no hidden layer"),
    (lambda: Dropout(0.5, seed=-1), "seed must be an int >= 0"),
    (lambda: Model([Dense(4, 2), Dropout(0.5)], kind="mlp", config={}), "must directly follow a tanh or hardtanh"),
    (lambda: Model([Dropout(0.5), Dense(4, 2)], kind="mlp", config={}), "must directly follow"),
])
def test_bad_dropout_is_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()
    assert Model([Dense(4, 3), HardTanh(), Dropout(0.5), Dense(3, 2)], kind="mlp", config={}).dropout


@pytest.mark.parametrize("config, match", [
    ({"dropout": 1.5}, "config.dropout must be a number in \\[0, 1\\)"),
    ({"dropout": True}, "config.dropout must be a number"),
    ({"dropout": 0.5, "activation": "sign", "binary_activations": True}, "config.dropout must be 0"),
])
def test_model_file_dropout_is_checked(config, match, tmp_path):
    mlp([5, 4, 2], seed=0).save(tmp_path / "m.fbm")
    meta, arrays = load_arrays(tmp_path / "m.fbm")
    meta["config"].update(config)
    save_arrays(tmp_path / "bad.fbm", meta, arrays)
    with pytest.raises(ModelFileError, match=match):
        load(tmp_path / "bad.fbm")
    del meta["config"]["dropout"]  # a file from before dropout
    meta["config"].update(activation="tanh", binary_activations=False)
    save_arrays(tmp_path / "old.fbm", meta, arrays)
    assert load(tmp_path / "old.fbm").dropout == []
