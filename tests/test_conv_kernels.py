"""The jitted conv pieces (``fastbin.ops.conv`` on ``fastbin.kernels.conv``) against the
NumPy specification (``fastbin.reference``): im2col, col2im, the packed patches of ±1
images, max pooling forward and backward, over shapes, kernels, strides, paddings and
channel counts (the packed patches across word boundaries). Integers and the data
movement compare exactly; so do the float sums of col2im and the pooling gradient, which
add each pixel's terms in the reference's order. Serial and threaded kernels both run.

Shapes are small on purpose (the machine is shared; ``make test-nojit`` runs them too)."""
import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastbin import _config, ops
from fastbin import reference as R

DTYPES = [np.float32, np.float64, np.uint8, np.int16]

geometry = st.tuples(
    st.integers(1, 3),  # m
    st.integers(1, 7),  # h
    st.integers(1, 7),  # w
    st.sampled_from([1, 2, 3, 5]),  # channels
    st.sampled_from([1, 2, 3, (3, 2), (1, 3)]),  # kernel
    st.sampled_from([1, 2, 3, (1, 2)]),  # stride
    st.sampled_from(["valid", "same"]),
    st.integers(0, 2**32 - 1),
)


def _fits(h, w, kernel, padding):
    kh, kw = R.int_pair("kernel_size", kernel)
    return padding == "same" or (h >= kh and w >= kw)


@contextlib.contextmanager
def kernels(threads):
    """Both kernel forms: the threshold of ``use_threads("conv_patches", ...)`` at 0 or never
    (a context, not a fixture: hypothesis runs many examples per test call)."""
    table = _config.TABLE["parallel_min_work"]
    saved = table["conv_patches"]
    table["conv_patches"] = 0 if threads else 1 << 62
    try:
        yield
    finally:
        table["conv_patches"] = saved


both = pytest.mark.parametrize("threads", [False, True], ids=["serial", "threaded"])


def _images(rng, shape, dtype):
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -300), min(info.max, 300) + 1, shape).astype(dtype)


@both
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=geometry)
def test_im2col_equals_the_reference(threads, dtype, case):
    m, h, w, c, k, s, padding, seed = case
    if not _fits(h, w, k, padding):
        return
    x = _images(np.random.default_rng(seed), (m, h, w, c), dtype)
    for pad in (0, 1, 7):
        with kernels(threads):
            got = ops.im2col(x, k, s, padding, pad)
        expect = R.im2col(x, k, s, padding, pad)
        assert got.dtype == expect.dtype and got.shape == expect.shape
        np.testing.assert_array_equal(got, expect)


@both
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(case=geometry)
def test_col2im_equals_the_reference_bit_for_bit(threads, dtype, case):
    m, h, w, c, k, s, padding, seed = case
    if not _fits(h, w, k, padding):
        return
    rng = np.random.default_rng(seed)
    shape = (m, h, w, c)
    rows = R.im2col(np.zeros(shape, dtype), k, s, padding).shape
    cols = rng.standard_normal(rows).astype(dtype)
    with kernels(threads):
        got = ops.col2im(cols, shape, k, s, padding)
    expect = R.col2im(cols, shape, k, s, padding)
    assert got.dtype == expect.dtype and got.shape == expect.shape
    np.testing.assert_array_equal(got, expect)  # each pixel's terms summed in the same order


@both
@pytest.mark.parametrize("c", [1, 3, 31, 32, 33, 63, 64, 65, 130])
@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, "same"), (3, 2, "same"), ((2, 3), (1, 2), "valid"),
                                                     (1, 1, "valid"), (3, 1, "valid")])
def test_pack_patches_equals_packing_the_reference_patches(threads, rng, c, kernel, stride, padding):
    x = np.where(rng.random((2, 5, 6, c)) < 0.5, -1, 1).astype(np.float32)
    with kernels(threads):
        got = ops.pack_patches(x, kernel, stride, padding)
    expect = R.pack_signs(R.im2col(x, kernel, stride, padding, 1))  # one-padding: +1, bit 0
    assert got.n_bits == expect.n_bits
    np.testing.assert_array_equal(got.bits, expect.bits)
    np.testing.assert_array_equal(got.bits, R.pack_patches(x, kernel, stride, padding).bits)
    # the packed product on the gathered patches is the exact integer conv
    w = rng.standard_normal((got.n_bits, 4)).astype(np.float32)
    dot = ops.binary_matmul(got, ops.pack_weights(w))
    kh, kw = R.int_pair("kernel_size", kernel)
    expect_dot = R.sign_conv2d(x.astype(np.float64), w.reshape(kh, kw, c, 4), stride, padding, 1)
    np.testing.assert_array_equal(dot, expect_dot.reshape(-1, 4))


@given(case=geometry)
def test_pack_patches_of_real_and_integer_images(case):
    m, h, w, c, k, s, padding, seed = case
    if not _fits(h, w, k, padding):
        return
    rng = np.random.default_rng(seed)
    for x in (rng.standard_normal((m, h, w, c)), rng.integers(-3, 3, (m, h, w, c)).astype(np.int8)):
        x[..., 0] = 0  # sign(0) = +1
        np.testing.assert_array_equal(ops.pack_patches(x, k, s, padding).bits, R.pack_patches(x, k, s, padding).bits)


pool_cases = st.tuples(
    st.integers(1, 3),  # m
    st.integers(2, 8),  # h
    st.integers(2, 8),  # w
    st.integers(1, 5),  # c
    st.sampled_from([1, 2, 3, (2, 3)]),  # pool
    st.sampled_from([None, 1, 2, (1, 2)]),  # stride (None: the pool size; 1: overlapping windows)
    st.integers(0, 2**32 - 1),
)


@both
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_cases)
def test_max_pool_and_its_gradient_equal_the_reference(threads, dtype, case):
    m, h, w, c, pool, stride, seed = case
    ph, pw = R.int_pair("pool_size", pool)
    if h < ph or w < pw:
        return
    rng = np.random.default_rng(seed)
    x = _images(rng, (m, h, w, c), dtype)
    if np.dtype(dtype).kind == "f":
        x = np.round(x * 2) / 2  # ties inside windows: the gradient goes to the first maximum
    else:
        x = (x % 3).astype(dtype)
    with kernels(threads):
        y = ops.max_pool2d(x, pool, stride)
    np.testing.assert_array_equal(y, R.max_pool2d(x, pool, stride))
    assert y.dtype == x.dtype
    for gdtype in (np.float32, np.float64):
        dy = rng.standard_normal(y.shape).astype(gdtype)
        with kernels(threads):
            dx = ops.max_pool2d_backward(dy, x, pool, stride)
        assert dx.dtype == np.dtype(gdtype)
        np.testing.assert_array_equal(dx, R.max_pool2d_backward(dy, x, pool, stride))


def test_max_pool_propagates_nan_as_numpy():
    x = np.zeros((1, 2, 4, 3), np.float32)
    x[0, 0, 0, 0] = np.nan  # window 0, channel 0: NaN
    x[0, 1, 3, 0] = np.nan  # window 1, channel 0: NaN last
    x[0, :, :2, 1] = -0.0  # window 0, channel 1: -0.0 then 0.0 mixed
    x[0, 1, 1, 1] = 0.0
    x[0, 0, 2:, 2] = -np.inf
    y = ops.max_pool2d(x, 2)
    expect = R.max_pool2d(x, 2)
    np.testing.assert_array_equal(y, expect)  # -0.0 == 0.0: which zero wins depends on NumPy's loop
    dy = np.arange(1, 7, dtype=np.float32).reshape(y.shape)
    np.testing.assert_array_equal(ops.max_pool2d_backward(dy, x, 2), R.max_pool2d_backward(dy, x, 2))


@pytest.mark.parametrize("call, error, match", [
    (lambda: ops.im2col(np.zeros((2, 3, 3)), 3), ValueError, "x must be non-empty images"),
    (lambda: ops.im2col([[[[1.0]]]], 1), TypeError, "x must be a numpy.ndarray"),
    (lambda: ops.im2col(np.zeros((1, 3, 3, 1), np.complex64), 1), TypeError, "x must have"),
    (lambda: ops.im2col(np.zeros((1, 2, 2, 1)), 3), ValueError, "does not fit"),
    (lambda: ops.im2col(np.zeros((1, 3, 3, 1)), 0), ValueError, "kernel_size"),
    (lambda: ops.im2col(np.zeros((1, 3, 3, 1)), 3, padding="full"), ValueError, "padding"),
    (lambda: ops.im2col(np.zeros((1, 3, 3, 1), np.uint8), 3, padding="same", pad_value=-1), ValueError,
     "pad_value"),
    (lambda: ops.im2col(np.zeros((1, 3, 3, 1), np.uint8), 3, padding="same", pad_value=0.5), ValueError,
     "pad_value"),
    (lambda: ops.col2im(np.zeros((9, 9)), (1, 3, 3, 2), 3, padding="same"), ValueError, "cols must have shape"),
    (lambda: ops.col2im(np.zeros((9, 9), np.int32), (1, 3, 3, 1), 3, padding="same"), TypeError, "cols must have"),
    (lambda: ops.col2im(np.zeros((9, 9)), (1, 3, 3), 3), ValueError, "input_shape"),
    (lambda: ops.pack_patches(np.zeros((1, 3, 3, 1), np.uint8), 3), TypeError, "signed integer"),
    (lambda: ops.pack_patches(np.full((1, 3, 3, 1), np.nan), 3), ValueError, "NaN"),
    (lambda: ops.max_pool2d(np.zeros((1, 3, 3, 1)), 4), ValueError, "does not fit"),
    (lambda: ops.max_pool2d_backward(np.zeros((1, 2, 2, 1)), np.zeros((1, 4, 4, 1)), 3), ValueError,
     "dy must have shape"),
    (lambda: ops.max_pool2d_backward(np.zeros((1, 2, 2, 1), np.uint8), np.zeros((1, 4, 4, 1)), 2), TypeError,
     "dy must have"),
])
def test_arguments_are_checked_before_any_kernel(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_strided_and_byte_swapped_images_are_taken_as_their_values(rng):
    x = rng.standard_normal((2, 6, 8, 3)).astype(np.float32)
    view = x[:, ::2, 1::2, :]
    swapped = x.astype(x.dtype.newbyteorder(">"))
    np.testing.assert_array_equal(ops.im2col(view, 3, 1, "same"), R.im2col(view, 3, 1, "same"))
    np.testing.assert_array_equal(ops.max_pool2d(swapped, 2), R.max_pool2d(x, 2))

