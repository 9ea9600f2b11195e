"""A folded model: stages of precomputed arrays that run a forward pass.

What folding means (:mod:`fastbin.runtime.fold` builds these objects from the
arrays of a model file or of a trained model): a binary dense layer followed
by an optional batch norm and ``sign`` computes, per output ``j``,
``sign(f_j(dot_j))`` with ``dot = x @ sign(W)`` and ``f_j`` the
evaluation-time affine maps. ``f_j`` is monotone in ``dot``, so ``f_j(dot) <
0`` exactly where ``dot < t_j`` (or ``dot > t_j`` where ``flip_j``): a
:class:`SignStage` is one product and one threshold test, and its output stays
packed. The layers after the last sign stage form a :class:`FloatStage`
(float logits).

One protocol for every stage: ``stage(a) -> array``, ``a`` float/uint8 rows
(the model input) or the raw uint64 words (m, n_words) of the previous stage;
the result is raw words (sign stages) or floats (the float stage). Every
packed-word operation and the real-valued product ``x @ sign(W)`` are the
engine's (:mod:`fastbin.runtime.engines`); the numba engine's real-valued
product is ``fastbin.ops.dense_sign_matmul``, the function the trainable model
calls, so folded and unfolded predictions are bit-identical. Nothing here
imports the trainer, or Numba.
"""
from __future__ import annotations

import numpy as np

from .. import _tables
from .._validate import check_model_input
from ..reference import bn_affine, dense_affine, softmax

__all__ = ["InferenceModel", "certified_classes", "SignStage", "FloatStage", "SignWeights", "BinaryDense", "FloatDense",
           "BatchNormOp", "Activation"]

_UINT8, _UINT64 = np.dtype(np.uint8), np.dtype(np.uint64)


class SignWeights:
    """``sign(W)`` of a binary dense layer in the forms its products use:
    ``packed`` (``pack_weights(W)``, (n_out, n_in) bits), ``signs`` (±1
    (n_in, n_out) of the model dtype, C-contiguous), and whatever else the
    engine's products keep (``engine.weight_forms``: e.g. ±1 int8 rows for the
    few-row kernel), as attributes; ``dot(x)`` is the engine's ``sign_dot``."""

    def __init__(self, engine, packed, dtype):
        self.engine, self.packed = engine, packed
        self.signs = np.ascontiguousarray(engine.unpack_signs(packed, dtype).T)
        for name, value in engine.weight_forms(packed, self.signs, np.dtype(dtype)).items():
            setattr(self, name, value)
        self._signs64 = None

    @property
    def signs64(self):
        """``sign(W)`` (n_in, n_out) ±1 float64, C-contiguous, for the exact float
        product on many rows; made on first use (two threads may both make it)."""
        if self._signs64 is None:
            self._signs64 = self.signs.astype(np.float64)
        return self._signs64

    def dot(self, x):
        """The exact ``x @ sign(W)`` (``fastbin.reference.dense_sign_matmul``)."""
        return self.engine.sign_dot(x, self)


class SignStage:
    """Binary dense (+ batch norm) + sign: float/uint8 rows (first stage only)
    or packed words in, packed words (m, ceil(n_out/64)) out.

    ``thresholds``: dict input kind -> ``(t, flip)``: ``"packed"`` (int64
    thresholds on the integer dot of ±1 input), and for the first stage
    ``"uint8"`` (int64, on the exact integer dot of raw pixels) and
    ``"float"`` (model dtype, on the float dot)."""

    kind = "sign"
    #: index of the stage's dense layer in the model's layer list (set by the fold)
    layer_index = None

    def __init__(self, engine, weights: SignWeights, thresholds: dict, dtype):
        self.engine, self.weights, self.thresholds, self.dtype = engine, weights, thresholds, np.dtype(dtype)
        self.n_out = weights.packed.rows

    def __call__(self, a):
        if a.dtype == _UINT64:
            t, flip = self.thresholds["packed"]
            return self.engine.dense_sign(a, self.weights, t, flip)
        if a.dtype == _UINT8:
            t, flip = self.thresholds["uint8"]
            dot = self.weights.dot(a)
        else:  # a dot on the same side of each threshold as the exact product
            t, flip = self.thresholds["float"]
            dot = self.engine.sign_threshold_dot(a, self.weights, t).astype(self.dtype, copy=False)
        return self.engine.threshold(dot, t, flip)


class BinaryDense:
    """A binary dense layer's evaluation path, everything precomputed:
    ``dot * scale + bias`` (``fastbin.reference.dense_affine``) with
    ``dot = x @ sign(W)``; ``scale_uint8`` holds the 1/255 of raw pixels."""

    kind = "binary_dense"

    def __init__(self, engine, weights: SignWeights, scale_float, scale_uint8, bias, dtype):
        self.engine, self.weights, self.dtype = engine, weights, np.dtype(dtype)
        self.scale_float, self.scale_uint8, self.bias = scale_float, scale_uint8, bias

    def __call__(self, x):
        dot = self.weights.dot(x)
        uint8_input = x.dtype == _UINT8
        if uint8_input or dot.dtype != self.dtype:
            dot = dot.astype(self.dtype)
        return dense_affine(dot, self.scale_uint8 if uint8_input else self.scale_float, self.bias, out=dot)

    def packed_input(self, a):
        """On packed ±1 input (raw words): the exact integer product."""
        dot = self.engine.binary_dot(a, self.weights, self.dtype)
        return dense_affine(dot, self.scale_float, self.bias, out=dot)


class FloatDense:
    """A float dense layer: ``((x - input_offset) * input_scale) @ W + b``, uint8 input
    meaning ``x / 255``."""

    kind = "dense"

    def __init__(self, w, bias, input_offset, dtype, input_scale=None):
        self.w, self.bias, self.input_offset, self.dtype = w, bias, input_offset, np.dtype(dtype)
        self.input_scale = input_scale

    def __call__(self, x):
        if x.dtype == _UINT8:
            x = x.astype(self.dtype) / self.dtype.type(255)
        if self.input_offset is not None:
            x = x - self.input_offset
        if self.input_scale is not None:
            x = x * self.input_scale
        z = x @ self.w
        if self.bias is not None:
            z += self.bias
        return z


class BatchNormOp:
    """Batch norm at evaluation time (``fastbin.reference.bn_affine``)."""

    kind = "batchnorm"

    def __init__(self, mean, k, beta):
        self.mean, self.k, self.beta = mean, k, beta

    def __call__(self, x):
        return bn_affine(x, self.mean, self.k, self.beta)


class Activation:
    """``tanh``, ``hardtanh`` (``clip(x, -1, 1)``) or ``sign`` (±1,
    sign(0) = +1, the engine's ``signs``)."""

    def __init__(self, kind, engine):
        if kind not in ("tanh", "hardtanh", "sign"):
            raise ValueError(f"unknown activation {kind!r}")
        self.kind, self.engine = kind, engine

    def __call__(self, x):
        if self.kind == "tanh":
            return np.tanh(x)
        if self.kind == "hardtanh":
            return np.clip(x, -1, 1)
        return self.engine.signs(x)


class FloatStage:
    """The layers after the last sign stage, evaluated in floats. On packed
    input a binary first layer takes the exact integer product; any other
    first layer sees the ±1 floats."""

    kind = "float"

    def __init__(self, engine, ops, n_in, dtype):
        self.engine, self.ops, self.n_in, self.dtype = engine, list(ops), int(n_in), np.dtype(dtype)

    def __call__(self, a):
        ops = self.ops
        if a.dtype == _UINT64:
            if isinstance(ops[0], BinaryDense):
                a = ops[0].packed_input(a)
                ops = ops[1:]
            else:
                a = self.engine.unpack(a, self.n_in, self.dtype)
        for op in ops:
            a = op(a)
        return a


def certified_classes(stage, x):
    """:func:`_certified_block` on a probe of ``_tables.ENGINE["certify_probe_rows"]`` rows, then
    on the rest, or, when the probe was mostly near ties (a model whose logits tie everywhere,
    such as notebook 1's initial all-positive weights), the exact argmax of the rest: a
    tie-heavy model pays the probe's block twice and no more."""
    head = x[: _tables.ENGINE["certify_probe_rows"]]
    classes, unsure = _certified_block(stage, head)
    if x.shape[0] == head.shape[0]:
        return classes
    rest = x[head.shape[0]:]
    if 2 * unsure > head.shape[0]:
        tail = np.argmax(stage(rest), axis=1)
    else:
        tail = _certified_block(stage, rest)[0]
    return np.concatenate([classes, tail])


def _certified_block(stage, x):
    """``argmax(stage(x), axis=1)`` (the first maximum) for float rows ``x`` through a float
    stage of one ``BinaryDense`` (+ ``BatchNormOp``), mostly without its exact product: the
    engine's ``sign_dot_interval`` bounds each exact product, the tail's own float maps
    (monotone per output: every rounding is) carry the bounds to the logits, and a row
    whose best lower bound beats every other output's upper bound has that class. The
    other rows (near ties) are computed exactly. The same classes as the exact logits'.
    Returns ``(classes, number of rows computed exactly)``."""
    dense = stage.ops[0]
    lo, hi = stage.engine.sign_dot_interval(x, dense.weights)
    ends = [dense_affine(end, dense.scale_float, dense.bias, out=end) for end in (lo, hi)]
    if len(stage.ops) == 2:
        ends = [stage.ops[1](end) for end in ends]
    low, up = np.minimum(ends[0], ends[1]), np.maximum(ends[0], ends[1])
    rows = np.arange(x.shape[0])
    classes = np.argmax(low, axis=1)
    best = low[rows, classes]
    up[rows, classes] = -np.inf
    unsure = np.flatnonzero(~(best > up.max(axis=1)))  # NaN compares False: recomputed
    if unsure.size:
        classes[unsure] = np.argmax(stage(x[unsure]), axis=1)
    return classes, unsure.size


def _certifiable(stages, engine):
    """Whether ``predict`` on float rows may take :func:`certified_classes`: one float
    stage of a binary dense layer (+ batch norm), on an engine with ``sign_dot_interval``."""
    if len(stages) != 1 or not isinstance(stages[0], FloatStage) or not hasattr(engine, "sign_dot_interval"):
        return False
    ops = stages[0].ops
    return isinstance(ops[0], BinaryDense) and len(ops) <= 2 and all(isinstance(op, BatchNormOp) for op in ops[1:])


class InferenceModel:
    """Frozen, folded model: ``logits(x)`` (also ``forward``) (m, n_classes),
    ``predict(x)`` classes (m,) int64, ``predict_proba(x)`` their softmax. ``x`` (m, n_in) float in [0, 1] or raw
    uint8 pixels, checked by ``fastbin._validate.check_model_input``.
    ``engine`` is the engine class it runs on (``engine.name``: ``"numba"`` or
    ``"numpy"``). Holds no per-call state: safe to call from several threads.
    ``input_scaled``: the model scales its input (``input_scale``), so it takes features,
    not pixels (the C export refuses it)."""

    input_scaled = False
    #: rows per forward pass; None: the engine's ``eval_chunk``
    eval_chunk = None
    #: ``fastbin.runtime._warm.Warmup`` while the numba engine compiles behind this numpy-engine model
    warmup = None

    def __init__(self, stages, n_in, dtype, engine):
        self.stages, self.n_in, self.dtype = list(stages), int(n_in), np.dtype(dtype)
        self.engine = engine
        fuse = getattr(engine, "fuse", None)
        #: the engine's one-call forward pass of this model (``fastbin.runtime._fused``), or None
        self.fused = fuse(self) if fuse is not None else None
        #: the fused pass's ``quick(x, predict)`` (``fastbin.runtime._fused.Fused.quick``: the common
        #: batch, unchecked, in a few steps, else None), or None where it has none
        self._quick = getattr(self.fused, "quick", None)
        #: ``predict`` on float rows through a float tail certifies classes from bounds
        self.certify = _certifiable(self.stages, engine)

    def logits(self, x):
        quick = self._quick
        if quick is not None:  # the common batch straight to the fused pass, else None
            logits = quick(x, False)
            if logits is not None:
                return logits
        return self._batch(check_model_input(x, self.n_in, self.dtype), False)

    forward = logits

    def _chunks(self, x, predict):
        if self.warmup is not None:  # a numpy-engine stand-in: switch once the numba engine's is ready
            self.warmup.poll(self)
        if x.shape[0] == 0:  # an empty batch: an empty result of the right shape and dtype, on every engine
            return self._forward(np.zeros((1, self.n_in), x.dtype), predict)[:0]
        chunk = self.eval_chunk or self.engine.eval_chunk
        if x.shape[0] <= chunk:
            return self._forward(x, predict)
        return np.concatenate([self._forward(x[i : i + chunk], predict) for i in range(0, x.shape[0], chunk)])

    def _forward(self, x, predict):
        fused = self.fused
        if fused is not None and fused.takes(x.shape[0]):
            return fused(x, predict)
        if predict and self.certify and x.shape[0] >= _tables.ENGINE["certify_min_rows"] and x.dtype != _UINT8:
            return certified_classes(self.stages[0], x)
        z = self._run(x)
        return z.argmax(axis=1) if predict else z

    def _run(self, a):
        for stage in self.stages:
            a = stage(a)
        return a

    def predict(self, x):
        """Classes (m,) int64: ``argmax(logits(x), axis=1)``, the first maximum; through a
        float tail on float rows mostly without its exact product (:func:`certified_classes`)."""
        quick = self._quick
        if quick is not None:  # the common batch straight to the fused pass, else None
            classes = quick(x, True)
            if classes is not None:
                return classes
        return self._batch(check_model_input(x, self.n_in, self.dtype), True)

    def _batch(self, x, predict):
        """A checked batch: straight to the fused pass when it takes the batch (a batch of one
        is a few steps: no chunking), else ``_chunks``."""
        fused = self.fused
        m = x.shape[0]
        if fused is not None and m and fused.takes(m):
            return fused(x, predict)
        return self._chunks(x, predict)

    def predict_proba(self, x):
        """Class probabilities (m, n_classes) of the model dtype, rows summing to 1:
        ``fastbin.reference.softmax(logits(x))``."""
        return softmax(self.logits(x))

    def summary(self) -> str:
        """Per stage and layer: shape, bytes held, float MACs and binary ops per sample
        (:func:`fastbin.runtime.summary.summary_table`)."""
        from .summary import summary_table

        return summary_table(self)

    def __repr__(self):
        return f"InferenceModel(stages={[s.kind for s in self.stages]})"

    #: ``(reconstructor, (file bytes, engine name))`` for pickling, set by ``fastbin.runtime.load``/``loads``
    _reduced = None

    def __reduce__(self):
        """Pickles as its model file's bytes and its engine's name: unpickling
        (``fastbin.runtime.loads``) checks and folds the file again, and the engine
        compiles (or loads its cache) on the receiving side; no compiled code
        travels. A model not loaded from a file (e.g. ``fastbin.nn``'s
        ``to_inference()``) has no bytes: ``TypeError``; save the trained model
        and load the file instead."""
        if self._reduced is None:
            raise TypeError("this InferenceModel was not loaded from a model file, so it cannot be pickled: "
                            "save the trained model (model.save(path)) and use fastbin.runtime.load(path)")
        return self._reduced
