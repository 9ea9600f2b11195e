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

from fastbin._config import JIT_OPTIONS, UINT8_UDOT
from fastbin.kernels.binary_product.rows4 import binary_matmul_rows4, xor_counts1, xor_counts4
from fastbin.kernels.sign_product.f32_rows import sign_sums4
from fastbin.kernels.sign_product.uint8_masks import _uint8_mask_rows, byte_masks
from fastbin.kernels.sign_product.uint8_rows import mask_sums4

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


def test_rows4_counts_the_odd_word_in_the_byte_lanes():
    """1 x 784 by 8 rows (13 words: 6 chunks and an odd word): the odd word joins the byte
    lanes (no scalar popcount: ``cnt .8b`` then ``uaddlv``/``addv`` of 8 bytes per row), and
    the padding of ``w`` is checked on those words (``orr``) without a pass of its own."""
    a = np.zeros((1, 13), np.uint64)
    w = np.zeros((8, 13), np.uint64)
    asm = _asm(binary_matmul_rows4, a, w, 784, np.zeros((1, 8), np.int32))
    assert len(re.findall(r"\beor\s+v\d+\.(16b|8b)", asm)) >= 16, "8 rows: 8 eor per chunk and 8 for the odd word"
    assert not re.search(r"\b(uaddlv|addv)\s+[bh]\d+,\s*v\d+\.8b", asm), "a scalar popcount of the odd word"


def test_uint8_masks_accumulate_pairwise_in_uint16_lanes():
    """uint8 rows on byte masks: ``and`` then ``uadalp`` (16 bytes pairwise into 8 uint16
    lanes), 4 rows of ``x`` by 4 rows of masks (16 ``and`` per chunk); with the dot-product
    extension (``UINT8_UDOT``, e.g. ``NUMBA_CPU_NAME=cortex-a76``) 16 ``udot`` per chunk instead."""
    x = np.zeros((4, 784), np.uint8)
    masks = np.zeros((4, 784), np.uint8)
    asm = _asm(_uint8_mask_rows, x, masks, np.zeros((4, 4), np.int32))
    if UINT8_UDOT:
        udots = len(re.findall(r"\budot\s+v\d+\.4s,\s*v\d+\.16b,\s*v\d+\.16b", asm))
        assert udots >= 16, udots
        assert not re.search(r"\buadalp\s+v\d+\.8h", asm)
        return
    assert re.search(r"\buadalp\s+v\d+\.8h,\s*v\d+\.16b", asm), "no pairwise accumulation"
    ands = len(re.findall(r"\band\s+v\d+\.16b", asm))
    assert ands >= 16, ands


def test_uint8_masks_unpack_w_by_tbl_and_cmtst():
    """W's bits to byte masks once per call: per 16 bytes a ``tbl`` (16 bits spread over the byte
    lanes), a ``cmtst`` and one 16-byte store, 8 chunks per 128-bit load of W (unrolled); no loop
    over single bits (a shift per bit: ``lsr`` by a register)."""
    asm = _asm(byte_masks, np.zeros((4, 13), np.uint64), 784)
    tbls = len(re.findall(r"\btbl\s+v\d+\.16b", asm))
    tests = len(re.findall(r"\bcmtst\s+v\d+\.16b", asm))
    stores = len(re.findall(r"\b(str|stur)\s+q\d+", asm)) + 2 * len(re.findall(r"\bstp\s+q\d+", asm))
    assert tbls >= 8 and tests >= 8 and stores >= 8, (tbls, tests, stores)


def test_uint8_rows_make_byte_masks_by_tbl_and_cmtst():
    """One uint8 row by 4 rows of W's bits: per chunk of 16 pixels and row of W a ``tbl`` (16 bits
    spread over the byte lanes), a ``cmtst`` (0xFF where the lane's bit is set), then ``and`` +
    ``uadalp``, or ``udot`` with the dot-product extension; 8 chunks per 128-bit load of W."""
    x = np.zeros(784, np.uint8)
    w = np.zeros((4, 13), np.uint64)
    asm = _asm(mask_sums4, x, w, 0)
    tbls = len(re.findall(r"\btbl\s+v\d+\.16b", asm))
    tests = len(re.findall(r"\bcmtst\s+v\d+\.16b", asm))
    assert tbls >= 32 and tests >= 32, (tbls, tests)  # 8 chunks x 4 rows, unrolled
    if UINT8_UDOT:
        assert len(re.findall(r"\budot\s+v\d+\.4s", asm)) >= 32
    else:
        assert len(re.findall(r"\buadalp\s+v\d+\.8h,\s*v\d+\.16b", asm)) >= 32


def test_f32_rows_flip_signs_from_the_bits():
    """One float32 row by 4 rows of W's bits: per 4 elements and row of W the bits moved to the
    sign position (``ushl`` by per-lane counts), flipped into ``x`` (``eor``) and added (``fadd``
    on 4 lanes); 8 groups of 4 per 32-bit word of W, unrolled."""
    x = np.zeros(784, np.float32)
    w = np.zeros((4, 13), np.uint64)
    asm = _asm(sign_sums4, x, w, 0)
    shifts = len(re.findall(r"\bushl\s+v\d+\.4s", asm))
    flips = len(re.findall(r"\beor\s+v\d+\.16b", asm))
    adds = len(re.findall(r"\bfadd\s+v\d+\.4s", asm))
    assert shifts >= 32 and flips >= 32 and adds >= 32, (shifts, flips, adds)
