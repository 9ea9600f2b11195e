"""Models: softmax regression and MLPs with float or binary weights and
activations, trained through a backend (``"fastbin"`` or ``"reference"``).

>>> from fastbin.nn import softmax_regression, mlp, load
>>> from fastbin.nn import Adam
>>> model = mlp([784, 200, 100, 10], activation="tanh", seed=0)
>>> loss = model.train_step(x, labels, Adam(1e-3))     # x float32 (m, 784)
>>> loss, acc = model.evaluate(x_test, y_test)
>>> model.save("mlp.fbm"); model = load("mlp.fbm")

The loss is the mean softmax cross-entropy (``backend.softmax_cross_entropy``;
softmax regression without a scale uses the fused
``backend.linear_softmax_cross_entropy``). Notebook 2 minimised the *sum*
over the batch; Adam is invariant to that constant factor (up to ``eps``).
"""
from __future__ import annotations

import math
import os

import numpy as np

from .._limits import EVAL_CHUNK
from .._validate import check_fraction, check_int, check_labels, check_model_input
from ..io.modelfile import ModelFileError, save_arrays
from ..io.modelschema import FORMAT, FORMAT_VERSION, load_model_arrays_bytes
from ..ops.backend import get_backend
from ..packed import PackedSigns
from ..reference import softmax
from ..runtime.conv import fold_conv
from ..runtime.engines import engine_for
from ..runtime.fold import layer_arrays, search_thresholds
from ..runtime.load import read_model
from .conv import Conv2D, Flatten, MaxPool2D
from .fold import fold, fold_inputs
from .layers import ACTIVATIONS, BatchNorm, BatchNormSign, Dense, Dropout, HardTanh, Layer, Sign, Tanh
from .summary import summary_table

__all__ = ["Model", "ConvModel", "softmax_regression", "mlp", "sequential", "bnn_conv", "load", "FORMAT"]

# ``FORMAT`` (``meta["format"]`` of fastbin model files) and ``FORMAT_VERSION`` live with
# the schema, in fastbin.io.modelschema.


class Model:
    """A stack of layers with a softmax cross-entropy head.

    Parameters that share a clip bound live in one flat buffer (``groups``),
    so an optimizer step is one fused update per group. ``Dropout`` layers in
    ``layers`` (each directly after a ``Tanh`` or ``HardTanh``) run in the
    training passes only (``train_stages``); ``self.layers``, what evaluation,
    folding and model files use, leaves them out."""

    #: rows per evaluation pass of :meth:`forward` (bounds the memory of a large batch)
    eval_chunk = EVAL_CHUNK

    def __init__(self, layers, *, kind, config, backend="fastbin", dtype=np.float32):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if isinstance(layer, Dropout) and (i == 0 or not isinstance(layers[i - 1], (Tanh, HardTanh))):
                raise ValueError("a Dropout layer must directly follow a tanh or hardtanh activation (dropout "
                                 "acts on float activations)")
        self.dropout = [layer for layer in layers if isinstance(layer, Dropout)]
        self.layers: list[Layer] = [layer for layer in layers if not isinstance(layer, Dropout)]
        self.kind = kind
        self.config = dict(config)
        self.backend = get_backend(backend)
        self.dtype = np.dtype(dtype)
        self.n_in = self.layers[0].n_in
        self.n_classes = [layer for layer in self.layers if isinstance(layer, Dense)][-1].n_out
        for layer in self.layers:
            layer.backend = self.backend
        for before, layer in zip(self.layers, self.layers[1:], strict=False):
            if isinstance(layer, Dense):
                layer.sign_input = isinstance(before, Sign)
        self.train_stages = _training_stages(layers)
        self._flatten()

    def _flatten(self):
        by_clip: dict = {}
        for i, layer in enumerate(self.layers):
            for name, value in layer.params.items():
                by_clip.setdefault(layer.clip[name], []).append((i, layer, name, value))
        self.groups = []
        #: ``"<layer index>.<param>"`` -> ``(group key, offset, size)`` in the flat buffers
        self.param_slices = {}
        for clip, entries in sorted(by_clip.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0)):
            size = sum(v.size for *_, v in entries)
            flat, grad = np.empty(size, self.dtype), np.zeros(size, self.dtype)
            offset = 0
            key = "clip" if clip is not None else "free"
            for i, layer, name, value in entries:
                self.param_slices[f"{i}.{name}"] = (key, offset, value.size)
                view = flat[offset : offset + value.size].reshape(value.shape)
                view[...] = value
                layer.params[name] = view
                layer.grads[name] = grad[offset : offset + value.size].reshape(value.shape)
                offset += value.size
            self.groups.append((key, flat, grad, clip))

    def __setstate__(self, state):
        """Unpickling: pickle stores each parameter as its own array, so the
        layers' parameters and gradients are made views of flat group buffers
        again (``_flatten``), as training needs."""
        self.__dict__.update(state)
        self._flatten()

    # -- inference -----------------------------------------------------------
    def forward(self, x, training=False):
        """Logits (m, n_classes) for ``x`` (m, n_in): float in [0, 1] or raw
        uint8 pixels (meaning ``x / 255``)."""
        x = self.check_input(x)
        if x.shape[0] == 0:  # an empty batch: an empty result, as the runtime's engines give
            return np.empty((0, self.n_classes), self.dtype)
        chunk = self.eval_chunk
        if training or x.shape[0] <= chunk:
            return self._forward(x, training)
        return np.concatenate([self._forward(x[i : i + chunk], False) for i in range(0, x.shape[0], chunk)])

    def check_input(self, x):
        """``x`` checked as a model input (``fastbin._validate.check_model_input``):
        C-contiguous (m, n_in), raw uint8 or float of the model's dtype."""
        return check_model_input(x, self.n_in, self.dtype)

    def _forward(self, h, training):
        for stage in self.train_stages if training else self.layers:
            h = stage.forward(h, training)
        return h

    def predict(self, x):
        """Class indices (m,) int64: ``argmax(forward(x))``."""
        return np.argmax(self.forward(x), axis=1)

    def predict_proba(self, x):
        """Class probabilities (m, n_classes) of the model dtype, rows summing to
        1: ``fastbin.reference.softmax(forward(x))``."""
        return softmax(self.forward(x))

    def evaluate(self, x, labels):
        """``(mean cross-entropy, accuracy)`` on ``x`` (m, n_in) and labels (m,)."""
        logits = self.forward(x)
        labels = check_labels("labels", labels, logits.shape[0], self.n_classes, self.dtype)
        loss, _ = self.backend.softmax_cross_entropy(logits, labels)
        classes = labels if labels.ndim == 1 else np.argmax(labels, axis=1)  # targets (m, c): arg-max class
        return float(loss), float(np.mean(np.argmax(logits, axis=1) == classes))

    # -- training ------------------------------------------------------------
    def train_step(self, x, labels, opt) -> float:
        """One optimizer step on the batch; returns the batch's mean loss
        (before the update). Dropout masks are drawn for the optimizer's step count."""
        for layer in self.dropout:
            layer.step = opt.steps
        loss = self.compute_gradients(x, labels)
        opt.step(self.backend, self.groups)
        return loss

    def compute_gradients(self, x, labels) -> float:
        """Forward in training mode, loss, backward: fills every layer's
        ``grads`` (the flat ``groups`` buffers) and returns the mean loss."""
        x = self.check_input(x)
        labels = check_labels("labels", labels, x.shape[0], self.n_classes, self.dtype)
        first = self.layers[0]
        fused = len(self.layers) == 1 and not first.scale and "input_scale" not in first.buffers
        # raw pixels: the same float32(u) / 255 as the float datasets, one pass; a binary first
        # layer takes them itself (the exact integer product forward, Dense.uint8_training)
        if x.dtype == np.uint8 and (fused or not (type(self.train_stages[0]) is Dense
                                                  and self.train_stages[0].uint8_training())):
            x = self.backend.unit_from_uint8(x, self.dtype)
        if fused:
            return float(self._fused_step(first, x, labels))
        logits = self._forward(x, True)
        loss, d = self.backend.softmax_cross_entropy(logits, labels)
        for i in range(len(self.train_stages) - 1, -1, -1):
            d = self.train_stages[i].backward(d, need_dx=i > 0)
        return float(loss)

    def _fused_step(self, layer, x, labels):
        """Softmax regression: loss and gradients from one fused call
        (``linear_softmax_cross_entropy``; packed sign(W) when binary). An
        input offset mu goes into the bias, ``(x - mu) @ W + b = x @ W +
        (b - mu @ W)``, and out of the weight gradient, ``(x - mu).T @ dz =
        x.T @ dz - outer(mu, sum_i dz)``."""
        if not layer.binary:
            w = layer.params["W"]
        elif self.backend.sign_products:
            # the fused kernel unpacks packed signs to +-1 floats anyway: give it
            # those directly (same values, same results; skips pack + checks)
            w = self.backend.signs(layer.params["W"])
        else:
            w = layer.packed_weights()
        bias = layer.params["b"] if layer.use_bias else np.zeros(layer.n_out, self.dtype)
        offset = layer.buffers.get("input_offset")
        if offset is not None:
            bias = bias - (offset @ layer.effective_weights()).astype(self.dtype)
        loss, dw, db = self.backend.linear_softmax_cross_entropy(x, w, bias, labels)
        if offset is not None:
            dw = dw - np.outer(offset, db).astype(self.dtype)
        layer.grads["W"][...] = dw
        if layer.use_bias:
            layer.grads["b"][...] = db
        layer.alpha_override = None
        return loss

    # -- conversion, files, report -------------------------------------------
    def to_inference(self):
        """The folded model, a ``fastbin.runtime.InferenceModel`` (see
        :mod:`fastbin.nn.fold`)."""
        return fold(self)

    def save(self, path, *, latent=False):
        """Write the model with :func:`fastbin.io.modelfile.save_arrays`. Binary
        weights are stored as packed signs (1 bit each, plus ``alpha``) unless
        ``latent`` (also keep the real-valued weights, to resume training).

        The file (format version 2, ``meta["folded"] = true``) also holds the
        folded form's thresholds and flips (``"folded.*"``, see
        :mod:`fastbin.io.modelschema`), found from the arrays as stored, so that
        ``fastbin.runtime.load`` searches nothing and predicts exactly what
        ``load(path).to_inference()`` predicts.

        The written file is checked with the loader's own schema before it is
        renamed into place (:func:`_loadable`): a model its loader would refuse
        (weights that overflowed to inf, a seed outside [0, 2**128)) raises
        ``ValueError`` and leaves any previous file at ``path`` as it was."""
        layers, meta, arrays = self.file_contents(latent=latent)
        meta["folded"] = True
        arrays.update(_folded_arrays(layers, arrays, self.dtype, self.backend.name))
        save_arrays(path, meta, arrays, check=lambda written: _loadable(written, path))

    def file_contents(self, *, latent=False):
        """``(layer configs, meta, arrays)`` of the model file :meth:`save` writes,
        without the folded thresholds (``meta["folded"] = false``)."""
        layers = [layer.config() for layer in self.layers]
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind, "config": self.config,
                "dtype": self.dtype.name, "layers": layers, "latent": bool(latent), "folded": False}
        arrays = {}
        for i, layer in enumerate(self.layers):
            for name, value in list(layer.params.items()) + list(layer.buffers.items()):
                if name == "W" and layer.binary and not latent:
                    arrays[f"{i}.W_bits"] = layer.backend.pack_weights(value)
                    if layer.scale:
                        arrays[f"{i}.alpha"] = np.ascontiguousarray(layer.alpha())
                else:
                    arrays[f"{i}.{name}"] = np.ascontiguousarray(value)
        return layers, meta, arrays

    def summary(self) -> str:
        """Per-layer table: parameters, bits, bytes, MACs, binary ops, saving."""
        return summary_table(self)

    def parameter_count(self) -> int:
        return int(sum(flat.size for _, flat, _, _ in self.groups))

    def __repr__(self):
        return f"Model({self.kind}, {self.config}, backend={self.backend.name})"


# ---------------------------------------------------------------------------
# Constructors
# ---------------------------------------------------------------------------
def softmax_regression(n_in=784, n_classes=10, *, binary_weights=False, scale=False, init="uniform",
                       input_offset=None, input_scale=None, seed=0, backend="fastbin", dtype="float32"):
    """``softmax(x @ W + b)``. ``init="uniform"`` is notebook 1's
    (``W ~ rand[0, 1)``, ``b = 1``); ``binary_weights`` is BinaryConnect
    (forward with sign(W), W clipped to [-1, 1]); ``scale`` multiplies each
    output by ``alpha = mean|W|``. ``input_offset``, ``input_scale``: the
    input transform ``(x - input_offset) * input_scale`` (see :func:`mlp`)."""
    config = dict(n_in=int(n_in), n_classes=int(n_classes), binary_weights=bool(binary_weights),
                  scale=bool(scale), init=init, input_offset=_offset_config(input_offset), seed=seed)
    if input_scale is not None:
        config["input_scale"] = _offset_config(input_scale)
    _check_sizes([n_in, n_classes])
    layer = Dense(n_in, n_classes, binary=binary_weights, scale=scale, init=init, rng=seed,
                  dtype=dtype, backend=backend, input_offset=input_offset, input_scale=input_scale)
    return Model([layer], kind="softmax_regression", config=config, backend=backend, dtype=dtype)


def mlp(sizes, *, activation="tanh", binary_weights=False, binary_activations=False, batch_norm=None,
        output_bn=None, scale=False, init="normal", sigma=0.1, input_offset=None, input_scale=None, dropout=0.0,
        seed=0, backend="fastbin", dtype="float32"):
    """Multi-layer perceptron ``sizes = [n_in, hidden..., n_classes]``.

    Hidden layer: Dense -> [BatchNorm] -> activation (``"tanh"``,
    ``"hardtanh"`` or ``"sign"``; ``binary_activations=True`` means
    ``"sign"`` with the straight-through estimator). ``batch_norm`` defaults
    to ``binary_activations``; Dense layers followed by batch norm have no
    bias. ``output_bn`` (default: ``binary_activations``) adds a batch norm
    on the logits. ``binary_weights``: every Dense layer uses sign(W)
    (BinaryConnect), optionally times ``alpha = mean|W|`` (``scale``).
    ``init="normal"`` is notebook 2's (``sigma * randn`` for W and b);
    ``"glorot"`` is uniform Glorot with zero biases. ``input_offset`` is
    subtracted from the input: a number (e.g. 0.5) or a vector (n_in,) such as the
    training-set mean image (stored in the model file). ``input_scale`` (a number
    > 0, or (n_in,) numbers > 0 with float weights) multiplies the input after
    the offset: ``(x - input_offset) * input_scale`` is what the first layer
    sees (e.g. ``offset = X.mean(0)``, ``scale = 1 / X.std(0)`` for features of
    any range; stored in the model file, applied by the runtime). ``dropout`` (a rate in
    [0, 1)) adds a :class:`~fastbin.nn.layers.Dropout` after every hidden
    activation (float activations only: not with ``"sign"``), its masks seeded
    from ``seed``; it is recorded in the configuration and absent from the
    evaluation path and the folded model.
    """
    sizes = [int(s) for s in _check_sizes(sizes)]
    dropout = check_fraction("dropout", dropout)
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least [n_in, n_classes], got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if binary_activations:
        activation = "sign"
    binary_activations = activation == "sign"
    if dropout and binary_activations:
        raise ValueError("dropout acts on float activations: a model with activation 'sign' (binary activations) "
                         "has none")
    if dropout and len(sizes) < 3:
        raise ValueError(f"dropout acts on hidden activations: sizes {sizes} has no hidden layer")
    batch_norm = binary_activations if batch_norm is None else bool(batch_norm)
    output_bn = binary_activations if output_bn is None else bool(output_bn)
    config = dict(sizes=sizes, activation=activation, binary_weights=bool(binary_weights),
                  binary_activations=binary_activations, batch_norm=batch_norm, output_bn=output_bn,
                  scale=bool(scale), init=init, sigma=float(sigma), input_offset=_offset_config(input_offset),
                  dropout=dropout, seed=seed)
    if input_scale is not None:
        config["input_scale"] = _offset_config(input_scale)
    rng = np.random.default_rng(seed)
    layers = []
    n_layers = len(sizes) - 1
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == n_layers - 1
        bn = output_bn if last else batch_norm
        layers.append(Dense(n_in, n_out, binary=binary_weights, scale=scale, bias=not bn, init=init,
                            sigma=sigma, rng=rng, dtype=dtype, backend=backend,
                            input_offset=input_offset if i == 0 else None,
                            input_scale=input_scale if i == 0 else None))
        if bn:
            layers.append(BatchNorm(n_out, dtype=dtype))
        if not last:
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(Dropout(dropout, seed=seed, index=i))
    return Model(layers, kind="mlp", config=config, backend=backend, dtype=dtype)


def _output_shape(layer, shape, index):
    """The shape (without the batch axis) ``layer`` maps ``shape`` to."""
    try:
        if hasattr(layer, "output_shape"):
            return tuple(layer.output_shape(shape))
        if isinstance(layer, Dense):
            if shape != (layer.n_in,):
                raise ValueError(f"dense expects ({layer.n_in},) features, gets {shape} (add a Flatten?)")
            return (layer.n_out,)
        if isinstance(layer, BatchNorm):
            if shape[-1] != layer.n:
                raise ValueError(f"batchnorm of {layer.n} channels gets {shape}")
            return shape
        if type(layer) in ACTIVATIONS.values():
            return shape
    except ValueError as exc:
        raise ValueError(f"layers[{index}] ({layer.kind}): {exc}") from None
    raise TypeError(f"layers[{index}] must be a fastbin.nn layer (Conv2D, MaxPool2D, Flatten, Dense, BatchNorm, "
                    f"or an activation), got {type(layer).__name__}")


class ConvModel(Model):
    """A :class:`~fastbin.nn.model.Model` on images: input (m, h, w, c) or
    its rows flattened (m, h * w * c) in NHWC order (what the dataset
    loaders give), raw uint8 pixels or float in [0, 1]. Build it with
    :func:`sequential`. ``fit``, ``evaluate``, ``predict``, ``summary``,
    ``save`` and :func:`load` work as for the MLPs (the file holds the layer
    list, kind ``"conv"``, config ``{"input_shape": [h, w, c]}``, no folded
    section: ``fastbin.runtime.load`` folds it at load); :meth:`to_inference`
    folds it (plain NumPy, ``fastbin.runtime.conv``)."""

    #: images per evaluation pass (the patch matrices grow with h * w * kh * kw * c)
    eval_chunk = 256

    def __init__(self, layers, input_shape, *, backend="fastbin", dtype=np.float32):
        self.input_shape = tuple(int(v) for v in input_shape)
        super().__init__(layers, kind="conv", config={"input_shape": list(self.input_shape)}, backend=backend,
                         dtype=dtype)
        self.n_in = math.prod(self.input_shape)
        signs = False  # ±1 survives max pooling and flattening
        for layer in self.layers:
            if isinstance(layer, Dense):
                layer.sign_input = signs
            signs = isinstance(layer, Sign) or (signs and isinstance(layer, (MaxPool2D, Flatten)))

    def check_input(self, x):
        """Images (m, h, w, c) of :attr:`input_shape` or rows (m, h * w * c),
        checked as an MLP's input (``check_model_input``); returned as rows."""
        if isinstance(x, np.ndarray) and x.ndim == 4:
            if x.shape[1:] != self.input_shape:
                raise ValueError(f"x must be images of shape (m, {', '.join(map(str, self.input_shape))}) or rows "
                                 f"(m, {self.n_in}), got {x.shape}")
            x = x.reshape(x.shape[0], self.n_in)
        return super().check_input(x)

    def _forward(self, h, training):
        return super()._forward(h.reshape(h.shape[0], *self.input_shape), training)

    def to_inference(self):
        """The folded model, a ``fastbin.runtime.conv.ConvInferenceModel`` (plain NumPy):
        integer thresholds per channel, pooling on the sign bits, the same logits bit for
        bit. ``NotImplementedError`` for a layer pattern it does not fold yet."""
        layers, arrays = fold_inputs(self)
        return fold_conv(layers, arrays, self.dtype, self.input_shape)

    def save(self, path, *, latent=False):
        """Write the model file (:meth:`Model.file_contents`; ``meta["folded"]`` false:
        conv models have no folded form yet), checked with the loader's schema before it is
        renamed into place, as :meth:`Model.save`."""
        _, meta, arrays = self.file_contents(latent=latent)
        save_arrays(path, meta, arrays, check=lambda written: _loadable(written, path))


def sequential(layers, input_shape, *, backend="fastbin", dtype="float32") -> ConvModel:
    """A :class:`ConvModel` from ``layers`` (Conv2D, MaxPool2D, Flatten,
    Dense, BatchNorm, activations) on images of ``input_shape`` (h, w, c).
    Every layer's input shape is checked (a clear ``ValueError`` naming the
    layer) and the output must be (n_classes,) from a final Dense (+ BatchNorm)."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in input_shape):
        raise ValueError(f"input_shape must be (height, width, channels) of ints >= 1, got {input_shape!r}")
    layers = list(layers)
    if not layers:
        raise ValueError("layers must not be empty")
    shape = tuple(int(v) for v in input_shape)
    for i, layer in enumerate(layers):
        shape = _output_shape(layer, shape, i)
        if isinstance(layer, Conv2D):
            layer.output_positions = shape[0] * shape[1]
    dense = [layer for layer in layers if isinstance(layer, Dense) and not isinstance(layer, Conv2D)]
    if len(shape) != 1 or not dense or shape != (dense[-1].n_out,):
        raise ValueError(f"the last layers must be Flatten and Dense (+ BatchNorm) giving (n_classes,), got {shape}")
    return ConvModel(layers, input_shape, backend=backend, dtype=dtype)


def bnn_conv(input_shape=(28, 28, 1), n_classes=10, *, channels=(32, 32, 64, 64), activation="sign", scale=False,
             seed=0, backend="fastbin", dtype="float32") -> ConvModel:
    """The issue's network: four binary 3x3 convolutions of ``channels``
    ("same", max pooling 2x2 after the 2nd and 4th), each followed by batch
    norm and ``activation`` (``"sign"``: a fully binary network; the first
    convolution sees the real-valued image, padded with 0), then Flatten,
    a binary Dense layer to ``n_classes`` and a batch norm on the logits.
    ``scale``: alpha per output channel on every binary layer."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    channels = [int(c) for c in channels]
    rng = np.random.default_rng(seed)
    h, w, c = input_shape
    layers = []
    for i, out in enumerate(channels):
        layers.append(Conv2D(c, out, 3, padding="same", pad_value=0 if i == 0 else 1, scale=scale, bias=False,
                             rng=rng, dtype=dtype, backend=backend))
        if i % 2 == 1:
            layers.append(MaxPool2D(2))
            h, w = h // 2, w // 2
        layers += [BatchNorm(out, dtype=dtype), ACTIVATIONS[activation]()]
        c = out
    layers += [Flatten(), Dense(h * w * c, n_classes, binary=True, scale=scale, bias=False, init="glorot", rng=rng,
                                dtype=dtype, backend=backend), BatchNorm(n_classes, dtype=dtype)]
    return sequential(layers, input_shape, backend=backend, dtype=dtype)


def _training_stages(layers):
    """The layers as the training passes run them: each ``BatchNorm`` directly
    followed by a ``Sign`` becomes one fused :class:`BatchNormSign` stage."""
    stages, i = [], 0
    while i < len(layers):
        if isinstance(layers[i], BatchNorm) and i + 1 < len(layers) and isinstance(layers[i + 1], Sign):
            stages.append(BatchNormSign(layers[i], layers[i + 1]))
            i += 2
        else:
            stages.append(layers[i])
            i += 1
    return stages


def _offset_config(offset):
    """How the config records an input offset or scale: None, a number, or
    "per-feature" (the vector itself is saved with the arrays)."""
    if offset is None:
        return None
    if np.ndim(offset) == 0:
        return float(offset)
    return "per-feature"


def _check_sizes(sizes):
    for s in sizes:
        check_int("layer sizes", s)
    return sizes


def _folded_arrays(layers, arrays, dtype, backend_name):
    """The ``"folded.*"`` arrays of a file holding ``arrays``: the thresholds of the
    arrays as a load reads them back (floats stored as float32)."""
    engine = engine_for(backend_name)
    stored = {name: value if isinstance(value, PackedSigns) else np.asarray(value, np.float32)
              for name, value in arrays.items()}
    return search_thresholds(layers, layer_arrays(layers, stored, dtype, engine), dtype, engine)


def _loadable(written, path):
    """``ValueError`` unless the complete temporary file ``written`` (about to replace ``path``)
    passes the loader's schema and value checks (``fastbin.io.modelschema``)."""
    path = os.fspath(path)
    with open(written, "rb") as f:
        data = f.read()
    try:
        load_model_arrays_bytes(data, name=path)
    except ModelFileError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise ValueError(f"{path}: not saved: its loader would refuse it: {reason}") from None


def _build(schema, backend):
    """The model ``schema`` (checked by :func:`fastbin.io.modelschema.check_header`) describes,
    with zero parameters (no random initialisation: ``_restore`` writes every one)."""
    if schema.kind == "conv":
        return _build_conv(schema.layers, schema.config["input_shape"], backend, schema.dtype)
    config = dict(schema.config, init="zeros")  # the seed stays: it seeds the dropout masks
    first = schema.layers[0]
    if config.get("input_offset") == "per-feature":  # placeholder; the saved vector is restored next
        config["input_offset"] = 1.0 if first["input_offset"] else None
    if config.get("input_scale") == "per-feature":  # the same (a scale of 1 stores no vector)
        config["input_scale"] = 2.0 if first.get("input_scale") else None
    if schema.kind == "softmax_regression":
        model = softmax_regression(**config, backend=backend, dtype=schema.dtype)
    else:
        model = mlp(config.pop("sizes"), **config, backend=backend, dtype=schema.dtype)
    for layer, saved in zip(model.layers, schema.layers):
        if isinstance(layer, Dense):
            layer.init = schema.config["init"]
        elif isinstance(layer, BatchNorm):  # any momentum and eps the schema allows, as the runtime reads them
            layer.momentum, layer.eps = float(saved["momentum"]), float(saved["eps"])
    return model


def _build_conv(configs, input_shape, backend, dtype):
    """The :class:`ConvModel` of a file's layer list (checked by the schema), zero parameters."""
    layers = []
    for c in configs:
        kind = c["kind"]
        if kind == "conv2d":
            layers.append(Conv2D(c["in_channels"], c["filters"], c["kernel_size"], stride=c["stride"],
                                 padding=c["padding"], pad_value=c["pad_value"], binary=c["binary"], scale=c["scale"],
                                 bias=c["bias"], init="zeros", dtype=dtype, backend=backend))
        elif kind == "dense":
            layers.append(Dense(c["n_in"], c["n_out"], binary=c["binary"], scale=c["scale"], bias=c["bias"],
                                init="zeros", dtype=dtype, backend=backend))
        elif kind == "batchnorm":
            layers.append(BatchNorm(c["n"], momentum=c["momentum"], eps=c["eps"], dtype=dtype))
        elif kind == "maxpool2d":
            layers.append(MaxPool2D(c["pool_size"], c["stride"]))
        elif kind == "flatten":
            layers.append(Flatten())
        else:
            layers.append(ACTIVATIONS[kind]())
    return sequential(layers, tuple(input_shape), backend=backend, dtype=dtype)


def load(path, *, backend="fastbin") -> Model:
    """Read a model written by :meth:`Model.save`. The file's meta and array table are
    checked against the schema (:mod:`fastbin.io.modelschema`: every size, dtype and shape,
    finite parameters, ``alpha >= 0``) before the model is built, so memory use is bounded by
    the stored arrays; the stored folded thresholds of a folded file are checked against its
    layers (:func:`fastbin.runtime.load.read_model`, the runtime's own reading); anything else
    raises ``ModelFileError``."""
    schema, meta, arrays = read_model(path)
    try:
        model = _build(schema, backend)
        _restore(model, meta, arrays)
        model.config = dict(meta["config"])
    except (KeyError, TypeError, ValueError) as exc:  # the schema should have caught it: still a file error
        raise ModelFileError(f"{path}: inconsistent model file: {exc}") from exc
    return model


def _restore(model, meta, arrays):
    if [layer.config() for layer in model.layers] != meta["layers"]:
        raise ValueError("layer list does not match the configuration")
    unpack = model.backend.unpack_signs
    for i, layer in enumerate(model.layers):
        for store in (layer.params, layer.buffers):
            for name, target in store.items():
                key = f"{i}.{name}"
                if name == "W" and f"{i}.W_bits" in arrays:
                    bits = arrays[f"{i}.W_bits"]
                    if not isinstance(bits, PackedSigns) or bits.shape != (layer.n_out, layer.n_in):
                        raise ValueError(f"{i}.W_bits must be packed signs of shape {(layer.n_out, layer.n_in)}")
                    value = unpack(bits, model.dtype).T
                    if layer.scale:
                        alpha = np.asarray(arrays[f"{i}.alpha"], dtype=model.dtype)
                        value *= alpha
                        layer.alpha_override = alpha.copy()
                else:
                    value = arrays[key]
                if not isinstance(value, np.ndarray) or value.shape != target.shape:
                    raise ValueError(f"{key}: expected shape {target.shape}")
                target[...] = value
