"""The demo runs and prints its table."""
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbin.io.datasets import Dataset
from fastbin.tools import demo


def _toy_dataset(rng, n=300, n_test=60):
    centers = rng.random((10, 784))
    y = rng.integers(0, 10, n + n_test)
    x = np.clip(centers[y] + rng.normal(0, 0.3, (n + n_test, 784)), 0, 1).astype(np.float32)
    return Dataset("toy", x[:n], y[:n], x[n:], y[n:], source="generated in the test")


def test_demo_table_on_toy_data(rng, tmp_path, monkeypatch):
    nb1 = demo.RECIPES["nb1-float"]
    tiny = demo.Recipe("nb1-float, 40 steps", nb1.weights, nb1.activations, nb1.build, nb1.optimizer,
                       dict(steps=40, batch_size=32, eval_every=20))
    monkeypatch.setitem(demo.RECIPES, "tiny", tiny)
    out = io.StringIO()
    code = demo.main(recipes=["tiny"], backends=("reference",), data=_toy_dataset(rng), out_dir=tmp_path,
                     progress=False, stream=out)
    text = out.getvalue()
    assert code == 0
    assert "dataset: toy" in text and "generated in the test" in text
    assert "tiny" in text and "test acc" in text and "KiB" in text
    assert (tmp_path / "tiny-reference.fbm").exists()


def test_every_recipe_builds():
    for name, recipe in demo.RECIPES.items():
        model = recipe.build("reference", 0, None)
        assert model.n_in == 784 and model.n_classes == 10, name
        recipe.optimizer()
        args = recipe.fit_args(quick=True)
        assert ("epochs" in args) != ("steps" in args), name
    assert set(demo.DEMO_RECIPES) <= set(demo.RECIPES) and set(demo.QUICK_RECIPES) <= set(demo.RECIPES)


def test_speedup_column():
    rows = [dict(recipe="a", weights="1-bit", activations="-", backend=b, steps=10, acc=0.5, time=t)
            for b, t in (("fastbin", 1.0), ("reference", 4.0))]
    assert "4.0x" in demo.format_table(rows)


@pytest.mark.slow
def test_demo_quick_command_on_fashion_mnist(tmp_path):
    from fastbin.io.datasets import dataset_source

    if dataset_source("fashion-mnist") is None:
        pytest.skip("Fashion-MNIST not installed")
    result = subprocess.run([sys.executable, "-m", "fastbin", "demo", "--quick", "--recipes", "nb1-float,bnn",
                             "--no-progress", "--out-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    assert "fashion-mnist" in result.stdout and "speedup" in result.stdout
    assert (tmp_path / "bnn-fastbin.fbm").exists()


# -- make demo on a fresh machine: scripts/ensure-dataset.sh ---------------------

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ensure-dataset.sh"


def _stub(directory, name, body):
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _ensure(tmp_path, *, found, uid, apt_rc=0, env=None, python=None):
    """Run the script with stub python/id/apt-get/apt-cache; returns (result, apt-get calls)."""
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    log = tmp_path / "apt.log"
    _stub(stubs, "python", f"exit {0 if found else 1}")
    _stub(stubs, "id", f'[ "$1" = -u ] && echo {uid}')
    _stub(stubs, "apt-get", f'echo "$*" >> "{log}"; exit {apt_rc}')
    _stub(stubs, "apt-cache", "exit 100")  # apt does not know the package yet
    run_env = {"PATH": f"{stubs}:/usr/bin:/bin", "PY": python or str(stubs / "python"), **(env or {})}
    result = subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, env=run_env, timeout=120)
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


def test_ensure_dataset_does_nothing_when_found(tmp_path):
    result, calls = _ensure(tmp_path, found=True, uid=0)
    assert result.returncode == 0 and calls == [] and result.stderr == ""


def test_ensure_dataset_installs_with_apt_as_root(tmp_path):
    result, calls = _ensure(tmp_path, found=False, uid=0)
    assert result.returncode == 0, result.stderr
    assert calls == ["update -qq", "install -y -qq dataset-fashion-mnist"]
    assert "installing Debian's dataset-fashion-mnist" in result.stderr


@pytest.mark.parametrize("uid, env", [(1000, {}), (0, {"FASTBIN_NO_APT": "1"})])
def test_ensure_dataset_leaves_it_to_the_download(tmp_path, uid, env):
    result, calls = _ensure(tmp_path, found=False, uid=uid, env=env)
    assert result.returncode == 0 and calls == []
    assert "will download it" in result.stderr and "sudo apt-get install dataset-fashion-mnist" in result.stderr


def test_ensure_dataset_survives_a_failing_apt(tmp_path):
    result, calls = _ensure(tmp_path, found=False, uid=0, apt_rc=100)
    assert result.returncode == 0 and calls[-1] == "install -y -qq dataset-fashion-mnist"
    assert "could not install dataset-fashion-mnist" in result.stderr


def test_ensure_dataset_asks_fastbin_where_the_data_is(tmp_path):
    """The real check (fastbin's search order), with a complete (empty-file) copy in $FASTBIN_DATA."""
    data = tmp_path / "data" / "fashion-mnist"
    data.mkdir(parents=True)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(ROOT)}
    result, calls = _ensure(tmp_path, found=False, uid=0, env=env, python=sys.executable)
    # Nothing in $FASTBIN_DATA or the cache: only Debian's copy can stop the install.
    assert calls == ([] if DEBIAN_INSTALLED else ["update -qq", "install -y -qq dataset-fashion-mnist"]), result.stderr
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (data / f"{stem}.gz").write_bytes(b"")
    (tmp_path / "apt.log").unlink(missing_ok=True)
    result, calls = _ensure(tmp_path, found=False, uid=0, env={**env, "FASTBIN_DATA": str(tmp_path / "data")},
                            python=sys.executable)
    assert result.returncode == 0 and calls == [], result.stderr


DEBIAN_INSTALLED = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file()


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_demo_runs_the_dataset_script_first():
    lines = subprocess.run(["make", "-n", "-C", str(ROOT), "demo"], capture_output=True, text=True,
                           timeout=60).stdout.splitlines()
    script = [i for i, line in enumerate(lines) if "scripts/ensure-dataset.sh" in line]
    run = [i for i, line in enumerate(lines) if "-m fastbin demo" in line]
    assert script and run and script[0] < run[0], lines
