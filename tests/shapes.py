"""The shape grid shared by the packed-product tests, the guard that keeps
its largest points out of the plain-Python (NUMBA_DISABLE_JIT=1) run, and the
uint8 exactness check that every uint8 path of ``sign_matmul`` is held to."""
import numba
import numpy as np
import pytest

import fastbin
from fastbin import reference

KS = [1, 63, 64, 65, 127, 128, 784, 1000]
MS = [1, 3, 17, 128]
NS = [1, 2, 10, 33]


def skip_big_without_jit(work):
    """The largest grid points take seconds as plain Python; the JIT run covers them."""
    if numba.config.DISABLE_JIT and work > 200_000:
        pytest.skip("large grid point: run with the JIT")


def assert_uint8_sign_matmul_exact(rng, m, k, n, threads=(False, True)):
    """``fastbin.sign_matmul`` on strided uint8 rows (row 0 all 255) and random weights
    whose output 0 is all -1 (summing -255 * k): int32, the reference's bits, for each
    ``threads`` choice."""
    x = rng.integers(0, 256, (m, 2 * k), dtype=np.uint8)[:, ::2]  # strided
    x[0] = 255
    w = rng.standard_normal((k, n)).astype(np.float32)
    w[:, 0] = -1.0  # an output summing -255 * k
    packed = fastbin.pack_weights(w)
    want = reference.sign_matmul(x, packed)
    assert want[0, 0] == -255 * k
    for choice in threads:
        got = fastbin.sign_matmul(x, packed, threads=choice)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want)
