"""The AVX2 kernels (``fastbin.kernels.sign_product.avx2``, ``binary_product``'s byte-popcount
lanes), beyond tests/test_planner.py's forced-path grid:

* the uint8 product across the int16 flush (``FLUSH`` steps of 32 inputs) at the largest
  sums, both signs, exact (also as plain Python under NUMBA_DISABLE_JIT=1);
* the ±1 int8 unpacking against the bits;
* in a child process compiled for Zen 3 with every AVX-512 feature off
  (``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES``), the paths an AVX2-only CPU plans, forced and
  through the public functions, against the reference, exact: so that CI on an AVX-512
  host runs the AVX2 code path it would not pick.
"""
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba.core.registry import cpu_target

import fastbin
from fastbin import _config
from fastbin import reference as R
from fastbin.kernels.sign_product import avx2

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.skipif(not (_config.INT8_MADD or _config.jit_disabled()),
                                reason="no AVX2 on this CPU (and the JIT is on)")


@pytest.mark.parametrize("sign", [1.0, -1.0, 0.0])
@pytest.mark.parametrize("threaded", [False, True])
def test_uint8_madd_is_exact_across_the_int16_flush(sign, threaded, rng):
    """k past ``FLUSH * STEP`` (two int16 runs and a partial step) with every byte 255 and
    all signs equal: each int16 lane reaches +-64 * 510 before it is widened."""
    k = avx2.FLUSH * avx2.STEP + 37
    m, n = 3, 5
    x = np.full((m, k), 255, np.uint8)
    x[2] = rng.integers(0, 256, k)
    w = np.full((k, n), sign, np.float32) if sign else rng.standard_normal((k, n)).astype(np.float32)
    packed = fastbin.pack_weights(w)
    out = np.full((m, n), 7, np.int32)
    kernel = avx2.sign_matmul_madd_parallel if threaded else avx2.sign_matmul_madd
    assert kernel(x, packed.bits, out, 4096)
    want = R.sign_matmul(x, packed)
    np.testing.assert_array_equal(out, want)
    if sign:
        assert (out[:2] == int(sign) * 255 * k).all()  # the largest sums, each way


def test_signs_into_matches_unpacked_bits(rng):
    k, n = 200, 7
    packed = fastbin.pack_weights(rng.standard_normal((k, n)))
    ws = avx2._signs(packed.bits, k)  # signs_into, rows padded to COLS, inputs to STEP
    assert ws.shape == (-(-n // avx2.COLS) * avx2.COLS, -(-k // avx2.STEP) * avx2.STEP)
    assert (ws[n:] == 0).all()
    ws = ws[:n]
    # bit t % 64 of word t // 64 of row j; 1 means -1
    signs = np.where(packed.bits[:, :, None] >> np.arange(64, dtype=np.uint64) & np.uint64(1), -1, 1).reshape(n, -1)
    np.testing.assert_array_equal(ws[:, :k], signs[:, :k])
    assert (ws[:, k:] == 1).all()  # padding bits are 0: +1, met by zero inputs


CHILD = r"""
import json, sys
import numpy as np
import fastbin
from fastbin import _config
from fastbin import reference as R
from fastbin.kernels import sign_product

sys.path.insert(0, sys.argv[2])
from tolerance import assert_close

assert _config.CPU_KIND == "avx2" and not _config.FLOAT_LUT and not _config.VECTOR_POPCOUNT, _config.CPU_KIND
assert _config.INT8_MADD and _config.FLOAT_LUT8
rng = np.random.default_rng(5)
checked = []
for m, k, n in [(1, 63, 1), (3, 64, 10), (16, 784, 65), (5, 2100, 9), (17, 130, 300), (1, 300, 260)]:
    w = rng.standard_normal((k, n)).astype(np.float32)
    w[:, 0] = -1.0
    packed = fastbin.pack_weights(w)
    for dtype in (np.uint8, np.float32):
        if dtype == np.uint8:
            x = rng.integers(0, 256, (m, 2 * k), dtype=np.uint8)[:, ::2]
            x[0] = 255
        else:
            x = rng.standard_normal((m, k)).astype(np.float32)
        want = R.sign_matmul(x, packed)
        scale = max(1.0, float(np.abs(x.astype(np.float64)).sum(axis=1).max()))

        def check(got, what):
            if dtype == np.uint8:
                assert got.dtype == np.int32 and np.array_equal(got, want), what
            else:
                assert_close(got, want, scale=scale, err_msg=str(what))

        for name in sys.argv[1].split(","):
            if (sign_product.PATHS[name] == "u") != (dtype == np.uint8):
                continue
            out = np.full((m, n), 7, want.dtype)
            assert sign_product.plan(m, k, n, x.dtype, force=name)(np.ascontiguousarray(x), packed.bits, out)
            check(out, (name, m, k, n))
            checked.append(name)
        public = sign_product.plan(m, k, n, x.dtype, threads=False).name
        check(fastbin.sign_matmul(x, packed, threads=False), (public, m, k, n))
        checked.append(public)
    a = fastbin.pack_signs(rng.standard_normal((m, k)))
    assert np.array_equal(fastbin.binary_matmul(a, packed, threads=False), R.binary_matmul(a, packed))
    checked.append("binary_matmul")
print(json.dumps(sorted(set(checked))))
"""


def avx2_features(features):
    """The LLVM feature string ``features`` with every AVX-512 (and AVX10) feature off."""
    out = []
    for flag in features.split(","):
        if flag.startswith("+") and any(part in flag for part in ("avx512", "avx10", "evex512")):
            flag = "-" + flag[1:]
        out.append(flag)
    return ",".join(out)


def test_avx2_features_turns_avx512_off():
    assert avx2_features("+avx2,+avx512f,+avx512bw,-avx512fp16,+fma") == "+avx2,-avx512f,-avx512bw,-avx512fp16,+fma"


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiles for another CPU: needs the JIT")
def test_avx2_paths_compiled_for_zen3():
    triple, _cpu, features = cpu_target.target_context.codegen().magic_tuple()
    if not triple.startswith("x86_64") or "+avx2" not in features.split(","):
        pytest.skip("not an x86-64 CPU with AVX2")
    env = {**os.environ, "NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": avx2_features(features)}
    env.pop("NUMBA_DISABLE_JIT", None)
    paths = [*avx2_need(), "bytes"]
    done = subprocess.run([sys.executable, "-c", CHILD, ",".join(paths), str(HERE)], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    checked = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(paths) <= set(checked)
    assert {"uint8_madd", "lut3", "bytes"} <= set(checked)  # the public function planned them


def avx2_need():
    """The ``sign_matmul`` paths that need AVX2 (the multiply-adds, the 8-entry tables)."""
    from fastbin.kernels import sign_product

    return {name: need for name, need in sign_product.NEEDS.items() if need in ("INT8_MADD", "FLOAT_LUT8")}
