"""Folding on plain arrays: a model's layer list and arrays -> the stages of
:mod:`fastbin.runtime.model` (packed weights, integer thresholds and flips, the
float tail). The one place this arithmetic lives: ``fastbin.nn.fold`` (a
trained model) and :func:`fastbin.runtime.load` (a model file) both call
:func:`fold_arrays`.

``layers`` are the layer configs of a model file (``meta["layers"]``, checked
by :mod:`fastbin.io.modelschema`) and ``arrays`` the layer arrays in the
model's dtype, named ``"<layer index>.<name>"``, with every binary dense layer
given as its packed signs ``"<i>.W_bits"`` and, with ``scale``, ``"<i>.alpha"``
(:func:`layer_arrays` turns a file's arrays into that form).

The thresholds are found by a vectorised binary search that evaluates *the
same float formula* the unfolded model uses (``fastbin.reference.dense_affine``
then ``bn_affine``), over the integers (packed or uint8 input: ``dot`` is an
exact integer, the 1/255 of raw pixels sits in the scale) or over the ordered
float values (float input), so the folded model's signs, and so its
predictions, equal the unfolded model's bit for bit, ties included. A folded
model file stores them (:func:`search_thresholds`), so loading it searches
nothing; it checks them instead (four evaluations of the same formula per
output, :func:`_disagreement`), so a folded section that does not fold the
file's own layers is refused, never run.
"""
from __future__ import annotations

import numpy as np

from ..io.modelschema import FOLDED_FLOAT_RANGE, fold_plan, threshold_dtype
from ..packed import PackedSigns
from ..reference import binary_eval_scale, bn_affine, bn_scale, dense_affine, offset_bias
from .model import Activation, BatchNormOp, BinaryDense, FloatDense, FloatStage, InferenceModel, SignStage, SignWeights

__all__ = ["Affine", "FLOAT_RANGE", "float_thresholds", "fold_arrays", "int_thresholds", "layer_arrays",
           "search_thresholds", "threshold_arrays"]

#: Float thresholds are searched over [-FLOAT_RANGE, FLOAT_RANGE] (beyond it the
#: sign cannot change any more for sane constants, and nothing overflows).
FLOAT_RANGE = FOLDED_FLOAT_RANGE
_FLOAT_BITS = {np.dtype(np.float32): np.dtype(np.int32), np.dtype(np.float64): np.dtype(np.int64)}


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


class Affine:
    """``f(dot) = bn_affine(dense_affine(dot, scale, bias), *bn)`` of one dense
    (+ batch norm) layer, as the unfolded model evaluates it; ``bn`` is
    ``(mean, k, beta)`` or None; ``negative(d)`` is ``f(d) < 0`` elementwise."""

    def __init__(self, scale, bias, bn, dtype, n):
        self.scale, self.bias, self.bn, self.dtype, self.n = scale, bias, bn, np.dtype(dtype), int(n)

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


def _int_values(keys):
    return np.array(keys, np.float64)


def int_thresholds(affine, bound):
    """Integer thresholds for integer ``dot`` in [-bound, bound]."""
    n = affine.n
    t, flip = _search(affine.negative, [-bound] * n, [bound] * n, _int_values)
    return np.array(t, dtype=np.int64), flip


def float_thresholds(affine):
    """Float thresholds for float ``dot`` (any value up to FLOAT_RANGE)."""
    n = affine.n
    _, top = _float_keys(affine.dtype)
    to_value = lambda keys: _keys_to_floats(keys, affine.dtype)  # noqa: E731
    t, flip = _search(affine.negative, [-top] * n, [top] * n, to_value)
    return _keys_to_floats(t, affine.dtype), flip


def _floats_to_keys(values, dtype):
    """Floats -> their ordered integer keys (int64; the inverse of :func:`_keys_to_floats`)."""
    ints, _ = _float_keys(dtype)
    bits = np.ascontiguousarray(values, dtype=dtype).view(ints).astype(np.int64)
    magnitude = bits & np.int64((1 << (8 * ints.itemsize - 1)) - 1)
    return np.where(bits < 0, -magnitude, magnitude)


def _disagreement(negative, t, flip, lo, hi, to_value):
    """The first output ``j`` whose stored threshold ``(t[j], flip[j])`` (integer keys, int64) does
    not describe ``negative`` on [lo, hi], or None. ``negative`` is monotone (every rounding of
    ``f`` is), so it equals the monotone claim ``v < t`` (``v > t`` with flip) on the whole domain
    exactly when the two agree at ``lo``, ``hi`` and on both sides of the claim's change point:
    four evaluations per output instead of a search."""
    t = np.asarray(t, dtype=np.int64)
    flip = np.asarray(flip, dtype=bool)
    before = np.where(flip, t, t - 1)  # the claim changes between `before` and `before + 1`
    for point in (np.full(t.shape, lo), np.full(t.shape, hi), np.clip(before, lo, hi),
                  np.clip(before + 1, lo, hi)):
        claim = np.where(flip, point > t, point < t)
        wrong = np.flatnonzero(negative(to_value(point.tolist())) != claim)
        if wrong.size:
            return int(wrong[0])
    return None


# ---------------------------------------------------------------------------
# The evaluation-time constants of a layer, from its arrays
# ---------------------------------------------------------------------------
def _scale(arrays, i, n, dtype, uint8_input):
    """``dense_affine``'s scale: ``alpha`` (or None), times the input scale, times 1/255 for
    raw pixels (``fastbin.reference.binary_eval_scale``)."""
    return binary_eval_scale(arrays.get(f"{i}.alpha"), arrays.get(f"{i}.input_scale"), n, dtype, uint8_input)


def _bias(arrays, i, weights, dtype):
    """``dense_affine``'s bias of a binary layer: ``b - input_offset @ W_eff`` times the
    input scale (the input offset folded in, ``fastbin.reference.offset_bias``), or None."""
    return offset_bias(arrays.get(f"{i}.b"), arrays.get(f"{i}.input_offset"), weights.signs,
                       _scale(arrays, i, weights.packed.rows, dtype, False), dtype)


def _bn(arrays, j, layers, dtype):
    """``(mean, k, beta)`` of batch norm layer ``j`` (``k = gamma / sqrt(var + eps)``)."""
    if j is None:
        return None
    gamma, var = arrays[f"{j}.gamma"], arrays[f"{j}.running_var"]
    k = bn_scale(gamma, var, layers[j]["eps"], dtype)
    return arrays[f"{j}.running_mean"].copy(), k, arrays[f"{j}.beta"].copy()


def _affine(layers, arrays, i, bn, weights, dtype, uint8_input):
    n = layers[i]["n_out"]
    return Affine(_scale(arrays, i, n, dtype, uint8_input), _bias(arrays, i, weights, dtype),
                  _bn(arrays, bn, layers, dtype), dtype, n)


def _stage_domains(layers, arrays, i, bn, weights, dtype, first):
    """input kind -> ``(affine, lo, hi, keys -> values)`` of one sign stage: the first stage
    sees model input (uint8: integer dots in [-255 n_in, 255 n_in]; float: float keys up to
    FLOAT_RANGE), the others packed signs (integer dots in [-n_in, n_in])."""
    n_in = layers[i]["n_in"]
    if not first:
        return {"packed": (_affine(layers, arrays, i, bn, weights, dtype, False), -n_in, n_in, _int_values)}
    _, top = _float_keys(dtype)
    return {"uint8": (_affine(layers, arrays, i, bn, weights, dtype, True), -255 * n_in, 255 * n_in, _int_values),
            "float": (_affine(layers, arrays, i, bn, weights, dtype, False), -top, top,
                      lambda keys: _keys_to_floats(keys, dtype))}


def _stage_thresholds(layers, arrays, i, bn, weights, dtype, first):
    """The searched ``(t, flip)`` of each input kind of one sign stage."""
    found = {}
    for kind, (affine, _, hi, _) in _stage_domains(layers, arrays, i, bn, weights, dtype, first).items():
        found[kind] = int_thresholds(affine, hi) if kind != "float" else float_thresholds(affine)
    return found


def layer_arrays(layers, arrays, dtype, engine):
    """A model file's layer arrays in the form :func:`fold_arrays` takes: floats
    cast to ``dtype``, latent binary weights ``"<i>.W"`` packed (``"<i>.W_bits"``)
    with ``alpha = mean|W|`` when the layer has ``scale``. ``folded.*`` arrays are
    left out."""
    dtype = np.dtype(dtype)
    out = {}
    for name, value in arrays.items():
        if name.startswith("folded."):
            continue
        out[name] = value if isinstance(value, PackedSigns) else np.ascontiguousarray(value, dtype=dtype)
    for i, layer in enumerate(layers):
        if layer["kind"] in ("dense", "conv2d") and layer["binary"] and f"{i}.W" in out:
            w = out.pop(f"{i}.W")
            out[f"{i}.W_bits"] = engine.pack_weights(w)
            if layer["scale"]:
                out[f"{i}.alpha"] = np.mean(np.abs(w), axis=0, dtype=dtype)
    return out


def _thresholds_from(layers, arrays, i, bn, weights, dtype, first, folded):
    """The stored ``(t, flip)`` of one sign stage, each checked against the folding of the
    layers (:func:`_disagreement`) before anything trusts it: ``ValueError`` naming the arrays
    and the first output they get wrong."""
    found = {}
    for kind, (affine, lo, hi, to_value) in _stage_domains(layers, arrays, i, bn, weights, dtype, first).items():
        t = folded[f"folded.{i}.{kind}_t"]
        flip = np.ascontiguousarray(folded[f"folded.{i}.{kind}_flip"], dtype=bool)
        if kind == "float":
            t = np.ascontiguousarray(t.view(dtype))
            keys = _floats_to_keys(t, dtype)
        else:
            t = keys = np.ascontiguousarray(t.astype(np.int64, copy=False))
        if t.shape != (affine.n,) or flip.shape != (affine.n,):
            raise ValueError(f"folded.{i}.{kind}_t/_flip must have shape ({affine.n},)")
        j = _disagreement(affine.negative, keys, flip, lo, hi, to_value)
        if j is not None:
            raise ValueError(f"the stored thresholds folded.{i}.{kind}_t and folded.{i}.{kind}_flip do not fold "
                             f"the layers: output {j} would get other signs than layer {i}'s evaluation gives")
        found[kind] = (t, flip)
    return found


def fold_arrays(layers, arrays, dtype, engine, *, folded=None) -> InferenceModel:
    """The folded model of ``layers`` (configs) and ``arrays`` (see the module
    doc) on ``engine``. ``folded``: the stored ``"folded.*"`` arrays of a folded
    model file (thresholds taken from them, no search, once checked against the
    layers: ``ValueError`` when they do not fold them), or None (searched)."""
    dtype = np.dtype(dtype)
    plan, tail = fold_plan(layers)
    stages = []
    for s, (i, bn) in enumerate(plan):
        weights = SignWeights(engine, arrays[f"{i}.W_bits"], dtype)
        if folded is not None:
            thresholds = _thresholds_from(layers, arrays, i, bn, weights, dtype, s == 0, folded)
        else:
            thresholds = _stage_thresholds(layers, arrays, i, bn, weights, dtype, s == 0)
        stages.append(SignStage(engine, weights, thresholds, dtype))
        stages[-1].layer_index = i
    ops = []
    for i in range(tail, len(layers)):
        layer = layers[i]
        if layer["kind"] == "dense":
            if layer["binary"]:
                weights = SignWeights(engine, arrays[f"{i}.W_bits"], dtype)
                n = layer["n_out"]
                ops.append(BinaryDense(engine, weights, _scale(arrays, i, n, dtype, False),
                                       _scale(arrays, i, n, dtype, True), _bias(arrays, i, weights, dtype), dtype))
            else:
                ops.append(FloatDense(arrays[f"{i}.W"], arrays.get(f"{i}.b"), arrays.get(f"{i}.input_offset"), dtype,
                                      input_scale=arrays.get(f"{i}.input_scale")))
        elif layer["kind"] == "batchnorm":
            ops.append(BatchNormOp(*_bn(arrays, i, layers, dtype)))
        else:
            ops.append(Activation(layer["kind"], engine))
    if ops:
        n_in = layers[tail]["n_in"] if layers[tail]["kind"] == "dense" else stages[-1].n_out
        stages.append(FloatStage(engine, ops, n_in, dtype))
    model = InferenceModel(stages, layers[0]["n_in"], dtype, engine)
    model.input_scaled = bool(layers[0].get("input_scale"))
    return model


def threshold_arrays(model: InferenceModel) -> dict:
    """The ``"folded.*"`` arrays a folded model file stores for ``model`` (from
    :func:`fold_arrays` on a layer list whose dense layers are numbered as in the
    file; the stage's dense index is recorded on it)."""
    out = {}
    for stage in model.stages:
        if not isinstance(stage, SignStage):
            continue
        for kind, (t, flip) in stage.thresholds.items():
            if kind == "float":
                t = np.ascontiguousarray(t).view(_FLOAT_BITS[t.dtype])
            else:
                n_in = stage.weights.packed.n_bits
                t = t.astype(threshold_dtype((255 * n_in if kind == "uint8" else n_in) + 1))
            out[f"folded.{stage.layer_index}.{kind}_t"] = np.ascontiguousarray(t)
            out[f"folded.{stage.layer_index}.{kind}_flip"] = np.ascontiguousarray(flip, dtype=bool)
    return out


def search_thresholds(layers, arrays, dtype, engine) -> dict:
    """The ``"folded.*"`` arrays of a folded model file: :func:`fold_arrays`'s
    threshold search, stored."""
    return threshold_arrays(fold_arrays(layers, arrays, dtype, engine))
