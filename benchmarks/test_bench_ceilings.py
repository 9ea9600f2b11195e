"""The machine's own ceilings, so each kernel can be shown as a fraction of them.

* ``ceiling/xor_popcount``: a jitted loop over two cache-resident uint64
  arrays doing exactly a binary matmul's inner step (load, load, xor,
  popcount, add) with fastbin's Numba options: word operations per second on
  one thread. ``binary_matmul``'s word-ops/s are divided by this.
* ``ceiling/sgemm``: NumPy float32 matmul (BLAS sgemm) on one thread, in
  GFLOP/s (2 flops per multiply-add). Float rows are divided by this.
"""
import numpy as np
from benchutil import measure, size

from fastbin._config import jit
from fastbin.kernels.intrinsics import popcount

#: 2 x 1024 words = 16 KiB: resident in L1 on every current x86/ARM core.
XOR_WORDS = 1024
XOR_REPEATS = size(20_000, 200)
SGEMM_N = size(1024, 128)


@jit
def xor_popcount_rate(a, b, repeats):
    """``sum(popcount(a ^ b))`` over ``repeats`` passes (a changes a little
    between passes)."""
    total = 0
    for r in range(repeats):
        for i in range(a.shape[0]):
            total += popcount(a[i] ^ b[i])
        # a store per pass keeps LLVM from computing the (otherwise
        # loop-invariant) inner sum once and multiplying it.
        a[r % a.shape[0]] += np.uint64(1)
    return total


def test_xor_popcount_ceiling(benchmark, rng):
    kernel = xor_popcount_rate
    a = rng.integers(0, 2**63, size=XOR_WORDS, dtype=np.uint64)
    b = rng.integers(0, 2**63, size=XOR_WORDS, dtype=np.uint64)
    repeats = XOR_REPEATS
    result = measure(
        benchmark, lambda: kernel(a, b, repeats), group="ceiling/xor_popcount", impl="ceiling",
        shape=f"2 x {XOR_WORDS} uint64 (L1), {repeats} passes",
        work=float(XOR_WORDS) * repeats, unit="word-ops",
    )
    assert 0 < result <= 64 * XOR_WORDS * repeats


def test_sgemm_ceiling(benchmark, rng):
    n = SGEMM_N
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    out = measure(
        benchmark, lambda: a @ b, group="ceiling/sgemm", impl="ceiling",
        shape=f"{n}x{n}x{n} float32 (NumPy BLAS)", work=2.0 * n**3, unit="flop",
    )
    assert out.shape == (n, n)
