"""The dispatch thresholds, one small table per CPU kind.

``fastbin._config`` picks ``TABLES[cpu_kind(magic_tuple)]`` once (``_config.TABLE``);
the planners (``fastbin.kernels.sign_product``, ``fastbin.kernels.binary_product``) and
``_config.use_threads`` read it *when a plan is made*, never inside jitted code, so an
edited table takes effect without stale machine code in Numba's cache. A table holds
the thresholds of the paths its kind can take: the lookup kernels' only on ``avx512``,
BLAS on unpacked signs only on ``avx2``; the portable kernels' everywhere (``GENERIC``).

Each entry keeps a one-line reason; the measurements are in
``benchmarks/results/tuning-notes.md`` (section named after the key) and the files it cites.
Numba-free: plain data.
"""
from __future__ import annotations

__all__ = ["ENGINE", "GENERIC", "TABLES", "Table", "cpu_kind", "edited", "edits", "memo"]

#: How many times a table entry or a ``fastbin._config`` attribute (probe, ``TABLE``) has
#: been set in this process, and the planners' memos of plans (``fastbin.kernels._plan.memoized``),
#: emptied at every such edit.
_EDITS = [0]
_MEMOS: list = []


def edits() -> list[int]:
    """The one-element list holding the edit count (read ``edits()[0]``)."""
    return _EDITS


def memo(held=None):
    """A new planner's memo (a dict), or ``held`` (anything with a ``clear()``: the public
    products' records of their last plans, ``fastbin.ops.matmul``), emptied at every edit."""
    if held is None:
        held = {}
    _MEMOS.append(held)
    return held


def edited() -> None:
    """Count one edit (a table entry or a ``fastbin._config`` attribute was set) and
    empty the planners' memos."""
    _EDITS[0] += 1
    for held in _MEMOS:
        held.clear()


class Table(dict):
    """A threshold table: a ``dict`` whose every change counts as an edit (``edits``), so a
    plan made with the old entry is not served again (tests and tuning edit tables live)."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        edited()

    def __delitem__(self, key):
        super().__delitem__(key)
        edited()

    def _changed(method):  # noqa: N805 - a decorator of the class body
        def changed(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            finally:
                edited()
        changed.__name__ = method.__name__
        return changed

    update = _changed(dict.update)
    pop = _changed(dict.pop)
    popitem = _changed(dict.popitem)
    clear = _changed(dict.clear)
    setdefault = _changed(dict.setdefault)
    __ior__ = _changed(dict.__ior__)
    del _changed

#: The portable kernels' thresholds (every CPU kind has them).
GENERIC: Table = Table({
    # minimum work before a threaded kernel, each ~50-130 us of serial work on Zen 4
    "parallel_min_work": Table({
        "binary_matmul": 1 << 19,  # m * n * n_words word operations
        "sign_matmul": 1 << 21,  # m * n * k multiply-adds
        "pack_signs": 1 << 20,  # elements
        "linear_softmax_ce": 1 << 22,  # m * k * c multiply-adds (each done twice)
        "conv_patches": 1 << 20,  # values im2col, col2im, pack_patches or pooling move
    }),
    # float rows below this sum x straight from W's bits; from it on W is unpacked once (Zen 4)
    "unpack_min_rows_f32": 8,
    "unpack_min_rows_f64": 5,
    # uint8 rows (no vector popcount): float32 register blocks from m >= MIN_ROWS * n / (n + HALF_COLS)
    # rows, else bit planes (fitted on Zen 2)
    "uint8_float_min_rows": 40,
    "uint8_float_half_cols": 92,
    # uint8 rows from this many on byte masks of W in integers (sign_product.uint8_masks); 0: never
    "uint8_masks_min_rows": 0,
    # uint8 rows up to this many on byte masks made from W's bits per row (sign_product.uint8_rows);
    # 0: never (x86: the bit planes, vpmaddubsw or the lookups)
    "uint8_rows_max_rows": 0,
    # float32 rows up to this many (serial) by sign flips from W's bits, 4 rows of W per load of x
    # (sign_product.f32_rows); 0: never (x86: the masked-select bits path, lookups or BLAS)
    "f32_rows_max_rows": 0,
    # dense_sign_matmul(exact=False): the int8 few-row kernel for m == 1 or m * n <= this (Zen 4)
    "dense_rows_max_product": 64,
    # ... BLAS on ±1 floats below this many rows, and from dense_blas_min_cols outputs (Zen 4)
    "dense_blas_max_rows": 16,
    "dense_blas_min_cols": 64,
    # the exact product (dense_sign_matmul(exact=True)) from this many rows by float64 BLAS on the
    # grid integers ("exact_blas"), where the lookups are not planned; 0: never (the row kernel);
    # and from this many outputs (fewer: the row kernel)
    "dense_exact_blas_min_rows": 0,
    "dense_exact_blas_min_cols": 64,
    # the fast product's unthreaded rows from this many inputs k by sign_matmul's plan ("packed")
    # instead of BLAS on ±1 floats; 0: by dense_blas_min_cols alone
    "dense_packed_min_k": 0,
    # folded model: below this many rows the unblocked packed kernels and the fused pass (Zen 4)
    "few_rows": 16,
    # binary products of at most this many rows a row at a time, 4 rows of w per load of a row
    # and byte popcounts (binary_product.rows4); 0: never (x86: the vpopcntq/blocked kernels win)
    "rows4_max_rows": 0,
    # folded model's float tail: the threaded binary product only from this many outputs (2 cores)
    "threaded_min_cols": 64,
})

#: x86-64 with AVX-512F: the table-lookup kernels (measured on the Xeon, rocketlake).
AVX512: Table = Table({
    **GENERIC,
    # float32 rows by table lookups from 8 rows and 256 outputs (1.2-3.6x sgemm there)
    "lut_min_rows": 8,
    "lut_min_cols": 256,
    # a lookup pass keeps its nibbles within half the 2 MiB L2
    "lut_chunk_bytes": 1024 * 1024,
    # uint8 rows on float32 tables from 128 rows (also needs lut_min_cols and k <= 65793)
    "uint8_lut_min_rows": 128,
    # uint8 rows on int16 tables (AVX-512BW) from 32 rows
    "uint8_lut16_min_rows": 32,
    # dense_sign_matmul(exact=False) on nibbles of the real weights, ahead of rows/BLAS/packed
    "dense_lut_min_cols": 100,
    "dense_lut_min_k": 200,
    "dense_lut_min_rows": 64,  # k >= 512
    "dense_lut_min_rows_short": 256,  # k < 512: the tables cost more per output
    # the exact product by lookups on chunks of the grid integers, else the row kernel
    "exact_lut_min_rows": 8,
    "exact_lut_min_cols": 64,
    "exact_lut_min_cols_long": 100,  # from k = 2048 on
    # uint8 rows by byte dot products on masks of the bits (sign_product.avx512_vnni, AVX-512 VNNI)
    # from this many rows, ahead of the tables (needs _config.INT8_DOT). Zen 5, loaded machine:
    # 4.6x-33x sgemm at 2 to 2048 rows (16x784x10 1.4 us, where the bit planes took 2.9 us);
    # the int16 tables were faster at 128x784x512 only (1.4-2x); one row: the bit planes
    # (1x784x512 2.6 us, 3.9 us here) (benchmarks/results/2026-12-07-avx512.md)
    "uint8_dot_min_rows": 2,
    # float32 rows up to this many, from lut_dwords_min_cols outputs (and below lut_min_rows or
    # lut_min_cols), by lookups indexed by the packed words (sign_product.avx512_dwords); Zen 5,
    # loaded machine: 1x784x512 3.8 us where the bits path took 10.3 us, 1x784x64 1.0 us vs 1.6 us;
    # at 32 outputs and fewer the bits path is as fast (benchmarks/results/2026-12-07-avx512.md)
    "lut_dwords_max_rows": 7,
    "lut_dwords_min_cols": 64,
})

#: x86-64 without AVX-512F: many rows through BLAS on unpacked ±1 float32 signs (AVX2 code
#: path compiled on the Xeon: 0.84-0.99x sgemm where the register blocks gave 0.21-0.9x).
AVX2: Table = Table({
    **GENERIC,
    "blas_min_rows": 64,
    "blas_min_rows_big": 16,  # when k * n >= blas_big
    "blas_big": 2048 * 2048,
    "blas_min_cols": 256,
    "blas_chunk_bytes": 4 << 20,  # signs unpacked per BLAS call: one reused buffer in cache
    # uint8 rows by vpmaddubsw on ±1 int8 signs (kernels.sign_product.avx2) from 2 rows, ahead of
    # everything (1.5-9x the bit planes at 2-32 rows; one row: W's unpacking costs 2x the planes)
    "uint8_madd_min_rows": 2,
    "madd_panel_bytes": 256 * 1024,  # a panel of x's rows stays in L2 while W's blocks pass over it
    # float32 rows by 8-entry tables of 3 inputs (kernels.sign_product.avx2_lut), ahead of BLAS:
    # from 2 rows and 256 outputs (at 64 outputs the register blocks won from 16 rows; one row:
    # making the index form per call costs more than the bits path's whole product)
    "lut3_min_rows": 2,
    "lut3_min_cols": 256,
    # one float32 row by 256-entry tables of 8 inputs (kernels.sign_product.byte_lut) from 256
    # outputs (1 x 784 x 512: 1.2-1.5x sgemm where the bits path gave 0.6-0.85x; at 64 outputs and
    # fewer the bits path wins: the tables cost ~3 us per 784 inputs)
    "bytes_max_rows": 1,
    "bytes_min_cols": 256,
    "lut3_chunk_bytes": 2 << 20,  # a pass's index bytes (512x4096x4096: 1.3-1.8x sgemm, 0.9-1.3x at 64 KiB-512 KiB)
    # float32 rows by 8-entry tables indexed by W's shifted words (kernels.sign_product.avx2_dwords,
    # serial only), ahead of bytes/lut3/BLAS/bits from 32 outputs: up to 64 rows, or any rows below
    # lut3_min_cols outputs (AVX2 code path on Zen 5: 1x784x512 2.3x sgemm, 16x784x512 2.0x (lut3
    # 1.5x), n = 64 1.2-1.5x where the register blocks gave 0.9-1.0x; 128x2048x2048: lut3 ahead)
    "dwords_max_rows": 64,
    "dwords_min_cols": 32,
    # binary x binary by vpshufb tables of a's nibbles at w's byte-transposed nibbles
    # (kernels.binary_product.avx2): from this many rows of a, outputs and words (AVX2 code path on
    # Zen 5: 1.2-1.6x the byte-popcount lanes from 16 x 784 x 512; at 10 outputs the lanes won)
    "nibbles_min_rows": 16,
    "nibbles_min_cols": 64,
    "nibbles_min_words": 2,
    # the exact product (the trainer's evaluation path) by float64 BLAS on the grid integers from 16
    # rows: AVX2 code path on Zen 5, 8192x784x200 159 ms where the row kernel took 740-757 ms (1 or 2
    # threads), 256x784x200 5.7 ms vs 11-23 ms, 16x784x200 0.19 vs 0.44 ms; n = 10 about even, so
    # from dense_exact_blas_min_cols (64) outputs only (benchmarks/results/2026-12-07-binstep.md)
    "dense_exact_blas_min_rows": 16,
    # the fast product (a binary layer's training forward, x real) from k = 512 through sign_matmul's
    # own plan (dwords/lut3) rather than BLAS on ±1 floats: AVX2 code path on Zen 5, loaded, min of 9
    # alternating rounds: 256x784x200 1.34 ms vs 1.70, 64x784x200 0.44 vs 0.56, 256x512x200 0.87 vs
    # 1.17, 256x784x512 1.14 vs 2.98; from k = 200 down BLAS won (256x200x100 85 vs 109 us)
    "dense_packed_min_k": 512,
})

#: AArch64: the portable kernels, and the 4-row byte-popcount binary kernel for few rows
#: (QEMU instruction counts, cortex-a72/a76: benchmarks/results/2026-12-07-arm64-insn.md).
NEON: Table = Table({
    **GENERIC,
    # below the blocked kernel's 8-row lanes, rows4 shares each load of a row of a over 4 rows of w
    "rows4_max_rows": 7,
    # uint8 rows in integers on byte masks of W unpacked once (and/uadalp or udot) instead of the
    # exact float32 path: from 4 rows fewer instructions than uint8_rows (m x 784 x 512, cortex-a72
    # / a76: 3 rows -2% / -1%, 4 rows -24% / -27%; benchmarks/results/2026-12-07-neon3-insn.md)
    "uint8_masks_min_rows": 4,
    # below that, the masks made from W's bits per row (tbl/cmtst, and/uadalp): the C NEON
    # reference's one-row kernel, in place of the bit planes
    "uint8_rows_max_rows": 3,
    # float32 rows below the unpacking (serial): ushl/and/eor/fadd from W's bits, as the C NEON
    # reference, in place of the 64-lane masked selects (3.0x the reference's instructions)
    "f32_rows_max_rows": 7,
})

#: The runtime's choices that do not depend on the CPU kind (plain NumPy work, Python-side
#: allocation), read at call time by the engines and ``InferenceModel.predict``; the NumPy
#: engine runs without Numba, so these cannot go through ``_config.TABLE``.
ENGINE: Table = Table({
    # numpy engine: a packed product of fewer rows by popcounts word by word, from here on BLAS on ±1 floats
    "numpy_popcount_max_rows": 16,
    # numpy engine: a float sign stage of fewer rows refines a BLAS product near its thresholds,
    # from here on it takes the exact product (float64 BLAS beats gathering the near entries)
    "numpy_refine_max_rows": 64,
    # predict on float rows certifies classes from bounds from this many rows on (below, the bounds'
    # few NumPy calls cost about what they save), first on a probe of certify_probe_rows rows: when
    # more than half of them are near a tie the rest take the exact product directly
    "certify_min_rows": 256,
    "certify_probe_rows": 32,
    # numba engine: packed outputs of fewer words are np.empty (aligned_words' ctypes call costs ~1 us)
    "aligned_min_words": 4096,
})

TABLES: dict[str, dict] = {"avx512": AVX512, "avx2": AVX2, "neon": NEON, "generic": GENERIC}


def cpu_kind(magic_tuple: tuple[str, str, str]) -> str:
    """The table of Numba's ``codegen.magic_tuple()`` ``(triple, cpu name, features)``:
    ``"avx512"`` (x86-64 with AVX-512F), ``"avx2"`` (any other x86-64), ``"neon"``
    (AArch64), else ``"generic"``."""
    triple, _cpu, features = magic_tuple
    arch = triple.split("-", 1)[0]
    if arch == "x86_64":
        return "avx512" if "+avx512f" in features.split(",") else "avx2"
    if arch in ("aarch64", "arm64"):
        return "neon"
    return "generic"
