"""Training-mode batch norm, alone and fused with the sign activation and its straight-through
estimator (``fastbin.ops.batch_norm_*`` against ``fastbin.reference.batch_norm_*``): the same
values within the float tolerance over many shapes, the same running statistics, the signs and
masks of the reference wherever the reference's value is not within rounding of the switch
points, and the errors of bad arguments. Then the model: a fully binary MLP trains through fused
stages, with the gradients of the reference backend's layer-by-layer passes."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerance import assert_close

from fastbin import ops
from fastbin import reference as R
from fastbin.nn import Adam, mlp
from fastbin.nn.layers import BatchNormSign

DTYPES = [np.float32, np.float64]


def _case(rng, m, n, dtype):
    z = (rng.standard_normal((m, n)) * rng.uniform(0.1, 10, n) + rng.uniform(-3, 3, n)).astype(dtype)
    gamma = rng.uniform(0.2, 2.0, n).astype(dtype) * rng.choice([-1, 1], n).astype(dtype)
    beta = rng.uniform(-1.5, 1.5, n).astype(dtype)
    running = (rng.standard_normal(n).astype(dtype), rng.uniform(0.5, 2, n).astype(dtype))
    return z, gamma, beta, running


def _both(name, z, gamma, beta, running, momentum=0.9, eps=1e-5):
    """``name`` on ops and on the reference, each with its own copy of the running statistics."""
    results = []
    for impl in (ops, R):
        stats = tuple(r.copy() for r in running)
        results.append((getattr(impl, name)(z, gamma, beta, *stats, momentum, eps), stats))
    return results


def _settled(reference_y, dtype):
    """Where the reference's ``y`` is farther than the tolerance from the switch points of
    sign (0) and of the estimator's mask (±1): there fast and reference must agree."""
    margin = 1e-4 if dtype == np.float32 else 1e-10
    return (np.abs(reference_y) > margin) & (np.abs(np.abs(reference_y) - 1) > margin)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n", [(1, 1), (2, 3), (7, 64), (256, 200), (300, 17), (64, 1000)])
def test_batch_norm_train_matches_reference(m, n, dtype, rng):
    z, gamma, beta, running = _case(rng, m, n, dtype)
    (fast, fast_stats), (ref, ref_stats) = _both("batch_norm_train", z, gamma, beta, running)
    for got, want in zip(fast, ref, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert_close(got, want, dtype=dtype, scale=max(1.0, float(np.abs(want).max())))
    for got, want in zip(fast_stats, ref_stats, strict=True):
        assert_close(got, want, dtype=dtype, scale=max(1.0, float(np.abs(want).max())))
    assert not np.array_equal(fast_stats[0], running[0])  # updated in place


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n", [(1, 5), (3, 64), (256, 200), (129, 100)])
def test_batch_norm_sign_matches_reference(m, n, dtype, rng):
    z, gamma, beta, running = _case(rng, m, n, dtype)
    (fast, fast_stats), (ref, ref_stats) = _both("batch_norm_sign_train", z, gamma, beta, running)
    h, mask, xhat, inv_std = fast
    y_ref, _, _ = R.batch_norm_train(z, gamma, beta, *(r.copy() for r in running), 0.9, 1e-5)
    assert h.dtype == dtype and mask.dtype == np.bool_ and set(np.unique(h)) <= {-1, 1}
    settled = _settled(y_ref, dtype)
    assert settled.mean() > 0.99
    np.testing.assert_array_equal(h[settled], ref[0][settled])
    np.testing.assert_array_equal(mask[settled], ref[1][settled])
    assert mask.any() and not mask.all()  # both sides of the estimator's window occur
    assert_close(xhat, ref[2], dtype=dtype, scale=max(1.0, float(np.abs(ref[2]).max())))
    assert_close(inv_std, ref[3], dtype=dtype, scale=float(np.abs(ref[3]).max()))
    for got, want in zip(fast_stats, ref_stats, strict=True):
        assert_close(got, want, dtype=dtype, scale=max(1.0, float(np.abs(want).max())))


def test_sign_of_zero_is_plus_one_and_the_window_is_closed():
    # y exactly 0, ±1 and just outside: beta sets y where xhat is 0 (a constant column)
    z = np.zeros((4, 5), np.float32)
    gamma = np.ones(5, np.float32)
    beta = np.array([0.0, -0.0, 1.0, -1.0, np.nextafter(np.float32(1), np.float32(2))], np.float32)
    for impl in (ops, R):
        h, mask, _, _ = impl.batch_norm_sign_train(z, gamma, beta, np.zeros(5, np.float32), np.ones(5, np.float32),
                                                   0.9, 1e-5)
        np.testing.assert_array_equal(h[0], [1, 1, 1, -1, 1])
        np.testing.assert_array_equal(mask[0], [True, True, True, True, False])


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n", [(1, 3), (2, 1), (9, 64), (256, 200), (64, 513)])
def test_batch_norm_backward_matches_reference(m, n, dtype, masked, rng):
    z, gamma, beta, running = _case(rng, m, n, dtype)
    _, xhat, inv_std = R.batch_norm_train(z, gamma, beta, *running, 0.9, 1e-5)
    dy = rng.standard_normal((m, n)).astype(dtype)
    mask = rng.random((m, n)) < 0.6 if masked else None
    got = ops.batch_norm_backward(dy, xhat, inv_std, gamma, mask)
    want = R.batch_norm_backward(dy, xhat, inv_std, gamma, mask)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert_close(g, w, dtype=dtype, scale=max(1.0, float(np.abs(w).max())))
    if masked and m > 1:  # the mask matters: without it the gradients differ (one row: xhat = 0, all zero)
        assert not np.allclose(ops.batch_norm_backward(dy, xhat, inv_std, gamma)[1], got[1])


@given(m=st.integers(1, 80), n=st.integers(1, 90), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(DTYPES))
def test_batch_norm_passes_match_reference_hypothesis(m, n, seed, dtype):
    rng = np.random.default_rng(seed)
    z, gamma, beta, running = _case(rng, m, n, dtype)
    (fast, _), (ref, _) = _both("batch_norm_train", z, gamma, beta, running)
    assert_close(fast[0], ref[0], dtype=dtype, scale=max(1.0, float(np.abs(ref[0]).max())))
    dy = rng.standard_normal((m, n)).astype(dtype)
    mask = rng.random((m, n)) < 0.5
    for g, w in zip(ops.batch_norm_backward(dy, ref[1], ref[2], gamma, mask),
                    R.batch_norm_backward(dy, ref[1], ref[2], gamma, mask), strict=True):
        assert_close(g, w, dtype=dtype, scale=max(1.0, float(np.abs(w).max())))


def _bad_calls():
    z = np.zeros((4, 3), np.float32)
    v = np.ones(3, np.float32)
    read_only = np.ones(3, np.float32)
    read_only.flags.writeable = False
    good = dict(z=z, gamma=v, beta=v, running_mean=v.copy(), running_var=v.copy(), momentum=0.9, eps=1e-5)
    yield dict(good, z=z.astype(np.int32)), TypeError, "z must have dtype"
    yield dict(good, z=np.zeros(3, np.float32)), ValueError, "z must be 2-D"
    yield dict(good, z=np.zeros((0, 3), np.float32)), ValueError, "must not be empty"
    yield dict(good, gamma=np.ones(4, np.float32)), ValueError, r"gamma must have shape \(3,\)"
    yield dict(good, beta=np.ones(3)), TypeError, "beta must have dtype float32"
    yield dict(good, running_var=read_only), ValueError, "running_var is updated in place and must be writeable"
    yield dict(good, running_mean=[0.0, 0.0, 0.0]), TypeError, "running_mean must be a numpy.ndarray"
    yield dict(good, momentum=1.5), ValueError, r"momentum must be a real number in \[0, 1\]"
    yield dict(good, momentum=True), ValueError, "momentum"
    yield dict(good, eps=0.0), ValueError, "eps must be a finite number > 0"
    yield dict(good, eps=float("nan")), ValueError, "eps must be a finite number > 0"


@pytest.mark.parametrize("name", ["batch_norm_train", "batch_norm_sign_train"])
@pytest.mark.parametrize("index", range(len(list(_bad_calls()))))
def test_bad_forward_arguments_raise_before_the_kernel(name, index):
    kwargs, error, match = list(_bad_calls())[index]
    with pytest.raises(error, match=match):
        getattr(ops, name)(**kwargs)


def test_bad_backward_arguments():
    dy = np.zeros((4, 3), np.float32)
    v = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"dy must have shape \(4, 3\)"):
        ops.batch_norm_backward(dy[:2], dy, v, v)
    with pytest.raises(TypeError, match="inv_std must have dtype float32"):
        ops.batch_norm_backward(dy, dy, v.astype(np.float64), v)
    with pytest.raises(TypeError, match="mask must have dtype bool"):
        ops.batch_norm_backward(dy, dy, v, v, np.ones((4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 3\)"):
        ops.batch_norm_backward(dy, dy, v, v, np.ones((3, 4), bool))
    # a non-contiguous dy is read as it is meant (copied), not wrongly strided
    wide = np.arange(24, dtype=np.float32).reshape(4, 6)
    np.testing.assert_array_equal(ops.batch_norm_backward(wide[:, ::2], dy, v, v)[2], wide[:, ::2].sum(axis=0))


# The model: fused training stages -------------------------------------------------------------


def _binary_mlp(backend, seed=4):
    return mlp([40, 33, 17, 5], binary_weights=True, binary_activations=True, seed=seed, backend=backend)


def test_fully_binary_mlp_trains_through_fused_stages():
    model = _binary_mlp("fastbin")
    kinds = [type(s).__name__ for s in model.train_stages]
    assert kinds == ["Dense", "BatchNormSign", "Dense", "BatchNormSign", "Dense", "BatchNorm"]
    assert all(isinstance(s, BatchNormSign) for s in model.train_stages[1:4:2])
    # the tanh MLP has nothing to fuse
    assert model.train_stages[0] is model.layers[0]
    assert len(mlp([40, 8, 5], batch_norm=True).train_stages) == 4


@pytest.mark.parametrize("m", [2, 7, 256])  # (one row: batch norm's gradients are all zero)
def test_fused_gradients_match_the_reference_layer_by_layer(m, rng):
    """One step's loss and every gradient, fastbin (fused stages, packed and lookup products)
    against the reference backend from the same weights: within the float tolerance (no sign
    of the batch lies within rounding of zero for these seeds, else the step would differ)."""
    x = rng.random((m, 40), dtype=np.float32)
    labels = rng.integers(0, 5, m)
    models = [_binary_mlp(b) for b in ("fastbin", "reference")]
    losses = [model.compute_gradients(x, labels) for model in models]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    for (_, _, g_fast, _), (_, _, g_ref, _) in zip(models[0].groups, models[1].groups, strict=True):
        assert np.abs(g_ref).max() > 0
        assert_close(g_fast, g_ref, dtype=np.float32, scale=max(1.0, float(np.abs(g_ref).max())))
    for a, b in zip(models[0].layers, models[1].layers, strict=True):
        for name in a.buffers:
            assert_close(a.buffers[name], b.buffers[name], dtype=np.float32, scale=1.0)


def test_fused_training_follows_the_reference_trajectory(rng):
    x = rng.random((128, 40), dtype=np.float32)
    labels = rng.integers(0, 5, 128)
    models = [_binary_mlp(b, seed=7) for b in ("fastbin", "reference")]
    opts = [Adam(1e-3), Adam(1e-3)]
    for _ in range(3):
        losses = [model.train_step(x, labels, opt) for model, opt in zip(models, opts, strict=True)]
        np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    for (_, a, _, _), (_, b, _, _) in zip(models[0].groups, models[1].groups, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
