"""The logits the README calls exact do not depend on the BLAS kernel (issue 21).

The golden tests of ``make test-arm64``/``test-armv7`` compare an ARM run with the x86 host bit for
bit on the model kinds whose forward pass is exact (``tests/test_cross_arch.py``'s ``KINDS``). A
float BLAS call anywhere in such a pass (once: the input offset folded into a binary layer's bias,
``fastbin.reference.offset_bias``) makes the bits depend on the BLAS kernel, so CI failed on an AVX2
host. This runs the numpy engine (BLAS for its products) and the trainer's own evaluation path in
two subprocesses under two OpenBLAS core types, one without FMA (``Prescott``) and one with
(``Haswell``), and asks for the same bits. x86-64 with NumPy's bundled OpenBLAS only (the core
type is checked to have taken effect).
"""
import glob
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cross_arch import INPUT_KINDS, KINDS

HERE = Path(__file__).resolve().parent
CORE_TYPES = ("Prescott", "Haswell")

#: The child: writes every exact kind's model file (fixed seed), then its numpy-engine logits and
#: the trainable model's evaluation logits on float and uint8 rows, and the core OpenBLAS reports.
CHILD = r"""
import ctypes, glob, json, os, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from random_models import randomise
from test_cross_arch import KINDS, _n_in
from fastbin import runtime
from fastbin.nn import model as nn_model

out = sys.argv[2]
lib = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "libscipy_openblas*.so"))
core = ""
if lib:
    get = ctypes.CDLL(lib[0]).scipy_openblas_get_corename64_
    get.restype = ctypes.c_char_p
    core = get().decode()
rng = np.random.default_rng(5)
arrays = {}
for name, ((ctor, args, kwargs), exact) in sorted(KINDS.items()):
    if not exact:
        continue
    trained = randomise(getattr(nn_model, ctor)(*args, **kwargs), rng)
    path = os.path.join(out, name + ".fbm")
    trained.save(path)
    folded = runtime.load(path, engine="numpy")
    u8 = rng.integers(0, 256, (40, _n_in(name)), dtype=np.uint8)
    inputs = {"uint8": u8, "float": (u8 / 255).astype(np.float32)}
    for kind in exact:
        arrays[f"{name}.{kind}.runtime"] = folded.logits(inputs[kind])
        arrays[f"{name}.{kind}.trainer"] = trained.forward(inputs[kind])
np.savez(os.path.join(out, "logits.npz"), **arrays)
print(json.dumps({"core": core}))
"""


def _bundled_openblas():
    return glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "libscipy_openblas*.so"))


def _run(core_type, tmp_path):
    out = tmp_path / core_type
    out.mkdir()
    env = {**os.environ, "OPENBLAS_CORETYPE": core_type, "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(HERE), str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    core = json.loads(done.stdout.strip().splitlines()[-1])["core"]
    with np.load(out / "logits.npz") as f:
        return core, dict(f)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="OpenBLAS core types are x86-64 names")
@pytest.mark.skipif(not _bundled_openblas(), reason="NumPy without its bundled OpenBLAS (core type not settable)")
def test_exact_logits_do_not_depend_on_the_blas_kernel(tmp_path):
    (core_a, a), (core_b, b) = (_run(t, tmp_path) for t in CORE_TYPES)
    assert core_a.lower() != core_b.lower(), f"OPENBLAS_CORETYPE had no effect: both runs on {core_a!r}"
    expected = {f"{name}.{kind}.{path}" for name, (_, exact) in KINDS.items() for kind in exact
                for path in ("runtime", "trainer")}
    assert set(a) == set(b) == expected and set(INPUT_KINDS) >= {k.split(".")[1] for k in expected}
    differ = {key: int((a[key] != b[key]).sum()) for key in sorted(a) if not np.array_equal(a[key], b[key])}
    assert not differ, f"logits that differ between OpenBLAS {core_a} and {core_b}: {differ}"


def test_offset_bias_is_the_exact_product_rounded_once():
    """``offset_bias`` equals the exact sum rounded once, then times alpha, subtracted from b (offsets on
    a grid of 2**-10 within +-4, so the grid of ``sign_grid`` holds them and the rational sum is exact)."""
    from fractions import Fraction

    from fastbin.reference import offset_bias

    rng = np.random.default_rng(3)
    k, n = 300, 7
    offset = (rng.integers(-4096, 4097, k) / 1024 + rng.integers(0, 2, k) * 2.0**-10 / 3).astype(np.float32)
    signs = np.where(rng.random((k, n)) < 0.5, -1.0, 1.0).astype(np.float32)
    alpha = rng.random(n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    got = offset_bias(bias, offset, signs, alpha, np.float32)
    exact = [np.float32(float(sum(Fraction(float(o)) * int(s) for o, s in zip(offset, signs[:, j]))))
             for j in range(n)]
    want = bias - np.asarray(exact, np.float32) * alpha
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert offset_bias(None, None, signs, alpha, np.float32) is None
    np.testing.assert_array_equal(offset_bias(bias, None, signs, None, np.float32), bias)
