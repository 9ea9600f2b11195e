"""The planners (``fastbin.kernels.sign_product``, ``fastbin.kernels.binary_product``).

* every path each planner can return, forced, against ``fastbin.reference`` over one shape
  grid (integers and the exact float product bit for bit, the fast float products within
  tests/tolerance.py), padding bits refused where the kernel checks them;
* every path reached from the public API (a spy on the kernel that runs), with the CPU
  kind's probes and table set where the planner reads them (tests/planning.py), so the
  AVX2 and ARM choices are checked on this CPU too (a path whose kernel this CPU cannot run
  is skipped, except as plain Python under NUMBA_DISABLE_JIT);
* the planners read the table when called (an edited table changes the plan, no recompile);
* the CPU probes and the table are read by the planners and ``fastbin._config`` only (an AST
  walk of the package, shown failing on a bad module).
"""
from __future__ import annotations

import ast
from pathlib import Path as FilePath

import numba
import numpy as np
import pytest
from planning import use_cpu
from shapes import skip_big_without_jit
from tolerance import assert_close

import fastbin
from fastbin import _config, _tables
from fastbin import reference as R
from fastbin.kernels import binary_product, sign_product
from fastbin.nn.model import mlp
from fastbin.ops.dense import dense_product

#: The shape grid (m, k, n): one row, a few, a register block and past it; k around the word
#: size and a layer's 784; n below, at and past a 64-wide block.
GRID = [(m, k, n) for m in (1, 3, 8, 33) for k in (1, 63, 64, 65, 784) for n in (1, 10, 65)]
_DTYPES = {"f": (np.float32, np.float64), "s": (np.float32,), "u": (np.uint8,)}


def _runs_here(name):
    """Whether this CPU can run path ``name`` (or every path runs as plain Python)."""
    probe = sign_product.NEEDS.get(name)
    return probe is None or getattr(_config, probe) or _config.jit_disabled()


def _needs(name):
    if not _runs_here(name):
        pytest.skip(f"{name} needs {sign_product.NEEDS[name]} (this CPU has not)")


def _x(rng, m, k, dtype):
    if dtype == np.uint8:
        x = rng.integers(0, 256, (m, 2 * k), dtype=np.uint8)[:, ::2]  # strided
        x[0] = 255  # the largest sums
        return x
    x = rng.standard_normal((m, k)).astype(dtype)
    x[rng.random(x.shape) < 0.1] = 0
    return x


def _weights(rng, k, n, dtype=np.float32):
    w = rng.standard_normal((k, n)).astype(dtype)
    w[:, 0] = -1.0  # an output summing -x
    return w


def _check(got, want, x, exact):
    if exact:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    else:
        assert_close(got, want, scale=max(1.0, float(np.abs(x.astype(np.float64)).sum(axis=1).max())))


# ---------------------------------------------------------------------------
# Every path, forced, against the reference
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, dtype", [(name, dtype) for name, kinds in sign_product.PATHS.items()
                                         for dtype in _DTYPES[kinds]])
def test_sign_matmul_path_matches_reference(name, dtype, rng):
    _needs(name)
    for m, k, n in GRID:
        if _config.jit_disabled() and m * k * n > 20_000:
            continue  # plain Python: the small points
        x = _x(rng, m, k, dtype)
        w = fastbin.pack_weights(_weights(rng, k, n))
        path = sign_product.plan(m, k, n, np.dtype(dtype), force=name)
        assert path.name == name
        out_dtype = np.int32 if dtype == np.uint8 else dtype
        out = np.full((m, n), 7, out_dtype)
        x_in = x if dtype == np.uint8 else np.ascontiguousarray(x)
        assert path(x_in, w.bits, out)
        _check(out, R.sign_matmul(x, w), x, dtype == np.uint8)
        if k % 64:  # a padding bit: False, nothing written
            bad = w.bits.copy()
            bad[-1, -1] |= np.uint64(1) << np.uint64(63)
            out[...] = 7
            assert not path(x_in, bad, out)
            assert (out == 7).all()


_DENSE_CASES = [(name, dtype) for name in sign_product.DENSE_PATHS
                for dtype in ((np.float32,) if name.startswith("lut") or name == "dwords_rows"
                              else (np.float32, np.float64))]


@pytest.mark.parametrize("name, dtype", _DENSE_CASES)
def test_dense_path_matches_reference(name, dtype, rng):
    """``dense_sign_matmul``'s paths: the exact ones equal the reference's bits (the exact
    product's contract), the fast ones within float rounding; from real weights, packed
    weights and the cached forms alike."""
    _needs(name)
    exact = name.startswith("exact")
    for m, k, n in GRID:
        if _config.jit_disabled() and m * k * n > 20_000:
            continue
        x = _x(rng, m, k, dtype)
        w = _weights(rng, k, n, dtype)
        packed = fastbin.pack_weights(w)
        path = sign_product.plan_dense(m, k, n, np.dtype(dtype), exact=exact, force=name)
        assert path.name == name
        want = R.dense_sign_matmul(x, w)
        for weights in (w, packed):
            got = dense_product(path, x, weights)
            assert got.dtype == np.dtype(dtype)
            _check(got, want, x, exact)


def _binary_needs(name):
    probe = binary_product.NEEDS.get(name)
    if not (probe is None or getattr(_config, probe) or _config.jit_disabled()):
        pytest.skip(f"{name} needs {probe} (this CPU has not)")


@pytest.mark.parametrize("name", list(binary_product.PATHS))
def test_binary_path_matches_reference(name, rng):
    _binary_needs(name)
    for m, k, n in GRID:
        a = fastbin.pack_signs(rng.standard_normal((m, k)))
        w = fastbin.pack_weights(rng.standard_normal((k, n)))
        out = np.full((m, n), 7, np.int32)
        binary_product.plan(m, n, a.n_words, force=name)(a.bits, w.bits, k, out)
        np.testing.assert_array_equal(out, R.binary_matmul(a, w))


@pytest.mark.parametrize("name", list(binary_product.SIGN_PATHS))
def test_binary_sign_path_matches_reference(name, rng):
    for m, k, n in GRID:
        a = fastbin.pack_signs(rng.standard_normal((m, k)))
        w = fastbin.pack_weights(rng.standard_normal((k, n)))
        thresholds = rng.integers(-k - 1, k + 2, n).astype(np.int64)
        flip = rng.random(n) < 0.5
        out = np.full((m, -(-n // 64)), 7, np.uint64)
        binary_product.plan_sign(m, n, a.n_words, force=name)(a.bits, w.bits, k, thresholds, flip, out)
        np.testing.assert_array_equal(out, R.binary_dense_sign(a, w, thresholds, flip).bits)


# ---------------------------------------------------------------------------
# Every path, from the public API
# ---------------------------------------------------------------------------
@pytest.fixture
def ran(monkeypatch):
    """``(family, path name)`` of every planned kernel that ran: each path list's kernels
    replaced by recording wrappers where the planners look them up (at call time)."""
    calls = []

    def spy(family, name, kernel):
        def run(*args):
            calls.append((family, name))
            return kernel(*args)

        return run

    for name, (kernel, keys, kinds) in list(sign_product._SIGN_MATMUL.items()):
        monkeypatch.setitem(sign_product._SIGN_MATMUL, name, (spy("sign", name, kernel), keys, kinds))
    for name, path in list(sign_product._FIXED.items()):
        monkeypatch.setitem(sign_product._FIXED, name, path._replace(kernel=spy("sign", name, path.kernel)))
    for name, (kernel, form) in list(sign_product.DENSE_PATHS.items()):
        if kernel is not None:
            monkeypatch.setitem(sign_product.DENSE_PATHS, name, (spy("dense", name, kernel), form))
    for name, path in list(sign_product._DENSE.items()):
        if path.kernel is not None:
            monkeypatch.setitem(sign_product._DENSE, name, path._replace(kernel=spy("dense", name, path.kernel)))
    for family, paths in (("binary", binary_product.PATHS), ("binary_sign", binary_product.SIGN_PATHS)):
        for name, path in list(paths.items()):
            monkeypatch.setitem(paths, name, path._replace(kernel=spy(family, name, path.kernel)))
    return calls


def _serial_or_threaded(monkeypatch, table, name, work="sign_matmul"):
    """Automatic threads on (``*_parallel`` paths: needs two Numba threads) or off."""
    if name.endswith("_parallel"):
        if numba.get_num_threads() < 2:
            pytest.skip("one Numba thread: the automatic choice never threads")
        monkeypatch.setitem(table["parallel_min_work"], work, 0)
    else:
        monkeypatch.setitem(table["parallel_min_work"], work, 1 << 62)


#: sign_matmul's paths from ``fastbin.sign_matmul``: (CPU kind, probe/table changes, dtype, m, k, n, threads)
_SIGN_MATMUL_PUBLIC = {
    "bits": ("avx512", {}, np.float64, 1, 784, 10, False),
    "bits_parallel": ("avx512", {}, np.float64, 3, 784, 10, True),
    "lut_dwords": ("avx512", {}, np.float32, 3, 784, 64, None),
    "unpack": ("avx512", {}, np.float64, 16, 784, 10, False),
    "unpack_parallel": ("avx512", {}, np.float32, 16, 784, 10, True),
    "lut": ("avx512", {}, np.float32, 8, 784, 256, False),
    "lut_parallel": ("avx512", {}, np.float32, 8, 784, 256, True),
    "blas": ("avx2", {"FLOAT_LUT8": False}, np.float32, 64, 784, 256, None),
    "lut3": ("avx2", {"dwords_max_rows": 0}, np.float32, 16, 784, 256, False),
    "bytes": ("avx2", {"dwords_max_rows": 0}, np.float32, 1, 784, 256, None),
    "dwords": ("avx2", {}, np.float32, 1, 784, 64, None),
    "lut3_parallel": ("avx2", {}, np.float32, 16, 784, 256, True),
    "uint8_planes": ("avx512", {"INT8_DOT": False}, np.uint8, 1, 784, 10, None),
    "uint8_float": ("neon", {"uint8_masks_min_rows": 0}, np.uint8, 64, 784, 10, None),
    "uint8_masks": ("neon", {}, np.uint8, 64, 784, 10, None),
    "uint8_rows": ("neon", {}, np.uint8, 3, 784, 10, None),
    "f32_rows": ("neon", {}, np.float32, 3, 784, 10, False),
    "uint8_lut16": ("avx512", {"INT8_DOT": False}, np.uint8, 32, 784, 256, False),
    "uint8_lut16_parallel": ("avx512", {"INT8_DOT": False}, np.uint8, 32, 784, 256, True),
    "uint8_lut": ("avx512", {"INT16_LUT": False, "INT8_DOT": False}, np.uint8, 128, 784, 256, False),
    "uint8_lut_parallel": ("avx512", {"INT16_LUT": False, "INT8_DOT": False}, np.uint8, 128, 784, 256, True),
    "uint8_blas": ("avx2", {"INT8_MADD": False}, np.uint8, 64, 784, 256, None),
    "uint8_madd": ("avx2", {}, np.uint8, 16, 784, 256, False),
    "uint8_madd_parallel": ("avx2", {}, np.uint8, 16, 784, 256, True),
    "uint8_dot": ("avx512", {}, np.uint8, 16, 784, 256, False),
    "uint8_dot_parallel": ("avx512", {}, np.uint8, 16, 784, 256, True),
}


def test_every_sign_matmul_path_has_a_public_case():
    assert set(_SIGN_MATMUL_PUBLIC) == set(sign_product.PATHS)


@pytest.mark.parametrize("name", list(_SIGN_MATMUL_PUBLIC))
def test_sign_matmul_path_is_reached_from_the_public_api(name, rng, monkeypatch, ran):
    _needs(name)
    kind, changes, dtype, m, k, n, threads = _SIGN_MATMUL_PUBLIC[name]
    skip_big_without_jit(m * k * n)
    use_cpu(monkeypatch, kind, **changes)
    x = _x(rng, m, k, dtype)
    w = fastbin.pack_weights(_weights(rng, k, n))
    got = fastbin.sign_matmul(x, w, threads=threads)
    assert ran == [("sign", name)]
    _check(got, R.sign_matmul(x, w), x, dtype == np.uint8)


#: dense_sign_matmul's paths from ``fastbin.dense_sign_matmul``: (exact, dtype, m, k, n); on this CPU's
#: kind with AVX-512's table (the lookups need it), threads as the name says.
_DENSE_PUBLIC = {
    "exact_rows": (True, np.float64, 1, 784, 10),
    "exact_rows_parallel": (True, np.float32, 3, 784, 10),
    "exact_lut": (True, np.float32, 8, 784, 64),
    "exact_lut_parallel": (True, np.float64, 8, 784, 64),
    "exact_blas": (True, np.float32, 16, 784, 64),  # on the AVX2 kind's table
    "lut": (False, np.float32, 64, 784, 100),
    "lut_parallel": (False, np.float32, 64, 784, 100),
    "rows": (False, np.float32, 1, 784, 10),
    "blas": (False, np.float64, 8, 100, 100),
    "packed": (False, np.float32, 32, 784, 10),
}


@pytest.mark.parametrize("name", list(_DENSE_PUBLIC))
def test_dense_path_is_reached_from_the_public_api(name, rng, monkeypatch, ran):
    _needs(name)
    exact, dtype, m, k, n = _DENSE_PUBLIC[name]
    skip_big_without_jit(m * k * n)
    table = use_cpu(monkeypatch, "avx2" if name == "exact_blas" else "avx512")
    _serial_or_threaded(monkeypatch, table, name)
    x = _x(rng, m, k, dtype)
    w = _weights(rng, k, n, dtype)
    assert sign_product.plan_dense(m, k, n, np.dtype(dtype), exact=exact).name == name
    got = fastbin.dense_sign_matmul(x, w, exact=exact)
    if name == "packed":  # sign_matmul's own plan runs
        assert ran == [("sign", sign_product.plan(m, k, n, np.dtype(dtype)).name)]
    else:
        assert ran == [("dense", name)]
    _check(got, R.dense_sign_matmul(x, w), x, exact)


def test_dense_fast_product_on_avx2_by_k(monkeypatch):
    """AVX2's table: the unthreaded fast product of many inputs goes to sign_matmul's plan
    (``dense_packed_min_k``), fewer inputs to BLAS; the exact one to float64 BLAS from 16 rows."""
    table = use_cpu(monkeypatch, "avx2")
    _serial_or_threaded(monkeypatch, table, "packed")
    f32 = np.dtype(np.float32)
    assert sign_product.plan_dense(256, 784, 200, f32, exact=False).name == "packed"
    assert sign_product.plan_dense(256, 511, 200, f32, exact=False).name == "blas"
    assert sign_product.plan_dense(256, 100, 200, f32, exact=False).name == "blas"
    assert sign_product.plan_dense(16, 784, 200, f32, exact=True).name == "exact_blas"
    assert sign_product.plan_dense(15, 784, 200, f32, exact=True).name == "exact_rows"
    assert sign_product.plan_dense(8192, 784, 63, f32, exact=True).name.startswith("exact_rows")
    table = use_cpu(monkeypatch, "avx512", FLOAT_LUT=False)
    _serial_or_threaded(monkeypatch, table, "packed")
    assert sign_product.plan_dense(256, 784, 200, f32, exact=False).name == "blas"
    assert sign_product.plan_dense(16, 784, 200, f32, exact=True).name == "exact_rows"


@pytest.mark.parametrize("name", ["blocked", "blocked_parallel", "blocked_rows", "rows4", "nibbles",
                                  "nibbles_parallel"])
def test_binary_paths_are_reached_from_the_public_api(name, rng, ran, monkeypatch):
    m, k, n = 9, 300, 70
    if name == "blocked_rows":  # binary_matmul's only, below 8 rows (binary_dense_sign: its blocked kernel)
        m = 3
        use_cpu(monkeypatch, _config.CPU_KIND, rows4_max_rows=0)  # this CPU's kind without rows4 (AArch64's)
    elif name == "rows4":  # binary_matmul's only (binary_dense_sign takes it for a folded model's few rows)
        use_cpu(monkeypatch, "neon", rows4_max_rows=9)
    elif name.startswith("nibbles"):  # binary_matmul's only, on the AVX2 kind from 16 rows
        _binary_needs(name)
        use_cpu(monkeypatch, "avx2")
        m, k, n = 16, 130, 70
    a = fastbin.pack_signs(rng.standard_normal((m, k)))
    w = fastbin.pack_weights(rng.standard_normal((k, n)))
    threads = name.endswith("_parallel")
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=threads), R.binary_matmul(a, w))
    thresholds, flip = rng.integers(-k, k, n), rng.random(n) < 0.5
    got = fastbin.binary_dense_sign(a, w, thresholds, flip, threads=threads)
    np.testing.assert_array_equal(got.bits, R.binary_dense_sign(a, w, thresholds, flip).bits)
    sign_path = {"rows4": "blocked", "blocked_rows": "blocked", "nibbles": "blocked",
                 "nibbles_parallel": "blocked_parallel"}.get(name, name)
    assert ran == [("binary", name), ("binary_sign", sign_path)]


def test_runtime_few_row_paths(rng, ran):
    """A folded model's stage path on a few rows takes the unblocked binary kernels and, on
    float32 rows where the lookups run, the lookups on its cached nibbles (``lut_rows``);
    the folded logits equal the trained model's bit for bit. (``InferenceModel`` sends such
    batches of the kinds ``fastbin.nn`` builds to its fused pass, which asks the same
    planner; the stage path is what the other kinds run.)"""
    model = mlp([70, 80, 80, 10], binary_weights=True, binary_activations=True, seed=3)
    for layer in model.layers:
        for value in layer.params.values():
            value[...] = rng.standard_normal(value.shape)
    folded = model.to_inference()
    for x in (rng.random((4, 70)).astype(np.float32), rng.integers(0, 256, (4, 70), dtype=np.uint8)):
        ran.clear()
        np.testing.assert_array_equal(folded._run(x), model.forward(x))
        few = "few_rows4" if _config.TABLE["rows4_max_rows"] >= 4 else "few_rows"
        assert ("binary_sign", few) in ran and ("binary", few) in ran
        if x.dtype == np.float32 and _runs_here("lut_rows"):
            assert ("dense", "lut_rows") in ran


# ---------------------------------------------------------------------------
# Thresholds are read when a plan is made
# ---------------------------------------------------------------------------
def test_an_edited_table_changes_the_plan(rng, monkeypatch):
    """No threshold is frozen in jitted code: the same shapes, another table entry, another
    kernel, and the results stay the reference's."""
    table = use_cpu(monkeypatch, "generic")
    f32 = np.dtype(np.float32)
    assert sign_product.plan(4, 784, 10, f32, threads=False).name == "bits"
    x = _x(rng, 4, 784, np.float32)
    w = fastbin.pack_weights(_weights(rng, 784, 10))
    before = fastbin.sign_matmul(x, w, threads=False)
    monkeypatch.setitem(table, "unpack_min_rows_f32", 2)
    assert sign_product.plan(4, 784, 10, f32, threads=False).name == "unpack"
    after = fastbin.sign_matmul(x, w, threads=False)
    for got in (before, after):
        _check(got, R.sign_matmul(x, w), x, False)
    monkeypatch.setitem(table, "few_rows", 3)
    assert binary_product.plan(4, 10, 13, few=True, threads=False).name == "blocked_rows"
    assert binary_product.plan(8, 10, 13, few=True, threads=False).name == "blocked"
    assert binary_product.plan(8, 7, 13, few=True, threads=False).name == "blocked_rows"
    assert binary_product.plan(2, 10, 13, few=True, threads=False).name == "few_rows"
    monkeypatch.setitem(table, "rows4_max_rows", 2)
    assert binary_product.plan(2, 10, 13, few=True, threads=False).name == "few_rows4"
    assert binary_product.plan_sign(2, 10, 13, few=True, threads=False).name == "few_rows4"
    assert binary_product.plan(2, 10, 13, threads=False).name == "rows4"
    assert binary_product.plan(3, 10, 13, threads=False).name == "blocked_rows"
    assert binary_product.plan(3, 10, 13, threads=True).name == "blocked_rows"  # one task below 8 rows
    assert binary_product.plan(9, 10, 13, threads=False).name == "blocked"
    assert binary_product.plan(9, 7, 13, threads=False).name == "blocked_rows"
    assert binary_product.plan(9, 7, 13, threads=True).name == "blocked_parallel"


def test_the_memo_of_plans_follows_every_edit(monkeypatch):
    """Plans asked with positional arguments are kept (``fastbin.kernels._plan.memoized``),
    and every edit of what a plan reads empties the memo: a table entry, a nested entry, a
    probe, ``_config.TABLE`` itself. Plans that depend on the thread count are never kept."""
    f32 = np.dtype(np.float32)
    table = use_cpu(monkeypatch, "generic")
    memo = sign_product.plan.memo
    first = sign_product.plan(4, 784, 10, f32, False)
    assert first.name == "bits" and memo[(4, 784, 10, f32, False)] is first
    assert sign_product.plan(4, 784, 10, f32, False) is first  # served from the memo
    monkeypatch.setitem(table, "unpack_min_rows_f32", 2)  # an entry
    assert not memo and sign_product.plan(4, 784, 10, f32, False).name == "unpack"
    monkeypatch.setitem(table["parallel_min_work"], "sign_matmul", 1)  # a nested entry
    assert not memo and sign_product.plan(4, 784, 10, f32, None).name == "unpack_parallel"
    assert not memo  # work above the threshold: the plan asked numba.get_num_threads(), not kept
    assert sign_product.plan(4, 784, 10, f32, True).name == "unpack_parallel" and not memo
    use_cpu(monkeypatch, "avx512")  # probes and another table
    assert sign_product.plan(64, 784, 512, f32, False).name == "lut"
    monkeypatch.setattr(_config, "FLOAT_LUT", False)  # a probe alone
    assert sign_product.plan(64, 784, 512, f32, False).name != "lut"
    assert binary_product.plan(2, 10, 13, False).name == "blocked_rows"
    monkeypatch.setitem(_config.TABLE, "rows4_max_rows", 2)
    assert binary_product.plan(2, 10, 13, False).name == "rows4"
    with pytest.raises(TypeError, match="must be a fastbin._tables.Table"):
        _config.TABLE = dict(_config.TABLE)  # a plain dict's edits could not empty the memo


@pytest.mark.parametrize(
    "magic, kind",
    [
        (("x86_64-unknown-linux-gnu", "znver5", "+avx2,+avx512f,+avx512bw,+avx512vpopcntdq"), "avx512"),
        (("x86_64-unknown-linux-gnu", "skylake-avx512", "+avx2,+avx512f,-avx512vpopcntdq"), "avx512"),
        (("x86_64-unknown-linux-gnu", "znver2", "+avx2,-avx512f"), "avx2"),
        (("x86_64-unknown-linux-gnu", "nehalem", "+sse4.2,-avx"), "avx2"),
        (("aarch64-unknown-linux-gnu", "neoverse-n1", "+neon"), "neon"),
        (("arm64-apple-darwin22.1.0", "apple-m1", "+neon"), "neon"),
        (("powerpc64le-unknown-linux-gnu", "pwr9", "+vsx"), "generic"),
    ],
)
def test_cpu_kind_from_magic_tuple(magic, kind):
    assert _tables.cpu_kind(magic) == kind
    # the kind's table holds the thresholds of every path its probes allow
    assert (kind == "avx512") == _config.float_lut(magic)
    assert (kind == "avx2") == _config.sign_matmul_blas(magic)
    assert _config.int8_madd(magic) == (magic[0].startswith("x86_64") and "+avx2" in magic[2].split(","))
    assert not _config.int8_dot(magic)  # none of these has +avx512vnni
    with_vnni = (magic[0], magic[1], magic[2] + ",+avx512vnni")
    assert _config.int8_dot(with_vnni) == (kind == "avx512" and "+avx512bw" in magic[2].split(","))


@pytest.mark.parametrize(
    "magic, has",
    [
        (("aarch64-unknown-linux-gnu", "cortex-a76", "-aes,-rand,-sha2,-sve"), True),  # Pi 5 under QEMU
        (("aarch64-unknown-linux-gnu", "cortex-a72", "-aes,-rand,-sha2,-sve"), False),  # Pi 4
        (("aarch64-unknown-linux-gnu", "cortex-a76", "+neon,-dotprod"), False),
        (("aarch64-unknown-linux-gnu", "generic", "+neon,+dotprod"), True),  # a host's features
        (("arm64-apple-darwin22.1.0", "apple-m1", ""), True),
        (("x86_64-unknown-linux-gnu", "cortex-a76", "+dotprod"), False),
    ],
)
def test_dot_product_probe(magic, has):
    assert _config.dot_product(magic) is has


def test_tables_hold_their_paths_thresholds():
    assert _config.TABLE is _tables.TABLES[_config.CPU_KIND]
    generic = set(_tables.GENERIC)
    for kind, table in _tables.TABLES.items():
        assert generic <= set(table), kind
        assert ("lut_min_rows" in table) == (kind == "avx512")
        assert ("blas_min_rows" in table) == (kind == "avx2")


# ---------------------------------------------------------------------------
# Who reads the probes
# ---------------------------------------------------------------------------
PACKAGE = FilePath(fastbin.__file__).resolve().parent
#: The names of the CPU probes and of the threshold table (``fastbin._config``).
PROBES = {"FLOAT_LUT", "INT16_LUT", "INT8_MADD", "int8_madd", "INT8_DOT", "int8_dot", "FLOAT_LUT8", "BYTE_LUT16",
          "VECTOR_POPCOUNT",
          "VECTOR_REGISTERS", "SIGN_MATMUL_BLAS", "SIGN_MATMUL_UINT8_FLOAT_PATH", "CPU_KIND", "TABLE",
          "TABLES", "_MAGIC_TUPLE", "magic_tuple", "float_lut", "int16_lut", "sign_matmul_blas",
          "vector_popcount", "vector_registers", "cpu_kind", "DOT_PRODUCT", "dot_product"}
#: The modules that may read them: the configuration, the tables, the planners and their memo.
READERS = {"_config.py", "_tables.py", "kernels/sign_product/__init__.py", "kernels/binary_product/__init__.py",
           "kernels/_plan.py"}


def probe_reads(source: str) -> list[str]:
    """The probe names a module's code reads: imported from ``_config``/``_tables``, or as an
    attribute (``_config.FLOAT_LUT``); not its strings, nor a local name that happens to match."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in PROBES:
            found.append(node.attr)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] in ("_config", "_tables"):
            found.extend(alias.name for alias in node.names if alias.name in PROBES)
    return found


def test_probes_are_read_by_the_planners_and_config_only():
    readers = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        names = probe_reads(path.read_text())
        if names:
            readers[rel] = sorted(set(names))
    assert set(readers) - READERS == set(), {rel: readers[rel] for rel in set(readers) - READERS}
    assert {"kernels/sign_product/__init__.py", "kernels/binary_product/__init__.py"} <= set(readers)


def test_probe_check_can_fail():
    assert probe_reads("from .._config import FLOAT_LUT\n") == ["FLOAT_LUT"]
    assert probe_reads("import fastbin._config as c\nif c.TABLE['few_rows']:\n    pass\n") == ["TABLE"]
    assert probe_reads('"""FLOAT_LUT in a docstring"""\nTABLE = 1\n') == []

