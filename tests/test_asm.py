"""The hot loops vectorise, checked in the generated assembly for the x86
vector ISA this CPU has: with AVX-512 VPOPCNTDQ the popcount loops use
``vpopcntq`` on zmm registers; with AVX2 only, LLVM lowers the same vector
``ctpop`` to the nibble-table ``vpshufb`` + ``vpsadbw`` sequence on ymm
registers (a scalar loop would show neither). Other CPUs skip."""
import json
import os
import subprocess
import sys

import numba
import pytest
from numba.core.registry import cpu_target

FEATURES = cpu_target.target_context.codegen().magic_tuple()[2]

_FLAGS = set(FEATURES.split(","))
if "+avx512vpopcntdq" in _FLAGS and "+avx512f" in _FLAGS:
    ISA = {"popcount": "vpopcntq", "vector": "zmm"}
elif "+avx2" in _FLAGS:
    ISA = {"popcount": "vpshufb", "vector": "ymm"}
else:
    ISA = None

pytestmark = [
    pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no machine code under NUMBA_DISABLE_JIT=1"),
    pytest.mark.skipif(ISA is None, reason="neither AVX-512 VPOPCNTDQ nor AVX2: no x86 vector popcount to look for"),
]

# Compiled in a fresh process without the on-disk cache: Numba cannot show the
# assembly of a function it loaded from the cache.
SCRIPT = r"""
import json
import numpy as np
from fastbin import kernels as K
from fastbin.kernels.binary_product import blocked
from fastbin.kernels.sign_product import avx2, avx2_lut

a = np.zeros((5, 13), np.uint64)
w = np.zeros((3, 13), np.uint64)
x8 = np.zeros((2, 784), np.uint8)
x32 = np.zeros((5, 784), np.float32)
K.binary_matmul_kernel(a, w, 784, np.zeros((5, 3), np.int32))
blocked.binary_matmul_rows(a, w, 784, np.zeros((5, 3), np.int32))
K.binary_matmul_rows = blocked.binary_matmul_rows
K.binary_dense_sign_kernel(a, w, 784, np.zeros(3, np.int64), np.zeros(3, np.bool_), np.zeros((5, 1), np.uint64))
K.sign_matmul_uint8(x8, w, np.zeros((2, 3), np.int32))
K.sign_matmul_float(x32, w, np.zeros((5, 3), np.float32))
K.pack_rows(x32, np.zeros((5, 13), np.uint64))
avx2.sign_matmul_madd(x8, w, np.zeros((2, 3), np.int32), 4096)
K.sign_matmul_madd = avx2.sign_matmul_madd
avx2_lut.sign_matmul_lut3(x32, w, np.zeros((5, 3), np.float32), 1 << 20)
K.sign_matmul_lut3 = avx2_lut.sign_matmul_lut3
found = {}
for name in ["binary_matmul_kernel", "binary_matmul_rows", "binary_dense_sign_kernel", "sign_matmul_uint8",
             "sign_matmul_float", "pack_rows", "sign_matmul_madd", "sign_matmul_lut3"]:
    d = getattr(K, name)
    asm = d.inspect_asm(d.signatures[0])
    found[name] = {op: asm.count(op) for op in ["vpopcntq", "vpshufb", "zmm", "ymm", "vfmadd", "vpmaddubsw",
                                                "vpmaddwd", "vpermps", "vpermd"]}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def asm_counts():
    env = {**os.environ, "FASTBIN_NO_CACHE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kernel", ["binary_matmul_kernel", "binary_matmul_rows", "binary_dense_sign_kernel",
                                    "sign_matmul_uint8"])
def test_popcount_loops_are_vector_popcounts(asm_counts, kernel):
    counts = asm_counts[kernel]
    assert counts[ISA["popcount"]] > 0 and counts[ISA["vector"]] > 0, counts


def test_float_sign_matmul_uses_vector_fma(asm_counts):
    counts = asm_counts["sign_matmul_float"]
    assert counts["vfmadd"] > 0 and counts[ISA["vector"]] > 0, counts


def test_pack_rows_is_vectorised(asm_counts):
    assert asm_counts["pack_rows"][ISA["vector"]] > 0, asm_counts["pack_rows"]


def test_uint8_madd_uses_byte_multiply_adds(asm_counts):
    """The AVX2 uint8 kernel (``sign_product.avx2``): ``vpmaddubsw`` on ymm (every CPU this
    module runs on has AVX2; the widening ``vpmaddwd`` by ones LLVM may lower otherwise,
    as it does on Zen 5)."""
    counts = asm_counts["sign_matmul_madd"]
    assert counts["vpmaddubsw"] > 0 and counts["ymm"] > 0, counts


def test_float_lut3_uses_ymm_permutes(asm_counts):
    """The AVX2 float32 tables (``sign_product.avx2_lut``): ``vpermps`` on ymm (or its
    integer twin ``vpermd``, the same lanes, which LLVM picks for Zen 5)."""
    counts = asm_counts["sign_matmul_lut3"]
    assert counts["vpermps"] + counts["vpermd"] > 0 and counts["ymm"] > 0, counts
