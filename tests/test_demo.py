"""The demo runs and prints its table."""
import io
import subprocess
import sys

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
