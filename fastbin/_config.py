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
  ``tests/test_config.py`` checks that this key still contains the CPU.
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
* No usable cache directory (a read-only install without a writable
  ``NUMBA_CACHE_DIR`` or user cache: Numba's "no locator available" at
  decoration time): :func:`jit` compiles in memory instead and says so once on
  stderr (``FASTBIN_NO_CACHE=1`` asks for that up front, silently).

Threading layer (Numba docs, "The Threading Layers"): ``tbb`` is safe for
concurrent calls of threaded kernels from several Python threads and for
``fork()`` after them; ``workqueue`` is fork-safe but aborts the process on
concurrent launches; GNU OpenMP (``omp`` on Linux) is thread-safe but a
``fork()`` after it hangs or kills the child. fastbin sets Numba's priority to
``THREADING_LAYER_PRIORITY`` (tbb, then workqueue; omp last) at import unless
the user chose (``NUMBA_THREADING_LAYER[_PRIORITY]``) or the layer is already
running, and preloads a pip-installed ``libtbb`` from ``sys.prefix/lib``
(Numba looks for it by name only, which misses a virtualenv's ``lib``). On a
layer that is not thread-safe, :func:`use_threads` gives the threaded kernels
to the main thread only; other threads get the serial kernels (same results).
Tested in ``tests/test_concurrency.py``.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading

import numba
import numpy as np
from numba.core.registry import cpu_target
from numba.np.ufunc import parallel as _numba_parallel

__all__ = [
    "CACHE",
    "FASTMATH",
    "FASTMATH_EXACT",
    "JIT_OPTIONS",
    "PARALLEL_MIN_WORK",
    "SIGN_MATMUL_UNPACK_MIN_ROWS_F32",
    "SIGN_MATMUL_LUT_MIN_ROWS",
    "SIGN_MATMUL_LUT_MIN_COLS",
    "LUT_NIBBLE_CHUNK_BYTES",
    "SIGN_MATMUL_UINT8_LUT_MIN_ROWS",
    "SIGN_MATMUL_UINT8_LUT16_MIN_ROWS",
    "INT16_LUT",
    "SIGN_MATMUL_BLAS",
    "SIGN_MATMUL_BLAS_MIN_ROWS",
    "SIGN_MATMUL_BLAS_MIN_COLS",
    "SIGN_MATMUL_BLAS_MIN_ROWS_BIG",
    "SIGN_MATMUL_BLAS_BIG",
    "SIGN_MATMUL_BLAS_CHUNK_BYTES",
    "SIGN_MATMUL_UINT8_LUT_MAX_K",
    "SIGN_MATMUL_UNPACK_MIN_ROWS_F64",
    "VECTOR_REGISTERS",
    "VECTOR_POPCOUNT",
    "vector_popcount",
    "vector_registers",
    "SIGN_MATMUL_UINT8_FLOAT_MIN_ROWS",
    "SIGN_MATMUL_UINT8_FLOAT_PATH",
    "SIGN_MATMUL_UINT8_FLOAT_HALF_COLS",
    "DENSE_ROWS_MAX_PRODUCT",
    "DENSE_BLAS_MAX_ROWS",
    "DENSE_BLAS_MIN_COLS",
    "DENSE_LUT_MIN_COLS",
    "DENSE_LUT_MIN_K",
    "DENSE_LUT_MIN_ROWS",
    "DENSE_LUT_MIN_ROWS_SHORT",
    "EXACT_LUT_MIN_ROWS",
    "EXACT_LUT_MIN_COLS",
    "EXACT_LUT_MIN_COLS_LONG",
    "FEW_ROWS",
    "THREADED_MIN_COLS",
    "ALIGNED_MIN_WORDS",
    "EVAL_CHUNK",
    "FLOAT_LUT",
    "INT32_MAX",
    "BINARY_MATMUL_MAX_K",
    "SIGN_MATMUL_UINT8_MAX_K",
    "THREADING_LAYER_PRIORITY",
    "THREAD_SAFE_LAYERS",
    "threads_allowed_here",
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

#: Set to False (with one line on stderr) when Numba finds no writable cache
#: directory for a kernel; every later kernel then compiles in memory too.
_CACHE_USABLE: list[bool] = [CACHE]

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
    # each about 50-130 us of serial work (benchmarks/results/tuning-notes.md)
    "binary_matmul": 1 << 19,  # m * n * n_words word operations
    "sign_matmul": 1 << 21,  # m * n * k multiply-adds
    "pack_signs": 1 << 20,  # elements
    "linear_softmax_ce": 1 << 22,  # m * k * c multiply-adds (each done twice)
}

#: ``sign_matmul`` on float rows: below this many rows of ``x`` the kernels
#: sum ``x`` signed straight from ``W``'s bits; from it on they unpack ``W``
#: to a ±1 buffer once and reuse it for every row (crossover measured on
#: Zen 4: benchmarks/results/tuning-notes.md).
SIGN_MATMUL_UNPACK_MIN_ROWS_F32: int = 8

#: ``sign_matmul`` on float32 rows where ``FLOAT_LUT``: from this many rows and
#: outputs on, the table-lookup kernel (``fastbin.kernels.sign_lut``; its
#: per-call nibble form of ``W`` costs k/4 bytes per output, repaid by a few
#: rows; its blocks are 64 outputs wide). Measured on the Xeon (rocketlake),
#: one thread: 1.2-3.6x sgemm from 8 rows and 256 outputs on, where the
#: unpacking kernel gave 0.3-1.2x (benchmarks/results/2026-12-03-rocketlake-lut.md).
SIGN_MATMUL_LUT_MIN_ROWS: int = 8
SIGN_MATMUL_LUT_MIN_COLS: int = 256
#: The lookup kernels' pass over the rows covers as many groups of 4 inputs as
#: keep the nibbles (indices) of that pass within this many bytes: half the 2 MiB
#: L2 of the Xeon measured. From 2 MiB on one pass ran up to 1.5x slower; 1 MiB
#: beat 512 KiB by 5-10% on the float32 tables (256 x 784 x 4096, 128 x 4096 x 4096)
#: and tied on the int16 ones (benchmarks/results/2026-12-03-rocketlake-lut16.md).
LUT_NIBBLE_CHUNK_BYTES: int = 1024 * 1024
#: ``sign_matmul`` on uint8 rows where ``FLOAT_LUT``: from this many rows (and
#: ``SIGN_MATMUL_LUT_MIN_COLS`` outputs, ``k <= SIGN_MATMUL_UINT8_LUT_MAX_K``) the
#: lookup kernel on float32 tables, exact there (every partial sum an integer of
#: at most ``255 * k <= 2**24``), else the bit-plane kernel. Measured on the Xeon
#: (rocketlake), one thread: 1.1-1.5x the bit-plane kernel from 128 rows, 0.45-0.8x
#: at 8-16 rows (benchmarks/results/2026-12-03-rocketlake-lut-uint8.md).
SIGN_MATMUL_UINT8_LUT_MIN_ROWS: int = 128
SIGN_MATMUL_UINT8_LUT_MAX_K: int = (1 << 24) // 255
#: ``sign_matmul`` on uint8 rows where ``INT16_LUT``: from this many rows (and
#: ``SIGN_MATMUL_LUT_MIN_COLS`` outputs; any ``k`` the int32 result holds) the
#: lookup kernel on int16 tables (``fastbin.kernels.sign_lut16``, exact), ahead of
#: both the float32 tables and the bit planes. Measured on the Xeon (rocketlake),
#: one thread: 1.0-1.9x the bit planes from 32 rows, 1.0-1.4x the float32 tables
#: from 128 rows; below 32 rows the bit planes win
#: (benchmarks/results/2026-12-03-rocketlake-lut16.md).
SIGN_MATMUL_UINT8_LUT16_MIN_ROWS: int = 32
#: ``sign_matmul`` where ``SIGN_MATMUL_BLAS`` (x86-64 without AVX-512F: no lookup
#: kernels): from ``MIN_COLS`` outputs and ``MIN_ROWS`` rows (or ``MIN_ROWS_BIG``
#: rows when ``k * n >= BIG``), float32 rows (and uint8 rows without a vector
#: popcount, converted to float32: exact while ``255 * k < 2**24``) multiply the
#: unpacked ±1 float32 signs with BLAS, ``CHUNK_BYTES`` of signs at a time (cache
#: blocking that fastbin's register-block kernel lacks, and no 64 MiB unpacking of
#: a 4096 x 4096 W). Measured with the AVX2 code path compiled on the Xeon
#: (``NUMBA_CPU_NAME=znver2``, AVX-512 features off, ``OPENBLAS_CORETYPE=Haswell``):
#: 0.84-0.99x sgemm on ±1 floats where the kernel gave 0.21-0.9x; the kernel stays
#: ahead below 64 rows of a small W and at n = 10
#: (benchmarks/results/2026-12-03-avx2-emulated.md).
SIGN_MATMUL_BLAS_MIN_ROWS: int = 64
SIGN_MATMUL_BLAS_MIN_ROWS_BIG: int = 16
SIGN_MATMUL_BLAS_BIG: int = 2048 * 2048
SIGN_MATMUL_BLAS_MIN_COLS: int = 256
SIGN_MATMUL_BLAS_CHUNK_BYTES: int = 4 << 20
SIGN_MATMUL_UNPACK_MIN_ROWS_F64: int = 5


#: ``dense_sign_matmul`` on float rows (``fastbin.ops.dense``), on m rows
#: of x times an (k, n) sign(W): the few-row kernel on int8 signs when
#: ``m == 1`` or ``m * n <= DENSE_ROWS_MAX_PRODUCT``; BLAS on ±1 floats when
#: ``m < DENSE_BLAS_MAX_ROWS``; from there on ``sign_matmul`` unless
#: ``n >= DENSE_BLAS_MIN_COLS`` (BLAS again) or the threaded ``sign_matmul``
#: is due. Measurements: ``benchmarks/results/``, the first layer of the models.
DENSE_ROWS_MAX_PRODUCT: int = 64
DENSE_BLAS_MAX_ROWS: int = 16
DENSE_BLAS_MIN_COLS: int = 64
#: ... and before all of these, on float32 rows where ``FLOAT_LUT``, the
#: table-lookup kernel (``fastbin.kernels.sign_lut.lut_product``, nibbles
#: straight from the real weights) from ``DENSE_LUT_MIN_COLS`` outputs and
#: ``DENSE_LUT_MIN_K`` inputs on, with ``DENSE_LUT_MIN_ROWS`` rows (k >= 512) or
#: ``DENSE_LUT_MIN_ROWS_SHORT`` (shorter rows: the tables cost more per output).
#: Measured on the Xeon (rocketlake), one thread, against BLAS on ±1 floats:
#: benchmarks/results/2026-12-03-rocketlake-dense-lut.md.
DENSE_LUT_MIN_COLS: int = 100
DENSE_LUT_MIN_K: int = 200
DENSE_LUT_MIN_ROWS: int = 64
DENSE_LUT_MIN_ROWS_SHORT: int = 256
#: The *exact* float product (``dense_sign_matmul(exact=True)``) where
#: ``FLOAT_LUT``: by table lookups on chunks of the grid integers
#: (``fastbin.kernels.sign_lut.exact_lut_product``, 3-4 lookups per input and
#: output) from ``EXACT_LUT_MIN_ROWS`` rows and ``EXACT_LUT_MIN_COLS`` outputs
#: (``EXACT_LUT_MIN_COLS_LONG`` from 2048 inputs on), else row by row on the
#: bits (``exact_sign_dot_rows``). Measured on the Xeon (rocketlake), one
#: thread: 1.1-3.2x the row kernel there (benchmarks/results/2026-12-03-rocketlake-dense-lut.md).
EXACT_LUT_MIN_ROWS: int = 8
EXACT_LUT_MIN_COLS: int = 64
EXACT_LUT_MIN_COLS_LONG: int = 100

#: Folded binary layers (``fastbin.runtime``): below this many rows the packed
#: products use the unblocked kernels of ``fastbin.kernels.few_rows`` (no
#: per-call scratch buffers).
FEW_ROWS: int = 16

#: The threaded ``binary_matmul`` of a folded model's float tail only from this
#: many outputs on (the logits: the threaded kernel measured 36x slower at
#: 8192 x 512 -> 10 on 2 cores).
THREADED_MIN_COLS: int = 64

#: Packed outputs of fewer words than this are allocated with ``np.empty``
#: (``aligned_words``' ``ctypes`` call costs about a microsecond).
ALIGNED_MIN_WORDS: int = 4096

#: Rows per forward pass of ``Model.forward`` / the runtime (bounds memory;
#: the folded and unfolded models chunk alike, so their products match).
EVAL_CHUNK: int = 8192

#: int32 outputs (``binary_matmul``, ``sign_matmul`` on uint8) hold every
#: result exactly while ``max|result| <= INT32_MAX``: the public functions
#: raise ``ValueError`` before any kernel runs for a longer ``k``.
INT32_MAX: int = 2**31 - 1
#: ``binary_matmul``: ``|k - 2 * popcount| <= k``.
BINARY_MATMUL_MAX_K: int = INT32_MAX
#: ``sign_matmul`` on uint8 rows: ``|x @ sign(W)| <= 255 * k`` (8,421,504).
SIGN_MATMUL_UINT8_MAX_K: int = INT32_MAX // 255

#: Numba's threading layer search order, set at import (see the module
#: docstring): tbb (thread- and fork-safe), else workqueue (fork-safe; threaded
#: kernels then only from the main thread), omp last (GNU OpenMP: not fork-safe).
THREADING_LAYER_PRIORITY: tuple[str, ...] = ("tbb", "workqueue", "omp")
#: Layers that allow concurrent threaded-kernel calls from several threads.
THREAD_SAFE_LAYERS: frozenset[str] = frozenset({"tbb", "omp"})


def _preload_tbb() -> None:
    """Load a pip-installed ``libtbb`` (``sys.prefix/lib``) globally, so that
    Numba's lookup by name finds it (ignored when absent or unloadable)."""
    if not sys.platform.startswith("linux"):
        return
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        path = os.path.join(prefix, "lib", "libtbb.so.12")
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            return


def _choose_threading_layer() -> None:
    if _numba_parallel._is_initialized:
        return  # already running: too late to choose
    _preload_tbb()  # also for a user's NUMBA_THREADING_LAYER=tbb
    if "NUMBA_THREADING_LAYER" in os.environ or "NUMBA_THREADING_LAYER_PRIORITY" in os.environ:
        return  # the user's choice
    numba.config.THREADING_LAYER_PRIORITY = list(THREADING_LAYER_PRIORITY)


_choose_threading_layer()

#: [whether the running layer is thread-safe], filled on the first threaded call.
_LAYER_THREAD_SAFE: list[bool] = []
_LAYER_LOCK = threading.Lock()
_REFUSED_NOTE: list[bool] = []


def _layer_thread_safe() -> bool:
    if not _LAYER_THREAD_SAFE:
        with _LAYER_LOCK:
            if not _LAYER_THREAD_SAFE:
                numba.get_num_threads()  # launches Numba's threading layer
                _LAYER_THREAD_SAFE.append(_numba_parallel.threading_layer() in THREAD_SAFE_LAYERS)
    return _LAYER_THREAD_SAFE[0]


def threads_allowed_here() -> bool:
    """Whether this thread may call a threaded kernel now: always on a
    thread-safe layer (``THREAD_SAFE_LAYERS``), else only from the main thread
    (concurrent launches would abort the process). The first refusal says so
    on stderr, once."""
    if _layer_thread_safe() or threading.current_thread() is threading.main_thread():
        return True
    if not _REFUSED_NOTE:
        _REFUSED_NOTE.append(True)
        sys.stderr.write(
            f"fastbin: Numba's threading layer {_numba_parallel.threading_layer()!r} is not thread-safe: "
            "threaded kernels run from the main thread only, other threads use the serial ones "
            "(pip install tbb for concurrent threaded calls)\n"
        )
    return False


def vector_registers(magic_tuple: tuple[str, str, str]) -> int:
    """How many SIMD registers the target of Numba's ``codegen.magic_tuple()``
    ``(triple, cpu name, features)`` has: 32 on AArch64 (NEON v0-v31) and on
    x86 with AVX-512 (zmm0-31), else 16 (x86 SSE/AVX/AVX2: xmm/ymm0-15; also
    the guess for any other target, where a small block costs little and a
    too-large one spills)."""
    triple, _cpu, features = magic_tuple
    arch = triple.split("-", 1)[0]
    if arch in ("aarch64", "arm64"):
        return 32
    if arch in ("x86_64", "i386", "i686") and "+avx512f" in features.split(","):
        return 32
    return 16


#: The vector register count of the CPU Numba compiles for, which picks the
#: register-block shape of ``sign_matmul``'s float dot products
#: (``fastbin.kernels._dot_blocks``): 4 x 5 blocks (20 accumulators) with 32
#: registers, as measured on Zen 4 (AVX-512); 4 x 3 blocks (12 accumulators +
#: 3 loaded rows, no spills) with 16 (the 4 x 5 loop spilled on AVX2;
#: measurements: benchmarks/results/tuning-notes.md).
#: Decided at import from ``magic_tuple()``: safe with ``cache=True`` because
#: Numba keys every cache entry by that same tuple (see above), so machine
#: code compiled with one block shape is only loaded on a CPU that picks the
#: same shape (also under ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES``, which
#: both the tuple and this choice follow).
_MAGIC_TUPLE = cpu_target.target_context.codegen().magic_tuple()
VECTOR_REGISTERS: int = vector_registers(_MAGIC_TUPLE)


def vector_popcount(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether the target of ``codegen.magic_tuple()`` has a native popcount
    of 64-bit vector lanes (x86 AVX-512 VPOPCNTDQ: ``vpopcntq``). Elsewhere
    LLVM builds vector popcounts from byte table lookups (AVX2 ``vpshufb``)
    or byte counts and widening adds (AArch64 ``cnt``)."""
    triple, _cpu, features = magic_tuple
    return triple.split("-", 1)[0] == "x86_64" and "+avx512vpopcntdq" in features.split(",")


#: Whether the CPU Numba compiles for has a native vector popcount; without
#: one, ``binary_matmul``'s lane kernel sums byte popcounts instead
#: (``fastbin.kernels._lanes_bytes``). Chosen at import from the same tuple
#: as the cache key (see above).
VECTOR_POPCOUNT: bool = vector_popcount(_MAGIC_TUPLE)

def float_lut(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether the target of ``codegen.magic_tuple()`` has AVX-512F's 16-lane
    float permute (``vpermps`` on zmm), which the table-lookup product of
    ``fastbin.kernels.sign_lut`` is written with (x86-64 only)."""
    triple, _cpu, features = magic_tuple
    return triple.split("-", 1)[0] == "x86_64" and "+avx512f" in features.split(",")


#: Whether few float32 rows of ``x @ sign(W)`` before a threshold take the
#: table-lookup kernel (``fastbin.kernels.sign_lut``) instead of the int8
#: multiply-add one; nothing calls (so nothing compiles) the lookup kernel
#: where this is False. Chosen at import from the same tuple as the cache key.
FLOAT_LUT: bool = float_lut(_MAGIC_TUPLE)


def int16_lut(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether the target of ``codegen.magic_tuple()`` has AVX-512BW's 32-lane int16
    permute (``vpermw`` on zmm) and byte multiply-adds (``pmaddubsw`` on zmm), which
    ``fastbin.kernels.sign_lut16`` is written with (x86-64 only)."""
    triple, _cpu, features = magic_tuple
    return triple.split("-", 1)[0] == "x86_64" and "+avx512bw" in features.split(",")


#: Whether many uint8 rows of ``sign_matmul`` take the int16 lookup kernel; nothing
#: calls (so nothing compiles) it where this is False. Chosen at import from the
#: same tuple as the cache key.
INT16_LUT: bool = int16_lut(_MAGIC_TUPLE)


def sign_matmul_blas(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether ``sign_matmul`` hands many rows to BLAS on unpacked signs: on x86-64
    without the lookup kernels (``float_lut`` False). Not on AArch64 (unmeasured
    there: the register-block kernel stays)."""
    return magic_tuple[0].split("-", 1)[0] == "x86_64" and not float_lut(magic_tuple)


#: Chosen at import from the same tuple as the cache key.
SIGN_MATMUL_BLAS: bool = sign_matmul_blas(_MAGIC_TUPLE)

#: Whether ``sign_matmul`` on uint8 rows may take the exact float32 path
#: (below). Only without a native vector popcount: with VPOPCNTDQ the
#: bit-plane kernel is fast and the float path was not measured there.
#: Chosen at import from the same tuple as the cache key (see above).
SIGN_MATMUL_UINT8_FLOAT_PATH: bool = not VECTOR_POPCOUNT

#: ``sign_matmul`` on uint8 rows: the kernel converts ``x`` to float32 and
#: multiplies with ``W`` unpacked to ±1 (exact, see ``fastbin.kernels.
#: sign_matmul``) instead of splitting rows into bit-planes from
#: ``m >= MIN_ROWS * n / (n + HALF_COLS)`` rows on: unpacking costs ~n, the
#: saving per row is a row's plane split plus a little per output (the float
#: block product beat the plane popcounts per output), so few rows repay a
#: narrow W and at most ``MIN_ROWS`` a wide one (fitted on Zen 2:
#: benchmarks/results/tuning-notes.md).
SIGN_MATMUL_UINT8_FLOAT_MIN_ROWS: int = 40
SIGN_MATMUL_UINT8_FLOAT_HALF_COLS: int = 92


def jit(*args, **overrides):
    """``numba.njit`` with fastbin's options; usable bare or with overrides.

    When Numba finds no writable cache directory for the function ("no
    locator available"), it is compiled in memory instead, and so is every
    later one (one line on stderr, the first time)."""
    if args and callable(args[0]):
        return _decorate(args[0], (), overrides)
    return lambda func: _decorate(func, args, overrides)


def _decorate(func, args, overrides):
    options = {**JIT_OPTIONS, **overrides}
    if not _CACHE_USABLE[0]:
        options["cache"] = False
    try:
        return numba.njit(*args, **options)(func)
    except RuntimeError as exc:
        if not options.get("cache") or "no locator available" not in str(exc):
            raise
    _disable_disk_cache()
    return numba.njit(*args, **{**options, "cache": False})(func)


def _disable_disk_cache() -> None:
    global CACHE
    if _CACHE_USABLE[0]:
        _CACHE_USABLE[0] = False
        CACHE = False
        JIT_OPTIONS["cache"] = False
        sys.stderr.write(
            "fastbin: no writable Numba cache directory (read-only install; set NUMBA_CACHE_DIR to a writable "
            "directory to cache): kernels compile in memory on each run (FASTBIN_NO_CACHE=1 silences this)\n"
        )


def jit_parallel(*args, **overrides):
    """Like :func:`jit` with ``parallel=True``, for kernels with ``prange``."""
    return jit(*args, **{"parallel": True, **overrides})


def jit_disabled() -> bool:
    """True when ``NUMBA_DISABLE_JIT=1``: kernels then run as plain Python."""
    return bool(numba.config.DISABLE_JIT)


def use_threads(kernel: str, work: int, threads: bool | None) -> bool:
    """Whether a public function should call the threaded kernel.

    ``threads=None`` means automatic: ``work`` (in the unit of
    ``PARALLEL_MIN_WORK[kernel]``) at least the threshold and more than one
    Numba thread. The cheap test comes first: ``numba.get_num_threads()``
    costs about a microsecond, as much as a whole 1 x 784 product.
    ``True``/``False`` (or ``numpy.bool_``) force the choice, except that on a threading layer
    that is not thread-safe only the main thread gets the threaded kernel
    (:func:`threads_allowed_here`). Anything else (``2``, ``"yes"``) is a
    ``TypeError`` naming ``threads``, raised before any kernel runs.
    """
    if threads is None:
        if work < PARALLEL_MIN_WORK[kernel] or numba.get_num_threads() <= 1:
            return False
    elif threads is False or threads is True:
        if not threads:
            return False
    elif isinstance(threads, np.bool_):
        if not threads:
            return False
    else:  # 2, "yes", 1.0: not a choice of the two
        raise TypeError(f"threads must be None, True or False, got {threads!r}")
    return threads_allowed_here()
