"""binary_matmul and binary_dense_sign against fastbin.reference (exact)."""
import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapes import KS, MS, NS, skip_big_without_jit

import fastbin
from fastbin import reference as ref
from fastbin.bits import ALIGNMENT
from fastbin.packed import PackedSigns


def _operands(rng, m, k, n):
    a = rng.standard_normal((m, k))
    w = rng.standard_normal((k, n))
    a[rng.random(a.shape) < 0.05] = -0.0
    return fastbin.pack_signs(a), fastbin.pack_weights(w)


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", MS)
def test_binary_matmul_matches_reference(rng, m, k, n):
    skip_big_without_jit(m * k * n)
    a, w = _operands(rng, m, k, n)
    out = fastbin.binary_matmul(a, w)
    assert out.dtype == np.int32 and out.shape == (m, n)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, w))


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 65, 3), (17, 784, 10), (130, 200, 33), (9, 4100, 2)])
def test_threaded_equals_serial(rng, m, k, n):
    a, w = _operands(rng, m, k, n)
    serial = fastbin.binary_matmul(a, w, threads=False)
    threaded = fastbin.binary_matmul(a, w, threads=True)
    np.testing.assert_array_equal(threaded, serial)
    np.testing.assert_array_equal(serial, ref.binary_matmul(a, w))


@pytest.mark.parametrize("k", [1, 70, 512, 579, 4101])
@pytest.mark.parametrize("m", [8, 9, 15, 16, 23])
def test_lane_kernel_remainders(rng, m, k):
    """At least 8 rows of a and of w take the lane kernel: every count of
    leftover columns (n % 8), partial row panels (m % 8), rows shorter than 8
    words and the overlapping last 8-word transpose (n_words % 8 != 0)."""
    for n in range(8, 17):
        skip_big_without_jit(m * k * n)
        a, w = _operands(rng, m, k, n)
        np.testing.assert_array_equal(fastbin.binary_matmul(a, w), ref.binary_matmul(a, w))
        np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=True), ref.binary_matmul(a, w))


def test_all_agree_and_all_differ():
    k = 130
    a = fastbin.pack_signs(np.ones((2, k)))
    w = fastbin.pack_weights(np.stack([np.ones(k), -np.ones(k)], axis=1))
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w), [[k, -k], [k, -k]])


@given(m=st.integers(1, 12), k=st.integers(1, 300), n=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_binary_matmul_property(m, k, n, seed):
    a, w = _operands(np.random.default_rng(seed), m, k, n)
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w), ref.binary_matmul(a, w))


@pytest.mark.slow
def test_binary_matmul_large(rng):
    a, w = _operands(rng, 300, 4096, 257)
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w), ref.binary_matmul(a, w))
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=True), ref.binary_matmul(a, w))


# ------------------------------------------------------- binary_dense_sign
def _layer(rng, k, n, dtype=np.int64):
    thresholds = rng.integers(-k // 4 - 1, k // 4 + 2, n).astype(dtype)
    flip = rng.random(n) < 0.5
    return thresholds, flip


@pytest.mark.parametrize("n", [1, 2, 10, 33, 64, 65, 130])
@pytest.mark.parametrize("k", [1, 64, 65, 784])
@pytest.mark.parametrize("m", [1, 3, 17])
def test_binary_dense_sign_matches_reference(rng, m, k, n):
    a, w = _operands(rng, m, k, n)
    thresholds, flip = _layer(rng, k, n)
    fast = fastbin.binary_dense_sign(a, w, thresholds, flip)
    slow = ref.binary_dense_sign(a, w, thresholds, flip)
    assert isinstance(fast, PackedSigns) and fast.shape == (m, n)
    assert fast.bits.ctypes.data % ALIGNMENT == 0 and fast.padding_is_zero()
    np.testing.assert_array_equal(fast.bits, slow.bits)


def test_dense_sign_ties_and_int32_thresholds(rng):
    a, w = _operands(rng, 7, 65, 9)
    dot = ref.binary_matmul(a, w)
    thresholds = dot[3].astype(np.int32)  # row 3 lands exactly on each threshold
    for flip in (np.zeros(9, bool), np.ones(9, bool)):
        fast = fastbin.binary_dense_sign(a, w, thresholds, flip)
        np.testing.assert_array_equal(fast.bits, ref.binary_dense_sign(a, w, thresholds, flip).bits)
        assert fast.bits[3, 0] == 0  # ties are +1 either way


def test_dense_sign_threaded_equals_serial(rng):
    a, w = _operands(rng, 37, 300, 70)
    thresholds, flip = _layer(rng, 300, 70)
    serial = fastbin.binary_dense_sign(a, w, thresholds, flip, threads=False)
    threaded = fastbin.binary_dense_sign(a, w, thresholds, flip, threads=True)
    np.testing.assert_array_equal(serial.bits, threaded.bits)


def test_dense_sign_chains_into_next_layer(rng):
    x = rng.standard_normal((5, 100))
    w1, w2 = rng.standard_normal((100, 70)), rng.standard_normal((70, 10))
    t1, f1 = _layer(rng, 100, 70)
    hidden = fastbin.binary_dense_sign(fastbin.pack_signs(x), fastbin.pack_weights(w1), t1, f1)
    out = fastbin.binary_matmul(hidden, fastbin.pack_weights(w2))
    dot1 = np.where(x < 0, -1, 1) @ np.where(w1 < 0, -1, 1)
    h = np.where(np.where(f1, dot1 > t1, dot1 < t1), -1, 1)
    np.testing.assert_array_equal(out, h @ np.where(w2 < 0, -1, 1))


@given(m=st.integers(1, 9), k=st.integers(1, 200), n=st.integers(1, 80), seed=st.integers(0, 2**32 - 1))
def test_dense_sign_property(m, k, n, seed):
    rng = np.random.default_rng(seed)
    a, w = _operands(rng, m, k, n)
    thresholds, flip = _layer(rng, k, n)
    fast = fastbin.binary_dense_sign(a, w, thresholds, flip)
    np.testing.assert_array_equal(fast.bits, ref.binary_dense_sign(a, w, thresholds, flip).bits)


# ---------------------------------------------------------------- bad input
def _garbage_padding(p: PackedSigns) -> PackedSigns:
    bits = p.bits.copy()
    bits[-1, -1] |= np.uint64(1) << np.uint64(63)
    return PackedSigns(bits, p.n_bits)


def test_binary_matmul_rejects_bad_input(rng):
    a, w = _operands(rng, 3, 70, 4)
    with pytest.raises(TypeError, match="PackedSigns"):
        fastbin.binary_matmul(a.bits, w)
    with pytest.raises(TypeError, match="PackedSigns"):
        fastbin.binary_matmul(a, np.ones((70, 4)))
    _, w_other = _operands(rng, 3, 71, 4)
    with pytest.raises(ValueError, match="k=70"):
        fastbin.binary_matmul(a, w_other)
    with pytest.raises(ValueError, match="padding"):
        fastbin.binary_matmul(_garbage_padding(a), w)
    with pytest.raises(ValueError, match="padding"):
        fastbin.binary_matmul(a, _garbage_padding(w))
    with pytest.raises(ValueError, match="at least one row"):
        fastbin.binary_matmul(PackedSigns(np.zeros((0, 2), np.uint64), 70), w)


def test_garbage_padding_would_change_the_result(rng):
    """Why the padding is checked: the XOR loop counts padding bits, so the raw
    kernel refuses (returns False, writes nothing) and the API raises."""
    from fastbin.kernels.binary_product import blocked as module

    a, w = _operands(rng, 2, 70, 3)
    bad = _garbage_padding(a)
    out = np.full((2, 3), 7, np.int32)
    assert not fastbin.kernels.binary_matmul_kernel(bad.bits, w.bits, 70, out)
    assert not fastbin.kernels.binary_matmul_parallel(bad.bits, w.bits, 70, out)
    assert (out == 7).all()
    module._dots(bad.bits, w.bits, 70, 0, 2, out, 0)  # the unchecked inner loop
    assert not np.array_equal(out, ref.binary_matmul(a, w))
    assert fastbin.kernels.binary_matmul_kernel(a.bits, w.bits, 70, out)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, w))


def test_binary_dense_sign_rejects_bad_input(rng):
    a, w = _operands(rng, 3, 70, 4)
    thresholds, flip = _layer(rng, 70, 4)
    with pytest.raises(TypeError, match="PackedSigns"):
        fastbin.binary_dense_sign(a.bits, w, thresholds, flip)
    with pytest.raises(ValueError, match="padding"):
        fastbin.binary_dense_sign(a, _garbage_padding(w), thresholds, flip)
    with pytest.raises(TypeError, match="thresholds"):
        fastbin.binary_dense_sign(a, w, thresholds.astype(np.float64), flip)
    with pytest.raises(TypeError, match="thresholds"):
        fastbin.binary_dense_sign(a, w, list(thresholds), flip)
    with pytest.raises(ValueError, match=r"thresholds must have shape \(4,\)"):
        fastbin.binary_dense_sign(a, w, thresholds[:3], flip)
    with pytest.raises(ValueError, match="thresholds must have shape"):
        fastbin.binary_dense_sign(a, w, thresholds[None, :], flip)
    with pytest.raises(TypeError, match="flip"):
        fastbin.binary_dense_sign(a, w, thresholds, flip.astype(np.int8))
    with pytest.raises(ValueError, match=r"flip must have shape \(4,\)"):
        fastbin.binary_dense_sign(a, w, thresholds, flip[:2])


# ------------------------------------------- raw kernels from user @njit code
def test_user_njit_function_calls_the_raw_kernels(rng):
    """The documented kernel signatures work inside a user's own @njit code."""

    from fastbin import kernels

    @numba.njit
    def two_layer_scores(x, w1_bits, thresholds, flip, w2_bits):
        m, k = x.shape
        a_bits = np.empty((m, (k + 63) // 64), np.uint64)
        if kernels.pack_rows(x, a_bits):
            raise ValueError("NaN")
        n1 = w1_bits.shape[0]
        hidden = np.empty((m, (n1 + 63) // 64), np.uint64)
        kernels.binary_dense_sign_kernel(a_bits, w1_bits, k, thresholds, flip, hidden)
        out = np.empty((m, w2_bits.shape[0]), np.int32)
        kernels.binary_matmul_kernel(hidden, w2_bits, n1, out)
        return out

    x = rng.standard_normal((6, 100))
    w1, w2 = fastbin.pack_weights(rng.standard_normal((100, 70))), fastbin.pack_weights(rng.standard_normal((70, 10)))
    thresholds, flip = _layer(rng, 100, 70)
    got = two_layer_scores(x, w1.bits, thresholds, flip, w2.bits)
    hidden = ref.binary_dense_sign(ref.pack_signs(x), w1, thresholds, flip)
    np.testing.assert_array_equal(got, ref.binary_matmul(hidden, w2))


# ------------------------------------------- both word loops of the lane block
from fastbin.kernels.binary_product import _lanes, _lanes_bytes  # noqa: E402

#: Across the byte-sum / Harley-Seal switch (32 words, also the i8 limit),
#: Harley-Seal tails (n_words % 4) and its widening every 124 words.
LANE_KS = [1, 63, 64, 65, 784, 31 * 64, 31 * 64 + 1, 32 * 64, 62 * 64 + 5, 4096, 124 * 64, 125 * 64 + 3]


def _block_runner(block):
    @numba.njit
    def run(panels, p, w, j, k, out, row, valid):
        block(panels, p, w, j, k, out, row, valid)

    return run


_RUNNERS = {
    name: [_block_runner(block) for block in blocks]
    for name, blocks in (("native", _lanes.lane_blocks()), ("bytes", _lanes_bytes.byte_lane_blocks()))
}


@pytest.mark.parametrize("variant", sorted(_RUNNERS))
@pytest.mark.parametrize("k", LANE_KS)
def test_lane_block_word_loops(rng, variant, k):
    """The native (``vpopcntq``) and the byte-sum / Harley-Seal word loops,
    called directly whatever this CPU picks: 5 of 8 lanes, every column
    count, a panel at a row offset, int32 and int64 outputs."""
    valid, n, p, row = 5, 9, 3, 2
    a, w = _operands(rng, valid, k, n)
    expected = ref.binary_matmul(a, w)
    n_words = a.bits.shape[1]
    panels = np.full((p + n_words, _lanes.LANES), np.uint64(2**64 - 1), np.uint64)
    panels[p:, :valid] = a.bits.T
    for cols, run in enumerate(_RUNNERS[variant], start=1):
        j = n - cols
        for dtype in (np.int32, np.int64):
            out = np.full((row + _lanes.LANES, n), 7, dtype)
            run(panels, p, w.bits, j, k, out, row, valid)
            np.testing.assert_array_equal(out[row : row + valid, j:], expected[:, j:])
            assert (out[:row] == 7).all() and (out[row + valid :] == 7).all() and (out[:, :j] == 7).all()


@pytest.mark.parametrize("variant", sorted(_RUNNERS))
@pytest.mark.parametrize("k", [31 * 64, 31 * 64 + 1, 125 * 64 + 3, 300 * 64])
def test_lane_block_byte_sums_do_not_overflow(variant, k):
    """Every bit differs: the largest counts the i8 sums can meet (dot = -k)."""
    n_words = (k + 63) // 64
    bits = np.full((1, n_words), np.uint64(2**64 - 1), np.uint64)
    bits[0, -1] = np.uint64((1 << (k - 64 * (n_words - 1))) - 1)
    panels = np.repeat(bits.T, _lanes.LANES, axis=1)
    w = np.zeros((8, n_words), np.uint64)
    for cols, run in enumerate(_RUNNERS[variant], start=1):
        out = np.zeros((_lanes.LANES, 8), np.int32)
        run(panels, 0, w, 8 - cols, k, out, 0, _lanes.LANES)
        assert (out[:, 8 - cols :] == -k).all()


# ------------------------------------------------ int32 overflow (issue 12)
def test_binary_matmul_k_limit(monkeypatch):
    """|dot| <= k: int32 holds it up to k = 2**31 - 1; above, ValueError before
    the kernel (the boundary tested with the limit lowered to 100: a real
    k = 2**31 + 64 needs 256 MiB per row)."""
    from fastbin import _config
    from fastbin.ops import matmul

    assert _config.BINARY_MATMUL_MAX_K == 2**31 - 1
    monkeypatch.setattr(matmul, "BINARY_MATMUL_MAX_K", 100)
    ones = lambda k: PackedSigns(np.zeros((2, -(-k // 64)), np.uint64), k)  # noqa: E731 (all +1)
    np.testing.assert_array_equal(fastbin.binary_matmul(ones(100), ones(100)), 100)
    monkeypatch.setattr(matmul, "_plan_binary", _must_not_run)
    for threads in (None, True, False):
        with pytest.raises(ValueError, match=r"k=101 is too long for the int32 result.*at most 100"):
            fastbin.binary_matmul(ones(101), ones(101), threads=threads)


def _must_not_run(*args):
    raise AssertionError("the kernel ran")


@pytest.mark.parametrize("threads", [False, True])
def test_dense_sign_extreme_thresholds_match_reference(rng, threads):
    """int64 extremes as thresholds: the kernel's negation for flip used to
    wrap -2**63 to itself (a flipped output of 'dot > -2**63' came out +1)."""
    a, w = _operands(rng, 5, 70, 4)
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    thresholds = np.array([lo, hi, lo, hi], np.int64)
    flip = np.array([True, True, False, False])
    fast = fastbin.binary_dense_sign(a, w, thresholds, flip, threads=threads)
    expected = ref.binary_dense_sign(a, w, thresholds, flip)
    np.testing.assert_array_equal(fast.bits, expected.bits)
    np.testing.assert_array_equal(fastbin.unpack_signs(fast, np.int8), [[-1, 1, 1, -1]] * 5)


# ------------------------------------------------------------- out= (issue 23)
class _Sub(np.ndarray):
    """An ndarray subclass: a valid ``out`` the kernels' compiled types do not cover."""


def _unaligned(shape, dtype):
    """A writeable C-contiguous array whose data starts one byte past an alignment."""
    dtype = np.dtype(dtype)
    raw = bytearray(int(np.prod(shape)) * dtype.itemsize + 1)
    out = np.frombuffer(raw, dtype, offset=1).reshape(shape)
    assert not out.flags.aligned and out.flags.writeable and out.flags.c_contiguous
    return out


@pytest.mark.parametrize("threads", [None, False, True])
@pytest.mark.parametrize("m,k,n", [(1, 784, 512), (1, 70, 4), (3, 64, 10), (17, 784, 10), (130, 200, 33)])
def test_binary_matmul_out_equals_the_call_without(rng, m, k, n, threads):
    skip_big_without_jit(m * k * n)
    a, w = _operands(rng, m, k, n)
    expected = fastbin.binary_matmul(a, w, threads=threads)
    np.testing.assert_array_equal(expected, ref.binary_matmul(a, w))
    out = np.full((m, n), -7, np.int32)
    for _ in range(2):  # the first call plans, the second takes the last plan's record
        assert fastbin.binary_matmul(a, w, out=out, threads=threads) is out
        np.testing.assert_array_equal(out, expected)
        out[...] = -7
    b, _ = _operands(rng, m, k, n)  # the same out, other rows of a
    assert fastbin.binary_matmul(b, w, out=out, threads=threads) is out
    np.testing.assert_array_equal(out, ref.binary_matmul(b, w))


def test_binary_matmul_out_views_subclasses_and_unaligned(rng):
    """Valid outs the fast test does not take (a view of a larger array, a subclass, an
    unaligned array) receive the same result."""
    a, w = _operands(rng, 2, 100, 5)
    expected = ref.binary_matmul(a, w)
    fastbin.binary_matmul(a, w)  # the record of this shape
    big = np.zeros((4, 5), np.int32)
    for out in (big[1:3], np.zeros((2, 5), np.int32).view(_Sub), _unaligned((2, 5), np.int32)):
        assert fastbin.binary_matmul(a, w, out=out) is out
        np.testing.assert_array_equal(out, expected)
    assert (big[0] == 0).all() and (big[3] == 0).all()


def _bad_outs(rng, m, k, n):
    """(a, w, out, exception, message) for every kind of bad ``out`` of an (m, n) int32
    result; the overlapping ones with operands made to share out's buffer."""
    a, w = _operands(rng, m, k, n)
    # a's words, then out from a's last word on: a buffer shared by a and out
    buf = np.zeros(a.bits.size + (m * n + 1) // 2, np.uint64)
    buf[: a.bits.size] = a.bits.ravel()
    a_shared = PackedSigns(buf[: a.bits.size].reshape(a.bits.shape), k)
    over_a = buf.view(np.int32)[2 * a.bits.size - 2 :][: m * n].reshape(m, n)
    # w's words, and out over the first of them
    w_buf = w.bits.copy()
    w_shared = PackedSigns(w_buf, k)
    over_w = w_buf.reshape(-1).view(np.int32)[: m * n].reshape(m, n)
    wide = np.zeros((m, 2 * n), np.int32)
    readonly = np.zeros((m, n), np.int32)
    readonly.flags.writeable = False
    return [
        (a, w, np.zeros((m, n), np.int32).tolist(), TypeError, "out must be a numpy.ndarray"),
        (a, w, np.zeros((m, n), np.int64), TypeError, "out must have dtype int32"),
        (a, w, np.zeros((m, n), np.float32), TypeError, "out must have dtype int32"),
        (a, w, np.zeros((m, n), np.dtype(">i4")), TypeError, "out must have dtype int32"),
        (a, w, np.zeros((n, m), np.int32), ValueError, rf"out must have shape \({m}, {n}\)"),
        (a, w, np.zeros(m * n, np.int32), ValueError, "out must have shape"),
        (a, w, np.zeros((m, n, 1), np.int32), ValueError, "out must have shape"),
        (a, w, wide[:, ::2], ValueError, "out must be C-contiguous"),
        (a, w, np.zeros((m, n), np.int32, order="F"), ValueError, "out must be C-contiguous"),
        (a, w, readonly, ValueError, "out must be writeable"),
        (a_shared, w, over_a, ValueError, "out must not overlap a"),
        (a, w_shared, over_w, ValueError, "out must not overlap w"),
    ]


@pytest.mark.parametrize("recorded", [False, True])
def test_binary_matmul_rejects_every_bad_out(rng, recorded):
    """Each bad ``out`` raises, naming ``out``, before the kernel writes anything; also when
    the last plan's record matches the call (its fast test hands every doubt to the checks)."""
    from fastbin.ops import matmul

    m, k, n = 3, 200, 6
    for a, w, out, error, message in _bad_outs(rng, m, k, n):
        if recorded:
            fastbin.binary_matmul(a, w)
            assert matmul._LAST_BINARY[0][:3] == (m, n, k)
        words = (a.bits.copy(), w.bits.copy())
        kept = np.array(out, copy=True)
        with pytest.raises(error, match=message):
            fastbin.binary_matmul(a, w, out=out)
        np.testing.assert_array_equal(a.bits, words[0])
        np.testing.assert_array_equal(w.bits, words[1])
        np.testing.assert_array_equal(np.asarray(out), kept)  # nothing written


def test_binary_matmul_out_errors_come_after_the_operands(rng):
    """Bad operands are reported as before when ``out`` is also bad."""
    a, w = _operands(rng, 3, 70, 4)
    _, w_other = _operands(rng, 3, 71, 4)
    with pytest.raises(ValueError, match="k=70"):
        fastbin.binary_matmul(a, w_other, out=[])
    with pytest.raises(ValueError, match="padding"):
        fastbin.binary_matmul(a, _garbage_padding(w), out=np.zeros((3, 4), np.int32))
    with pytest.raises(TypeError, match="PackedSigns"):
        fastbin.binary_matmul(a.bits, w, out=np.zeros((3, 4), np.int32))


@pytest.mark.parametrize("recorded", [False, True])
@pytest.mark.parametrize("which", ["a", "w"])
def test_binary_matmul_refuses_an_out_that_holds_the_operands(rng, which, recorded):
    """An ``out`` that owns its memory with a's or w's words inside it (views of ``out``): the
    ownership test of the fast path must not take them for separate arrays."""
    m, k, n = 2, 64, 2
    a, w = _operands(rng, m, k, n)
    out = np.zeros((m, n), np.int32)  # 2 words, owned by out
    words = out.reshape(-1).view(np.uint64).reshape(2, 1)
    assert words.base is out and out.flags.owndata
    if which == "a":
        words[...] = a.bits
        a = PackedSigns(words, k)
    else:
        words[...] = w.bits
        w = PackedSigns(words, k)
    if recorded:
        fastbin.binary_matmul(a, w)  # a valid call of this shape: the last plan's record
    kept = out.copy()
    with pytest.raises(ValueError, match=f"out must not overlap {which}"):
        fastbin.binary_matmul(a, w, out=out)
    np.testing.assert_array_equal(out, kept)


def test_binary_matmul_out_positional(rng):
    """``out`` may be given by position, as ``numpy.matmul``'s (``threads`` stays keyword-only)."""
    a, w = _operands(rng, 1, 784, 10)
    out = np.empty((1, 10), np.int32)
    for _ in range(2):
        assert fastbin.binary_matmul(a, w, out) is out
        np.testing.assert_array_equal(out, ref.binary_matmul(a, w))
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        fastbin.binary_matmul(a, w, False)


@pytest.mark.parametrize("which", ["a", "w"])
def test_binary_matmul_refuses_an_out_inside_a_packers_result(rng, which):
    """``out`` a view of the words of a packer's result (``owns_bits``): the fast path takes
    only an ``out`` that owns its memory, so this one reaches the overlap test."""
    a, w = _operands(rng, 2, 200, 4)  # 4 words a row: a's 8 words hold 16 int32
    fastbin.binary_matmul(a, w)  # the last plan's record
    words = (a if which == "a" else w).bits
    out = words.reshape(-1).view(np.int32)[:8].reshape(2, 4)
    kept = out.copy()
    with pytest.raises(ValueError, match=f"out must not overlap {which}"):
        fastbin.binary_matmul(a, w, out=out)
    np.testing.assert_array_equal(out, kept)
