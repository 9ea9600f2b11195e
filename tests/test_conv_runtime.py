"""The folded conv engine on packed words (issue 25, ``fastbin.runtime.conv.PackedConvModel``):
the data-movement kernels (``fastbin.kernels.conv``) against the NumPy spec, then whole models
over shapes, strides, paddings, pooling and channel counts that are not multiples of 64, on both
engines, against the plain-NumPy specification (``ConvInferenceModel``) and the unfolded model:
the same logits bit for bit. Small shapes and batches (the suite also runs under
NUMBA_DISABLE_JIT=1)."""
import os
import pickle

import numpy as np
import pytest

from fastbin import reference as R
from fastbin import runtime
from fastbin.bits import n_words_for
from fastbin.kernels.conv.packed import patches, pool_words
from fastbin.nn import BatchNorm, Dense, Sign
from fastbin.nn.conv import Conv2D, Flatten, MaxPool2D
from fastbin.nn.fold import fold_inputs
from fastbin.nn.model import bnn_conv, sequential
from fastbin.runtime.conv import ConvInferenceModel, PackedConvModel, fold_conv, pixel_words
from fastbin.runtime.summary import stage_rows

NOJIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
ENGINES = ["numba", "numpy"]


def _random_words(rng, shape, channels):
    """Packed signs (…, ceil(channels / 64)) with the bits past ``channels`` zero."""
    bits = rng.random((*shape, channels)) < 0.5
    padded = np.zeros((*shape, 64 * n_words_for(channels)), bool)
    padded[..., :channels] = bits
    return np.packbits(padded, axis=-1, bitorder="little").view("<u8").astype(np.uint64), bits


# ---------------------------------------------------------------------------
# The kernels against the NumPy specification
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("h, w, k, s, padding", [(5, 6, 3, 1, "same"), (7, 5, (3, 2), (2, 1), "same"),
                                                 (6, 6, 2, 2, "valid"), (4, 7, 3, (1, 3), "valid"),
                                                 (1, 1, 3, 1, "same")])
@pytest.mark.parametrize("dtype", [np.uint64, np.uint8, np.float32])
def test_patches_kernel_is_im2col(rng, h, w, k, s, padding, dtype):
    x = rng.integers(0, 250, (3, h, w, 5)).astype(dtype)
    if dtype == np.uint64:
        x = _random_words(rng, (3, h, w), 70)[0]
    pad = x.dtype.type(0 if dtype == np.uint64 else 7)
    expected = R.im2col(x, k, s, padding, pad_value=pad)
    kh, kw = R.int_pair("k", k)
    sh, sw = R.int_pair("s", s)
    out_h, out_w, (top, _), (left, _) = R.conv_geometry(h, w, (kh, kw), (sh, sw), padding)
    out = np.full(expected.shape, 99, x.dtype)  # every element is written
    patches(x, kh, kw, sh, sw, top, left, out_w, pad, out)
    np.testing.assert_array_equal(out, expected)
    g = (kh, kw, sh, sw, top, left, out_h, out_w, padding)
    for engine in ENGINES:
        np.testing.assert_array_equal(runtime.get_engine(engine).patches(x, g, pad), expected)


@pytest.mark.parametrize("h, w, pool, stride", [(4, 4, (2, 2), (2, 2)), (5, 7, (2, 3), (1, 2)), (3, 3, (3, 3), (1, 1))])
@pytest.mark.parametrize("channels", [3, 64, 70])
def test_pool_words_is_and_of_bits_or_or_where_masked(rng, h, w, pool, stride, channels):
    words, bits = _random_words(rng, (2, h, w), channels)
    signs = np.where(bits, -1, 1).astype(np.int8)
    # AND of the bits = the max of ±1 values (the spec's max pooling); OR = the min
    pooled_max = R.max_pool2d(signs, pool, stride) == -1
    pooled_min = R.max_pool2d(-signs, pool, stride) == 1
    flip = rng.random(channels) < 0.5
    padded = np.zeros(64 * n_words_for(channels), bool)
    padded[:channels] = flip
    mask = np.packbits(padded, bitorder="little").view("<u8").astype(np.uint64)
    expected = np.where(flip, pooled_min, pooled_max)
    out = np.empty((2, *pooled_max.shape[1:3], words.shape[3]), np.uint64)
    pool_words(words, *pool, *stride, mask, out)
    for engine in ENGINES:
        for got in (out, runtime.get_engine(engine).pool_bits(words, pool, stride, mask)):
            unpacked = np.unpackbits(got.view(np.uint8), axis=-1, bitorder="little")
            np.testing.assert_array_equal(unpacked[..., :channels].astype(bool), expected)
            assert not unpacked[..., channels:].any()  # the padding bits stay 0


@pytest.mark.parametrize("h, w, c, n, k, s, padding, pad", [
    (6, 5, 1, 32, 3, 1, "same", 0), (6, 5, 1, 32, 3, 1, "same", 255), (7, 6, 3, 70, (3, 2), (2, 1), "same", 255),
    (5, 5, 2, 64, 2, 2, "valid", 0), (4, 3, 1, 1, 3, (1, 3), "same", 0), (3, 4, 2, 130, 1, 1, "valid", 0),
    (4, 4, 200, 17, 3, 1, "same", 255)])  # the last: 1800 taps of 255, sums to 459,000
def test_first_conv_kernel_is_im2col_the_exact_product_and_the_thresholds(rng, h, w, c, n, k, s, padding, pad):
    from fastbin.runtime._conv_numba import first_conv_uint8

    x = rng.integers(0, 256, (3, h, w, c), dtype=np.uint8)
    x[0] = 255  # the largest products
    kh, kw = R.int_pair("k", k)
    sh, sw = R.int_pair("s", s)
    out_h, out_w, (top, _), (left, _) = R.conv_geometry(h, w, (kh, kw), (sh, sw), padding)
    w_bits = R.pack_signs(rng.standard_normal((n, kh * kw * c)))
    w_bits.bits[0] = 0  # a filter of +1 only: the largest sum, 255 * k on image 0
    dot = R.sign_matmul(R.im2col(x, (kh, kw), (sh, sw), padding, pad_value=np.uint8(pad)), w_bits).astype(np.int64)
    t = dot[rng.integers(0, dot.shape[0], n), np.arange(n)]  # thresholds on products: ties
    t[: n // 3] += rng.integers(-300, 300, n // 3)
    flip = rng.random(n) < 0.4
    expected = R.pack_signs(np.where(np.where(flip, dot > t, dot < t), -1, 1)).bits
    first = first_conv_uint8(w_bits, t, flip, (kh, kw, sh, sw, top, left, out_h, out_w, padding), pad)
    np.testing.assert_array_equal(first(x), expected)
    assert first_conv_uint8(R.pack_signs(np.ones((1, (2**24 - 1) // 255 + 1))), t[:1], flip[:1], None, 0) is None


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 8, 16, 33, 64])
def test_threshold_words_equal_the_compares(rng, dtype, n):
    """``below_word`` (jitted: the vector compares of ``intrinsics.threshold_word``, their tails
    one at a time) against the plain compares, ties, flips, and NaN for floats (bit 0)."""
    from fastbin.kernels.binary_product.threshold import signed_thresholds, threshold_pack

    dot = rng.integers(-40, 41, (5, n)).astype(dtype)
    t = dot[2].astype(np.int64 if np.dtype(dtype).kind == "i" else dtype)  # row 2 ties every threshold
    if np.dtype(dtype).kind == "f":
        dot[3, ::2] = np.nan
        dot[4] += dtype(0.5)
    flip = rng.random(n) < 0.5
    expected = R.pack_signs(np.where(np.where(flip, dot > t, dot < t), -1, 1)).bits
    out = np.full(expected.shape, 7, np.uint64)
    threshold_pack(dot, t, flip, out)
    np.testing.assert_array_equal(out, expected)
    assert signed_thresholds(t, flip)[0].dtype == t.dtype


@pytest.mark.parametrize("kind", ["bits", "float"])
@pytest.mark.parametrize("blocks", [1, 2, 3, 4])
@pytest.mark.parametrize("group", [0, 1])
def test_filter_word_is_the_window_product_and_the_thresholds(rng, kind, blocks, group):
    """``intrinsics.filter_word``: the taps read at ``base + offsets`` times (float) or
    xor-popcount with (bits) each lane block's weights, the compares ``sign * dot < signed`` as
    bits ``16 b + l``; ties, flips, the largest sums."""
    from fastbin._config import jit
    from fastbin.kernels.intrinsics import filter_word

    @jit
    def word_of(src, base, offsets, w, blk0, blocks, k_bits, sign, signed):
        return filter_word(src, base, offsets, w, blk0, blocks, k_bits, sign, signed)

    k, lanes = 11, 16
    n_blocks = 4 * group + blocks
    offsets = rng.integers(0, 90, k).astype(np.int64)
    base = 7
    if kind == "bits":
        src = rng.integers(0, 2**32, 100, dtype=np.uint64).astype(np.uint32)
        w = rng.integers(0, 2**32, (n_blocks * k, lanes), dtype=np.uint64).astype(np.uint32)
        w[4 * group * k : (4 * group + 1) * k, 0] = ~src[base + offsets]  # every bit differs: dot = -32 k
        counts = np.array([[np.unpackbits((src[base + offsets] ^ w[b * k : (b + 1) * k, lane]).view(np.uint8)).sum()
                            for lane in range(lanes)] for b in range(n_blocks)])
        dot = (32 * k - 2 * counts).ravel().astype(np.int64)
        k_bits, cast = 32 * k, np.int32
    else:
        src = rng.integers(0, 256, 100).astype(np.float32)
        src[base + offsets] = 255  # the largest sum on filters of +1
        w = np.where(rng.random((n_blocks * k, lanes)) < 0.5, -1, 1).astype(np.float32)
        w[4 * group * k : (4 * group + 1) * k, 0] = 1
        dot = np.array([src[base + offsets] @ w[b * k : (b + 1) * k] for b in range(n_blocks)]).ravel()
        k_bits, cast = 0, np.float32
    flip = rng.random(dot.size) < 0.4
    sign = np.where(flip, -1, 1)
    t = dot.copy()  # ties
    t[::3] += rng.integers(-30, 30, t[::3].size)
    expected_bits = np.where(flip, dot > t, dot < t)[64 * group : 64 * group + 16 * blocks]
    expected = sum(1 << int(i) for i in np.flatnonzero(expected_bits))
    word = word_of(src, base, offsets, w, 4 * group, blocks, k_bits, sign.astype(cast), (sign * t).astype(cast))
    assert int(word) == expected


def test_pixel_words_product_is_the_true_product_plus_the_shift(rng):
    # 50 channels: 3x3x50 = 450 bits, the padding inside every pixel's word is not at the row's end
    w = R.pack_signs(rng.standard_normal((7, 9 * 50)))
    a_words, a_bits = _random_words(rng, (4, 9), 50)
    a = R.pack_signs(np.where(a_bits.reshape(4, 450), -1.0, 1.0))
    per_pixel = pixel_words(w, 9, 50)
    assert per_pixel.n_bits == 9 * 64 and per_pixel.bits.shape == (7, 9)
    np.testing.assert_array_equal(R.unpack_signs(per_pixel).reshape(7, 9, 64)[:, :, 50:], 1)
    np.testing.assert_array_equal(R.unpack_signs(per_pixel).reshape(7, 9, 64)[:, :, :50].reshape(7, 450),
                                  R.unpack_signs(w))
    from fastbin.packed import PackedSigns

    shifted = R.binary_matmul(PackedSigns(np.ascontiguousarray(a_words.reshape(4, 9)), 9 * 64), per_pixel)
    np.testing.assert_array_equal(shifted - (9 * 64 - 450), R.binary_matmul(a, w))


# ---------------------------------------------------------------------------
# Whole models: packed engine == specification == unfolded
# ---------------------------------------------------------------------------
def _calibrate(model, x, rng):
    """Batch-norm statistics from the data (thresholds inside the products' range), some
    negative gammas (flipped thresholds: OR pooling before a batch norm), small betas."""
    h = x.reshape(x.shape[0], *model.input_shape)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            z = h.reshape(-1, layer.n).astype(np.float64)
            layer.buffers["running_mean"][...] = z.mean(axis=0) + rng.normal(0, 0.2, layer.n)
            layer.buffers["running_var"][...] = z.var(axis=0) + 0.5
            g = layer.params["gamma"]
            g[...] = rng.normal(1, 0.3, layer.n) * np.where(rng.random(layer.n) < 0.4, -1, 1)
            layer.params["beta"][...] = rng.normal(0, 0.2, layer.n)
        if isinstance(layer, Dense) and layer.use_bias:
            layer.params["b"][...] = rng.normal(0, 0.5, layer.n_out)
        h = layer.forward(h)
    return model


def _model_a(rng):
    """uint8-style image, zero-padded first layer, 70 and 65 channels (two words a pixel,
    thresholds shifted), an odd kernel (3, 2) with stride 2, pooling before a batch norm."""
    layers = [Conv2D(2, 5, 3, padding="same", pad_value=0, rng=1), BatchNorm(5), Sign(),
              Conv2D(5, 70, (3, 2), stride=2, padding="same", rng=2), MaxPool2D(2), BatchNorm(70), Sign(),
              Conv2D(70, 65, 2, rng=3), BatchNorm(65), Sign(),
              Flatten(), Dense(65, 4, binary=True, bias=False, rng=4), BatchNorm(4)]
    return sequential(layers, (9, 7, 2))


def _model_b(rng):
    """Scaled binary weights with biases, valid stride-2 first layer, a pool after the sign
    with stride 1, a stage without batch norm, 50 channels (450 bits a patch: the padding of
    each pixel's word is inside the row), stride (1, 2), a scaled dense tail with a bias."""
    layers = [Conv2D(3, 64, 3, stride=2, scale=True, bias=True, rng=5), BatchNorm(64), Sign(), MaxPool2D(2, 1),
              Conv2D(64, 50, 3, padding="same", rng=6), Sign(),
              Conv2D(50, 7, 3, stride=(1, 2), padding="same", scale=True, rng=7), BatchNorm(7), Sign(),
              Flatten(), Dense(14, 3, binary=True, scale=True, bias=True, rng=8)]
    return sequential(layers, (8, 8, 3))


def _model_c(rng):
    return bnn_conv(channels=(4, 6, 8, 3), seed=3)


def _model_d(rng):
    """Pools the one-call pass takes in the registers: before the batch norm and after the sign
    on one stage, two after the sign (overlapping windows) on another; 20, 33 and 130 channels
    (partial lane blocks, 3 and 5 words of 32 a pixel), a valid stride-2 conv, a one-padded first
    layer."""
    layers = [Conv2D(1, 20, 3, padding="same", pad_value=1, rng=21), MaxPool2D(2), BatchNorm(20), Sign(),
              MaxPool2D(2, 1), Conv2D(20, 33, 3, stride=2, rng=22), BatchNorm(33), Sign(), MaxPool2D(2, 1),
              MaxPool2D(2, 1), Conv2D(33, 130, 2, padding="same", rng=23), BatchNorm(130), Sign(),
              Flatten(), Dense(2 * 1 * 130, 3, binary=True, bias=False, rng=24), BatchNorm(3)]
    return sequential(layers, (20, 18, 1))


MODELS = {"a": _model_a, "b": _model_b, "c": _model_c, "d": _model_d}


def _images(rng, model, m):
    return rng.integers(0, 256, (m, *model.input_shape), dtype=np.uint8)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """model id -> (unfolded model, path of its file)."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("conv-runtime")
    out = {}
    for name, build in MODELS.items():
        model = build(rng)
        _calibrate(model, _images(rng, model, 32), rng)
        model.save(folder / f"{name}.fbm")
        out[name] = (model, folder / f"{name}.fbm")
    return out


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", list(MODELS))
def test_packed_conv_model_equals_the_specification_and_the_unfolded_model(rng, saved, name, engine):
    model, path = saved[name]
    folded = runtime.load(path, engine=engine)
    assert isinstance(folded, PackedConvModel) and folded.engine.name == engine
    spec = fold_conv(*fold_inputs(model), model.dtype, model.input_shape)
    assert isinstance(spec, ConvInferenceModel)
    for m in (0, 1, 5) if NOJIT else (0, 1, 5, 150):  # 150: three chunks of eval_chunk (64)
        x = _images(rng, model, m)
        for xs in (x, x / np.float32(255), (x / 255.0).reshape(m, model.n_in)):
            expected = model.forward(xs)
            assert expected.shape == (m, model.layers[-1].n if isinstance(model.layers[-1], BatchNorm)
                                      else model.layers[-1].n_out)
            np.testing.assert_array_equal(folded.forward(xs), expected)
            np.testing.assert_array_equal(spec.forward(xs), expected)
            np.testing.assert_array_equal(folded.predict(xs), np.argmax(expected, axis=1))
    if engine == "numba":  # uint8 images took the one-call pass (fastbin.kernels.conv.direct)
        assert folded.fused is not None and folded.fused.calls >= 3
    # the signs were not trivial: some stage has flipped and finite thresholds
    kinds = [t for s in folded.stages[:-1] for t, _ in s.thresholds.values()]
    assert any(s.thresholds[k][1].any() for s in folded.stages[:-1] for k in s.thresholds)
    assert any(((t > -1000) & (t < 1000)).any() for t in kinds)


def test_both_engines_agree_on_float_inputs_near_thresholds(rng, saved):
    """Float images whose first-layer products sit on the thresholds (pixels a multiple of 1/256:
    the products exact) and anywhere else: the same bits as the specification."""
    model, path = saved["b"]
    x = rng.random((4 if NOJIT else 40, *model.input_shape)).astype(np.float32)
    x[::2] = np.round(x[::2] * 256) / 256
    expected = model.forward(x)
    for engine in ENGINES:
        np.testing.assert_array_equal(runtime.load(path, engine=engine).forward(x), expected)


def test_packed_conv_model_checks_its_input(saved):
    _, path = saved["a"]
    folded = runtime.load(path)
    with pytest.raises(ValueError, match=r"images of shape \(m, 9, 7, 2\) or rows \(m, 126\)"):
        folded.forward(np.zeros((1, 7, 9, 2), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(m, 126\)"):
        folded.predict(np.zeros((1, 125), np.float32))
    with pytest.raises(TypeError, match="float"):
        folded.forward(np.zeros((1, 126), np.int32))
    with pytest.raises(ValueError, match="finite"):
        folded.forward(np.full((1, 126), np.nan, np.float32))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_loaded_conv_model_pickles_as_its_file(rng, saved, engine):
    model, path = saved["c"]
    folded = runtime.load(path, engine=engine)
    again = pickle.loads(pickle.dumps(folded))
    x = _images(rng, model, 3)
    assert again.engine.name == engine
    np.testing.assert_array_equal(again.forward(x), folded.forward(x))
    np.testing.assert_array_equal(folded.predict_proba(x), R.softmax(folded.forward(x)))


@pytest.mark.parametrize("engine", ENGINES)
def test_summary_counts_parameters_bits_and_operations_per_conv_layer(saved, engine):
    model, path = saved["c"]  # bnn_conv(channels=(4, 6, 8, 3)) on 28x28x1: pools after the 2nd and 4th
    folded = runtime.load(path, engine=engine)
    rows = stage_rows(folded)
    assert [r["name"] for r in rows] == ["conv2d+bn+sign", "conv2d+bn+sign+pool", "conv2d+bn+sign",
                                         "conv2d+bn+sign+pool", "flatten+dense", "batchnorm"]
    assert [r["shape"] for r in rows[:5]] == ["3x3x1x4 bin", "3x3x4x6 bin", "3x3x6x8 bin", "3x3x8x3 bin",
                                              "147x10 bin"]
    weights = [9 * 4, 9 * 4 * 6, 9 * 6 * 8, 9 * 8 * 3, 147 * 10]
    positions = [28 * 28, 28 * 28, 14 * 14, 14 * 14, 1]
    # the first layer sees the image (MACs), the others packed signs (XNOR-popcount ops)
    assert [r["macs"] for r in rows] == [weights[0] * positions[0], 0, 0, 0, 0, 0]
    assert [r["binary_ops"] for r in rows[1:5]] == [w * p for w, p in zip(weights[1:], positions[1:])]
    # weights (1 bit), one int64 threshold and one flip per channel and input kind (uint8 and
    # float on the first layer)
    assert rows[0]["params"] == weights[0] + 2 * 4
    assert rows[0]["bits"] == weights[0] + 4 * 64 + 4 * 32 + 2 * 4
    assert [r["params"] for r in rows[1:4]] == [weights[1] + 6, weights[2] + 8, weights[3] + 3]
    assert rows[1]["bits"] == weights[1] + 6 * 64 + 6
    assert rows[5]["params"] == 3 * 10  # mean, k, beta of the logits' batch norm
    # bytes held: the packed words as the engine runs them (a pixel's channels in one word here)
    assert rows[1]["bytes"] == 6 * 9 * 8 + 6 * 8 + 6
    text = folded.summary()
    assert "784 inputs (28x28x1 images)" in text and f"engine {engine}" in text
    totals = [int(v.replace(",", "")) for v in text.splitlines()[-1].split()[1:]]
    assert totals == [sum(r[k] for r in rows) for k in ("params", "bits", "bytes", "macs", "binary_ops")]


def test_three_pools_after_a_sign_take_the_stage_path_with_the_same_logits(rng, tmp_path):
    layers = [Conv2D(1, 4, 3, padding="same", pad_value=1, rng=11), BatchNorm(4), Sign(), MaxPool2D(2, 1),
              MaxPool2D(2, 1), MaxPool2D(2, 1), Conv2D(4, 5, 3, rng=12), BatchNorm(5), Sign(),
              Flatten(), Dense(5 * 3 * 3, 3, binary=True, bias=False, rng=13), BatchNorm(3)]
    model = sequential(layers, (8, 8, 1))
    _calibrate(model, _images(rng, model, 16), rng)
    model.save(tmp_path / "pools.fbm")
    x = _images(rng, model, 7)
    for engine in ENGINES:
        folded = runtime.load(tmp_path / "pools.fbm", engine=engine)
        assert folded.fused is None  # the one-call pass pools at most twice per stage
        np.testing.assert_array_equal(folded.forward(x), model.forward(x))


AVX2_CHILD = r"""
import json
import numpy as np
from fastbin import reference as R
from fastbin.kernels.binary_product.threshold import threshold_pack
from fastbin.runtime._conv_numba import first_conv_uint8

rng = np.random.default_rng(3)
for dtype in (np.int32, np.int64, np.float32, np.float64):
    dot = rng.integers(-40, 41, (9, 77)).astype(dtype)
    t = dot[2].astype(np.int64 if np.dtype(dtype).kind == "i" else dtype)
    flip = rng.random(77) < 0.5
    out = np.zeros((9, 2), np.uint64)
    threshold_pack(dot, t, flip, out)
    assert (out == R.pack_signs(np.where(np.where(flip, dot > t, dot < t), -1, 1)).bits).all(), dtype
x = rng.integers(0, 256, (2, 9, 8, 2), dtype=np.uint8)
w_bits = R.pack_signs(rng.standard_normal((40, 18)))
dot = R.sign_matmul(R.im2col(x, 3, 1, "same", pad_value=np.uint8(255)), w_bits).astype(np.int64)
t = dot[5]
flip = rng.random(40) < 0.4
first = first_conv_uint8(w_bits, t, flip, (3, 3, 1, 1, 1, 1, 9, 8, "same"), 255)
assert (first(x) == R.pack_signs(np.where(np.where(flip, dot > t, dot < t), -1, 1)).bits).all()
from fastbin._config import jit
from fastbin.kernels.intrinsics import filter_word


@jit
def word_of(src, base, off, w, blk0, blocks, k_bits, sign, signed):
    return filter_word(src, base, off, w, blk0, blocks, k_bits, sign, signed)


off = np.arange(9, dtype=np.int64) * 3
for blocks in (1, 4):
    src = rng.integers(0, 2**32, 40, dtype=np.uint64).astype(np.uint32)
    w = rng.integers(0, 2**32, (blocks * 9, 16), dtype=np.uint64).astype(np.uint32)
    taps = src[5 + off]
    count = np.array([np.bitwise_count(taps[:, None] ^ w[b * 9 : (b + 1) * 9]).sum(axis=0) for b in range(blocks)])
    dot = (288 - 2 * count).ravel().astype(np.int64)
    flip = rng.random(dot.size) < 0.4
    t = dot + rng.integers(-2, 3, dot.size)
    sign = np.where(flip, -1, 1)
    bits = np.flatnonzero(np.where(flip, dot > t, dot < t))
    word = word_of(src, 5, off, w, 0, blocks, 288, sign.astype(np.int32), (sign * t).astype(np.int32))
    assert int(word) == sum(1 << int(b) for b in bits), blocks
found = {}
for d in (threshold_pack, __import__("fastbin.kernels.conv.first", fromlist=["x"]).conv_sign_uint8, word_of):
    asm = "".join(d.inspect_asm(s) for s in d.signatures)
    found[d.py_func.__name__] = {op: asm.count(op) for op in ("zmm", "ymm", "vpcmp", "vcmp", "movmsk", "\tkmov")}
print(json.dumps(found))
"""


@pytest.mark.skipif(NOJIT, reason="compiles for another CPU: needs the JIT")
def test_threshold_and_first_conv_compiled_for_avx2():
    """In a child compiled for Zen 3 (AVX2, every AVX-512 feature off: tests/test_sign_avx2.py's
    ``avx2_features``): the vector threshold compares, the first conv kernel and the direct
    pass's ``filter_word`` give the specification's bits, on ymm registers (compares and
    ``vmovmsk``), no zmm."""
    import json
    import subprocess
    import sys

    from numba.core.registry import cpu_target
    from test_sign_avx2 import avx2_features

    triple, _cpu, features = cpu_target.target_context.codegen().magic_tuple()
    if not triple.startswith("x86_64") or "+avx2" not in features.split(","):
        pytest.skip("not an x86-64 CPU with AVX2")
    env = {**os.environ, "NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": avx2_features(features),
           "FASTBIN_NO_CACHE": "1"}
    done = subprocess.run([sys.executable, "-c", AVX2_CHILD], env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for name, counts in found.items():
        assert counts["zmm"] == 0 and counts["\tkmov"] == 0 and counts["ymm"] > 0, (name, counts)
        assert counts["movmsk"] > 0 and counts["vpcmp"] + counts["vcmp"] > 0, (name, counts)
