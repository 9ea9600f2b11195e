"""fastbin.linear_softmax_cross_entropy (float W and packed sign(W)) against
fastbin.reference, finite differences, bad input, and the raw kernels from a
user's @njit code."""
import os

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerance import assert_close

import fastbin
from fastbin import PackedSigns, reference
from fastbin.kernels import (
    linear_softmax_ce_labels,
    linear_softmax_ce_packed_labels,
    linear_softmax_ce_packed_targets,
    linear_softmax_ce_parallel,
    linear_softmax_ce_targets,
)

NOJIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
DTYPES = [np.float32, np.float64]


def make_labels(rng, kind, m, c, dtype):
    if kind == "int":
        return rng.integers(0, c, size=m)
    if kind == "onehot":
        t = np.zeros((m, c), dtype=dtype)
        t[np.arange(m), rng.integers(0, c, size=m)] = 1
        return t
    return rng.random((m, c)).astype(dtype)


def make_problem(rng, m, k, c, dtype, kind):
    x = rng.standard_normal((m, k)).astype(dtype)
    w = (rng.standard_normal((k, c)) / np.sqrt(k)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    return x, w, b, make_labels(rng, kind, m, c, dtype)


def check(x, w, b, labels):
    loss, dw, db = fastbin.linear_softmax_cross_entropy(x, w, b, labels)
    ref_loss, ref_dw, ref_db = reference.linear_softmax_cross_entropy(x, w, b, labels)
    k = x.shape[1]
    c = b.shape[0]
    assert isinstance(loss, float)
    assert dw.shape == (k, c) and dw.dtype == x.dtype
    assert db.shape == (c,) and db.dtype == x.dtype
    assert_close(loss, ref_loss, dtype=x.dtype)
    assert_close(dw, ref_dw)
    assert_close(db, ref_db)
    return loss, dw, db


def grid():
    for m in (1, 3, 17, 128, 1000):
        for k in (1, 63, 64, 65, 784):
            for c in (1, 2, 10):
                # plain-Python kernels (NUMBA_DISABLE_JIT) are ~1e5x slower
                if NOJIT and m * k * c > 20000:
                    continue
                yield m, k, c


@pytest.mark.parametrize("m,k,c", list(grid()))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("packed", [False, True], ids=["float_w", "packed_w"])
def test_matches_reference(rng, m, k, c, dtype, packed):
    for kind in ("int", "onehot", "soft"):
        x, w, b, labels = make_problem(rng, m, k, c, dtype, kind)
        if packed:
            w = fastbin.pack_weights(w)
        check(x, w, b, labels)


@pytest.mark.parametrize("m", [1, 7, 8, 17, 128, 1000])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("packed", [False, True], ids=["float_w", "packed_w"])
@pytest.mark.parametrize("kind", ["int", "soft"])
def test_threaded_matches_serial_and_reference(rng, m, dtype, packed, kind):
    k, c = (65, 3) if NOJIT else (200, 10)
    x, w, b, labels = make_problem(rng, m, k, c, dtype, kind)
    if packed:
        w = fastbin.pack_weights(w)
    serial = fastbin.linear_softmax_cross_entropy(x, w, b, labels, threads=False)
    threaded = fastbin.linear_softmax_cross_entropy(x, w, b, labels, threads=True)
    expected = reference.linear_softmax_cross_entropy(x, w, b, labels)
    for s_, t_, e_ in zip(serial, threaded, expected):
        assert_close(t_, s_, dtype=dtype)
        assert_close(t_, e_, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["int", "soft"])
def test_packed_equals_float_signs(rng, dtype, kind):
    """Packed w means sign(W): same result as the float kernel given the +-1
    matrix (including W = 0 and -0.0, which are +1)."""
    x, w, b, labels = make_problem(rng, 9, 70, 3, dtype, kind)
    w[::7] = 0
    w[1::11] = -0.0
    signs = np.where(w < 0, -1, 1).astype(dtype)
    packed_result = fastbin.linear_softmax_cross_entropy(x, fastbin.pack_weights(w), b, labels)
    float_result = fastbin.linear_softmax_cross_entropy(x, signs, b, labels)
    for got, expected in zip(packed_result, float_result):
        assert_close(got, expected, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zeros(dtype):
    x = np.zeros((5, 3), dtype=dtype)
    w = np.zeros((3, 4), dtype=dtype)
    b = np.zeros(4, dtype=dtype)
    labels = np.array([0, 1, 2, 3, 0])
    loss, dw, db = check(x, w, b, labels)
    assert loss == pytest.approx(np.log(4), rel=1e-6)
    assert not dw.any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_logits(rng, dtype):
    x, w, b, labels = make_problem(rng, 6, 5, 3, dtype, "int")
    b = np.array([1e4, -1e4, 0.0], dtype=dtype)
    loss, dw, db = check(x, w, b, labels)
    assert np.isfinite(loss) and np.isfinite(dw).all() and np.isfinite(db).all()


def test_nan_in_x_propagates_to_loss(rng):
    x, w, b, labels = make_problem(rng, 6, 5, 3, np.float64, "int")
    x[2, 1] = np.nan
    loss, dw, db = fastbin.linear_softmax_cross_entropy(x, w, b, labels)
    assert np.isnan(loss) and np.isnan(db).all()


def test_non_contiguous_inputs_are_copied(rng):
    x, w, b, labels = make_problem(rng, 7, 10, 3, np.float64, "int")
    check(np.asfortranarray(x), np.asfortranarray(w), b, labels)
    xx = np.repeat(x, 2, axis=1)[:, ::2]
    check(xx, w, b, labels)


@pytest.mark.parametrize("m,k,c", [(1, 1, 1), (3, 5, 2), (6, 4, 3)])
@pytest.mark.parametrize("kind", ["int", "soft"])
def test_gradients_match_finite_differences(rng, m, k, c, kind):
    x, w, b, labels = make_problem(rng, m, k, c, np.float64, kind)
    _, dw, db = fastbin.linear_softmax_cross_entropy(x, w, b, labels)
    h = 1e-6

    def loss_at(w_, b_):
        return fastbin.linear_softmax_cross_entropy(x, w_, b_, labels)[0]

    num_dw = np.empty_like(w)
    for idx in np.ndindex(*w.shape):
        plus, minus = w.copy(), w.copy()
        plus[idx] += h
        minus[idx] -= h
        num_dw[idx] = (loss_at(plus, b) - loss_at(minus, b)) / (2 * h)
    num_db = np.empty_like(b)
    for j in range(c):
        plus, minus = b.copy(), b.copy()
        plus[j] += h
        minus[j] -= h
        num_db[j] = (loss_at(w, plus) - loss_at(w, minus)) / (2 * h)
    np.testing.assert_allclose(dw, num_dw, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, num_db, rtol=1e-6, atol=1e-8)


@given(
    m=st.integers(1, 20),
    k=st.integers(1, 130),
    c=st.integers(1, 11),
    kind=st.sampled_from(["int", "onehot", "soft"]),
    dtype=st.sampled_from(DTYPES),
    packed=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_matches_reference(m, k, c, kind, dtype, packed, seed):
    rng = np.random.default_rng(seed)
    x, w, b, labels = make_problem(rng, m, k, c, dtype, kind)
    check(x, fastbin.pack_weights(w) if packed else w, b, labels)


def test_parallel_kernel_callable_from_user_njit(rng):
    @numba.njit
    def user_step(x, w, b, labels):
        dw = np.empty(w.shape)
        db = np.empty(w.shape[1])
        no_bits = np.empty((0, 1), dtype=np.uint64)
        no_targets = np.empty((1, 1))
        loss = linear_softmax_ce_parallel(x, w, no_bits, b, labels, no_targets, False, dw, db, 2)
        return loss, dw, db

    x, w, b, labels = make_problem(rng, 40, 30, 3, np.float64, "int")
    for got, expected in zip(user_step(x, w, b, labels), reference.linear_softmax_cross_entropy(x, w, b, labels)):
        assert_close(got, expected)


def test_kernels_callable_from_user_njit(rng):
    """The raw kernels compose inside a user's @njit training step."""

    @numba.njit
    def user_step(x, w, w_bits, b, labels, targets):
        k, c = w.shape
        dw = np.empty((4, k, c))
        db = np.empty((4, c))
        losses = np.empty(4)
        losses[0] = linear_softmax_ce_labels(x, w, b, labels, dw[0], db[0])
        losses[1] = linear_softmax_ce_targets(x, w, b, targets, dw[1], db[1])
        losses[2] = linear_softmax_ce_packed_labels(x, w_bits, b, labels, dw[2], db[2])
        losses[3] = linear_softmax_ce_packed_targets(x, w_bits, b, targets, dw[3], db[3])
        return losses, dw, db

    x, w, b, labels = make_problem(rng, 9, 70, 3, np.float64, "int")
    packed = fastbin.pack_weights(w)
    losses, dw, db = user_step(x, w, packed.bits, b, labels, np.eye(3)[labels])
    for i, weights in enumerate([w, w, packed, packed]):
        ref_loss, ref_dw, ref_db = reference.linear_softmax_cross_entropy(x, weights, b, labels)
        assert_close(losses[i], ref_loss)
        assert_close(dw[i], ref_dw)
        assert_close(db[i], ref_db)


# -- bad input ---------------------------------------------------------------
X = np.zeros((3, 5))
W = np.zeros((5, 2))
B = np.zeros(2)
LABELS = np.array([0, 1, 1])


def _bad_padding():
    packed = fastbin.pack_weights(W)
    bits = packed.bits.copy()
    bits[0, 0] |= np.uint64(1) << np.uint64(63)
    return PackedSigns(bits, 5)


@pytest.mark.parametrize(
    "x, w, b, labels, error, match",
    [
        (X.tolist(), W, B, LABELS, TypeError, "x must be a numpy.ndarray"),
        (X.astype(np.int32), W, B, LABELS, TypeError, "x must have dtype"),
        (np.zeros(5), W, B, LABELS, ValueError, "x must be 2-D"),
        (X, W.astype(np.float32), B, LABELS, TypeError, "dtypes must match"),
        (X, np.zeros((4, 2)), B, LABELS, ValueError, r"w must have shape \(5, c\)"),
        (X, W.tolist(), B, LABELS, TypeError, "w must be a numpy.ndarray"),
        (X, np.zeros(5), B, LABELS, ValueError, "w must be 2-D"),
        (X, fastbin.pack_weights(np.zeros((6, 2))), B, LABELS, ValueError, "k=6 bits"),
        (X, _bad_padding(), B, LABELS, ValueError, "padding"),
        (X, W, np.zeros(3), LABELS, ValueError, r"b must have shape \(2,\)"),
        (X, W, np.zeros((1, 2)), LABELS, ValueError, "b must be 1-D"),
        (X, W, B.astype(np.float32), LABELS, TypeError, "dtypes must match"),
        (X, W, B, np.array([0, 1, 2]), ValueError, r"class indices in \[0, 2\)"),
        (X, W, B, np.array([0, 1]), ValueError, r"shape \(3,\)"),
        (X, W, B, np.zeros((3, 2), dtype=np.float32), TypeError, "targets must have dtype float64"),
        (X, W, B, np.full((3, 2), -1.0), ValueError, "non-negative"),
        (X, W, B, np.full((3, 2), np.nan), ValueError, "non-negative"),
        (X, W, B, np.zeros((3, 3)), ValueError, r"targets must have shape \(3, 2\)"),
    ],
)
def test_bad_input(x, w, b, labels, error, match):
    with pytest.raises(error, match=match):
        fastbin.linear_softmax_cross_entropy(x, w, b, labels)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", ["_logits_8x2", "_logits_4x3"])
def test_both_forward_blocks_match_numpy(rng, block, dtype):
    """The forward block of each vector register count (only one runs in the
    kernels on a given CPU): a block of ROWS rows against W.T, every c."""
    from fastbin.kernels import linear_ce

    kernel = getattr(linear_ce, block)
    for k in (1, 63, 64, 65, 784):
        x = rng.standard_normal((linear_ce.ROWS, k)).astype(dtype)
        for c in (1, 2, 3, 4, 5, 10, 11):
            w_t = rng.standard_normal((c, k)).astype(dtype)
            z = np.full((linear_ce.ROWS, c), np.nan, dtype)
            kernel(x, w_t, dtype(0), z)
            expected = x.astype(np.float64) @ w_t.T.astype(np.float64)
            scale = float((np.abs(x) @ np.abs(w_t).T).max())
            assert_close(z, expected, dtype=dtype, scale=scale, err_msg=f"{block} k={k} c={c}")
