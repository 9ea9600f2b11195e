"""Command line: help, exit codes, train -> eval -> predict -> summary."""
import subprocess
import sys

import numpy as np
import pytest

from fastbin.nn.model import mlp
from fastbin.tools.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "fastbin", *args], capture_output=True, text=True, timeout=600)


def test_help_and_version():
    result = _run("--help")
    assert result.returncode == 0
    for command in ("train", "eval", "predict", "summary", "demo", "bench"):
        assert command in result.stdout
    assert "examples:" in result.stdout
    for command in ("train", "eval", "predict", "summary", "demo"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["train"], ["train", "-o", "m.fbm", "--steps", "0"],
    ["train", "-o", "m.fbm", "--epochs", "1", "--steps", "5"], ["train", "-o", "m.fbm", "--lr", "-1"],
    ["train", "-o", "m.fbm", "--hidden", "200,x"], ["train", "-o", "m.fbm", "--schedule", "cosine"],
    ["train", "-o", "m.fbm", "--recipe", "nope"], ["eval"], ["demo", "--recipes", "nope"],
    ["demo", "--backends", "torch"], ["predict", "only-model.fbm"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_runtime_errors_exit_1(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.fbm")]) == 1
    assert "no such model file" in capsys.readouterr().err
    junk = tmp_path / "junk.fbm"
    junk.write_bytes(b"not a model at all" * 10)
    assert main(["summary", str(junk)]) == 1
    assert "error" in capsys.readouterr().err
    model_path = tmp_path / "m.fbm"
    mlp([784, 8, 10]).save(model_path)
    bad_input = tmp_path / "x.npy"
    np.save(bad_input, np.zeros((3, 5), np.float32))
    assert main(["predict", str(model_path), str(bad_input)]) == 1
    assert main(["predict", str(model_path), str(tmp_path / "nothing.npy")]) == 1


def test_predict_and_summary(tmp_path, capsys, rng):
    model = mlp([784, 16, 10], binary_weights=True, binary_activations=True, seed=1)
    path = tmp_path / "bnn.fbm"
    model.save(path)
    x = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), model.predict(x.reshape(6, -1)))
    assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 0
    printed = capsys.readouterr().out.split()
    assert [int(p) for p in printed[-6:]] == model.predict(x.reshape(6, -1)).tolist()
    assert main(["summary", str(path)]) == 0
    assert "binary" in capsys.readouterr().out
    assert main(["summary", "bnn"]) == 0  # a recipe name works too


def test_bench_command():
    code = main(["bench", "--help"])
    assert code in (0, 2)


def test_train_eval_round_trip_on_fashion_mnist(tmp_path):
    from fastbin.io.datasets import dataset_source

    if dataset_source("fashion-mnist") is None:
        pytest.skip("Fashion-MNIST not installed")
    path = tmp_path / "sr.fbm"
    result = _run("train", "--model", "softmax", "--optimizer", "sgd", "--lr", "0.5", "--steps", "30",
                  "--batch-size", "128", "--backend", "reference", "--no-progress", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert "test acc" in result.stdout and path.exists()
    result = _run("eval", str(path), "--backend", "reference", "--folded")
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("accuracy")[1].split("%")[0])
    assert accuracy > 60
    assert "folded inference accuracy" in result.stdout
