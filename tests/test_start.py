"""A fresh process: what it imports, and that its first predictions are the same on an empty
Numba cache (answered by the numpy engine while the numba engine compiles in the background,
then by the numba engine: ``fastbin.runtime._warm``) and on the cache that process filled
(everything loaded, the numba engine at once), bit for bit, as in this process. Speed is the benchmark suite's
(``benchmarks/test_bench_runtime.py``, ``benchmarks/cold_start.py``)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from random_models import save_small_models

import fastbin.runtime as runtime

ROOT = Path(__file__).resolve().parent.parent
needs_jit = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="Numba's cache: needs the JIT")

#: Modules of training only: the runtime never needs them.
TRAINING = ("fastbin.nn", "fastbin.tools", "fastbin.kernels.linear_ce", "fastbin.kernels.softmax_ce",
            "fastbin.kernels.updates", "fastbin.kernels.batch_norm", "fastbin.ops.loss", "fastbin.ops.updates",
            "fastbin.ops.batch_norm")
#: Imported by Numba's registry refresh before a compile, never by ``import numba`` itself: a
#: process that only loads cached kernels has no need of it (``fastbin._config._KernelCache``).
REFRESH_ONLY = "numba.np.linalg"

_CHILD = """
import json, sys
import numpy as np
import fastbin.runtime
from numba.core.registry import CPUDispatcher
model = fastbin.runtime.load(sys.argv[1], engine="numba")
first_engine = model.engine.name  # the numpy engine's stand-in while the numba engine compiles
for name in sys.argv[3].split(","):
    np.save(f"{sys.argv[2]}/{name}-out.npy", model.logits(np.load(f"{sys.argv[2]}/{name}.npy")))
if model.warmup is not None:  # then the numba engine's own logits
    assert model.warmup.wait(1200), "the background compile did not end"
    for name in sys.argv[3].split(","):
        np.save(f"{sys.argv[2]}/{name}-numba.npy", model.logits(np.load(f"{sys.argv[2]}/{name}.npy")))
    assert model.engine.name == "numba", model.engine
hits = misses = 0
for module in list(sys.modules.values()):
    for value in list(vars(module).values()) if module is not None else ():
        if isinstance(value, CPUDispatcher):
            hits += sum(value.stats.cache_hits.values())
            misses += sum(value.stats.cache_misses.values())
print(json.dumps({"hits": hits, "misses": misses, "modules": sorted(sys.modules), "first_engine": first_engine}))
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return save_small_models(tmp_path_factory.mktemp("start"), np.random.default_rng(11))


def _run(model, folder, names, cache_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("FASTBIN_ENGINE", "FASTBIN_NO_CACHE")}
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env["FASTBIN_BACKGROUND_COMPILE"] = "auto"  # the default (tests/conftest.py turns it off)
    done = subprocess.run([sys.executable, "-c", _CHILD, str(model), str(folder), ",".join(names)], env=env,
                          capture_output=True, text=True, timeout=1200, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_jit
@pytest.mark.parametrize("kind", ["bnn", "softmax"])
def test_first_predictions_on_an_empty_and_a_filled_cache(models, kind, tmp_path, rng):
    inputs = {}
    for m in (1, 300):  # the fused pass (batch 1) and the stage path
        u8 = rng.integers(0, 256, (m, 37), dtype=np.uint8)
        inputs[f"u{m}"] = u8
        inputs[f"x{m}"] = (u8 / 255).astype(np.float32) ** 3
    for name, x in inputs.items():
        np.save(tmp_path / f"{name}.npy", x)
    here = runtime.load(models[kind], engine="numba")
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    for round_, state in enumerate(("empty", "filled")):
        seen = _run(models[kind], tmp_path, list(inputs), cache)
        outputs = ("out", "numba") if round_ == 0 else ("out",)
        for name, x in inputs.items():
            for output in outputs:
                got = np.load(tmp_path / f"{name}-{output}.npy")
                np.testing.assert_array_equal(got, here.logits(x), err_msg=f"{state} cache, {name}, {output}")
                (tmp_path / f"{name}-{output}.npy").unlink()
        if round_ == 0:
            assert seen["hits"] == 0 and seen["misses"] > 0, seen  # compiled: the cache was empty
            assert seen["first_engine"] == "numpy", seen  # answered by the stand-in meanwhile
        else:
            assert seen["hits"] > 0 and seen["misses"] == 0, seen  # loaded all, compiled nothing
            assert seen["first_engine"] == "numba", seen  # a warm cache: no stand-in
            assert REFRESH_ONLY not in seen["modules"]  # and loading needed no compiler registries
        loaded = [m for m in seen["modules"] if any(m == b or m.startswith(b + ".") for b in TRAINING)]
        assert loaded == [], f"the runtime imported {loaded}"


def test_importing_the_runtime_imports_no_training_module():
    code = ("import sys, fastbin.runtime\nfastbin.runtime.get_engine('numba')\n"
            "import fastbin.runtime._fused\n"
            "import json\nprint(json.dumps(sorted(sys.modules)))")
    env = {k: v for k, v in os.environ.items() if k != "FASTBIN_ENGINE"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    loaded = [m for m in modules if any(m == b or m.startswith(b + ".") for b in TRAINING)]
    assert loaded == [], f"importing the runtime and its numba engine imported {loaded}"
