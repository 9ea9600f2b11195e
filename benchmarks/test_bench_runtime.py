"""Inference through the standalone runtime: ``fastbin.runtime.load(file)`` of
a saved model, on both engines, against ONNX Runtime; and the cold start of a
fresh process.

Models: a fully binary MLP 784-512-512-10 (batch norm after every dense layer)
and binary softmax regression 784-10, random weights (batch-norm statistics
randomised too, so thresholds and flips are not trivial), saved to model files
(folded form included) and loaded with ``fastbin.runtime.load``.

Rows (groups ``runtime_<model>/batch<m>_<input>``): ``runtime-numba`` and
``runtime-numpy`` (the two engines, one thread) and ``onnxruntime`` (the same
folded model as an ONNX graph of ±1 float weights and ``Sign``, one thread;
skipped when ``onnxruntime``/``onnx`` are not installed: the ``peers`` extra).
The float input is ``pixels / 256``: in [0, 1), and every product of it with
±1 weights is exact in float32 whatever the summation order, so ONNX Runtime's
predictions must equal fastbin's exactly; the uint8 input is the raw pixels.

``runtime_cold_start/binary_mlp``: wall time of one fresh ``python -c``
process that imports ``fastbin.runtime``, loads the MLP's file and predicts one
row, per engine; one round per process, the median over the rounds (the
untimed warm-up process fills Numba's cache). Its baselines, in the same group and
the same run: a fresh process that only imports Numba (``import-numba``), or only
NumPy (``import-numpy``); the bars of issue 26 are the differences (numba engine
<= 0.15 s over ``import-numba``, numpy engine <= 0.1 s over ``import-numpy``).

``runtime_cold_cache/binary_mlp``: the same process on an empty Numba cache (a fresh
temporary ``NUMBA_CACHE_DIR`` per round: a new install, a container, a fresh Dask
worker), so it compiles every kernel its first prediction needs.

``first_call_cold/<case>``: the first call of one public op (or the runtime's load and
first prediction) in a fresh process on an empty Numba cache, the call alone: the
process imports and builds its inputs first, untimed, then waits for the timed call
(``benchmarks/cold_start.py`` holds the cases; issue 26's bar: <= 3 s each).
"""
import os
import subprocess
import sys
import tempfile

import cold_start
import numpy as np
import pytest
from baselines import onnx_binary_forward
from benchutil import QUICK, measure, size

import fastbin.nn.model as models
import fastbin.runtime as runtime

RUNTIME_MODELS = {"binary_mlp": [784, 512, 512, 10], "binary_softmax_regression": [784, 10]}
RUNTIME_BATCHES = {"batch1": 1, "batch128": 128, "batch10000": size(10_000, 500)}
INPUTS = ("float", "uint8")
ENGINES = {"runtime-numba": "numba", "runtime-numpy": "numpy"}
RUNTIME_CASES = [
    (model_id, batch_id, kind, impl)
    for model_id in RUNTIME_MODELS
    for batch_id in RUNTIME_BATCHES
    for kind in INPUTS
    for impl in (*ENGINES, "onnxruntime")
]
#: Fresh processes per engine for the cold start (each one round).
COLD_ROUNDS = size(11, 2)
#: Fresh processes on an empty Numba cache (each compiles for seconds).
COLD_CACHE_ROUNDS = size(3, 1)
#: The first calls timed on an empty cache (quick mode: one of each family).
FIRST_CALL_CASES = size([*cold_start.CASES, *cold_start.RUNTIME_CASES],
                        ["pack_weights", "binary_matmul_128", "sign_matmul_u8_1", "runtime_numba_float"])


def _random_model(sizes, seed=0):
    if len(sizes) == 2:
        # normal, not notebook 1's uniform init: all-positive weights and equal biases make every
        # logit of every row tie, a model nobody deploys (and one whose classes need no product)
        model = models.softmax_regression(sizes[0], sizes[1], binary_weights=True, init="normal", seed=seed)
    else:
        model = models.mlp(sizes, binary_weights=True, binary_activations=True, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        if "gamma" in layer.params:  # batch norm: some negative gammas (flipped thresholds)
            n = layer.params["gamma"].shape[0]
            layer.params["gamma"][...] = rng.normal(1.0, 0.7, n)
            layer.params["beta"][...] = rng.normal(0.0, 0.5, n)
            layer.buffers["running_mean"][...] = rng.normal(0.0, 5.0, n)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, n)
    return model


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """model id -> path of its saved (folded) model file."""
    folder = tmp_path_factory.mktemp("runtime-models")
    paths = {}
    for model_id, sizes in RUNTIME_MODELS.items():
        paths[model_id] = folder / f"{model_id}.fbm"
        _random_model(sizes).save(paths[model_id])
    return paths


@pytest.fixture(scope="module")
def loaded(model_files):
    """``loaded(model_id, engine)``: the runtime model, loaded once per module."""
    cache = {}

    def get(model_id, engine):
        if (model_id, engine) not in cache:
            cache[model_id, engine] = runtime.load(model_files[model_id], engine=engine)
        return cache[model_id, engine]

    return get


def _input(rng, m, n_in, kind):
    pixels = rng.integers(0, 256, size=(m, n_in), dtype=np.uint8)
    return pixels if kind == "uint8" else pixels.astype(np.float32) / np.float32(256)


@pytest.mark.parametrize(("model_id", "batch_id", "kind", "impl"), RUNTIME_CASES)
def test_runtime_inference(benchmark, request, rng, model_files, loaded, model_id, batch_id, kind, impl):
    m = RUNTIME_BATCHES[batch_id]
    sizes = RUNTIME_MODELS[model_id]
    x = _input(rng, m, sizes[0], kind)
    if impl == "onnxruntime":
        fn = onnx_binary_forward(request.getfixturevalue("onnxruntime"), model_files[model_id], x)
    else:
        model = loaded(model_id, ENGINES[impl])
        fn = lambda: model.predict(x)  # noqa: E731
    pred = measure(
        benchmark, fn, group=f"runtime_{model_id}/{batch_id}_{kind}", impl=impl,
        shape=f"{'-'.join(map(str, sizes))}, batch {m}, {'uint8' if kind == 'uint8' else 'float32'} x, from file",
    )
    expected = loaded(model_id, "numba").predict(x)
    np.testing.assert_array_equal(np.asarray(pred), expected, err_msg=f"{impl} predictions != runtime (numba)")


COLD_START = cold_start.PREDICT


def _fresh_process(cmd, env):
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, f"cold start failed: {done.stderr[-2000:]}"
    return int(done.stdout)


@pytest.mark.parametrize("impl", [*ENGINES, *cold_start.BASELINES])
def test_runtime_cold_start(benchmark, model_files, loaded, impl):
    env = {k: v for k, v in os.environ.items() if k != "FASTBIN_ENGINE"}
    if impl in cold_start.BASELINES:
        cmd = [sys.executable, "-c", cold_start.BASELINES[impl]]
    else:
        cmd = [sys.executable, "-c", COLD_START, str(model_files["binary_mlp"]), ENGINES[impl]]
    pred = measure(
        benchmark, lambda: _fresh_process(cmd, env), group="runtime_cold_start/binary_mlp", impl=impl,
        rounds=COLD_ROUNDS,
        shape=("fresh python -c: " + cold_start.BASELINES[impl].split("\n")[0] if impl in cold_start.BASELINES else
               "fresh python -c: import fastbin.runtime, load 784-512-512-10 file, predict 1 row (warm cache)"),
    )
    if impl in ENGINES:
        expected = loaded("binary_mlp", ENGINES[impl]).predict(np.full((1, 784), 0.5, np.float32))[0]
        assert pred == int(expected)


@pytest.mark.parametrize("impl", list(ENGINES))
def test_runtime_cold_cache(benchmark, model_files, loaded, impl, tmp_path):
    cmd = [sys.executable, "-c", COLD_START, str(model_files["binary_mlp"]), ENGINES[impl]]

    def fresh_process_fresh_cache():
        return _fresh_process(cmd, cold_start.fresh_env(tempfile.mkdtemp(dir=tmp_path)))

    pred = measure(
        benchmark, fresh_process_fresh_cache, group="runtime_cold_cache/binary_mlp", impl=impl,
        rounds=COLD_CACHE_ROUNDS,
        shape="fresh python -c: import fastbin.runtime, load 784-512-512-10 file, predict 1 row (empty Numba cache)",
    )
    assert pred == int(loaded("binary_mlp", ENGINES[impl]).predict(np.full((1, 784), 0.5, np.float32))[0])


@pytest.mark.parametrize("case", FIRST_CALL_CASES)
def test_first_call_cold(benchmark, model_files, case, tmp_path):
    """The first call alone, in a fresh process on an empty cache, stopped just before it."""
    children = []

    def setup():
        children.append(cold_start.start_case(case, tempfile.mkdtemp(dir=tmp_path), str(model_files["binary_mlp"])))
        return (children[-1],), {}

    def first_call(child):
        child.stdin.write("go\n")
        child.stdin.flush()
        line = child.stdout.readline().strip()
        assert line == "first-done", f"{case}: {line} {child.stderr.read()[-2000:]}"

    benchmark.group = f"first_call_cold/{case}"
    benchmark.extra_info.update(group_id=benchmark.group, impl="fastbin", threads=None, work=None, unit=None,
                                quick=QUICK, note="",
                                shape=f"first call, fresh process, empty Numba cache: {cold_start.describe(case)}")
    benchmark.pedantic(first_call, setup=setup, rounds=COLD_CACHE_ROUNDS, iterations=1, warmup_rounds=0)
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-2000:]
