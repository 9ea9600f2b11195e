"""pack_signs / pack_weights / unpack_signs against fastbin.reference (exact)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastbin
from fastbin import reference as ref
from fastbin.bits import ALIGNMENT
from fastbin.packed import PackedSigns

KS = [1, 63, 64, 65, 127, 128, 784, 1000]
MS = [1, 3, 17, 128]
DTYPES = [np.float32, np.float64, np.int8, np.int16, np.int32, np.int64]


def _matrix(rng, shape, dtype):
    if np.dtype(dtype).kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
        x[rng.random(shape) < 0.1] = 0.0
        x[rng.random(shape) < 0.1] = -0.0
        return x
    return rng.integers(-2, 3, shape).astype(dtype)


def _same(fast: PackedSigns, slow: PackedSigns):
    assert isinstance(fast, PackedSigns)
    assert fast.n_bits == slow.n_bits
    assert fast.bits.dtype == np.uint64 and fast.bits.flags.c_contiguous
    assert fast.bits.ctypes.data % ALIGNMENT == 0
    assert fast.padding_is_zero()
    np.testing.assert_array_equal(fast.bits, slow.bits)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", MS)
def test_pack_signs_matches_reference(rng, m, k, dtype):
    x = _matrix(rng, (m, k), dtype)
    _same(fastbin.pack_signs(x), ref.pack_signs(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", [1, 2, 10, 33])
def test_pack_weights_matches_reference(rng, k, n, dtype):
    w = _matrix(rng, (k, n), dtype)
    _same(fastbin.pack_weights(w), ref.pack_weights(w))


@pytest.mark.parametrize("order", ["F", "strided", "transposed"])
@pytest.mark.parametrize("k", [1, 65, 784])
def test_non_contiguous_inputs(rng, k, order):
    base = rng.standard_normal((2 * 9, 2 * k)).astype(np.float32)
    if order == "F":
        x = np.asfortranarray(base[:9, :k])
    elif order == "strided":
        x = base[::2, ::2]
    else:
        x = np.ascontiguousarray(base[:k, :9]).T  # F-ordered view: pack_columns
    assert k == 1 or not x.flags.c_contiguous
    _same(fastbin.pack_signs(x), ref.pack_signs(x))
    _same(fastbin.pack_weights(x), ref.pack_weights(x))


def test_zeros_and_negative_zero_are_positive():
    x = np.array([[0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf]], dtype=np.float64)
    packed = fastbin.pack_signs(x)
    assert packed.bits[0, 0] == 0b101000
    np.testing.assert_array_equal(fastbin.unpack_signs(packed), [[1, 1, 1, -1, 1, -1]])


@pytest.mark.parametrize("threads", [True, False])
def test_threaded_pack_equals_serial(rng, threads, monkeypatch):
    x = _matrix(rng, (33, 200), np.float32)
    monkeypatch.setitem(fastbin._config.TABLE["parallel_min_work"], "pack_signs", 1 if threads else 1 << 62)
    _same(fastbin.pack_signs(x), ref.pack_signs(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.int32, np.int64])
@pytest.mark.parametrize("k", [1, 63, 64, 65, 1000])
def test_unpack_roundtrip(rng, k, dtype):
    x = _matrix(rng, (5, k), np.float64)
    packed = fastbin.pack_signs(x)
    out = fastbin.unpack_signs(packed, dtype)
    assert out.dtype == np.dtype(dtype) and out.shape == (5, k)
    np.testing.assert_array_equal(out, ref.unpack_signs(packed, dtype))
    np.testing.assert_array_equal(out, np.where(x < 0, -1, 1))


def test_unpack_default_dtype_is_float32(rng):
    assert fastbin.unpack_signs(fastbin.pack_signs(rng.standard_normal((2, 3)))).dtype == np.float32


@given(
    m=st.integers(1, 20),
    k=st.integers(1, 300),
    dtype=st.sampled_from([np.float32, np.float64, np.int16]),
    seed=st.integers(0, 2**32 - 1),
)
def test_pack_property(m, k, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _matrix(rng, (m, k), dtype)
    _same(fastbin.pack_signs(x), ref.pack_signs(x))
    _same(fastbin.pack_weights(x.T), ref.pack_weights(x.T))
    np.testing.assert_array_equal(fastbin.unpack_signs(fastbin.pack_signs(x)), np.where(x < 0, -1, 1))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn", [fastbin.pack_signs, fastbin.pack_weights])
def test_pack_rejects_bad_input(fn):
    with pytest.raises(TypeError, match="numpy.ndarray"):
        fn([[1.0, -1.0]])
    with pytest.raises(TypeError, match="dtype"):
        fn(np.ones((2, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        fn(np.ones((2, 2), dtype=np.complex64))
    with pytest.raises(TypeError, match="dtype"):
        fn(np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="2-D"):
        fn(np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        fn(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        fn(np.ones((0, 5)))
    with pytest.raises(ValueError, match="empty"):
        fn(np.ones((5, 0)))


@pytest.mark.parametrize("fn", [fastbin.pack_signs, fastbin.pack_weights])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pack_rejects_nan(fn, dtype):
    for where in [(2, 69), (1, 3), (0, 63), (2, 64)]:  # tail word and whole words
        x = np.ones((3, 70), dtype=dtype)
        x[where] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            fn(x)
        with pytest.raises(ValueError, match="NaN"):
            fn(np.asfortranarray(x))
        x[where] = -np.nan  # sign bit set: still undefined
        with pytest.raises(ValueError, match="NaN"):
            fn(x)


def test_unpack_rejects_bad_input(rng):
    packed = fastbin.pack_signs(rng.standard_normal((2, 70)))
    with pytest.raises(TypeError, match="PackedSigns"):
        fastbin.unpack_signs(packed.bits)
    with pytest.raises(TypeError, match="dtype"):
        fastbin.unpack_signs(packed, np.uint8)
    packed.bits[1, 1] |= np.uint64(1) << np.uint64(63)
    with pytest.raises(ValueError, match="padding"):
        fastbin.unpack_signs(packed)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i4", "<f2", ">i2"])
def test_unusual_dtypes(rng, dtype):
    x = _matrix(rng, (4, 130), np.float32 if dtype[1] == "f" else np.int16).astype(dtype)
    _same(fastbin.pack_signs(x), ref.pack_signs(x))
    _same(fastbin.pack_weights(x.T), ref.pack_weights(x.T))


def test_read_only_input(rng):
    x = _matrix(rng, (4, 130), np.float32)
    x.setflags(write=False)
    _same(fastbin.pack_signs(x), ref.pack_signs(x))


def test_long_double_keeps_tiny_signs():
    if np.finfo(np.longdouble).tiny >= np.finfo(np.float64).tiny:
        pytest.skip("long double is float64 on this platform")
    x = np.array([[np.longdouble("-1e-400"), np.longdouble("1e-400"), 0, -1]], dtype=np.longdouble)
    _same(fastbin.pack_signs(x), ref.pack_signs(x))
    assert fastbin.pack_signs(x).bits[0, 0] == 0b1001
    x[0, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fastbin.pack_signs(x)


@pytest.mark.parametrize("dtype", [np.float16, ">f4", ">f8", ">i4", "<i2", np.longdouble])
def test_unpack_dtypes_numba_has_no_type_for(rng, dtype):
    """float16, long double and non-native byte orders go through int8 (issue 12:
    float16 used to end in a Numba typing error); ±1 is exact in each."""
    packed = fastbin.pack_signs(_matrix(rng, (3, 130), np.float32))
    out = fastbin.unpack_signs(packed, dtype)
    assert out.dtype == np.dtype(dtype) and out.shape == (3, 130)
    assert out.ctypes.data % ALIGNMENT == 0
    np.testing.assert_array_equal(out, ref.unpack_signs(packed, dtype))
    assert set(np.unique(out).tolist()) == {-1, 1}


def test_unpack_rejects_bad_dtype_names(rng):
    packed = fastbin.pack_signs(rng.standard_normal((2, 5)))
    for bad in (np.complex64, bool, object, "U3"):
        with pytest.raises(TypeError, match="dtype must be a float or signed integer"):
            fastbin.unpack_signs(packed, bad)
    with pytest.raises(TypeError, match="dtype must be a float or signed integer"):
        fastbin.unpack_signs(packed, "not-a-dtype")
