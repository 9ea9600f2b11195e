"""Helpers shared by the benchmark files (not a test module).

Every benchmark goes through :func:`measure`, which

* puts the benchmark in its group (one group per workload, stable ids such as
  ``binary_matmul/128x784x10`` that do not change between quick and full mode),
* records what ``benchmarks/report.py`` needs in ``extra_info``: the
  implementation, the shape, the threads it used and the amount of work (so a
  rate and a fraction of the machine's ceiling can be computed),
* makes one untimed warm-up call (JIT compilation happens there),
* pins Numba to one thread for single-thread rows.

``FASTBIN_BENCH_QUICK=1`` selects small sizes and one round per benchmark.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

__all__ = [
    "QUICK",
    "measure",
    "numba_threads",
    "size",
    "pm_one",
    "assert_same",
]

#: Quick mode: small sizes, one round, no speed claims (CI smoke test).
QUICK: bool = os.environ.get("FASTBIN_BENCH_QUICK", "") not in ("", "0")

#: Implementations whose rows run on one thread.
SINGLE_THREAD_IMPLS = frozenset({"reference", "numpy", "fastbin", "torch", "autograd", "ceiling",
                                 "runtime-numba", "runtime-numpy", "onnxruntime"})
#: Single-thread implementations that run Numba code (pinned to one Numba thread).
NUMBA_PINNED_IMPLS = frozenset({"fastbin", "runtime-numba"})


def size(full, quick):
    """``full`` normally, ``quick`` under ``FASTBIN_BENCH_QUICK=1``."""
    return quick if QUICK else full


@contextlib.contextmanager
def numba_threads(n: int | None):
    """Run the block with ``numba.set_num_threads(n)`` (``None``: unchanged)."""
    if n is None:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _threads_for(impl: str) -> int:
    if impl in SINGLE_THREAD_IMPLS:
        return 1
    import numba

    return int(numba.get_num_threads())


def measure(
    benchmark,
    fn,
    *,
    group: str,
    impl: str,
    shape: str,
    work: float | None = None,
    unit: str | None = None,
    slow: bool = False,
    rounds: int | None = None,
    note: str = "",
):
    """Time ``fn()`` (no arguments; inputs are built by the caller beforehand).

    ``group``: stable workload id; ``impl``: implementation name;
    ``shape``: human-readable size; ``work``/``unit``: amount of work per call
    (``"word-ops"`` for xor+popcount word operations, ``"flop"`` for float
    multiply-adds counted as 2) used for rates and ceiling fractions;
    ``slow``: a call that takes ~0.1 s or more (fewer, fixed rounds);
    ``rounds``: exactly this many rounds of one call each, in quick mode too
    (e.g. one fresh process per round: the median is over processes).
    Returns the warm-up call's result.
    """
    threads = _threads_for(impl)
    benchmark.group = group
    benchmark.extra_info.update(
        group_id=group,
        impl=impl,
        shape=shape,
        threads=threads,
        work=work,
        unit=unit,
        quick=QUICK,
        note=note,
    )
    # fastbin's single-thread rows: also pin Numba (kernels without a
    # ``threads=`` argument pick their path themselves).
    pin = 1 if impl in NUMBA_PINNED_IMPLS else None
    with numba_threads(pin):
        result = fn()  # warm-up: JIT compilation, caches, allocator
        if rounds is not None:
            benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
        elif QUICK:
            benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
        elif slow:
            benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=0)
        else:
            benchmark(fn)
    return result


def pm_one(rng, shape, dtype=np.float32):
    """A random matrix of -1/+1 of ``dtype``."""
    return np.where(rng.random(shape) < 0.5, -1, 1).astype(dtype)


def assert_same(actual, expected, *, rtol=1e-4, atol=1e-4, what=""):
    """Untimed sanity check that an implementation computes the same thing as
    the reference (a benchmark of a wrong result is worthless)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if np.issubdtype(expected.dtype, np.integer) and np.issubdtype(actual.dtype, np.integer):
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)
