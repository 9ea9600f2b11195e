"""Few uint8 rows on byte masks made from ``W``'s bits (``fastbin.kernels.sign_product.uint8_rows``)
against ``fastbin.reference``, exact: k around the 16-byte chunks, the groups of 8 chunks (128
bits of a row of ``W``: 1-7 chunks left over, one word or two) and the uint16 lanes' reduction
(128 chunks), odd rows and leftover rows of ``W`` (4 at a time, then 1), all-255 rows and all-one
bits (the largest sums), strided ``x``; padding bits refused."""
from __future__ import annotations

import numpy as np
import pytest

import fastbin
from fastbin import reference as R
from fastbin.kernels.sign_product.uint8_rows import (
    CHUNKS_PER_BLOCK,
    mask_sums1,
    mask_sums4,
    sign_matmul_uint8_rows,
)

K_GRID = (1, 15, 16, 17, 64, 65, 80, 127, 128, 129, 784, 16 * 13, 16 * 15 + 3,
          16 * CHUNKS_PER_BLOCK, 16 * CHUNKS_PER_BLOCK + 16, 16 * 2 * CHUNKS_PER_BLOCK + 5 * 16 + 7)


@pytest.mark.parametrize("k", K_GRID)
def test_uint8_rows_match_reference(k, rng):
    for m, n in ((1, 1), (1, 4), (2, 5), (3, 9), (1, 13)):
        x = rng.integers(0, 256, (m, 2 * k), dtype=np.uint8)[:, ::2]  # strided: copied to C order
        x[0] = 255
        w = fastbin.pack_weights(rng.standard_normal((k, n)))
        w_all = fastbin.pack_weights(-np.ones((k, n)))  # every bit 1: S = rowsum, dot = -rowsum
        for weights in (w, w_all):
            out = np.full((m, n), 7, np.int32)
            assert sign_matmul_uint8_rows(x, weights.bits, out)
            np.testing.assert_array_equal(out, R.sign_matmul(x, weights))


@pytest.mark.parametrize("k", [100, 784, 16 * CHUNKS_PER_BLOCK + 9])
def test_mask_sums_are_the_masked_row_sums(k, rng):
    x = rng.integers(0, 256, k, dtype=np.uint8)
    w = fastbin.pack_weights(rng.standard_normal((k, 6)))
    bits = ((w.bits[:, :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).reshape(6, -1)[:, :k]
    want = (bits * x.astype(np.int64)).sum(axis=1)
    assert mask_sums4(x, w.bits, 1) == tuple(want[1:5])
    assert mask_sums1(x, w.bits, 5) == want[5]


def test_uint8_rows_refuse_padding_bits(rng):
    x = rng.integers(0, 256, (1, 70), dtype=np.uint8)
    w = fastbin.pack_weights(rng.standard_normal((70, 5)))
    bits = w.bits.copy()
    bits[3, -1] |= np.uint64(1) << np.uint64(63)
    out = np.full((1, 5), 7, np.int32)
    assert not sign_matmul_uint8_rows(x, bits, out)
    assert (out == 7).all()
    assert sign_matmul_uint8_rows(x, w.bits, out)
