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
from fastbin.kernels.sign_lut import BLOCK, lut_nibbles, lut_scratch, sign_dot_lut

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
