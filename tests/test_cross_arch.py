"""The same model files give the same predictions on every architecture: the check that
``make test-arm64`` (AArch64, both engines) and ``make test-armv7`` (armhf, NumPy 1.24, no
Numba: the numpy engine) run under QEMU, against x86's results.

``python tests/test_cross_arch.py DIR`` (on the host, with the trainer) writes the golden set:
one model file per kind (``DIR/<kind>.fbm``, random parameters, every kind the runtime folds),
the inputs (``DIR/inputs.npz``: float in [0, 1] and raw uint8, batches of 1 to 300 rows) and
the host's logits and predictions of each engine (``DIR/expected-<engine>.npz``), listed in
``DIR/manifest.json``. With ``FASTBIN_GOLDEN=DIR`` the tests load those files with
``fastbin.runtime.load`` and compare; without it (the normal run) they write a fresh set into a
temporary directory first: a self-check of the writer and of the comparison on the host.
``FASTBIN_CROSS_ENGINES`` (comma-separated) picks the engines: by default both, or numpy
alone when Numba cannot be imported.

What is compared: predictions equal (rows whose two largest host logits are closer than 4x
the float tolerance excepted; at most 10% of a batch may be); logits within ``tests/tolerance.py``
everywhere, and bit for bit for the input kinds listed in ``KINDS`` (the forward pass is exact
integer arithmetic then the same elementwise float operations: packed stages, a binary first
layer on raw uint8 pixels, and on float input the exact ``x @ sign(W)`` of
``fastbin.reference.dense_sign_matmul``); float BLAS with float weights, ``tanh`` and vectorised
float sums may round differently per CPU. The fold's batch-norm factor ``gamma / sqrt(var +
eps)`` is the same on every CPU (``fastbin.reference.bn_scale`` takes the root in float64:
NumPy's float32 ``sqrt`` on 32-bit ARM is an ulp off on about a third of the inputs,
numpy/numpy#16247).
Imports nothing of the trainer or of Numba unless it writes the golden set.
"""
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pytest
from random_models import randomise
from tolerance import TOLERANCES, assert_close

from fastbin import runtime

GOLDEN_ENV, ENGINES_ENV = "FASTBIN_GOLDEN", "FASTBIN_CROSS_ENGINES"
ROWS = [1, 3, 17, 40, 300]
INPUT_KINDS = ["float", "uint8"]
#: kind -> (trainer constructor call, as ``fastbin.nn.model`` names and arguments; input kinds
#: whose logits are exact on every CPU)
KINDS = {
    "softmax": (("softmax_regression", [37, 5], {"init": "normal"}), ()),
    "softmax_f64": (("softmax_regression", [37, 5], {"init": "normal", "dtype": "float64"}), ()),
    "binary_softmax": (("softmax_regression", [37, 5], {"binary_weights": True, "scale": True, "init": "normal",
                                                        "input_offset": 0.3}), ("float", "uint8")),
    "mlp": (("mlp", [[37, 19, 5]], {}), ()),
    "mlp_bn": (("mlp", [[37, 19, 5]], {"activation": "hardtanh", "batch_norm": True}), ()),
    "binary_weights": (("mlp", [[37, 19, 5]], {"binary_weights": True, "scale": True}), ()),
    "bnn": (("mlp", [[37, 70, 19, 5]], {"binary_weights": True, "binary_activations": True}), ("float", "uint8")),
    "bnn_scaled_centred": (("mlp", [[37, 70, 65, 5]], {"binary_weights": True, "binary_activations": True,
                                                       "scale": True, "input_offset": 0.25}), ("float", "uint8")),
    "bnn_f64": (("mlp", [[37, 70, 19, 5]], {"binary_weights": True, "binary_activations": True,
                                            "dtype": "float64"}), ("float", "uint8")),
    "bnn_no_bn": (("mlp", [[37, 70, 19, 5]], {"binary_weights": True, "activation": "sign", "batch_norm": False,
                                              "output_bn": False}), ("float", "uint8")),
    # the demo's shape: a fully binary 784-input MLP
    "bnn_784": (("mlp", [[784, 256, 128, 10]], {"binary_weights": True, "binary_activations": True,
                                                "scale": True}), ("float", "uint8")),
}


def default_engines():
    if os.environ.get(ENGINES_ENV):
        return os.environ[ENGINES_ENV].split(",")
    return ["numba", "numpy"] if importlib.util.find_spec("numba") is not None else ["numpy"]


def _n_in(name):
    _, args, _ = KINDS[name][0]
    return args[0] if isinstance(args[0], int) else args[0][0]


def write_golden(out, engines=("numba", "numpy"), seed=11):
    """Write the golden set into ``out`` (needs the trainer, and Numba for the numba engine)."""
    from fastbin.nn import model as nn_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    inputs = {}
    for n_in in sorted({_n_in(name) for name in KINDS}):
        for m in ROWS:
            u8 = rng.integers(0, 256, (m, n_in), dtype=np.uint8)
            x = (u8 / 255).astype(np.float32)
            x[: max(1, m // 4)] = np.round(x[: max(1, m // 4)])  # exact zeros and ones
            inputs[f"{n_in}.{m}.uint8"], inputs[f"{n_in}.{m}.float"] = u8, x
    np.savez(out / "inputs.npz", **inputs)
    for name, ((ctor, args, kwargs), _) in KINDS.items():
        randomise(getattr(nn_model, ctor)(*args, **kwargs), rng).save(out / f"{name}.fbm")
    for engine in engines:
        expected = {}
        for name in KINDS:
            model = runtime.load(out / f"{name}.fbm", engine=engine)
            for m in ROWS:
                for kind in INPUT_KINDS:
                    logits = model.logits(inputs[f"{_n_in(name)}.{m}.{kind}"])
                    expected[f"{name}.{m}.{kind}.logits"] = logits
                    expected[f"{name}.{m}.{kind}.predict"] = logits.argmax(axis=1)
        np.savez(out / f"expected-{engine}.npz", **expected)
    manifest = {"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
                "engines": list(engines), "rows": ROWS, "kinds": sorted(KINDS)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """(directory, manifest, inputs): the set named by $FASTBIN_GOLDEN, else a fresh one."""
    where = os.environ.get(GOLDEN_ENV)
    if where:
        path = Path(where)
        if not (path / "manifest.json").is_file():
            pytest.fail(f"${GOLDEN_ENV}={where} holds no manifest.json: write it with "
                        f"`python tests/test_cross_arch.py {where}` on the reference host")
    else:
        path = write_golden(tmp_path_factory.mktemp("golden"), engines=default_engines())
    manifest = json.loads((path / "manifest.json").read_text())
    with np.load(path / "inputs.npz") as f:
        inputs = dict(f)
    return path, manifest, inputs


def _top2_margin_ok(logits):
    """Rows whose two largest logits are further apart than the float tolerance."""
    if logits.shape[1] < 2:
        return np.ones(logits.shape[0], bool)
    top = np.sort(logits, axis=1)[:, -2:].astype(np.float64)
    tol = TOLERANCES[logits.dtype]
    scale = max(1.0, float(np.abs(logits).max()))
    return (top[:, 1] - top[:, 0]) > 4 * (tol["atol"] * scale + tol["rtol"] * np.abs(top[:, 1]))


def _compare(model, name, engine, expected, inputs):
    """Check logits within tolerance and predictions equal; (logits differing, logits) of each
    exact input whose logits are not bit for bit."""
    not_bitwise = []
    for m in ROWS:
        for kind in INPUT_KINDS:
            key, where = f"{name}.{m}.{kind}", f"{name}, {engine} engine, {m} rows, {kind} input"
            logits = model.logits(inputs[f"{_n_in(name)}.{m}.{kind}"])
            want = expected[f"{key}.logits"]
            assert logits.dtype == want.dtype and logits.shape == want.shape, where
            assert_close(logits, want, err_msg=where)
            if kind in KINDS[name][1] and not np.array_equal(logits, want):
                not_bitwise.append((int((logits != want).sum()), want.size))
            pred, want_pred = logits.argmax(axis=1), expected[f"{key}.predict"]
            clear = _top2_margin_ok(want)
            assert clear.sum() >= max(1, 0.9 * m), f"{where}: too many near-ties to judge predictions"
            np.testing.assert_array_equal(pred[clear], want_pred[clear], err_msg=f"{where}: predictions")
    return not_bitwise


@pytest.mark.parametrize("engine", default_engines())
@pytest.mark.parametrize("name", sorted(KINDS))
def test_same_predictions_as_the_reference_host(golden, name, engine):
    path, manifest, inputs = golden
    assert name in manifest["kinds"] and engine in manifest["engines"], f"{path}: stale golden set, rewrite it"
    with np.load(path / f"expected-{engine}.npz") as f:
        expected = dict(f)
    model = runtime.load(path / f"{name}.fbm", engine=engine)
    assert model.engine.name == engine
    not_bitwise = _compare(model, name, engine, expected, inputs)
    if not_bitwise:
        wrong, total = (sum(c) for c in zip(*not_bitwise))
        pytest.fail(f"{name}, {engine} engine: predictions equal, {wrong} of {total} logits not bit for bit")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/test_cross_arch.py DIR   (writes the golden set of the cross-arch tests)")
    done = write_golden(sys.argv[1], engines=default_engines())
    print(f"golden set written to {done} ({platform.machine()}, engines {', '.join(default_engines())})")
