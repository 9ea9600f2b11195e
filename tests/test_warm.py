"""The numba engine's numpy-engine stand-in while its kernels compile (``fastbin.runtime._warm``):
both states forced and observed in this process, the same bits in each, the switch, a failed
background compile raised in the caller, and the switch turned off. The cold-cache default
(``auto``) in fresh processes is ``tests/test_start.py``'s."""
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from random_models import save_small_models

import fastbin.runtime as runtime
from fastbin import _config
from fastbin.runtime import _warm
from fastbin.runtime._numba import NumbaEngine

needs_jit = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing compiles without the JIT")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return save_small_models(tmp_path_factory.mktemp("warm"), np.random.default_rng(5))


@pytest.fixture
def gate():
    """``_warm.GATE``, set again after the test whatever happens."""
    yield _warm.GATE
    _warm.GATE.set()


def _inputs(rng):
    out = {}
    for m in (1, 300):  # the fused pass and the stage path (certified classes from 256 float rows)
        u8 = rng.integers(0, 256, (m, 37), dtype=np.uint8)
        out[f"u{m}"] = u8
        out[f"x{m}"] = (u8 / 255).astype(np.float32) ** 3
    return out


def _same(model, want, inputs, state):
    for name, x in inputs.items():
        np.testing.assert_array_equal(model.logits(x), want.logits(x), err_msg=f"{state}: logits {name}")
        np.testing.assert_array_equal(model.predict(x), want.predict(x), err_msg=f"{state}: predict {name}")


@needs_jit
@pytest.mark.parametrize("kind", ["bnn", "softmax"])
def test_numpy_stand_in_then_the_numba_engine(files, kind, gate, monkeypatch, rng):
    monkeypatch.setenv(_warm.ENV, "0")
    want = runtime.load(files[kind], engine="numba")
    assert want.warmup is None and want.engine is NumbaEngine
    inputs = _inputs(rng)
    monkeypatch.setenv(_warm.ENV, "1")  # also with the kernels compiled
    gate.clear()  # hold the background thread before it compiles anything
    model = runtime.load(files[kind], engine="numba")
    warmup = model.warmup
    assert warmup is not None and warmup.state == "compiling"
    assert model.engine.name == "numpy" and model.fused is None
    _same(model, want, inputs, "stand-in")
    assert model.warmup is warmup and model.engine.name == "numpy"  # still compiling: no switch
    gate.set()
    while warmup.state == "compiling":  # calls while the thread compiles: the same bits, no deadlock
        _same(model, want, {"x1": inputs["x1"]}, "during the compile")
    assert warmup.wait(600) and warmup.state == "ready", warmup.error
    warmup.thread.join(60)
    assert not warmup.thread.is_alive()
    _same(model, want, inputs, "switched")
    assert model.warmup is None and model.engine is NumbaEngine
    if kind == "bnn":  # the fused pass ran the batches of one row
        assert model.fused is not None and model.fused.calls >= 4


@needs_jit
def test_a_failed_background_compile_is_raised_in_the_caller(files, gate, monkeypatch, rng):
    monkeypatch.setenv(_warm.ENV, "1")

    def broken(model):
        raise RuntimeError("compile failed (a test)")

    monkeypatch.setattr(NumbaEngine, "fuse", staticmethod(broken))
    model = runtime.load(files["bnn"], engine="numba")
    assert model.warmup.wait(600) and model.warmup.state == "failed"
    assert isinstance(model.warmup.error, RuntimeError)
    x = _inputs(rng)["x1"]
    with pytest.raises(RuntimeError, match="compile failed"):  # built again here: raised here
        model.predict(x)
    assert model.engine.name == "numpy" and model.warmup is not None
    monkeypatch.undo()  # the compile works again: the next call switches
    monkeypatch.setenv(_warm.ENV, "0")
    want = runtime.load(files["bnn"], engine="numba")
    np.testing.assert_array_equal(model.logits(x), want.logits(x))
    assert model.warmup is None and model.engine is NumbaEngine


@needs_jit
def test_auto_takes_the_numba_engine_when_its_kernels_are_ready(files, monkeypatch, rng):
    monkeypatch.setenv(_warm.ENV, "0")
    runtime.load(files["bnn"], engine="numba").predict(_inputs(rng)["u1"])  # compiled (or loaded) here now
    from fastbin.runtime._fused import fused_float, fused_uint8

    runtime.load(files["bnn"], engine="numba").predict(_inputs(rng)["x1"])
    assert _config.kernel_cached(fused_float) and _config.kernel_cached(fused_uint8)
    monkeypatch.setenv(_warm.ENV, "auto")
    model = runtime.load(files["bnn"], engine="numba")
    assert model.warmup is None and model.engine is NumbaEngine


def test_turned_off_and_other_engines(files, monkeypatch):
    monkeypatch.setenv(_warm.ENV, "0")
    assert runtime.load(files["bnn"], engine="numba").warmup is None
    monkeypatch.setenv(_warm.ENV, "1")
    assert runtime.load(files["bnn"], engine="numpy").warmup is None  # the numpy engine is itself
    if numba.config.DISABLE_JIT:  # nothing would compile: the numba engine at once
        model = runtime.load(files["bnn"], engine="numba")
        assert model.warmup is None and model.engine is NumbaEngine


def test_a_bad_setting_is_named(files, monkeypatch):
    monkeypatch.setenv(_warm.ENV, "sometimes")
    with pytest.raises(ValueError, match=_warm.ENV):
        runtime.load(files["bnn"], engine="numba")


_FORK = """
import os, sys, time
import numpy as np
import fastbin.runtime as runtime
from fastbin.runtime._numba import NumbaEngine
fuse = NumbaEngine.fuse

def slow(model):  # a background fold that takes a while
    time.sleep(1.0)
    return fuse(model)

NumbaEngine.fuse = staticmethod(slow)
model = runtime.load(sys.argv[1], engine="numba")
assert model.warmup.state == "compiling"
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print(model.warmup.state)
"""


@needs_jit
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
def test_fork_waits_for_the_background_compile(files):
    """A child forked while the thread holds Numba's compiler lock would hang at its first
    compile: ``os.fork`` waits for the warm-up (in a fresh process: forking this one is not ours)."""
    env = {**os.environ, _warm.ENV: "1"}
    done = subprocess.run([sys.executable, "-c", _FORK, str(files["bnn"])], env=env, capture_output=True, text=True,
                          timeout=1200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "ready", done.stdout
