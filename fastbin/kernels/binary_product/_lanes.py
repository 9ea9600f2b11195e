"""The 8-lane building blocks of the binary product (``_dots_lanes`` in
``fastbin.kernels.binary_product.blocked``): an 8 x 8 uint64 transpose and the
``cols`` x 8 xor/popcount block, as LLVM intrinsics, each with a plain-Python
twin for ``NUMBA_DISABLE_JIT=1``. The block's word loop is pluggable
(``lane_block_llvm(cols, accumulate)``): ``native_counts`` here (``vpopcntq``),
``fastbin.kernels.binary_product._lanes_bytes`` for CPUs without a vector popcount.
"""
from __future__ import annotations

import functools

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._config import jit_disabled
from ..intrinsics import intp_args as _intp_args
from ..intrinsics import is_words as _is_words
from ..intrinsics import popcount

__all__ = ["LANES", "transpose_8x8", "lane_blocks", "lane_block_llvm", "native_counts"]

#: Rows of ``a`` per vector of the lane kernel (8 x uint64: one zmm).
LANES = 8


#: The 8 x 8 transpose as shuffles: swap 1 x 1, then 2 x 2, then 4 x 4
#: sub-blocks across row pairs (distance, (low half mask, high half mask)).
_TRANSPOSE_NETWORK = (
    (1, ([0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15])),
    (2, ([0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15])),
    (4, ([0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])),
)


def _transpose_vectors(builder, rows):
    """Eight LLVM 8-lane vectors ``rows[r][c]`` -> ``[c][r]``. LLVM lowers
    the generic shuffles to ``vpermt2q``/``vpunpck*`` on AVX-512 and to
    narrower shuffles elsewhere."""
    mask_type = ir.VectorType(ir.IntType(32), 8)
    for distance, (low, high) in _TRANSPOSE_NETWORK:
        swapped = list(rows)
        for r in range(8):
            if r & distance == 0:
                pair = rows[r], rows[r + distance]
                swapped[r] = builder.shuffle_vector(*pair, ir.Constant(mask_type, low))
                swapped[r + distance] = builder.shuffle_vector(*pair, ir.Constant(mask_type, high))
        rows = swapped
    return rows


def _transpose_8x8_python(src, i, t, dst, d):
    """Plain-Python ``_transpose_8x8`` for ``NUMBA_DISABLE_JIT=1``."""
    dst[d : d + 8, :8] = src[i : i + 8, t : t + 8].T


@intrinsic
def _transpose_8x8_llvm(typingctx, src, i, t, dst, d):
    """``dst[d + c, r] = src[i + r, t + c]`` for ``r, c < 8`` (2-D
    C-contiguous uint64 arrays): eight 512-bit loads, the shuffle network,
    eight stores. Measured 3x faster than a scalar transpose loop."""
    if not _is_words(src, dst):
        return None

    def codegen(context, builder, signature, args):
        src_value, i_value, t_value, dst_value, d_value = _intp_args(context, builder, signature, args)
        src_type, _, _, dst_type, _ = signature.args
        src_array = context.make_array(src_type)(context, builder, src_value)
        dst_array = context.make_array(dst_type)(context, builder, dst_value)
        vec_type = ir.VectorType(ir.IntType(64), 8)
        intp = context.get_value_type(types.intp)

        def row_ptr(array_type, array, row, col):
            ptr = cgutils.get_item_pointer(context, builder, array_type, array, [row, col])
            return builder.bitcast(ptr, vec_type.as_pointer())

        rows = [
            builder.load(row_ptr(src_type, src_array, builder.add(i_value, ir.Constant(intp, r)), t_value), align=8)
            for r in range(8)
        ]
        rows = _transpose_vectors(builder, rows)
        for c in range(8):
            ptr = row_ptr(dst_type, dst_array, builder.add(d_value, ir.Constant(intp, c)), ir.Constant(intp, 0))
            builder.store(rows[c], ptr, align=8)
        return context.get_dummy_value()

    return types.none(src, i, t, dst, d), codegen


transpose_8x8 = _transpose_8x8_python if jit_disabled() else _transpose_8x8_llvm


def _lane_block_python(cols):
    """Plain-Python ``_lane_block`` for ``NUMBA_DISABLE_JIT=1``."""

    def lane_block(panels, p, w, j, k, out, row, valid):
        for c in range(cols):
            for r in range(valid):
                s = 0
                for t in range(w.shape[1]):
                    s += popcount(panels[p + t, r] ^ w[j + c, t])
                out[row + r, j + c] = k - 2 * s

    return lane_block


class _BlockIR:
    """What a word loop of the lane block needs (``accumulate`` below)."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def const(self, value):
        return ir.Constant(self.intp, value)

    def splat(self, value, vec_type):
        i32 = ir.IntType(32)
        one = self.builder.insert_element(ir.Constant(vec_type, ir.Undefined), value, ir.Constant(i32, 0))
        zeros = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
        return self.builder.shuffle_vector(one, ir.Constant(vec_type, ir.Undefined), zeros)

    def lanes(self, t):
        """Word ``t`` of the panel: one <8 x i64> load."""
        row = self.builder.add(self.p, t)
        ptr = cgutils.get_item_pointer(
            self.context, self.builder, self.panels_type, self.panels_array, [row, self.const(0)]
        )
        return self.builder.load(self.builder.bitcast(ptr, self.vec.as_pointer()), align=8)

    def w_word(self, t, c):
        """Word ``t`` of row ``j + c`` of ``w``, broadcast to every lane."""
        ptr = cgutils.get_item_pointer(
            self.context, self.builder, self.w_type, self.w_array, [self.builder.add(self.j, self.const(c)), t]
        )
        return self.splat(self.builder.load(ptr), self.vec)


def native_counts(b):
    """One <8 x i64> accumulator per column stays in a register over the
    whole word loop: xor with a broadcast word of ``w``, ``vpopcntq``, add
    (three vector ops per 8 word pairs, no other loads or stores). Returns
    the accumulators (allocas)."""
    builder = b.builder
    accs = [cgutils.alloca_once_value(builder, ir.Constant(b.vec, None)) for _ in range(b.cols)]
    with cgutils.for_range(builder, b.n_words) as loop:
        t = loop.index
        lanes = b.lanes(t)
        for c in range(b.cols):
            count = builder.call(b.ctpop, [builder.xor(lanes, b.w_word(t, c))])
            builder.store(builder.add(builder.load(accs[c]), count), accs[c])
    return accs


def lane_block_llvm(cols, accumulate=native_counts):
    @intrinsic
    def lane_block(typingctx, panels, p, w, j, k, out, row, valid):
        """``out[row + r, j + c] = k - 2 * sum_t popcount(panels[p + t, r] ^
        w[j + c, t])`` for ``r < valid`` (<= LANES) and ``c < cols``.

        ``panels``: uint64 (., LANES), a panel of LANES rows of ``a``
        word-major from row ``p``; ``w``: uint64 (n, n_words); ``out``:
        int32 or int64; all 2-D C-contiguous. ``accumulate`` emits the word
        loop into one <8 x i64> popcount sum per column (``native_counts``,
        or ``fastbin.kernels.binary_product._lanes_bytes``). The cols x 8 result is then
        transposed with shuffles and each output row written by one masked
        store (8 * cols scalar stores took a third of the time)."""
        out_ok = isinstance(out, types.Array) and out.ndim == 2 and out.layout == "C"
        if not (_is_words(panels, w) and out_ok and out.dtype in (types.int32, types.int64)):
            return None

        def codegen(context, builder, signature, args):
            panels_value, p_value, w_value, j_value, k_value, out_value, row_value, valid_value = _intp_args(
                context, builder, signature, args
            )
            panels_type, _, w_type, _, _, out_type, _, _ = signature.args
            panels_array = context.make_array(panels_type)(context, builder, panels_value)
            w_array = context.make_array(w_type)(context, builder, w_value)
            out_array = context.make_array(out_type)(context, builder, out_value)
            intp = context.get_value_type(types.intp)
            i32 = ir.IntType(32)
            vec = ir.VectorType(ir.IntType(64), LANES)
            out_elem = ir.IntType(out_type.dtype.bitwidth)
            out_vec = ir.VectorType(out_elem, LANES)
            mask_type = ir.VectorType(ir.IntType(1), LANES)
            ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), "llvm.ctpop.v8i64")
            masked_store = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [out_vec, out_vec.as_pointer(), i32, mask_type]),
                f"llvm.masked.store.v{LANES}i{out_elem.width}.p0",
            )
            b = _BlockIR(
                context=context, builder=builder, intp=intp, vec=vec, ctpop=ctpop, cols=cols,
                panels_type=panels_type, panels_array=panels_array, p=p_value,
                w_type=w_type, w_array=w_array, j=j_value,
                n_words=cgutils.unpack_tuple(builder, w_array.shape, 2)[1],
            )
            const = b.const
            accs = accumulate(b)
            k_lanes = b.splat(builder.trunc(k_value, out_elem) if out_elem.width < 64 else k_value, out_vec)
            columns = []  # columns[c][r] = k - 2 * acc
            for c in range(LANES):
                if c < cols:
                    acc = builder.load(accs[c])
                    acc = builder.trunc(acc, out_vec) if out_elem.width < 64 else acc
                    columns.append(builder.sub(k_lanes, builder.add(acc, acc)))
                else:
                    columns.append(ir.Constant(out_vec, None))
            out_rows = _transpose_vectors(builder, columns)
            column_mask = ir.Constant(mask_type, [c < cols for c in range(LANES)])
            align = ir.Constant(i32, out_elem.width // 8)
            for r in range(LANES):
                with builder.if_then(builder.icmp_signed(">", valid_value, const(r)), likely=True):
                    out_ptr = cgutils.get_item_pointer(
                        context, builder, out_type, out_array, [builder.add(row_value, const(r)), j_value]
                    )
                    out_ptr = builder.bitcast(out_ptr, out_vec.as_pointer())
                    builder.call(masked_store, [out_rows[r], out_ptr, align, column_mask])
            return context.get_dummy_value()

        return types.none(panels, p, w, j, k, out, row, valid), codegen

    return lane_block


_make_lane_block = _lane_block_python if jit_disabled() else lane_block_llvm


@functools.cache
def lane_blocks() -> tuple:
    """``lane_blocks()[cols - 1]`` handles ``cols`` (1..8) rows of ``w`` at once. Made on the
    first call: a CPU that takes ``_lanes_bytes``' blocks never makes these eight intrinsics
    (measured 0.2-0.3 ms for a set, plus the objects the collector then scans)."""
    return tuple(_make_lane_block(cols) for cols in range(1, 9))
