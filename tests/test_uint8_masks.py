"""uint8 rows on byte masks of ``W`` (``fastbin.kernels.sign_product.uint8_masks``) against
``fastbin.reference``, exact: k around the 16-byte chunks and the uint16 lanes' reduction
(128 chunks = 2048 bytes), blocks of 4, 2 and 1 rows of ``x``, leftover rows of ``W``, all-255 rows
(the largest sums)."""
from __future__ import annotations

import numpy as np
import pytest

import fastbin
from fastbin import reference as R
from fastbin.kernels.sign_product.uint8_masks import CHUNKS_PER_BLOCK, byte_masks, sign_matmul_uint8_masks

K_GRID = (1, 15, 16, 17, 784, 16 * CHUNKS_PER_BLOCK, 16 * CHUNKS_PER_BLOCK + 16, 16 * 2 * CHUNKS_PER_BLOCK + 5)


@pytest.mark.parametrize("k", K_GRID)
def test_uint8_masks_match_reference(k, rng):
    for m, n in ((1, 1), (2, 4), (3, 9), (5, 6), (6, 9), (9, 5)):
        x = rng.integers(0, 256, (m, 2 * k), dtype=np.uint8)[:, ::2]  # strided: copied to C order
        x[0] = 255
        w = fastbin.pack_weights(rng.standard_normal((k, n)))
        w_all = fastbin.pack_weights(-np.ones((k, n)))  # every bit 1: S = rowsum, dot = -rowsum
        for weights in (w, w_all):
            out = np.full((m, n), 7, np.int32)
            assert sign_matmul_uint8_masks(x, weights.bits, out)
            np.testing.assert_array_equal(out, R.sign_matmul(x, weights))


@pytest.mark.parametrize("k", (1, 15, 16, 17, 70, 127, 128, 129, 200, 784, 1000))
def test_byte_masks(k, rng):
    """Whole 128-bit pieces of W (8 chunks), 1-7 chunks after them (one word, or two from the
    fifth chunk on), the k % 16 last bytes."""
    w = fastbin.pack_weights(rng.standard_normal((k, 3)))
    masks = byte_masks(w.bits, k)
    bits = (w.bits[:, :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    want = (bits.reshape(3, -1)[:, :k] * 255).astype(np.uint8)
    np.testing.assert_array_equal(masks, want)


def test_uint8_masks_refuse_padding_bits(rng):
    w = fastbin.pack_weights(rng.standard_normal((70, 5)))
    bits = w.bits.copy()
    bits[1, -1] |= np.uint64(1) << np.uint64(63)
    out = np.full((2, 5), 7, np.int32)
    assert not sign_matmul_uint8_masks(np.ones((2, 70), np.uint8), bits, out)
    assert (out == 7).all()
