"""Issue 9's shape grid: the float x packed-sign products against NumPy sgemm.

For every cell (m, k, n) of ``report.GRID_M x GRID_K x GRID_N`` and every
product kind of ``report.GRID_KINDS``, two rows in group
``grid_<kind>/<m>x<k>x<n>``:

* ``fastbin``: ``fastbin.sign_matmul(x, w)`` with float32 or uint8 ``x``, or
  ``fastbin.binary_matmul(a, w)`` (packed x packed), ``threads=False`` and
  Numba pinned to one thread (``benchutil.measure``);
* ``numpy``: NumPy sgemm on the ±1 float32 forms, ``x @ S`` with ``S =
  sign(W)`` as float32 (for ``binary_matmul`` both operands as ±1 float32);
  BLAS on one thread (``conftest.py`` sets ``OPENBLAS_NUM_THREADS=1`` etc.
  before NumPy loads; with threadpoolctl installed it also limits BLAS here).

Each cell's inputs are built once and shared by its two rows; the fastbin
result is checked against the sgemm result (exact for uint8 and binary,
allclose for float32), the sgemm result against float64 on a few rows.
Quick mode runs ``report.GRID_QUICK_CELLS`` only; the cells in
``report.GRID_SKIPS`` are skipped with their reason. ``benchmarks/report.py``
renders the ratios as tables and a heat map.
"""
import contextlib
import functools

import numpy as np
import pytest
from benchutil import QUICK, assert_same, measure, pm_one
from report import GRID_KINDS, grid_cells, grid_group

import fastbin
import fastbin.reference as ref

#: Short calls: a quarter of a second of rounds per row (pytest-benchmark's
#: default is a second: 360 rows); long calls still get 5 rounds.
pytestmark = pytest.mark.benchmark(max_time=0.25, min_rounds=5)

IMPLS = ("numpy", "fastbin")
CASES = [
    pytest.param(kind, m, k, n, impl, id=f"{kind}-{m}x{k}x{n}-{impl}",
                 marks=[pytest.mark.skip(reason=f"{kind} {m}x{k}x{n}: {skip}")] if skip else [])
    for kind, m, k, n, skip in grid_cells(QUICK)
    for impl in IMPLS
]


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """BLAS on one thread through threadpoolctl too, when it is installed (the
    environment variables of ``conftest.py`` already ask for it)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=1, user_api="blas")
    with limits:
        yield
    _cell.cache_clear()


@functools.lru_cache(maxsize=1)  # the two rows of a cell run one after the other
def _cell(kind, m, k, n):
    """``(fastbin operands, sgemm operands, sgemm result)`` of one cell."""
    rng = np.random.default_rng([20261203, m, k, n, list(GRID_KINDS).index(kind)])
    w_real = rng.standard_normal((k, n)).astype(np.float32)
    w = fastbin.pack_weights(w_real)
    s = ref.binarize(w_real)  # sign(W) as ±1 float32
    if kind == "sign_matmul_f32":
        x = rng.standard_normal((m, k)).astype(np.float32)
        fast_args, sgemm_args = (x, w), (x, s)
    elif kind == "sign_matmul_u8":
        x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
        fast_args, sgemm_args = (x, w), (x, s)  # NumPy casts uint8 to float32, then sgemm
    else:
        a_pm = pm_one(rng, (m, k))
        fast_args, sgemm_args = (fastbin.pack_signs(a_pm), w), (a_pm, s)
    x_, s_ = sgemm_args
    return fast_args, sgemm_args, x_ @ s_


def _check(kind, impl, out, sgemm_args, expected, what):
    out = np.asarray(out)
    assert out.shape == expected.shape, f"{what}: shape {out.shape} != {expected.shape}"
    if impl == "numpy":  # the baseline itself, on a few rows against float64
        x, s = sgemm_args
        rows = slice(0, min(4, x.shape[0]))
        exact = x[rows].astype(np.float64) @ s.astype(np.float64)
        if kind == "sign_matmul_f32":
            assert_same(out[rows], exact, rtol=1e-4, atol=1e-2, what=what)
        else:  # integer sums below 2**24: float32 sgemm is exact
            np.testing.assert_array_equal(out[rows], exact, err_msg=what)
    elif kind == "sign_matmul_f32":
        assert out.dtype == np.float32, what
        assert_same(out, expected, rtol=1e-4, atol=1e-2, what=what)
    else:  # int32 results: exact
        assert out.dtype == np.int32, what
        np.testing.assert_array_equal(out.astype(np.int64), expected.astype(np.int64), err_msg=what)


@pytest.mark.parametrize(("kind", "m", "k", "n", "impl"), CASES)
def test_grid(benchmark, kind, m, k, n, impl):
    fast_args, sgemm_args, expected = _cell(kind, m, k, n)
    if impl == "numpy":
        x, s = sgemm_args
        fn = lambda: x @ s  # noqa: E731
        work, unit = 2.0 * m * k * n, "flop"
    else:
        product = fastbin.binary_matmul if kind == "binary_matmul" else fastbin.sign_matmul
        a, w = fast_args
        fn = lambda: product(a, w, threads=False)  # noqa: E731
        if kind == "binary_matmul":
            work, unit = float(m * n * w.n_words), "word-ops"
        else:
            work, unit = 2.0 * m * k * n, "flop"
    out = measure(
        benchmark, fn, group=grid_group(kind, m, k, n), impl=impl,
        shape=f"{m}x{k}x{n} {GRID_KINDS[kind]}", work=work, unit=unit,
    )
    _check(kind, impl, out, sgemm_args, expected, f"{kind} {m}x{k}x{n} {impl}")
