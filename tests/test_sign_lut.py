"""The table-lookup product of few float32 rows (``fastbin.kernels.sign_lut``, AVX-512): the
nibble layout against the bit convention, and ``x @ sign(W)`` within the float tolerance of
the float64 product over the shape grid (its sums run in another order than BLAS's; the
runtime refines them near thresholds, ``tests/test_exact_dot.py``)."""
import numpy as np
import pytest
from shapes import KS, NS, skip_big_without_jit
from tolerance import assert_close

import fastbin
from fastbin._config import FLOAT_LUT, jit_disabled
from fastbin.kernels.sign_lut import (
    BLOCK,
    lut_nibbles,
    lut_scratch,
    nibbles_into,
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
    nib = lut_nibbles(fastbin.pack_weights(w).bits, k)
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
    sign_dot_lut(x, lut_nibbles(fastbin.pack_weights(w).bits, k), out, *lut_scratch(k))
    want = x.astype(np.float64) @ np.where(w < 0, -1.0, 1.0)
    assert_close(out, want.astype(np.float32), scale=max(1.0, float(np.abs(x).sum(axis=1).max())) / 10)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", [1, 3, 4, 5, 33])
@pytest.mark.parametrize("n", [1, 10, 65, 130])
def test_many_row_lookup_kernels(m, k, n, rng):
    skip_big_without_jit(m * k * n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    packed = fastbin.pack_weights(w)
    nib = np.full_like(lut_nibbles(packed.bits, k), 99)
    nibbles_into(packed.bits, k, nib)
    np.testing.assert_array_equal(nib, lut_nibbles(packed.bits, k))
    want = (x.astype(np.float64) @ np.where(w < 0, -1.0, 1.0)).astype(np.float32)
    for chunk_bytes in (None, 3 * nib.shape[1], 1):  # one pass; passes of 3 groups; of 1 group
        outs = []
        for kernel in (sign_matmul_lut, sign_matmul_lut_parallel):
            out = np.full((m, n), np.nan, np.float32)
            assert kernel(x, packed.bits, out) if chunk_bytes is None else kernel(x, packed.bits, out, chunk_bytes)
            assert_close(out, want, scale=max(1.0, float(np.abs(x).sum(axis=1).max())) / 10)
            outs.append(out)
        np.testing.assert_array_equal(outs[0], outs[1])  # rows split over threads, the same sums
    if k % 64:
        bad = packed.bits.copy()
        bad[0, -1] |= np.uint64(1) << np.uint64(63)  # a padding bit
        out = np.zeros((m, n), np.float32)
        assert not sign_matmul_lut(x, bad, out) and not out.any()


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
