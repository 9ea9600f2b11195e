"""InferenceModel.summary() (fastbin.runtime.summary): the folded model's layers, bytes and work."""
import numpy as np
import pytest

from fastbin import runtime
from fastbin.nn import mlp
from fastbin.runtime.summary import stage_rows


def _total_line(text):
    return [int(v.replace(",", "")) for v in text.splitlines()[-1].split()[1:]]


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_summary_of_a_binary_mlp(engine, tmp_path):
    sizes = [100, 70, 30, 5]
    mlp(sizes, binary_weights=True, binary_activations=True, seed=0).save(tmp_path / "m.fbm")
    model = runtime.load(tmp_path / "m.fbm", engine=engine)
    rows = stage_rows(model)
    assert [r["name"] for r in rows] == ["sign (dense+bn+sign)", "sign (dense+bn+sign)", "dense", "batchnorm"]
    assert [r["shape"] for r in rows[:3]] == ["100x70 bin", "70x30 bin", "30x5 bin"]
    # the first layer sees real input; the others packed signs
    assert [r["macs"] for r in rows] == [100 * 70, 0, 0, 0]
    assert [r["binary_ops"] for r in rows] == [0, 70 * 30, 30 * 5, 0]
    words = [-(-n // 64) for n in sizes[:-1]]
    for r, n_words, n_out in zip(rows, words, sizes[1:]):
        assert r["bytes"] >= 8 * n_words * n_out  # packed signs, plus thresholds (sign stages)
    assert rows[0]["bytes"] > 8 * words[0] * sizes[1] and rows[2]["bytes"] == 8 * words[2] * sizes[3]
    text = model.summary()
    assert f"engine {engine}" in text and "100 inputs" in text
    assert _total_line(text) == [sum(r[k] for r in rows) for k in ("params", "bits", "bytes", "macs", "binary_ops")]
    # weights, then one int64 threshold (as held) and one flip bit per output and input kind (two on the first stage)
    assert rows[0]["params"] == 100 * 70 + 2 * 70 and rows[1]["params"] == 70 * 30 + 30
    assert rows[1]["bits"] == 70 * 30 + 30 * 64 + 30


def test_summary_of_a_float_mlp_counts_its_arrays():
    model = mlp([20, 8, 3], activation="tanh", input_offset=np.linspace(0, 1, 20), seed=0)
    folded = model.to_inference()
    rows = stage_rows(folded)
    assert [r["name"] for r in rows] == ["dense", "tanh", "dense"]
    itemsize = 4
    assert rows[0]["bytes"] == itemsize * (20 * 8 + 8 + 20) and rows[2]["bytes"] == itemsize * (8 * 3 + 3)
    assert [r["macs"] for r in rows] == [160, 0, 24]
    assert [r["params"] for r in rows] == [20 * 8 + 8 + 20, 0, 8 * 3 + 3]
    assert _total_line(folded.summary())[2:4] == [itemsize * (20 * 8 + 8 + 20 + 8 * 3 + 3), 184]
