"""The summary table of a folded model (:meth:`fastbin.runtime.InferenceModel.summary`): per
stage and layer, the shape, the parameters it holds (weights, thresholds, float constants),
their bits and bytes, and the work per sample (float MACs, or binary XNOR-popcount ops on packed
input). Reads the stages by their ``kind`` (no import of :mod:`fastbin.runtime.model` or
:mod:`fastbin.runtime.conv`, which call this module): no trainer needed.

A conv stage (``kind == "conv_sign"``, :class:`fastbin.runtime.conv.PackedConvModel`) is one
row: a binary convolution with its batch norm and sign folded into thresholds (and its max
pooling on the bits), ``kh * kw * c_in * filters`` weights applied at every output pixel
(before pooling); the first sees the image (MACs), the others packed signs (binary ops). Its
bytes are the packed weights as the engine runs them (each pixel's channels in whole words)
and the thresholds and flips. The tail (``"conv_tail"``) is the flattened binary dense layer
and, if any, the batch norm of the logits."""
from __future__ import annotations

import numpy as np

__all__ = ["stage_rows", "summary_table"]


def _nbytes(*arrays):
    return sum(a.nbytes for a in arrays if a is not None)


def _size(*arrays):
    return sum(a.size for a in arrays if a is not None)


def _packed_bytes(weights):
    return weights.packed.bits.nbytes


def _row(stage, name, shape, *, weights=0, params=(), packed_bytes=0, macs=0, binary_ops=0, bool_arrays=()):
    """One row: ``weights`` binary weights (1 bit each, ``packed_bytes`` as held), ``params`` the
    other arrays (thresholds, float constants: their own bits), ``bool_arrays`` flips (1 bit each
    counted, 1 byte each held)."""
    flags = _size(*bool_arrays)
    return dict(stage=stage, name=name, shape=shape, params=weights + _size(*params),
                bits=weights + 8 * _nbytes(*params) + flags,
                bytes=packed_bytes + _nbytes(*params) + _nbytes(*bool_arrays), macs=macs, binary_ops=binary_ops)


def _conv_rows(s, stage):
    conv = stage.conv
    kh, kw = conv["kernel_size"]
    c_in, n = conv["in_channels"], conv["filters"]
    positions = stage.geometry[6] * stage.geometry[7]
    weights = stage.sign.weights if stage.first else stage.weights
    thresholds = [t for t, _ in stage.thresholds.values()]
    flips = [flip for _, flip in stage.thresholds.values()]
    pools = ([stage.pool_before] if stage.pool_before is not None else []) + list(stage.pools_after)
    name = "conv2d+bn+sign" + ("+pool" if pools else "")
    ops = kh * kw * c_in * n * positions
    return [_row(s, name, f"{kh}x{kw}x{c_in}x{n} bin", weights=kh * kw * c_in * n, params=thresholds,
                 packed_bytes=_packed_bytes(weights), bool_arrays=flips,
                 macs=ops if stage.first else 0, binary_ops=0 if stage.first else ops)]


def _tail_rows(s, stage):
    affine = stage.affine
    n_in, n_out = stage.dense_bits.n_bits, stage.dense_bits.rows
    rows = [_row(s, "flatten+dense", f"{n_in}x{n_out} bin", weights=n_in * n_out, params=(affine.scale, affine.bias),
                 packed_bytes=_packed_bytes(stage.weights), binary_ops=n_in * n_out)]
    if affine.bn is not None:
        rows.append(_row(s, "batchnorm", f"{n_out}", params=affine.bn))
    return rows


def stage_rows(model):
    """Per layer of the folded ``model``: dict(stage, name, shape, params, bits, bytes, macs,
    binary_ops). A sign stage is a binary dense layer (or convolution), its batch norm and sign
    folded into thresholds."""
    rows = []
    packed_input = False  # what the next stage receives: packed signs after a sign stage
    for s, stage in enumerate(model.stages):
        if stage.kind == "conv_sign":
            rows += _conv_rows(s, stage)
            continue
        if stage.kind == "conv_tail":
            rows += _tail_rows(s, stage)
            continue
        if stage.kind == "sign":
            n_in, n_out = stage.weights.packed.n_bits, stage.n_out
            rows.append(_row(s, "sign (dense+bn+sign)", f"{n_in}x{n_out} bin", weights=n_in * n_out,
                             params=[t for t, _ in stage.thresholds.values()],
                             bool_arrays=[flip for _, flip in stage.thresholds.values()],
                             packed_bytes=_packed_bytes(stage.weights),
                             macs=0 if packed_input else n_in * n_out, binary_ops=n_in * n_out if packed_input else 0))
            packed_input = True
            continue
        for op in stage.ops:
            if op.kind == "binary_dense":
                n_in, n_out = op.weights.packed.n_bits, op.weights.packed.rows
                rows.append(_row(s, "dense", f"{n_in}x{n_out} bin", weights=n_in * n_out,
                                 params=(op.scale_float, op.bias), packed_bytes=_packed_bytes(op.weights),
                                 macs=0 if packed_input else n_in * n_out,
                                 binary_ops=n_in * n_out if packed_input else 0))
            elif op.kind == "dense":
                n_in, n_out = op.w.shape
                rows.append(_row(s, "dense", f"{n_in}x{n_out}", params=(op.w, op.bias, op.input_offset),
                                 macs=n_in * n_out))
            elif op.kind == "batchnorm":
                rows.append(_row(s, "batchnorm", f"{op.k.shape[0]}", params=(op.mean, op.k, op.beta)))
            else:  # an activation: tanh, hardtanh, sign
                rows.append(_row(s, op.kind, ""))
            packed_input = False
    return rows


#: the summed columns and their widths
_TOTALS = {"params": 11, "bits": 12, "bytes": 11, "macs": 13, "binary_ops": 13}


def summary_table(model) -> str:
    """The table ``InferenceModel.summary()`` returns."""
    rows = stage_rows(model)
    titles = {"params": "params", "bits": "bits", "bytes": "bytes", "macs": "MACs", "binary_ops": "bin ops"}
    head = f"{'stage':<7}{'layer':<22}{'shape':>16}" + "".join(f"{titles[k]:>{w}}" for k, w in _TOTALS.items())
    shape = getattr(model, "input_shape", None)
    inputs = f"{model.n_in} inputs" + (f" ({'x'.join(map(str, shape))} images)" if shape else "")
    lines = [f"InferenceModel: {inputs}, {np.dtype(model.dtype).name}, engine {model.engine.name}", head,
             "-" * len(head)]
    for r in rows:
        lines.append(f"{r['stage']:<7}{r['name']:<22}{r['shape']:>16}"
                     + "".join(f"{r[k]:>{w},}" for k, w in _TOTALS.items()))
    lines.append("-" * len(head))
    lines.append(f"{'total':<7}{'':<22}{'':>16}" + "".join(f"{sum(r[k] for r in rows):>{w},}"
                                                          for k, w in _TOTALS.items()))
    return "\n".join(lines)
