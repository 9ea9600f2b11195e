"""One behaviour for an empty batch everywhere (issue 21, item 7): (0, n_in) rows, float or raw uint8,
give an empty result: logits (0, n_classes) in the model's dtype and classes (0,) int64, from the
runtime's two engines, the trainable model on both backends, and ``fastbin predict`` (no line printed,
an empty .npy written, exit 0)."""
import numpy as np
import pytest

from fastbin import runtime
from fastbin.nn.model import load, mlp, softmax_regression
from fastbin.tools import cli

KINDS = {
    "bnn": lambda b: mlp([21, 70, 9, 4], binary_weights=True, binary_activations=True, backend=b),
    "binary_softmax": lambda b: softmax_regression(21, 4, binary_weights=True, scale=True, backend=b),
    "binary_weights": lambda b: mlp([21, 9, 4], binary_weights=True, backend=b),
    "float_mlp": lambda b: mlp([21, 9, 4], backend=b),
}


def _check(logits, classes, dtype=np.float32):
    assert logits.shape == (0, 4) and logits.dtype == dtype
    assert classes.shape == (0,) and classes.dtype == np.int64


@pytest.mark.parametrize("name", sorted(KINDS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_every_predictor_gives_an_empty_result(name, dtype, tmp_path):
    path = tmp_path / "m.fbm"
    KINDS[name]("reference").save(path)
    x = np.zeros((0, 21), dtype)
    for engine in ("numba", "numpy"):
        model = runtime.load(path, engine=engine)
        _check(model.logits(x), model.predict(x))
    for backend in ("fastbin", "reference"):
        for model in (load(path, backend=backend), KINDS[name](backend)):
            _check(model.forward(x), model.predict(x))


@pytest.mark.parametrize("unfolded", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_cli_predict_on_an_empty_batch(unfolded, dtype, tmp_path, capsys):
    path = tmp_path / "m.fbm"
    mlp([784, 9, 10], binary_weights=True, binary_activations=True, backend="reference").save(path)
    np.save(tmp_path / "x.npy", np.zeros((0, 28, 28), dtype))
    argv = ["predict", str(path), str(tmp_path / "x.npy")] + (["--unfolded"] if unfolded else [])
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == ""
    assert cli.main(argv + ["-o", str(tmp_path / "p.npy")]) == 0
    out = np.load(tmp_path / "p.npy")
    assert out.shape == (0,) and out.dtype == np.int64
