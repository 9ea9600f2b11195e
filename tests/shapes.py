"""The shape grid shared by the packed-product tests, and the guard that keeps
its largest points out of the plain-Python (NUMBA_DISABLE_JIT=1) run."""
import numba
import pytest

KS = [1, 63, 64, 65, 127, 128, 784, 1000]
MS = [1, 3, 17, 128]
NS = [1, 2, 10, 33]


def skip_big_without_jit(work):
    """The largest grid points take seconds as plain Python; the JIT run covers them."""
    if numba.config.DISABLE_JIT and work > 200_000:
        pytest.skip("large grid point: run with the JIT")
