"""Folded inference equals the unfolded model bit for bit (ties included)."""
import numpy as np
import pytest

import fastbin
from fastbin.nn.fold import affine, float_thresholds, int_thresholds
from fastbin.nn.layers import BatchNorm, Dense
from fastbin.nn.model import mlp, softmax_regression
from fastbin.nn.optim import Adam
from fastbin.runtime import InferenceModel

BACKENDS = ["reference", "fastbin"]


def _randomise(model, rng, ties_from=None):
    """Random weights and batch-norm statistics, negative gammas included; with
    ``ties_from`` (uint8 input) the running means sit exactly on attained
    pre-activations so that some outputs are exactly 0 (a tie)."""
    for layer in model.layers:
        for value in layer.params.values():
            value[...] = rng.normal(0, 1, value.shape)
        if isinstance(layer, BatchNorm):
            layer.params["gamma"][...] *= rng.choice([-1, 1], layer.n)
            layer.params["gamma"][0] = 0.0  # constant output
            layer.buffers["running_var"][...] = rng.uniform(0.5, 4, layer.n)
            layer.params["beta"][...] = 0.0
            # integer means: hidden dots are integers, so f(dot) == 0 happens
            layer.buffers["running_mean"][...] = 2 * rng.integers(-3, 4, layer.n)
    if ties_from is not None:
        dense, bn = model.layers[0], model.layers[1]
        z = dense.forward(ties_from, training=False)
        bn.buffers["running_mean"][...] = z[np.arange(bn.n) % z.shape[0], np.arange(bn.n)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sizes", [[20, 16, 12, 3], [70, 65, 64, 10], [9, 7, 2]])
@pytest.mark.parametrize("scale", [False, True])
def test_folded_equals_unfolded_random_nets(backend, sizes, scale, rng):
    model = mlp(sizes, binary_weights=True, binary_activations=True, scale=scale, seed=0, backend=backend,
                input_offset=0.25 if scale else None)
    x_u8 = rng.integers(0, 256, (33, sizes[0]), dtype=np.uint8)
    _randomise(model, rng, ties_from=x_u8)
    folded = model.to_inference()
    assert isinstance(folded, InferenceModel)
    x_float = (x_u8 / 255).astype(np.float32)
    x_float[:3] = np.round(x_float[:3])  # plenty of exact zeros and ones
    for x in (x_u8, x_float, np.zeros_like(x_float)):
        np.testing.assert_array_equal(folded.forward(x), model.forward(x))
        np.testing.assert_array_equal(folded.predict(x), model.predict(x))
    # the fixture really produced ties in the first layer (uint8 path)
    z = model.layers[1].forward(model.layers[0].forward(x_u8, False), False)
    assert (z == 0).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_hidden_activations_stay_packed(backend, rng):
    model = mlp([30, 20, 10, 4], binary_weights=True, binary_activations=True, seed=1, backend=backend)
    folded = model.to_inference()
    x = rng.random((5, 30)).astype(np.float32)
    a = folded.stages[0](x)  # raw packed words from stage to stage
    assert a.dtype == np.uint64 and a.shape == (5, 1)
    np.testing.assert_array_equal(a, fastbin.pack_signs(model.layers[2].forward(
        model.layers[1].forward(model.layers[0].forward(x)))).bits)
    b = folded.stages[1](a)
    assert b.dtype == np.uint64 and b.shape == (5, 1)
    assert repr(folded) == "InferenceModel(stages=['sign', 'sign', 'float'])"


def test_thresholds_exact_on_integer_domain(rng):
    dense = Dense(8, 5, binary=True, scale=True, dtype=np.float32)
    dense.params["W"][...] = rng.uniform(-1, 1, (8, 5))
    bn = BatchNorm(5, dtype=np.float32)
    bn.params["gamma"][...] = [1.5, -2.0, 0.0, 0.3, -0.7]
    bn.params["beta"][...] = rng.normal(0, 1, 5)
    bn.buffers["running_mean"][...] = rng.normal(0, 1, 5)
    aff = affine(dense, bn, uint8_input=True)
    bound = 255 * 8
    t, flip = int_thresholds(aff, bound)
    d = np.arange(-bound, bound + 1)
    neg = aff(d[:, None].astype(np.float32) * np.ones(5, np.float32)) < 0
    expected = np.where(flip, d[:, None] > t, d[:, None] < t)
    np.testing.assert_array_equal(neg, expected)
    assert flip.tolist() == [False, True, False, False, True]


def test_float_thresholds_exact_near_the_change(rng):
    dense = Dense(8, 4, binary=True, scale=True, dtype=np.float32)
    dense.params["W"][...] = rng.uniform(-1, 1, (8, 4))
    bn = BatchNorm(4, dtype=np.float32)
    bn.params["gamma"][...] = [1.0, -1.0, 3.0, -0.01]
    bn.buffers["running_mean"][...] = [0.1, -0.2, 0.0, 1e-30]
    aff = affine(dense, bn, uint8_input=False)
    t, flip = float_thresholds(aff)
    for j in range(4):
        around = [t[j]]
        for direction in (np.float32(-np.inf), np.float32(np.inf)):
            v = t[j]
            for _ in range(8):
                v = np.nextafter(v, direction)
                around.append(v)
        values = np.concatenate([around, np.float32(np.linspace(-5, 5, 101))]).astype(np.float32)
        grid = np.zeros((values.size, 4), np.float32)
        grid[:, j] = values
        neg = aff(grid)[:, j] < 0
        expected = values > t[j] if flip[j] else values < t[j]
        np.testing.assert_array_equal(neg, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_folded_equals_unfolded_after_training(backend, rng):
    n, k = 400, 64
    centers = rng.normal(0, 1, (4, k))
    labels = rng.integers(0, 4, n)
    x = np.clip(0.5 + 0.25 * (centers[labels] + rng.normal(0, 1, (n, k))), 0, 1).astype(np.float32)
    model = mlp([k, 32, 16, 4], binary_weights=True, binary_activations=True, seed=0, backend=backend)
    opt = Adam(1e-2)
    for _ in range(60):
        idx = rng.integers(0, n, 64)
        model.train_step(x[idx], labels[idx], opt)
    folded = model.to_inference()
    assert model.evaluate(x, labels)[1] > 0.6
    np.testing.assert_array_equal(folded.forward(x), model.forward(x))
    x_u8 = np.round(x * 255).astype(np.uint8)
    np.testing.assert_array_equal(folded.predict(x_u8), model.predict(x_u8))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["softmax", "binary_softmax", "tanh", "binary_tanh", "centred_binary_softmax"])
def test_non_folded_models_infer_like_the_model(backend, kind, rng):
    if kind == "centred_binary_softmax":
        model = mlp([30, 5], binary_weights=True, output_bn=True, input_offset=rng.random(30), backend=backend)
    elif kind.endswith("softmax"):
        model = softmax_regression(30, 5, binary_weights=kind.startswith("binary"), backend=backend)
    else:
        model = mlp([30, 12, 5], binary_weights=kind.startswith("binary"), backend=backend)
    x = rng.random((7, 30)).astype(np.float32)
    folded = model.to_inference()
    np.testing.assert_array_equal(folded.forward(x), model.forward(x))
    x_u8 = rng.integers(0, 256, (7, 30), dtype=np.uint8)
    np.testing.assert_array_equal(folded.forward(x_u8), model.forward(x_u8))


def test_inference_rejects_bad_input():
    folded = mlp([6, 4, 2], binary_weights=True, binary_activations=True).to_inference()
    with pytest.raises(ValueError):
        folded.predict(np.zeros((3, 5), np.float32))
    with pytest.raises(TypeError):
        folded.predict(np.zeros((3, 6), np.int32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fold_without_batch_norm(backend, rng):
    """Binary dense (with bias) straight into sign: thresholds from the bias alone."""
    model = mlp([20, 16, 12, 3], binary_weights=True, activation="sign", batch_norm=False, output_bn=False,
                seed=4, backend=backend)
    for layer in model.layers:
        if "b" in layer.params:  # integer biases: hidden dots hit -b exactly (ties)
            layer.params["b"][...] = 2 * rng.integers(-3, 4, layer.params["b"].shape)
    folded = model.to_inference()
    assert repr(folded) == "InferenceModel(stages=['sign', 'sign', 'float'])"
    for x in (rng.integers(0, 256, (40, 20), dtype=np.uint8), rng.random((40, 20)).astype(np.float32)):
        np.testing.assert_array_equal(folded.forward(x), model.forward(x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m", [1, 2, 15, 16, 17])
def test_folded_equals_unfolded_few_rows(backend, m, rng):
    """Batch 1 and small batches take other kernels (BLAS first layer, the
    unblocked packed kernels): still bit-identical to the unfolded model."""
    model = mlp([70, 65, 64, 10], binary_weights=True, binary_activations=True, scale=True, seed=2,
                backend=backend)
    x_u8 = rng.integers(0, 256, (40, 70), dtype=np.uint8)
    _randomise(model, rng, ties_from=x_u8)
    folded = model.to_inference()
    for x in (x_u8[:m], (x_u8[:m] / 255).astype(np.float32)):
        np.testing.assert_array_equal(folded.forward(x), model.forward(x))
        np.testing.assert_array_equal(folded.predict(x), model.predict(x))
        for i in range(m):  # row by row (m = 1 each)
            np.testing.assert_array_equal(folded.forward(x[i : i + 1]), model.forward(x[i : i + 1]))


@pytest.mark.parametrize("n", [1, 10, 63, 64, 65, 130])
def test_few_row_and_threshold_kernels_match_numpy(n, rng):
    from fastbin import pack_signs, pack_weights
    from fastbin.kernels.binary_product.few_rows import binary_dot_rows, dense_sign_rows
    from fastbin.kernels.binary_product.threshold import threshold_pack
    from fastbin.reference import binary_dense_sign, binary_matmul

    k, m = 70, 5
    a = pack_signs(rng.normal(size=(m, k)))
    w = pack_weights(rng.normal(size=(k, n)))
    t = rng.integers(-8, 9, n).astype(np.int64)
    flip = rng.random(n) < 0.5
    out = np.full((m, -(-n // 64)), 12345, np.uint64)
    dense_sign_rows(a.bits, w.bits, k, t, flip, out)
    np.testing.assert_array_equal(out, binary_dense_sign(a, w, t, flip).bits)
    dot = np.empty((m, n), np.float32)
    binary_dot_rows(a.bits, w.bits, k, dot)
    np.testing.assert_array_equal(dot, binary_matmul(a, w).astype(np.float32))
    for values in (binary_matmul(a, w), binary_matmul(a, w).astype(np.float32) + 0.5):
        thr = t.astype(values.dtype) if values.dtype.kind == "f" else t
        out[...] = 7
        threshold_pack(values, thr, flip, out)
        expected = np.where(np.where(flip, values > thr, values < thr), -1, 1)
        np.testing.assert_array_equal(out, pack_signs(expected).bits)


def test_dense_product_kind_choices():
    from fastbin.ops.dense import dense_product_kind as float_dot_kernel

    assert float_dot_kernel(1, 512, 784) == "rows"
    assert float_dot_kernel(4, 10, 784) == "rows"
    assert float_dot_kernel(8, 512, 784) == "blas"


@pytest.mark.parametrize("threshold", [0, 1 << 60])
def test_folded_equals_unfolded_threaded_first_layer(threshold, rng, monkeypatch):
    """Large first layers go to threaded sign_matmul when Numba has threads:
    the folded model takes the same path (threshold 0 forces it here)."""
    import numba

    from fastbin import _config

    monkeypatch.setitem(_config.TABLE["parallel_min_work"], "sign_matmul", threshold)
    model = mlp([70, 80, 10], binary_weights=True, binary_activations=True, seed=3, backend="fastbin")
    _randomise(model, rng)
    folded = model.to_inference()
    x = rng.random((40, 70)).astype(np.float32)
    np.testing.assert_array_equal(folded.forward(x), model.forward(x))
    if numba.get_num_threads() > 1:
        from fastbin.ops.dense import dense_product_kind as float_dot_kernel

        assert float_dot_kernel(40, 80, 70) == ("packed" if threshold == 0 else "blas")
