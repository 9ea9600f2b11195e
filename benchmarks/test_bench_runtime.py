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
untimed warm-up process fills Numba's cache).
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from baselines import onnx_binary_forward
from benchutil import measure, size

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


COLD_START = (
    "import sys\n"
    "import numpy as np\n"
    "import fastbin.runtime\n"
    "model = fastbin.runtime.load(sys.argv[1], engine=sys.argv[2])\n"
    "print(int(model.predict(np.full((1, 784), 0.5, np.float32))[0]))\n"
)


@pytest.mark.parametrize("impl", list(ENGINES))
def test_runtime_cold_start(benchmark, model_files, loaded, impl):
    engine = ENGINES[impl]
    path = model_files["binary_mlp"]
    cmd = [sys.executable, "-c", COLD_START, str(path), engine]
    env = {k: v for k, v in os.environ.items() if k != "FASTBIN_ENGINE"}

    def fresh_process():
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, f"cold start failed: {done.stderr[-2000:]}"
        return int(done.stdout)

    pred = measure(
        benchmark, fresh_process, group="runtime_cold_start/binary_mlp", impl=impl, rounds=COLD_ROUNDS,
        shape="fresh python -c: import fastbin.runtime, load 784-512-512-10 file, predict 1 row (warm cache)",
    )
    assert pred == int(loaded("binary_mlp", engine).predict(np.full((1, 784), 0.5, np.float32))[0])
