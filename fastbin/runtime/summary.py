"""The summary table of a folded model (:meth:`fastbin.runtime.InferenceModel.summary`): per
stage and layer, the shape, the bytes its arrays hold, and the work per sample (float MACs, or
binary XNOR-popcount ops on packed input). Reads the stages by their ``kind`` (no import of
:mod:`fastbin.runtime.model`, which calls this module): no trainer needed."""
from __future__ import annotations

__all__ = ["stage_rows", "summary_table"]


def _nbytes(*arrays):
    return sum(a.nbytes for a in arrays if a is not None)


def _packed_bytes(weights):
    return weights.packed.bits.nbytes


def stage_rows(model):
    """Per layer of the folded ``model``: dict(stage, name, shape, bytes, macs, binary_ops).
    A sign stage is a binary dense layer, its batch norm and sign folded into thresholds."""
    rows = []
    packed_input = False  # what the next stage receives: packed signs after a sign stage
    for s, stage in enumerate(model.stages):
        if stage.kind == "sign":
            n_in, n_out = stage.weights.packed.n_bits, stage.n_out
            thresholds = [a for t_flip in stage.thresholds.values() for a in t_flip]
            rows.append(dict(stage=s, name="sign (dense+bn+sign)", shape=f"{n_in}x{n_out} bin",
                             bytes=_packed_bytes(stage.weights) + _nbytes(*thresholds),
                             macs=0 if packed_input else n_in * n_out, binary_ops=n_in * n_out if packed_input else 0))
            packed_input = True
            continue
        for op in stage.ops:
            if op.kind == "binary_dense":
                n_in, n_out = op.weights.packed.n_bits, op.weights.packed.rows
                rows.append(dict(stage=s, name="dense", shape=f"{n_in}x{n_out} bin",
                                 bytes=_packed_bytes(op.weights) + _nbytes(op.scale_float, op.bias),
                                 macs=0 if packed_input else n_in * n_out,
                                 binary_ops=n_in * n_out if packed_input else 0))
            elif op.kind == "dense":
                n_in, n_out = op.w.shape
                rows.append(dict(stage=s, name="dense", shape=f"{n_in}x{n_out}",
                                 bytes=_nbytes(op.w, op.bias, op.input_offset), macs=n_in * n_out, binary_ops=0))
            elif op.kind == "batchnorm":
                rows.append(dict(stage=s, name="batchnorm", shape=f"{op.k.shape[0]}",
                                 bytes=_nbytes(op.mean, op.k, op.beta), macs=0, binary_ops=0))
            else:  # an activation: tanh, hardtanh, sign
                rows.append(dict(stage=s, name=op.kind, shape="", bytes=0, macs=0, binary_ops=0))
            packed_input = False
    return rows


def summary_table(model) -> str:
    """The table ``InferenceModel.summary()`` returns."""
    rows = stage_rows(model)
    head = f"{'stage':<7}{'layer':<22}{'shape':>14}{'bytes':>11}{'MACs':>11}{'bin ops':>11}"
    lines = [f"InferenceModel: {model.n_in} inputs, {model.dtype.name}, engine {model.engine.name}", head,
             "-" * len(head)]
    for r in rows:
        lines.append(f"{r['stage']:<7}{r['name']:<22}{r['shape']:>14}{r['bytes']:>11,}{r['macs']:>11,}"
                     f"{r['binary_ops']:>11,}")
    total = {k: sum(r[k] for r in rows) for k in ("bytes", "macs", "binary_ops")}
    lines.append("-" * len(head))
    lines.append(f"{'total':<7}{'':<22}{'':>14}{total['bytes']:>11,}{total['macs']:>11,}{total['binary_ops']:>11,}")
    return "\n".join(lines)
