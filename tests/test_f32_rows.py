"""Few float32 rows by sign flips from ``W``'s bits (``fastbin.kernels.sign_product.f32_rows``):
bit for bit the documented order (4 lane sums of every fourth element, ``(l0 + l2) + (l1 + l3)``,
then the ``k % 4`` last elements one by one), and within float rounding of ``fastbin.reference``;
k around the groups of 4 and 32 elements (1-7 groups left over) and the words; 4 rows of ``W``
at a time, then 1; strided ``x``; padding bits refused."""
from __future__ import annotations

import numpy as np
import pytest

import fastbin
from fastbin import reference as R
from fastbin.kernels.sign_product.f32_rows import sign_matmul_f32_rows, sign_sums1, sign_sums4

K_GRID = (1, 3, 4, 5, 31, 32, 33, 36, 60, 64, 65, 100, 784, 1000)


def _signed(x, w, j):
    k = x.shape[0]
    bits = ((w.bits[j, :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).reshape(-1)[:k]
    return np.where(bits == 1, -x, x).astype(np.float32)


def _in_order(x, w, j):
    """The kernel's order of additions, in float32."""
    terms = _signed(x, w, j)
    k4 = x.shape[0] // 4 * 4
    lanes = np.zeros(4, np.float32)
    for t in range(0, k4, 4):
        lanes = (lanes + terms[t : t + 4]).astype(np.float32)
    s = np.float32((lanes[0] + lanes[2]) + (lanes[1] + lanes[3]))
    for t in range(k4, x.shape[0]):
        s = np.float32(s + terms[t])
    return s


@pytest.mark.parametrize("k", K_GRID)
def test_f32_rows_in_their_order_and_near_the_reference(k, rng):
    for m, n in ((1, 1), (1, 4), (2, 5), (3, 9)):
        x = rng.standard_normal((m, 2 * k)).astype(np.float32)[:, ::2]  # strided: copied to C order
        w = fastbin.pack_weights(rng.standard_normal((k, n)))
        out = np.full((m, n), 7, np.float32)
        assert sign_matmul_f32_rows(x, w.bits, out)
        want = np.array([[_in_order(x[i], w, j) for j in range(n)] for i in range(m)], np.float32)
        np.testing.assert_array_equal(out, want)
        np.testing.assert_allclose(out, R.sign_matmul(x, w), rtol=1e-5, atol=1e-5 * np.sqrt(k))


def test_sign_sums_of_one_row(rng):
    x = rng.standard_normal(100).astype(np.float32)
    w = fastbin.pack_weights(rng.standard_normal((100, 6)))
    assert sign_sums4(x, w.bits, 1) == tuple(_in_order(x, w, j) for j in range(1, 5))
    assert sign_sums1(x, w.bits, 5) == _in_order(x, w, 5)


def test_f32_rows_refuse_padding_bits(rng):
    x = rng.standard_normal((1, 70)).astype(np.float32)
    w = fastbin.pack_weights(rng.standard_normal((70, 5)))
    bits = w.bits.copy()
    bits[3, -1] |= np.uint64(1) << np.uint64(63)
    out = np.full((1, 5), 7, np.float32)
    assert not sign_matmul_f32_rows(x, bits, out)
    assert (out == 7).all()
