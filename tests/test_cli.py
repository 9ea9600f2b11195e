"""Command line: help, exit codes, one-line errors, --debug, train -> eval -> predict -> summary.

No test here talks to the internet: dataset downloads go to a dead port on
127.0.0.1 (``FASTBIN_MIRRORS``), and the ``offline`` fixture fails a test that
would download from anywhere else.
"""
import dataclasses
import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from fastbin.io.datasets import Dataset
from fastbin.nn.model import mlp
from fastbin.tools import cli, demo
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
    ["train", "-o", "m.fbm", "--hidden", "200,x"], ["train", "-o", "m.fbm", "--schedule", "cosine:x"],
    ["train", "-o", "m.fbm", "--recipe", "nope"], ["eval"], ["demo", "--recipes", "nope"],
    ["demo", "--backends", "torch"], ["predict", "only-model.fbm"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


def _one_error_line(capsys, *fragments):
    """stderr is exactly one ``fastbin: error: ...`` line holding ``fragments``."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbin: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_runtime_errors_exit_1(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.fbm")]) == 1
    _one_error_line(capsys, "no such model file")
    junk = tmp_path / "junk.fbm"
    junk.write_bytes(b"not a model at all" * 10)
    assert main(["summary", str(junk)]) == 1
    _one_error_line(capsys, str(junk))
    assert main(["summary", str(tmp_path)]) == 1
    _one_error_line(capsys, "is a directory")
    model_path = tmp_path / "m.fbm"
    mlp([784, 8, 10]).save(model_path)
    bad_input = tmp_path / "x.npy"
    np.save(bad_input, np.zeros((3, 5), np.float32))
    assert main(["predict", str(model_path), str(bad_input)]) == 1
    _one_error_line(capsys, "expected images of shape (m, 784) or (m, 28, 28)", "(3, 5)")
    assert main(["predict", str(model_path), str(tmp_path / "nothing.npy")]) == 1
    _one_error_line(capsys, "nothing.npy", "No such file")


def test_debug_flag_shows_the_traceback(tmp_path, capsys):
    missing = str(tmp_path / "missing.fbm")
    assert main(["eval", missing]) == 1
    assert "Traceback" not in capsys.readouterr().err
    for argv in (["--debug", "eval", missing], ["eval", missing, "--debug"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "FileNotFoundError" in err, argv
        assert err.splitlines()[-1].startswith("fastbin: error: no such model file"), argv
    assert main(["--debug", "summary", "bnn"]) == 0  # harmless when nothing fails


def test_memory_error_is_one_line(tmp_path, capsys, monkeypatch):
    import fastbin.nn.model

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 7.3 GiB")

    monkeypatch.setattr(fastbin.nn.model, "load", exhausted)
    (tmp_path / "m.fbm").write_bytes(b"x")
    assert main(["summary", str(tmp_path / "m.fbm")]) == 1
    _one_error_line(capsys, "out of memory", "7.3 GiB")


# -- datasets: none anywhere, a bad --data-dir ---------------------------------


@pytest.fixture
def offline(tmp_path, monkeypatch, dead_url):
    """No dataset anywhere (no $FASTBIN_DATA, an empty user cache, no Debian
    directory) and downloads only from a dead loopback port."""
    from fastbin.io import datasets as ds

    monkeypatch.delenv("FASTBIN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("FASTBIN_MIRRORS", dead_url)
    for name, spec in list(ds.DATASETS.items()):
        monkeypatch.setitem(ds.DATASETS, name, dataclasses.replace(spec, system_dirs=(str(tmp_path / "nodeb"),)))
    real = ds.download_file

    def loopback_only(urls, *args, **kwargs):
        urls = list(urls)
        assert urls and all(u.startswith(dead_url + "/") for u in urls), f"download outside the test: {urls}"
        return real(urls, *args, **kwargs)

    monkeypatch.setattr(ds, "download_file", loopback_only)
    return tmp_path


def _command(name, tmp_path):
    """argv of ``name`` that needs the dataset (without --data-dir)."""
    model = tmp_path / "m.fbm"
    if not model.exists():
        mlp([784, 8, 10]).save(model)
    return {"train": ["train", "--model", "softmax", "--steps", "2", "--no-progress", "-o", str(tmp_path / "o.fbm")],
            "eval": ["eval", str(model)],
            "demo": ["demo", "--quick", "--no-progress", "--out-dir", str(tmp_path / "demo")]}[name]


@pytest.mark.parametrize("command", ["train", "eval", "demo"])
@pytest.mark.parametrize("where", ["data-dir", "default"])
def test_no_dataset_anywhere_is_one_line(command, where, offline, capsys):
    empty = offline / "empty"
    empty.mkdir()
    argv = _command(command, offline) + (["--data-dir", str(empty)] if where == "data-dir" else [])
    assert main(argv) == 1
    line = _one_error_line(capsys, "fashion-mnist not found", "the download failed", "Connection refused",
                           "apt-get install dataset-fashion-mnist", "--data-dir")
    assert str(empty if where == "data-dir" else offline / "xdg" / "fastbin" / "fashion-mnist") in line
    assert list(empty.iterdir()) == []  # no partial downloads left behind
    assert not (offline / "o.fbm").exists()


@pytest.mark.parametrize("command", ["train", "eval", "demo"])
def test_data_dir_must_be_an_existing_directory(command, offline, capsys, monkeypatch):
    monkeypatch.setattr(demo, "load_data", _no_data)
    regular = offline / "file.txt"
    regular.write_text("not a directory")
    assert main(_command(command, offline) + ["--data-dir", str(regular)]) == 1
    _one_error_line(capsys, f"data directory {regular} is not a directory")
    typo = offline / "datsets"
    assert main(_command(command, offline) + ["--data-dir", str(typo)]) == 1
    _one_error_line(capsys, f"data directory {typo} does not exist")
    assert not typo.exists()  # a mistyped data directory is not created


def test_demo_out_dir_must_not_be_a_file(offline, capsys, monkeypatch):
    monkeypatch.setattr(demo, "load_data", _no_data)
    (offline / "out").write_text("x")
    assert main(["demo", "--out-dir", str(offline / "out")]) == 1
    _one_error_line(capsys, "is not a directory")


# -- train: arguments before data, output, a full disk -------------------------


def _no_data(*args, **kwargs):
    raise AssertionError("the dataset was loaded before the arguments were checked")


def _toy_data(*args, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 784), dtype=np.uint8)
    y = rng.integers(0, 10, 40)
    return Dataset("fashion-mnist", x[:32], y[:32], x[32:], y[32:], source="generated in the test")


@pytest.mark.parametrize("hidden, message", [
    ("1000000000", f"layer sizes must be in [1, {cli.MAX_LAYER_SIZE}]"),
    ("60000,60000", "parameters, more than the 50,000,000 limit"),
])
def test_huge_layers_are_refused_before_anything_is_allocated(hidden, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "load_data", _no_data)
    with pytest.raises(SystemExit) as exc:
        main(["train", "-o", str(tmp_path / "m.fbm"), "--hidden", hidden])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage" in err and message in err


def test_train_output_is_checked_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "load_data", _no_data)
    assert main(["train", "--steps", "1", "-o", str(tmp_path / "no" / "such" / "m.fbm")]) == 1
    _one_error_line(capsys, "cannot write the model to", "does not exist")
    assert main(["train", "--steps", "1", "-o", str(tmp_path)]) == 1
    _one_error_line(capsys, "is a directory")


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_out_of_space_while_saving_the_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "load_data", _toy_data)
    out = tmp_path / "out"
    out.mkdir()
    argv = ["train", "--model", "softmax", "--optimizer", "sgd", "--steps", "2", "--batch-size", "8",
            "--backend", "reference", "--no-progress", "-o", str(out / "m.fbm")]
    monkeypatch.setattr(os, "fsync", _enospc)  # the model writer fsyncs before its rename
    assert main(argv) == 1
    _one_error_line(capsys, f"cannot save the model to {out / 'm.fbm'}", "No space left on device")
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setattr(demo, "load_data", _toy_data)
    assert main(argv) == 0 and (out / "m.fbm").exists()


# -- predict: hostile inputs, the output file, a closed pipe ---------------------


def _npy_header(shape, descr="|u1"):
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _bad_inputs(path):
    np.savez(path / "a.npz", x=np.zeros((2, 784), np.uint8))
    np.save(path / "objects.npy", np.array([[None] * 784], dtype=object), allow_pickle=True)
    np.save(path / "ints.npy", np.zeros((2, 784), np.int64))
    np.save(path / "flat.npy", np.zeros(784, np.uint8))
    np.save(path / "cols.npy", np.zeros((2, 783), np.uint8))
    full = np.zeros((4, 784), np.uint8)
    np.save(path / "short.npy", full)
    (path / "short.npy").write_bytes((path / "short.npy").read_bytes()[:-100])
    return {
        "empty.npy": (b"", "is empty"),
        "text.npy": (b"hello, world\n", "not a readable .npy array"),
        "huge.npy": (_npy_header((10**12, 784)) + bytes(784), "declares shape (1000000000000, 784) uint8"),
        "a.npz": (None, "is a .npz (zip) archive"),
        "objects.npy": (None, "holds Python objects"),
        "ints.npy": (None, "got dtype int64"),
        "flat.npy": (None, "got (784,)"),
        "cols.npy": (None, "got (2, 783)"),
        "short.npy": (None, "truncated or damaged"),
    }


def test_predict_refuses_bad_inputs_in_one_line(tmp_path, capsys):
    model_path = tmp_path / "m.fbm"
    mlp([784, 8, 10]).save(model_path)
    for name, (content, message) in _bad_inputs(tmp_path).items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        assert main(["predict", str(model_path), str(tmp_path / name)]) == 1, name
        _one_error_line(capsys, str(tmp_path / name), message)


def test_predict_writes_exactly_the_output_path(tmp_path, capsys, rng):
    model = mlp([784, 8, 10], seed=2)
    model.save(tmp_path / "m.fbm")
    x = rng.integers(0, 256, (5, 784), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "preds_out"
    assert main(["predict", str(tmp_path / "m.fbm"), str(tmp_path / "x.npy"), "-o", str(out)]) == 0
    assert f"to {out}\n" in capsys.readouterr().out
    assert out.exists() and not (tmp_path / "preds_out.npy").exists()
    np.testing.assert_array_equal(np.load(out), model.to_inference().predict(x))
    assert np.load(out).dtype == np.int64


def test_predict_output_checked_first_and_full_disk(tmp_path, capsys, monkeypatch, rng):
    mlp([784, 8, 10]).save(tmp_path / "m.fbm")
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (5, 784), dtype=np.uint8))
    argv = ["predict", str(tmp_path / "m.fbm"), str(tmp_path / "x.npy"), "-o"]
    assert main([*argv, str(tmp_path / "nodir" / "p.npy")]) == 1
    _one_error_line(capsys, "cannot write predictions to", "does not exist")
    assert main([*argv, str(tmp_path)]) == 1
    _one_error_line(capsys, "is a directory")

    def half_then_full(file, array, *args, **kwargs):
        file.write(b"\x93NUMPY")
        _enospc()

    monkeypatch.setattr(np, "save", half_then_full)
    assert main([*argv, str(tmp_path / "p.npy")]) == 1
    _one_error_line(capsys, "cannot write predictions to", "No space left on device")
    assert not (tmp_path / "p.npy").exists()  # no partial file


def test_predict_into_a_closed_pipe_is_quiet(tmp_path):
    """``fastbin predict ... | head -1``: the reader leaves while the output is
    still being written (more than a pipe buffer of it)."""
    path = tmp_path / "m.fbm"
    mlp([4, 8, 10], seed=0).save(path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (600_000, 4), dtype=np.uint8))
    proc = subprocess.Popen([sys.executable, "-m", "fastbin", "predict", str(path), str(tmp_path / "x.npy"),
                             "--backend", "reference"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        code = proc.wait(timeout=300)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert first.strip().isdigit()
    assert err == ""
    assert code == 1


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
    result = _run("train", "--model", "softmax", "--no-binary-weights", "--optimizer", "sgd", "--lr", "0.5",
                  "--steps", "30", "--batch-size", "128", "--backend", "reference", "--no-progress", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert "test acc" in result.stdout and path.exists()
    result = _run("eval", str(path), "--backend", "reference", "--folded")
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("accuracy")[1].split("%")[0])
    assert accuracy > 60
    assert "folded inference accuracy" in result.stdout


# -- your own data: --data FILE.npz ---------------------------------------------------------------------------
def _own_npz(path, rng, n=240, k=12, c=3, **extra):
    centers = rng.normal(0, 1, (c, k))
    y = rng.integers(0, c, n + 60)
    x = (centers[y] + 0.5 * rng.normal(0, 1, (n + 60, k))).astype(np.float32)
    arrays = dict(x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:])
    arrays.update(extra)
    np.savez(path, **arrays)
    return path


def test_train_and_eval_on_own_data(tmp_path, capsys, rng):
    data = _own_npz(tmp_path / "mine.npz", rng)
    model_path = tmp_path / "mine.fbm"
    argv = ["train", "--data", str(data), "--hidden", "16", "--binary-weights", "--binary-activations",
            "--epochs", "4", "--batch-size", "32", "--lr", "0.01", "--no-progress", "-o", str(model_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "240 rows of 12 features, 3 classes" in out and "validation acc" in out and "test acc" not in out
    assert out.count("validation loss") == 4  # one evaluation per epoch of the 216 training rows
    model = cli._load_model(str(model_path))
    assert (model.n_in, model.n_classes) == (12, 3)
    assert main(["eval", str(model_path), "--data", str(data), "--folded"]) == 0
    out = capsys.readouterr().out
    acc = float(out.split("accuracy ")[1].split("%")[0])
    assert acc > 80 and "(60 rows)" in out and "folded inference accuracy" in out


def test_train_on_own_data_never_reads_its_test_arrays(tmp_path, capsys, rng):
    """x_test holds the wrong width and y_test labels out of range: training reads neither."""
    data = _own_npz(tmp_path / "mine.npz", rng)
    arrays = dict(np.load(data))
    arrays.update(x_test=np.full((5, 3), np.nan, np.float32), y_test=np.full(5, -7))
    np.savez(data, **arrays)
    for extra in ([], ["--validation-split", "0.25"], ["--validation-split", "0"]):
        assert main(["train", "--data", str(data), "--model", "softmax", "--epochs", "2", "--no-progress",
                     "-o", str(tmp_path / "m.fbm"), *extra]) == 0
        out = capsys.readouterr().out
        assert ("validation loss" in out) == (extra[-1:] != ["0"]) and "test loss" not in out
    # explicit validation arrays are used as they are
    arrays.update(x_val=arrays["x_train"][:30], y_val=arrays["y_train"][:30])
    np.savez(data, **arrays)
    assert main(["train", "--data", str(data), "--model", "softmax", "--epochs", "1", "--no-progress",
                 "-o", str(tmp_path / "m.fbm")]) == 0
    assert "validation loss" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "m.fbm"), "--data", str(data)]) == 1
    _one_error_line(capsys, "y_test must be integer labels", "min -7")  # eval does read them


def test_own_data_errors(tmp_path, capsys, rng):
    good = _own_npz(tmp_path / "good.npz", rng)
    out = str(tmp_path / "m.fbm")
    np.savez(tmp_path / "no_y.npz", x_train=np.zeros((4, 3), np.float32))
    np.savez(tmp_path / "neg.npz", x_train=np.zeros((4, 3), np.float32), y_train=np.array([0, 1, -1, 0]))
    np.savez(tmp_path / "one.npz", x_train=np.zeros((4, 3), np.float32), y_train=np.zeros(4, int))
    np.savez(tmp_path / "strings.npz", x_train=np.array([["a"] * 3] * 4), y_train=np.zeros(4, int))
    np.save(tmp_path / "plain.npy", np.zeros((4, 3)))
    for name, fragments in [("no_y.npz", ["must hold arrays x_train and y_train", "x_train"]),
                            ("neg.npz", ["y_train must be integer labels", "min -1"]),
                            ("one.npz", ["one class only"]),
                            ("strings.npz", ["x_train must be float or raw uint8"]),
                            ("plain.npy", ["single .npy array, not a .npz"]),
                            ("missing.npz", ["cannot read", "missing.npz"])]:
        assert main(["train", "--data", str(tmp_path / name), "--no-progress", "-o", out]) == 1, name
        _one_error_line(capsys, *fragments)
    for argv in (["train", "--data", str(good), "--recipe", "bnn", "-o", out],
                 ["train", "--data", str(good), "--data-dir", str(tmp_path), "-o", out],
                 ["train", "--data", str(good), "--validation-split", "1", "-o", out]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    capsys.readouterr()
    mlp([784, 8, 10]).save(out)
    assert main(["eval", out, "--data", str(good)]) == 1
    _one_error_line(capsys, "x_test has 12 features", "the model takes 784 features")


# -- issue 21: argument errors before data (exit 2), outputs that are not regular files, what is saved --


@pytest.mark.parametrize("argv, message", [
    (["train", "--seed", "-1"], "--seed: expected an integer in [0, 2**128)"),
    (["train", "--seed", str(2**128)], "--seed: expected an integer in [0, 2**128)"),
    (["train", "--recipe", "bnn", "--seed", "-5"], "--seed: expected an integer in [0, 2**128)"),
    (["train", "--batch-size", "60001"], "--batch-size 60001 is more than the 60000 training images"),
    (["demo", "--seed", "-1"], "--seed: expected an integer in [0, 2**128)"),
])
def test_argument_errors_are_found_before_the_data(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "load_data", _no_data)
    if argv[0] == "train":
        argv = argv + ["-o", str(tmp_path / "m.fbm")]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage" in err and message in err, err


@pytest.mark.parametrize("kind", ["fifo", "symlink", "device"])
def test_train_never_replaces_anything_but_a_regular_file(kind, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "load_data", _no_data)
    target = tmp_path / "m.fbm"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        (tmp_path / "real.fbm").write_bytes(b"keep")
        target.symlink_to(tmp_path / "real.fbm")
    else:
        target = os.devnull  # checked before any data is loaded: never written, whoever runs the test
    assert main(["train", "--steps", "1", "-o", str(target)]) == 1
    what = {"fifo": "a FIFO", "symlink": "a symbolic link", "device": "a character device"}[kind]
    _one_error_line(capsys, f"cannot write the model to {target}: refusing to replace {what}")
    if kind == "symlink":
        assert target.is_symlink() and (tmp_path / "real.fbm").read_bytes() == b"keep"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow this test provokes
def test_train_with_a_huge_learning_rate_saves_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "load_data", _toy_data)
    out = tmp_path / "m.fbm"
    out.write_bytes(b"the previous model")
    argv = ["train", "--model", "softmax", "--optimizer", "sgd", "--lr", "1e38", "--steps", "3", "--batch-size",
            "8", "--backend", "reference", "--no-progress", "-o", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("fastbin: error: "), err
    assert f"cannot save the model to {out}: not saved: its loader would refuse it" in err[0], err
    assert "NaN or infinite" in err[0] or "the parameters are corrupt" in err[0], err  # inf, or merely huge
    assert out.read_bytes() == b"the previous model" and os.listdir(tmp_path) == ["m.fbm"]


# -- train: defaults, recipes, the optimizer and dropout options -----------------------------------------------
def test_train_without_model_options_trains_a_binary_model(tmp_path, capsys, rng):
    data = _own_npz(tmp_path / "mine.npz", rng)
    out = tmp_path / "m.fbm"
    assert main(["train", "--data", str(data), "--epochs", "1", "--no-progress", "-o", str(out)]) == 0
    assert "optimizer: Adam(lr=0.01, " in capsys.readouterr().out
    config = cli._load_model(str(out)).config
    assert (config["binary_weights"], config["activation"], config["batch_norm"], config["sizes"]) == (
        True, "sign", True, [12, 200, 100, 3])
    assert main(["train", "--data", str(data), "--epochs", "1", "--no-progress", "--no-binary-weights",
                 "--activation", "tanh", "-o", str(out)]) == 0
    assert "optimizer: Adam(lr=0.001, " in capsys.readouterr().out
    config = cli._load_model(str(out)).config
    assert (config["binary_weights"], config["activation"], config["batch_norm"]) == (False, "tanh", False)


def test_train_applies_momentum_weight_decay_schedules_and_dropout(tmp_path, capsys, rng):
    data = _own_npz(tmp_path / "mine.npz", rng)
    out = tmp_path / "m.fbm"
    # 240 rows, 24 held out: 216 training rows, 7 batches of 32 an epoch, 14 steps; 3 of warm-up
    argv = ["train", "--data", str(data), "--hidden", "16", "--activation", "hardtanh", "--dropout", "0.2",
            "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--nesterov", "--weight-decay", "1e-4",
            "--schedule", "cosine", "--warmup", "3", "--epochs", "2", "--batch-size", "32", "--no-progress",
            "-o", str(out)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert ("optimizer: SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0001, schedule=WarmUp(steps=3, "
            "then=CosineDecay(total_steps=11, final_factor=0.0)))") in stdout
    assert cli._load_model(str(out)).config["dropout"] == 0.2
    argv[argv.index("cosine")] = "cosine:5:0.1"
    assert main(argv) == 0
    assert "then=CosineDecay(total_steps=5, final_factor=0.1)" in capsys.readouterr().out


def test_recipe_options_are_applied_or_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "load_data", _toy_data)
    out = str(tmp_path / "m.fbm")
    assert main(["train", "--recipe", "nb1-float", "--steps", "3", "--batch-size", "8", "--backend", "reference",
                 "--no-progress", "-o", out]) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    for extra, named in [(["--hidden", "16"], "--hidden"), (["--lr", "0.1"], "--lr"),
                         (["--no-binary-weights"], "--no-binary-weights"), (["--model", "mlp"], "--model"),
                         (["--schedule", "none", "--warmup", "5"], "--schedule, --warmup"),
                         (["--weight-decay", "0"], "--weight-decay"), (["--dropout", "0.1"], "--dropout"),
                         (["--standardize"], "--standardize")]:
        with pytest.raises(SystemExit) as exc:
            main(["train", "--recipe", "bnn", *extra, "-o", out])
        assert exc.value.code == 2
        err = capsys.readouterr().err.splitlines()
        assert f"error: --recipe bnn sets the model and the optimizer: {named} cannot be used" in err[-1], err


@pytest.mark.parametrize("extra, message", [
    (["--momentum", "0.9"], "--momentum and --nesterov are options of --optimizer sgd"),
    (["--optimizer", "sgd", "--nesterov"], "--nesterov needs --momentum > 0"),
    (["--optimizer", "sgd", "--momentum", "1"], "expected a fraction in [0, 1)"),
    (["--dropout", "0.3"], "--dropout acts on float activations"),
    (["--model", "softmax", "--hidden", "8"], "--hidden: options of --model mlp"),
    (["--model", "softmax", "--no-batch-norm"], "--no-batch-norm: options of --model mlp"),
    (["--weight-decay", "-1"], "expected a finite number >= 0"),
    (["--weight-decay", "1000"], "lr * weight_decay must be < 1"),
    (["--warmup", "0"], "expected an integer >= 1"),
    (["--binary-activations", "--activation", "tanh"], "--binary-activations means --activation sign"),
    (["--scale", "--no-binary-weights"], "--scale scales binary weights"),
    (["--schedule", "cosine:0"], "total_steps must be an int >= 1"),
    (["--data-dir", "x", "--standardize"], "--data and --data-dir exclude each other"),
    (["--schedule", "cosine", "--warmup", "14", "--epochs", "2", "--batch-size", "32"],
     "--warmup 14 leaves none of the run's 14 steps to --schedule cosine"),
])
def test_train_option_errors_exit_2(extra, message, tmp_path, capsys, rng):
    data = _own_npz(tmp_path / "mine.npz", rng)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(data), *extra, "-o", str(tmp_path / "m.fbm")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert ": error: " in err[-1] and message in err[-1], err  # usage, then one error line
    assert sum("error" in line for line in err) == 1, err
    assert not (tmp_path / "m.fbm").exists()


@pytest.mark.parametrize("binary", [True, False])
def test_standardize_stores_the_transform_and_helps(binary, tmp_path, capsys, rng):
    """Features around 500 with spreads of 40 to 400: --standardize puts mean and scale in the model."""
    n, k = 400, 10
    y = rng.integers(0, 3, n + 100)
    spread = np.linspace(40, 400, k)
    x = (500 + spread * (rng.normal(0, 1, (n + 100, k)) + 1.5 * np.eye(3, k)[y])).astype(np.float32)
    data = tmp_path / "wide.npz"
    np.savez(data, x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:])
    out = tmp_path / "m.fbm"
    argv = ["train", "--data", str(data), "--hidden", "32", "--epochs", "8", "--batch-size", "32", "--no-progress",
            "-o", str(out), "--standardize"] + ([] if binary else ["--no-binary-weights", "--activation", "tanh"])
    assert main(argv) == 0
    model = cli._load_model(str(out))
    np.testing.assert_allclose(model.layers[0].buffers["input_offset"], x[:n].mean(0), rtol=1e-5)
    scale = model.layers[0].buffers["input_scale"]
    expected = 1 / x[:n].astype(np.float64).std(0)
    np.testing.assert_allclose(scale, np.full(k, 1 / (1 / expected).mean()) if binary else expected, rtol=1e-4)
    capsys.readouterr()
    assert main(["eval", str(out), "--data", str(data)]) == 0
    accuracy = float(capsys.readouterr().out.split("accuracy ")[1].split("%")[0])
    if not binary:  # per-feature scales: far better than the raw features (a binary layer folds one scale only)
        assert main([a for a in argv if a != "--standardize"]) == 0
        assert main(["eval", str(out), "--data", str(data)]) == 0
        raw = float(capsys.readouterr().out.split("accuracy ")[1].split("%")[0])
        assert accuracy > 65 and accuracy > raw + 15, (accuracy, raw)
