"""The AArch64 machine code of the NEON paths (``tests/test_asm.py`` does this for x86): run
under ``make test-arm64`` (QEMU user mode), skipped elsewhere. Numba compiles only for the host
triple, so the check runs in the emulated process itself: each function is compiled afresh
(no cache: Numba cannot show the assembly of cached code) from its Python source with
fastbin's options, for the CPU Numba targets there (``NUMBA_CPU_NAME`` if set)."""
import platform
import re

import numba
import numpy as np
import pytest

from fastbin._config import JIT_OPTIONS
from fastbin.kernels.binary_product.rows4 import xor_counts1, xor_counts4
from fastbin.kernels.sign_product.uint8_masks import _uint8_mask_rows

pytestmark = [
    pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no machine code under NUMBA_DISABLE_JIT=1"),
    pytest.mark.skipif(platform.machine() not in ("aarch64", "arm64"), reason="AArch64 code only (make test-arm64)"),
]


def _asm(kernel, *args):
    fresh = numba.njit(**{**JIT_OPTIONS, "cache": False})(kernel.py_func)
    fresh(*args)
    return fresh.inspect_asm(fresh.signatures[0])


@pytest.mark.parametrize("kernel", [xor_counts4, xor_counts1])
def test_rows4_counts_bytes_in_neon_lanes(kernel):
    """16-byte chunks: ``cnt`` on 16 bytes, added into byte lanes (``add .16b``), each lane
    reduced once (``uaddlv``, or ``uaddlp`` + ``addv``); 4 rows of ``w`` share each load of
    ``a`` (4 ``eor`` per chunk)."""
    a = np.zeros((1, 13), np.uint64)
    w = np.zeros((4, 13), np.uint64)
    asm = _asm(kernel, a, 0, w, 0)
    assert re.search(r"\bcnt\s+v\d+\.16b", asm), "no vector byte popcount"
    assert re.search(r"\badd\s+v\d+\.16b", asm), "no byte-lane accumulation"
    # the reduction of a byte lane: uaddlv, or uaddlp to halfwords then addv (LLVM 22)
    assert re.search(r"\b(uaddlv\s+h\d+|uaddlp\s+v\d+\.8h),\s*v\d+\.16b", asm), "no byte-lane reduction"
    eors = len(re.findall(r"\beor\s+v\d+\.16b", asm))
    assert eors >= (4 if kernel is xor_counts4 else 1), eors


def test_uint8_masks_accumulate_pairwise_in_uint16_lanes():
    """uint8 rows on byte masks: ``and`` then ``uadalp`` (16 bytes pairwise into 8 uint16
    lanes), 2 rows of ``x`` by 4 rows of masks (8 ``and`` per chunk)."""
    x = np.zeros((2, 784), np.uint8)
    masks = np.zeros((4, 784), np.uint8)
    asm = _asm(_uint8_mask_rows, x, masks, np.zeros((2, 4), np.int32))
    assert re.search(r"\buadalp\s+v\d+\.8h,\s*v\d+\.16b", asm), "no pairwise accumulation"
    ands = len(re.findall(r"\band\s+v\d+\.16b", asm))
    assert ands >= 8, ands
