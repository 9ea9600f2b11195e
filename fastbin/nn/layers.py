"""Layers for the thin trainer: dense (float or BinaryConnect weights),
activations with straight-through estimators, batch normalisation.

Every layer keeps its trainable arrays in ``params`` and their gradients in
``grads`` (same keys, same shapes); :class:`fastbin.nn.model.Model` moves them
into one flat buffer per clipping group so that an optimizer updates all of a
model's parameters with one fused call. Layers therefore always read
``self.params[...]`` and write gradients *in place* into ``self.grads[...]``.

Float matrix products use NumPy's BLAS (``@``); the backend (``fastbin.ops``
or ``fastbin.reference``, see ``fastbin.ops.backend``) supplies everything
else: signs, the packed products (on the fastbin backend also a binary layer's
training products, see :class:`Dense`), batch norm's training passes (fused
with a following ``Sign`` by :class:`BatchNormSign`), and the loss and update
functions used by the model and the optimizers. With ``backend="reference"``
nothing here calls a jitted kernel.
"""
from __future__ import annotations

import numpy as np

from .._validate import check_fraction, check_int
from ..ops.backend import get_backend
from ..reference import binary_eval_scale, bn_affine, bn_scale, dense_affine, offset_bias

__all__ = [
    "Layer",
    "Dense",
    "Tanh",
    "HardTanh",
    "Sign",
    "BatchNorm",
    "BatchNormSign",
    "Dropout",
    "ACTIVATIONS",
]

_UINT8 = np.dtype(np.uint8)


class Layer:
    """Base class: ``forward(x, training)`` and ``backward(dy, need_dx)``."""

    kind = "layer"

    def __init__(self, backend="fastbin"):
        #: the functions the layer calls (``fastbin.ops.backend``); ``Model``
        #: gives every layer its own
        self.backend = get_backend(backend)
        self.params: dict = {}
        self.grads: dict = {}
        self.clip: dict = {}  # param name -> clip bound or None
        self.buffers: dict = {}  # saved, not trained (running statistics)

    def forward(self, x, training: bool = False):
        raise NotImplementedError

    def backward(self, dy, need_dx: bool = True):
        raise NotImplementedError

    def config(self) -> dict:
        return {"kind": self.kind}

    def _add_param(self, name, value, clip=None):
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        self.clip[name] = clip


class Dense(Layer):
    """``z = x @ W_eff + b`` with ``x`` (m, n_in) and ``W`` (n_in, n_out).

    Float weights: ``W_eff = W``. Binary weights (BinaryConnect):
    ``W_eff = sign(W) * alpha`` with sign(0) = +1, ``alpha`` (n_out,) =
    ``mean |W|`` over the input axis when ``scale`` else 1. The gradient
    w.r.t. ``W_eff`` is applied to the real ``W`` (straight through), which
    the optimizer clips to [-1, 1].

    Training: on the reference backend BLAS on the float ``W_eff``; on the
    fastbin backend a binary layer's forward and ``dx`` are the backend's
    ``dense_sign_matmul(..., exact=False)`` (with ``W.T`` as the weights for
    ``dx``; table lookups where they beat BLAS), or the exact packed
    ``binary_matmul`` when the input is known to be ±1 (``sign_input``); the
    weight gradient ``x.T @ dz`` is BLAS on both. Evaluation of a binary layer
    uses the backend's ``dense_sign_matmul(x, W)`` (``x @ sign(W)``) then
    ``fastbin.reference.dense_affine``; uint8 input means ``x / 255`` and is computed
    exactly in integers (the 1/255 goes into the scale). ``input_offset``
    (scalar or (n_in,), e.g. the training-set mean pixel) is subtracted from
    the input first (centring helps BinaryConnect on [0, 1] pixels); the
    evaluation path folds it into the bias. ``input_scale`` (a number > 0, or
    (n_in,) numbers > 0 for float weights) multiplies the input after the offset:
    the layer computes ``((x - input_offset) * input_scale) @ W_eff + b``, so
    features of any range (standardised with ``offset = mean``, ``scale = 1/std``)
    train and deploy without a separate transform. A binary layer folds its one
    scale into ``dense_affine``'s scale (``fastbin.reference.binary_eval_scale``),
    which a per-feature scale cannot be (``ValueError``).
    """

    kind = "dense"

    def __init__(self, n_in, n_out, *, binary=False, scale=False, bias=True, init="normal",
                 sigma=0.1, rng=None, dtype=np.float32, backend="fastbin", input_offset=None, input_scale=None):
        super().__init__(backend)
        rng = np.random.default_rng(rng)
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.binary, self.scale, self.use_bias = bool(binary), bool(scale), bool(bias)
        self.dtype = np.dtype(dtype)
        self.init = init
        shape = (self.n_in, self.n_out)
        if init == "uniform":  # notebook 1: w ~ rand[0, 1), b = 1
            w, b = rng.random(shape), np.ones(self.n_out)
        elif init == "normal":  # notebook 2: sigma * randn for W and b
            w, b = sigma * rng.standard_normal(shape), sigma * rng.standard_normal(self.n_out)
        elif init == "glorot":
            limit = np.sqrt(6.0 / (self.n_in + self.n_out))
            w, b = rng.uniform(-limit, limit, shape), np.zeros(self.n_out)
        elif init == "zeros":
            w, b = np.zeros(shape), np.zeros(self.n_out)
        else:
            raise ValueError(f"init must be 'uniform', 'normal', 'glorot' or 'zeros', got {init!r}")
        self._add_param("W", w.astype(self.dtype), clip=1.0 if self.binary else None)
        if self.use_bias:
            self._add_param("b", b.astype(self.dtype))
        if input_offset is not None and np.any(input_offset):
            offset = np.broadcast_to(np.asarray(input_offset, dtype=self.dtype), (self.n_in,))
            self.buffers["input_offset"] = np.array(offset)
        if input_scale is not None:
            scale = np.broadcast_to(np.asarray(input_scale, dtype=np.float64), (self.n_in,))
            if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
                raise ValueError("input_scale must hold finite numbers > 0")
            if self.binary and np.any(scale != scale[0]):
                raise ValueError("a binary layer folds one input scale for all its inputs: give input_scale as a "
                                 "number (a per-feature scale needs float weights in the first layer)")
            if np.any(scale != 1):
                self.buffers["input_scale"] = scale.astype(self.dtype)
        self.alpha_override = None  # alpha stored in a packed model file
        #: True when the input is known to be ±1 (``Model`` sets it for a dense
        #: layer right after a ``Sign``): the training forward may then use
        #: the exact packed product
        self.sign_input = False
        self._x = None
        self._w_eff = None

    # -- effective weights ------------------------------------------------
    def alpha(self):
        """Per-output scale (n_out,) of a binary layer, or None (no scale)."""
        if not (self.binary and self.scale):
            return None
        if self.alpha_override is not None:
            return self.alpha_override
        return np.mean(np.abs(self.params["W"]), axis=0, dtype=self.dtype)

    def effective_weights(self):
        """``W_eff`` as a float matrix (n_in, n_out)."""
        w = self.params["W"]
        if not self.binary:
            return w
        w_eff = self.backend.signs(w)
        alpha = self.alpha()
        if alpha is not None:
            w_eff *= alpha
        return w_eff

    def packed_weights(self):
        """``pack_weights(W)``: n_out rows of n_in sign bits (binary layers)."""
        return self.backend.pack_weights(self.params["W"])

    def eval_dot(self, x, packed=None, signs=None, rows=None):
        """``x @ sign(W)`` of a binary layer's evaluation path; ``x`` (m, n_in)
        C-contiguous, uint8 (exact int32 result) or float of the layer's dtype:
        the backend's ``dense_sign_matmul``, the same function (and so the same
        bits) as the folded runtime, which passes its cached ``packed``,
        ``signs`` and ``rows`` forms of ``sign(W)``."""
        w = self.params["W"] if packed is None else packed
        return self.backend.dense_sign_matmul(x, w, signs=signs, rows=rows)

    def eval_bias(self):
        """The ``bias`` of :func:`dense_affine` for the evaluation path:
        ``b - input_offset * colsum(W_eff)`` (the input offset folded in)."""
        bias = self.params["b"] if self.use_bias else None
        if "input_offset" not in self.buffers:
            return bias
        return offset_bias(bias, self.buffers["input_offset"], self.backend.signs(self.params["W"]),
                           self.eval_scale(False), self.dtype)

    def eval_scale(self, uint8_input: bool):
        """The ``scale`` of :func:`dense_affine` for the evaluation path
        (:func:`fastbin.reference.binary_eval_scale`)."""
        return binary_eval_scale(self.alpha(), self.buffers.get("input_scale"), self.n_out, self.dtype, uint8_input)

    # -- forward / backward -------------------------------------------------
    def uint8_training(self) -> bool:
        """Whether the training forward takes raw uint8 pixels itself (the exact integer
        product, :meth:`forward`): a binary layer on the fastbin backend without an input scale."""
        return self.binary and self.backend.sign_products and "input_scale" not in self.buffers

    def _forward_uint8(self, u):
        """Training forward of raw pixels ``u`` (m, n_in) uint8, meaning ``x = u / 255``:
        ``(u @ sign(W)) / 255`` from the exact int32 product (``backend.sign_matmul``: |sums|
        <= 255 * n_in < 2**24, so exact in float too), minus ``input_offset @ sign(W)``, times
        alpha, plus the bias: ``(x - offset) @ W_eff + b`` within float rounding, without the
        float product. The float input (``unit_from_uint8``, offset subtracted) is kept for the
        weight gradient."""
        be = self.backend
        x = be.unit_from_uint8(u, self.dtype)
        z = be.sign_matmul(u, self.packed_weights()).astype(self.dtype)
        z *= self.dtype.type(1 / 255)
        if "input_offset" in self.buffers:
            offset = self.buffers["input_offset"]
            x = x - offset
            z -= (offset @ be.signs(self.params["W"])).astype(self.dtype)
        alpha = self.alpha()
        if alpha is not None:
            z *= alpha
        if self.use_bias:
            z += self.params["b"]
        self._x, self._w_eff = x, None
        return z

    def forward(self, x, training=False):
        bias = self.params["b"] if self.use_bias else None
        if training and x.dtype == np.uint8 and self.uint8_training():
            return self._forward_uint8(x)
        if training or not self.binary:
            if x.dtype == np.uint8:
                x = x.astype(self.dtype) / self.dtype.type(255)
            if "input_offset" in self.buffers:
                x = x - self.buffers["input_offset"]
            if "input_scale" in self.buffers:
                x = x * self.buffers["input_scale"]
            if training and self.sign_input and self.binary and not self.scale and self.backend.sign_products:
                # ±1 input times ±1 weights: BLAS's float sums are exact integers
                # (|dot| <= n_in < 2**24), so the packed XNOR-popcount product
                # gives the same bits, ~10x faster at 256 x 512 -> 512
                be = self.backend
                z = be.binary_matmul(be.pack_signs(x), self.packed_weights()).astype(self.dtype)
                self._w_eff = None  # backward computes sign(W) if it needs it
            elif training and self.binary and self.backend.sign_products:
                # real input times ±1 weights: the fastest product within float
                # rounding (table lookups where they beat BLAS, else BLAS on
                # sign(W)), the scale applied after (x @ (sign(W) * alpha) =
                # (x @ sign(W)) * alpha up to rounding)
                z = self.backend.dense_sign_matmul(x, self.params["W"], exact=False)
                alpha = self.alpha()
                if alpha is not None:
                    z *= alpha
                self._w_eff = None
            else:
                self._w_eff = self.effective_weights()
                z = x @ self._w_eff
            if bias is not None:
                z += bias
            if training:
                self._x = x
            return z
        uint8_input = x.dtype == np.uint8
        if not uint8_input and x.dtype != self.dtype:
            x = x.astype(self.dtype)
        dot = self.eval_dot(np.ascontiguousarray(x))
        if uint8_input or dot.dtype != self.dtype:
            dot = dot.astype(self.dtype)  # exact: |dot| <= 255 * n_in < 2**24
        return dense_affine(dot, self.eval_scale(uint8_input), self.eval_bias())

    def backward(self, dz, need_dx=True):
        x, w_eff = self._x, self._w_eff
        self._weight_grad(x, dz)
        if self.use_bias:
            np.sum(dz, axis=0, out=self.grads["b"])
        self.alpha_override = None  # training resumes from the latent weights
        if not need_dx:
            return None
        if w_eff is None and self.binary and self.backend.sign_products:
            # dz @ (sign(W) * alpha).T = (dz * alpha) @ sign(W.T): the fast product of
            # the forward pass with W.T as the weights (table lookups where they beat BLAS)
            alpha = self.alpha()
            d = dz if alpha is None else dz * alpha
            return self.backend.dense_sign_matmul(np.ascontiguousarray(d), np.ascontiguousarray(self.params["W"].T),
                                                  exact=False)
        if w_eff is None:  # W has not changed since forward: the same sign(W)
            w_eff = self.effective_weights()
        return dz @ w_eff.T

    def _weight_grad(self, x, dz):
        """``grads["W"] <- x.T @ dz`` (BLAS), the gradient the optimizer applies to ``W``."""
        np.matmul(x.T, dz, out=self.grads["W"])

    def config(self):
        config = {"kind": self.kind, "n_in": self.n_in, "n_out": self.n_out, "binary": self.binary,
                  "scale": self.scale, "bias": self.use_bias, "input_offset": "input_offset" in self.buffers}
        if "input_scale" in self.buffers:  # only then: the layer configs of files before input scales stay valid
            config["input_scale"] = True
        return config


class _Activation(Layer):
    def config(self):
        return {"kind": self.kind}


class Tanh(_Activation):
    """``tanh(x)``; backward ``dy * (1 - tanh(x)**2)``."""

    kind = "tanh"

    def forward(self, x, training=False):
        a = np.tanh(x)
        if training:
            self._a = a
        return a

    def backward(self, dy, need_dx=True):
        a = self._a
        return dy * (1 - a * a)


class HardTanh(_Activation):
    """``clip(x, -1, 1)``; backward ``dy * 1{|x| <= 1}``."""

    kind = "hardtanh"

    def forward(self, x, training=False):
        if training:
            self._mask = np.abs(x) <= 1
        return np.clip(x, -1, 1)

    def backward(self, dy, need_dx=True):
        return dy * self._mask


class Sign(_Activation):
    """``sign(x)`` in {-1, +1} (sign(0) = +1); backward is the straight-through
    estimator ``dy * 1{|x| <= 1}`` (the gradient of hard-tanh)."""

    kind = "sign"

    def forward(self, x, training=False):
        if training:
            self._mask = np.abs(x) <= 1
        return self.backend.signs(x)

    def backward(self, dy, need_dx=True):
        return dy * self._mask


ACTIVATIONS = {"tanh": Tanh, "hardtanh": HardTanh, "sign": Sign}


class Dropout(Layer):
    """Inverted dropout on float activations (m, n): in training ``y = x * keep / (1 -
    rate)`` with ``keep`` 1 with probability ``1 - rate`` per element, else 0; backward
    ``dy * keep / (1 - rate)``; at evaluation the identity.

    The mask of a training pass is drawn from ``numpy.random.default_rng([seed, index,
    step])`` (``seed`` None: a random one, drawn once), ``step`` counting the training
    passes; :meth:`fastbin.nn.Model.train_step` sets it to the optimizer's step count, so a
    run resumed from a checkpoint draws the same masks. A :class:`~fastbin.nn.Model` keeps a
    dropout layer in its training stages only (it must directly follow a ``Tanh`` or
    ``HardTanh``): the evaluation path, folding, model files and the runtime never see it.
    """

    kind = "dropout"

    def __init__(self, rate, *, seed=None, index=0):
        super().__init__()
        self.rate = check_fraction("rate", rate)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        self.seed = check_int("seed", seed, minimum=0)
        self.index = check_int("index", index, minimum=0)
        self.step = 0
        self._mask = None

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x
        rng = np.random.default_rng([self.seed, self.index, self.step])
        self.step += 1
        keep = rng.random(x.shape, dtype=x.dtype) >= self.rate
        self._mask = keep * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, dy, need_dx=True):
        if self._mask is None:  # rate 0
            return dy
        return dy * self._mask

    def config(self):
        return {"kind": self.kind, "rate": self.rate}


class BatchNormSign:
    """Training stage of a ``BatchNorm`` followed by a ``Sign``: one backend
    call forward (:meth:`BatchNorm.forward_sign`) and one backward (the batch
    norm's backward with the sign's mask), the same maths as the two layers
    in turn. ``Model`` runs its training passes through such stages."""

    def __init__(self, bn: BatchNorm, sign: Sign):
        self.bn, self.sign = bn, sign

    def forward(self, x, training=True):
        return self.bn.forward_sign(x, self.sign)

    def backward(self, dy, need_dx=True):
        return self.bn.backward(dy, need_dx, mask=self.sign._mask)


class BatchNorm(Layer):
    """Batch normalisation over the batch axis of (m, n); over every axis but
    the last of (..., n), e.g. per channel of images (m, h, w, n): the
    statistics of the (m * h * w, n) view.

    Training: ``y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta`` with the
    batch mean and (biased) variance; the running averages follow
    ``r = momentum * r + (1 - momentum) * batch`` (unbiased variance, as
    PyTorch). Evaluation: :func:`bn_affine` with the running statistics.
    """

    kind = "batchnorm"

    def __init__(self, n, *, momentum=0.9, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.n, self.momentum, self.eps = int(n), float(momentum), float(eps)
        self.dtype = np.dtype(dtype)
        self._add_param("gamma", np.ones(self.n, self.dtype))
        self._add_param("beta", np.zeros(self.n, self.dtype))
        self.buffers["running_mean"] = np.zeros(self.n, self.dtype)
        self.buffers["running_var"] = np.ones(self.n, self.dtype)

    def eval_k(self):
        """``gamma / sqrt(running_var + eps)`` (n,) in the layer's dtype."""
        return bn_scale(self.params["gamma"], self.buffers["running_var"], self.eps, self.dtype)

    def forward(self, x, training=False):
        if not training:
            return bn_affine(x, self.buffers["running_mean"], self.eval_k(), self.params["beta"])
        self._shape = x.shape
        y, self._xhat, self._inv_std = self.backend.batch_norm_train(
            x.reshape(-1, self.n), self.params["gamma"], self.params["beta"], self.buffers["running_mean"],
            self.buffers["running_var"], self.momentum, self.eps)
        return y.reshape(x.shape)

    def forward_sign(self, x, sign):
        """Training forward of this batch norm followed by the ``Sign`` layer
        ``sign``, fused (``backend.batch_norm_sign_train``): returns ``sign(y)``
        and leaves the straight-through mask on ``sign``."""
        self._shape = x.shape
        h, sign._mask, self._xhat, self._inv_std = self.backend.batch_norm_sign_train(
            x.reshape(-1, self.n), self.params["gamma"], self.params["beta"], self.buffers["running_mean"],
            self.buffers["running_var"], self.momentum, self.eps)
        return h.reshape(x.shape)

    def backward(self, dy, need_dx=True, mask=None):
        """``dy = dL/dy``; with ``mask`` (a following ``Sign``'s, see
        :meth:`forward_sign`) ``dy`` is ``dL/dh`` and the estimator's mask is applied first."""
        dx, self.grads["gamma"][...], self.grads["beta"][...] = self.backend.batch_norm_backward(
            dy.reshape(-1, self.n), self._xhat, self._inv_std, self.params["gamma"],
            None if mask is None else mask.reshape(-1, self.n))
        return dx.reshape(self._shape) if need_dx else None

    def config(self):
        return {"kind": self.kind, "n": self.n, "momentum": self.momentum, "eps": self.eps}
