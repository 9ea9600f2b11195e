"""fastbin.softmax_cross_entropy against fastbin.reference, finite differences,
the NaN policy, bad input, and the raw kernels from a user's @njit code."""
import math
import os

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerance import assert_close

import fastbin
from fastbin import reference
from fastbin.kernels import exp_nonpositive, softmax_ce_labels, softmax_ce_targets

NOJIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
DTYPES = [np.float32, np.float64]


def make_labels(rng, kind, m, c, dtype):
    if kind == "int":
        return rng.integers(0, c, size=m)
    if kind == "int32":
        return rng.integers(0, c, size=m).astype(np.int32)
    if kind == "onehot":
        t = np.zeros((m, c), dtype=dtype)
        t[np.arange(m), rng.integers(0, c, size=m)] = 1
        return t
    if kind == "soft":  # any non-negative weights, rows not normalised
        return rng.random((m, c)).astype(dtype) * 2
    raise AssertionError(kind)


def check_against_reference(logits, labels):
    loss, dlogits = fastbin.softmax_cross_entropy(logits, labels)
    ref_loss, ref_d = reference.softmax_cross_entropy(logits, labels)
    assert isinstance(loss, float)
    assert dlogits.dtype == logits.dtype and dlogits.shape == logits.shape
    assert_close(loss, ref_loss, dtype=logits.dtype)
    assert_close(dlogits, ref_d)
    return loss, dlogits


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 3, 17, 128, 1000])
@pytest.mark.parametrize("c", [1, 2, 10])
@pytest.mark.parametrize("kind", ["int", "int32", "onehot", "soft"])
def test_matches_reference(rng, dtype, m, c, kind):
    logits = (rng.standard_normal((m, c)) * 3).astype(dtype)
    check_against_reference(logits, make_labels(rng, kind, m, c, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zeros_and_ties(dtype):
    m, c = 5, 4
    logits = np.zeros((m, c), dtype=dtype)
    labels = np.arange(m) % c
    loss, d = check_against_reference(logits, labels)
    assert loss == pytest.approx(math.log(c), rel=1e-6)
    # two tied maxima
    logits[:, :2] = 3
    check_against_reference(logits, labels)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pattern", ["big", "small", "mixed", "one_hot_big"])
@pytest.mark.parametrize("kind", ["int", "soft"])
def test_huge_logits_finite(rng, dtype, pattern, kind):
    m, c = 9, 10
    if pattern == "big":
        logits = np.full((m, c), 1e4) + rng.standard_normal((m, c))
    elif pattern == "small":
        logits = np.full((m, c), -1e4) + rng.standard_normal((m, c))
    elif pattern == "mixed":
        logits = rng.choice([1e4, -1e4, 0.0], size=(m, c))
    else:
        logits = np.zeros((m, c))
        logits[np.arange(m), np.arange(m) % c] = 1e4
    logits = logits.astype(dtype)
    loss, d = check_against_reference(logits, make_labels(rng, kind, m, c, dtype))
    assert np.isfinite(loss) and np.isfinite(d).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_zero_target_row_contributes_nothing(rng, dtype):
    logits = rng.standard_normal((4, 3)).astype(dtype)
    t = rng.random((4, 3)).astype(dtype)
    t[1] = 0
    loss, d = check_against_reference(logits, t)
    assert not d[1].any()


def test_loss_of_confident_correct_prediction_is_zero():
    logits = np.array([[1e4, -1e4, 0.0]])
    loss, d = fastbin.softmax_cross_entropy(logits, np.array([0]))
    assert loss == 0.0
    assert_close(d, np.zeros((1, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_argument_and_in_place(rng, dtype):
    logits = rng.standard_normal((7, 3)).astype(dtype)
    labels = rng.integers(0, 3, 7)
    ref_loss, ref_d = reference.softmax_cross_entropy(logits, labels)
    out = np.full_like(logits, np.nan)
    loss, d = fastbin.softmax_cross_entropy(logits, labels, out=out)
    assert d is out
    assert_close(out, ref_d)
    # the gradient may overwrite the logits
    loss2, d2 = fastbin.softmax_cross_entropy(logits, labels, out=logits)
    assert d2 is logits and loss2 == loss
    assert_close(logits, ref_d)
    # targets too
    logits = rng.standard_normal((7, 3)).astype(dtype)
    t = make_labels(rng, "soft", 7, 3, dtype)
    ref_loss, ref_d = reference.softmax_cross_entropy(logits, t)
    loss, d = fastbin.softmax_cross_entropy(logits, t, out=logits)
    assert_close(loss, ref_loss, dtype=dtype)
    assert_close(d, ref_d)


def test_non_contiguous_input_is_copied(rng):
    base = rng.standard_normal((10, 8))
    logits = base[:, ::2]
    labels = rng.integers(0, 4, 10)
    check_against_reference(logits, labels)
    check_against_reference(np.asfortranarray(base), rng.integers(0, 8, 10))


@pytest.mark.parametrize("m,c", [(1, 1), (2, 3), (4, 2)])
@pytest.mark.parametrize("kind", ["int", "soft"])
def test_gradient_matches_finite_differences(rng, m, c, kind):
    logits = rng.standard_normal((m, c))
    labels = make_labels(rng, kind, m, c, np.float64)
    _, d = fastbin.softmax_cross_entropy(logits, labels)
    h = 1e-6
    numeric = np.empty_like(logits)
    for i in range(m):
        for j in range(c):
            plus = logits.copy()
            plus[i, j] += h
            minus = logits.copy()
            minus[i, j] -= h
            numeric[i, j] = (
                fastbin.softmax_cross_entropy(plus, labels)[0] - fastbin.softmax_cross_entropy(minus, labels)[0]
            ) / (2 * h)
    np.testing.assert_allclose(d, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("kind", ["int", "soft"])
def test_nan_policy(rng, dtype, bad, kind):
    """A NaN (or +inf) logit: that row's gradient is NaN, the loss is NaN, the
    other rows are unaffected (NumPy's behaviour)."""
    m, c = 4, 5
    logits = rng.standard_normal((m, c)).astype(dtype)
    labels = make_labels(rng, kind, m, c, dtype)
    good = fastbin.softmax_cross_entropy(logits, labels)[1]
    logits[2, 3] = bad
    with np.errstate(invalid="ignore", over="ignore"):
        loss, d = fastbin.softmax_cross_entropy(logits, labels)
        ref_loss, ref_d = reference.softmax_cross_entropy(logits, labels)
    assert math.isnan(loss) and math.isnan(ref_loss)
    assert np.isnan(d[2]).all() and np.isnan(ref_d[2]).all()
    rows = [0, 1, 3]
    assert_close(d[rows], good[rows])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["int", "onehot"])
def test_minus_inf_logit_is_probability_zero(dtype, kind):
    """-inf logits get probability 0 and add nothing to the loss where the
    target is 0 (the reference's ``t * log_softmax`` gives 0 * -inf = NaN)."""
    logits = np.array([[0.0, -np.inf, 1.0], [2.0, -np.inf, -np.inf]], dtype=dtype)
    labels = np.array([2, 0]) if kind == "int" else np.array([[0, 0, 1], [1, 0, 0]], dtype=dtype)
    loss, d = fastbin.softmax_cross_entropy(logits, labels)
    finite = np.array([[0.0, -1e30, 1.0], [2.0, -1e30, -1e30]])
    exp_loss, exp_d = reference.softmax_cross_entropy(finite, np.array([2, 0]))
    assert_close(loss, exp_loss, dtype=dtype)
    assert_close(d, exp_d.astype(dtype))
    assert d[0, 1] == 0 and d[1, 1] == 0


@given(
    m=st.integers(1, 40),
    c=st.integers(1, 12),
    scale=st.sampled_from([0.0, 1e-3, 1.0, 30.0, 1e4]),
    kind=st.sampled_from(["int", "onehot", "soft"]),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_matches_reference(m, c, scale, kind, dtype, seed):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((m, c)) * scale).astype(dtype)
    labels = make_labels(rng, kind, m, c, dtype)
    loss, d = check_against_reference(logits, labels)
    # each gradient row sums to zero (rowsum(p) * rowsum(t) - rowsum(t))
    assert_close(d.sum(axis=1), np.zeros(m), dtype=dtype, scale=max(1.0, float(np.abs(labels).max())))


@pytest.mark.skipif(NOJIT, reason="without JIT exp_nonpositive is NumPy's exp")
def test_exp_nonpositive_accuracy():
    """The vectorisable exp stays within 2 ulp of float64 exp over its range;
    arguments below the smallest normal result give 0; NaN and -inf pass."""
    rng = np.random.default_rng(7)

    @numba.njit
    def apply(a, out):
        for i in range(a.shape[0]):
            out[i] = exp_nonpositive(a[i])

    for dtype, lo in ((np.float32, -87.0), (np.float64, -708.0)):
        a = np.concatenate([-rng.exponential(3.0, 20000), rng.uniform(lo, 0, 20000), [0.0, -0.0, -1e-30]])
        a = a[a > lo].astype(dtype)
        out = np.empty_like(a)
        apply(a, out)
        exact = np.exp(a.astype(np.longdouble))
        ulps = np.abs(out - exact) / np.spacing(exact.astype(dtype))
        assert ulps.max() <= 2, (dtype, ulps.max())
        special = np.array([-np.inf, np.nan, lo - 1, -1e4], dtype=dtype)
        out = np.empty_like(special)
        apply(special, out)
        assert out[0] == 0 and np.isnan(out[1]) and out[2] == 0 and out[3] == 0


def test_kernels_callable_from_user_njit(rng):
    @numba.njit
    def user_step(logits, labels, targets):
        d1 = np.empty_like(logits)
        d2 = np.empty_like(logits)
        return softmax_ce_labels(logits, labels, d1), softmax_ce_targets(logits, targets, d2), d1, d2

    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    onehot = np.eye(4)[labels]
    l1, l2, d1, d2 = user_step(logits, labels, onehot)
    ref_loss, ref_d = reference.softmax_cross_entropy(logits, labels)
    assert_close(l1, ref_loss)
    assert_close(l2, ref_loss)
    assert_close(d1, ref_d)
    assert_close(d2, ref_d)


# -- bad input ---------------------------------------------------------------
GOOD = np.zeros((3, 4))
GOOD_LABELS = np.array([0, 1, 3])


@pytest.mark.parametrize(
    "logits, labels, error, match",
    [
        ([[0.0, 1.0]], np.array([0]), TypeError, "logits must be a numpy.ndarray"),
        (np.zeros((3, 4), dtype=np.int64), GOOD_LABELS, TypeError, "logits must have dtype"),
        (np.zeros((3, 4), dtype=np.float16), GOOD_LABELS, TypeError, "logits must have dtype"),
        (np.zeros(4), GOOD_LABELS, ValueError, "logits must be 2-D"),
        (np.zeros((0, 4)), np.zeros(0, dtype=int), ValueError, "must not be empty"),
        (np.zeros((3, 0)), GOOD_LABELS, ValueError, "must not be empty"),
        (GOOD, [0, 1, 3], TypeError, "labels must be a numpy.ndarray"),
        (GOOD, np.array([0.0, 1.0, 3.0]), TypeError, "integer class indices"),
        (GOOD, np.array([0, 1]), ValueError, r"shape \(3,\)"),
        (GOOD, np.array([0, 1, 4]), ValueError, r"class indices in \[0, 4\)"),
        (GOOD, np.array([0, -1, 3]), ValueError, r"class indices in \[0, 4\)"),
        (GOOD, np.array([0, 1, 4], dtype=np.int32), ValueError, r"class indices in \[0, 4\)"),
        (GOOD, np.zeros((3, 4), dtype=np.float32), TypeError, "targets must have dtype float64"),
        (GOOD, np.zeros((3, 5)), ValueError, r"targets must have shape \(3, 4\)"),
        (GOOD, np.full((3, 4), -0.5), ValueError, "finite and non-negative"),
        (GOOD, np.full((3, 4), np.nan), ValueError, "finite and non-negative"),
        (GOOD, np.full((3, 4), np.inf), ValueError, "finite and non-negative"),
        (GOOD, np.zeros((3, 4, 1)), ValueError, "class indices"),
    ],
)
def test_bad_input(logits, labels, error, match):
    with pytest.raises(error, match=match):
        fastbin.softmax_cross_entropy(logits, labels)


@pytest.mark.parametrize(
    "out, error, match",
    [
        (np.zeros((3, 4), dtype=np.float32), TypeError, "out must have dtype float64"),
        (np.zeros((4, 3)), ValueError, r"out must have shape \(3, 4\)"),
        (np.zeros((4, 3)).T, ValueError, "C-contiguous"),
        ([[0.0] * 4] * 3, TypeError, "out must be a numpy.ndarray"),
    ],
)
def test_bad_out(out, error, match):
    with pytest.raises(error, match=match):
        fastbin.softmax_cross_entropy(GOOD, GOOD_LABELS, out=out)


def test_read_only_out_and_overlapping_targets():
    out = np.zeros((3, 4))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        fastbin.softmax_cross_entropy(GOOD, GOOD_LABELS, out=out)
    targets = np.ones((3, 4))
    with pytest.raises(ValueError, match="overlap"):
        fastbin.softmax_cross_entropy(GOOD.copy(), targets, out=targets)
    base = np.zeros(16)
    with pytest.raises(ValueError, match="out must be logits itself or not overlap it"):
        fastbin.softmax_cross_entropy(base[:12].reshape(3, 4), GOOD_LABELS, out=base[4:].reshape(3, 4))
