"""Binary convolutional networks (issue 25): the NumPy specification of the
conv pieces (``fastbin.reference``: im2col with one-padding, the binary conv,
max pooling) against direct loops and finite differences, then the layers of
``fastbin.nn.conv`` on the fastbin backend against the reference backend.

Shapes are small on purpose (the machine is shared)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastbin import reference as R


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
