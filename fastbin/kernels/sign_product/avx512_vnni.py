"""The exact int32 ``x @ sign(W)`` for uint8 rows by byte dot products (AVX-512 VNNI
``vpdpbusd``) on masks of the packed bits: no unpacked form of ``W``, no tables.

Per 64 inputs (one word of a packed row of ``W``) and output ``j``, the word is the mask
of a ``vpmovm2b``: bytes 0 where the sign is +1, -1 (0xff) where it is -1. One
``vpdpbusd`` per (row, output) then adds ``x``'s 64 bytes (the unsigned operand) times
those bytes (the signed one) in fours into 16 int32 lanes: the sum of ``-x`` over the -1
signs, ``neg``. With the row sum ``s = sum_t x[t]``, the product is ``s + 2 * neg``. The
lanes of each register accumulator are summed once per block (``intrinsics.tree_sum``).

A register block is ``ROWS`` rows by ``COLS`` outputs: per word ``ROWS`` 64-byte loads of
``x``, ``COLS`` mask loads and ``vpmovm2b``, ``ROWS * COLS`` ``vpdpbusd`` (64 byte
products each, where an FMA makes 16 float ones); rows left over take a 1-row block of
``COLS1`` outputs. Outputs past ``n`` repeat the last one (computed, never stored).
The blocks of outputs run in panels whose packed rows fit ``PANEL_BYTES`` (they stay in
L2 while every row of ``x`` passes over them).

Exact: every partial sum is an integer of magnitude at most ``255 * k``, which
``fastbin.ops`` keeps below ``2**31`` (``vpdpbusd`` wraps, it does not saturate; the
products are ``0`` or ``-x``). The inputs past ``k`` in the last word are loaded as
zeros (masked loads) and their padding bits are 0.

* ``sign_matmul_dot(x, w_bits, out) -> bool`` / ``sign_matmul_dot_parallel``:
  ``sign_matmul_uint8``'s contract for ``x`` (m, k) uint8 of any strides (a strided one is
  copied to C order first, a choice made from its type), ``w_bits`` (n, ceil(k/64)) uint64, ``out`` (m, n) int32; False,
  writing nothing, for non-zero padding bits. The threaded one gives row chunks to threads.

Available where ``fastbin._config.INT8_DOT`` (x86-64 with AVX-512 VNNI and BW, as Numba's
target says): ``llvm.x86.avx512.vpdpbusd.512`` exists nowhere else, so nothing calls it
elsewhere (a plain-Python twin serves ``NUMBA_DISABLE_JIT=1``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit, jit_disabled, jit_parallel
from ..intrinsics import intp_args, is_words, tree_sum
from ..pack import padding_is_zero
from .portable import _c_order

__all__ = ["ROWS", "COLS", "COLS1", "PANEL_BYTES", "sign_matmul_dot", "sign_matmul_dot_parallel"]

#: rows and outputs of the register block (16 int32 accumulators, 4 row vectors, the masks)
ROWS = 4
COLS = 4
#: outputs of the 1-row block (rows past the last full block)
COLS1 = 8
#: packed rows of a panel of outputs: half the 1 MiB L2 of Zen 4/5 (a module constant, not a
#: table entry: a plan without table arguments is made without a Python call at 16 x 784 x 10)
PANEL_BYTES = 512 * 1024
#: row chunks of the threaded kernel (a fixed count: see ``binary_product.blocked``)
MAX_TASKS = 64


def _dot_block_python(x, i0, w_bits, j0, j_last, acc):
    rows, cols = acc.shape
    k = x.shape[1]
    for c in range(cols):
        j = min(j0 + c, j_last)
        bits = np.unpackbits(w_bits[j].view(np.uint8), bitorder="little")[:k].astype(np.bool_)
        for r in range(rows):
            acc[r, c] = -int(x[i0 + r][bits].sum(dtype=np.int64))


def _dot_block_intrinsic(rows, cols):
    """The intrinsic ``block(x, i0, w_bits, j0, j_last, acc)``: ``acc[r, c] = -sum_t x[i0 + r,
    t]`` over the -1 signs of row ``min(j0 + c, j_last)`` of ``w_bits``, for ``r < rows``,
    ``c < cols`` (``acc`` (rows, cols) int32 C-contiguous; ``rows * cols`` a power of two at
    most 16)."""

    @intrinsic
    def block(typingctx, x, i0, w_bits, j0, j_last, acc):
        ok = (isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C" and x.dtype == types.uint8
              and is_words(w_bits) and isinstance(acc, types.Array) and acc.ndim == 2 and acc.layout == "C"
              and acc.dtype == types.int32 and all(isinstance(v, types.Integer) for v in (i0, j0, j_last)))
        if not ok:
            return None

        def codegen(context, builder, signature, args):
            x_v, i0_v, w_v, j0_v, last_v, acc_v = intp_args(context, builder, signature, args)
            x_t, _, w_t, _, _, acc_t = signature.args
            x_a = context.make_array(x_t)(context, builder, x_v)
            w_a = context.make_array(w_t)(context, builder, w_v)
            acc_a = context.make_array(acc_t)(context, builder, acc_v)
            i1, i8, i32 = ir.IntType(1), ir.IntType(8), ir.IntType(32)
            intp = context.get_value_type(types.intp)
            i8x64, i32x16, i1x64 = ir.VectorType(i8, 64), ir.VectorType(i32, 16), ir.VectorType(i1, 64)
            dpbusd = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(i32x16, [i32x16, i32x16, i32x16]), "llvm.x86.avx512.vpdpbusd.512")
            masked_load = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(i8x64, [i8x64.as_pointer(), i32, i1x64, i8x64]),
                "llvm.masked.load.v64i8.p0")
            k = cgutils.unpack_tuple(builder, x_a.shape, 2)[1]
            n_words = cgutils.unpack_tuple(builder, w_a.shape, 2)[1]
            full = builder.udiv(k, ir.Constant(intp, 64))
            tail = builder.urem(k, ir.Constant(intp, 64))
            x_rows = [builder.gep(x_a.data, [builder.mul(builder.add(i0_v, ir.Constant(intp, r)), k)])
                      for r in range(rows)]
            w_rows = []
            for c in range(cols):
                j = builder.add(j0_v, ir.Constant(intp, c))
                j = builder.select(builder.icmp_signed("<", j, last_v), j, last_v)
                w_rows.append(builder.gep(w_a.data, [builder.mul(j, n_words)]))
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(i32x16, None)) for _ in range(cols)]
                    for _ in range(rows)]

            def step(t, values):
                for c in range(cols):
                    word = builder.load(builder.gep(w_rows[c], [t]), align=8)
                    signs = builder.bitcast(builder.sext(builder.bitcast(word, i1x64), i8x64), i32x16)
                    for r in range(rows):
                        total = builder.call(dpbusd, [builder.load(accs[r][c]), values[r], signs])
                        builder.store(total, accs[r][c])

            with cgutils.for_range(builder, full) as loop:
                t = loop.index
                at = builder.mul(t, ir.Constant(intp, 64))
                values = [builder.bitcast(builder.load(builder.bitcast(builder.gep(p, [at]), i8x64.as_pointer()),
                                                       align=1), i32x16) for p in x_rows]
                step(t, values)
            with builder.if_then(builder.icmp_unsigned("!=", tail, ir.Constant(intp, 0))):
                at = builder.mul(full, ir.Constant(intp, 64))
                lanes = ir.Constant(ir.VectorType(intp, 64), list(range(64)))
                tails = builder.insert_element(ir.Constant(ir.VectorType(intp, 64), ir.Undefined), tail,
                                               ir.Constant(i32, 0))
                tails = builder.shuffle_vector(tails, ir.Constant(ir.VectorType(intp, 64), ir.Undefined),
                                               ir.Constant(ir.VectorType(i32, 64), [0] * 64))
                in_row = builder.icmp_signed("<", lanes, tails)
                values = [builder.bitcast(builder.call(masked_load, [
                    builder.bitcast(builder.gep(p, [at]), i8x64.as_pointer()), ir.Constant(i32, 1), in_row,
                    ir.Constant(i8x64, None)]), i32x16) for p in x_rows]
                step(full, values)
            totals = tree_sum(builder, [builder.load(accs[r][c]) for r in range(rows) for c in range(cols)],
                              lambda b, u, v: b.add(u, v))
            out_ptr = builder.bitcast(acc_a.data, totals.type.as_pointer())
            builder.store(totals, out_ptr, align=4)
            return context.get_dummy_value()

        return types.void(x, i0, w_bits, j0, j_last, acc), codegen

    return block


_block = _dot_block_python if jit_disabled() else _dot_block_intrinsic(ROWS, COLS)
_block1 = _dot_block_python if jit_disabled() else _dot_block_intrinsic(1, COLS1)


@jit
def _row_sums(x, sums):
    """``sums[i] = sum_t x[i, t]`` (int64)."""
    for i in range(x.shape[0]):
        total = 0
        row = x[i]
        for t in range(x.shape[1]):
            total += np.int64(row[t])
        sums[i] = total


@jit
def _panel_rows(w_bits, panel_bytes):
    """Outputs per panel: their packed rows fit ``panel_bytes`` (a multiple of COLS1 and COLS)."""
    rows = panel_bytes // (8 * w_bits.shape[1])
    return max(COLS1, rows // COLS1 * COLS1)


@jit
def _dots(x, w_bits, sums, out, i0, i1, panel_bytes):
    """``out[i] = x[i] @ sign(W)`` for ``i0 <= i < i1``: panels of outputs, then blocks of
    ROWS rows (and 1-row blocks for the rows left)."""
    n = w_bits.shape[0]
    last = n - 1
    acc = np.empty((ROWS, COLS), np.int32)
    acc1 = np.empty((1, COLS1), np.int32)
    panel = _panel_rows(w_bits, panel_bytes)
    i4 = i0 + (i1 - i0) // ROWS * ROWS
    for p0 in range(0, n, panel):
        p1 = min(n, p0 + panel)
        for i in range(i0, i4, ROWS):
            for j in range(p0, p1, COLS):
                _block(x, i, w_bits, j, last, acc)
                for r in range(ROWS):
                    s = sums[i + r]
                    for c in range(min(COLS, p1 - j)):
                        out[i + r, j + c] = s + 2 * np.int64(acc[r, c])
        for i in range(i4, i1):
            s = sums[i]
            for j in range(p0, p1, COLS1):
                _block1(x, i, w_bits, j, last, acc1)
                for c in range(min(COLS1, p1 - j)):
                    out[i, j + c] = s + 2 * np.int64(acc1[0, c])


@jit
def sign_matmul_dot(x, w_bits, out, panel_bytes=PANEL_BYTES):
    """``out = x @ sign(W)`` exactly (module doc); False on non-zero padding bits."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    rows = _c_order(x)  # a new name: rebinding x would unify its type to layout "A"
    sums = np.empty(rows.shape[0], np.int64)
    _row_sums(rows, sums)
    _dots(rows, w_bits, sums, out, 0, rows.shape[0], panel_bytes)
    return True


@jit_parallel
def sign_matmul_dot_parallel(x, w_bits, out, panel_bytes=PANEL_BYTES):
    """:func:`sign_matmul_dot` with chunks of rows (multiples of ROWS) over threads."""
    if not padding_is_zero(w_bits, x.shape[1]):
        return False
    rows = _c_order(x)
    m = rows.shape[0]
    sums = np.empty(m, np.int64)
    _row_sums(rows, sums)
    tasks = max(1, min((m + ROWS - 1) // ROWS, MAX_TASKS))
    chunk = (m + tasks - 1) // tasks
    chunk = (chunk + ROWS - 1) // ROWS * ROWS
    for task in prange(tasks):
        i0 = min(m, task * chunk)
        _dots(rows, w_bits, sums, out, i0, min(m, i0 + chunk), panel_bytes)
    return True
