"""pytest configuration of the benchmark suite (``pytest benchmarks``).

Not collected by ``make test`` (``testpaths = ["tests"]``). Run it with
``make bench`` / ``make bench-quick`` or ``fastbin bench``.

Single-thread comparisons: BLAS is pinned to one thread through the
environment (``OPENBLAS_NUM_THREADS=1`` etc. must be set before NumPy loads;
the defaults below apply when nothing set them, and the values in force are
recorded in the JSON), torch through ``torch.set_num_threads(1)``, ONNX Runtime
by its session options (``benchmarks/baselines.py``), fastbin by
``threads=False`` and ``numba.set_num_threads(1)``.
"""
import os
import sys

_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_NUMPY_WAS_LOADED = "numpy" in sys.modules
for _name in _BLAS_ENV:
    os.environ.setdefault(_name, "1")
# Models loaded in this process time the engine they name: no numpy-engine stand-in while the
# numba engine compiles (fastbin.runtime._warm); benchmarks/cold_start.py's children run the default.
os.environ["FASTBIN_BACKGROUND_COMPILE"] = "0"

import platform  # noqa: E402

import pytest  # noqa: E402
from benchutil import QUICK  # noqa: E402

_CPU_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vpopcntdq", "avx512_bitalg", "popcnt")


def _cpu_model_and_flags():
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                if model and flags and key == "":
                    break
    except OSError:
        pass
    return model, {flag: flag in flags for flag in _CPU_FLAGS}


def _versions():
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("numpy", "numba", "llvmlite", "torch", "autograd", "onnxruntime", "onnx", "pytest-benchmark"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def _blas():
    import numpy as np

    try:
        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
        blas = deps.get("blas", {})
        return {
            "name": blas.get("name"),
            "version": blas.get("version"),
            "config": blas.get("openblas configuration"),
            "kernels": _blas_kernels(),
        }
    except Exception as exc:  # older NumPy: no mode="dicts"
        return {"name": None, "version": None, "config": f"unknown ({exc})"}


def _blas_kernels():
    """The core type whose kernels OpenBLAS chose at run time (``SkylakeX``, ``Haswell``, ...), from
    threadpoolctl when it is installed: the configuration string above names only the build's base
    target, and ``OPENBLAS_CORETYPE`` or an unknown CPU changes the choice (about 2x in sgemm on
    AVX-512 CPUs)."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    chosen = {info.get("architecture") for info in threadpoolctl.threadpool_info()
              if info.get("internal_api") == "openblas"}
    return ", ".join(sorted(name for name in chosen if name)) or None


def pytest_benchmark_update_machine_info(config, machine_info):
    """Everything the report prints about the machine, stored in the JSON."""
    import numba

    try:
        import llvmlite.binding as ll

        host_cpu = ll.get_host_cpu_name()
    except Exception:  # pragma: no cover - llvmlite always there with numba
        host_cpu = None
    model, flags = _cpu_model_and_flags()
    machine_info["fastbin"] = {
        "cpu_model": model,
        "llvm_host_cpu": host_cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.config.THREADING_LAYER,
        "blas_env": {name: os.environ.get(name) for name in (*_BLAS_ENV, "OPENBLAS_CORETYPE")},
        "blas_env_before_numpy": not _NUMPY_WAS_LOADED,
        "blas": _blas(),
        "versions": _versions(),
        "quick": QUICK,
        "platform": platform.platform(),
    }


@pytest.fixture(scope="session")
def torch():
    """torch on one thread, or skip (torch is not a fastbin dependency)."""
    torch = pytest.importorskip("torch", reason="torch is not installed (optional baseline)")
    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def onnxruntime():
    """The ``onnxruntime`` module (with ``onnx`` importable, to build graphs), or
    skip: both are optional peers (``pip install -e '.[peers]'``)."""
    pytest.importorskip("onnx", reason="onnx is not installed (optional peer: the peers extra)")
    return pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (optional peer: the peers extra)")


@pytest.fixture(scope="session")
def autograd():
    """The autograd package, or skip."""
    return pytest.importorskip("autograd", reason="autograd is not installed (bench extra)")


@pytest.fixture
def rng():
    """A fresh seeded generator per benchmark (same inputs for every impl)."""
    import numpy as np

    return np.random.default_rng(20261123)
