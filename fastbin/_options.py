"""Every Numba option fastbin uses, in one place.

Kernels never pass options to Numba themselves: they are decorated with
:func:`jit` (serial) or :func:`jit_parallel` (``prange`` loops), and the public
layer picks between a serial and a threaded kernel with the thresholds below.

Why these options:

* ``cache=True``: the first call compiles and writes the machine code next to
  the module (or to Numba's user cache dir); later processes load it. Numba keys
  every cache entry by ``codegen.magic_tuple()`` = (target triple, host CPU
  name, CPU feature string), so a cache written on a Zen 4 with AVX-512 is never
  served to an ARM64 board or an older x86: they compile their own.
  ``tests/test_options.py`` checks that this key still contains the CPU.
* ``fastmath``: only flags that keep infinities and NaNs meaningful. ``nnan``
  and ``ninf`` are left out on purpose: a stable softmax subtracts the row max
  and relies on ``exp(-inf) == 0``. ``reassoc`` lets LLVM vectorise float
  reductions (so sums differ from NumPy's pairwise sums in the last bits; the
  tests compare with a per-dtype tolerance). ``afn`` is left out: ``exp`` and
  ``log`` stay the correctly rounded libm versions.
* ``error_model="numpy"``: division by zero gives inf/nan as in NumPy instead of
  a Python exception check in every inner loop.
* ``boundscheck=False``: kernels trust their inputs; the public layer
  (``fastbin._validate``) checks shapes before any kernel runs.
"""
from __future__ import annotations

import os

import numba

__all__ = [
    "CACHE",
    "FASTMATH",
    "FASTMATH_EXACT",
    "JIT_OPTIONS",
    "PARALLEL_MIN_WORK",
    "SIGN_MATMUL_UNPACK_MIN_ROWS_F32",
    "SIGN_MATMUL_UNPACK_MIN_ROWS_F64",
    "jit",
    "jit_parallel",
    "jit_disabled",
    "use_threads",
]

#: Set ``FASTBIN_NO_CACHE=1`` to compile in memory only (read-only installs).
CACHE: bool = os.environ.get("FASTBIN_NO_CACHE", "") in ("", "0")

FASTMATH: frozenset[str] = frozenset({"nsz", "arcp", "contract", "reassoc"})

#: For hand-written elementary functions (the vectorised ``exp`` of the softmax
#: kernels): ``reassoc`` would let LLVM fold the Cody-Waite split
#: ``(x - n*LN2_HI) - n*LN2_LO`` back into ``x - n*LN2`` (measured: 213 ulp
#: instead of 1); ``contract`` alone keeps the FMAs, which only add accuracy.
FASTMATH_EXACT: frozenset[str] = frozenset({"contract"})

JIT_OPTIONS: dict = dict(
    nogil=True,
    cache=CACHE,
    fastmath=set(FASTMATH),
    error_model="numpy",
    boundscheck=False,
)

#: Minimum amount of work (inner-loop iterations, kernel-specific unit) before
#: a threaded kernel is used instead of the serial one. An empty parallel region
#: costs 1-2 us on the 2-core development machine, so small calls stay serial.
PARALLEL_MIN_WORK: dict[str, int] = {
    # H1: serial ~10 Gword/s, ~25 GMAC/s, ~8 Gelem/s on Zen 4, so each
    # threshold is ~50-130 us of serial work (timings noisy on a shared box).
    "binary_matmul": 1 << 19,  # m * n * n_words word operations
    "sign_matmul": 1 << 21,  # m * n * k multiply-adds
    "pack_signs": 1 << 20,  # elements
    "linear_softmax_ce": 1 << 22,  # m * k * c multiply-adds (each done twice)
}

#: ``sign_matmul`` on float rows: below this many rows of ``x`` the kernels
#: sum ``x`` signed straight from ``W``'s bits; from it on they unpack ``W``
#: to a ±1 buffer once and reuse it for every row. Measured crossover on
#: Zen 4 (k = 784, n = 10 and 100, kernels alone): float32 bits faster up to
#: m = 7 (1.58 vs 2.23 us at m = 4), about equal at m = 8; float64 faster up
#: to m = 4, about equal or slower from m = 5 (64 doubles per word: 8 zmm).
SIGN_MATMUL_UNPACK_MIN_ROWS_F32: int = 8
SIGN_MATMUL_UNPACK_MIN_ROWS_F64: int = 5


def jit(*args, **overrides):
    """``numba.njit`` with fastbin's options; usable bare or with overrides."""
    options = {**JIT_OPTIONS, **overrides}
    if args and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)


def jit_parallel(*args, **overrides):
    """Like :func:`jit` with ``parallel=True``, for kernels with ``prange``."""
    return jit(*args, **{"parallel": True, **overrides})


def jit_disabled() -> bool:
    """True when ``NUMBA_DISABLE_JIT=1``: kernels then run as plain Python."""
    return bool(numba.config.DISABLE_JIT)


def use_threads(kernel: str, work: int, threads: bool | None) -> bool:
    """Whether a public function should call the threaded kernel.

    ``threads=None`` means automatic (threshold above and more than one Numba
    thread available); ``True``/``False`` force the choice.
    """
    if threads is not None:
        return bool(threads)
    return numba.get_num_threads() > 1 and work >= PARALLEL_MIN_WORK[kernel]
