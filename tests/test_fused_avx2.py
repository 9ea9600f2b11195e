"""The fused batch-1 pass's AVX2 kernels (``_config.FUSED_BYTE_TABLES``: x86-64 with AVX2 and no
vector popcount): ``sign_product.nibble_block_avx2`` (the uint8 first layer by byte tables of
the row's nibbles) and ``binary_product.count_block_avx2`` (the packed stages by byte tables of
the activation words):

* against the reference over shapes, exact: partial panels and blocks, k across the byte
  sums (``PAIR``/``CHUNK``) and the uint16 runs (``RUN``), the largest sums (every pixel 255,
  every sign -1); in this process (also as plain Python under ``NUMBA_DISABLE_JIT=1``);
* in a child compiled for Zen 3 (AVX2, every AVX-512 feature off, as tests/test_sign_avx2.py):
  the same checks, the assembly (``vpshufb``, ``vpmaddubsw``, no zmm, no ``vpopcnt``), and
  the fused pass on these kernels equal, bit for bit, to the numpy engine's logits and classes
  (tests/test_fused.py's Zen 3 child compares it with the numba engine's stage path).
"""
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba.core.registry import cpu_target

from fastbin import _config, pack_signs, pack_weights
from fastbin import reference as R
from fastbin.kernels.binary_product import count_block_avx2 as counts2
from fastbin.kernels.binary_product.avx2 import tables_of
from fastbin.kernels.sign_product import nibble_block_avx2 as tables2

HERE = os.path.dirname(os.path.abspath(__file__))

needs_avx2 = pytest.mark.skipif(not (_config.INT8_MADD or _config.jit_disabled()),
                                reason="no AVX2 on this CPU (and the JIT is on)")


@numba.njit
def _table_dots_all(row, panels, tabs, dots):
    total = tables2.row_tables(row, tabs)
    for g in range(0, panels.shape[0], tables2.ROWS):
        tables2.table_dots(panels, g, tabs, total, dots)
    return total


@numba.njit
def _xor_dots_all(a, panels, tabs, n_bits, dots):
    tables_of(a.reshape((1, a.shape[0])), 0, 0, panels.shape[1], tabs, 0)
    for g in range(0, panels.shape[0], counts2.ROWS):
        counts2.xor_dots(panels, g, tabs, n_bits, dots)


def check_table_dots(k, n, row, w):
    """``row`` uint8 (k,) @ sign(w) (k, n) by the byte tables against the reference."""
    packed = pack_weights(w)
    panels = tables2.panels_of(packed.bits)
    assert panels.shape == (-(-n // 64) * 2, 8 * packed.bits.shape[1], 64)
    tabs = np.full((panels.shape[1], 64), 99, np.uint8)
    dots = np.full((1, 32 * panels.shape[0]), -7, np.int32)
    total = _table_dots_all(row, panels, tabs, dots)
    assert total == int(row.sum(dtype=np.int64))
    want = R.sign_matmul(row[None], packed)
    np.testing.assert_array_equal(dots[:, :n], want, err_msg=str((k, n)))
    assert (dots[0, n:] == total).all()  # rows past n are zero (all +1)


def check_xor_dots(k, n, a, w):
    """``k - 2 popcount(a ^ w_j)`` by the byte tables against the reference."""
    pa, pw = pack_signs(a[None]), pack_weights(w)
    panels = counts2.panels_of(pw.bits, counts2.ROWS)
    assert panels.shape[0] % counts2.ROWS == 0 and panels.shape[0] * 32 >= n
    tabs = np.full((1, panels.shape[1], 32), 99, np.uint8)
    dots = np.full((1, 32 * panels.shape[0]), -7, np.int32)
    _xor_dots_all(pa.bits[0], panels, tabs, k, dots)
    np.testing.assert_array_equal(dots[:, :n], R.binary_matmul(pa, pw), err_msg=str((k, n)))


#: k: below a step, one word, across PAIR steps, the uint16 RUN (32 steps = 256 inputs) and the
#: byte CHUNK (31 steps); n: partial panels and blocks of ROWS panels
_KS = [1, 7, 63, 64, 65, 200, 257, 784]
_NS = [1, 5, 33, 64, 65, 130]


@needs_avx2
@pytest.mark.parametrize("k", _KS)
def test_table_dots_match_reference(k, rng):
    for n in _NS:
        w = rng.standard_normal((k, n))
        check_table_dots(k, n, rng.integers(0, 256, k, dtype=np.uint8), w)
    # the largest sums: every pixel 255 under every -1 sign (each byte sum reaches 240)
    check_table_dots(k, 3, np.full(k, 255, np.uint8), -np.ones((k, 3)))
    check_table_dots(k, 3, np.full(k, 255, np.uint8), np.ones((k, 3)))


@needs_avx2
@pytest.mark.parametrize("k", _KS + [2100])
def test_xor_dots_match_reference(k, rng):
    for n in _NS if k < 2100 else [129]:
        w = rng.standard_normal((k, n))
        check_xor_dots(k, n, rng.standard_normal(k), w)
        check_xor_dots(k, n, -w[:, 0], w)  # every bit differs from row 0: -k
        check_xor_dots(k, n, w[:, -1], w)  # none from the last row: +k


def test_byte_table_choice_follows_the_cpu():
    """The fused pass takes the byte tables exactly where AVX2 has no vector popcount."""
    from fastbin.runtime import _fused

    assert _config.FUSED_BYTE_TABLES == (_config.BYTE_LUT16 and not _config.VECTOR_POPCOUNT)
    assert _fused._TABLES == _config.FUSED_BYTE_TABLES


@pytest.mark.skipif(not numba.config.DISABLE_JIT, reason="forces the byte-table branch: plain Python only")
def test_byte_table_branch_equals_numpy_engine(monkeypatch, tmp_path, rng):
    """Under ``NUMBA_DISABLE_JIT=1`` the fused pass's byte-table branch (forced on any CPU: a
    plain module global then) runs the kernels' Python twins: logits equal the numpy engine's,
    uint8 and float rows, a sign chain (130 -> 70: a last word of 6 bits) and a tail first."""
    from random_models import randomise

    from fastbin import runtime
    from fastbin.nn.model import mlp, softmax_regression
    from fastbin.runtime import _fused

    monkeypatch.setattr(_fused, "_TABLES", True)
    for i, make in enumerate((lambda: mlp([100, 130, 70, 7], binary_weights=True, binary_activations=True),
                              lambda: softmax_regression(70, 5, binary_weights=True, init="normal"))):
        path = tmp_path / f"m{i}.fbm"
        randomise(make(), rng).save(path)
        fast, ref = runtime.load(path, engine="numba"), runtime.load(path, engine="numpy")
        header = fast.fused.data.view(np.int64)
        assert header[_fused._SC_Q] > header[_fused._SC_EXTRA]  # scratch kept for the byte tables
        for m in (1, 3):
            u8 = rng.integers(0, 256, (m, fast.n_in), dtype=np.uint8)
            for x in (u8, (u8 / 255).astype(np.float32)):
                assert np.array_equal(fast.logits(x), ref.logits(x)), (i, m, x.dtype)


CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_fused_avx2 as T
from random_models import randomise
from fastbin import _config, runtime
from fastbin.nn.model import mlp, softmax_regression
from fastbin.runtime import _fused as F

assert _config.CPU_KIND == "avx2" and not _config.VECTOR_POPCOUNT and _config.FUSED_BYTE_TABLES, _config.CPU_KIND
rng = np.random.default_rng(7)
for k in T._KS:
    for n in T._NS:
        w = rng.standard_normal((k, n))
        T.check_table_dots(k, n, rng.integers(0, 256, k, dtype=np.uint8), w)
        T.check_xor_dots(k, n, rng.standard_normal(k), w)
    T.check_table_dots(k, 3, np.full(k, 255, np.uint8), -np.ones((k, 3)))
    T.check_xor_dots(k, 3, -np.ones(k), np.ones((k, 3)))
found = {}
for d in (T._table_dots_all, T._xor_dots_all):
    asm = d.inspect_asm(d.signatures[0])
    found[d.py_func.__name__] = {op: asm.count(op) for op in ("vpshufb", "vpmaddubsw", "vpopcnt", "zmm", "ymm",
                                                              "vgf2p8")}
runs = 0
for i, make in enumerate((lambda: mlp([784, 512, 512, 10], binary_weights=True, binary_activations=True),
                          lambda: mlp([100, 65, 33, 7], binary_weights=True, binary_activations=True, scale=True),
                          lambda: mlp([200, 300, 7], binary_weights=True, binary_activations=True, dtype="float64"),
                          lambda: softmax_regression(100, 7, binary_weights=True, init="normal"))):
    path = f"{sys.argv[2]}/m{i}.fbm"
    randomise(make(), rng).save(path)
    fast, ref = runtime.load(path, engine="numba"), runtime.load(path, engine="numpy")
    for m in (1, 3):
        u8 = rng.integers(0, 256, (m, fast.n_in), dtype=np.uint8)
        u8[0] = 255
        for x in (u8, (u8 / 255).astype(fast.dtype)):
            before = fast.fused.calls
            logits = fast.logits(x)
            assert fast.fused.calls == before + 1
            assert np.array_equal(logits, ref.logits(x)), (i, m, x.dtype)
            assert np.array_equal(fast.predict(x), ref.predict(x)), (i, m, x.dtype)
            if x.dtype == np.float32 and i < 2:  # the float32 sign stage's product: the word-form lookups
                assert fast.fused.local.hows[m][1] == F._DWORDS, (i, m)
            runs += 1
print(json.dumps({"asm": found, "runs": runs}))
"""


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiles for another CPU: needs the JIT")
def test_byte_tables_compiled_for_zen3(tmp_path):
    from test_sign_avx2 import avx2_features

    triple, _cpu, features = cpu_target.target_context.codegen().magic_tuple()
    if not triple.startswith("x86_64") or "+avx2" not in features.split(","):
        pytest.skip("not an x86-64 CPU with AVX2")
    env = {**os.environ, "NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": avx2_features(features)}
    env.pop("NUMBA_DISABLE_JIT", None)
    done = subprocess.run([sys.executable, "-c", CHILD, HERE, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["runs"] == 4 * 2 * 2
    counts = found["asm"]["_table_dots_all"]
    assert counts["vpshufb"] >= 4 * tables2.ROWS and counts["vpmaddubsw"] >= 2 * tables2.ROWS, counts
    counts = found["asm"]["_xor_dots_all"]
    assert counts["vpshufb"] >= 2 * counts2.ROWS, counts
    for counts in found["asm"].values():
        assert counts["ymm"] > 0 and counts["zmm"] == 0 and counts["vpopcnt"] == 0 and counts["vgf2p8"] == 0, counts
