"""Every Numba option fastbin uses, the CPU probes and the choice of threshold table.

Kernels never pass options to Numba themselves: they are decorated with
:func:`jit` (serial) or :func:`jit_parallel` (``prange`` loops). The planners
(``fastbin.kernels.sign_product``, ``fastbin.kernels.binary_product``) pick a kernel
with the probes below and the per-CPU threshold table ``TABLE`` (``fastbin._tables``),
read when a plan is made.

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
* The cache of a kernel is made when it first compiles or loads (``_LazyCache``), and a
  cached kernel loads without Numba's registry refresh (``_KernelCache``): a fresh
  process with a warm cache pays for the kernels it calls, not for the compiler.
* No usable cache directory (a read-only install without a writable
  ``NUMBA_CACHE_DIR`` or user cache: Numba's "no locator available" when the
  first kernel's cache is made): kernels compile in memory instead, and fastbin says
  so once on stderr (``FASTBIN_NO_CACHE=1`` asks for that up front, silently).

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
import types

import numba
import numpy as np
from numba.core.caching import FunctionCache, NullCache
from numba.core.registry import cpu_target
from numba.core.runtime import nrt as _nrt
from numba.np.ufunc import parallel as _numba_parallel

from ._tables import TABLES, Table, cpu_kind, edited

__all__ = [
    "CACHE",
    "FASTMATH",
    "FASTMATH_EXACT",
    "JIT_OPTIONS",
    "CPU_KIND",
    "TABLE",
    "FLOAT_LUT",
    "INT16_LUT",
    "INT8_MADD",
    "INT8_DOT",
    "FLOAT_LUT8",
    "BYTE_LUT16",
    "SIGN_MATMUL_BLAS",
    "SIGN_MATMUL_UINT8_FLOAT_PATH",
    "VECTOR_REGISTERS",
    "VECTOR_POPCOUNT",
    "DOT_BLOCK",
    "LOGITS_BLOCK",
    "BYTE_POPCOUNT_LANES",
    "XOR_COUNT_ROWS4",
    "UINT8_MASK_ROWS",
    "FUSED_BYTE_TABLES",
    "UINT8_UDOT",
    "DOT_PRODUCT",
    "DOT_PRODUCT_CPUS",
    "dot_product",
    "vector_popcount",
    "vector_registers",
    "INT32_MAX",
    "BINARY_MATMUL_MAX_K",
    "SIGN_MATMUL_UINT8_MAX_K",
    "THREADING_LAYER_PRIORITY",
    "THREAD_SAFE_LAYERS",
    "threads_allowed_here",
    "jit",
    "jit_parallel",
    "jit_disabled",
    "kernel_cached",
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


# The probes: what the CPU Numba compiles for can run, each decided once at import
# from ``magic_tuple()``, the tuple Numba keys every cache entry by (see above).
# Only the planners (``fastbin.kernels.sign_product``, ``fastbin.kernels.binary_product``)
# read them, when a plan is made (tests/test_planner.py greps for that).
_MAGIC_TUPLE = cpu_target.target_context.codegen().magic_tuple()
#: SIMD registers (32: AVX-512, AArch64; else 16).
VECTOR_REGISTERS: int = vector_registers(_MAGIC_TUPLE)


def vector_popcount(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether the target of ``codegen.magic_tuple()`` has a native popcount
    of 64-bit vector lanes (x86 AVX-512 VPOPCNTDQ: ``vpopcntq``). Elsewhere
    LLVM builds vector popcounts from byte table lookups (AVX2 ``vpshufb``)
    or byte counts and widening adds (AArch64 ``cnt``)."""
    triple, _cpu, features = magic_tuple
    return triple.split("-", 1)[0] == "x86_64" and "+avx512vpopcntdq" in features.split(",")


#: A native vector popcount (AVX-512 VPOPCNTDQ).
VECTOR_POPCOUNT: bool = vector_popcount(_MAGIC_TUPLE)


#: AArch64 CPUs whose LLVM definition has the dot-product extension (``udot``/``sdot``,
#: Armv8.2 optional, Armv8.4 on): named by ``NUMBA_CPU_NAME`` or the host, without a
#: ``-dotprod`` feature string.
DOT_PRODUCT_CPUS: frozenset[str] = frozenset({
    "cortex-a55", "cortex-a65", "cortex-a65ae", "cortex-a75", "cortex-a76", "cortex-a76ae", "cortex-a77",
    "cortex-a78", "cortex-a78ae", "cortex-a78c", "cortex-a510", "cortex-a520", "cortex-a710", "cortex-a715",
    "cortex-a720", "cortex-x1", "cortex-x1c", "cortex-x2", "cortex-x3", "cortex-x4", "neoverse-e1",
    "neoverse-n1", "neoverse-n2", "neoverse-v1", "neoverse-v2", "ampere1", "ampere1a", "apple-m1", "apple-m2",
    "apple-m3", "apple-a13", "apple-a14", "apple-a15", "apple-a16", "apple-a17",
})


def dot_product(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether the target of ``codegen.magic_tuple()`` has AArch64's dot-product instructions
    (``udot`` on 16 bytes into 4 uint32 lanes): a ``+dotprod`` feature (a Raspberry Pi 5's
    host features), or a CPU name of ``DOT_PRODUCT_CPUS`` not turned off by ``-dotprod``
    (``NUMBA_CPU_NAME=cortex-a76`` under QEMU, whose feature string lists no ``dotprod``)."""
    triple, cpu, features = magic_tuple
    if triple.split("-", 1)[0] not in ("aarch64", "arm64"):
        return False
    listed = features.split(",")
    return "+dotprod" in listed or (cpu in DOT_PRODUCT_CPUS and "-dotprod" not in listed)


#: AArch64 with ``udot`` (the uint8 products' byte-mask sums use it: ``UINT8_UDOT``).
DOT_PRODUCT: bool = dot_product(_MAGIC_TUPLE)


def float_lut(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether the target of ``codegen.magic_tuple()`` has AVX-512F's 16-lane
    float permute (``vpermps`` on zmm), which the table-lookup product of
    ``fastbin.kernels.sign_product.avx512`` is written with (x86-64 only)."""
    triple, _cpu, features = magic_tuple
    return triple.split("-", 1)[0] == "x86_64" and "+avx512f" in features.split(",")


#: The float32 table-lookup kernels can run (nothing calls, so nothing compiles, them elsewhere).
FLOAT_LUT: bool = float_lut(_MAGIC_TUPLE)


def int16_lut(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether the target of ``codegen.magic_tuple()`` has AVX-512BW's 32-lane int16
    permute (``vpermw`` on zmm) and byte multiply-adds (``pmaddubsw`` on zmm), which
    ``fastbin.kernels.sign_product.avx512_int16`` is written with (x86-64 only)."""
    triple, _cpu, features = magic_tuple
    return triple.split("-", 1)[0] == "x86_64" and "+avx512bw" in features.split(",")


#: The int16 table-lookup kernels can run.
INT16_LUT: bool = int16_lut(_MAGIC_TUPLE)


def int8_madd(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether the target of ``codegen.magic_tuple()`` has AVX2's 32-byte multiply-adds
    (``vpmaddubsw``, ``vpmaddwd`` on ymm), which ``fastbin.kernels.sign_product.avx2`` is
    written with (x86-64 only; every AVX-512 CPU has them too)."""
    triple, _cpu, features = magic_tuple
    return triple.split("-", 1)[0] == "x86_64" and "+avx2" in features.split(",")


#: The AVX2 byte multiply-add kernels can run.
INT8_MADD: bool = int8_madd(_MAGIC_TUPLE)
def int8_dot(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether the target of ``codegen.magic_tuple()`` has AVX-512 VNNI's byte dot products
    on zmm (``vpdpbusd``) and AVX-512BW's byte masks (``vpmovm2b``), which
    ``fastbin.kernels.sign_product.avx512_vnni`` is written with (x86-64 only: Ice Lake,
    Rocket Lake, Zen 4, Zen 5)."""
    triple, _cpu, features = magic_tuple
    flags = features.split(",")
    return triple.split("-", 1)[0] == "x86_64" and "+avx512vnni" in flags and "+avx512bw" in flags


#: The VNNI byte dot-product kernels can run.
INT8_DOT: bool = int8_dot(_MAGIC_TUPLE)
#: The AVX2 8-entry float32 table lookups (``vpermps`` on ymm:
#: ``fastbin.kernels.sign_product.avx2_lut``) can run: the same CPUs (AVX2).
FLOAT_LUT8: bool = INT8_MADD
#: AVX2's byte table lookups (``vpshufb`` on ymm: ``fastbin.kernels.binary_product.avx2``)
#: can run: the same CPUs (AVX2).
BYTE_LUT16: bool = INT8_MADD


def sign_matmul_blas(magic_tuple: tuple[str, str, str]) -> bool:
    """Whether ``sign_matmul`` hands many rows to BLAS on unpacked signs: on x86-64
    without the lookup kernels (``float_lut`` False). Not on AArch64 (unmeasured
    there: the register-block kernel stays)."""
    return magic_tuple[0].split("-", 1)[0] == "x86_64" and not float_lut(magic_tuple)


#: Many rows through BLAS on unpacked signs (x86-64 without AVX-512F).
SIGN_MATMUL_BLAS: bool = sign_matmul_blas(_MAGIC_TUPLE)

#: uint8 rows may take the exact float32 register blocks (only without a native vector
#: popcount: with VPOPCNTDQ the bit planes are fast; benchmarks/results/tuning-notes.md).
SIGN_MATMUL_UINT8_FLOAT_PATH: bool = not VECTOR_POPCOUNT

#: The CPU kind (``fastbin._tables.cpu_kind``) and its threshold table, chosen once here;
#: read when a plan is made (never inside jitted code).
CPU_KIND: str = cpu_kind(_MAGIC_TUPLE)
TABLE: dict = TABLES[CPU_KIND]

# Compile-time choices, keyed by the CPU like the cache entries that hold them (so a
# cache written with one choice is only loaded on a CPU that makes the same one, also
# under NUMBA_CPU_NAME/NUMBA_CPU_FEATURES): register-block shapes and the popcount lanes.
#: ``sign_matmul``'s float register blocks (``kernels.sign_product._dot_blocks``): 4 x 5
#: with 32 vector registers, 4 x 3 with 16 (the 4 x 5 loop spilled on AVX2).
DOT_BLOCK: str = "4x5" if VECTOR_REGISTERS >= 32 else "4x3"
#: The fused linear + softmax CE's logit blocks (``kernels.linear_ce``).
LOGITS_BLOCK: str = "8x2" if VECTOR_REGISTERS >= 32 else "4x3"
#: ``binary_matmul``'s lane kernel sums byte popcounts (no native vector popcount).
BYTE_POPCOUNT_LANES: bool = not VECTOR_POPCOUNT

#: The fused batch-1 pass's packed stages (``fastbin.runtime._fused``) count 4 rows of W per
#: load of the activation words in byte lanes (``binary_product.rows4.xor_counts4``) instead of
#: one row at a time in 8-word vectors with masked loads (``intrinsics.xor_count``): on AArch64,
#: where a masked load is a chain of scalar lane loads. A compile-time choice keyed by the CPU
#: like the cache (the jitted pass reads it), not a table entry.
XOR_COUNT_ROWS4: bool = CPU_KIND == "neon"
#: The fused batch-1 pass's first layer on uint8 rows sums the pixels under byte masks made from
#: W's bits (``sign_product.uint8_rows.mask_sums4``: ``tbl``/``cmtst``, and/``uadalp``) instead
#: of bit planes of the row (``_lanes.plane_dot``: a scalar popcount per plane and word): on
#: AArch64. A compile-time choice keyed by the CPU like ``XOR_COUNT_ROWS4``.
UINT8_MASK_ROWS: bool = CPU_KIND == "neon"
#: The fused batch-1 pass's first layer on uint8 rows and its packed stages by 16-entry byte
#: tables (``vpshufb``: ``sign_product.nibble_block_avx2``, ``binary_product.count_block_avx2``)
#: instead of the bit planes and per-output popcounts: on x86-64 with AVX2 but no vector popcount
#: (16 ymm registers; ``plane_block``/``count_block``'s 8-output blocks spill there). A
#: compile-time choice keyed by the CPU like ``XOR_COUNT_ROWS4``.
FUSED_BYTE_TABLES: bool = BYTE_LUT16 and not VECTOR_POPCOUNT
#: The uint8 products' byte-mask sums (``sign_product.uint8_rows``, ``sign_product.uint8_masks``)
#: by ``udot`` of the pixels with the 0xFF masks (255 * the sum, divided once at the end) instead
#: of ``and`` + ``uadalp``: on AArch64 with the dot-product extension (``DOT_PRODUCT``). A
#: compile-time choice keyed by the CPU like the cache.
UINT8_UDOT: bool = DOT_PRODUCT


def jit(*args, **overrides):
    """``numba.njit`` with fastbin's options; usable bare or with overrides.

    When Numba finds no writable cache directory for the function ("no
    locator available", on its first compile), it is compiled in memory instead,
    and so is every later one (one line on stderr, the first time)."""
    if args and callable(args[0]):
        return _decorate(args[0], (), overrides)
    return lambda func: _decorate(func, args, overrides)


def _decorate(func, args, overrides):
    options = {**JIT_OPTIONS, **overrides}
    cache = options.pop("cache") and _CACHE_USABLE[0]
    if args:  # explicit signatures compile now: Numba's own cache has to be there first
        options["cache"] = cache
    dispatcher = numba.njit(*args, **options)(func)
    if cache and not args and not numba.config.DISABLE_JIT:
        dispatcher._cache = _LazyCache(dispatcher.py_func)  # Dispatcher.enable_caching, on first use
    return dispatcher


class _LazyCache:
    """A kernel's on-disk cache (:class:`_KernelCache`), made when the kernel first compiles
    or loads: making one looks for a writable cache directory (a temporary file written
    and deleted there), which at import, for every kernel of every imported module, cost a
    millisecond each. No writable directory ("no locator available"): the kernel, and every
    later one, compiles in memory (:func:`_disable_disk_cache` says so once)."""

    def __init__(self, py_func):
        self._py_func = py_func
        self._cache = None

    def _get(self):
        if self._cache is None:
            cache = NullCache()
            if _CACHE_USABLE[0]:
                try:
                    cache = _KernelCache(self._py_func)
                except RuntimeError as exc:
                    if "no locator available" not in str(exc):
                        raise
                    _disable_disk_cache()
            self._cache = cache
        return self._cache

    def __getattr__(self, name):  # cache_path, load_overload, save_overload, flush, ...: the cache's
        if name in ("_py_func", "_cache") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._get(), name)


#: Numba has what ``_KernelCache.load_overload`` calls (its own ``load_overload`` minus the refresh).
_LIGHT_LOAD: bool = all(hasattr(FunctionCache, name)
                        for name in ("_load_overload", "_guard_against_spurious_io_errors"))


class _KernelCache(FunctionCache):
    """Numba's on-disk cache of one kernel (``FunctionCache``: the same files, index key and
    checks, so an entry is only served to the CPU that wrote it) with a lighter first load.

    Numba's ``load_overload`` first calls ``target_context.refresh()``, which imports and
    installs every implementation registry Numba has (linear algebra, which imports
    ``scipy.linalg`` where SciPy is installed, random numbers, typed containers, jitclass,
    ...) so that a compile could use them: 0.4-0.7 s on a Zen 5, paid by the first cached
    kernel a process loads, although loading machine code needs none of it. Loading needs
    the runtime (NRT: kernels allocate arrays) initialised, and that is what this does
    instead; any compile still refreshes the contexts first
    (``numba.core.compiler.compile_extra``). benchmarks/results/2026-12-07-cold-start.md."""

    def load_overload(self, sig, target_context):
        if not _LIGHT_LOAD:  # another Numba than the one this was written against: its own load
            return super().load_overload(sig, target_context)
        _nrt.rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


def kernel_cached(dispatcher) -> bool:
    """Whether ``dispatcher`` (a kernel made by :func:`jit`) runs without compiling in this
    process: it has machine code here already, or Numba's on-disk cache holds an entry of it
    for this CPU (the magic tuple of the index key) and this source (the bytecode hash, and
    the source file's stamp the index is checked against). Reads the kernel's index file,
    loads nothing. False without a disk cache (``FASTBIN_NO_CACHE``, no writable directory),
    where every process compiles. ``fastbin.runtime._warm`` asks this of the fused pass's
    kernels to tell a cold cache from a warm one."""
    if dispatcher.overloads:
        return True
    cache = getattr(dispatcher, "_cache", None)
    if isinstance(cache, _LazyCache):
        cache = cache._get()
    if not isinstance(cache, FunctionCache):
        return False
    try:
        index = cache._cache_file._load_index()
        key = cache._index_key(None, cpu_target.target_context.codegen())
    except Exception:  # another Numba's private names, an unreadable index: say "not cached"
        return False
    return any(isinstance(k, tuple) and k[1:] == key[1:] for k in index)


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
    ``TABLE["parallel_min_work"][kernel]``) at least the threshold and more than one
    Numba thread. The cheap test comes first: ``numba.get_num_threads()``
    costs about a microsecond, as much as a whole 1 x 784 product.
    ``True``/``False`` (or ``numpy.bool_``) force the choice, except that on a threading layer
    that is not thread-safe only the main thread gets the threaded kernel
    (:func:`threads_allowed_here`). Anything else (``2``, ``"yes"``) is a
    ``TypeError`` naming ``threads``, raised before any kernel runs.
    """
    if threads is None:
        if work < TABLE["parallel_min_work"][kernel] or numba.get_num_threads() <= 1:
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


class _Config(types.ModuleType):
    """This module, counting every attribute set on it as an edit (``_tables.edited``): a
    probe or ``TABLE`` set by a test or a tuning session drops the planners' memo of plans
    (``fastbin.kernels._plan.memoized``) as an edited table entry does."""

    def __setattr__(self, name, value):
        if name == "TABLE" and not isinstance(value, Table):
            # a plain dict's later edits would not empty the memo: refuse it
            raise TypeError(f"fastbin._config.TABLE must be a fastbin._tables.Table, got {type(value).__name__}")
        super().__setattr__(name, value)
        edited()


sys.modules[__name__].__class__ = _Config
