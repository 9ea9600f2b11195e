"""The model summary table (larq-style): parameters, bits, bytes, MACs and
binary ops per layer."""
from __future__ import annotations

from .layers import BatchNorm, Dense

__all__ = ["layer_costs", "summary_table"]


def layer_costs(model):
    """Per layer: dict(name, shape, params, bits, bytes, float32_bytes, macs, binary_ops)."""
    rows = []
    for i, layer in enumerate(model.layers):
        row = dict(name=f"{i}:{layer.kind}", shape="", params=0, bits=0, bytes=0.0, float32_bytes=0,
                   macs=0, binary_ops=0)
        if isinstance(layer, Dense):
            row["shape"] = f"{layer.n_in}x{layer.n_out}" + (" bin" if layer.binary else "")
            n_w = layer.n_in * layer.n_out
            n_other = layer.n_out * (layer.use_bias + (layer.binary and layer.scale))
            row["params"] = n_w + n_other
            row["bits"] = n_w * (1 if layer.binary else 32) + 32 * n_other
            row["float32_bytes"] = 4 * row["params"]
            # a convolution (fastbin.nn.conv.Conv2D) applies its weights at every output pixel;
            # the model sets sign_input where the input is ±1 (after a sign, pooling, flattening)
            ops = n_w * getattr(layer, "output_positions", 1)
            row["binary_ops" if layer.binary and layer.sign_input else "macs"] = ops
        elif isinstance(layer, BatchNorm):
            row["shape"] = f"{layer.n}"
            row["params"] = 2 * layer.n
            row["bits"] = 32 * 4 * layer.n  # gamma, beta, running mean and variance
            row["float32_bytes"] = 4 * 4 * layer.n
        row["bytes"] = row["bits"] / 8
        rows.append(row)
    return rows


def summary_table(model) -> str:
    rows = layer_costs(model)
    head = (f"{'layer':<14}{'shape':>14}{'params':>10}{'bits':>11}{'bytes':>11}{'MACs':>10}{'bin ops':>10}"
            f"{'vs f32':>8}")
    shape = model.config.get('sizes', model.config.get('input_shape', ''))  # an MLP's sizes, a conv model's image
    lines = [f"Model: {model.kind} {shape} backend={model.backend.name}".rstrip(),
             head, "-" * len(head)]
    for r in rows:
        saving = f"{r['float32_bytes'] / r['bytes']:.1f}x" if r["bytes"] else ""
        lines.append(f"{r['name']:<14}{r['shape']:>14}{r['params']:>10}{r['bits']:>11}{r['bytes']:>11.0f}"
                     f"{r['macs']:>10}{r['binary_ops']:>10}{saving:>8}")
    total = {k: sum(r[k] for r in rows) for k in ("params", "bits", "bytes", "float32_bytes", "macs", "binary_ops")}
    lines.append("-" * len(head))
    saving = total["float32_bytes"] / total["bytes"] if total["bytes"] else 1.0
    lines.append(f"{'total':<14}{'':>14}{total['params']:>10}{total['bits']:>11}{total['bytes']:>11.0f}"
                 f"{total['macs']:>10}{total['binary_ops']:>10}{saving:>7.1f}x")
    lines.append(f"memory: {total['bytes'] / 1024:.1f} KiB vs {total['float32_bytes'] / 1024:.1f} KiB "
                 f"as float32 ({saving:.1f}x smaller); per sample: {total['macs']} float MACs, "
                 f"{total['binary_ops']} binary (XNOR-popcount) ops")
    return "\n".join(lines)
