"""The raw Numba kernels, for use inside your own ``@numba.njit`` functions.

They trust their inputs (C-contiguous arrays of the documented dtypes and
shapes, zero padding bits) and write into preallocated outputs; the public
functions in ``fastbin`` validate and allocate, then call these.
"""
from __future__ import annotations

import importlib

#: public name -> the submodule that defines it, imported on first use (module ``__getattr__``):
#: importing one kernel module (the runtime's, a planner's) does not import the others, so a
#: process pays only for the dispatchers it can call (benchmarks/results/2026-12-07-cold-start.md).
_SOURCES = {
    "WORD_BITS": "fastbin.bits",
    "popcount": "fastbin.kernels.intrinsics",
    **dict.fromkeys(["binary_dense_sign_kernel", "binary_dense_sign_parallel", "binary_matmul_kernel",
                     "binary_matmul_parallel"], "fastbin.kernels.binary_product.blocked"),
    **dict.fromkeys(["linear_softmax_ce_labels", "linear_softmax_ce_packed_labels",
                     "linear_softmax_ce_packed_targets", "linear_softmax_ce_parallel", "linear_softmax_ce_targets"],
                    "fastbin.kernels.linear_ce"),
    **dict.fromkeys(["pack_columns", "pack_rows", "pack_rows_parallel", "padding_is_zero", "unpack_rows"],
                    "fastbin.kernels.pack"),
    **dict.fromkeys(["sign_matmul_bits", "sign_matmul_bits_parallel", "sign_matmul_float",
                     "sign_matmul_float_parallel", "sign_matmul_uint8", "sign_matmul_uint8_float"],
                    "fastbin.kernels.sign_product.portable"),
    **dict.fromkeys(["ce_block_labels", "ce_block_targets", "exp_nonpositive", "softmax_ce_labels",
                     "softmax_ce_targets"], "fastbin.kernels.softmax_ce"),
    **dict.fromkeys(["adam_update_flat", "sgd_update_flat"], "fastbin.kernels.updates"),
}

__all__ = [
    # packing (fastbin.kernels.pack): pack_rows(x (m,k), out uint64 (m,nw)) -> NaN count,
    # pack_columns(w (k,n), out uint64 (n,nw)) -> NaN count, unpack_rows(bits, n_bits, out (m,k)),
    # padding_is_zero(bits, n_bits) -> bool
    "pack_rows",
    "pack_rows_parallel",
    "pack_columns",
    "unpack_rows",
    "padding_is_zero",
    # binary products (fastbin.kernels.binary_product.blocked): binary_matmul_kernel(a_bits (m,nw),
    # w_bits (n,nw), n_bits, out int32 (m,n)); binary_dense_sign_kernel(a_bits, w_bits, n_bits,
    # thresholds int64 (n,), flip bool (n,), out_bits uint64 (m, ceil(n/64)))
    "binary_matmul_kernel",
    "binary_matmul_parallel",
    "binary_dense_sign_kernel",
    "binary_dense_sign_parallel",
    # x @ sign(W) (fastbin.kernels.sign_product.portable; which one pays is
    # fastbin.kernels.sign_product.plan's choice): sign_matmul_bits (few rows: signed sums
    # from the bits) and sign_matmul_float (W unpacked once, register blocks) (x float (m,k),
    # w_bits (n,nw), out (m,n) x.dtype); sign_matmul_uint8 (bit planes) and
    # sign_matmul_uint8_float (float32 blocks, k <= 65793) (x uint8 (m,k), w_bits, out int32 (m,n))
    # Kernels taking packed operands return False (writing nothing) on non-zero padding bits.
    "sign_matmul_bits",
    "sign_matmul_bits_parallel",
    "sign_matmul_float",
    "sign_matmul_float_parallel",
    "sign_matmul_uint8",
    "sign_matmul_uint8_float",
    # softmax cross-entropy (fastbin.kernels.softmax_ce): softmax_ce_labels(logits (m,c),
    # labels intp (m,), dlogits out (m,c)) -> mean loss float64; softmax_ce_targets(logits,
    # targets (m,c), dlogits) -> loss; ce_block_* the same on a block, returning the loss sum;
    # exp_nonpositive(x) scalar exp for x <= 0
    "softmax_ce_labels",
    "softmax_ce_targets",
    "ce_block_labels",
    "ce_block_targets",
    "exp_nonpositive",
    # fused linear + softmax CE (fastbin.kernels.linear_ce): linear_softmax_ce_labels(x (m,k),
    # w (k,c), b (c,), labels intp (m,), dw out (k,c), db out (c,)) -> mean loss; *_targets with
    # targets (m,c); *_packed_* with w_bits uint64 (c, ceil(k/64)) instead of w;
    # linear_softmax_ce_parallel(x, w, w_bits, b, labels, targets, use_targets, dw, db, n_parts)
    # threaded form of all four (w_bits with 0 rows selects w; unused args are placeholders or None)
    "linear_softmax_ce_labels",
    "linear_softmax_ce_targets",
    "linear_softmax_ce_packed_labels",
    "linear_softmax_ce_packed_targets",
    "linear_softmax_ce_parallel",
    # in-place updates on flat arrays (fastbin.kernels.updates): sgd_update_flat(param (n,),
    # grad (n,), lr, clip); adam_update_flat(param, grad, m, v, step, lr, b1, b2, eps, clip);
    # clip = inf for none
    "sgd_update_flat",
    "adam_update_flat",
    "WORD_BITS", "popcount"]


def __getattr__(name):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted({*globals(), *__all__})
