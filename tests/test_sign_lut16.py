"""The exact uint8 product by int16 table lookups (``fastbin.kernels.sign_product.avx512_int16``, AVX-512BW):
the index layout against the bit convention, the int32 bits of the reference over the shape
grid (hypothesis where shapes vary), the int16 accumulators at their extreme (all-255 rows
against all -1 or all +1 weights, across the widening every FLUSH groups), several passes
over the groups, and ``sign_matmul``'s choice of it."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from planning import use_cpu
from shapes import KS, NS, assert_uint8_sign_matmul_exact, skip_big_without_jit

import fastbin
from fastbin import reference as R
from fastbin._config import INT16_LUT, jit_disabled
from fastbin.kernels.sign_product.avx512 import (
    BLOCK,
    index_words,
    lut16_product,
    lut16_product_parallel,
    sign_matmul_lut16,
    sign_matmul_lut16_parallel,
)
from fastbin.kernels.sign_product.avx512_int16 import FLUSH

pytestmark = pytest.mark.skipif(
    not (INT16_LUT or jit_disabled()),
    reason="the int16 lookup kernel needs AVX-512BW (INT16_LUT); a plain-Python twin without JIT",
)

KERNELS = [sign_matmul_lut16, sign_matmul_lut16_parallel]
#: One pass over the groups of the shapes here (the kernels take the pass size from the planner).
CHUNK = 1 << 20


def _want(x, w):
    """The exact product from the float weights: int64 ``x @ sign(w)`` (sign(0) = +1)."""
    return x.astype(np.int64) @ np.where(w < 0, -1, 1)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", NS + [64, 65, 130])
def test_indices_are_twice_the_sign_nibbles(k, n, rng):
    w = rng.standard_normal((k, n)).astype(np.float32)
    idx = index_words(fastbin.pack_weights(w).bits, k)
    assert idx.dtype == np.uint16 and idx.shape == (-(-k // 4), -(-n // BLOCK) * BLOCK)
    negative = np.zeros((-(-k // 4) * 4, idx.shape[1]), bool)
    negative[:k, :n] = w < 0  # bit 1 means -1; padding rows and columns hold 0
    want = sum(negative[q::4].astype(np.uint16) << q for q in range(4))
    np.testing.assert_array_equal(idx, 2 * want)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", [1, 3, 4, 5, 33])
@pytest.mark.parametrize("n", [1, 10, 64, 65, 130])
def test_lookup_product_is_exact(kernel, m, k, n, rng):
    skip_big_without_jit(m * k * n)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    w = rng.standard_normal((k, n)).astype(np.float32)
    packed = fastbin.pack_weights(w)
    out = np.full((m, n), 7, np.int32)
    assert kernel(x, packed.bits, out, CHUNK)
    np.testing.assert_array_equal(out, _want(x, w))
    np.testing.assert_array_equal(out, R.sign_matmul(x, packed))


@pytest.mark.parametrize("product", [lut16_product, lut16_product_parallel])
@pytest.mark.parametrize("chunk_bytes", [1, 2 * 64 * 3, 2 * 64 * FLUSH + 2 * 64])
def test_passes_over_the_groups_add_up(product, chunk_bytes, rng):
    """A pass of 1, 3 or FLUSH + 1 groups (chunk_bytes / (2 bytes * n_pad)): the first pass
    writes ``out``, the later ones add to it."""
    m, k, n = 9, 300, 70
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    w = rng.standard_normal((k, n)).astype(np.float32)
    out = np.full((m, n), -5, np.int32)
    product(x, index_words(fastbin.pack_weights(w).bits, k), out, chunk_bytes)
    np.testing.assert_array_equal(out, _want(x, w))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("k", [4 * FLUSH - 1, 4 * FLUSH, 4 * FLUSH + 1, 4 * 2 * FLUSH, 4096, 4097])
@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_int16_accumulators_at_their_extreme(kernel, k, sign):
    """All-255 rows against all -1 (or +1) weights: every int16 partial sum is
    ±1020 per group, ±32640 after FLUSH groups (the most int16 may hold here), and
    the int32 total ±255 k. A FLUSH one larger, or no widening, would wrap."""
    skip_big_without_jit(3 * k * 64)
    x = np.full((3, k), 255, np.uint8)
    w = np.full((k, 64), sign, np.float32)
    w[:, 1] = -sign
    w[::2, 2] = -sign  # a mixed column: alternating signs
    out = np.empty((3, 64), np.int32)
    assert kernel(x, fastbin.pack_weights(w).bits, out, CHUNK)
    np.testing.assert_array_equal(out, _want(x, w))
    assert out[0, 0] == sign * 255 * k


@pytest.mark.parametrize("kernel", KERNELS)
def test_nonzero_padding_bits_write_nothing(kernel, rng):
    x = rng.integers(0, 256, (4, 70), dtype=np.uint8)
    packed = fastbin.pack_weights(rng.standard_normal((70, 65)).astype(np.float32))
    bits = packed.bits.copy()
    bits[3, -1] |= np.uint64(1) << np.uint64(63)  # bit 127 of a 70-bit row
    out = np.full((4, 65), 11, np.int32)
    assert not kernel(x, bits, out, CHUNK)
    assert (out == 11).all()


@settings(max_examples=40 if not jit_disabled() else 8, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 700), n=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_lookup_product_is_exact_hypothesis(m, k, n, seed):
    rng = np.random.default_rng(seed)
    skip_big_without_jit(m * k * n * 8)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    w = rng.standard_normal((k, n)).astype(np.float32)
    out = np.empty((m, n), np.int32)
    assert sign_matmul_lut16(x, fastbin.pack_weights(w).bits, out, CHUNK)
    np.testing.assert_array_equal(out, _want(x, w))


@pytest.mark.parametrize("m,k,n", [(32, 784, 256), (33, 3, 300), (200, 1000, 257), (64, 20000, 256)])
def test_sign_matmul_uint8_takes_the_int16_tables(m, k, n, rng, monkeypatch):
    """From ``TABLE["uint8_lut16_min_rows"]`` rows and ``TABLE["lut_min_cols"]`` outputs
    ``sign_matmul`` takes uint8 rows through the int16 tables, also past the float32 tables'
    ``k <= 2**24 / 255`` (k = 20000): the reference's int32 bits, strided rows, threaded or not.
    The planner is seen to pick it (a spy), so the test covers it and not a fallback."""
    from fastbin.kernels import sign_product
    from fastbin.ops import matmul

    skip_big_without_jit(m * k * n)
    table = use_cpu(monkeypatch, "avx512", INT8_DOT=False)  # without VNNI (Skylake-SP, Cascade Lake)
    assert m >= table["uint8_lut16_min_rows"] and n >= table["lut_min_cols"]
    calls = []
    real = sign_product.plan
    monkeypatch.setattr(matmul, "_plan", lambda *a, **kw: calls.append(real(*a, **kw).name) or real(*a, **kw))
    assert_uint8_sign_matmul_exact(rng, m, k, n)
    assert len(calls) == 2 and set(calls) <= {"uint8_lut16", "uint8_lut16_parallel"}
