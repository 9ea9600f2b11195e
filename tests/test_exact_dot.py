"""The exact ``x @ sign(W)`` of the evaluation path (``fastbin.reference.dense_sign_matmul``
on float input) and the refinement of a fast product near thresholds
(``fastbin.kernels.sign_product.exact``): the jitted kernels give the reference's bits over a grid of
shapes, dtypes and scales (non-finite rows, subnormals and huge values included), the
product is within float rounding of the float64 sum, and a fast product refined near its
thresholds decides every threshold as the exact product does, even when the fast product is
perturbed up to its error bound (so the check can fail: unrefined, it decides some wrongly).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapes import KS, MS, skip_big_without_jit
from tolerance import assert_close

import fastbin
from fastbin import _config
from fastbin import reference as R
from fastbin._config import FLOAT_LUT, jit_disabled
from fastbin.kernels.sign_product.avx512 import nibbles_of
from fastbin.kernels.sign_product.exact import (
    exact_chunks,
    exact_lut_product,
    exact_lut_product_parallel,
    exact_sign_dot_rows,
    exact_sign_dot_rows_parallel,
    grid_scratch,
    refine_near_thresholds,
)
from fastbin.reference import rounding_constants

DTYPES = [np.float32, np.float64]


def _weights(rng, k, n, dtype):
    return rng.standard_normal((k, n)).astype(dtype)


def _rows(rng, m, k, dtype, scale):
    x = (rng.standard_normal((m, k)) * scale).astype(dtype)
    if m > 1:
        x[1] = 0  # an all-zero row
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", MS)
def test_exact_kernel_equals_reference(m, k, dtype, rng):
    skip_big_without_jit(m * k * 33)
    w = _weights(rng, k, 33, dtype)
    packed = fastbin.pack_weights(w)
    for scale in (1.0, 1e-30, 1e20):
        x = _rows(rng, m, k, dtype, scale)
        want = R.dense_sign_matmul(x, w)
        out = np.empty((m, 33), dtype)
        exact_sign_dot_rows(x, packed.bits, out, grid_scratch(x.shape[1]))
        np.testing.assert_array_equal(out, want)
        out = np.full((m, 33), np.nan, dtype)
        exact_sign_dot_rows_parallel(x, packed.bits, out)
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(fastbin.dense_sign_matmul(x, w), want)  # every row count's path
        np.testing.assert_array_equal(fastbin.dense_sign_matmul(x, packed), want)
        assert_close(want, (x.astype(np.float64) @ np.where(w < 0, -1.0, 1.0)).astype(dtype))


def test_exact_product_is_correctly_rounded_on_exact_inputs(rng):
    # inputs on a coarse grid: the float64 sum is exact, so the product must equal it rounded once
    x = (rng.integers(-1000, 1000, (40, 784)) / 1024).astype(np.float32)
    w = _weights(rng, 784, 50, np.float32)
    want = (x.astype(np.float64) @ np.where(w < 0, -1.0, 1.0)).astype(np.float32)
    np.testing.assert_array_equal(fastbin.dense_sign_matmul(x, w), want)
    np.testing.assert_array_equal(fastbin.dense_sign_matmul(x[:3], w), want[:3])


def _extreme_rows(k, n):
    """Signs W (k, n) and six float32 rows: a NaN, an infinity, subnormals, the largest
    finite values (the sum overflows), both infinities, -0.0."""
    w = np.where(np.arange(k * n).reshape(k, n) % 3 == 0, -1.0, 1.0).astype(np.float32)
    x = np.ones((6, k), np.float32)
    x[0, 5] = np.nan
    x[1, 3] = np.inf
    x[2, :] = np.float32(1e-45)  # subnormal
    x[3, :] = np.finfo(np.float32).max
    x[4, 0] = -np.inf
    x[4, 1] = np.inf
    x[5, ::2] = -0.0
    return w, x


def test_non_finite_and_extreme_rows():
    k, n = 70, 9
    w, x = _extreme_rows(k, n)
    want = R.dense_sign_matmul(x, w)
    with np.errstate(invalid="ignore", over="ignore"):
        plain = x.astype(np.float64) @ w.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(want), np.isnan(plain))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(want[1:4], plain[1:4].astype(np.float32))  # row 3 overflows: ±inf
    assert np.all(want[2] != 0) and np.isnan(want[4]).all()
    with np.errstate(over="ignore", invalid="ignore"):  # as plain Python (NUMBA_DISABLE_JIT=1), NumPy warns
        for m in (1, 6):
            out = np.empty((m, n), np.float32)
            exact_sign_dot_rows(x[:m], fastbin.pack_weights(w).bits, out, grid_scratch(x[:m].shape[1]))
            np.testing.assert_array_equal(out, want[:m])
        np.testing.assert_array_equal(fastbin.dense_sign_matmul(x, w), want)
    x64 = np.full((2, k), 1e-300)  # float64 steps far below 2**-1022 on the way
    x64[1] = 1e300
    w64 = w.astype(np.float64)
    np.testing.assert_array_equal(fastbin.dense_sign_matmul(x64, w64), R.dense_sign_matmul(x64, w64))
    np.testing.assert_array_equal(fastbin.dense_sign_matmul(x64[:1], w64), R.dense_sign_matmul(x64[:1], w64))
    assert np.all(R.dense_sign_matmul(x64, w64)[0] != 0)


def _hypothesis_case(m, k, n, seed, dtype, log_scale):
    """Weights (k, n) and rows (m, k) of ``dtype``: magnitudes spread over many binades around
    ``10**log_scale``, both signs."""
    rng = np.random.default_rng(seed)
    w = _weights(rng, k, n, dtype)
    return w, (rng.random((m, k)) ** 4 * 10.0 ** log_scale * rng.choice([-1, 1], (m, k))).astype(dtype)


@given(m=st.integers(1, 20), k=st.integers(1, 300), n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from(DTYPES), log_scale=st.integers(-40, 30))
def test_exact_kernel_equals_reference_hypothesis(m, k, n, seed, dtype, log_scale):
    w, x = _hypothesis_case(m, k, n, seed, dtype, log_scale)
    out = np.empty((m, n), dtype)
    exact_sign_dot_rows(x, fastbin.pack_weights(w).bits, out, grid_scratch(x.shape[1]))
    np.testing.assert_array_equal(out, R.dense_sign_matmul(x, w))


def _refine_case(rng, m, k, n, dtype):
    """x, packed W, the exact product, thresholds at (and one ulp around) exact values."""
    x = (rng.random((m, k)) ** 2).astype(dtype)
    w = _weights(rng, k, n, dtype)
    exact = R.dense_sign_matmul(x, w)
    pick = exact[rng.integers(0, m, n), np.arange(n)]
    step = rng.integers(-1, 2, n)
    t = np.where(step < 0, np.nextafter(pick, -np.inf), np.where(step > 0, np.nextafter(pick, np.inf), pick))
    return x, fastbin.pack_weights(w), exact, t.astype(dtype)


def _refine(impl, x, packed, dot, t):
    """The jitted kernel or the reference's NumPy twin, in place on ``dot``."""
    if impl == "kernel":
        refine_near_thresholds(x, packed.bits, dot, t, *rounding_constants(dot.dtype), grid_scratch(x.shape[1]))
    else:
        R.refine_near_thresholds(x, fastbin.unpack_signs(packed, np.float32), dot, t, pairs_per_chunk=7)


@pytest.mark.parametrize("impl", ["kernel", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(1, 784, 512), (17, 784, 64), (300, 100, 70), (5, 3, 9)])
def test_refinement_decides_thresholds_as_the_exact_product(m, k, n, dtype, impl, rng):
    skip_big_without_jit(m * k * n // 8)
    x, packed, exact, t = _refine_case(rng, m, k, n, dtype)
    unit, _ = rounding_constants(dtype)
    signs = np.where(fastbin.unpack_signs(packed, np.int8) < 0, -1, 1).astype(dtype).T
    fast = np.ascontiguousarray(x @ signs)
    # a fast product off by up to its error bound (one rounding of each of k terms), either way
    bound = k * unit * np.abs(x).astype(np.float64).sum(axis=1, keepdims=True)
    perturbed = (fast + rng.uniform(-1, 1, fast.shape) * bound).astype(dtype)
    unrefined_wrong = 0
    for dot in (fast, perturbed):
        unrefined_wrong += int(((dot < t) != (exact < t)).sum() + ((dot > t) != (exact > t)).sum())
        _refine(impl, x, packed, dot, t)
        np.testing.assert_array_equal(dot < t, exact < t)
        np.testing.assert_array_equal(dot > t, exact > t)
    assert_close(fast, exact)
    assert unrefined_wrong > 0  # the case exercises the refinement


@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_refinement_leaves_far_entries_alone(impl, rng):
    x, packed, exact, _ = _refine_case(rng, 4, 200, 30, np.float32)
    dot = exact + np.float32(0.25)  # far from thresholds at -1e6: not the exact product, kept as it is
    before = dot.copy()
    _refine(impl, x, packed, dot, np.full(30, -1e6, np.float32))
    np.testing.assert_array_equal(dot, before)


@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_refinement_of_non_finite_rows(impl):
    x = np.ones((2, 10), np.float32)
    x[0, 0] = np.nan
    packed = fastbin.pack_weights(np.ones((10, 3), np.float32))
    dot = np.zeros((2, 3), np.float32)
    _refine(impl, x, packed, dot, np.zeros(3, np.float32))
    assert np.isnan(dot[0]).all()  # near every threshold (a NaN row is), so exact: NaN
    np.testing.assert_array_equal(dot[1], 10)  # 0 is at the thresholds 0: replaced by the exact 10


def test_grid_bits():
    assert [R.grid_bits(k) for k in (1, 2, 3, 4, 5, 784, 1024, 1025)] == [52, 51, 50, 50, 49, 42, 42, 41]
    for k in (1, 2, 3, 784, 1025, 4096):
        assert k * 2 ** R.grid_bits(k) <= 2**52


# The exact product by table lookups (fastbin.kernels.sign_product.avx512.exact_lut_product, AVX-512) ---------

needs_lut = pytest.mark.skipif(not (FLOAT_LUT or jit_disabled()),
                               reason="the lookup kernels need AVX-512F (FLOAT_LUT); a plain-Python twin without JIT")


def _exact_by_lookup(x, packed, parallel=False):
    out = np.full((x.shape[0], packed.rows), np.nan, x.dtype)
    kernel = exact_lut_product_parallel if parallel else exact_lut_product
    kernel(x, packed.bits, nibbles_of(packed.bits, packed.n_bits), out)
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 63, 64, 65, 784, 1000, 2049, 4096])
def test_exact_chunks_keep_every_sum_exact_in_float32(k):
    bits, count = exact_chunks(k)
    g = R.grid_bits(k)
    assert k * 2**bits <= 2**24  # every partial sum of k chunks: an integer float32 holds
    assert bits * (count - 1) + bits >= g  # the top chunk, signed, within 2**bits: q reaches 2**G


@needs_lut
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 10), (4, 63, 33), (5, 64, 48), (9, 65, 64), (17, 784, 65),
                                   (8, 784, 200), (33, 1000, 130), (6, 4096, 100), (40, 3, 17)])
def test_exact_lookup_product_equals_reference(m, k, n, dtype, rng):
    skip_big_without_jit(m * k * n * 3)
    w = _weights(rng, k, n, dtype)
    packed = fastbin.pack_weights(w)
    for scale in (1.0, 1e-30, 1e20):
        x = _rows(rng, m, k, dtype, scale)
        x[0, : k // 2] *= 1e-7  # a wide spread of magnitudes within one row
        want = R.dense_sign_matmul(x, w)
        np.testing.assert_array_equal(_exact_by_lookup(x, packed), want)
        np.testing.assert_array_equal(_exact_by_lookup(x, packed, parallel=True), want)


@needs_lut
@given(m=st.integers(1, 12), k=st.integers(1, 300), n=st.integers(1, 140), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from(DTYPES), log_scale=st.integers(-40, 30))
def test_exact_lookup_product_equals_reference_hypothesis(m, k, n, seed, dtype, log_scale):
    w, x = _hypothesis_case(m, k, n, seed, dtype, log_scale)
    np.testing.assert_array_equal(_exact_by_lookup(x, fastbin.pack_weights(w)), R.dense_sign_matmul(x, w))


@needs_lut
def test_exact_lookup_product_on_non_finite_and_extreme_rows():
    w, x = _extreme_rows(70, 66)
    with np.errstate(over="ignore", invalid="ignore"):
        want = R.dense_sign_matmul(x, w)
        np.testing.assert_array_equal(_exact_by_lookup(x, fastbin.pack_weights(w)), want)
        np.testing.assert_array_equal(fastbin.dense_sign_matmul(x, w), want)


@needs_lut
@pytest.mark.parametrize("m,k,n", [(8, 784, 64), (300, 100, 70), (9, 2048, 100)])
def test_dense_sign_matmul_takes_the_lookups_and_gives_the_same_bits(m, k, n, rng, monkeypatch):
    """At these shapes ``dense_sign_matmul`` runs the exact product by lookups (threaded
    too); it gives the bits of the row kernel and of the reference."""
    from fastbin.ops import dense

    assert dense.exact_by_lookup(m, n, k)
    skip_big_without_jit(m * k * n * 3)
    x = (rng.random((m, k)) ** 2).astype(np.float32)
    w = _weights(rng, k, n, np.float32)
    packed = fastbin.pack_weights(w)
    want = R.dense_sign_matmul(x, w)
    rows = np.empty((m, n), np.float32)
    exact_sign_dot_rows(x, packed.bits, rows, grid_scratch(k))
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_array_equal(fastbin.dense_sign_matmul(x, w), want)
    np.testing.assert_array_equal(fastbin.dense_sign_matmul(x, packed, nibbles=nibbles_of(packed.bits, k)), want)
    monkeypatch.setitem(_config.TABLE["parallel_min_work"], "sign_matmul", 0)  # the threaded lookups
    np.testing.assert_array_equal(fastbin.dense_sign_matmul(x, packed), want)
    with pytest.raises(ValueError, match="nibble form"):
        fastbin.dense_sign_matmul(x, packed, nibbles=nibbles_of(packed.bits, k)[:, :1])
