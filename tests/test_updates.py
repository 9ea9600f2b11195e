"""fastbin.sgd_update / fastbin.adam_update against fastbin.reference and
autograd's Adam, bad input, and the raw kernels from a user's @njit code."""
import math

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerance import assert_close

import fastbin
from fastbin import reference
from fastbin.kernels import adam_update_flat, sgd_update_flat

DTYPES = [np.float32, np.float64]


def normal(rng, shape, dtype, scale=1.0):
    """A standard-normal ndarray (also for shape (), where NumPy gives a scalar)."""
    return np.asarray(rng.standard_normal(shape) * scale, dtype=dtype)
SHAPES = [(), (1,), (7,), (784, 10), (3, 4, 5), (0,), (2, 0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("clip", [None, 1.0, 0.25])
def test_sgd_matches_reference(rng, dtype, shape, clip):
    param = normal(rng, shape, dtype, 2.0)
    grad = normal(rng, shape, dtype)
    expected = reference.sgd_update(param.copy(), grad, 0.3, clip=clip)
    result = fastbin.sgd_update(param, grad, 0.3, clip=clip)
    assert result is param
    assert_close(param, expected)
    if clip is not None and param.size:
        assert np.abs(param).max() <= clip


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_grad_may_be_param_and_lr_zero(rng, dtype):
    param = rng.standard_normal(10).astype(dtype)
    expected = reference.sgd_update(param.copy(), param.copy(), 0.5)
    fastbin.sgd_update(param, param, 0.5)
    assert_close(param, expected)
    before = param.copy()
    fastbin.sgd_update(param, np.ones_like(param), 0)
    np.testing.assert_array_equal(param, before)


@pytest.mark.parametrize("shift", [1, -1])
def test_grad_partially_overlapping_param_acts_like_numpy(shift):
    """grad a shifted view of param's memory: same result as NumPy, which
    reads all of grad before writing param."""
    for update in ("sgd", "adam"):
        base = np.arange(12, dtype=np.float64)
        expected_base = base.copy()
        param, grad = (base[1:], base[:-1]) if shift == 1 else (base[:-1], base[1:])
        e_param, e_grad = (
            (expected_base[1:], expected_base[:-1]) if shift == 1 else (expected_base[:-1], expected_base[1:])
        )
        if update == "sgd":
            fastbin.sgd_update(param, grad, 0.5)
            reference.sgd_update(e_param, e_grad.copy(), 0.5)
        else:
            fastbin.adam_update(param, grad, np.zeros(11), np.zeros(11), 0, lr=0.5)
            reference.adam_update(e_param, e_grad.copy(), np.zeros(11), np.zeros(11), 0, lr=0.5)
        assert_close(base, expected_base)


def test_sgd_clip_keeps_nan():
    param = np.array([np.nan, 5.0, -5.0, 0.5])
    fastbin.sgd_update(param, np.zeros(4), 0.1, clip=1)
    assert np.isnan(param[0])
    np.testing.assert_array_equal(param[1:], [1.0, -1.0, 0.5])


def run_adam(update, param, grads, **kw):
    m = np.zeros_like(param)
    v = np.zeros_like(param)
    for step, g in enumerate(grads):
        update(param, g, m, v, step, **kw)
    return param, m, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "kw", [{}, dict(lr=0.01, clip=1.0), dict(lr=0.1, b1=0.5, b2=0.9, eps=1e-4), dict(b1=0.0, b2=0.0)]
)
def test_adam_matches_reference(rng, dtype, shape, kw):
    param = normal(rng, shape, dtype)
    grads = [normal(rng, shape, dtype) for _ in range(6)]
    grads[3] = np.zeros(shape, dtype=dtype)  # a zero gradient step
    expected = run_adam(reference.adam_update, param.copy(), grads, **kw)
    got = run_adam(fastbin.adam_update, param, grads, **kw)
    assert got[0] is param
    for a, e in zip(got, expected):
        assert_close(a, e)


def test_adam_matches_autograd(rng):
    """Same trajectory as autograd.misc.optimizers.adam (float64)."""
    optimizers = pytest.importorskip("autograd.misc.optimizers")
    x0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) for _ in range(20)]
    kw = dict(step_size=0.05, b1=0.8, b2=0.99, eps=1e-7)
    expected = optimizers.adam(lambda x, i: grads[i], x0.copy(), num_iters=len(grads), **kw)
    param = x0.copy()
    run_adam(fastbin.adam_update, param, grads, lr=0.05, b1=0.8, b2=0.99, eps=1e-7)
    assert_close(param, expected)
    # and with autograd's defaults
    expected = optimizers.adam(lambda x, i: grads[i], x0.copy(), num_iters=len(grads))
    param = x0.copy()
    run_adam(fastbin.adam_update, param, grads)
    assert_close(param, expected)


def test_adam_matches_reference_adam_step(rng):
    """reference.adam_step is the notebook's function; adam_update is its in-place form."""
    x = rng.standard_normal(8)
    m = np.zeros(8)
    v = np.zeros(8)
    param, fm, fv = x.copy(), m.copy(), v.copy()
    for i in range(5):
        g = rng.standard_normal(8)
        x, m, v = reference.adam_step(x, g, m, v, i, step_size=0.01)
        fastbin.adam_update(param, g, fm, fv, i, lr=0.01)
    assert_close(param, x)
    assert_close(fm, m)
    assert_close(fv, v)


@given(
    shape=st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple),
    dtype=st.sampled_from(DTYPES),
    lr=st.floats(0, 2),
    clip=st.sampled_from([None, 0.5, 1.0, 10.0]),
    steps=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_updates_match_reference(shape, dtype, lr, clip, steps, seed):
    rng = np.random.default_rng(seed)
    param = normal(rng, shape, dtype)
    grads = [normal(rng, shape, dtype) for _ in range(steps)]
    p1, p2 = param.copy(), param.copy()
    for g in grads:
        fastbin.sgd_update(p1, g, lr, clip=clip)
        reference.sgd_update(p2, g, lr, clip=clip)
    assert_close(p1, p2)
    got = run_adam(fastbin.adam_update, param.copy(), grads, lr=lr, clip=clip)
    expected = run_adam(reference.adam_update, param.copy(), grads, lr=lr, clip=clip)
    for a, e in zip(got, expected):
        assert_close(a, e)


def test_kernels_callable_from_user_njit(rng):
    @numba.njit
    def user_train(param, grads, m, v):
        for step in range(grads.shape[0]):
            adam_update_flat(param, grads[step], m, v, step, 0.01, 0.9, 0.999, 1e-8, np.inf)
            sgd_update_flat(param, grads[step], 0.1, 1.0)

    param = rng.standard_normal(12)
    grads = rng.standard_normal((3, 12))
    expected = param.copy()
    m, v = np.zeros(12), np.zeros(12)
    em, ev = np.zeros(12), np.zeros(12)
    for step in range(3):
        reference.adam_update(expected, grads[step], em, ev, step, lr=0.01)
        reference.sgd_update(expected, grads[step], 0.1, clip=1.0)
    user_train(param, grads, m, v)
    assert_close(param, expected)


# -- bad input ---------------------------------------------------------------
def _read_only():
    a = np.zeros(4)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize(
    "param, grad, lr, clip, error, match",
    [
        ([0.0, 1.0], np.zeros(2), 0.1, None, TypeError, "param must be a numpy.ndarray"),
        (np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64), 0.1, None, TypeError, "param must have dtype"),
        (np.zeros((4, 4))[:, ::2], np.zeros((4, 2)), 0.1, None, ValueError, "C-contiguous"),
        (np.zeros((4, 4)).T, np.zeros((4, 4)), 0.1, None, ValueError, "C-contiguous"),
        (_read_only(), np.zeros(4), 0.1, None, ValueError, "writeable"),
        (np.zeros(4), np.zeros(5), 0.1, None, ValueError, "grad must have param's shape"),
        (np.zeros(4), np.zeros((4, 1)), 0.1, None, ValueError, "grad must have param's shape"),
        (np.zeros(4), np.zeros(4, dtype=np.float32), 0.1, None, TypeError, "dtypes must match"),
        (np.zeros(4), [0.0] * 4, 0.1, None, TypeError, "grad must be a numpy.ndarray"),
        (np.zeros(4), np.zeros(4), -0.1, None, ValueError, "lr must be a finite number >= 0"),
        (np.zeros(4), np.zeros(4), math.nan, None, ValueError, "lr must be a finite number"),
        (np.zeros(4), np.zeros(4), math.inf, None, ValueError, "lr must be a finite number"),
        (np.zeros(4), np.zeros(4), "0.1", None, TypeError, "lr must be a real number"),
        (np.zeros(4), np.zeros(4), True, None, TypeError, "lr must be a real number"),
        (np.zeros(4), np.zeros(4), 0.1, 0.0, ValueError, "clip must be a finite number > 0"),
        (np.zeros(4), np.zeros(4), 0.1, -1, ValueError, "clip must be a finite number > 0"),
        (np.zeros(4), np.zeros(4), 0.1, math.nan, ValueError, "clip must be a finite number > 0"),
    ],
)
def test_sgd_bad_input(param, grad, lr, clip, error, match):
    with pytest.raises(error, match=match):
        fastbin.sgd_update(param, grad, lr, clip=clip)


def test_sgd_non_contiguous_grad_is_fine(rng):
    param = rng.standard_normal((3, 4))
    grad = np.asfortranarray(rng.standard_normal((3, 4)))
    expected = reference.sgd_update(param.copy(), grad, 0.1)
    fastbin.sgd_update(param, grad, 0.1)
    assert_close(param, expected)


def _adam_args(**over):
    args = dict(param=np.zeros(4), grad=np.ones(4), m=np.zeros(4), v=np.zeros(4), step=0)
    args.update(over)
    return args


SHARED = np.zeros(4)


@pytest.mark.parametrize(
    "over, error, match",
    [
        (dict(m=np.zeros(5)), ValueError, "m must have param's shape"),
        (dict(v=np.zeros(4, dtype=np.float32)), TypeError, "dtypes must match"),
        (dict(m=np.zeros(8)[::2]), ValueError, "m is updated in place and must be C-contiguous"),
        (dict(v=_read_only()), ValueError, "v is updated in place and must be writeable"),
        (dict(m=[0.0] * 4), TypeError, "m must be a numpy.ndarray"),
        (dict(m=SHARED, v=SHARED), ValueError, "m and v must not overlap"),
        (dict(param=SHARED, m=SHARED), ValueError, "param and m must not overlap"),
        (dict(grad=SHARED, v=SHARED), ValueError, "grad and v must not overlap"),
        (dict(step=-1), ValueError, "step must be >= 0"),
        (dict(step=1.0), TypeError, "step must be an int"),
        (dict(step=True), TypeError, "step must be an int"),
        (dict(step=1e30), TypeError, "step must be an int"),
        (dict(step=10**30), ValueError, r"step must be < 2\*\*63 - 1"),
        (dict(step=2**63 - 1), ValueError, r"step must be < 2\*\*63 - 1"),
        (dict(step=np.uint64(2**64 - 1)), ValueError, r"step must be < 2\*\*63 - 1"),
        (dict(lr=math.inf), ValueError, "lr must be a finite number >= 0"),
        (dict(eps=math.nan), ValueError, "eps must be a finite number >= 0"),
        (dict(b1=math.nan), ValueError, "b1 must be a finite number"),
        (dict(clip=math.inf), ValueError, "clip must be a finite number > 0"),
        (dict(lr=-1e-3), ValueError, "lr must be a finite number >= 0"),
        (dict(eps=-1e-8), ValueError, "eps must be a finite number >= 0"),
        (dict(b1=1.0), ValueError, r"b1 must be in \[0, 1\)"),
        (dict(b2=1.5), ValueError, r"b2 must be in \[0, 1\)"),
        (dict(b1=-0.1), ValueError, "b1 must be a finite number >= 0"),
        (dict(b2=math.nan), ValueError, "b2 must be a finite number"),
        (dict(clip=0), ValueError, "clip must be a finite number > 0"),
    ],
)
def test_adam_bad_input(over, error, match):
    with pytest.raises(error, match=match):
        fastbin.adam_update(**_adam_args(**over))


def test_adam_accepts_numpy_scalars(rng):
    param = rng.standard_normal(5)
    grad = rng.standard_normal(5)
    param[0] = 5.0
    lr = float(np.float32(0.01))
    expected = reference.adam_update(param.copy(), grad, np.zeros(5), np.zeros(5), 2, lr=lr, clip=3.0)
    fastbin.adam_update(param, grad, np.zeros(5), np.zeros(5), np.int64(2), lr=np.float32(0.01), clip=np.float64(3))
    assert_close(param, expected, scale=1.0)


def test_adam_largest_step_matches_reference(rng):
    """The largest accepted step (bias corrections 1) still runs in the kernel."""
    param, grad = rng.standard_normal(5), rng.standard_normal(5)
    expected = reference.adam_update(param.copy(), grad, np.zeros(5), np.zeros(5), 2**63 - 2)
    fastbin.adam_update(param, grad, np.zeros(5), np.zeros(5), 2**63 - 2)
    assert_close(param, expected)
