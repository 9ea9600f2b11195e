"""The schema of a fastbin model file: what ``meta`` may say and which arrays it implies.

A model file (:mod:`fastbin.io.modelfile`) holds ``meta`` (JSON) and named arrays. The trainer
(``fastbin.nn.model``) writes, for format ``"fastbin.model"`` version 1::

    meta = {"format": "fastbin.model", "version": 1, "kind": "softmax_regression" | "mlp",
            "config": {...the constructor's arguments...}, "dtype": "float32" | "float64",
            "layers": [layer.config(), ...], "latent": bool}

and one array per parameter and buffer, named ``"<layer index>.<name>"``. An MLP's ``config``
may hold ``"dropout"`` (a rate in [0, 1), 0 unless the hidden activations are float; files
written before dropout lack it): dropout is training-only, so it adds no layer or array. Version 2 adds
``"folded": bool`` to ``meta``; when true the file also holds the folded form's thresholds
(:func:`fold_plan`: for each sign stage, first dense layer ``i``, thresholds ``t`` and flips
(bool) of shape (n_out,): ``"folded.<i>.packed_t"`` and ``"folded.<i>.packed_flip"`` for a
stage on packed signs; for the first stage, which sees the model input, ``uint8_t``/``_flip``
and ``float_t``/``_flip`` instead. Integer thresholds are int32 (int64 past 2**31,
:func:`threshold_dtype`), float ones stored bit-exact as their int32 (float32 models) or
int64 (float64 models) bit patterns). Every other array of the folded form is derived from
the layer arrays without a search. Version 1 files still load (folded at load). Everything in
``meta`` determines the name, kind, dtype and shape of every stored array, so a loader checks,
in this order and before it builds or allocates anything of the model's size:

1. :func:`check_header` (``meta`` and the array *table*, no payload needed): the exact keys
   and types of ``meta`` and ``config``, every size a positive int, the layer list equal to
   the one the configuration implies, and the table equal to the arrays the layers imply
   (no missing, no extra, each with the expected kind, dtype and shape). Declared sizes are
   therefore bounded by the stored arrays, which :func:`~fastbin.io.modelfile.load_arrays`
   bounds by the file size.
2. :func:`check_values` (the loaded arrays): every float finite; ``alpha`` and batch-norm
   ``running_var`` ``>= 0``; and an interval bound on every activation for inputs in
   ``[0, 1]`` (raw uint8 pixels mean ``x / 255``) at most :data:`MAX_ACTIVATION`, so a model
   that loads always predicts finite logits.

Any violation is a :class:`~fastbin.io.modelfile.ModelFileError` naming the file and the
field or array. :func:`load_model_arrays` does both around ``load_arrays``; the trainer's
``fastbin.nn.load`` calls it (and so can any other loader, e.g. the runtime's).

A convolutional model (``kind: "conv"``, ``fastbin.nn.model.sequential``) has ``config =
{"input_shape": [h, w, c]}`` and its layer list is its configuration (conv2d, maxpool2d,
flatten, dense, batchnorm, activations): :func:`check_header` checks each layer's keys and
types and the shapes passed from layer to layer (every kernel size, stride and pool size in
``[1, MAX_IMAGE_VALUES]``, every map and every conv layer's patch matrix of one image at most
:data:`MAX_IMAGE_VALUES` values, at most :data:`MAX_CONV_LAYER_ENTRIES` layers); a conv2d
layer's arrays are those of a dense layer on its (kh * kw * in_channels) patch rows. Such
files have no folded section yet.

This module is part of ``io`` (a leaf): it knows the file's layout, not the layer classes.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..bits import n_words_for
from ..packed import PackedSigns
from ..reference import bn_scale, conv_geometry, int_pair
from .modelfile import ModelFileError, load_arrays, load_arrays_bytes

__all__ = [
    "ACTIVATIONS",
    "FORMAT",
    "FORMAT_VERSION",
    "FOLDED_FLOAT_RANGE",
    "READ_VERSIONS",
    "INITS",
    "MAX_ACTIVATION",
    "MAX_DENSE_LAYERS",
    "MAX_IMAGE_VALUES",
    "MAX_CONV_LAYER_ENTRIES",
    "ArraySpec",
    "ModelSchema",
    "check_header",
    "check_values",
    "fold_plan",
    "threshold_dtype",
    "load_model_arrays",
    "load_model_arrays_bytes",
    "table_of",
]

#: ``meta["format"]`` of fastbin model files, the version written, and the versions read.
FORMAT = "fastbin.model"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
#: Folded float thresholds lie in [-FOLDED_FLOAT_RANGE, FOLDED_FLOAT_RANGE] (the search domain
#: of ``fastbin.runtime.fold``).
FOLDED_FLOAT_RANGE = 1e30
KINDS = ("softmax_regression", "mlp", "conv")
ACTIVATIONS = ("tanh", "hardtanh", "sign")
INITS = ("uniform", "normal", "glorot", "zeros")
MODEL_DTYPES = ("float32", "float64")
#: Most dense layers a model file may declare (``config.sizes`` holds one more entry): checked
#: before any work proportional to the count (a 1 MB header can list 520,000 sizes).
MAX_DENSE_LAYERS = 1000
#: Largest activation magnitude (interval bound, inputs in [0, 1]) a loadable model may
#: reach: far beyond any trained model, far below float32 overflow (3.4e38).
MAX_ACTIVATION = 1e20

_META_KEYS = {"format", "version", "kind", "config", "dtype", "layers", "latent"}
_CONFIG_KEYS = {
    "softmax_regression": {"n_in", "n_classes", "binary_weights", "scale", "init", "input_offset", "seed"},
    "mlp": {"sizes", "activation", "binary_weights", "binary_activations", "batch_norm", "output_bn", "scale",
            "init", "sigma", "input_offset", "seed"},
    "conv": {"input_shape"},
}
#: Largest ``h * w * c`` of a conv model's input image, of every map a layer outputs, and of
#: the patch matrix ``out_h * out_w * kh * kw * c_in`` of one image under a conv2d layer (far
#: beyond any dataset and model fastbin trains; bounds the vectors :func:`check_values` and the
#: runtime build per image before anything else of the model). Every kernel size, stride and
#: pool size is at most this too, so no window arithmetic leaves a C ``ssize_t``.
MAX_IMAGE_VALUES = 2**24
#: Most entries a conv model's layer list may have (4 per conv or dense layer: the layer, a
#: pool, a batch norm, an activation), checked before any work proportional to the count.
MAX_CONV_LAYER_ENTRIES = 4 * MAX_DENSE_LAYERS
_CONV_KEYS = {"kind", "in_channels", "filters", "kernel_size", "stride", "padding", "pad_value", "binary", "scale",
              "bias"}
_POOL_KEYS = {"kind", "pool_size", "stride"}
_DENSE_KEYS = {"kind", "n_in", "n_out", "binary", "scale", "bias", "input_offset"}
_BN_KEYS = {"kind", "n", "momentum", "eps"}


@dataclass(frozen=True)
class ArraySpec:
    """What one stored array must be: ``kind`` (``"array"`` or ``"packed_signs"``), stored
    ``dtype`` name, ``shape`` (for packed signs ``(rows, n_words)``), ``n_bits`` (packed signs
    only) and the value rule: ``"finite"``, ``"nonnegative"`` (finite and >= 0), ``"positive"``
    (finite and > 0), ``"uniform_positive"`` (the same, all values equal) or None."""

    kind: str
    dtype: str
    shape: tuple
    n_bits: int | None = None
    values: str | None = None


@dataclass(frozen=True)
class ModelSchema:
    """The checked header: ``kind``, ``config``, ``dtype``, ``latent``, ``layers`` (the layer
    configs, in order), ``arrays`` (name -> :class:`ArraySpec`, in the order saved) and
    ``folded`` (whether the file holds the folded thresholds)."""

    kind: str
    config: dict
    dtype: str
    latent: bool
    layers: list
    arrays: dict
    folded: bool = False


def _fail(path, message):
    raise ModelFileError(f"{path}: {message}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _require(path, where, value, ok, expected):
    if not ok(value):
        _fail(path, f"{where} must be {expected}, got {_short(value)}")
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _size(path, where, v):
    return _require(path, where, v, lambda x: _is_int(x) and x >= 1, "an int >= 1")


def _bool(path, where, v):
    return _require(path, where, v, lambda x: isinstance(x, bool), "true or false")


def _keys(path, where, d, keys):
    if not isinstance(d, dict):
        _fail(path, f"{where} must be an object, got {_short(d)}")
    if set(d) != keys:
        missing, extra = sorted(keys - set(d)), sorted(set(d) - keys)
        _fail(path, f"{where} has the wrong keys (missing {missing}, unexpected {extra})")


def _input_offset(path, v):
    ok = v is None or v == "per-feature" or _is_number(v)
    return _require(path, "config.input_offset", v, lambda _: ok, "null, a finite number or 'per-feature'")


def _check_config(path, kind, config):
    """Types and ranges of ``config``; returns the dense layer sizes ``[n_in, ..., n_classes]``."""
    keys = _CONFIG_KEYS[kind]
    if kind == "mlp" and isinstance(config, dict) and "dropout" in config:  # files before dropout lack it
        keys = keys | {"dropout"}
    if isinstance(config, dict) and "input_scale" in config:  # only models with an input scale have it
        keys = keys | {"input_scale"}
    _keys(path, "config", config, keys)
    for key in ("binary_weights", "scale") + (("binary_activations", "batch_norm", "output_bn") if kind == "mlp"
                                              else ()):
        _bool(path, f"config.{key}", config[key])
    _require(path, "config.init", config["init"], lambda x: x in INITS, f"one of {list(INITS)}")
    _require(path, "config.seed", config["seed"], lambda x: x is None or (_is_int(x) and 0 <= x < 2**128),
             "null or an int in [0, 2**128)")
    _input_offset(path, config["input_offset"])
    if "input_scale" in config:
        v = config["input_scale"]
        _require(path, "config.input_scale", v, lambda _: v == "per-feature" or (_is_number(v) and v > 0),
                 "a finite number > 0 or 'per-feature'")
    if kind == "softmax_regression":
        return [_size(path, "config.n_in", config["n_in"]), _size(path, "config.n_classes", config["n_classes"])]
    _require(path, "config.activation", config["activation"], lambda x: x in ACTIVATIONS, f"one of {list(ACTIVATIONS)}")
    if config["binary_activations"] != (config["activation"] == "sign"):
        _fail(path, f"config.binary_activations is {config['binary_activations']} but activation is "
                    f"{config['activation']!r} (binary activations are exactly activation 'sign')")
    _require(path, "config.sigma", config["sigma"], _is_number, "a finite number")
    sizes = _require(path, "config.sizes", config["sizes"], lambda x: isinstance(x, list) and len(x) >= 2,
                     "a list [n_in, ..., n_classes] of at least 2 sizes")
    if len(sizes) > MAX_DENSE_LAYERS + 1:
        _fail(path, f"config.sizes has {len(sizes)} entries: at most {MAX_DENSE_LAYERS + 1} "
                    f"({MAX_DENSE_LAYERS} dense layers)")
    sizes = [_size(path, f"config.sizes[{i}]", s) for i, s in enumerate(sizes)]
    dropout = _require(path, "config.dropout", config.get("dropout", 0.0), lambda x: _is_number(x) and 0 <= x < 1,
                       "a number in [0, 1)")
    if dropout and (config["activation"] == "sign" or len(sizes) < 3):
        _fail(path, "config.dropout must be 0 without float hidden activations (activation 'sign' or no hidden "
                    "layer)")
    return sizes


def _expected_layers(path, kind, config, saved_layers):
    """The layer configs the trainer builds from ``config``. Taken from the saved list, and
    checked, where the configuration leaves them open (batch-norm momentum and eps, and whether
    a per-feature input offset was all zeros, which stores no vector). A conv model's layer list
    is its configuration: :func:`_conv_layers` checks it as saved."""
    if kind == "conv":
        return _conv_layers(path, config, saved_layers)
    sizes = _check_config(path, kind, config)
    if not isinstance(saved_layers, list):
        _fail(path, f"meta.layers must be a list, got {_short(saved_layers)}")
    if len(saved_layers) > 3 * len(sizes):  # dense, batch norm, activation per size: more is never right
        _fail(path, f"meta.layers has {len(saved_layers)} entries, the configuration implies at most "
                    f"{3 * len(sizes)}")
    offset = config["input_offset"]
    if offset == "per-feature":
        first = saved_layers[0] if saved_layers and isinstance(saved_layers[0], dict) else {}
        has_offset = _bool(path, "meta.layers[0].input_offset", first.get("input_offset"))
    else:
        has_offset = offset is not None and offset != 0
    in_scale = config.get("input_scale")
    if in_scale == "per-feature":
        first = saved_layers[0] if saved_layers and isinstance(saved_layers[0], dict) else {}
        has_scale = "input_scale" in first and _require(path, "meta.layers[0].input_scale", first["input_scale"],
                                                        lambda x: x is True, "true (or absent)")
    else:
        has_scale = in_scale is not None and in_scale != 1
    binary, scale = config["binary_weights"], config["scale"]
    if kind == "softmax_regression":
        return [{"kind": "dense", "n_in": sizes[0], "n_out": sizes[1], "binary": binary, "scale": scale,
                 "bias": True, "input_offset": has_offset, **({"input_scale": True} if has_scale else {})}]
    layers, n = [], len(sizes) - 1
    for i in range(n):
        last = i == n - 1
        bn = config["output_bn"] if last else config["batch_norm"]
        layers.append({"kind": "dense", "n_in": sizes[i], "n_out": sizes[i + 1], "binary": binary, "scale": scale,
                       "bias": not bn, "input_offset": has_offset and i == 0,
                       **({"input_scale": True} if has_scale and i == 0 else {})})
        if bn:
            j = len(layers)
            saved = saved_layers[j] if j < len(saved_layers) and isinstance(saved_layers[j], dict) else {}
            momentum, eps = saved.get("momentum"), saved.get("eps")
            _require(path, f"meta.layers[{j}].momentum", momentum, lambda x: _is_number(x) and 0 <= x <= 1,
                     "a number in [0, 1]")
            _require(path, f"meta.layers[{j}].eps", eps, lambda x: _is_number(x) and 0 < x <= 1, "a number in (0, 1]")
            layers.append({"kind": "batchnorm", "n": sizes[i + 1], "momentum": momentum, "eps": eps})
        if not last:
            layers.append({"kind": config["activation"]})
    return layers


def _pair(path, where, v):
    if not (isinstance(v, list) and len(v) == 2 and all(_is_int(x) and 1 <= x <= MAX_IMAGE_VALUES for x in v)):
        _fail(path, f"{where} must be a list of 2 ints in [1, {MAX_IMAGE_VALUES}], got {_short(v)}")
    return int_pair(where, v)


def _batchnorm_layer(path, where, layer):
    _keys(path, where, layer, _BN_KEYS)
    _size(path, f"{where}.n", layer["n"])
    _require(path, f"{where}.momentum", layer["momentum"], lambda x: _is_number(x) and 0 <= x <= 1,
             "a number in [0, 1]")
    _require(path, f"{where}.eps", layer["eps"], lambda x: _is_number(x) and 0 < x <= 1, "a number in (0, 1]")


def _conv_layers(path, config, saved):
    """Check the layer list of a conv model (``fastbin.nn.model.sequential``'s layers: conv2d,
    maxpool2d, flatten, dense, batchnorm, activations) and the shapes it passes along from
    ``config.input_shape``; returns it. The output must be (n_classes,) from a final dense layer."""
    _keys(path, "config", config, _CONFIG_KEYS["conv"])
    dims = _require(path, "config.input_shape", config["input_shape"], lambda x: isinstance(x, list) and len(x) == 3,
                    "[height, width, channels]")
    shape = tuple(_size(path, f"config.input_shape[{i}]", v) for i, v in enumerate(dims))
    if math.prod(shape) > MAX_IMAGE_VALUES:
        _fail(path, f"config.input_shape {list(shape)} has more than {MAX_IMAGE_VALUES} values per image")
    if not isinstance(saved, list) or not saved:
        _fail(path, f"meta.layers must be a non-empty list, got {_short(saved)}")
    if len(saved) > MAX_CONV_LAYER_ENTRIES:
        _fail(path, f"meta.layers has {len(saved)} entries: at most {MAX_CONV_LAYER_ENTRIES}")
    last_dense = None
    for j, layer in enumerate(saved):
        where = f"meta.layers[{j}]"
        kind = layer.get("kind") if isinstance(layer, dict) else None
        if kind == "conv2d":
            _keys(path, where, layer, _CONV_KEYS)
            c_in, filters = _size(path, f"{where}.in_channels", layer["in_channels"]), _size(
                path, f"{where}.filters", layer["filters"])
            kernel, stride = _pair(path, f"{where}.kernel_size", layer["kernel_size"]), _pair(
                path, f"{where}.stride", layer["stride"])
            padding = _require(path, f"{where}.padding", layer["padding"], lambda x: x in ("valid", "same"),
                               "'valid' or 'same'")
            _require(path, f"{where}.pad_value", layer["pad_value"], lambda x: _is_number(x) and x in (0, 1), "0 or 1")
            for key in ("binary", "scale", "bias"):
                _bool(path, f"{where}.{key}", layer[key])
            if len(shape) != 3 or shape[2] != c_in:
                _fail(path, f"{where} (conv2d) expects images of {c_in} channels, gets shape {list(shape)}")
            try:
                out_h, out_w, _, _ = conv_geometry(shape[0], shape[1], kernel, stride, padding)
            except ValueError as exc:
                _fail(path, f"{where} (conv2d): {exc}")
            # Python ints: no overflow however large the declared sizes
            patches, values = out_h * out_w * kernel[0] * kernel[1] * c_in, out_h * out_w * filters
            if patches > MAX_IMAGE_VALUES or values > MAX_IMAGE_VALUES:
                _fail(path, f"{where} (conv2d): {out_h}x{out_w} outputs of {filters} channels from "
                            f"{kernel[0]}x{kernel[1]}x{c_in} patches: {max(patches, values)} values per image, more "
                            f"than {MAX_IMAGE_VALUES}")
            shape = (out_h, out_w, filters)
        elif kind == "maxpool2d":
            _keys(path, where, layer, _POOL_KEYS)
            pool, stride = _pair(path, f"{where}.pool_size", layer["pool_size"]), _pair(
                path, f"{where}.stride", layer["stride"])
            if len(shape) != 3:
                _fail(path, f"{where} (maxpool2d) expects images, gets shape {list(shape)}")
            try:
                out_h, out_w, _, _ = conv_geometry(shape[0], shape[1], pool, stride, "valid")
            except ValueError as exc:
                _fail(path, f"{where} (maxpool2d): {exc}")
            shape = (out_h, out_w, shape[2])
        elif kind == "flatten":
            _keys(path, where, layer, {"kind"})
            shape = (math.prod(shape),)
        elif kind == "dense":
            _keys(path, where, layer, _DENSE_KEYS)
            n_in, n_out = _size(path, f"{where}.n_in", layer["n_in"]), _size(path, f"{where}.n_out", layer["n_out"])
            for key in ("binary", "scale", "bias"):
                _bool(path, f"{where}.{key}", layer[key])
            _require(path, f"{where}.input_offset", layer["input_offset"], lambda x: x is False, "false")
            if shape != (n_in,):
                _fail(path, f"{where} (dense) expects ({n_in},) features, gets shape {list(shape)}")
            shape, last_dense = (n_out,), n_out
        elif kind == "batchnorm":
            _batchnorm_layer(path, where, layer)
            if shape[-1] != layer["n"]:
                _fail(path, f"{where} (batchnorm of {layer['n']}) gets shape {list(shape)}")
        elif kind in ACTIVATIONS:
            _keys(path, where, layer, {"kind"})
        else:
            _fail(path, f"{where}.kind must be one of conv2d, maxpool2d, flatten, dense, batchnorm, "
                        f"{', '.join(ACTIVATIONS)}, got {_short(kind)}")
    if last_dense is None or shape != (last_dense,):
        _fail(path, f"meta.layers must end in a dense layer (+ batchnorm) giving (n_classes,), ends in {list(shape)}")
    return list(saved)


def fold_plan(layers):
    """How a layer list (configs) folds: ``(stages, tail)`` with ``stages`` the sign stages
    ``(dense index, batch-norm index or None)``, a prefix of the model (binary dense ->
    [batch norm] -> sign, from layer 0 on), and ``tail`` the index of the first layer of the
    float tail (``len(layers)`` when there is none)."""
    stages, i = [], 0
    while i < len(layers):
        dense, j = layers[i], i + 1
        bn = j if j < len(layers) and layers[j]["kind"] == "batchnorm" else None
        j += bn is not None
        if dense["kind"] == "dense" and dense["binary"] and j < len(layers) and layers[j]["kind"] == "sign":
            stages.append((i, bn))
            i = j + 1
        else:
            break
    return stages, i


def threshold_dtype(bound: int) -> str:
    """Stored dtype of integer thresholds of magnitude up to ``bound``: int32 when it fits."""
    return "int32" if bound < 2**31 else "int64"


def _folded_arrays(layers, dtype):
    """The arrays of the folded section (see the module doc), name -> ArraySpec."""
    arrays = {}
    stages, _ = fold_plan(layers)
    float_bits = "int32" if dtype == "float32" else "int64"
    for s, (i, _) in enumerate(stages):
        n, n_in = layers[i]["n_out"], layers[i]["n_in"]
        if s == 0:  # the first stage sees the model input, the others packed signs
            kinds = [("uint8", threshold_dtype(255 * n_in + 1), 255 * n_in), ("float", float_bits, None)]
        else:
            kinds = [("packed", threshold_dtype(n_in + 1), n_in)]
        for kind, t_dtype, bound in kinds:
            arrays[f"folded.{i}.{kind}_t"] = ArraySpec("array", t_dtype, (n,),
                                                       values=f"threshold:{bound}" if bound else "float_threshold")
            arrays[f"folded.{i}.{kind}_flip"] = ArraySpec("array", "bool", (n,))
    return arrays


def _expected_arrays(layers, latent):
    arrays = {}
    for i, layer in enumerate(layers):
        if layer["kind"] == "conv2d":  # a dense layer on the (kh * kw * in_channels) patch rows
            kh, kw = layer["kernel_size"]
            layer = dict(layer, n_in=kh * kw * layer["in_channels"], n_out=layer["filters"], input_offset=False)
        if layer["kind"] in ("dense", "conv2d"):
            n_in, n_out = layer["n_in"], layer["n_out"]
            if layer["binary"] and not latent:
                arrays[f"{i}.W_bits"] = ArraySpec("packed_signs", "uint64", (n_out, n_words_for(n_in)), n_bits=n_in)
            else:
                arrays[f"{i}.W"] = ArraySpec("array", "float32", (n_in, n_out), values="finite")
            if layer["bias"]:
                arrays[f"{i}.b"] = ArraySpec("array", "float32", (n_out,), values="finite")
            if layer["input_offset"]:
                arrays[f"{i}.input_offset"] = ArraySpec("array", "float32", (n_in,), values="finite")
            if layer.get("input_scale"):  # a binary layer folds one scale: all its values equal
                arrays[f"{i}.input_scale"] = ArraySpec("array", "float32", (n_in,),
                                                       values="uniform_positive" if layer["binary"] else "positive")
            if layer["binary"] and layer["scale"] and not latent:
                arrays[f"{i}.alpha"] = ArraySpec("array", "float32", (n_out,), values="nonnegative")
        elif layer["kind"] == "batchnorm":
            n = layer["n"]
            for name, rule in (("gamma", "finite"), ("beta", "finite"), ("running_mean", "finite"),
                               ("running_var", "nonnegative")):
                arrays[f"{i}.{name}"] = ArraySpec("array", "float32", (n,), values=rule)
    return arrays


def table_of(arrays: dict) -> list:
    """The array table (``[{"name", "kind", "dtype", "shape"[, "n_bits"]}, ...]``) describing
    loaded ``arrays`` (name -> ndarray or ``PackedSigns``), for :func:`check_header`."""
    table = []
    for name, value in arrays.items():
        if isinstance(value, PackedSigns):
            table.append({"name": name, "kind": "packed_signs", "dtype": str(value.bits.dtype),
                          "shape": list(value.bits.shape), "n_bits": value.n_bits})
        else:
            value = np.asarray(value)
            table.append({"name": name, "kind": "array", "dtype": value.dtype.name, "shape": list(value.shape)})
    return table


def check_header(meta, table, *, path="model file") -> ModelSchema:
    """Check ``meta`` and the array ``table`` (entries with ``name``, ``kind``, ``dtype``,
    ``shape`` and, for packed signs, ``n_bits``; the table of ``load_arrays`` or
    :func:`table_of`) against the schema; returns the :class:`ModelSchema`. Needs no payload.
    Raises ``ModelFileError`` naming ``path`` and the first problem."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        _fail(path, f"not a fastbin model file (format {_short(fmt)}, expected {FORMAT!r})")
    version = meta.get("version")
    if not _is_int(version) or version not in READ_VERSIONS:
        _fail(path, f"model format version {_short(version)} is not supported "
                    f"(this fastbin reads versions {', '.join(map(str, READ_VERSIONS))})")
    _keys(path, "meta", meta, _META_KEYS | ({"folded"} if version >= 2 else set()))
    folded = version >= 2 and _bool(path, "meta.folded", meta["folded"])
    kind = _require(path, "meta.kind", meta["kind"], lambda x: x in KINDS, f"one of {list(KINDS)}")
    dtype = _require(path, "meta.dtype", meta["dtype"], lambda x: x in MODEL_DTYPES, f"one of {list(MODEL_DTYPES)}")
    latent = _bool(path, "meta.latent", meta["latent"])
    layers = _expected_layers(path, kind, meta["config"], meta["layers"])
    if meta["layers"] != layers:
        saved = meta["layers"]
        for j, layer in enumerate(layers):
            if j >= len(saved) or saved[j] != layer:
                got = saved[j] if j < len(saved) else "nothing"
                _fail(path, f"meta.layers[{j}] is {_short(got)}, but the configuration implies {layer}")
        _fail(path, f"meta.layers has {len(saved)} layers, the configuration implies {len(layers)}")
    expected = _expected_arrays(layers, latent)
    if folded:
        expected.update(_folded_arrays(layers, dtype))
    if not isinstance(table, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in table):
        _fail(path, "the array table must be a list of named entries")
    by_name = {e["name"]: e for e in table}
    missing = [name for name in expected if name not in by_name]
    extra = [name for name in by_name if name not in expected]
    if missing or extra:
        _fail(path, f"arrays do not match the model: missing {missing}, unexpected {extra}")
    for name, spec in expected.items():
        e = by_name[name]
        got = (e.get("kind"), e.get("dtype"), tuple(e.get("shape", ())), e.get("n_bits"))
        want = (spec.kind, spec.dtype, spec.shape, spec.n_bits)
        if got != want:
            what = f"{spec.dtype} {spec.kind} of shape {list(spec.shape)}"
            if spec.n_bits is not None:
                what += f" with n_bits={spec.n_bits}"
            _fail(path, f"array {name!r} must be {what}, got {e.get('dtype')} {e.get('kind')} of shape "
                        f"{e.get('shape')}" + (f" with n_bits={e.get('n_bits')}" if e.get("n_bits") is not None
                                               else ""))
    return ModelSchema(kind, dict(meta["config"]), dtype, latent, layers, expected, bool(folded))


def _activation_bounds(schema: ModelSchema, arrays) -> None:
    """Raise ValueError when an interval bound of some activation exceeds MAX_ACTIVATION."""
    h = spatial = None
    if schema.kind == "conv":  # per channel of the images, then per feature after flatten
        spatial, h = schema.config["input_shape"][:2], np.ones(schema.config["input_shape"][2])
    for i, layer in enumerate(schema.layers):
        kind = layer["kind"]
        if kind == "conv2d":
            kh, kw = layer["kernel_size"]
            hp = np.maximum(h, layer["pad_value"]) if layer["padding"] == "same" else h  # the padding's value
            if f"{i}.W" in arrays:
                w = np.abs(arrays[f"{i}.W"].astype(np.float64)).reshape(kh * kw, layer["in_channels"], -1)
                if layer["binary"]:
                    z = kh * kw * hp.sum() * (w.mean(axis=(0, 1)) if layer["scale"] else np.ones(layer["filters"]))
                else:
                    z = np.einsum("pco,c->o", w, hp)
            else:
                alpha = arrays.get(f"{i}.alpha")
                z = kh * kw * hp.sum() * (np.ones(layer["filters"]) if alpha is None else alpha.astype(np.float64))
            if f"{i}.b" in arrays:
                z = z + np.abs(arrays[f"{i}.b"].astype(np.float64))
            h = z
            spatial = conv_geometry(spatial[0], spatial[1], (kh, kw), layer["stride"], layer["padding"])[:2]
        elif kind == "maxpool2d":
            spatial = conv_geometry(spatial[0], spatial[1], layer["pool_size"], layer["stride"], "valid")[:2]
        elif kind == "flatten":
            h = np.tile(h, spatial[0] * spatial[1])
        elif kind == "dense":
            n_in = layer["n_in"]
            offset = arrays.get(f"{i}.input_offset")
            # |x - offset| <= 1 + |offset| for x in [0, 1] (also covers the offset folded into the bias),
            # times the input scale
            if h is None:
                h = np.ones(n_in) if offset is None else 1.0 + np.abs(offset.astype(np.float64))
                if f"{i}.input_scale" in arrays:
                    h = h * np.abs(arrays[f"{i}.input_scale"].astype(np.float64))
            if f"{i}.W" in arrays:
                w = np.abs(arrays[f"{i}.W"].astype(np.float64))
                if layer["binary"]:
                    total = h.sum()
                    z = total * (w.mean(axis=0) if layer["scale"] else np.ones(layer["n_out"]))
                else:
                    z = h @ w
            else:
                alpha = arrays.get(f"{i}.alpha")
                z = h.sum() * (np.ones(layer["n_out"]) if alpha is None else alpha.astype(np.float64))
            if f"{i}.b" in arrays:
                z = z + np.abs(arrays[f"{i}.b"].astype(np.float64))
            h = z
        elif kind == "batchnorm":
            # the factor as the runtime computes it, in the model's dtype: an eps that is 0 there
            # (with a zero variance) makes it inf or NaN however positive it is in float64
            k = np.abs(bn_scale(arrays[f"{i}.gamma"], arrays[f"{i}.running_var"], layer["eps"],
                                schema.dtype).astype(np.float64))
            h = (h + np.abs(arrays[f"{i}.running_mean"].astype(np.float64))) * k + np.abs(
                arrays[f"{i}.beta"].astype(np.float64))
        else:  # tanh, hardtanh, sign: |y| <= 1
            h = np.minimum(h, 1.0)
        worst = float(np.max(h)) if h.size else 0.0
        if not worst <= MAX_ACTIVATION:
            raise ValueError(f"layer {i} ({kind}) can reach activations of magnitude {worst:.3g} for inputs in "
                             f"[0, 1], more than {MAX_ACTIVATION:g}: the parameters are corrupt")


def check_values(schema: ModelSchema, arrays, *, path="model file") -> None:
    """Check the loaded ``arrays`` against ``schema`` (from :func:`check_header`): floats
    finite, ``alpha`` and ``running_var`` >= 0, activations bounded (see the module doc).
    Raises ``ModelFileError`` naming ``path`` and the array."""
    for name, spec in schema.arrays.items():
        if spec.values is None:
            continue
        a = arrays[name]
        if spec.values.startswith("threshold:"):  # integer thresholds: inside the search domain
            bound = int(spec.values.split(":")[1])
            if a.size and (a.min() < -bound or a.max() > bound + 1):
                _fail(path, f"array {name!r} holds thresholds outside [{-bound}, {bound + 1}]")
            continue
        if spec.values == "float_threshold":
            a = a.view(np.float32 if a.dtype == np.int32 else np.float64)
            top = np.nextafter(a.dtype.type(FOLDED_FLOAT_RANGE), a.dtype.type(np.inf))  # the search's hi + 1
            with np.errstate(invalid="ignore"):
                if not np.all(np.abs(a) <= top):
                    _fail(path, f"array {name!r} holds thresholds that are not finite numbers in "
                                f"[-{FOLDED_FLOAT_RANGE:g}, {FOLDED_FLOAT_RANGE:g}]")
            continue
        with np.errstate(invalid="ignore"):
            if not np.all(np.isfinite(a)):
                _fail(path, f"array {name!r} holds NaN or infinite values")
            if spec.values == "nonnegative" and a.size and a.min() < 0:
                _fail(path, f"array {name!r} must be >= 0, holds {a.min()}")
            if spec.values in ("positive", "uniform_positive") and a.size and a.min() <= 0:
                _fail(path, f"array {name!r} must be > 0, holds {a.min()}")
            if spec.values == "uniform_positive" and a.size and a.max() != a.min():
                _fail(path, f"array {name!r} of a binary layer must hold one value (a binary layer folds one "
                            f"input scale), holds {a.min()} to {a.max()}")
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            _activation_bounds(schema, arrays)
    except ValueError as exc:
        _fail(path, str(exc))


def load_model_arrays(path):
    """``load_arrays(path)`` with the whole schema checked: the header before any payload
    is copied, the values after. Returns ``(schema, meta, arrays)``; ``ModelFileError`` for
    anything that is not a valid fastbin model file, ``OSError`` when it cannot be read."""
    path = os.fspath(path)
    return _checked(lambda check: load_arrays(path, check=check), path)


def load_model_arrays_bytes(data, *, name="<bytes>"):
    """:func:`load_model_arrays` on the bytes of a model file
    (:func:`~fastbin.io.modelfile.load_arrays_bytes`), every check the same; errors name ``name``."""
    return _checked(lambda check: load_arrays_bytes(data, check=check, name=name), name)


def _checked(load, path):
    holder = []
    meta, arrays = load(lambda meta, table: holder.append(check_header(meta, table, path=path)))
    schema = holder[0]
    check_values(schema, arrays, path=path)
    return schema, meta, arrays
