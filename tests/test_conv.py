"""Binary convolutional networks (issue 25): the NumPy specification of the
conv pieces (``fastbin.reference``: im2col with one-padding, the binary conv,
max pooling) against direct loops and finite differences, then the layers of
``fastbin.nn.conv`` on the fastbin backend against the reference backend.

Shapes are small on purpose (the machine is shared)."""
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerance import assert_close

from fastbin import reference as R
from fastbin import runtime
from fastbin.io.modelfile import ModelFileError, save_arrays
from fastbin.nn import SGD, Adam, BatchNorm, Dense, Sign, fit, layer_costs
from fastbin.nn.conv import Conv2D, Flatten, MaxPool2D
from fastbin.nn.layers import HardTanh
from fastbin.nn.model import ConvModel, bnn_conv, load, sequential
from fastbin.ops.backend import get_backend


# ---------------------------------------------------------------------------
# Independent formulations: direct loops over output pixels
# ---------------------------------------------------------------------------
def direct_conv(x, w, stride, padding, pad_value):
    """sum_{i,j,ch} xpad[n, p*s + i, q*s + j, ch] * sign(w)[i, j, ch, o], written out."""
    m, h, wd, c = x.shape
    kh, kw, _, c_out = w.shape
    s = stride
    if padding == "same":
        out_h, out_w = -(-h // s), -(-wd // s)
        ph, pw = max((out_h - 1) * s + kh - h, 0), max((out_w - 1) * s + kw - wd, 0)
        top, left = ph // 2, pw // 2
    else:
        out_h, out_w = (h - kh) // s + 1, (wd - kw) // s + 1
        ph = pw = top = left = 0
    xp = np.full((m, h + ph, wd + pw, c), pad_value, dtype=np.float64)
    xp[:, top : top + h, left : left + wd, :] = x
    sw = np.where(w < 0, -1.0, 1.0)
    z = np.zeros((m, out_h, out_w, c_out))
    for p in range(out_h):
        for q in range(out_w):
            patch = xp[:, p * s : p * s + kh, q * s : q * s + kw, :]
            z[:, p, q, :] = np.einsum("nijc,ijco->no", patch, sw)
    return z


def direct_max_pool(x, pool, stride):
    m, h, w, c = x.shape
    out_h, out_w = (h - pool) // stride + 1, (w - pool) // stride + 1
    y = np.empty((m, out_h, out_w, c), x.dtype)
    for p in range(out_h):
        for q in range(out_w):
            y[:, p, q, :] = x[:, p * stride : p * stride + pool, q * stride : q * stride + pool, :].max(axis=(1, 2))
    return y


conv_cases = st.tuples(
    st.integers(1, 3),  # m
    st.integers(1, 7),  # h
    st.integers(1, 7),  # w
    st.integers(1, 4),  # c_in
    st.integers(1, 5),  # c_out
    st.integers(1, 3),  # kernel
    st.integers(1, 3),  # stride
    st.sampled_from(["valid", "same"]),
    st.sampled_from([1.0, 0.0]),
    st.integers(0, 2**32 - 1),
)


@given(conv_cases)
def test_reference_sign_conv2d_equals_direct_loops(case):
    m, h, w, c, c_out, k, s, padding, pad_value, seed = case
    if padding == "valid" and (h < k or w < k):
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, h, w, c))
    wt = rng.standard_normal((k, k, c, c_out))
    z = R.sign_conv2d(x, wt, s, padding, pad_value)
    np.testing.assert_allclose(z, direct_conv(x, wt, s, padding, pad_value), rtol=1e-12, atol=1e-12)


@given(conv_cases)
def test_reference_col2im_is_the_adjoint_of_im2col(case):
    # <im2col(x), d> = <x, col2im(d)> for the zero-padded im2col (padding is a constant)
    m, h, w, c, _, k, s, padding, _, seed = case
    if padding == "valid" and (h < k or w < k):
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, h, w, c))
    cols = R.im2col(x, k, s, padding, pad_value=0)
    d = rng.standard_normal(cols.shape)
    assert np.sum(cols * d) == pytest.approx(np.sum(x * R.col2im(d, x.shape, k, s, padding)), rel=1e-10, abs=1e-10)


def test_reference_uint8_conv_is_exact_and_pads_in_raw_units(rng):
    x = rng.integers(0, 256, (2, 5, 5, 2), dtype=np.uint8)
    wt = rng.standard_normal((3, 3, 2, 3))
    z = R.sign_conv2d(x, wt, 1, "same", pad_value=255)
    assert z.dtype == np.int32
    np.testing.assert_array_equal(z, direct_conv(x.astype(np.float64), wt, 1, "same", 255).astype(np.int32))


def test_reference_conv_backward_matches_finite_differences(rng):
    x = rng.standard_normal((2, 5, 4, 2))
    wt = rng.standard_normal((3, 2, 2, 3))
    g = rng.standard_normal((2, 3, 2, 3))  # L = sum(g * conv(x)) with stride 2, "same"
    dx, dw = R.sign_conv2d_backward(g, x, wt, 2, "same")
    eps = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        num[idx] = np.sum(g * (R.sign_conv2d(x + e, wt, 2, "same") - R.sign_conv2d(x - e, wt, 2, "same"))) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    # dw is the gradient w.r.t. sign(W): L is linear in sign(W), so it is exact
    cols = R.im2col(x, (3, 2), 2, "same")
    np.testing.assert_allclose(dw.reshape(-1, 3), cols.T @ g.reshape(-1, 3), rtol=1e-12)
    s = np.where(wt < 0, -1.0, 1.0)
    assert np.sum(dw * s) == pytest.approx(np.sum(g * R.sign_conv2d(x, wt, 2, "same")), rel=1e-12)


@given(st.integers(1, 3), st.integers(2, 7), st.integers(2, 7), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_reference_max_pool_equals_direct_loops(m, h, w, c, pool, stride, seed):
    if h < pool or w < pool:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (m, h, w, c)).astype(np.float32)  # many ties
    y = R.max_pool2d(x, pool, stride)
    np.testing.assert_array_equal(y, direct_max_pool(x, pool, stride))
    # backward: every window passes its gradient to exactly one maximum of it
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = R.max_pool2d_backward(dy, x, pool, stride)
    assert np.sum(dx, dtype=np.float64) == pytest.approx(np.sum(dy, dtype=np.float64), rel=1e-5, abs=1e-5)
    if stride >= pool:  # windows disjoint: the gradient sits on a maximum of its window
        nz = np.argwhere(dx != 0)
        for n, i, j, ch in nz:
            p, q = i // stride, j // stride
            assert x[n, i, j, ch] == y[n, p, q, ch]


def test_reference_max_pool_backward_matches_finite_differences(rng):
    x = rng.permutation(2 * 6 * 5 * 2).reshape(2, 6, 5, 2).astype(np.float64)  # distinct values
    g = rng.standard_normal((2, 2, 2, 2))
    dx = R.max_pool2d_backward(g, x, 3, 2)
    eps = 1e-3
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        num[idx] = np.sum(g * (R.max_pool2d(x + e, 3, 2) - R.max_pool2d(x - e, 3, 2))) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-9, atol=1e-9)


def test_reference_max_pool_on_signs_is_and_of_bits(rng):
    x = np.where(rng.random((3, 4, 4, 5)) < 0.7, -1.0, 1.0)
    bits = x < 0
    y = R.max_pool2d(x, 2)
    anded = bits[:, 0::2, 0::2] & bits[:, 1::2, 0::2] & bits[:, 0::2, 1::2] & bits[:, 1::2, 1::2]
    np.testing.assert_array_equal(y < 0, anded)


@pytest.mark.parametrize("call, match", [
    (lambda: R.conv_geometry(5, 5, 3, 1, "full"), "padding"),
    (lambda: R.conv_geometry(5, 5, 0), "kernel_size"),
    (lambda: R.conv_geometry(5, 5, 3, (1, 0)), "stride"),
    (lambda: R.conv_geometry(2, 5, 3), "height"),
    (lambda: R.im2col(np.zeros((2, 5, 5)), 3), "images"),
    (lambda: R.sign_conv2d(np.zeros((1, 5, 5, 2)), np.zeros((3, 3, 3, 4))), "w must be"),
    (lambda: R.col2im(np.zeros((3, 9)), (1, 5, 5, 1), 3), "cols"),
    (lambda: R.max_pool2d(np.zeros((1, 1, 5, 1)), 2), "height"),
])
def test_reference_conv_arguments_are_checked(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_conv_geometry_same_padding_follows_tensorflow():
    assert R.conv_geometry(5, 6, 3, 2, "same") == (3, 3, (1, 1), (0, 1))
    assert R.conv_geometry(28, 28, 3, 1, "same") == (28, 28, (1, 1), (1, 1))
    assert R.conv_geometry(28, 28, 3, 1, "valid") == (26, 26, (0, 0), (0, 0))
    assert R.conv_geometry(4, 4, 1, 3, "same") == (2, 2, (0, 0), (0, 0))


# ---------------------------------------------------------------------------
# Layers (fastbin.nn.conv): the fastbin backend against the reference
# ---------------------------------------------------------------------------
layer_cases = st.tuples(
    st.integers(1, 3),  # m
    st.integers(3, 7),  # h
    st.integers(3, 7),  # w
    st.integers(1, 3),  # c_in
    st.integers(1, 4),  # filters
    st.sampled_from([1, 2, 3, (3, 2)]),  # kernel
    st.sampled_from([1, 2, (1, 2)]),  # stride
    st.sampled_from(["valid", "same"]),
    st.sampled_from([1, 0]),  # pad_value
    st.booleans(),  # ±1 input (the packed product) or real input
    st.booleans(),  # scale
    st.integers(0, 2**32 - 1),
)


def _kernel4(layer):
    kh, kw = layer.kernel_size
    return layer.params["W"].reshape(kh, kw, layer.in_channels, layer.filters)


@given(layer_cases)
def test_conv2d_layer_training_pass_matches_the_reference(case):
    m, h, w, c, f, k, s, padding, pad_value, signed, scale, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, h, w, c)).astype(np.float32)
    if signed:
        x = np.where(x < 0, -1, 1).astype(np.float32)
    out = {}
    for backend in ("fastbin", "reference"):
        layer = Conv2D(c, f, k, stride=s, padding=padding, pad_value=pad_value, scale=scale, rng=seed,
                       backend=backend)
        layer.sign_input = signed
        z = layer.forward(x, training=True)
        dz = np.random.default_rng(seed + 1).standard_normal(z.shape).astype(np.float32)
        dx = layer.backward(dz)
        out[backend] = (z, dx, layer.grads["W"].copy(), layer.grads["b"].copy(), layer)
    z, dx, dw, db, layer = out["fastbin"]
    w4 = _kernel4(layer)
    alpha = 1.0 if not scale else layer.alpha()
    expect_z = R.sign_conv2d(x.astype(np.float64), w4, s, padding, pad_value) * alpha + layer.params["b"]
    dz = np.random.default_rng(seed + 1).standard_normal(z.shape).astype(np.float32)
    expect_dx, expect_dw = R.sign_conv2d_backward((dz * alpha).astype(np.float64), x.astype(np.float64), w4, s,
                                                  padding, pad_value)
    expect_dw = R.im2col(x.astype(np.float64), layer.kernel_size, s, padding, pad_value).T @ dz.reshape(-1, f)
    for backend, (z, dx, dw, db, _) in out.items():
        assert z.shape == expect_z.shape and dx.shape == x.shape
        if signed and not scale and backend == "fastbin":  # ±1 times ±1: integers, the same bits
            np.testing.assert_array_equal(z, expect_z.astype(np.float32))
        assert_close(z, expect_z, np.float32, err_msg=backend)
        assert_close(dx, expect_dx, np.float32, err_msg=backend)
        assert_close(dw, expect_dw, np.float32, err_msg=backend)
        assert_close(db, dz.sum(axis=(0, 1, 2)), np.float32, err_msg=backend)


@pytest.mark.parametrize("kernel", [1, 3, 5, (3, 5)])
@pytest.mark.parametrize("signed, scale", [(True, False), (False, False), (False, True)])
def test_conv2d_input_gradient_by_the_flipped_kernel(kernel, signed, scale):
    """Stride 1, "same", odd kernels: the fastbin backend's ``dx`` is the convolution of ``dz``
    with the flipped kernel (``Conv2D._dx_flipped``), the reference's ``col2im`` within rounding."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 7, 5)).astype(np.float32)
    if signed:
        x = np.where(x < 0, -1, 1).astype(np.float32)
    layer = Conv2D(5, 6, kernel, padding="same", scale=scale, rng=3)
    layer.sign_input = signed
    assert layer._dx_by_flipped_kernel()
    z = layer.forward(x, training=True)
    dz = rng.standard_normal(z.shape).astype(np.float32)
    dx = layer.backward(dz)
    alpha = 1.0 if not scale else layer.alpha()
    expect_dx, _ = R.sign_conv2d_backward((dz * alpha).astype(np.float64), x.astype(np.float64), _kernel4(layer),
                                          1, "same", 1)
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert_close(dx, expect_dx, np.float32)


@given(layer_cases)
def test_conv2d_layer_evaluation_is_exact_and_backend_independent(case):
    m, h, w, c, f, k, s, padding, pad_value, _, scale, seed = case
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (m, h, w, c), dtype=np.uint8)
    x = rng.random((m, h, w, c)).astype(np.float32)
    results = []
    for backend in ("fastbin", "reference"):
        layer = Conv2D(c, f, k, stride=s, padding=padding, pad_value=pad_value, scale=scale, rng=seed,
                       backend=backend)
        results.append((layer.forward(pixels), layer.forward(x)))
    (zu_fast, zf_fast), (zu_ref, zf_ref) = results
    np.testing.assert_array_equal(zu_fast, zu_ref)  # uint8: exact integers, then the same affine
    np.testing.assert_array_equal(zf_fast, zf_ref)  # float: the exact product, rounded once
    # raw pixels mean x / 255, one-padding with pad_value = 1.0 meaning 255
    dot = R.sign_conv2d(pixels, _kernel4(layer), s, padding, 255 * pad_value)
    alpha = layer.alpha() if scale else 1.0
    assert_close(zu_fast, dot / 255 * alpha + layer.params["b"], np.float32)


@pytest.mark.parametrize("backend", ["fastbin", "reference"])
@pytest.mark.parametrize("padding, scale", [("same", False), ("valid", True)])
def test_conv2d_evaluation_on_signs_packed_equals_the_exact_product(rng, backend, padding, scale):
    x = np.where(rng.random((3, 6, 5, 4)) < 0.5, -1, 1).astype(np.float32)
    layer = Conv2D(4, 5, 3, stride=(1, 2), padding=padding, scale=scale, rng=7, backend=backend)
    layer.params["b"][...] = rng.standard_normal(5)
    exact = layer.forward(x)  # Dense's evaluation path: dense_sign_matmul
    layer.sign_input = True
    np.testing.assert_array_equal(layer.forward(x), exact)


def test_conv2d_gradients_match_finite_differences(rng):
    # float weights (binary=False): the layer is linear, so central differences are exact up to rounding
    x = rng.standard_normal((2, 5, 4, 2))
    layer = Conv2D(2, 3, (3, 2), stride=2, padding="same", binary=False, rng=1, dtype=np.float64,
                   backend="reference")
    g = rng.standard_normal(layer.forward(x).shape)
    layer.forward(x, training=True)
    dx = layer.backward(g)
    eps = 1e-6
    for idx in [(0, 0, 0, 0), (1, 4, 3, 1), (0, 2, 1, 1), (1, 0, 3, 0)]:
        e = np.zeros_like(x)
        e[idx] = eps
        num = np.sum(g * (layer.forward(x + e) - layer.forward(x - e))) / (2 * eps)
        assert dx[idx] == pytest.approx(num, rel=1e-6, abs=1e-9)
    w = layer.params["W"]
    for idx in [(0, 0), (5, 2), (11, 1)]:
        saved = w[idx]
        w[idx] = saved + eps
        up = np.sum(g * layer.forward(x))
        w[idx] = saved - eps
        down = np.sum(g * layer.forward(x))
        w[idx] = saved
        assert layer.grads["W"][idx] == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-9)


def test_batch_norm_on_images_is_per_channel(rng):
    z = rng.standard_normal((3, 4, 5, 6)).astype(np.float32) * 3 + 1
    for backend in ("fastbin", "reference"):
        bn = BatchNorm(6)
        bn.backend = get_backend(backend)
        y = bn.forward(z, training=True)
        flat = BatchNorm(6, dtype=np.float32)
        flat.backend = bn.backend
        y2 = flat.forward(z.reshape(-1, 6), training=True)
        np.testing.assert_array_equal(y, y2.reshape(z.shape))
        assert_close(y.mean(axis=(0, 1, 2)), np.zeros(6), np.float32)
        dy = rng.standard_normal(z.shape).astype(np.float32)
        np.testing.assert_array_equal(bn.backward(dy), flat.backward(dy.reshape(-1, 6)).reshape(z.shape))


def _tiny_model(backend, activation="sign", scale=False):
    return bnn_conv((8, 8, 1), 4, channels=(3, 4, 4, 5), activation=activation, scale=scale, seed=3,
                    backend=backend)


# (With alpha and sign activations the two backends round the scaled sums differently, (x @ sign(W)) *
# alpha against x @ (sign(W) * alpha), and a sign downstream may flip: the scaled layer is compared
# within tolerance by the layer test above, and here with hardtanh.)
@pytest.mark.parametrize("activation, scale", [("sign", False), ("hardtanh", True), ("hardtanh", False)])
def test_conv_model_gradients_fastbin_equal_reference(rng, activation, scale):
    x = rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    y = rng.integers(0, 4, 6)
    models = [_tiny_model(be, activation, scale) for be in ("fastbin", "reference")]
    losses = [mod.compute_gradients(x, y) for mod in models]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (_, _, g_fast, _), (_, _, g_ref, _) in zip(models[0].groups, models[1].groups, strict=True):
        assert_close(g_fast, g_ref, np.float32)
    assert any(np.any(g) for _, _, g, _ in models[0].groups)


def test_conv_model_images_and_rows_are_the_same_input(rng):
    model = _tiny_model("fastbin")
    x = rng.integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    np.testing.assert_array_equal(model.forward(x), model.forward(x.reshape(5, 64)))
    np.testing.assert_array_equal(model.forward(x), model.forward(x / np.float32(255)))
    assert model.predict(x).shape == (5,)


def test_conv_model_evaluation_in_chunks_equals_one_pass(rng):
    model = _tiny_model("fastbin")
    x = rng.integers(0, 256, (7, 8, 8, 1), dtype=np.uint8)
    whole = model.forward(x)
    model.eval_chunk = 3
    np.testing.assert_array_equal(model.forward(x), whole)


def test_conv_model_sign_input_follows_pooling_and_flatten():
    model = _tiny_model("fastbin")
    flags = [layer.sign_input for layer in model.layers if isinstance(layer, Dense)]
    assert flags == [False, True, True, True, True]  # first conv sees pixels; the dense sees flattened signs
    table = model.summary()
    assert "conv2d" in table and "maxpool2d" in table
    costs = {row["name"]: row for row in layer_costs(model)}
    assert costs["0:conv2d"]["macs"] == 8 * 8 * 9 * 3  # every output pixel of the real-valued first layer
    assert costs["3:conv2d"]["binary_ops"] == 8 * 8 * 9 * 3 * 4


def test_conv_model_learns_a_tiny_task(rng):
    # bright upper half vs bright lower half: a few SGD steps separate them
    m = 64
    x = np.zeros((m, 8, 8, 1), np.float32)
    y = rng.integers(0, 2, m)
    x[y == 0, :4] = 1
    x[y == 1, 4:] = 1
    x += rng.random(x.shape).astype(np.float32) * 0.2
    model = bnn_conv((8, 8, 1), 2, channels=(4, 4, 8, 8), seed=0)
    before = model.evaluate(x, y)[1]
    history = fit(model, Adam(1e-2), x, y, epochs=15, batch_size=16, progress=False)
    assert history.step[-1] == 60
    assert model.evaluate(x, y)[1] >= 0.95 > before or model.evaluate(x, y)[1] == 1.0


@pytest.mark.parametrize("call, error, match", [
    (lambda: Conv2D(0, 4), ValueError, "in_channels"),
    (lambda: Conv2D(1, 4, padding="full"), ValueError, "padding"),
    (lambda: Conv2D(1, 4, pad_value=0.5), ValueError, "pad_value"),
    (lambda: Conv2D(1, 4, stride=0), ValueError, "stride"),
    (lambda: Conv2D(1, 4, kernel_size=(3, 3, 3)), ValueError, "kernel_size"),
    (lambda: MaxPool2D(0), ValueError, "pool_size"),
    (lambda: sequential([Conv2D(2, 4)], (8, 8, 1)), ValueError, r"layers\[0\] \(conv2d\).*\(h, w, 2\)"),
    (lambda: sequential([Conv2D(1, 4), Dense(10, 2)], (8, 8, 1)), ValueError, r"layers\[1\].*Flatten"),
    (lambda: sequential([Conv2D(1, 4), MaxPool2D(9)], (8, 8, 1)), ValueError, r"layers\[1\] \(maxpool2d\)"),
    (lambda: sequential([Conv2D(1, 4), BatchNorm(3)], (8, 8, 1)), ValueError, r"layers\[1\] \(batchnorm\)"),
    (lambda: sequential([Conv2D(1, 4)], (8, 8, 1)), ValueError, "n_classes"),
    (lambda: sequential([Flatten(), "dense"], (8, 8, 1)), TypeError, r"layers\[1\]"),
    (lambda: sequential([Flatten(), Dense(64, 2)], (8, 8)), ValueError, "input_shape"),
    (lambda: sequential([], (8, 8, 1)), ValueError, "empty"),
])
def test_conv_arguments_are_checked(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_conv_model_input_is_checked(rng):
    model = _tiny_model("fastbin")
    with pytest.raises(ValueError, match=r"images of shape \(m, 8, 8, 1\)"):
        model.forward(np.zeros((2, 8, 7, 1), np.float32))
    with pytest.raises(ValueError, match=r"\(m, 64\)"):
        model.forward(np.zeros((2, 63), np.float32))
    with pytest.raises(ValueError, match="finite"):
        model.forward(np.full((2, 8, 8, 1), np.nan, np.float32))


def test_sequential_builds_other_stacks(rng):
    # stride-2 "valid" convolution, hardtanh, no pooling, SGD: trains through fit on images
    layers = [Conv2D(2, 4, 3, stride=2, padding="valid", rng=0), BatchNorm(4), HardTanh(),
              Conv2D(4, 4, 1, rng=1), BatchNorm(4), Sign(), Flatten(), Dense(3 * 3 * 4, 3, binary=True, rng=2)]
    model = sequential(layers, (7, 7, 2))
    x = rng.random((10, 7, 7, 2)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    history = fit(model, SGD(0.1), x, y, epochs=2, batch_size=5, progress=False)
    assert np.isfinite(history.train_loss).all() and model.forward(x).shape == (10, 3)


# ---------------------------------------------------------------------------
# Model files
# ---------------------------------------------------------------------------
def _trained_tiny(rng, scale=False, backend="fastbin"):
    model = _tiny_model(backend, scale=scale)
    x = rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
    y = rng.integers(0, 4, 16)
    fit(model, Adam(1e-2), x, y, epochs=3, batch_size=8, progress=False)
    return model, x


@pytest.mark.parametrize("scale, latent", [(False, False), (True, False), (True, True)])
def test_conv_model_file_round_trip_predicts_the_same_bits(rng, tmp_path, scale, latent):
    model, x = _trained_tiny(rng, scale)
    path = tmp_path / "conv.fbm"
    model.save(path, latent=latent)
    loaded = load(path)
    assert isinstance(loaded, ConvModel) and loaded.input_shape == (8, 8, 1)
    assert [layer.config() for layer in loaded.layers] == [layer.config() for layer in model.layers]
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    np.testing.assert_array_equal(loaded.forward(x / np.float32(255)), model.forward(x / np.float32(255)))
    if not latent:  # 1 bit per binary weight
        _, meta, arrays = model.file_contents()
        assert meta["kind"] == "conv" and "0.W_bits" in arrays and "0.W" not in arrays
    loaded_ref = load(path, backend="reference")
    np.testing.assert_array_equal(loaded_ref.forward(x), model.forward(x))


def test_conv_model_file_is_checked_before_building(rng, tmp_path):
    model, _ = _trained_tiny(rng)
    _, meta, arrays = model.file_contents()

    def broken(edit, name="bad.fbm"):
        m = json.loads(json.dumps(meta))
        edit(m)
        path = tmp_path / name
        save_arrays(path, m, arrays)
        return path

    cases = [
        (lambda m: m["layers"][0].update(in_channels=2), r"layers\[0\] \(conv2d\) expects images of 2 channels"),
        (lambda m: m["layers"][0].update(kernel_size=[3]), r"kernel_size must be a list of 2 ints"),
        (lambda m: m["layers"][0].update(padding="full"), r"padding must be 'valid' or 'same'"),
        (lambda m: m["layers"][4].update(pool_size=[9, 9]), r"layers\[4\] \(maxpool2d\)"),
        (lambda m: m["layers"][14].update(kind="softmax"), r"layers\[14\]\.kind must be one of"),
        (lambda m: m["config"].update(input_shape=[8, 8]), r"input_shape must be \[height, width, channels\]"),
        (lambda m: m["config"].update(input_shape=[2**13, 2**13, 1]), "values per image"),
        (lambda m: m["config"].update(extra=1), "config has the wrong keys"),
        (lambda m: m["layers"][0].update(filters=4), r"layers\[1\] \(batchnorm of 3\)"),
        (lambda m: m.update(layers=m["layers"][:14]), "must end in a dense layer"),
    ]
    for edit, match in cases:
        with pytest.raises(ModelFileError, match=match):
            load(broken(edit))
    # the arrays must be those the layer list implies
    m = json.loads(json.dumps(meta))
    m["layers"][3].update(filters=5, in_channels=3)
    m["layers"][5].update(n=5)
    m["layers"][7].update(in_channels=5)
    path = tmp_path / "arrays.fbm"
    save_arrays(path, m, arrays)
    with pytest.raises(ModelFileError, match="must be uint64 packed_signs of shape"):
        load(path)


# ---------------------------------------------------------------------------
# Folding: integer thresholds per channel, pooling on the bits
# ---------------------------------------------------------------------------
def _flip_some_gammas(model, rng):
    """Negative batch-norm scales on some channels (the order reverses: OR pooling) and
    shifted means, so that thresholds land inside the range of the products."""
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            g = layer.params["gamma"]
            g[rng.random(g.shape) < 0.5] *= -1
            layer.buffers["running_mean"] += rng.standard_normal(layer.n).astype(np.float32)


@pytest.mark.parametrize("backend", ["fastbin", "reference"])
@pytest.mark.parametrize("scale", [False, True])
def test_folded_conv_model_equals_the_unfolded_bit_for_bit(rng, backend, scale):
    model, x = _trained_tiny(rng, scale, backend)
    _flip_some_gammas(model, rng)
    folded = model.to_inference()
    xs = np.concatenate([x, rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)])
    np.testing.assert_array_equal(folded.forward(xs), model.forward(xs))
    xf = xs / np.float32(255)
    np.testing.assert_array_equal(folded.forward(xf), model.forward(xf))
    np.testing.assert_array_equal(folded.predict(xs.reshape(len(xs), -1)), model.predict(xs))
    folded.chunk = 7  # in chunks: the same logits
    np.testing.assert_array_equal(folded.forward(xs), model.forward(xs))
    for stage in folded.stages:  # the packed binary_matmul instead of BLAS on ±1: the same integers
        stage.signs = None
    folded.dense_signs = None
    np.testing.assert_array_equal(folded.forward(xs), model.forward(xs))
    # a flip happened somewhere, and the thresholds are not all trivial
    assert any(stage.thresholds["packed"][1].any() for stage in folded.stages[1:])


def test_folded_conv_pools_the_bits_with_and_or_or(rng):
    # one stage with pooling before a batch norm of mixed signs, then pooling after the sign
    layers = [Conv2D(1, 6, 3, padding="same", pad_value=0, rng=1), MaxPool2D(2), BatchNorm(6), Sign(),
              Conv2D(6, 6, 3, padding="same", rng=2), MaxPool2D(2), BatchNorm(6), Sign(), MaxPool2D(2, 1),
              Flatten(), Dense(6, 3, binary=True, bias=True, rng=3)]
    model = sequential(layers, (8, 8, 1))
    x = rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    model.compute_gradients(x, rng.integers(0, 3, 64))  # batch statistics
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            layer.buffers["running_mean"][...] = layer._xhat.mean(axis=0) * 0  # centred
            layer.params["gamma"][...] = np.array([1, -1, 2, -2, 0.5, -0.5], np.float32)
    folded = model.to_inference()
    np.testing.assert_array_equal(folded.forward(x), model.forward(x))
    assert [s.thresholds["packed" if k else "uint8"][1].tolist() for k, s in enumerate(folded.stages)] == [
        [False, True] * 3, [False, True] * 3]


def test_folding_refuses_other_patterns_clearly():
    model = sequential([Conv2D(1, 2, 3, rng=0), BatchNorm(2), HardTanh(), Flatten(), Dense(72, 2, rng=1)], (8, 8, 1))
    with pytest.raises(NotImplementedError, match=r"layers\[0\] \(conv2d\) is not followed by"):
        model.to_inference()


@pytest.mark.parametrize("latent", [False, True])
def test_runtime_loads_conv_files_folded(rng, tmp_path, latent):
    model, x = _trained_tiny(rng, scale=True)
    _flip_some_gammas(model, rng)
    model.save(tmp_path / "conv.fbm", latent=latent)
    folded = runtime.load(tmp_path / "conv.fbm")
    unfolded = load(tmp_path / "conv.fbm")
    np.testing.assert_array_equal(folded.forward(x), unfolded.forward(x))
    np.testing.assert_array_equal(folded.forward(x / np.float32(255)), unfolded.forward(x / np.float32(255)))


def test_conv_model_file_activation_bound_is_checked(rng, tmp_path):
    model, _ = _trained_tiny(rng, scale=True)
    _, meta, arrays = model.file_contents()
    arrays["3.alpha"] = np.full_like(arrays["3.alpha"], 1e25)  # finite, non-negative, absurd
    save_arrays(tmp_path / "huge.fbm", meta, arrays)
    with pytest.raises(ModelFileError, match=r"layer 3 \(conv2d\) can reach activations of magnitude"):
        load(tmp_path / "huge.fbm")


def test_an_empty_batch_gives_an_empty_result():
    """As every other model and engine: logits (0, n_classes), classes (0,), trainable and folded."""
    from fastbin.nn.model import bnn_conv

    model = bnn_conv(channels=(4, 4, 8, 8), seed=0)
    folded = model.to_inference()
    for x in (np.zeros((0, 784), np.float32), np.zeros((0, 28, 28, 1), np.uint8)):
        assert model.forward(x).shape == (0, 10) and model.predict(x).shape == (0,)
        assert folded.logits(x).shape == (0, 10) and folded.predict(x).shape == (0,)
        assert folded.predict(x).dtype == np.int64
