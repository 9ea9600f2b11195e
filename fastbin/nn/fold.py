"""Folding a trained model for inference: binary dense + batch norm + sign
-> integer thresholds on packed bits (the runtime's stages, see
:mod:`fastbin.runtime.model` for what a stage computes).

The thresholds are found by a vectorised binary search that evaluates *the
same float formula* the unfolded model uses (``fastbin.reference.dense_affine``
then ``bn_affine``), over the integers (packed or uint8 input: ``dot`` is an
exact integer, the 1/255 of raw pixels sits in the scale) or over the ordered
float values (float input), so the folded model's signs, and so its
predictions, equal the unfolded model's bit for bit, ties included.
"""
from __future__ import annotations

import numpy as np

from ..reference import bn_affine, dense_affine
from ..runtime.engines import engine_for
from ..runtime.model import (
    Activation,
    BatchNormOp,
    BinaryDense,
    FloatDense,
    FloatStage,
    InferenceModel,
    SignStage,
    SignWeights,
)
from .layers import BatchNorm, Dense, Sign

__all__ = ["Affine", "fold", "int_thresholds", "float_thresholds", "FLOAT_RANGE"]


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


class Affine:
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


def _sign_weights(dense):
    """``sign(W)`` of a binary layer in the three forms of ``SignWeights``."""
    be, w = dense.backend, dense.params["W"]
    signs = be.signs(w)
    return SignWeights(be, be.pack_weights(w), signs, np.ascontiguousarray(signs.T).astype(np.int8))


def _sign_stage(engine, dense, bn, first):
    weights = _sign_weights(dense)
    if not weights.packed.padding_is_zero():
        raise ValueError("packed weights with non-zero padding bits")
    thresholds = {"packed": int_thresholds(Affine(dense, bn, False), dense.n_in)}
    if first:
        thresholds["uint8"] = int_thresholds(Affine(dense, bn, True), 255 * dense.n_in)
        thresholds["float"] = float_thresholds(Affine(dense, bn, False))
    return SignStage(engine, weights, thresholds, dense.dtype)


def _copy(a):
    return None if a is None else a.copy()


def _float_op(engine, layer):
    """The runtime op of one layer of the float tail (arrays copied: the
    folded model does not change when training goes on)."""
    if isinstance(layer, Dense):
        if layer.binary:
            return BinaryDense(engine, _sign_weights(layer), layer.eval_scale(False), layer.eval_scale(True),
                               _copy(layer.eval_bias()), layer.dtype)
        return FloatDense(layer.params["W"].copy(), _copy(layer.params.get("b")),
                          _copy(layer.buffers.get("input_offset")), layer.dtype)
    if isinstance(layer, BatchNorm):
        return BatchNormOp(layer.buffers["running_mean"].copy(), layer.eval_k(), layer.params["beta"].copy())
    return Activation(layer.kind, layer.backend)


def fold(model) -> InferenceModel:
    """Fold ``model`` (a :class:`fastbin.nn.model.Model`) for inference: every
    binary dense (+ batch norm) + sign at the front becomes a ``SignStage``,
    the rest one ``FloatStage``."""
    engine = engine_for(model.backend.name)
    stages, rest, i = [], [], 0
    layers = model.layers
    while i < len(layers):
        dense = layers[i]
        j = i + 1
        bn = layers[j] if j < len(layers) and isinstance(layers[j], BatchNorm) else None
        j += bn is not None
        sign = j < len(layers) and isinstance(layers[j], Sign)
        if isinstance(dense, Dense) and dense.binary and sign and not rest:
            stages.append(_sign_stage(engine, dense, bn, first=i == 0))
            i = j + 1
        else:
            rest.append(dense)
            i += 1
    if rest:
        n_in = rest[0].n_in if isinstance(rest[0], Dense) else stages[-1].n_out
        stages.append(FloatStage(engine, [_float_op(engine, layer) for layer in rest], n_in, model.dtype))
    return InferenceModel(stages, model.n_in, model.dtype, model.backend)
