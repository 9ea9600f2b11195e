"""The input transform ``(x - input_offset) * input_scale`` (Dense, mlp, softmax_regression):
training maths, the folded and runtime models equal to the trainer's, model files, refusals."""
import numpy as np
import pytest

from fastbin import runtime
from fastbin.io.modelfile import ModelFileError, load_arrays, save_arrays
from fastbin.nn import Adam, fit, load, load_checkpoint, mlp, save_checkpoint, softmax_regression
from fastbin.nn.layers import Dense
from fastbin.tools.export_c import plan


def _features(rng, n=300, k=12):
    """Features far from [0, 1] (mean 5, spread 3) and 3 classes."""
    x = rng.normal(5, 3, (n, k)).astype(np.float32)
    return x, (x[:, 0] > 5).astype(int) + (x[:, 1] > 6)


@pytest.mark.parametrize("backend", ["reference", "fastbin"])
@pytest.mark.parametrize("binary", [False, True])
def test_dense_computes_the_transform(backend, binary, rng):
    x = rng.normal(3, 2, (9, 6))
    offset, scale = rng.normal(0, 1, 6), (0.7 if binary else rng.uniform(0.2, 2, 6))
    layer = Dense(6, 4, binary=binary, scale=binary, rng=1, dtype=np.float64, backend=backend, input_offset=offset,
                  input_scale=scale)
    expected = ((x - offset) * scale) @ layer.effective_weights() + layer.params["b"]
    np.testing.assert_allclose(layer.forward(x, training=True), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)  # the evaluation path


@pytest.mark.parametrize("backend", ["reference", "fastbin"])
def test_gradients_with_an_input_transform(backend, rng):
    model = mlp([6, 5, 3], sigma=0.5, seed=2, backend=backend, dtype="float64", input_offset=rng.normal(0, 1, 6),
                input_scale=rng.uniform(0.2, 3, 6))
    x, labels = rng.normal(2, 2, (8, 6)), rng.integers(0, 3, 8)
    model.compute_gradients(x, labels)
    h = 1e-6
    for _, flat, grad, _ in model.groups:
        for idx in range(0, flat.size, 2):
            saved = flat[idx]
            flat[idx] = saved + h
            up = model.backend.softmax_cross_entropy(model.forward(x, training=True), labels)[0]
            flat[idx] = saved - h
            down = model.backend.softmax_cross_entropy(model.forward(x, training=True), labels)[0]
            flat[idx] = saved
            assert abs((up - down) / (2 * h) - grad[idx]) <= 1e-6 + 1e-5 * abs(grad[idx])


def _builders(mu, sd):
    return {
        "float-per-feature": lambda: mlp([12, 16, 3], activation="tanh", input_offset=mu, input_scale=1 / sd, seed=0),
        "bnn-scalar": lambda: mlp([12, 70, 16, 3], binary_weights=True, binary_activations=True, input_offset=mu,
                                  input_scale=0.3, seed=0),
        "binary-tanh-scalar": lambda: mlp([12, 16, 3], binary_weights=True, scale=True, activation="tanh",
                                          input_scale=0.3, seed=0),
        "softmax-binary": lambda: softmax_regression(12, 3, binary_weights=True, input_offset=mu, input_scale=0.25),
        "softmax-float": lambda: softmax_regression(12, 3, init="normal", input_scale=1 / sd),
    }


@pytest.mark.parametrize("name", ["float-per-feature", "bnn-scalar", "binary-tanh-scalar", "softmax-binary",
                                  "softmax-float"])
def test_trained_saved_folded_and_deployed_alike(name, rng, tmp_path):
    x, y = _features(rng)
    model = _builders(x.mean(0), x.std(0))[name]()
    fit(model, Adam(1e-2), x, y, epochs=3, batch_size=50, progress=False)
    pixels = rng.integers(0, 256, (20, 12), dtype=np.uint8)
    model.save(tmp_path / "m.fbm")
    loaded = load(tmp_path / "m.fbm")
    assert loaded.config == model.config and "input_scale" in loaded.layers[0].buffers
    for inputs in (x, pixels):
        logits = model.forward(inputs)
        np.testing.assert_array_equal(loaded.forward(inputs), logits)
        np.testing.assert_array_equal(model.to_inference().predict(inputs), np.argmax(logits, axis=1))
        for engine in ("numba", "numpy"):
            deployed = runtime.load(tmp_path / "m.fbm", engine=engine)
            assert deployed.input_scaled
            np.testing.assert_array_equal(deployed.predict(inputs), np.argmax(logits, axis=1))
    with pytest.raises(ValueError, match="scales its input"):
        plan(runtime.load(tmp_path / "m.fbm"))


def test_the_scale_reaches_the_logits(rng):
    """Doubling the input scale of a float model is doubling its first-layer input."""
    x, _ = _features(rng)
    a = mlp([12, 8, 3], input_scale=0.1, seed=3)
    b = mlp([12, 8, 3], input_scale=0.2, seed=3)
    c = mlp([12, 8, 3], seed=3)
    np.testing.assert_allclose(b.forward(x), c.forward(2 * x * np.float32(0.1)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.forward(x), b.forward(x))
    assert "input_scale" not in mlp([12, 8, 3], input_scale=1.0).layers[0].buffers  # the identity stores nothing


def test_checkpoint_with_an_input_scale(rng, tmp_path):
    x, y = _features(rng)
    model, opt = mlp([12, 8, 3], input_scale=x.std(0), seed=0), Adam(1e-2)
    h = fit(model, opt, x, y, epochs=1, progress=False)
    save_checkpoint(tmp_path / "c.fbc", model, opt, h)
    loaded, _, _ = load_checkpoint(tmp_path / "c.fbc")
    np.testing.assert_array_equal(loaded.layers[0].buffers["input_scale"], model.layers[0].buffers["input_scale"])


@pytest.mark.parametrize("make, match", [
    (lambda: mlp([4, 3, 2], binary_weights=True, input_scale=[1, 2, 3, 4]), "folds one input scale"),
    (lambda: mlp([4, 3, 2], input_scale=0.0), "input_scale must hold finite numbers > 0"),
    (lambda: mlp([4, 3, 2], input_scale=[1, -1, 1, 1]), "input_scale must hold finite numbers > 0"),
    (lambda: softmax_regression(4, 2, input_scale=float("nan")), "input_scale must hold finite numbers > 0"),
])
def test_bad_input_scales_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _rewrite(tmp_path, model, change):
    model.save(tmp_path / "good.fbm")
    meta, arrays = load_arrays(tmp_path / "good.fbm")
    change(meta, arrays)
    save_arrays(tmp_path / "bad.fbm", meta, arrays)
    return tmp_path / "bad.fbm"


def _set_scale(value):
    def change(meta, arrays):
        arrays["0.input_scale"] = np.asarray(value, np.float32)
    return change


@pytest.mark.parametrize("binary, change, match", [
    (True, _set_scale([0.5, 0.5, 0.25, 0.5]), "of a binary layer must hold one value"),
    (False, _set_scale([0.5, 0.5, -0.25, 0.5]), "'0.input_scale' must be > 0"),
    (False, _set_scale([0.5, 0.5, 1e30, 0.5]), "can reach activations of magnitude"),
    (False, lambda meta, arrays: meta["config"].update(input_scale=-2), "config.input_scale must be a finite"),
    (False, lambda meta, arrays: arrays.pop("0.input_scale"), "missing \\['0.input_scale'\\]"),
    (False, lambda meta, arrays: meta["layers"][0].pop("input_scale"), "unexpected \\['0.input_scale'\\]"),
])
def test_hostile_input_scales_in_model_files(binary, change, match, tmp_path):
    model = mlp([4, 3, 2], binary_weights=binary, input_scale=[0.5] * 4 if binary else [0.5, 1, 2, 3], seed=0)
    with pytest.raises(ModelFileError, match=match):
        load(_rewrite(tmp_path, model, change))
    with pytest.raises(ModelFileError, match=match):
        runtime.load(tmp_path / "bad.fbm")
