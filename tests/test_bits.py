"""The bit convention of fastbin.bits, checked on the public packing API, and
popcount in jitted and plain-Python form."""
import numba
import numpy as np
import pytest

import fastbin
from fastbin.kernels import intrinsics as popcount_module
from fastbin.packed import PackedSigns

EDGE_WORDS = [0, 1, (1 << 64) - 1, 1 << 63, (1 << 63) - 1, 0x5555555555555555, 0xF0F0F0F0F0F0F0F0]


def test_bit_one_means_negative_lsb_first():
    x = np.ones((1, 70), np.float32)
    x[0, 0] = -1.0
    x[0, 5] = -2.5
    x[0, 64] = -1.0
    bits = fastbin.pack_signs(x).bits
    assert bits.shape == (1, 2)
    assert bits[0, 0] == (1 << 0) | (1 << 5)
    assert bits[0, 1] == 1  # element 64 -> word 1, bit 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sign_of_zero_is_plus_one(dtype):
    x = np.array([[0.0, -0.0]], dtype)
    assert np.signbit(x[0, 1])
    assert fastbin.pack_signs(x).bits[0, 0] == 0
    assert fastbin.pack_weights(x.T).bits[0, 0] == 0


@pytest.mark.parametrize("k", [1, 63, 65, 127, 1000])
def test_padding_bits_are_zero(k):
    packed = fastbin.pack_signs(-np.ones((3, k)))  # every real bit set
    assert packed.padding_is_zero()
    tail = k % 64
    assert int(packed.bits[0, -1]) == (1 << tail) - 1 if tail else (1 << 64) - 1
    assert fastbin.pack_weights(-np.ones((k, 3))).padding_is_zero()


@pytest.mark.parametrize("k", [1, 63, 65])
def test_padding_never_changes_a_result(k):
    """Padding is zero in both operands, so it cancels in XOR: an all-negative
    row gives exactly k against itself and -k against an all-positive row."""
    a = fastbin.pack_signs(-np.ones((1, k)))
    w = fastbin.pack_weights(np.ones((k, 1)))
    assert fastbin.binary_matmul(a, a)[0, 0] == k
    assert fastbin.binary_matmul(a, w)[0, 0] == -k


@pytest.mark.parametrize("api", ["binary_matmul", "sign_matmul", "unpack_signs", "binary_dense_sign"])
def test_garbage_padding_is_rejected(api):
    k = 65
    good = fastbin.pack_weights(np.ones((k, 2)))
    bits = good.bits.copy()
    bits[1, -1] |= np.uint64(1) << np.uint64(1)  # bit 65: padding
    bad = PackedSigns(bits, k)
    assert not bad.padding_is_zero()
    calls = {
        "binary_matmul": lambda: fastbin.binary_matmul(good, bad),
        "sign_matmul": lambda: fastbin.sign_matmul(np.ones((1, k), np.float32), bad),
        "unpack_signs": lambda: fastbin.unpack_signs(bad),
        "binary_dense_sign": lambda: fastbin.binary_dense_sign(
            bad, good, np.zeros(2, np.int64), np.zeros(2, bool)
        ),
    }
    with pytest.raises(ValueError, match="padding"):
        calls[api]()


@numba.njit
def _popcount_jit(value):
    return popcount_module.popcount(value)


@pytest.mark.parametrize("word", EDGE_WORDS)
def test_popcount_edge_values(word):
    expected = word.bit_count()
    assert popcount_module._popcount_python(np.uint64(word)) == expected
    assert _popcount_jit(np.uint64(word)) == expected  # plain Python under NUMBA_DISABLE_JIT
    if numba.config.DISABLE_JIT:  # then the public name is the Python fallback
        assert popcount_module.popcount(np.uint64(word)) == expected


def test_popcount_returns_signed_intp():
    if numba.config.DISABLE_JIT:
        pytest.skip("typing only exists when Numba compiles")
    _popcount_jit(np.uint64(3))
    [sig] = _popcount_jit.nopython_signatures
    assert sig.return_type == numba.types.intp
