"""The AVX2 kernels (``fastbin.kernels.sign_product.avx2``, ``binary_product.avx2`` and the
byte-popcount lanes), beyond tests/test_planner.py's forced-path grid:

* the uint8 product across the int16 flush (``FLUSH`` steps of 32 inputs) at the largest
  sums, both signs, exact (also as plain Python under NUMBA_DISABLE_JIT=1);
* the ±1 int8 unpacking against the bits;
* the binary nibble-table product (``binary_product.avx2``) over a shape grid of its own
  (either operand the panel side, partial panels and register blocks, k across the byte
  flush and several passes, the largest counts), exact, padding bits refused;
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
from fastbin.kernels.binary_product import avx2 as binary_avx2
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


#: (m, k, n): one row short of a panel pair and past it; either side the panel side (narrow w);
#: k below a word, across the byte flush (31 bytes), a pass (PASS_STEPS bytes) and several
_NIBBLE_GRID = [(m, k, n) for m in (1, 2, 5, 9, 16, 33) for n in (1, 7, 31, 65) for k in (1, 63, 64, 65, 250, 784)]
_NIBBLE_BIG = [(70, 8 * 8 * binary_avx2.PASS_STEPS + 37, 45), (130, 300, 17), (20, 2100, 300),
               (1100, 2100, 40), (20, 2100, 1100)]  # the last two: two blocks of panels


@pytest.mark.parametrize("threaded", [False, True])
def test_binary_nibbles_match_reference(threaded, rng):
    kernel = binary_avx2.binary_matmul_nibbles_parallel if threaded else binary_avx2.binary_matmul_nibbles
    grid = _NIBBLE_GRID + ([] if numba.config.DISABLE_JIT else _NIBBLE_BIG)
    for m, k, n in grid:
        a = fastbin.pack_signs(rng.standard_normal((m, k)))
        w = fastbin.pack_weights(rng.standard_normal((k, n)))
        out = np.full((m, n), 7, np.int32)
        assert kernel(a.bits, w.bits, k, out)
        np.testing.assert_array_equal(out, R.binary_matmul(a, w), err_msg=str((m, k, n)))


@pytest.mark.parametrize("m, k, n", [(3, 1000, 40), (40, 1000, 3), (33, 65, 33)])
def test_binary_nibbles_largest_counts_and_padding(m, k, n, rng):
    """Every bit differs (each byte lane gains 8 per step, up to the flush), or none; a set
    padding bit: False and nothing written."""
    w_signs = np.where(rng.random((k, n)) < 0.5, -1.0, 1.0)
    w = fastbin.pack_weights(w_signs)
    out = np.empty((m, n), np.int32)
    for sign in (-1.0, 1.0):
        a = fastbin.pack_signs(sign * np.repeat(w_signs[:, :1].T, m, axis=0))
        assert binary_avx2.binary_matmul_nibbles(a.bits, w.bits, k, out)
        want = R.binary_matmul(a, w)
        assert (want[:, 0] == int(sign) * k).all()
        np.testing.assert_array_equal(out, want)
    if k % 64:
        bad = w.bits.copy()
        bad[-1, -1] |= np.uint64(1) << np.uint64(63)
        out[...] = 7
        assert not binary_avx2.binary_matmul_nibbles(a.bits, bad, k, out)
        assert not binary_avx2.binary_matmul_nibbles_parallel(a.bits, bad, k, out)
        bad_a = a.bits.copy()
        bad_a[0, -1] |= np.uint64(1) << np.uint64(63)
        assert not binary_avx2.binary_matmul_nibbles(bad_a, w.bits, k, out)
        assert (out == 7).all()


CHILD = r"""
import json, sys
import numpy as np
import fastbin
from fastbin import _config
from fastbin import reference as R
from fastbin.kernels import binary_product, sign_product

sys.path.insert(0, sys.argv[2])
from tolerance import assert_close

assert _config.CPU_KIND == "avx2" and not _config.FLOAT_LUT and not _config.VECTOR_POPCOUNT, _config.CPU_KIND
assert _config.INT8_MADD and _config.FLOAT_LUT8
rng = np.random.default_rng(5)
checked = []
for m, k, n in [(1, 63, 1), (3, 64, 10), (16, 784, 65), (5, 2100, 9), (17, 130, 300), (1, 300, 260),
                (40, 1100, 17)]:
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
    want = R.binary_matmul(a, packed)
    assert np.array_equal(fastbin.binary_matmul(a, packed, threads=False), want)
    checked.append("binary:" + binary_product.plan(m, n, a.n_words, threads=False).name)
    for name in binary_product.NEEDS:
        for left, right, expect in ((a, packed, want), (packed, a, want.T)):
            out = np.full(expect.shape, 7, np.int32)
            assert binary_product.plan(m, n, a.n_words, force=name)(left.bits, right.bits, k, out)
            assert np.array_equal(out, expect), (name, m, k, n)
        checked.append("binary:" + name)
print(json.dumps(sorted(set(checked))))
"""


#: features a Zen 3 lacks that LLVM would use in AVX2 code: AVX-512 (and AVX10), GFNI (it
#: shifts bytes with ``vgf2p8affineqb``), AVX-VNNI
NOT_ZEN3 = ("avx512", "avx10", "evex512", "gfni", "avxvnni")


def avx2_features(features):
    """The LLVM feature string ``features`` with every feature a Zen 3 lacks off (``NOT_ZEN3``)."""
    out = []
    for flag in features.split(","):
        if flag.startswith("+") and any(part in flag for part in NOT_ZEN3):
            flag = "-" + flag[1:]
        out.append(flag)
    return ",".join(out)


def test_avx2_features_turns_avx512_off():
    assert avx2_features("+avx2,+avx512f,+avx512bw,-avx512fp16,+fma") == "+avx2,-avx512f,-avx512bw,-avx512fp16,+fma"
    assert avx2_features("+gfni,+avxvnni,+vaes") == "-gfni,-avxvnni,+vaes"


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
    assert {"uint8_madd", "lut3", "dwords"} <= set(checked)  # the public function planned them
    assert {"binary:nibbles", "binary:nibbles_parallel"} <= set(checked)  # forced
    assert "binary:nibbles" in checked  # and planned (16 x 784 x 65, 17 x 130 x 300)


def avx2_need():
    """The ``sign_matmul`` paths that need AVX2 (the multiply-adds, the 8-entry tables)."""
    from fastbin.kernels import sign_product

    return {name: need for name, need in sign_product.NEEDS.items()
            if need in ("INT8_MADD", "FLOAT_LUT8") and name in sign_product.PATHS}


ASM_CHILD = r"""
import json
import numpy as np
from fastbin.kernels.binary_product import avx2

from fastbin.kernels.sign_product import avx2_dwords

a = np.zeros((40, 13), np.uint64)
w = np.zeros((20, 13), np.uint64)
avx2.binary_matmul_nibbles(a, w, 784, np.zeros((40, 20), np.int32))
avx2_dwords.sign_matmul_dwords(np.zeros((5, 784), np.float32), w, np.zeros((5, 20), np.float32))
found = {}
for d in (avx2.binary_matmul_nibbles, avx2_dwords.sign_matmul_dwords):
    asm = d.inspect_asm(d.signatures[0])
    found[d.py_func.__name__] = {op: asm.count(op) for op in ["vpshufb", "vpopcnt", "zmm", "ymm", "vpunpcklbw",
                                                      "vbroadcasti128", "vpermps", "vpermd", "vgf2p8"]}
print(json.dumps(found))
"""


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiles for another CPU: needs the JIT")
def test_avx2_lookups_asm_for_zen3():
    """Compiled for Zen 3 (AVX2, no AVX-512): the binary nibble tables by ``vpshufb`` on
    ymm, loaded by ``vbroadcasti128``, the transpose by byte unpacks, no zmm and no vector
    popcount; the float32 word-indexed tables by ``vpermps`` on ymm."""
    triple, _cpu, features = cpu_target.target_context.codegen().magic_tuple()
    if not triple.startswith("x86_64") or "+avx2" not in features.split(","):
        pytest.skip("not an x86-64 CPU with AVX2")
    env = {**os.environ, "NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": avx2_features(features),
           "FASTBIN_NO_CACHE": "1"}
    env.pop("NUMBA_DISABLE_JIT", None)
    done = subprocess.run([sys.executable, "-c", ASM_CHILD], env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    counts = found["binary_matmul_nibbles"]
    assert counts["vpshufb"] >= 2 * binary_avx2.ROWS * binary_avx2.COLS and counts["ymm"] > 0, counts
    assert counts["vpunpcklbw"] > 0 and counts["vbroadcasti128"] > 0, counts
    assert counts["zmm"] == 0 and counts["vpopcnt"] == 0 and counts["vgf2p8"] == 0, counts
    counts = found["sign_matmul_dwords"]  # the float32 tables indexed by W's words
    assert counts["vpermps"] + counts["vpermd"] > 0 and counts["ymm"] > 0 and counts["zmm"] == 0, counts
