"""The numba engine's fused forward pass (``fastbin.runtime._fused``): one jitted call per
batch for a chain of sign stages + [BinaryDense (+ BatchNorm)], and for binary softmax
regression; bit for bit the stage-by-stage path, from several threads at once too."""
import re
import threading

import numba
import numpy as np
import pytest
from random_models import randomise

from fastbin import pack_weights, runtime
from fastbin._config import TABLE
from fastbin._validate import check_model_input
from fastbin.kernels.binary_product.count_block import COLS as COUNT_COLS
from fastbin.kernels.binary_product.count_block import xor_counts
from fastbin.kernels.sign_product._lanes import plane_words
from fastbin.kernels.sign_product.exact import first_nonfinite_row
from fastbin.kernels.sign_product.plane_block import COLS as PLANE_COLS
from fastbin.kernels.sign_product.plane_block import plane_sums
from fastbin.nn.model import mlp, softmax_regression
from fastbin.runtime import _fused

FEW_ROWS = TABLE["few_rows"]

#: name -> constructor of a kind the fused path runs (odd sizes: n_in 100, hidden 65/33, 7 classes)
FUSED_KINDS = {
    "bnn": lambda: mlp([100, 65, 33, 7], binary_weights=True, binary_activations=True),
    "bnn_scaled_centred": lambda: mlp([100, 65, 33, 7], binary_weights=True, binary_activations=True, scale=True,
                                      input_offset=0.25),
    "bnn_one_hidden": lambda: mlp([100, 33, 7], binary_weights=True, binary_activations=True, scale=True),
    "bnn_no_bn": lambda: mlp([100, 65, 33, 7], binary_weights=True, activation="sign", batch_norm=False,
                             output_bn=False),
    "bnn_f64": lambda: mlp([100, 65, 7], binary_weights=True, binary_activations=True, dtype="float64"),
    "binary_softmax": lambda: softmax_regression(100, 7, binary_weights=True, init="normal"),
    "binary_softmax_scaled_centred": lambda: softmax_regression(100, 7, binary_weights=True, scale=True,
                                                                init="normal", input_offset=0.3),
}
#: kinds the fused path leaves to the stages
OTHER_KINDS = {
    "softmax": lambda: softmax_regression(100, 7, init="normal"),
    "mlp": lambda: mlp([100, 33, 7]),
    "binary_weights": lambda: mlp([100, 33, 7], binary_weights=True, scale=True),
}


def _inputs(rng, m, n_in, dtype=np.float32):
    u8 = rng.integers(0, 256, (m, n_in), dtype=np.uint8)
    x = (u8 / 255).astype(dtype)
    x[: max(1, m // 4)] = np.round(x[: max(1, m // 4)])  # exact zeros and ones
    return {"uint8": u8, "float": x}


def _stage_path(model, x):
    """Logits stage by stage (the path before the fused one), on checked input."""
    return model._run(x)


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(11)
    return {name: randomise(make(), rng) for name, make in FUSED_KINDS.items()}


@pytest.mark.parametrize("name", sorted(FUSED_KINDS))
def test_fused_equals_stage_path(models, name, rng):
    """Every batch size 1..40, uint8 and float input: logits and classes bit for bit the
    stage-by-stage path's and the unfolded model's, and the fused path ran on every batch
    below FEW_ROWS rows (larger ones keep the stage path)."""
    unfolded = models[name]
    model = unfolded.to_inference()
    assert model.fused is not None, "a fusable model without the fused path"
    for m in range(1, 41):
        taken = m < FEW_ROWS
        assert model.fused.takes(m) == taken
        for kind, x in _inputs(rng, m, 100, model.dtype).items():
            before = model.fused.calls
            logits = model.logits(x)
            classes = model.predict(x)
            assert model.fused.calls == before + 2 * taken, f"fused path not taken at m={m}"
            expected = _stage_path(model, x)
            assert logits.dtype == expected.dtype and logits.shape == (m, 7)
            np.testing.assert_array_equal(logits, expected, err_msg=f"{kind} m={m}")
            np.testing.assert_array_equal(classes, expected.argmax(axis=1), err_msg=f"{kind} m={m}")
            if m in (1, 7, 40):
                np.testing.assert_array_equal(logits, unfolded.forward(x), err_msg=f"{kind} m={m}")


def test_fused_on_loaded_file(models, tmp_path, rng):
    """``fastbin.runtime.load`` gives the fused model on the numba engine, never on numpy."""
    path = tmp_path / "bnn.fbm"
    models["bnn_scaled_centred"].save(path)
    model = runtime.load(path, engine="numba")
    assert model.fused is not None
    assert runtime.load(path, engine="numpy").fused is None
    for x in _inputs(rng, 5, 100).values():
        np.testing.assert_array_equal(model.logits(x), _stage_path(model, x))
    assert model.fused.calls == 2


@pytest.mark.parametrize("name", sorted(OTHER_KINDS))
def test_other_kinds_keep_the_stage_path(name, rng):
    model = randomise(OTHER_KINDS[name](), rng).to_inference()
    assert model.fused is None
    x = _inputs(rng, 3, 100)["float"]
    np.testing.assert_array_equal(model.logits(x), _stage_path(model, x))


def test_predict_nan_and_ties_like_numpy_argmax():
    """``predict`` takes NumPy's argmax in the fused call: first maximum, a NaN wins."""
    rows = np.array([[1.0, 3.0, 3.0, 2.0], [np.nan, 5.0, 1.0, 0.0], [1.0, 2.0, np.nan, 9.0],
                     [-0.0, 0.0, -1.0, -0.0], [-np.inf, -np.inf, -np.inf, -np.inf]], np.float32)
    for row in rows:
        assert _fused._argmax(row) == np.argmax(row)


def test_large_batches_keep_the_stage_path(models, rng, monkeypatch):
    """From FEW_ROWS rows on, the stage path (blocked/threaded kernels), also when its
    threaded packed kernels are due."""
    from fastbin import _config

    model = models["bnn"].to_inference()
    monkeypatch.setitem(_config.TABLE["parallel_min_work"], "binary_matmul", 1)
    for m in (FEW_ROWS - 1, FEW_ROWS, 40):
        x = _inputs(rng, m, 100)["uint8"]
        before = model.fused.calls
        np.testing.assert_array_equal(model.logits(x), _stage_path(model, x))
        assert model.fused.calls == before + (m < FEW_ROWS)


def test_eight_threads_equal_serial(models, rng):
    """Concurrent ``predict``/``logits`` from 8 threads (per-thread scratch) == serial."""
    model = models["bnn_scaled_centred"].to_inference()
    soft = models["binary_softmax_scaled_centred"].to_inference()
    jobs = []
    for t in range(8):
        for m in (1, 2, 5, 9, 17):
            for x in _inputs(rng, m, 100).values():
                jobs.append((model if t % 2 else soft, x))
    serial = [(net.logits(x), net.predict(x)) for net, x in jobs]
    results = [None] * len(jobs)
    barrier = threading.Barrier(8)

    def work(t):
        barrier.wait()
        for _ in range(3):
            for i in range(t, len(jobs), 8):
                net, x = jobs[i]
                results[i] = (net.logits(x), net.predict(x))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for (a, pa), (b, pb) in zip(serial, results):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(pa, pb)


@pytest.mark.slow
def test_fused_mnist_sizes_float_first_layer(rng):
    """784-512-512-10 and 784-10: the float first layer's dot is ``dense_sign_matmul``'s for
    each batch size (``sign_dot_rows`` inside the fused call at batch 1), bit for bit."""
    for make in (lambda: mlp([784, 512, 512, 10], binary_weights=True, binary_activations=True, scale=True),
                 lambda: softmax_regression(784, 10, binary_weights=True, scale=True, init="normal")):
        unfolded = randomise(make(), rng)
        model = unfolded.to_inference()
        assert model.fused is not None
        for m in (1, 2, 7, 16, 40):
            for kind, x in _inputs(rng, m, 784).items():
                logits = model.logits(x)
                np.testing.assert_array_equal(logits, _stage_path(model, x), err_msg=f"{kind} m={m}")
                np.testing.assert_array_equal(logits, unfolded.forward(x), err_msg=f"{kind} m={m}")
                np.testing.assert_array_equal(model.predict(x), unfolded.predict(x))



@numba.njit
def _plane_sums_all(row, w_bits, planes, sums):
    """The row's pixel total (``plane_words``) and ``sums[b] = plane_sums(planes, w_bits, COLS b, n - 1)``."""
    k = row.shape[0]
    total = 0
    for t in range(w_bits.shape[1]):
        total += plane_words(row, t * 64, min(64, k - t * 64), planes, t)
    for b in range(sums.shape[0]):
        plane_sums(planes, w_bits, b * PLANE_COLS, w_bits.shape[0] - 1, sums[b])
    return total


@pytest.mark.parametrize("k", [1, 63, 64, 65, 200, 784])
def test_plane_sums_match_the_pixel_sums(k, rng):
    """``plane_block.plane_sums``: per block of COLS rows of W (the last ones repeated past n)
    the sum of the row's pixels under each row's -1 bits, exact; the largest sums too."""
    for n in (1, 5, 8, 13):
        w = pack_weights(rng.standard_normal((k, n)))
        signs = np.unpackbits(w.bits.view(np.uint8), axis=1, bitorder="little")[:, :k].astype(bool)  # True: -1
        for row in (rng.integers(0, 256, k, dtype=np.uint8), np.full(k, 255, np.uint8)):
            planes = np.zeros((w.bits.shape[1], 8), np.uint64)
            blocks = -(-n // PLANE_COLS)
            sums = np.full((blocks, PLANE_COLS), -7, np.int64)
            total = _plane_sums_all(row, w.bits, planes, sums)
            assert total == int(row.sum(dtype=np.int64))
            want = np.array([int(row[signs[j]].sum(dtype=np.int64)) for j in range(n)])
            rows = np.minimum(np.arange(blocks * PLANE_COLS), n - 1)
            np.testing.assert_array_equal(sums.ravel(), want[rows], err_msg=str((k, n)))


@numba.njit
def _xor_counts_all(a, w, counts):
    for b in range(counts.shape[0]):
        xor_counts(a, w, b * COUNT_COLS, w.shape[0] - 1, counts[b])


@pytest.mark.parametrize("n_words", [1, 7, 8, 9, 16, 17])
def test_xor_counts_match_popcounts(n_words, rng):
    """``count_block.xor_counts``: per block of COLS rows of w (the last repeated past n)
    ``popcount(a ^ w[j])``, over a whole number of 8-word chunks or a masked last one;
    all bits differing and none."""
    for n in (1, 6, 8, 11):
        w = rng.integers(0, 256, (n, 8 * n_words), dtype=np.uint8).view(np.uint64)
        for a in (rng.integers(0, 256, 8 * n_words, dtype=np.uint8).view(np.uint64), ~w[0], w[-1].copy()):
            want = np.array([int(np.unpackbits((a ^ w[j]).view(np.uint8)).sum()) for j in range(n)])
            blocks = -(-n // COUNT_COLS)
            counts = np.full((blocks, COUNT_COLS), -7, np.int64)
            _xor_counts_all(a, w, counts)
            rows = np.minimum(np.arange(blocks * COUNT_COLS), n - 1)
            np.testing.assert_array_equal(counts.ravel(), want[rows], err_msg=str((n_words, n)))
        assert want[-1] == 0  # a == w[-1]


AVX2_CHILD = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from random_models import randomise
from fastbin import _config
from fastbin.nn.model import mlp, softmax_regression

assert _config.CPU_KIND == "avx2" and not _config.FLOAT_LUT and not _config.VECTOR_POPCOUNT, _config.CPU_KIND
rng = np.random.default_rng(3)
runs = 0
for make in (lambda: mlp([100, 65, 33, 7], binary_weights=True, binary_activations=True, scale=True),
             lambda: mlp([784, 512, 512, 10], binary_weights=True, binary_activations=True),
             lambda: mlp([100, 65, 7], binary_weights=True, binary_activations=True, dtype="float64"),
             lambda: softmax_regression(100, 7, binary_weights=True, init="normal")):
    unfolded = randomise(make(), rng)
    model = unfolded.to_inference()
    for m in (1, 2, 5):
        u8 = rng.integers(0, 256, (m, model.n_in), dtype=np.uint8)
        for x in (u8, (u8 / 255).astype(model.dtype)):
            before = model.fused.calls
            logits = model.logits(x)
            assert model.fused.calls == before + 1
            assert np.array_equal(logits, model._run(x)), (m, x.dtype)
            assert np.array_equal(model.predict(x), logits.argmax(axis=1))
            runs += 1
print(runs)
"""


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiles for another CPU: needs the JIT")
def test_fused_compiled_for_zen3():
    """The fused pass in a child compiled for Zen 3 (AVX2, no AVX-512, no vector popcount:
    ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` as tests/test_sign_avx2.py): the AVX2 CPUs' code
    path (no table lookups inside the fused call, ``ctpop`` lowered without ``vpopcntq``),
    bit for bit the stage path's, uint8 and float rows, float32 and float64."""
    import os
    import subprocess
    import sys

    from numba.core.registry import cpu_target
    from test_sign_avx2 import avx2_features

    triple, _cpu, features = cpu_target.target_context.codegen().magic_tuple()
    if not triple.startswith("x86_64") or "+avx2" not in features.split(","):
        pytest.skip("not an x86-64 CPU with AVX2")
    env = {**os.environ, "NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": avx2_features(features)}
    env.pop("NUMBA_DISABLE_JIT", None)
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", AVX2_CHILD, here], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip().splitlines()[-1]) == 4 * 3 * 2


def test_float_plan_follows_table_edits(models, rng, monkeypatch):
    """The fused call keeps its plan of the first layer's float product per thread and batch
    size, and plans again after a threshold table is edited; either plan gives the stage
    path's logits."""
    from fastbin import _config

    model = models["bnn_f64"].to_inference()  # float64: no lookup form, "rows" or BLAS by the table
    x = _inputs(rng, 2, 100, np.float64)["float"]
    monkeypatch.setitem(_config.TABLE, "dense_rows_max_product", 1)
    np.testing.assert_array_equal(model.logits(x), _stage_path(model, x))
    assert model.fused.local.hows[2][1] == _fused._GIVEN
    monkeypatch.setitem(_config.TABLE, "dense_rows_max_product", 10**6)
    np.testing.assert_array_equal(model.logits(x), _stage_path(model, x))
    assert model.fused.local.hows[2][1] == _fused._ROWS


def _unaligned(x):
    """A copy of ``x`` whose data starts one byte past an aligned address (``flags.aligned`` False)."""
    raw = np.zeros(x.nbytes + 1, np.uint8)
    y = raw[1:].view(x.dtype).reshape(x.shape)
    y[...] = x
    return y


class _Sub(np.ndarray):
    pass


def test_quick_serves_the_common_batch_only(models, rng, monkeypatch):
    """``Fused.quick`` (what ``predict``/``logits`` try first) serves an aligned C-contiguous ndarray
    of uint8 or the model dtype, (m, n_in) with 1 <= m < FEW_ROWS, once this thread ran such a
    batch (for float rows: of this m) through the checked call, with the checked call's bits; it
    leaves every other batch to the checks (None), which give the same results."""
    from fastbin import _config

    model = models["bnn_scaled_centred"].to_inference()
    fused = model.fused
    fused._scratch(3)  # this thread's plans
    if fused._how(3) == _fused._GIVEN:  # a product handed in (AArch64's table): never quick; have it computed
        monkeypatch.setitem(_config.TABLE, "dense_rows_max_product", 10**6)
        assert fused._how(3) == _fused._ROWS
    for kind, x in _inputs(rng, 3, 100).items():
        assert fused.quick(x, True) is None and fused.quick(x, False) is None  # no record yet
        want = _stage_path(model, x)
        np.testing.assert_array_equal(model.logits(x), want)  # checked: keeps the record
        before = fused.calls
        np.testing.assert_array_equal(fused.quick(x, False), want)
        np.testing.assert_array_equal(fused.quick(x, True), want.argmax(axis=1))
        assert fused.calls == before + 2
        wide = _inputs(rng, FEW_ROWS, 100)[kind]
        others = {"F order": np.asfortranarray(x), "subclass": x.view(_Sub), "FEW_ROWS rows": wide}
        refused = {"3-D": x[None], "no rows": x[:0]}
        if kind == "float":  # uint8 rows: one record for every m, and always aligned
            others.update({"other m": x[:2].copy(), "float64": x.astype(np.float64), "big-endian": x.astype(">f4")})
            refused["unaligned"] = _unaligned(x)
        for name, other in {**others, **refused}.items():
            assert fused.quick(other, True) is None, (kind, name)
        assert fused.quick(x.tolist(), True) is None and fused.quick(x[:, :99].copy(), True) is None
        for name, other in others.items():  # the checked path (unaligned rows would compile another kernel)
            checked = np.array(other, x.dtype, order="C")
            np.testing.assert_array_equal(model.predict(other), _stage_path(model, checked).argmax(axis=1),
                                          err_msg=f"{kind} {name}")
        assert model.predict(x[:0]).shape == (0,)
        if kind == "uint8":  # one record serves every m of uint8 rows
            np.testing.assert_array_equal(fused.quick(x[:2].copy(), True), want[:2].argmax(axis=1))
        monkeypatch.setitem(_config.TABLE, "few_rows", FEW_ROWS)  # an edit: the records are stale
        assert fused.quick(x, True) is None
        np.testing.assert_array_equal(model.predict(x), want.argmax(axis=1))  # checked, a new record
        np.testing.assert_array_equal(fused.quick(x, True), want.argmax(axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 4])
def test_quick_refuses_nan_and_inf_as_the_checks(models, dtype, m):
    """Float rows holding a NaN or an infinity on the quick path: the fused kernel finds them
    before computing anything and ``predict``/``logits`` raise ``check_model_input``'s
    ValueError, naming the first bad row; finite extremes pass."""
    model = models["bnn" if dtype == np.float32 else "bnn_f64"].to_inference()
    good = np.full((m, 100), 0.5, dtype)
    for predict in (True, False):
        model.fused(good, predict)  # the records of this thread
    quick = m in model.fused.local.fl[6]  # a plan other than _GIVEN (float64 at m = 4: BLAS)
    assert quick or m > 1
    info = np.finfo(dtype)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    nan_payload = np.array([0x7FC00001 if dtype == np.float32 else 0x7FF0000000000001], bits).view(dtype)[0]
    for bad in (np.nan, -np.nan, np.inf, -np.inf, nan_payload):
        x = good.copy()
        x[m // 2, 99] = bad
        x[m - 1, 0] = bad
        with pytest.raises(ValueError, match="x must be finite") as checked:
            check_model_input(x, 100, dtype)
        before = model.fused.calls
        calls = [model.predict, model.logits] + [lambda x: model.fused.quick(x, True)] * quick
        for call in calls:
            with pytest.raises(ValueError, match=re.escape(str(checked.value))):
                call(x)
        assert model.fused.calls == before
    x = good.copy()
    big = np.finfo(np.float32).max / 4  # no overflow in the products (info.max: test_first_nonfinite_row)
    x[0, :3] = big, -big, info.smallest_subnormal
    np.testing.assert_array_equal(model.logits(x), _stage_path(model, x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_nonfinite_row(dtype, rng):
    """``exact.first_nonfinite_row``: the first row holding a NaN or an infinity (any sign or
    payload), else -1; the largest finite values, subnormals and -0.0 are finite."""
    info = np.finfo(dtype)
    x = rng.standard_normal((6, 37)).astype(dtype)
    x[0, 0], x[1, 36], x[2, 5], x[3, 1] = info.max, -info.max, info.smallest_subnormal, -0.0
    assert first_nonfinite_row(x) == -1
    assert first_nonfinite_row(x[:0]) == -1
    bits = np.uint32 if dtype == np.float32 else np.uint64
    top = np.array([0x7F800000 if dtype == np.float32 else 0x7FF0000000000000], bits)
    payloads = (top | bits(1)).view(dtype)[0], (top | bits(1) | ~(~bits(0) >> bits(1))).view(dtype)[0]
    for bad in (np.nan, -np.nan, np.inf, -np.inf, *payloads):
        for i, t in ((5, 36), (4, 0), (0, 17)):
            y = x.copy()
            y[i, t] = bad
            assert first_nonfinite_row(y) == i, (bad, i, t)
            y[5, 2] = bad
            assert first_nonfinite_row(y) == i
