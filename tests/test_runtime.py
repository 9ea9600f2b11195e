"""The inference runtime: ``fastbin.runtime.load`` on model files, folded (version 2) and
old (version 1); its two engines; hostile folded sections; threads; no Numba."""
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from random_models import randomise
from tolerance import assert_close

from fastbin import runtime
from fastbin.io.modelfile import ModelFileError, load_arrays, save_arrays
from fastbin.nn.model import load, mlp, softmax_regression

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ["numba", "numpy"]
BACKEND_OF = {"numba": "fastbin", "numpy": "reference"}

#: name -> (constructor, logits equal across engines on float input, on uint8 input). Every
#: kind is bit for bit across engines now: integer paths (packed products, uint8 first layer,
#: thresholds) are exact, float products with float weights are NumPy's BLAS on both, and
#: ``x @ sign(W)`` on real-valued x is the exact product of ``fastbin.reference.dense_sign_matmul``
#: on both (the numba engine's fast product before a threshold is refined to it near the
#: threshold). The flags stay so that a kind that cannot be exact says so here.
KINDS = {
    "softmax": (lambda: softmax_regression(37, 5, init="normal"), True, True),
    "softmax_f64": (lambda: softmax_regression(37, 5, init="normal", dtype="float64"), True, True),
    "binary_softmax": (lambda: softmax_regression(37, 5, binary_weights=True, scale=True, init="normal",
                                                  input_offset=0.3), True, True),
    "mlp": (lambda: mlp([37, 19, 5]), True, True),
    "mlp_bn": (lambda: mlp([37, 19, 5], activation="hardtanh", batch_norm=True), True, True),
    "binary_weights": (lambda: mlp([37, 19, 5], binary_weights=True, scale=True), True, True),
    "bnn": (lambda: mlp([37, 70, 19, 5], binary_weights=True, binary_activations=True), True, True),
    "bnn_scaled_centred": (lambda: mlp([37, 70, 65, 5], binary_weights=True, binary_activations=True, scale=True,
                                       input_offset=0.25), True, True),
    "bnn_f64": (lambda: mlp([37, 70, 19, 5], binary_weights=True, binary_activations=True, dtype="float64"),
                True, True),
    "bnn_no_bn": (lambda: mlp([37, 70, 19, 5], binary_weights=True, activation="sign", batch_norm=False,
                              output_bn=False), True, True),
}
ROWS = [1, 3, 17, 40, 300]


def _inputs(rng, m, n_in=37):
    u8 = rng.integers(0, 256, (m, n_in), dtype=np.uint8)
    x = (u8 / 255).astype(np.float32)
    x[: max(1, m // 4)] = np.round(x[: max(1, m // 4)])  # exact zeros and ones
    fine = rng.random((m, n_in), dtype=np.float32) ** 3  # full mantissas, a wide range of exponents
    return {"float": x, "uint8": u8, "float_fine": fine}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every kind saved once (a folded, version-2 file) with random parameters."""
    rng = np.random.default_rng(7)
    out = {}
    for name, (make, _, _) in KINDS.items():
        path = tmp_path_factory.mktemp("models") / f"{name}.fbm"
        randomise(make(), rng).save(path)
        out[name] = path
    return out


def _v1(path, out):
    """The same model as a version-1 file (no folded section), as fastbin wrote before."""
    meta, arrays = load_arrays(path)
    meta = {k: v for k, v in meta.items() if k != "folded"}
    meta["version"] = 1
    save_arrays(out, meta, {k: v for k, v in arrays.items() if not k.startswith("folded.")})
    return out


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(KINDS))
def test_runtime_equals_unfolded_model(files, name, engine, rng):
    """Bit for bit the unfolded model of the engine's backend (``fastbin.nn.load``), every
    kind, float and uint8 input, batch 1 to 40, and the trainer's own folding."""
    model = runtime.load(files[name], engine=engine)
    assert model.engine.name == engine
    unfolded = load(files[name], backend=BACKEND_OF[engine])
    trainer_folded = unfolded.to_inference()
    for m in ROWS:
        for x in _inputs(rng, m).values():
            logits = model.logits(x)
            assert logits.dtype == unfolded.dtype
            np.testing.assert_array_equal(logits, unfolded.forward(x))
            np.testing.assert_array_equal(logits, trainer_folded.forward(x))
            np.testing.assert_array_equal(model.predict(x), unfolded.predict(x))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["softmax", "softmax_f64", "mlp_bn", "bnn_scaled_centred"])
def test_predict_proba_is_the_softmax_of_the_logits(files, name, engine, rng):
    """Rows sum to 1; equal (bit for bit) to the trainable model's; the softmax of the
    logits (float64 check); the arg-max is predict's class wherever the top logit is unique."""
    model = runtime.load(files[name], engine=engine)
    unfolded = load(files[name], backend=BACKEND_OF[engine])
    for x in _inputs(rng, 40).values():
        p, logits = model.predict_proba(x), model.logits(x)
        assert p.shape == logits.shape and p.dtype == model.dtype and (p >= 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=0, atol=4 * np.finfo(p.dtype).eps)
        np.testing.assert_array_equal(p, unfolded.predict_proba(x))
        z = logits.astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-5 if p.dtype == np.float32 else 1e-12,
                                   atol=1e-7)
        top2 = np.sort(logits, axis=1)[:, -2:]
        unique = top2[:, 1] > top2[:, 0]
        np.testing.assert_array_equal(p.argmax(axis=1)[unique], model.predict(x)[unique])


def test_softmax_is_stable_for_extreme_logits():
    from fastbin.reference import softmax

    z = np.array([[1e4, -1e4, 0], [-3e38, -3e38, -3e38], [88.0, 89.0, 90.0]], np.float32)
    p = softmax(z)
    assert np.isfinite(p).all() and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(p[0], [1, 0, 0])
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(p[2], np.exp([-2, -1, 0]) / np.exp([-2, -1, 0]).sum(), rtol=1e-6)
    assert (z == np.array([[1e4, -1e4, 0], [-3e38, -3e38, -3e38], [88.0, 89.0, 90.0]], np.float32)).all()


@pytest.mark.parametrize("name", sorted(KINDS))
def test_engines_agree(files, name, rng):
    _, exact_float, exact_uint8 = KINDS[name]
    numba_model, numpy_model = (runtime.load(files[name], engine=e) for e in ENGINES)
    for m in ROWS:
        for kind, x in _inputs(rng, m).items():
            a, b = numba_model.logits(x), numpy_model.logits(x)
            if exact_uint8 if kind == "uint8" else exact_float:
                np.testing.assert_array_equal(a, b)
            else:
                assert_close(a, b)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["bnn_scaled_centred", "bnn_f64", "binary_softmax", "mlp"])
def test_old_format_files_load(files, name, engine, tmp_path, rng):
    old = _v1(files[name], tmp_path / "v1.fbm")
    a, b = runtime.load(old, engine=engine), runtime.load(files[name], engine=engine)
    for x in _inputs(rng, 17).values():
        np.testing.assert_array_equal(a.logits(x), b.logits(x))
        np.testing.assert_array_equal(load(old).predict(x), load(files[name]).predict(x))


def test_folded_file_loads_without_search(files, tmp_path, monkeypatch):
    """A version-2 file supplies the thresholds; a version-1 file is searched at load."""
    from fastbin.runtime import fold

    def no_search(*args):
        raise AssertionError("threshold search")

    old = _v1(files["bnn"], tmp_path / "v1.fbm")
    monkeypatch.setattr(fold, "_search", no_search)
    runtime.load(files["bnn"], engine="numpy")
    with pytest.raises(AssertionError, match="threshold search"):
        runtime.load(old, engine="numpy")


def test_latent_files_fold_like_packed_ones(tmp_path, rng):
    model = randomise(mlp([37, 70, 19, 5], binary_weights=True, binary_activations=True, scale=True), rng)
    model.save(tmp_path / "packed.fbm")
    model.save(tmp_path / "latent.fbm", latent=True)
    for engine in ENGINES:
        a, b = (runtime.load(tmp_path / f, engine=engine) for f in ("packed.fbm", "latent.fbm"))
        for x in _inputs(rng, 9).values():
            np.testing.assert_array_equal(a.logits(x), b.logits(x))
            np.testing.assert_array_equal(b.logits(x), load(tmp_path / "latent.fbm",
                                                             backend=BACKEND_OF[engine]).forward(x))


def _hostile(files, tmp_path, change):
    meta, arrays = load_arrays(files["bnn"])
    change(meta, arrays)
    path = tmp_path / "hostile.fbm"
    save_arrays(path, meta, arrays)
    return path


@pytest.mark.parametrize("change, match", [
    (lambda m, a: a.update({"folded.0.uint8_t": a["folded.0.uint8_t"] * 0 + 10**6}),
     r"'folded.0.uint8_t' holds thresholds outside \[-9435, 9436\]"),
    (lambda m, a: a.update({"folded.3.packed_t": a["folded.3.packed_t"] * 0 - 71}),
     r"'folded.3.packed_t' holds thresholds outside \[-70, 71\]"),
    (lambda m, a: a.update({"folded.0.float_t": np.full(70, np.float32(np.nan)).view(np.int32)}),
     "'folded.0.float_t' holds thresholds that are not finite"),
    (lambda m, a: a.update({"folded.0.float_t": np.ones(70, np.float32)}),
     r"'folded.0.float_t' must be int32 array of shape \[70\], got float32"),
    (lambda m, a: a.pop("folded.0.uint8_flip"), r"missing \['folded.0.uint8_flip'\]"),
    (lambda m, a: a.update({"folded.0.packed_t": np.zeros(70, np.int32)}), r"unexpected \['folded.0.packed_t'\]"),
    (lambda m, a: a.update({"folded.3.packed_flip": np.zeros(20, bool)}),
     r"'folded.3.packed_flip' must be bool array of shape \[19\]"),
    (lambda m, a: m.update(folded="yes"), "meta.folded must be true or false"),
    (lambda m, a: m.update(folded=False), r"unexpected \['folded.0.uint8_t'"),
    (lambda m, a: m.pop("folded"), r"meta has the wrong keys \(missing \['folded'\]"),
])
def test_hostile_folded_section(files, tmp_path, change, match):
    path = _hostile(files, tmp_path, change)
    for loader in (lambda p: runtime.load(p, engine="numpy"), load):
        with pytest.raises(ModelFileError, match=match):
            loader(path)


@pytest.mark.parametrize("big", [600_000, 10**12])
def test_declared_sizes_beyond_the_stored_arrays(files, tmp_path, big):
    """A small folded file whose meta declares huge layers: a clear ModelFileError, with the
    peak memory bounded by the file size."""
    import tracemalloc

    def declare(meta, arrays):
        meta["config"]["sizes"] = [big, big, big, 5]
        for layer in meta["layers"]:
            for key in ("n_in", "n_out", "n"):
                if key in layer:
                    layer[key] = big
        meta["layers"][-1]["n"] = meta["layers"][-2]["n_out"] = 5  # the output layer keeps 5 classes

    path = _hostile(files, tmp_path, declare)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=f"{path}.*(must be|implies)"):
            runtime.load(path, engine="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * size + (1 << 20), (peak, size)


@pytest.mark.parametrize("engine", ENGINES)
def test_predict_from_eight_threads_equals_serial(files, engine, rng):
    model = runtime.load(files["bnn_scaled_centred"], engine=engine)
    batches = [x for m in (1, 3, 17, 40, 1, 2, 9, 33) for x in _inputs(rng, m).values()]
    serial = [model.logits(x) for x in batches]
    results, errors = [[None] * len(batches) for _ in range(8)], []

    def work(t):
        try:
            for _ in range(5):
                for i in range(len(batches)):
                    j = (i + t) % len(batches)
                    results[t][j] = model.logits(batches[j])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for t in range(8):
        for got, want in zip(results[t], serial, strict=True):
            np.testing.assert_array_equal(got, want)


def test_engine_choice(monkeypatch):
    assert runtime.get_engine("numpy").name == "numpy"
    assert runtime.get_engine("numba").name == "numba"
    assert runtime.engine_for("reference").name == "numpy"
    monkeypatch.setenv("FASTBIN_ENGINE", "numpy")
    assert runtime.get_engine().name == "numpy"
    monkeypatch.setenv("FASTBIN_ENGINE", "cuda")
    with pytest.raises(ValueError, match=r"\$FASTBIN_ENGINE must be 'numba' or 'numpy', got 'cuda'"):
        runtime.get_engine()
    with pytest.raises(ValueError, match="engine must be 'numba' or 'numpy', got 'gpu'"):
        runtime.get_engine("gpu")
    with pytest.raises(TypeError, match="engine must be"):
        runtime.get_engine(3)
    monkeypatch.delenv("FASTBIN_ENGINE")
    assert runtime.get_engine().name == "numba"


@pytest.mark.parametrize("engine", ENGINES)
def test_input_checked_at_the_boundary(files, engine):
    model = runtime.load(files["bnn"], engine=engine)
    with pytest.raises(ValueError, match=r"x must have shape \(m, 37\)"):
        model.predict(np.zeros((3, 36), np.float32))
    with pytest.raises(TypeError, match="x must be float"):
        model.predict(np.zeros((3, 37), np.int32))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        model.predict([[0.0] * 37])
    for bad in (np.nan, np.inf, -np.inf):
        for dtype in (np.float32, np.float64):
            x = np.full((4, 37), 0.5, dtype)
            x[2, 5] = bad
            with pytest.raises(ValueError, match="x must be finite .* row 2 holds a NaN or an infinity"):
                model.predict(x)
            with pytest.raises(ValueError, match="x must be finite"):
                model.logits(x[2:3])
    with pytest.raises(ValueError, match="row 0 holds a NaN or an infinity"):  # finite, but not as float32
        model.predict(np.full((1, 37), 1e300))


def test_engines_and_model_chunk_alike():
    """Both engines and the trainable model chunk rows by the one ``fastbin._limits.EVAL_CHUNK``
    (the products' rounding may depend on the number of rows)."""
    from fastbin import _limits
    from fastbin.nn import model as nn_model
    from fastbin.runtime import _numba, _numpy

    assert _numpy.NumpyEngine.eval_chunk == _numba.NumbaEngine.eval_chunk == nn_model.EVAL_CHUNK == _limits.EVAL_CHUNK


def test_numpy_popcount_fallback_matches(rng):
    from fastbin.runtime._numpy import _swar_popcount, popcount_words

    v = rng.integers(0, 2**63, 1000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 1000, dtype=np.uint64)
    v[:3] = [0, np.uint64(2**64 - 1), np.uint64(1) << np.uint64(63)]
    expected = np.array([bin(int(w)).count("1") for w in v])
    np.testing.assert_array_equal(_swar_popcount(v), expected)
    np.testing.assert_array_equal(popcount_words(v), expected)


_NO_NUMBA = """
import sys, numpy as np
sys.modules["numba"] = None        # Numba made unimportable: the runtime must not need it
import fastbin.runtime
model = fastbin.runtime.load(sys.argv[1])
assert model.engine.name == "numpy", model.engine
x, u8 = np.load(sys.argv[2]), np.load(sys.argv[3])
np.save(sys.argv[4], model.logits(x)); np.save(sys.argv[5], model.logits(u8))
banned = ("numba", "llvmlite", "tqdm", "platformdirs", "fastbin.nn", "fastbin.tools", "fastbin.kernels",
          "fastbin.ops", "fastbin._config")
print(sorted(m for m, mod in sys.modules.items() if mod is not None and m.startswith(banned)))
"""


@pytest.mark.parametrize("name", ["bnn_scaled_centred", "mlp_bn", "softmax"])
def test_numpy_engine_without_numba(files, name, tmp_path, rng):
    inputs = _inputs(rng, 23)
    np.save(tmp_path / "x.npy", inputs["float"])
    np.save(tmp_path / "u8.npy", inputs["uint8"])
    out = subprocess.run([sys.executable, "-c", _NO_NUMBA, str(files[name]), str(tmp_path / "x.npy"),
                          str(tmp_path / "u8.npy"), str(tmp_path / "lf.npy"), str(tmp_path / "lu.npy")],
                         capture_output=True, text=True, cwd=ROOT, check=False,
                         env={**os.environ, "FASTBIN_ENGINE": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    numba_model = runtime.load(files[name], engine="numba")
    for kind, file in (("float", "lf.npy"), ("uint8", "lu.npy")):
        logits = np.load(tmp_path / file)
        np.testing.assert_array_equal(logits, numba_model.logits(inputs[kind]))
        np.testing.assert_array_equal(logits.argmax(axis=1), numba_model.predict(inputs[kind]))


def test_numba_named_but_missing_is_a_clear_error(tmp_path):
    code = ("import sys; sys.modules['numba'] = None\nimport fastbin.runtime\n"
            "try:\n    fastbin.runtime.get_engine('numba')\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    assert "the 'numba' engine needs Numba" in out.stdout and "engine='numpy'" in out.stdout


def test_cli_predict_uses_the_runtime(files, tmp_path, monkeypatch, capsys, rng):
    """``fastbin predict`` loads the file with the runtime: no trainable model is built."""
    from fastbin.nn import model as nn_model
    from fastbin.tools.cli import main

    def no_trainer(*args, **kwargs):
        raise AssertionError("the trainer's load was called")

    monkeypatch.setattr(nn_model, "load", no_trainer)
    x = rng.integers(0, 256, (6, 37), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "pred.npy"
    for backend in ("fastbin", "reference"):
        argv = ["predict", str(files["bnn"]), str(tmp_path / "x.npy"), "-o", str(out), "--backend", backend]
        assert main(argv) == 0, capsys.readouterr().err
        np.testing.assert_array_equal(np.load(out), runtime.load(files["bnn"]).predict(x))
    with pytest.raises(AssertionError, match="trainer's load"):  # --unfolded still means the trainable model
        main(["--debug", "predict", str(files["bnn"]), str(tmp_path / "x.npy"), "--unfolded"])


def _inner(a):
    """A mask of the one threshold nearest zero (a change point inside the domain)."""
    return np.arange(a.size) == np.argmin(np.abs(a))


def _next_float_bits(bits):
    """The next float32 up of the float32 threshold nearest zero (stored as int32 bits)."""
    f = bits.view(np.float32)
    return np.where(_inner(f), np.nextafter(f, np.float32(np.inf)), f).astype(np.float32).view(np.int32)


@pytest.mark.parametrize("name, change", [
    ("folded.3.packed_flip", lambda a: ~a),  # the file: every flip inverted, checksum re-sealed
    ("folded.0.uint8_flip", lambda a: ~a),
    ("folded.0.float_flip", lambda a: ~a),
    ("folded.3.packed_flip", lambda a: np.where(np.arange(a.size) == 0, ~a, a)),  # one output only
    ("folded.3.packed_t", lambda a: a + _inner(a)),
    ("folded.0.uint8_t", lambda a: a - _inner(a)),
    ("folded.0.float_t", _next_float_bits),
])
def test_stored_thresholds_are_checked_against_the_layers(files, tmp_path, name, change, capsys):
    """Issue 21, item 2: a folded section that does not fold the file's own layers is refused by every
    loader (the runtime on both engines, ``fastbin.nn.load``, so ``eval``, ``predict`` and ``export-c``
    too): what is evaluated is what is deployed."""
    from fastbin.tools import cli

    path = _hostile(files, tmp_path, lambda m, a: a.update({name: change(a[name]).astype(a[name].dtype)}))
    match = rf"{name[:-len(name.rsplit('_', 1)[1]) - 1]}_(t|flip).*do not fold the layers"
    for loader in (lambda p: runtime.load(p, engine="numpy"), lambda p: runtime.load(p, engine="numba"), load):
        with pytest.raises(ModelFileError, match=match):
            loader(path)
    np.save(tmp_path / "x.npy", np.zeros((2, 37), np.uint8))
    for argv in (["predict", str(path), str(tmp_path / "x.npy")], ["predict", "--unfolded", str(path),
                                                                   str(tmp_path / "x.npy")]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("fastbin: error: ") and "do not fold the layers" in err and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["bnn", "bnn_scaled_centred"])
def test_numpy_engine_reads_its_thresholds_at_call_time(files, rng, monkeypatch, kind):
    """The numpy engine's two choices (popcounts or BLAS for packed products; refinement or the
    exact product for float sign stages) come from ``fastbin._tables.ENGINE`` when called: an
    edited entry switches the path at once, and both sides give the same bits."""
    from fastbin import _tables
    from fastbin.runtime import _numpy

    model = runtime.load(files[kind], engine="numpy")
    x = _inputs(rng, 40)["float_fine"]
    calls = {"popcount": 0, "exact": 0}
    real_popcount, real_exact = _numpy.popcount_words, _numpy.reference.exact_sign_product

    def popcount(v):
        calls["popcount"] += 1
        return real_popcount(v)

    def exact(*args):
        calls["exact"] += 1
        return real_exact(*args)

    monkeypatch.setattr(_numpy, "popcount_words", popcount)
    monkeypatch.setattr(_numpy.reference, "exact_sign_product", exact)
    results = {}
    for side, rows in (("low", 0), ("high", 10**9)):
        monkeypatch.setitem(_tables.ENGINE, "numpy_popcount_max_rows", rows)
        monkeypatch.setitem(_tables.ENGINE, "numpy_refine_max_rows", rows)
        calls.update(popcount=0, exact=0)
        results[side] = model.logits(x)
        # low thresholds: BLAS for packed products and the exact float stage; high: popcounts, refinement
        assert (calls["popcount"] > 0) == (side == "high"), (side, calls)
        assert (calls["exact"] > 0) == (side == "low"), (side, calls)
    np.testing.assert_array_equal(results["low"], results["high"])
