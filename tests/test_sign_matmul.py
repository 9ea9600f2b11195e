"""sign_matmul against fastbin.reference: float within tolerance.py, uint8 exact."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapes import KS, MS, NS, assert_uint8_sign_matmul_exact, skip_big_without_jit
from tolerance import assert_close

import fastbin
from fastbin import _config, _limits
from fastbin import reference as ref
from fastbin._config import TABLE
from fastbin.kernels import sign_product
from fastbin.packed import PackedSigns


def _x(rng, m, k, dtype):
    if dtype == np.uint8:
        x = rng.integers(0, 256, (m, k), dtype=np.uint8)
        x[rng.random(x.shape) < 0.1] = 255
        return x
    x = rng.standard_normal((m, k)).astype(dtype)
    x[rng.random(x.shape) < 0.1] = 0
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", MS)
def test_sign_matmul_matches_reference(rng, m, k, n, dtype):
    skip_big_without_jit(m * k * n)
    x = _x(rng, m, k, dtype)
    w = fastbin.pack_weights(rng.standard_normal((k, n)))
    out = fastbin.sign_matmul(x, w)
    expected = ref.sign_matmul(x, w)
    assert out.shape == (m, n)
    if dtype == np.uint8:
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, expected)
    else:
        assert out.dtype == np.dtype(dtype)
        assert_close(out, expected, scale=float(np.abs(x).sum(axis=1).max()))


def test_uint8_extremes_exact():
    k = 1000
    x = np.full((2, k), 255, np.uint8)
    x[1] = 0
    w = fastbin.pack_weights(-np.ones((k, 3)))
    np.testing.assert_array_equal(fastbin.sign_matmul(x, w), [[-255 * k] * 3, [0] * 3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_equals_serial(rng, dtype):
    x = _x(rng, 37, 300, dtype)
    w = fastbin.pack_weights(rng.standard_normal((300, 11)))
    serial = fastbin.sign_matmul(x, w, threads=False)
    threaded = fastbin.sign_matmul(x, w, threads=True)
    np.testing.assert_array_equal(threaded, serial)  # same kernel per row: bit-identical


def test_non_contiguous_x(rng):
    base = _x(rng, 10, 200, np.float64)
    x = base[::2, :130]
    w = fastbin.pack_weights(rng.standard_normal((130, 4)))
    assert_close(fastbin.sign_matmul(x, w), ref.sign_matmul(x, w), scale=float(np.abs(x).sum(1).max()))


@pytest.mark.parametrize("k", [1, 64, 65, 200])
def test_non_contiguous_uint8_x(rng, k):
    """The uint8 kernel reads C-ordered rows in place (masked 64-byte loads at
    the row end) and copies a strided x once: both give the exact product,
    also through the raw kernel."""
    base = _x(rng, 9, 2 * k, np.uint8)
    w = fastbin.pack_weights(rng.standard_normal((k, 11)))
    for x in (base[::2, :k], base[:, ::2], np.asfortranarray(base[:, :k]), base[3:4, k:]):
        expected = ref.sign_matmul(x, w)
        np.testing.assert_array_equal(fastbin.sign_matmul(x, w), expected)
        out = np.zeros(expected.shape, np.int32)
        assert fastbin.kernels.sign_matmul_uint8(x, w.bits, out)
        np.testing.assert_array_equal(out, expected)


def test_uint8_bad_input_is_rejected(rng):
    """The uint8 fast path hands anything unusual to the full checks."""
    w = fastbin.pack_weights(rng.standard_normal((70, 4)))
    x = _x(rng, 3, 70, np.uint8)
    with pytest.raises(ValueError, match=r"\(m >= 1, 70\)"):
        fastbin.sign_matmul(x[:, :69], w)
    with pytest.raises(ValueError, match="shape"):
        fastbin.sign_matmul(x[:0], w)
    with pytest.raises(ValueError, match="shape"):
        fastbin.sign_matmul(x[0], w)
    with pytest.raises(ValueError, match="at least one row"):
        fastbin.sign_matmul(x, PackedSigns(np.zeros((0, 2), np.uint64), 70))
    with pytest.raises(TypeError, match="PackedSigns"):
        fastbin.sign_matmul(x, w.bits)
    _assert_padding_rejected(x, w, 1, 63, fastbin.kernels.sign_matmul_uint8, np.int32)


def _assert_padding_rejected(x, w, row, bit, kernel, out_dtype):
    """A padding bit set in row ``row`` of ``w``: the public function raises
    and the kernel returns False without writing to ``out``."""
    bits = w.bits.copy()
    bits[row, -1] |= np.uint64(1) << np.uint64(bit)
    with pytest.raises(ValueError, match="padding"):
        fastbin.sign_matmul(x, PackedSigns(bits, w.n_bits))
    out = np.full((x.shape[0], bits.shape[0]), 7, out_dtype)
    assert not kernel(x, bits, out)
    assert (out == 7).all()  # nothing written


@given(
    m=st.integers(1, 10),
    k=st.integers(1, 300),
    n=st.integers(1, 12),
    dtype=st.sampled_from([np.float32, np.float64, np.uint8]),
    seed=st.integers(0, 2**32 - 1),
)
def test_sign_matmul_property(m, k, n, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _x(rng, m, k, dtype)
    w = fastbin.pack_weights(rng.standard_normal((k, n)))
    out, expected = fastbin.sign_matmul(x, w), ref.sign_matmul(x, w)
    if dtype == np.uint8:
        np.testing.assert_array_equal(out, expected)
    else:
        assert_close(out, expected, scale=float(np.abs(x).sum(axis=1).max()))


@pytest.mark.slow
def test_sign_matmul_large(rng):
    x = _x(rng, 300, 3000, np.float32)
    w = fastbin.pack_weights(rng.standard_normal((3000, 70)))
    assert_close(fastbin.sign_matmul(x, w, threads=True), ref.sign_matmul(x, w), scale=float(np.abs(x).sum(1).max()))


def test_sign_matmul_rejects_bad_input(rng):
    w = fastbin.pack_weights(rng.standard_normal((70, 4)))
    x = _x(rng, 3, 70, np.float32)
    with pytest.raises(TypeError, match="PackedSigns"):
        fastbin.sign_matmul(x, np.ones((70, 4)))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        fastbin.sign_matmul(x.tolist(), w)
    for dtype in (np.int32, np.int8, np.float16, np.uint16):
        with pytest.raises(TypeError, match="dtype"):
            fastbin.sign_matmul(x.astype(dtype), w)
    with pytest.raises(ValueError, match=r"\(m >= 1, 70\)"):
        fastbin.sign_matmul(x[:, :69], w)
    with pytest.raises(ValueError, match="shape"):
        fastbin.sign_matmul(x[0], w)
    with pytest.raises(ValueError, match="shape"):
        fastbin.sign_matmul(x[:0], w)
    bits = w.bits.copy()
    bits[0, -1] |= np.uint64(1) << np.uint64(6)
    with pytest.raises(ValueError, match="padding"):
        fastbin.sign_matmul(x, PackedSigns(bits, 70))


_ROW_THRESHOLDS = {
    np.float32: TABLE["unpack_min_rows_f32"],
    np.float64: TABLE["unpack_min_rows_f64"],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 63, 64, 65, 784, 1000])
@pytest.mark.parametrize("delta", [-2, -1, 0, 1])
def test_float_rows_around_unpack_threshold(rng, dtype, k, delta):
    """Below the threshold the float kernels sum straight from the bits (no
    unpacked W), from it on they unpack: both sides, serial and threaded,
    against the reference, and through the planned kernel (``bits`` below, ``unpack`` from it;
    float32 rows up to ``TABLE["f32_rows_max_rows"]``, NEON's 7, take ``f32_rows`` serially)."""
    m = max(1, _ROW_THRESHOLDS[dtype] + delta)
    x = _x(rng, m, k, dtype)
    w = fastbin.pack_weights(rng.standard_normal((k, 7)))
    expected = ref.sign_matmul(x, w)
    scale = float(np.abs(x).sum(axis=1).max())
    serial = fastbin.sign_matmul(x, w, threads=False)
    assert serial.dtype == np.dtype(dtype)
    assert_close(serial, expected, scale=scale)
    few = dtype == np.float32 and m <= TABLE["f32_rows_max_rows"]
    threaded = fastbin.sign_matmul(x, w, threads=True)
    if few:  # serial f32_rows, threaded bits_parallel: two summation orders, both within rounding
        assert_close(threaded, expected, scale=scale)
    else:  # bits and bits_parallel (unpack and unpack_parallel) add in the same order
        np.testing.assert_array_equal(threaded, serial)
    path = sign_product.plan(m, k, 7, np.dtype(dtype), threads=False)
    assert path.name == ("f32_rows" if few else "bits" if delta < 0 or m < _ROW_THRESHOLDS[dtype] else "unpack")
    out = np.full(expected.shape, np.nan, dtype)
    assert path(x, w.bits, out)
    np.testing.assert_array_equal(out, serial)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_few_rows_signed_sum_accuracy(dtype):
    """The bits path sums ``x`` signed (no ``sum(x) - 2 * sum(x where -1)``):
    large values that cancel leave the small ones exact."""
    k = 1000
    x = np.ones((1, k), dtype)
    x[0, :500] = 1e6
    signs = np.ones(k)
    signs[250:500] = -1  # the large values cancel exactly
    w = fastbin.pack_weights(signs[:, None])
    np.testing.assert_array_equal(fastbin.sign_matmul(x, w), [[500.0]])


def test_few_rows_padding_is_rejected(rng):
    """The bits path checks the padding too, writing nothing on failure."""
    x = _x(rng, 1, 70, np.float32)
    w = fastbin.pack_weights(rng.standard_normal((70, 3)))
    _assert_padding_rejected(x, w, 2, 40, fastbin.kernels.sign_matmul_bits, np.float32)


def test_float_kernel_from_user_njit(rng):
    """The raw float kernels (from the bits, and on unpacked signs) are callable from a
    user's own @njit function."""
    import numba

    @numba.njit
    def user(x, w_bits):
        out = np.empty((x.shape[0], w_bits.shape[0]), x.dtype)
        if x.shape[0] < 8:
            ok = fastbin.kernels.sign_matmul_bits(x, w_bits, out)
        else:
            ok = fastbin.kernels.sign_matmul_float(x, w_bits, out)
        return ok, out

    w = fastbin.pack_weights(rng.standard_normal((130, 5)))
    for dtype in (np.float32, np.float64):
        for m in (1, 16):
            x = _x(rng, m, 130, dtype)
            ok, out = user(x, w.bits)
            assert ok
            assert_close(out, ref.sign_matmul(x, w), scale=float(np.abs(x).sum(axis=1).max()))


def _uint8_float_min_rows(n):
    """The fewest rows that take the uint8 kernel's float32 path (k <= bound)."""
    half_cols, min_rows = TABLE["uint8_float_half_cols"], TABLE["uint8_float_min_rows"]
    return -(-min_rows * n // (n + half_cols))


def _portable_cpu(monkeypatch):
    """The planner as on a CPU without lookups, AVX2 multiply-adds, BLAS or a vector popcount
    (the probes of ``fastbin._config``, where it reads them), taking the uint8 float path (not
    the byte masks the NEON table prefers: ``uint8_rows`` for few rows, ``uint8_masks`` above)."""
    for flag, value in (("FLOAT_LUT", False), ("INT16_LUT", False), ("INT8_MADD", False), ("INT8_DOT", False),
                        ("FLOAT_LUT8", False),
                        ("SIGN_MATMUL_BLAS", False),
                        ("SIGN_MATMUL_UINT8_FLOAT_PATH", True)):
        monkeypatch.setattr(_config, flag, value)
    monkeypatch.setitem(_config.TABLE, "uint8_masks_min_rows", 0)
    monkeypatch.setitem(_config.TABLE, "uint8_rows_max_rows", 0)  # NEON's few-row byte masks
    monkeypatch.setitem(_config.TABLE, "f32_rows_max_rows", 0)  # NEON's few-row sign flips


def test_uint8_float_exactness_bound(monkeypatch):
    """float32 holds the integers up to 2**24: the uint8 float path's bound on
    k is the largest with 255 * k < 2**24, and the planner leaves it above."""
    bound = _limits.UINT8_F32_EXACT_MAX_K
    _portable_cpu(monkeypatch)

    def pays(m, n, k):
        return sign_product.plan(m, k, n, np.dtype(np.uint8)).name == "uint8_float"

    assert 255 * bound < 2**24 <= 255 * (bound + 1)
    assert np.float32(255 * bound) == 255 * bound
    assert pays(1000, 10, bound)
    assert not pays(1000, 10, bound + 1)
    for n in (1, 2, 10, 50, 100, 10**6):
        m = _uint8_float_min_rows(n)
        assert 1 <= m <= TABLE["uint8_float_min_rows"]
        assert pays(m, n, 784)
        assert m == 1 or not pays(m - 1, n, 784)


@pytest.mark.parametrize("n", [1, 2, 10])
@pytest.mark.parametrize("k", [1, 63, 64, 65, 784])
@pytest.mark.parametrize("fill", ["random", "full", "zeros", "strided"])
def test_uint8_rows_around_float_threshold(rng, n, k, fill):
    """Around the rows where the planner switches uint8 rows from bit-planes to
    exact float32 sums (and at an odd row count past a row block): both
    inner paths, both raw kernels and the public function equal the reference
    exactly, also for the largest sums (x = 255) and a strided x."""
    from fastbin.kernels.sign_product.portable import _uint8_float_rows, _uint8_rows

    signs = rng.standard_normal((k, n))
    if fill == "full":
        signs[:, 0] = -1  # the largest sum: -255 * k
    w = fastbin.pack_weights(signs)
    t = _uint8_float_min_rows(n)
    for m in sorted({t - 1, t, t + 1, 2 * t + 5} - {0}):
        if fill == "full":
            x = np.full((m, k), 255, np.uint8)
        elif fill == "zeros":
            x = np.zeros((m, k), np.uint8)
        elif fill == "strided":
            x = _x(rng, 2 * m, 2 * k, np.uint8)[::2, 1::2]
        else:
            x = _x(rng, m, k, np.uint8)
        expected = ref.sign_matmul(x, w)
        np.testing.assert_array_equal(fastbin.sign_matmul(x, w), expected)
        for kernel in (fastbin.kernels.sign_matmul_uint8, fastbin.kernels.sign_matmul_uint8_float):
            out = np.full(expected.shape, 7, np.int32)
            assert kernel(x, w.bits, out)
            np.testing.assert_array_equal(out, expected)
        xc = np.ascontiguousarray(x)
        for inner in (_uint8_float_rows, _uint8_rows):
            out = np.full(expected.shape, 7, np.int32)
            inner(xc, w.bits, out)
            np.testing.assert_array_equal(out, expected)


# Both register-block kernels against NumPy, whichever one this CPU selected
# (fastbin._config.DOT_BLOCK): the other one is what a CPU with the
# other register count runs.
_DOT_MS = range(1, 10)  # 0-2 full blocks of 4 rows plus every leftover count
_DOT_NS = [1, 2, 3, 4, 5, 6, 10, 11]  # below, at and past both column blocks


@pytest.mark.parametrize("k", [1, 63, 64, 65, 784])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", ["dot_rows_4x5", "dot_rows_4x3"])
def test_dot_block_kernels_match_numpy(rng, block, dtype, k):
    from fastbin.kernels.sign_product import _dot_blocks

    kernel = getattr(_dot_blocks, block)
    for m in _DOT_MS:
        x = _x(rng, m, k, dtype)
        scale = float(np.abs(x).sum(axis=1).max())
        for n in _DOT_NS:
            s = np.where(rng.random((n, k)) < 0.5, -1.0, 1.0).astype(dtype)
            expected = x.astype(np.float64) @ s.T.astype(np.float64)
            out = np.full((m, n), np.nan, dtype)
            kernel(x, s, 0, m, out)
            assert_close(out, expected, dtype=dtype, scale=scale, err_msg=f"{block} m={m} n={n}")
            # A row range (the threaded kernel's unit) leaves the other rows alone.
            part = np.full((m, n), np.nan, dtype)
            kernel(x, s, m // 2, m, part)
            assert np.isnan(part[: m // 2]).all()
            assert_close(part[m // 2 :], expected[m // 2 :], dtype=dtype, scale=scale)


def test_dot_block_is_chosen_by_vector_registers():
    from fastbin._config import DOT_BLOCK, VECTOR_REGISTERS
    from fastbin.kernels.sign_product import _dot_blocks, portable

    wide = VECTOR_REGISTERS >= 32
    assert DOT_BLOCK == ("4x5" if wide else "4x3")
    assert _dot_blocks.dot_rows is (_dot_blocks.dot_rows_4x5 if wide else _dot_blocks.dot_rows_4x3)
    assert portable._dot_rows is _dot_blocks.dot_rows
    assert _dot_blocks.COL_BLOCK == (5 if wide else 3) and portable.ROW_BLOCK == _dot_blocks.ROW_BLOCK == 4


# ------------------------------------------------ int32 overflow (issue 12)
def test_uint8_k_limit_is_where_int32_ends():
    from fastbin import _config

    assert _config.SIGN_MATMUL_UINT8_MAX_K == 8421504
    assert 255 * _config.SIGN_MATMUL_UINT8_MAX_K <= 2**31 - 1 < 255 * (_config.SIGN_MATMUL_UINT8_MAX_K + 1)


@pytest.mark.parametrize("strided", [False, True])
def test_uint8_k_over_the_limit_raises_before_the_kernel(monkeypatch, strided):
    """The boundary with small arrays: the limit lowered to 100."""
    from fastbin.ops import matmul

    monkeypatch.setattr(matmul, "SIGN_MATMUL_UINT8_MAX_K", 100)
    monkeypatch.setattr(matmul, "_plan", _must_not_run)
    x = np.full((2, 202 if strided else 101), 255, np.uint8)[:, ::2 if strided else 1]
    w = PackedSigns(np.zeros((3, 2), np.uint64), 101)
    with pytest.raises(ValueError, match=r"k=101 is too long for the int32 result.*at most 100"):
        fastbin.sign_matmul(x, w)
    with pytest.raises(ValueError, match="too long for the int32 result"):
        fastbin.dense_sign_matmul(x, w)


def _must_not_run(*args):
    raise AssertionError("the kernel ran")


def test_uint8_k_at_the_limit_still_runs(monkeypatch):
    from fastbin.ops import matmul

    monkeypatch.setattr(matmul, "SIGN_MATMUL_UINT8_MAX_K", 100)
    x = np.full((2, 100), 255, np.uint8)
    np.testing.assert_array_equal(fastbin.sign_matmul(x, PackedSigns(np.zeros((3, 2), np.uint64), 100)), 25500)


@pytest.mark.skipif(fastbin._config.jit_disabled(), reason="9e6-element rows take minutes as plain Python")
def test_uint8_real_overflow_is_refused_and_the_limit_is_exact():
    """Issue 12: k = 9e6 (255 * k = 2295000000) used to wrap to -1999967296.
    About 20 MB: x is one 255-row, W all +1."""
    k = 9_000_000
    x = np.full((1, k), 255, np.uint8)
    w = PackedSigns(np.zeros((1, -(-k // 64)), np.uint64), k)
    with pytest.raises(ValueError, match="too long for the int32 result"):
        fastbin.sign_matmul(x, w)
    k = fastbin._config.SIGN_MATMUL_UINT8_MAX_K
    w = PackedSigns(np.zeros((1, -(-k // 64)), np.uint64), k)
    assert fastbin.sign_matmul(x[:, :k], w)[0, 0] == 255 * k == 2147483520


@pytest.mark.parametrize("m,k,n,chunk_cols", [(64, 784, 256, None), (65, 3, 300, 32), (128, 2048, 257, 48),
                                              (16, 100, 300, 16)])
def test_blas_path_of_machines_without_lookups(m, k, n, chunk_cols, rng, monkeypatch):
    """Where ``SIGN_MATMUL_BLAS`` (x86-64 without AVX-512F), many float32 rows, and uint8
    rows without a vector popcount, multiply the unpacked signs with BLAS, a block of
    outputs at a time (here also blocks of 16-48 outputs, the last one partial, and 16
    rows through the large-W rule): float32 within the tolerance table, uint8 the
    reference's int32 bits (float32 sums of integers below 2**24), strided rows too; bad
    padding bits raise as on every path. Forced on here (the probes and table of ``_config``),
    with a spy, so the test covers the path and not a fallback."""
    from fastbin import _tables
    from fastbin.ops import matmul

    skip_big_without_jit(m * k * n)
    _portable_cpu(monkeypatch)
    monkeypatch.setattr(_config, "SIGN_MATMUL_BLAS", True)
    table = _tables.Table(_tables.AVX2)  # the planner reads the AVX2 kind's table
    if chunk_cols is not None:
        table["blas_chunk_bytes"] = 4 * k * chunk_cols
    if m < table["blas_min_rows"]:
        table["blas_big"] = k * n
    monkeypatch.setattr(_config, "TABLE", table)
    calls = []
    real = sign_product.plan
    monkeypatch.setattr(matmul, "_plan", lambda *a, **kw: calls.append(real(*a, **kw)) or calls[-1])
    assert sign_product._blas_rows(table, m, k, n)
    w = rng.standard_normal((k, n)).astype(np.float32)
    w[:, 0] = -1.0
    packed = fastbin.pack_weights(w)
    x = rng.standard_normal((m, 2 * k)).astype(np.float32)[:, ::2]  # strided
    got = fastbin.sign_matmul(x, packed, threads=False)
    assert got.dtype == np.float32
    assert_close(got, (x.astype(np.float64) @ np.where(w < 0, -1.0, 1.0)).astype(np.float32),
                 scale=max(1.0, float(np.abs(x).sum(axis=1).max())) / 10)
    assert_uint8_sign_matmul_exact(rng, m, k, n, threads=(None,))
    assert [path.name for path in calls] == ["blas", "uint8_blas"]
    assert calls[0].args == (table["blas_chunk_bytes"],)
    u = rng.integers(0, 256, (m, k), dtype=np.uint8)
    bad = fastbin.PackedSigns(packed.bits.copy(), k)
    if k % 64:
        bad.bits[0, -1] |= np.uint64(1) << np.uint64(63)
        with pytest.raises(ValueError, match="padding"):
            fastbin.sign_matmul(x, bad)
        with pytest.raises(ValueError, match="padding"):
            fastbin.sign_matmul(u, bad)


# ------------------------------------------------------------- out= (issue 23)
class _Sub(np.ndarray):
    """An ndarray subclass: a valid ``out`` the kernels' compiled types do not cover."""


@pytest.mark.parametrize("threads", [None, False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(1, 784, 512), (1, 70, 4), (3, 64, 10), (17, 784, 10), (130, 200, 33)])
def test_sign_matmul_out_equals_the_call_without(rng, m, k, n, dtype, threads):
    skip_big_without_jit(m * k * n)
    x = _x(rng, m, k, dtype)
    w = fastbin.pack_weights(rng.standard_normal((k, n)))
    expected = fastbin.sign_matmul(x, w, threads=threads)
    out_dtype = np.int32 if dtype == np.uint8 else dtype
    spaced = np.zeros((m, 2 * k), dtype)
    spaced[:, ::2] = x
    for x_in in (x, spaced[:, ::2]):  # C-contiguous rows, strided rows (the checked path)
        out = np.full((m, n), -7, out_dtype)
        for _ in range(2):  # the first call plans, the second takes the last plan's record
            assert fastbin.sign_matmul(x_in, w, out=out, threads=threads) is out
            np.testing.assert_array_equal(out, expected)  # the same kernel: the same bits
            out[...] = -7


def test_sign_matmul_out_views_and_subclasses(rng):
    x = _x(rng, 2, 100, np.float32)
    w = fastbin.pack_weights(rng.standard_normal((100, 5)))
    expected = fastbin.sign_matmul(x, w)
    big = np.zeros((4, 5), np.float32)
    for out in (big[1:3], np.zeros((2, 5), np.float32).view(_Sub)):
        assert fastbin.sign_matmul(x, w, out=out) is out
        np.testing.assert_array_equal(out, expected)
    assert (big[0] == 0).all() and (big[3] == 0).all()


@pytest.mark.parametrize("recorded", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_sign_matmul_rejects_every_bad_out(rng, dtype, recorded):
    """Each bad ``out`` raises, naming ``out``, before the kernel writes anything; also when
    the last plan's record matches the call."""
    m, k, n = 3, 70, 70  # k == n: x itself has the result's shape
    x = _x(rng, m, k, dtype)
    w = fastbin.pack_weights(rng.standard_normal((k, n)))
    result = np.int32 if dtype == np.uint8 else np.float32
    other = np.float32 if dtype == np.uint8 else np.float64
    wide = np.zeros((m, 2 * n), result)
    readonly = np.zeros((m, n), result)
    readonly.flags.writeable = False
    w_buf = w.bits.copy()
    w_shared = PackedSigns(w_buf, k)
    over_w = w_buf.reshape(-1).view(result)[: m * n].reshape(m, n)
    cases = [
        (x, w, np.zeros((m, n), result).tolist(), TypeError, "out must be a numpy.ndarray"),
        (x, w, np.zeros((m, n), other), TypeError, f"out must have dtype {np.dtype(result)}"),
        (x, w, np.zeros((m, n), np.int64), TypeError, f"out must have dtype {np.dtype(result)}"),
        (x, w, np.zeros((n, m + 1), result), ValueError, rf"out must have shape \({m}, {n}\)"),
        (x, w, np.zeros(m * n, result), ValueError, "out must have shape"),
        (x, w, wide[:, ::2], ValueError, "out must be C-contiguous"),
        (x, w, np.zeros((m, n), result, order="F"), ValueError, "out must be C-contiguous"),
        (x, w, readonly, ValueError, "out must be writeable"),
        (x, w_shared, over_w, ValueError, "out must not overlap w"),
    ]
    if dtype == np.float32:
        x_copy = x.copy()
        owner = x.copy()  # out owns its memory and x is a view of it
        cases += [(x_copy, w, x_copy, ValueError, "out must not overlap x"),  # out is x
                  (x_copy[:2], w, x_copy[1:], ValueError, "out must not overlap x"),  # one row shared
                  (owner[:], w, owner, ValueError, "out must not overlap x")]
    for x_in, w_in, out, error, message in cases:
        if recorded:
            fastbin.sign_matmul(x_in, w_in)
        inputs = (x_in.copy(), w_in.bits.copy())
        kept = np.array(out, copy=True)
        with pytest.raises(error, match=message):
            fastbin.sign_matmul(x_in, w_in, out=out)
        np.testing.assert_array_equal(x_in, inputs[0])
        np.testing.assert_array_equal(w_in.bits, inputs[1])
        np.testing.assert_array_equal(np.asarray(out), kept)  # nothing written


def test_sign_matmul_out_errors_come_after_the_operands(rng):
    w = fastbin.pack_weights(rng.standard_normal((70, 4)))
    x = _x(rng, 3, 70, np.float32)
    with pytest.raises(ValueError, match=r"\(m >= 1, 70\)"):
        fastbin.sign_matmul(x[:, :69], w, out=[])
    with pytest.raises(TypeError, match="x must have dtype"):
        fastbin.sign_matmul(x.astype(np.int8), w, out=np.zeros((3, 4), np.int32))


def test_sign_matmul_out_positional(rng):
    x = _x(rng, 1, 784, np.uint8)
    w = fastbin.pack_weights(rng.standard_normal((784, 10)))
    out = np.empty((1, 10), np.int32)
    for _ in range(2):
        assert fastbin.sign_matmul(x, w, out) is out
        np.testing.assert_array_equal(out, ref.sign_matmul(x, w))
