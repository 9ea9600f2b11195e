"""The AVX-512 kernels of ``sign_matmul`` on the packed bits themselves: the uint8 byte dot
products (``fastbin.kernels.sign_product.avx512_vnni``, VNNI ``vpdpbusd`` on ``vpmovm2b``
masks) and the few-row float32 lookups indexed by the packed words (``avx512_dwords``), over
the shape grid against the reference (exact int32 for uint8 at the extremes: all-255 rows
against all -1 weights; float32 within tests/tolerance.py), across the output panels, the
row blocks and their leftovers, the padding refusal, ``sign_matmul``'s choice of them; the
shared lane-sum tree (``intrinsics.tree_sum``) on its own; and their machine code."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from planning import use_cpu
from shapes import KS, MS, NS, assert_uint8_sign_matmul_exact, skip_big_without_jit
from tolerance import assert_close

import fastbin
from fastbin import _config
from fastbin import reference as R
from fastbin.kernels.sign_product import plan
from fastbin.kernels.sign_product.avx512_dwords import panel_form, sign_matmul_lut_dwords
from fastbin.kernels.sign_product.avx512_vnni import COLS1, ROWS, sign_matmul_dot, sign_matmul_dot_parallel

JIT_OFF = _config.jit_disabled()
needs_dot = pytest.mark.skipif(not (_config.INT8_DOT or JIT_OFF),
                               reason="needs AVX-512 VNNI (INT8_DOT); a plain-Python twin without JIT")
needs_avx512 = pytest.mark.skipif(not (_config.FLOAT_LUT or JIT_OFF),
                                  reason="needs AVX-512F (FLOAT_LUT); a plain-Python twin without JIT")
DOT_KERNELS = [sign_matmul_dot, sign_matmul_dot_parallel]


def _weights(rng, k, n):
    w = rng.standard_normal((k, n)).astype(np.float32)
    w[:, 0] = -1.0  # output 0 sums -x
    if n > 1:
        w[:, -1] = 1.0  # the last output sums +x
    return w


# ---------------------------------------------------------------------------
# uint8 rows: byte dot products
# ---------------------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("kernel", DOT_KERNELS)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", MS + [4, 5, 8])
@pytest.mark.parametrize("n", NS + [16, 17, 65])
def test_dot_kernel_is_exact(kernel, m, k, n, rng):
    skip_big_without_jit(m * k * n)
    x = rng.integers(0, 256, (m, 2 * k), dtype=np.uint8)[:, ::2]  # strided: copied in the kernel
    x[0] = 255
    w = fastbin.pack_weights(_weights(rng, k, n))
    out = np.full((m, n), 7, np.int32)
    assert kernel(x, w.bits, out, 1 << 19)
    want = R.sign_matmul(x, w)
    np.testing.assert_array_equal(out, want)
    assert out[0, 0] == -255 * k


@needs_dot
@pytest.mark.parametrize("kernel", DOT_KERNELS)
def test_dot_kernel_panels_and_leftover_rows(kernel, rng):
    """Panels of outputs smaller than n (a panel of COLS1 outputs at 1 byte), ROWS-row
    blocks and the 1-row leftovers, a long k across several words and a tail."""
    m, k, n = 2 * ROWS + 3, 700, 3 * COLS1 + 5
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    w = fastbin.pack_weights(_weights(rng, k, n))
    want = R.sign_matmul(x, w)
    for panel_bytes in (1, 8 * w.n_words * COLS1 * 2, 1 << 20):
        out = np.zeros((m, n), np.int32)
        assert kernel(x, w.bits, out, panel_bytes)
        np.testing.assert_array_equal(out, want)


@needs_dot
@pytest.mark.parametrize("kernel", DOT_KERNELS)
def test_dot_kernel_refuses_padding_bits(kernel, rng):
    x = rng.integers(0, 256, (5, 70), dtype=np.uint8)
    w = fastbin.pack_weights(_weights(rng, 70, 9))
    bad = w.bits.copy()
    bad[-1, -1] |= np.uint64(1) << np.uint64(63)
    out = np.full((5, 9), 7, np.int32)
    assert not kernel(x, bad, out, 1 << 19)
    assert (out == 7).all()


@needs_dot
def test_sign_matmul_takes_the_dot_kernel(rng, monkeypatch):
    use_cpu(monkeypatch, "avx512", INT8_DOT=True)
    assert plan(1, 784, 10, np.dtype(np.uint8), threads=False).name == "uint8_planes"  # one row: the planes
    for m, k, n in [(2, 784, 10), (16, 784, 10), (33, 1000, 65)]:
        assert plan(m, k, n, np.dtype(np.uint8), threads=False).name == "uint8_dot"
        assert_uint8_sign_matmul_exact(rng, m, k, n)


# ---------------------------------------------------------------------------
# float32 rows: lookups indexed by the packed words
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", KS + [4096])
@pytest.mark.parametrize("n", NS + [64, 65, 130])
def test_panel_form_is_the_words_by_8_rows(k, n, rng):
    w = fastbin.pack_weights(rng.standard_normal((k, n)).astype(np.float32))
    n_pad = -(-n // 64) * 64
    panels = panel_form(w.bits, n_pad)
    padded = np.zeros((n_pad, w.n_words), np.uint64)
    padded[:n] = w.bits
    want = padded.reshape(n_pad // 8, 8, w.n_words).transpose(0, 2, 1).reshape(-1, 8)
    np.testing.assert_array_equal(panels, want)


@needs_avx512
@pytest.mark.parametrize("k", KS + [4096])
@pytest.mark.parametrize("m", [1, 2, 3, 8])
@pytest.mark.parametrize("n", NS + [16, 17, 64, 65, 130])
def test_dwords_kernel_matches_reference(m, k, n, rng):
    skip_big_without_jit(m * k * n if not JIT_OFF else 20 * m * k * n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = 0
    w = fastbin.pack_weights(_weights(rng, k, n))
    out = np.full((m, n), 7, np.float32)
    assert sign_matmul_lut_dwords(x, w.bits, out)
    want = R.sign_matmul(x, w)
    assert_close(out, want, scale=max(1.0, float(np.abs(x.astype(np.float64)).sum(axis=1).max())))


@needs_avx512
def test_dwords_kernel_sums_signed_terms():
    """Each output is a sum of the ``±x`` (the tables' sums, no ``sum(x) - 2 * sum(x where
    bit)``): a huge input cancelled by its negation in the same group leaves the small ones."""
    k, n = 200, 70
    x = np.zeros((1, k), np.float32)
    x[0, 4], x[0, 5] = 3e7, 3e7
    x[0, 7], x[0, 9] = 1.0, 2.0
    w = np.ones((k, n), np.float32)
    w[5] = -1.0  # +x4 - x5 = 0 exactly
    out = np.zeros((1, n), np.float32)
    assert sign_matmul_lut_dwords(x, fastbin.pack_weights(w).bits, out)
    np.testing.assert_array_equal(out, np.full((1, n), 3.0, np.float32))


@needs_avx512
def test_dwords_kernel_refuses_padding_bits(rng):
    x = rng.standard_normal((3, 70)).astype(np.float32)
    bad = fastbin.pack_weights(_weights(rng, 70, 9)).bits.copy()
    bad[-1, -1] |= np.uint64(1) << np.uint64(63)
    out = np.full((3, 9), 7, np.float32)
    assert not sign_matmul_lut_dwords(x, bad, out)
    assert (out == 7).all()


@needs_avx512
def test_sign_matmul_takes_the_dwords_kernel(rng, monkeypatch):
    use_cpu(monkeypatch, "avx512")
    f32 = np.dtype(np.float32)
    assert plan(1, 784, 10, f32, threads=False).name == "bits"  # below lut_dwords_min_cols
    for m, k, n in [(1, 784, 64), (1, 784, 512), (7, 300, 65)]:
        assert plan(m, k, n, f32, threads=False).name == "lut_dwords"
        x = rng.standard_normal((m, 2 * k)).astype(np.float32)[:, ::2]  # strided: ops copies it
        w = fastbin.pack_weights(_weights(rng, k, n))
        got = fastbin.sign_matmul(x, w, threads=False)
        assert_close(got, R.sign_matmul(x, w), scale=max(1.0, float(np.abs(x).sum(axis=1).max())))


# ---------------------------------------------------------------------------
# The lane-sum tree and the machine code
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("lanes", [16, 64])
@pytest.mark.parametrize("count", [1, 2, 4, 8, 16])
def test_tree_sum_puts_each_vectors_total_in_its_lane(lanes, count, rng):
    """``tree_sum`` on arrays standing in for LLVM vectors (its shuffles index the
    concatenation of two vectors, as LLVM's do)."""
    from types import SimpleNamespace

    from fastbin.kernels import intrinsics

    class Vec(np.ndarray):
        @property
        def type(self):
            return SimpleNamespace(count=len(self))

    class Builder:
        def shuffle_vector(self, a, b, mask):
            lanes = [getattr(v, "constant", v) for v in mask.constant]  # ir.Constant elements
            return np.concatenate([a, b])[np.asarray(lanes, np.intp)].view(Vec)

    vectors = [rng.integers(-1000, 1000, lanes).view(Vec) for _ in range(count)]
    got = intrinsics.tree_sum(Builder(), vectors, lambda b, u, v: (u + v).view(Vec))
    assert list(got) == [int(v.sum()) for v in vectors]
    for bad in (3, 2 * lanes):  # not a power of two; more vectors than lanes
        with pytest.raises(ValueError):
            intrinsics.tree_sum(Builder(), (vectors * bad)[:bad], lambda b, u, v: u + v)


ASM = r"""
import json
import numpy as np
from fastbin.kernels.sign_product import avx512_dwords, avx512_vnni
w = np.zeros((3, 13), np.uint64)
avx512_vnni.sign_matmul_dot(np.zeros((5, 784), np.uint8), w, np.zeros((5, 3), np.int32), 1 << 19)
avx512_dwords.sign_matmul_lut_dwords(np.zeros((5, 784), np.float32), w, np.zeros((5, 3), np.float32))
found = {}
for name, d in [("dot", avx512_vnni.sign_matmul_dot), ("dwords", avx512_dwords.sign_matmul_lut_dwords)]:
    asm = d.inspect_asm(d.signatures[0])
    found[name] = {op: asm.count(op) for op in ["vpdpbusd", "vpmovm2b", "zmm", "vpermps", "vpermd", "vpermt2d",
                                                "vpermi2d", "vpsrld"]}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def asm_counts():
    env = {**os.environ, "FASTBIN_NO_CACHE": "1"}
    done = subprocess.run([sys.executable, "-c", ASM], env=env, capture_output=True, text=True, timeout=600,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(JIT_OFF or not _config.INT8_DOT, reason="machine code of the VNNI kernel (AVX-512 VNNI)")
def test_dot_kernel_is_byte_dot_products_on_masks(asm_counts):
    counts = asm_counts["dot"]
    assert counts["vpdpbusd"] >= ROWS * 4 and counts["vpmovm2b"] > 0 and counts["zmm"] > 0, counts


@pytest.mark.skipif(JIT_OFF or not _config.FLOAT_LUT, reason="machine code of the AVX-512 kernel")
def test_dwords_kernel_permutes_by_shifted_words(asm_counts):
    """16 lookups a word per vector of outputs (``vpermps``, or its integer twin ``vpermd``),
    the index lanes shifted in place (``vpsrld``), the halves by two-source shuffles."""
    counts = asm_counts["dwords"]
    assert counts["vpermps"] + counts["vpermd"] >= 16 and counts["vpsrld"] > 0, counts
    assert counts["vpermt2d"] + counts["vpermi2d"] > 0 and counts["zmm"] > 0, counts
