"""Folded inference: binary dense + batch norm + sign -> integer thresholds on
packed bits, and the model summary table.

A binary dense layer followed by (optional) batch norm and ``sign`` computes,
per output ``j``, ``sign(f_j(dot_j))`` with ``dot = x @ sign(W)`` and ``f_j``
the evaluation-time affine maps (:func:`fastbin.layers.dense_affine` then
:func:`fastbin.layers.bn_affine`). ``f_j`` is monotone in ``dot`` (every step is
a correctly rounded add or multiply by a constant), so ``f_j(dot) < 0``
exactly when ``dot < t_j`` (increasing ``f_j``) or ``dot > t_j`` (decreasing:
``flip_j``). The thresholds are found by a vectorised binary search that
evaluates *the same float formula* the unfolded model uses, over the integers
(packed or uint8 input: ``dot`` is an exact integer, the 1/255 of raw pixels
sits in the scale) or over the ordered float values (float input), so the
folded model's signs, and so its predictions, equal the unfolded model's bit
for bit, ties included.

Hidden activations then stay packed from layer to layer
(``backend.binary_dense_sign``); the last layer gives float logits.
"""
from __future__ import annotations

import numpy as np

from .layers import BatchNorm, Dense, Sign, bn_affine, dense_affine
from .packed import PackedSigns

__all__ = ["InferenceModel", "fold", "summary_table", "layer_costs"]

_CHUNK = 8192


#: Float thresholds are searched over [-FLOAT_RANGE, FLOAT_RANGE] (beyond it the
#: sign cannot change any more for sane constants, and nothing overflows).
FLOAT_RANGE = 1e30


def _float_keys(dtype):
    """(int view dtype, key of FLOAT_RANGE): a float's key is its bit pattern
    read as a signed integer, negated for negative floats, so keys order like
    the floats and -0.0, +0.0 share key 0."""
    dtype = np.dtype(dtype)
    ints = np.dtype(f"int{8 * dtype.itemsize}")
    top = int(np.array(FLOAT_RANGE, dtype).view(ints))
    return ints, top


def _keys_to_floats(keys, dtype):
    """Ordered integer keys (Python ints; -0.0 and +0.0 share key 0) -> floats."""
    ints, _ = _float_keys(dtype)
    bits = [k if k >= 0 else (-k) | (1 << (8 * ints.itemsize - 1)) for k in keys]
    unsigned = np.dtype(f"uint{8 * ints.itemsize}")
    return np.array(bits, dtype=unsigned).view(dtype)


class _Affine:
    """``f(dot)`` of one dense (+ batch norm) layer, as the unfolded model
    evaluates it; ``negative(d)`` is ``f(d) < 0`` elementwise for d (n,)."""

    def __init__(self, dense, bn, uint8_input):
        self.dtype, self.n = dense.dtype, dense.n_out
        self.scale = dense.eval_scale(uint8_input)
        bias = dense.eval_bias()
        self.bias = None if bias is None else bias.copy()
        self.bn = None
        if bn is not None:
            self.bn = (bn.buffers["running_mean"].copy(), bn.eval_k(), bn.params["beta"].copy())

    def __call__(self, dot):
        z = dense_affine(dot, self.scale, self.bias)
        return bn_affine(z, *self.bn) if self.bn is not None else z

    def negative(self, d):
        with np.errstate(over="ignore", invalid="ignore"):
            return self(np.asarray(d, dtype=self.dtype)) < 0


def _search(negative, lo, hi, to_value):
    """Thresholds over an ordered domain of integer keys [lo, hi] (Python
    ints): returns ``(t, flip)`` with ``negative(v) == (v < t)`` (flip False)
    or ``(v > t)`` (flip True) for every value v of the domain."""
    n = len(lo)
    neg_lo, neg_hi = negative(to_value(lo)), negative(to_value(hi))
    lo, hi = list(lo), list(hi)
    # first key whose state differs from the state at lo (exists where they differ)
    a, b = list(lo), list(hi)
    active = neg_lo != neg_hi
    while True:
        todo = [j for j in range(n) if active[j] and b[j] - a[j] > 1]
        if not todo:
            break
        mid = [(a[j] + b[j]) // 2 if active[j] and b[j] - a[j] > 1 else a[j] for j in range(n)]
        state = negative(to_value(mid))
        for j in todo:
            if state[j] != neg_lo[j]:
                b[j] = mid[j]
            else:
                a[j] = mid[j]
    t, flip = [], []
    for j in range(n):
        if not active[j]:  # constant sign: all negative (v < hi + 1) or none (v < lo)
            t.append(hi[j] + 1 if neg_lo[j] else lo[j])
            flip.append(False)
        elif neg_lo[j]:  # increasing: negative below the change point
            t.append(b[j])
            flip.append(False)
        else:  # decreasing: negative from the change point on, i.e. v > b - 1
            t.append(b[j] - 1)
            flip.append(True)
    return t, np.array(flip, dtype=bool)


def int_thresholds(affine, bound):
    """Integer thresholds for integer ``dot`` in [-bound, bound]."""
    n = affine.n
    t, flip = _search(affine.negative, [-bound] * n, [bound] * n, lambda keys: np.array(keys, np.float64))
    return np.array(t, dtype=np.int64), flip


def float_thresholds(affine):
    """Float thresholds for float ``dot`` (any value up to FLOAT_RANGE)."""
    n = affine.n
    _, top = _float_keys(affine.dtype)
    to_value = lambda keys: _keys_to_floats(keys, affine.dtype)  # noqa: E731
    t, flip = _search(affine.negative, [-top] * n, [top] * n, to_value)
    return _keys_to_floats(t, affine.dtype), flip


class _SignStage:
    """Binary dense (+ batch norm) + sign: float/uint8/packed in, packed out."""

    def __init__(self, dense, bn, first):
        self.backend, self.dtype, self.n_out = dense.backend, dense.dtype, dense.n_out
        self.w = dense.packed_weights()
        self.t_int, self.flip_int = int_thresholds(_Affine(dense, bn, False), dense.n_in)
        self.first = first
        if first:
            self.t_u8, self.flip_u8 = int_thresholds(_Affine(dense, bn, True), 255 * dense.n_in)
            self.t_float, self.flip_float = float_thresholds(_Affine(dense, bn, False))

    def __call__(self, a):
        be = self.backend
        if isinstance(a, PackedSigns):
            return be.binary_dense_sign(a, self.w, self.t_int, self.flip_int)
        dot = be.sign_matmul(a, self.w)
        if a.dtype == np.uint8:
            t, flip = self.t_u8, self.flip_u8
        else:
            t, flip = self.t_float, self.flip_float
            dot = dot.astype(self.dtype, copy=False)
        negative = np.where(flip, dot > t, dot < t)
        return be.pack_signs(np.where(negative, self.dtype.type(-1), self.dtype.type(1)))


class _FloatStage:
    """Layers evaluated as in the unfolded model; a binary dense layer on
    packed input uses ``binary_matmul`` (exact integer dot)."""

    def __init__(self, layers):
        self.layers = layers

    def __call__(self, a):
        layers = self.layers
        if isinstance(a, PackedSigns):
            dense = layers[0]
            if isinstance(dense, Dense) and dense.binary:
                dot = dense.backend.binary_matmul(a, dense.packed_weights()).astype(dense.dtype)
                a = dense_affine(dot, dense.eval_scale(False), dense.eval_bias())
                layers = layers[1:]
            else:
                a = dense.backend.unpack_signs(a, dense.dtype)
        for layer in layers:
            a = layer.forward(a, False)
        return a


class InferenceModel:
    """Frozen, folded model: ``forward(x)`` logits, ``predict(x)`` classes.
    ``x`` (m, n_in) float in [0, 1] or raw uint8 pixels."""

    def __init__(self, stages, n_in, dtype):
        self.stages, self.n_in, self.dtype = stages, n_in, np.dtype(dtype)

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"x must be a numpy array (m, {self.n_in}), got {getattr(x, 'shape', type(x))}")
        if x.dtype != np.uint8:
            if x.dtype.kind != "f":
                raise TypeError(f"x must be float or raw uint8, got {x.dtype}")
            x = x.astype(self.dtype, copy=False)
        x = np.ascontiguousarray(x)
        out = [self._run(x[i : i + _CHUNK]) for i in range(0, x.shape[0], _CHUNK)]
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _run(self, a):
        for stage in self.stages:
            a = stage(a)
        return a

    def predict(self, x):
        return np.argmax(self.forward(x), axis=1)

    def __repr__(self):
        kinds = ["sign" if isinstance(s, _SignStage) else "float" for s in self.stages]
        return f"InferenceModel(stages={kinds})"


def fold(model) -> InferenceModel:
    """Fold ``model`` (a :class:`fastbin.models.Model`) for inference."""
    stages, rest, i = [], [], 0
    layers = model.layers
    while i < len(layers):
        dense = layers[i]
        j = i + 1
        bn = layers[j] if j < len(layers) and isinstance(layers[j], BatchNorm) else None
        j += bn is not None
        sign = j < len(layers) and isinstance(layers[j], Sign)
        if isinstance(dense, Dense) and dense.binary and sign and not rest:
            stages.append(_SignStage(dense, bn, first=i == 0))
            i = j + 1
        else:
            rest.append(dense)
            i += 1
    if rest:
        stages.append(_FloatStage(rest))
    return InferenceModel(stages, model.n_in, model.dtype)


# ---------------------------------------------------------------------------
# Summary (larq-style)
# ---------------------------------------------------------------------------
def layer_costs(model):
    """Per layer: dict(name, shape, params, bits, bytes, float32_bytes, macs, binary_ops)."""
    rows, sign_input = [], False
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
            row["binary_ops" if layer.binary and sign_input else "macs"] = n_w
            sign_input = False
        elif isinstance(layer, BatchNorm):
            row["shape"] = f"{layer.n}"
            row["params"] = 2 * layer.n
            row["bits"] = 32 * 4 * layer.n  # gamma, beta, running mean and variance
            row["float32_bytes"] = 4 * 4 * layer.n
        else:  # activation: the next dense layer sees +-1 after a sign
            sign_input = isinstance(layer, Sign)
        row["bytes"] = row["bits"] / 8
        rows.append(row)
    return rows


def summary_table(model) -> str:
    rows = layer_costs(model)
    head = (f"{'layer':<14}{'shape':>14}{'params':>10}{'bits':>11}{'bytes':>11}{'MACs':>10}{'bin ops':>10}"
            f"{'vs f32':>8}")
    lines = [f"Model: {model.kind} {model.config.get('sizes', '')} backend={model.backend.name}".rstrip(),
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
    if model.backend.missing:
        lines.append(f"note: backend uses the NumPy reference for {', '.join(model.backend.missing)}")
    return "\n".join(lines)
