"""The table-lookup product of few float32 rows (``fastbin.kernels.sign_product.avx512``, AVX-512): the
nibble layout against the bit convention, and ``x @ sign(W)`` within the float tolerance of
the float64 product over the shape grid (its sums run in another order than BLAS's; the
runtime refines them near thresholds, ``tests/test_exact_dot.py``)."""
import numpy as np
import pytest
from planning import use_cpu
from shapes import KS, NS, assert_uint8_sign_matmul_exact, skip_big_without_jit
from tolerance import assert_close

import fastbin
from fastbin._config import FLOAT_LUT, jit_disabled
from fastbin.kernels.sign_product.avx512 import (
    BLOCK,
    lut_product,
    lut_product_parallel,
    lut_scratch,
    nibbles_into,
    nibbles_of,
    nibbles_of_weights,
    sign_dot_lut,
    sign_matmul_lut,
    sign_matmul_lut_parallel,
)

pytestmark = pytest.mark.skipif(not (FLOAT_LUT or jit_disabled()),
                                reason="the lookup kernel needs AVX-512F (FLOAT_LUT); a plain-Python twin without JIT")


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", NS + [64, 65, 130])
def test_nibbles_hold_the_sign_bits(k, n, rng):
    w = rng.standard_normal((k, n)).astype(np.float32)
    nib = nibbles_of(fastbin.pack_weights(w).bits, k)
    assert nib.dtype == np.uint8 and nib.shape == (-(-k // 4), -(-n // BLOCK) * BLOCK)
    negative = np.zeros((nib.shape[0] * 4, n), bool)
    negative[:k] = w < 0  # bit 1 means -1; sign(0) = +1
    want = sum(negative[q::4].astype(np.uint8) << q for q in range(4))
    np.testing.assert_array_equal(nib[:, :n], want)
    assert not nib[:, n:].any()


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", [1, 2, 15])
@pytest.mark.parametrize("n", NS + [64, 65, 512])
def test_lookup_product_within_float_rounding(m, k, n, rng):
    skip_big_without_jit(m * k * n)
    x = rng.random((m, k)).astype(np.float32)
    x[0, : k // 2] = -x[0, : k // 2]
    w = rng.standard_normal((k, n)).astype(np.float32)
    w[0, 0] = 0.0
    out = np.full((m, n), np.nan, np.float32)
    sign_dot_lut(x, nibbles_of(fastbin.pack_weights(w).bits, k), out, *lut_scratch(k))
    want = x.astype(np.float64) @ np.where(w < 0, -1.0, 1.0)
    assert_close(out, want.astype(np.float32), scale=max(1.0, float(np.abs(x).sum(axis=1).max())) / 10)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", [1, 3, 4, 5, 33])
@pytest.mark.parametrize("n", [1, 10, 40, 65, 90, 100, 130])  # the last block of a row 16, 32, 48 or 64 wide
def test_many_row_lookup_kernels(m, k, n, rng):
    skip_big_without_jit(m * k * n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    packed = fastbin.pack_weights(w)
    nib = np.full_like(nibbles_of(packed.bits, k), 99)
    nibbles_into(packed.bits, k, nib)
    np.testing.assert_array_equal(nib, nibbles_of(packed.bits, k))
    want = (x.astype(np.float64) @ np.where(w < 0, -1.0, 1.0)).astype(np.float32)
    for chunk_bytes in (1 << 30, 3 * nib.shape[1], 1):  # one pass; passes of 3 groups; of 1 group
        outs = []
        for kernel in (sign_matmul_lut, sign_matmul_lut_parallel):
            out = np.full((m, n), np.nan, np.float32)
            assert kernel(x, packed.bits, out, chunk_bytes)
            assert_close(out, want, scale=max(1.0, float(np.abs(x).sum(axis=1).max())) / 10)
            outs.append(out)
        np.testing.assert_array_equal(outs[0], outs[1])  # rows split over threads, the same sums
    if k % 64:
        bad = packed.bits.copy()
        bad[0, -1] |= np.uint64(1) << np.uint64(63)  # a padding bit
        out = np.zeros((m, n), np.float32)
        assert not sign_matmul_lut(x, bad, out, 1 << 20) and not out.any()


@pytest.mark.parametrize("m,k,n", [(1, 784, 10), (9, 100, 300), (130, 784, 65), (5, 4096, 64)])
def test_lookup_kernel_on_uint8_rows_is_exact(m, k, n, rng):
    # uint8 rows through float32 tables: every partial sum is an integer below 255 * k < 2**24, so exact
    skip_big_without_jit(m * k * n)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    w = rng.standard_normal((k, n)).astype(np.float32)
    packed = fastbin.pack_weights(w)
    out = np.empty((m, n), np.float32)
    assert sign_matmul_lut(x, packed.bits, out, 3 * 64)  # several passes over the groups
    np.testing.assert_array_equal(out.astype(np.int32), fastbin.sign_matmul(x, packed))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", KS + [2, 3])
@pytest.mark.parametrize("n", NS + [64, 65, 130])
def test_nibbles_straight_from_the_weights(k, n, dtype, rng):
    """``nibbles_of_weights(W)`` equals the nibbles of ``pack_weights(W)``: -0.0, 0 and NaN
    are +1 (bit 0), as ``signs``."""
    w = rng.standard_normal((k, n)).astype(dtype)
    w.flat[:: 7] = 0.0
    w.flat[3 :: 11] = -0.0
    np.testing.assert_array_equal(nibbles_of_weights(w), nibbles_of(fastbin.pack_weights(w).bits, k))
    w.flat[5 :: 13] = np.nan  # pack_weights refuses NaN; fastbin.signs makes it +1
    nib = nibbles_of_weights(w)
    negative = np.zeros((nib.shape[0] * 4, nib.shape[1]), bool)
    negative[:k, :n] = fastbin.signs(w) < 0
    np.testing.assert_array_equal(nib, sum(negative[q::4].astype(np.uint8) << q for q in range(4)))


@pytest.mark.parametrize("m,k,n", [(8, 784, 100), (64, 200, 130), (256, 784, 200), (17, 3, 300)])
def test_dense_sign_matmul_fast_product_by_lookups(m, k, n, rng, monkeypatch):
    """``dense_sign_matmul(exact=False)`` on many float32 rows runs the lookup kernel
    (kind ``"lut"``) within the float tolerance of the float64 product, from real weights,
    packed weights, and cached nibbles alike, threaded or not."""
    from fastbin.ops import dense

    skip_big_without_jit(m * k * n)
    table = use_cpu(monkeypatch, "avx512", dense_lut_min_rows=1, dense_lut_min_rows_short=1, dense_lut_min_k=1)
    assert dense.dense_product_kind(m, n, k, np.dtype(np.float32)) in ("lut", "lut_parallel")
    assert dense.dense_product_kind(m, n, k, np.dtype(np.float64)) not in ("lut", "lut_parallel")
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    packed = fastbin.pack_weights(w)
    want = (x.astype(np.float64) @ np.where(w < 0, -1.0, 1.0)).astype(np.float32)
    scale = max(1.0, float(np.abs(x).sum(axis=1).max())) / 10
    results = [fastbin.dense_sign_matmul(x, w, exact=False), fastbin.dense_sign_matmul(x, packed, exact=False),
               fastbin.dense_sign_matmul(x, packed, nibbles=nibbles_of(packed.bits, k), exact=False)]
    monkeypatch.setitem(table["parallel_min_work"], "sign_matmul", 0)
    results.append(fastbin.dense_sign_matmul(x, w, exact=False))
    out = np.empty((m, n), np.float32)
    lut_product_parallel(x, nibbles_of_weights(w), out, table["lut_chunk_bytes"])
    results.append(out)
    out = np.empty((m, n), np.float32)
    lut_product(x, nibbles_of_weights(w), out, 3 * 64)  # passes of 3 groups
    assert_close(out, want, scale=scale)
    for result in results:
        np.testing.assert_array_equal(result, results[0])  # one summation order for every entry point
    assert_close(results[0], want, scale=scale)


@pytest.mark.parametrize("m,k,n", [(128, 784, 256), (131, 3, 300), (200, 1000, 257), (128, 4096, 320)])
def test_sign_matmul_uint8_by_lookups_is_exact(m, k, n, rng, monkeypatch):
    """From ``TABLE["uint8_lut_min_rows"]`` rows ``sign_matmul`` takes uint8 rows through
    the float32 tables (exact: every partial sum an integer <= 255 * k < 2**24) where the
    int16 tables are off (``INT16_LUT`` False: AVX-512F without BW): the reference's int32
    bits, for strided rows and all-255 rows too, threaded or not."""
    table = use_cpu(monkeypatch, "avx512", INT16_LUT=False, INT8_DOT=False)
    skip_big_without_jit(m * k * n)
    assert m >= table["uint8_lut_min_rows"] and n >= table["lut_min_cols"]
    assert_uint8_sign_matmul_exact(rng, m, k, n)
