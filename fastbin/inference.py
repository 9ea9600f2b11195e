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

Speed: everything constant is computed by :func:`fold` (packed and ±1
weights, scales, biases, batch-norm factors, thresholds). On the fastbin
backend a sign stage is one product plus one fused threshold + pack kernel
(``fastbin.kernels.model_kernels``), the stages pass raw uint64 words (no
``PackedSigns`` objects, no re-validation), and batches under 16 rows use
unblocked kernels without scratch buffers. The first layer's float product
is :meth:`fastbin.layers.Dense.eval_dot`, the very function the unfolded
model calls, so the products (and the predictions) are bit-identical.
"""
from __future__ import annotations

import numpy as np

from ._options import use_threads
from .kernels.model_kernels import binary_dot_rows, dense_sign_rows
from .kernels.pack import aligned_words
from .layers import BatchNorm, Dense, Sign, _signs, bn_affine, dense_affine, signs_rows_int8
from .models import _EVAL_CHUNK
from .packed import PackedSigns, n_words_for
from ._summary import layer_costs, summary_table  # noqa: F401  (re-exported)

__all__ = ["InferenceModel", "fold", "summary_table", "layer_costs"]  # the last two: fastbin._summary

_CHUNK = _EVAL_CHUNK  # the unfolded model's chunks: the same products, the same bits


_UINT8, _UINT64 = np.dtype(np.uint8), np.dtype(np.uint64)  # (comparing with np.uint8 costs ~0.3 us)

#: Below this many rows the packed products use the unblocked kernels of
#: ``fastbin.kernels.model_kernels`` (no per-call scratch buffers).
_FEW_ROWS = 16

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


def _affine_inplace(dot, scale, bias):
    """:func:`fastbin.layers.dense_affine` on a fresh ``dot`` of ``scale``'s
    (or the model's) dtype, in place: the same operations, so the same bits."""
    if scale is not None:
        np.multiply(dot, scale, out=dot)
    if bias is not None:
        dot += bias
    return dot


class _SignStage:
    """Binary dense (+ batch norm) + sign: float/uint8/packed in, packed out.

    Everything is computed at fold time: packed weights, the ±1 float weights
    of :meth:`Dense.eval_dot` (first layer, fastbin backend), the thresholds;
    a call is one product and one fused threshold + pack kernel."""

    def __init__(self, dense, bn, first):
        self.backend, self.dtype, self.n_out = dense.backend, dense.dtype, dense.n_out
        self.fast = dense.backend.name == "fastbin"
        self.w = dense.packed_weights()
        self.t_int, self.flip_int = int_thresholds(_Affine(dense, bn, False), dense.n_in)
        self.first = first
        if first:
            self.dense = _FrozenDense(dense, self.w)
            self.t_u8, self.flip_u8 = int_thresholds(_Affine(dense, bn, True), 255 * dense.n_in)
            self.t_float, self.flip_float = float_thresholds(_Affine(dense, bn, False))
        if self.fast:
            from .kernels.binary_matmul import binary_dense_sign_kernel, binary_dense_sign_parallel
            from .kernels.model_kernels import threshold_pack

            self._dense_sign, self._dense_sign_parallel = binary_dense_sign_kernel, binary_dense_sign_parallel
            self._threshold_pack = threshold_pack
            self.n_words = n_words_for(self.n_out)
            if not self.w.padding_is_zero():
                raise ValueError("packed weights with non-zero padding bits")

    def __call__(self, a):
        """``a``: float/uint8 (m, n_in) or PackedSigns; returns PackedSigns."""
        be = self.backend
        if self.fast:
            return PackedSigns(self.bits(a.bits if isinstance(a, PackedSigns) else a), self.n_out)
        if isinstance(a, PackedSigns):
            return be.binary_dense_sign(a, self.w, self.t_int, self.flip_int)
        dot, t, flip = self._dot(a)
        negative = np.where(flip, dot > t, dot < t)
        return be.pack_signs(np.where(negative, self.dtype.type(-1), self.dtype.type(1)))

    def _dot(self, a):
        dot = self.dense.eval_dot(a)
        if a.dtype == _UINT8:
            return dot, self.t_u8, self.flip_u8
        return dot.astype(self.dtype, copy=False), self.t_float, self.flip_float

    def bits(self, a):
        """fastbin backend, no wrapper objects: ``a`` float/uint8 (m, n_in) or
        the uint64 words of packed input (from the previous stage, so valid
        by construction); returns the output's uint64 words (m, n_words)."""
        m = a.shape[0]
        out = _words(m, self.n_words)
        if a.dtype == _UINT64:
            if m < _FEW_ROWS:
                kernel = dense_sign_rows
            elif use_threads("binary_matmul", m * self.w.rows * a.shape[1], None):
                kernel = self._dense_sign_parallel
            else:
                kernel = self._dense_sign
            kernel(a, self.w.bits, self.w.n_bits, self.t_int, self.flip_int, out)
            return out
        dot, t, flip = self._dot(a)
        self._threshold_pack(dot, t, flip, out)
        return out


def _words(rows, n_words):
    """Output words: 64-byte aligned for large outputs (``aligned_words``);
    small ones skip its ``ctypes`` call (a microsecond)."""
    if rows * n_words < 4096:
        return np.empty((rows, n_words), np.uint64)
    return aligned_words(rows, n_words)


class _FrozenDense:
    """A dense layer's evaluation path with everything precomputed (packed
    and ±1 float weights, scales, bias); the same operations as
    ``Dense.forward(x, False)``, so the same bits."""

    def __init__(self, dense, packed=None):
        self.layer, self.dtype, self.binary = dense, dense.dtype, dense.binary
        if dense.binary:
            self.packed = dense.packed_weights() if packed is None else packed
            self.signs = self.signs_t = None
            if dense.backend.name == "fastbin":
                self.signs = _signs(dense.params["W"])
                self.signs_t = signs_rows_int8(dense.params["W"])
            self.scale_float, self.scale_u8 = dense.eval_scale(False), dense.eval_scale(True)
            bias = dense.eval_bias()
            self.bias = None if bias is None else bias.copy()

    def eval_dot(self, x):
        return self.layer.eval_dot(x, self.packed, self.signs, self.signs_t)

    def __call__(self, x):
        if not self.binary:
            return self.layer.forward(x, False)
        dot = self.eval_dot(x)
        uint8_input = x.dtype == _UINT8
        if uint8_input or dot.dtype != self.dtype:
            dot = dot.astype(self.dtype)
        return _affine_inplace(dot, self.scale_u8 if uint8_input else self.scale_float, self.bias)

    def packed_input(self, a):
        """On packed ±1 input (PackedSigns, or its uint64 words on the fastbin
        backend): the exact integer ``binary_matmul``."""
        if isinstance(a, PackedSigns):
            dot = self.layer.backend.binary_matmul(a, self.packed)
        else:
            m, n = a.shape[0], self.packed.rows
            if m < _FEW_ROWS:  # exact integers written as floats: the same as astype
                dot = np.empty((m, n), self.dtype)
                binary_dot_rows(a, self.packed.bits, self.packed.n_bits, dot)
                return _affine_inplace(dot, self.scale_float, self.bias)
            from .kernels.binary_matmul import binary_matmul_kernel, binary_matmul_parallel

            dot = np.empty((m, n), np.int32)
            # few outputs (the logits): the threaded kernel measured 36x slower
            # at 8192 x 512 -> 10 on 2 cores (0.22 ms serial vs 8 ms)
            threaded = n >= 64 and use_threads("binary_matmul", m * n * a.shape[1], None)
            (binary_matmul_parallel if threaded else binary_matmul_kernel)(a, self.packed.bits, self.packed.n_bits, dot)
        return _affine_inplace(dot.astype(self.dtype), self.scale_float, self.bias)


class _FrozenBatchNorm:
    def __init__(self, bn):
        self.mean, self.k, self.beta = bn.buffers["running_mean"].copy(), bn.eval_k(), bn.params["beta"].copy()

    def __call__(self, x):
        return bn_affine(x, self.mean, self.k, self.beta)


def _freeze(layer):
    if isinstance(layer, Dense):
        return _FrozenDense(layer)
    if isinstance(layer, BatchNorm):
        return _FrozenBatchNorm(layer)
    return lambda x: layer.forward(x, False)  # activations: nothing to precompute


class _FloatStage:
    """Layers evaluated as in the unfolded model (precomputed); a binary
    dense layer on packed input uses ``binary_matmul`` (exact integer dot)."""

    fast = False  # no packed output: ``_run`` calls it directly

    def __init__(self, layers):
        self.layers = layers
        self.ops = [_freeze(layer) for layer in layers]

    def __call__(self, a):
        ops = self.ops
        if isinstance(a, PackedSigns) or a.dtype == _UINT64:
            first = ops[0]
            if isinstance(first, _FrozenDense) and first.binary:
                a = first.packed_input(a)
                ops = ops[1:]
            else:
                if not isinstance(a, PackedSigns):
                    a = PackedSigns(a, self.layers[0].n_in)
                a = self.layers[0].backend.unpack_signs(a, self.layers[0].dtype)
        for op in ops:
            a = op(a)
        return a


class InferenceModel:
    """Frozen, folded model: ``forward(x)`` logits, ``predict(x)`` classes.
    ``x`` (m, n_in) float in [0, 1] or raw uint8 pixels."""

    def __init__(self, stages, n_in, dtype):
        self.stages, self.n_in, self.dtype = stages, n_in, np.dtype(dtype)

    def forward(self, x):
        if type(x) is not np.ndarray or x.ndim != 2 or x.shape[1] != self.n_in:
            if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.n_in:
                raise ValueError(f"x must be a numpy array (m, {self.n_in}), got {getattr(x, 'shape', type(x))}")
        if x.dtype != self.dtype and x.dtype != _UINT8:
            if x.dtype.kind != "f":
                raise TypeError(f"x must be float or raw uint8, got {x.dtype}")
            x = x.astype(self.dtype)
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        if x.shape[0] <= _CHUNK:
            return self._run(x)
        return np.concatenate([self._run(x[i : i + _CHUNK]) for i in range(0, x.shape[0], _CHUNK)])

    def _run(self, a):
        for stage in self.stages:
            a = stage.bits(a) if stage.fast else stage(a)
        return a

    def predict(self, x):
        return self.forward(x).argmax(axis=1)

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
