"""Layer gradients against finite differences (float64), STE, batch norm."""
import numpy as np
import pytest

from fastbin.nn.layers import BatchNorm, Dense, HardTanh, Sign, Tanh
from fastbin.nn.model import mlp, softmax_regression
from fastbin.ops.backend import get_backend

BACKENDS = ["reference", "fastbin"]


def _loss(model, x, labels):
    logits = model.forward(x, training=True)
    return model.backend.softmax_cross_entropy(logits, labels)[0]


def _check_gradients(model, x, labels, n_checks=40, h=1e-6, seed=0):
    model.compute_gradients(x, labels)
    rng = np.random.default_rng(seed)
    for key, flat, grad, _ in model.groups:
        analytic = grad.copy()
        for idx in rng.choice(flat.size, size=min(n_checks, flat.size), replace=False):
            saved = flat[idx]
            flat[idx] = saved + h
            up = _loss(model, x, labels)
            flat[idx] = saved - h
            down = _loss(model, x, labels)
            flat[idx] = saved
            numeric = (up - down) / (2 * h)
            assert abs(numeric - analytic[idx]) <= 1e-6 + 1e-5 * abs(numeric), (key, idx, numeric, analytic[idx])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ["tanh", "hardtanh"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_mlp_gradients_match_finite_differences(backend, activation, batch_norm, rng):
    model = mlp([7, 6, 5, 3], activation=activation, batch_norm=batch_norm, output_bn=batch_norm,
                init="normal", sigma=0.5, seed=1, backend=backend, dtype="float64",
                input_offset=0.4 if batch_norm else None)
    x = rng.random((9, 7))
    labels = rng.integers(0, 3, 9)
    _check_gradients(model, x, labels)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("offset", [None, 0.3, "vector"])
def test_softmax_regression_gradients(backend, offset, rng):
    if offset == "vector":
        offset = rng.random(11)
    model = softmax_regression(11, 4, init="normal", seed=2, backend=backend, dtype="float64", input_offset=offset)
    x = rng.random((6, 11))
    _check_gradients(model, x, rng.integers(0, 4, 6))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", [False, True])
def test_binary_dense_gradient_is_the_effective_weights_gradient(backend, scale, rng):
    """BinaryConnect: the gradient applied to the real W is the gradient with
    respect to W_eff = sign(W) * alpha (straight through)."""
    kw = dict(activation="tanh", init="normal", sigma=0.5, seed=3, backend=backend, dtype="float64")
    binary = mlp([8, 5, 3], binary_weights=True, scale=scale, **kw)
    twin = mlp([8, 5, 3], **kw)
    for lb, lt in zip(binary.layers, twin.layers, strict=True):
        if isinstance(lb, Dense):
            lt.params["W"][...] = lb.effective_weights()
            lt.params["b"][...] = lb.params["b"]
    x, labels = rng.random((10, 8)), rng.integers(0, 3, 10)
    assert binary.compute_gradients(x, labels) == pytest.approx(twin.compute_gradients(x, labels), rel=1e-12)
    for lb, lt in zip(binary.layers, twin.layers, strict=True):
        for name in lb.grads:
            np.testing.assert_allclose(lb.grads[name], lt.grads[name], rtol=1e-12, atol=1e-14)
    _check_gradients(twin, x, labels)


def test_binary_effective_weights_sign_convention():
    layer = Dense(3, 2, binary=True, scale=False, dtype=np.float32)
    layer.params["W"][...] = np.array([[0.0, -0.0], [-0.5, 0.25], [1.0, -1.0]], np.float32)
    np.testing.assert_array_equal(layer.effective_weights(), [[1, 1], [-1, 1], [1, -1]])
    layer.scale = True
    np.testing.assert_allclose(layer.alpha(), [0.5, 1.25 / 3], rtol=1e-6)
    np.testing.assert_allclose(layer.effective_weights(), [[0.5, 1.25 / 3], [-0.5, 1.25 / 3], [0.5, -1.25 / 3]],
                               rtol=1e-6)


def test_sign_straight_through_estimator():
    x = np.array([[-2.0, -1.0, -0.5, 0.0, -0.0, 0.5, 1.0, 1.5]])
    layer = Sign()
    np.testing.assert_array_equal(layer.forward(x, training=True), [[-1, -1, -1, 1, 1, 1, 1, 1]])
    dy = np.arange(1.0, 9.0)[None]
    np.testing.assert_array_equal(layer.backward(dy), [[0, 2, 3, 4, 5, 6, 7, 0]])


def test_hardtanh_and_tanh_forward_backward():
    x = np.array([[-2.0, -0.5, 0.3, 1.0, 3.0]])
    h = HardTanh()
    np.testing.assert_array_equal(h.forward(x, True), [[-1, -0.5, 0.3, 1, 1]])
    np.testing.assert_array_equal(h.backward(np.ones_like(x)), [[0, 1, 1, 1, 0]])
    t = Tanh()
    a = t.forward(x, True)
    np.testing.assert_allclose(t.backward(np.ones_like(x)), 1 - np.tanh(x) ** 2)
    np.testing.assert_allclose(a, np.tanh(x))


def test_batchnorm_train_and_eval(rng):
    bn = BatchNorm(4, momentum=0.5, dtype=np.float64)
    bn.params["gamma"][...] = [1.0, 2.0, -1.0, 0.5]
    bn.params["beta"][...] = [0.0, 1.0, 0.5, -2.0]
    x = rng.normal(3.0, 2.0, (16, 4))
    y = bn.forward(x, training=True)
    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + bn.eps)
    np.testing.assert_allclose(y, xhat * bn.params["gamma"] + bn.params["beta"], rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.5 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.5 + 0.5 * x.var(0, ddof=1), rtol=1e-12)
    # eval uses the running statistics, not the batch's
    y_eval = bn.forward(x[:3], training=False)
    rm, rv = bn.buffers["running_mean"], bn.buffers["running_var"]
    expected = (x[:3] - rm) / np.sqrt(rv + bn.eps) * bn.params["gamma"] + bn.params["beta"]
    np.testing.assert_allclose(y_eval, expected, rtol=1e-12)


def test_backend_selection():
    assert get_backend("reference").name == "reference"
    assert get_backend("fastbin") is get_backend("fastbin")
    with pytest.raises(ValueError, match="backend"):
        get_backend("torch")
    with pytest.raises(TypeError):
        get_backend(3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_signs_helper_kernel_and_numpy_paths(dtype):
    """sign(0) = sign(-0.0) = +1, NaN -> +1, on the jitted (C-contiguous) and
    the NumPy (other layouts) paths, and the reference's."""
    import fastbin
    from fastbin import reference

    x = np.array([[-0.0, 0.0, -1.0], [2.0, np.nan, -np.inf]], dtype=dtype)
    expected = np.array([[1, 1, -1], [1, 1, -1]], dtype=dtype)
    for a in (x, np.asfortranarray(x)):
        for signs in (fastbin.signs, reference.signs):
            s = signs(a)
            assert s.dtype == dtype
            np.testing.assert_array_equal(s, expected)
    with pytest.raises(TypeError, match="dtype"):
        fastbin.signs(np.array([[1, -2]], np.int64))
