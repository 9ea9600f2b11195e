"""``backend="reference"`` is plain NumPy all the way down: with every jitted
kernel of ``fastbin.kernels`` replaced by a function that raises, a reference
model still trains, evaluates, folds, predicts and round-trips a file; the
same models on the fastbin backend do reach the kernels (so the trap works)."""
import importlib
import pkgutil
import sys

import numba
import numpy as np
import pytest

from fastbin.nn.model import load, mlp, softmax_regression
from fastbin.nn.optim import SGD, Adam
from fastbin.ops.backend import Backend


class KernelCalled(AssertionError):
    pass


def _is_kernel(value) -> bool:
    """A jitted kernel (a Numba dispatcher, or its plain-Python function
    under NUMBA_DISABLE_JIT) defined in ``fastbin.kernels``."""
    if isinstance(value, numba.core.dispatcher.Dispatcher):
        value = value.py_func
    return callable(value) and getattr(value, "__module__", "").startswith("fastbin.kernels")


@pytest.fixture
def kernels_raise(monkeypatch):
    """Replace every kernel, in every fastbin module that holds one (the kernel, ops and
    runtime modules are imported first: the packages load them on first use)."""
    import fastbin.kernels
    import fastbin.ops
    import fastbin.runtime

    for package in (fastbin.kernels, fastbin.ops, fastbin.runtime):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(info.name)
    trapped = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("fastbin") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if _is_kernel(value) and not isinstance(value, type):
                def trap(*args, _name=f"{name}.{attr}", **kwargs):
                    raise KernelCalled(_name)
                monkeypatch.setattr(module, attr, trap)
                trapped.append(f"{name}.{attr}")
    assert len(trapped) > 20, trapped  # the ops, runtime and kernel modules are loaded
    return trapped


def _models(backend):
    return [
        softmax_regression(12, 3, init="normal", backend=backend),
        softmax_regression(12, 3, binary_weights=True, scale=True, input_offset=0.5, backend=backend),
        mlp([12, 9, 3], activation="tanh", backend=backend),
        mlp([12, 70, 9, 3], binary_weights=True, binary_activations=True, backend=backend),
        mlp([12, 9, 3], binary_weights=True, activation="hardtanh", scale=True, backend=backend),
    ]


def _data(rng):
    x = rng.integers(0, 256, (20, 12), dtype=np.uint8)
    return x, (x / 255).astype(np.float32), rng.integers(0, 3, 20)


def _exercise(model, rng, tmp_path):
    x_u8, x, y = _data(rng)
    for opt in (SGD(0.1), Adam(1e-2)):
        assert np.isfinite(model.train_step(x, y, opt))
        assert np.isfinite(model.train_step(x_u8, y, opt))
    loss, acc = model.evaluate(x, y)
    assert np.isfinite(loss) and 0 <= acc <= 1
    folded = model.to_inference()
    for batch in (x, x_u8, x[:1], x_u8[:1]):
        np.testing.assert_array_equal(folded.predict(batch), model.predict(batch))
    path = tmp_path / "m.fbm"
    model.save(path)
    np.testing.assert_array_equal(load(path, backend="reference").predict(x), model.predict(x))


@pytest.mark.parametrize("index", range(5))
def test_reference_backend_never_calls_a_kernel(index, rng, tmp_path, kernels_raise):
    _exercise(_models("reference")[index], rng, tmp_path)


def test_trap_catches_the_fastbin_backend(rng, tmp_path, kernels_raise):
    model = _models("fastbin")[3]
    with pytest.raises(KernelCalled):
        _exercise(model, rng, tmp_path)


def test_backend_functions_are_the_ops_api():
    import fastbin.ops
    from fastbin import reference

    for name in ("fastbin", "reference"):
        backend = Backend(name)
        assert backend.functions == tuple(fastbin.ops.__all__)
        module = fastbin.ops if name == "fastbin" else reference
        for fn in backend.functions:
            assert getattr(backend, fn) is getattr(module, fn)
