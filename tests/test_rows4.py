"""The 4-row byte-popcount binary kernel (``fastbin.kernels.binary_product.rows4``) and the
fused pass's use of it: against ``fastbin.reference`` where the byte lanes are reduced (31
chunks of 16 bytes; an odd last word joins the last block, then at most 30 chunks), at odd
word counts and with leftover rows of ``w``; padding bits refused, in either operand, at odd
and even word counts, in every group of rows of ``w`` (8, 4, 1)."""
from __future__ import annotations

import numpy as np
import pytest

import fastbin
from fastbin import reference as R
from fastbin.kernels.binary_product.rows4 import (
    CHUNKS_PER_BLOCK,
    binary_dot_rows4,
    binary_matmul_rows4,
    xor_counts1,
    xor_counts4,
)

#: k around the byte lanes' reduction (31 chunks = 62 words = 3968 bits) and an odd last word
K_GRID = (1, 64, 128, 129, 784, 3841, 3968, 3969, 64 * 2 * CHUNKS_PER_BLOCK + 64 * 3 + 1, 10000)


@pytest.mark.parametrize("k", K_GRID)
def test_rows4_matches_reference(k, rng):
    for m, n in ((1, 1), (1, 7), (2, 9), (3, 4), (1, 8), (2, 13), (1, 20)):
        a = fastbin.pack_signs(rng.standard_normal((m, k)))
        w = fastbin.pack_weights(rng.standard_normal((k, n)))
        want = R.binary_matmul(a, w)
        out = np.full((m, n), 7, np.int32)
        assert binary_matmul_rows4(a.bits, w.bits, k, out)
        np.testing.assert_array_equal(out, want)
        out64 = np.full((m, n), 7, np.int64)
        binary_dot_rows4(a.bits, w.bits, k, out64)
        np.testing.assert_array_equal(out64, want)


@pytest.mark.parametrize("n_words", [2 * CHUNKS_PER_BLOCK - 1, 2 * CHUNKS_PER_BLOCK + 1, 4 * CHUNKS_PER_BLOCK + 1])
def test_counts_of_all_ones_words(n_words):
    """Every byte of every chunk at its largest count (8): the byte lanes' limit (31 * 8 = 248),
    where the odd last word joins a last block of 30 chunks (61 words), or an empty one after a
    whole block (63 words, 125 words)."""
    a = np.full((1, n_words), np.uint64(2**64 - 1))
    w = np.zeros((13, n_words), np.uint64)
    w[2] = a[0]
    w[9] = a[0]
    every = 64 * n_words
    assert xor_counts4(a, 0, w, 0) == (every, every, 0, every)
    assert xor_counts4(a[0], 0, w, 1) == (every, 0, every, every)  # a 1-D row
    assert xor_counts1(a, 0, w, 4) == every
    out = np.zeros((1, 13), np.int64)
    binary_dot_rows4(a, w, every, out)  # 8 + 4 + 1 rows of w
    want = np.full(13, -every)
    want[[2, 9]] = every
    np.testing.assert_array_equal(out[0], want)


def test_rows4_refuses_padding_bits(rng):
    """Padding bits of ``a`` are found before anything is written; those of ``w`` (with an odd
    word count while counting) in any group of its rows (8, 4, 1 rows at a time)."""
    a = fastbin.pack_signs(rng.standard_normal((1, 70)))
    w = fastbin.pack_weights(rng.standard_normal((70, 5)))
    bits = a.bits.copy()
    bits[0, -1] |= np.uint64(1) << np.uint64(63)
    out = np.full((1, 5), 7, np.int32)
    assert not binary_matmul_rows4(bits, w.bits, 70, out)
    assert (out == 7).all()


@pytest.mark.parametrize("k", [70, 130, 784])  # 2, 3, 13 words
@pytest.mark.parametrize("row", [0, 7, 9, 12])
def test_rows4_refuses_padding_bits_of_w(k, row, rng):
    a = fastbin.pack_signs(rng.standard_normal((2, k)))
    w = fastbin.pack_weights(rng.standard_normal((k, 13)))
    out = np.zeros((2, 13), np.int32)
    assert binary_matmul_rows4(a.bits, w.bits, k, out)
    for bit in (k % 64, 63):
        bits = w.bits.copy()
        bits[row, -1] |= np.uint64(1) << np.uint64(bit)
        assert not binary_matmul_rows4(a.bits, bits, k, out), (k, row, bit)
