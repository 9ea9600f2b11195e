"""Model construction, forward/predict/evaluate, save/load round trips."""
import numpy as np
import pytest

from fastbin import runtime
from fastbin.io.modelfile import ModelFileError, load_arrays, save_arrays
from fastbin.nn.model import load, mlp, softmax_regression
from fastbin.nn.optim import SGD, Adam

BACKENDS = ["reference", "fastbin"]

CONFIGS = {
    "softmax": lambda b: softmax_regression(40, 5, seed=1, backend=b),
    "binary_softmax": lambda b: softmax_regression(40, 5, binary_weights=True, seed=1, backend=b),
    "binary_softmax_scaled": lambda b: softmax_regression(40, 5, binary_weights=True, scale=True, backend=b),
    "tanh": lambda b: mlp([40, 16, 8, 5], seed=1, backend=b),
    "binary_weights": lambda b: mlp([40, 16, 5], binary_weights=True, batch_norm=True, output_bn=True,
                                    scale=True, backend=b),
    "fully_binary": lambda b: mlp([40, 16, 8, 5], binary_weights=True, binary_activations=True, backend=b),
    "hardtanh": lambda b: mlp([40, 16, 5], activation="hardtanh", backend=b),
    "centred_binary_softmax": lambda b: mlp([40, 5], binary_weights=True, output_bn=True, backend=b,
                                            input_offset=np.linspace(0.1, 0.9, 40)),
    "centred_softmax": lambda b: softmax_regression(40, 5, input_offset=0.5, backend=b),
}


def _data(rng, m=50, k=40, c=5):
    return rng.random((m, k)).astype(np.float32), rng.integers(0, c, m)


def _train(model, x, y, steps=5):
    opt = Adam(1e-2) if model.kind == "mlp" else SGD(0.5)
    for _ in range(steps):
        model.train_step(x, y, opt)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("latent", [False, True])
def test_save_load_round_trip_is_bit_exact(backend, name, latent, rng, tmp_path):
    model = CONFIGS[name](backend)
    x, y = _data(rng)
    _train(model, x, y)
    path = tmp_path / "m.fbm"
    model.save(path, latent=latent)
    again = load(path, backend=backend)
    x_u8 = rng.integers(0, 256, x.shape, dtype=np.uint8)
    for inputs in (x, x_u8):
        np.testing.assert_array_equal(again.forward(inputs), model.forward(inputs))
        np.testing.assert_array_equal(again.to_inference().predict(inputs), model.predict(inputs))
    assert again.config == model.config
    if latent:  # training resumes exactly where it was
        _train(model, x, y, 2)
        _train(again, x, y, 2)
        np.testing.assert_array_equal(again.forward(x), model.forward(x))


def test_packed_file_is_small(tmp_path):
    model = mlp([784, 200, 100, 10], binary_weights=True, binary_activations=True)
    model.save(tmp_path / "bin.fbm")
    float_model = mlp([784, 200, 100, 10])
    float_model.save(tmp_path / "float.fbm")
    small, big = (tmp_path / "bin.fbm").stat().st_size, (tmp_path / "float.fbm").stat().st_size
    assert small * 20 < big


def test_load_rejects_foreign_and_damaged_files(tmp_path):
    path = tmp_path / "other.fbm"
    save_arrays(path, {"format": "something else"}, {"a": np.zeros(3, np.float32)})
    with pytest.raises(ModelFileError, match="not a fastbin model"):
        _load_both(path)
    model = mlp([10, 4, 3])
    good = tmp_path / "good.fbm"
    model.save(good)
    meta, arrays = load_arrays(good)
    arrays["0.W"] = np.zeros((3, 3), np.float32)
    save_arrays(tmp_path / "bad.fbm", meta, arrays)
    with pytest.raises(ModelFileError, match=r"array '0.W' must be float32 array of shape \[10, 4\]"):
        _load_both(tmp_path / "bad.fbm")
    data = bytearray(good.read_bytes())
    data[100] ^= 0xFF
    (tmp_path / "corrupt.fbm").write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        _load_both(tmp_path / "corrupt.fbm")


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_predict_evaluate(backend, rng):
    model = mlp([40, 16, 5], seed=3, backend=backend)
    x, y = _data(rng)
    logits = model.forward(x)
    assert logits.shape == (50, 5) and logits.dtype == np.float32
    np.testing.assert_array_equal(model.predict(x), np.argmax(logits, 1))
    loss, acc = model.evaluate(x, y)
    assert acc == np.mean(model.predict(x) == y)
    assert loss == pytest.approx(model.backend.softmax_cross_entropy(logits, y)[0])
    # uint8 input means x / 255
    x_u8 = rng.integers(0, 256, (4, 40), dtype=np.uint8)
    np.testing.assert_allclose(model.forward(x_u8), model.forward(x_u8 / np.float32(255)), rtol=1e-5, atol=1e-6)


def test_backends_train_alike(rng):
    x, y = _data(rng)
    models = [mlp([40, 16, 5], seed=3, backend=b) for b in BACKENDS]
    losses = []
    for model in models:
        opt = Adam(1e-2)
        losses.append([model.train_step(x, y, opt) for _ in range(5)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)


def test_softmax_regression_notebook_init():
    model = softmax_regression(784, 10, seed=0)
    w, b = model.layers[0].params["W"], model.layers[0].params["b"]
    assert w.min() >= 0 and w.max() < 1 and np.all(b == 1)


def test_mlp_layout():
    model = mlp([784, 200, 100, 10], binary_weights=True, binary_activations=True)
    kinds = [layer.kind for layer in model.layers]
    assert kinds == ["dense", "batchnorm", "sign", "dense", "batchnorm", "sign", "dense", "batchnorm"]
    assert model.parameter_count() == 784 * 200 + 200 * 100 + 100 * 10 + 2 * (200 + 100 + 10)
    text = model.summary()
    assert "binary" in text and "smaller" in text
    assert mlp([4, 3, 2], activation="sign").config["binary_activations"]


def test_bad_arguments(rng):
    with pytest.raises(ValueError):
        mlp([784])
    with pytest.raises(ValueError):
        mlp([784, 0, 10])
    with pytest.raises(ValueError):
        mlp([4, 3, 2], activation="relu")
    model = mlp([4, 3, 2])
    with pytest.raises(ValueError):
        model.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError):
        model.forward([[0.0] * 4])
    with pytest.raises(TypeError):
        model.forward(np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError):
        model.train_step(np.zeros((2, 4), np.float32), np.array([0, 5]), SGD(0.1))


def test_uint8_conversion_equals_division():
    """The jitted float32(u) / 255 equals NumPy's division for all 256 values."""
    from fastbin.kernels.convert import uint8_to_unit_f32
    from fastbin.ops import unit_from_uint8

    u = np.arange(256, dtype=np.uint8).reshape(2, 128)
    out = np.empty(u.shape, np.float32)
    uint8_to_unit_f32(u.reshape(-1), out.reshape(-1))
    expected = np.divide(u, np.float32(255), dtype=np.float32)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(unit_from_uint8(u, np.dtype(np.float32)), expected)
    np.testing.assert_array_equal(unit_from_uint8(u, np.dtype(np.float64)), u / 255.0)
    from fastbin import reference

    np.testing.assert_array_equal(reference.unit_from_uint8(u), expected)


def test_binaryconnect_fused_step_same_on_float_signs_and_packed(rng):
    """The fastbin backend feeds +-1 floats to the fused loss instead of
    packed signs: the same loss and gradients bit for bit."""
    import fastbin

    model = softmax_regression(50, 7, binary_weights=True, init="normal", seed=3)
    x = rng.random((33, 50), dtype=np.float32)
    labels = rng.integers(0, 7, 33)
    loss = model.compute_gradients(x, labels)
    w = model.layers[0].params["W"]
    b = model.layers[0].params["b"]
    ref_loss, dw, db = fastbin.linear_softmax_cross_entropy(x, fastbin.pack_weights(w), b, labels)
    assert loss == ref_loss
    np.testing.assert_array_equal(model.layers[0].grads["W"], dw)
    np.testing.assert_array_equal(model.layers[0].grads["b"], db)
    assert (fastbin.signs(w) == fastbin.unpack_signs(fastbin.pack_weights(w)).T).all()


def test_packed_training_forward_is_bit_identical(rng):
    """Dense layers after a Sign use the packed product in the training
    forward (fastbin backend): the same weights as the float BLAS path."""
    x = rng.random((40, 30), dtype=np.float32)
    labels = rng.integers(0, 4, 40)
    models = [mlp([30, 70, 65, 4], binary_weights=True, binary_activations=True, seed=5) for _ in range(2)]
    assert [getattr(layer, "sign_input", False) for layer in models[0].layers] == [
        False, False, False, True, False, False, True, False]
    for layer in models[1].layers:
        layer.sign_input = False  # force the float path
    opts = [Adam(1e-2), Adam(1e-2)]
    for _ in range(5):
        losses = [m.train_step(x, labels, o) for m, o in zip(models, opts, strict=True)]
        assert losses[0] == losses[1]
    for (_, a, _, _), (_, b, _, _) in zip(models[0].groups, models[1].groups, strict=True):
        np.testing.assert_array_equal(a, b)


# Hostile model files: the schema (fastbin.io.modelschema) is checked before anything is built -----------


def _load_both(path):
    """``load(path)``, and the inference runtime's loader on the same file: it rejects
    exactly the files ``load`` rejects, with the same message, and loads the others."""
    try:
        model = load(path)
    except ModelFileError as exc:
        with pytest.raises(ModelFileError) as info:
            runtime.load(path, engine="numpy")
        assert str(info.value) == str(exc)
        raise
    runtime.load(path, engine="numpy")
    return model


def _saved(tmp_path, model, name="m.fbm", latent=False):
    path = tmp_path / name
    model.save(path, latent=latent)
    return path, *load_arrays(path)


def _resave(tmp_path, meta, arrays, name="hostile.fbm"):
    path = tmp_path / name
    save_arrays(path, meta, arrays)
    return path


def _declare_sizes(meta, big):
    """The issue's file: every size in meta says ``big``, the stored arrays are the small ones."""
    meta["config"]["sizes"] = [big, big, meta["config"]["sizes"][-1]]
    for layer in meta["layers"]:
        for key in ("n_in", "n_out", "n"):
            if key in layer and layer is not meta["layers"][-1]:
                layer[key] = big
    meta["layers"][-1]["n_in"] = big


@pytest.mark.parametrize("big", [600_000, 10**12])
def test_huge_declared_sizes_rejected_before_allocation(tmp_path, big):
    import tracemalloc

    path, meta, arrays = _saved(tmp_path, mlp([40, 16, 5], binary_weights=True))
    _declare_sizes(meta, big)
    path = _resave(tmp_path, meta, arrays)
    assert path.stat().st_size < 2000  # a 1.7 KB file
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=f"{path}.*(must be|implies)"):
            _load_both(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # before: 7.3 GB for 600,000, MemoryError for 10**12


@pytest.mark.parametrize("dtype", ["int8", "bool", "uint8", "int32", "int64"])
def test_weight_dtype_checked(tmp_path, dtype):
    path, meta, arrays = _saved(tmp_path, mlp([40, 16, 5]))
    arrays["0.W"] = (arrays["0.W"] > 0).astype(dtype)  # before: loaded, predicted class 0 for every input
    with pytest.raises(ModelFileError, match=rf"array '0.W' must be float32 array of shape \[40, 16\], got {dtype}"):
        _load_both(_resave(tmp_path, meta, arrays))


def test_model_dtype_and_meta_checked(tmp_path):
    path, meta, arrays = _saved(tmp_path, softmax_regression(40, 5))
    cases = [
        ({"dtype": "float16"}, "meta.dtype must be one of"),  # before: a Numba error during load
        ({"latent": "no"}, "meta.latent must be true or false"),
        ({"kind": "cnn"}, "meta.kind must be one of"),
        ({"version": 3}, "model format version 3 is not supported"),
        ({"format": "other"}, "not a fastbin model file"),
        ({"extra": 1}, r"meta has the wrong keys \(missing \[\], unexpected \['extra'\]\)"),
        ({"config": dict(meta["config"], n_in=40.0)}, "config.n_in must be an int >= 1, got 40.0"),
        ({"config": dict(meta["config"], n_in=[40])}, "config.n_in must be an int >= 1"),
        ({"config": dict(meta["config"], init="ones")}, "config.init must be one of"),
        ({"config": dict(meta["config"], scale=1)}, "config.scale must be true or false"),
        ({"config": dict(meta["config"], n_in=41)}, r"meta.layers\[0\] is .* but the configuration implies"),
        ({"config": {**meta["config"], "junk": {"a": [1]}}}, "config has the wrong keys"),
    ]
    for change, match in cases:
        with pytest.raises(ModelFileError, match=match):
            _load_both(_resave(tmp_path, {**meta, **change}, arrays))


@pytest.mark.parametrize(
    "model,name,value,match",
    [
        (lambda: softmax_regression(40, 5, binary_weights=True, scale=True), "0.alpha", -0.5, "must be >= 0"),
        (lambda: softmax_regression(40, 5, binary_weights=True, scale=True), "0.alpha", np.nan, "NaN or infinite"),
        (lambda: mlp([40, 16, 5]), "0.W", np.nan, "'0.W' holds NaN or infinite"),
        (lambda: mlp([40, 16, 5]), "2.b", np.inf, "'2.b' holds NaN or infinite"),
        (lambda: mlp([40, 16, 5], binary_activations=True), "1.running_var", -1.0, "'1.running_var' must be >= 0"),
        (lambda: mlp([40, 16, 5], binary_activations=True), "4.gamma", 1e36, "activations of magnitude"),
        (lambda: mlp([40, 16, 5]), "2.W", 3e38, "layer 2 .* can reach activations"),
    ],
)
def test_bad_parameter_values_rejected(tmp_path, model, name, value, match):
    path, meta, arrays = _saved(tmp_path, model())
    arrays[name] = arrays[name].copy()
    arrays[name].reshape(-1)[0] = value
    with pytest.raises(ModelFileError, match=f"{_resave(tmp_path, meta, arrays)}: .*{match}"):
        _load_both(tmp_path / "hostile.fbm")


def test_negative_alpha_would_flip_predictions(rng, tmp_path):
    """Why alpha must be >= 0: a negative alpha flips the signs a save/load round trip stores."""
    path, meta, arrays = _saved(tmp_path, softmax_regression(40, 5, binary_weights=True, scale=True, init="normal"))
    arrays["0.alpha"] = -np.abs(arrays["0.alpha"])
    with pytest.raises(ModelFileError, match="'0.alpha' must be >= 0"):
        _load_both(_resave(tmp_path, meta, arrays))


def test_missing_extra_and_reshaped_arrays(tmp_path):
    path, meta, arrays = _saved(tmp_path, mlp([40, 16, 5], binary_weights=True, scale=True))
    for change, match in [
        (lambda a: a.pop("0.alpha"), r"missing \['0.alpha'\], unexpected \[\]"),
        (lambda a: a.update(extra=np.ones(2, np.float32)), r"missing \[\], unexpected \['extra'\]"),
        (lambda a: a.update({"0.b": np.ones(17, np.float32)}), r"'0.b' must be float32 array of shape \[16\]"),
        (lambda a: a.update({"0.W_bits": np.zeros((16, 1), np.int64)}),
         "'0.W_bits' must be uint64 packed_signs.*got int64 array"),
    ]:
        a = dict(arrays)
        change(a)
        with pytest.raises(ModelFileError, match=match):
            _load_both(_resave(tmp_path, meta, a))


def test_all_zero_per_feature_offset_round_trip(rng, tmp_path):
    """A per-feature offset of zeros stores no vector; loading used to rebuild one and reject the file."""
    model = mlp([40, 5], binary_weights=True, output_bn=True, input_offset=np.zeros(40))
    path = tmp_path / "m.fbm"
    model.save(path)
    x = rng.random((7, 40)).astype(np.float32)
    np.testing.assert_array_equal(load(path).forward(x), model.forward(x))


def test_schema_check_on_a_table(tmp_path):
    """The check another loader (the runtime) can call: the header alone, or loaded arrays."""
    from fastbin.io.modelschema import check_header, check_values, table_of

    path, meta, arrays = _saved(tmp_path, mlp([40, 16, 5], binary_activations=True))
    schema = check_header(meta, table_of(arrays), path=path)
    assert list(schema.arrays) == list(arrays)
    check_values(schema, arrays, path=path)
    with pytest.raises(ModelFileError, match="'0.W' must be"):
        check_header(meta, table_of({**arrays, "0.W": arrays["0.W"].T}), path=path)


@pytest.mark.parametrize("name,binary", [("float", False), ("binary", True)])
def test_load_peak_memory_bounded_by_file_size(tmp_path, name, binary):
    """Peak memory of load(): at most a small multiple of what the model holds, which the schema
    ties to the stored arrays. Per weight the trainable model keeps float32 weights and gradients
    (plus the flat buffers and one float64 zero-init temporary while it is built): a 4-byte
    float32 weight costs at most 8x its file bytes, a 1-bit packed weight (32x smaller on disk)
    at most 32 * 8 = 256x."""
    import tracemalloc

    model = mlp([784, 300, 200, 10], binary_weights=binary, binary_activations=binary)
    path = tmp_path / f"{name}.fbm"
    model.save(path)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        load(path, backend="reference")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    factor = 256 if binary else 8
    assert peak <= factor * size + (1 << 20), (peak, size, peak / size)


def test_save_refuses_a_file_its_own_loader_would_refuse(tmp_path):
    """Issue 21, item 6: the trainer checks what it writes with the loader's schema before the rename:
    a seed of 2**128 or weights that overflowed to inf give a clear error, and the previous file stays."""
    import os

    f = tmp_path / "m.fbm"
    softmax_regression(7, 3, backend="reference").save(f)
    before = f.read_bytes()
    overflowed = mlp([7, 5, 3], backend="reference")
    overflowed.layers[0].params["W"][0, 0] = np.inf
    for model, reason in [(softmax_regression(7, 3, seed=2**128, backend="reference"), "config.seed"),
                          (overflowed, "array '0.W' holds NaN or infinite values")]:
        with pytest.raises(ValueError, match=f"not saved: its loader would refuse it: {reason}"):
            model.save(f)
        assert f.read_bytes() == before and os.listdir(tmp_path) == ["m.fbm"]
    with pytest.raises(ValueError, match="config.seed"):
        softmax_regression(7, 3, seed=2**128, backend="reference").save(tmp_path / "new.fbm")
    assert os.listdir(tmp_path) == ["m.fbm"]


def test_a_header_declaring_half_a_million_layers_is_refused_cheaply(tmp_path):
    """Issue 21, item 7: a 1 MB header whose configuration declares 520,000 layer sizes is refused
    at the count, before any work proportional to it (it used to build 1.5 million layer configs:
    250 MB). Peak memory: a small multiple of the file."""
    import tracemalloc

    from fastbin.io.modelschema import MAX_DENSE_LAYERS

    path = tmp_path / "m.fbm"
    mlp([5, 3, 2], backend="reference").save(path)
    meta, arrays = load_arrays(path)
    meta["config"]["sizes"] = [1] * 520_000
    save_arrays(path, meta, arrays)
    size = path.stat().st_size
    assert size > 1_000_000
    for loader in (load, lambda p: runtime.load(p, engine="numpy")):
        tracemalloc.start()
        try:
            with pytest.raises(ModelFileError, match=f"config.sizes has 520000 entries: at most "
                                                     f"{MAX_DENSE_LAYERS + 1}"):
                loader(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 12 * size, (peak, size)


def test_batch_norm_momentum_and_eps_of_the_file_are_kept(tmp_path, rng):
    """Any batch-norm momentum and eps the schema allows is read by every loader alike (the fuzzer's
    seed 0 case 4363, momentum -0.0: fastbin.nn.load refused what fastbin.runtime.load ran); eps is
    part of the evaluation, so the loaded model must use the file's."""
    import json

    model = mlp([7, 9, 3], binary_weights=True, binary_activations=True, backend="reference")
    for layer in model.layers:
        if layer.kind == "batchnorm":
            layer.momentum, layer.eps = -0.0, 0.25
            layer.buffers["running_var"][...] = 1e-3
    path = tmp_path / "m.fbm"
    model.save(path)
    loaded = load(path, backend="reference")
    assert [layer.config() for layer in loaded.layers] == [layer.config() for layer in model.layers]
    assert json.dumps(loaded.layers[1].config()["momentum"]) == "-0.0"
    x = rng.random((20, 7)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    np.testing.assert_array_equal(runtime.load(path, engine="numpy").predict(x), model.predict(x))
