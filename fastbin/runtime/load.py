"""``fastbin.runtime.load``: a model file -> a folded :class:`InferenceModel`,
without the trainer.

The file is read and checked by ``fastbin.io.modelschema.load_model_arrays``
(the container, then the header against the schema before any payload is
copied, so every size is bounded by the stored arrays; then the values). A
folded file (format version 2, ``meta["folded"]``) supplies the thresholds;
an older one is folded at load by the threshold search of
:mod:`fastbin.runtime.fold`. Stored thresholds are checked against the folding
of the file's own layers before any engine runs them (a file whose folded
section was changed and re-sealed is refused, by :func:`read_model` and so by
``fastbin.nn.load`` as well). Either way the predictions equal those of
``fastbin.nn.load(path).to_inference()`` on the same engine.

:func:`loads` does the same from the bytes of a model file, with the same
checks. A model made by either keeps those bytes, and pickles as them and its
engine's name (``InferenceModel.__reduce__``): unpickling loads it again on
the receiving side (its engine compiles, or loads its on-disk cache, there),
and no compiled code ever travels.
"""
from __future__ import annotations

import os

from ..io.modelfile import ModelFileError, read_model_bytes
from ..io.modelschema import load_model_arrays_bytes
from . import _warm
from .conv import fold_conv
from .engines import ENGINES, get_engine
from .fold import fold_arrays, layer_arrays
from .model import InferenceModel

__all__ = ["load", "loads", "read_model"]


def load(path, *, engine=None) -> InferenceModel:
    """Load the model file ``path`` for inference on ``engine`` (``"numba"``,
    ``"numpy"`` or None: ``$FASTBIN_ENGINE``, else numba when it can be
    imported). ``ModelFileError`` (a ``ValueError``) for anything but a valid
    fastbin model file, ``OSError`` when it cannot be read."""
    engine = get_engine(engine)
    path = os.fspath(path)
    return _build(read_model_bytes(path), path, engine)


def loads(data, *, engine=None) -> InferenceModel:
    """:func:`load` from ``data``, the bytes of a model file (``bytes``,
    ``bytearray`` or ``memoryview``; ``TypeError`` otherwise), every check the
    same; errors name ``<bytes>``."""
    engine = get_engine(engine)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be the bytes of a model file, got {type(data).__name__}")
    return _build(bytes(data), "<bytes>", engine)


def read_model(path):
    """``(schema, meta, arrays)`` of the model file ``path``, checked as :func:`load` checks it:
    the container, the schema and the values (``fastbin.io.modelschema``), and the stored
    folded thresholds of a folded file against the folding of its layers. The one reading of
    a model file: ``fastbin.nn.load`` (so ``eval``, ``predict --unfolded`` and ``export-c``)
    takes it too, so every loader agrees on what a file means. ``ModelFileError`` /
    ``OSError`` as :func:`load`."""
    path = os.fspath(path)
    schema, meta, arrays = load_model_arrays_bytes(read_model_bytes(path), name=path)
    if schema.folded:
        _fold(schema, arrays, path, get_engine("numpy"))
    return schema, meta, arrays


def _fold(schema, arrays, path, engine) -> InferenceModel:
    """The folded model of checked ``arrays`` on ``engine`` (stored thresholds checked)."""
    try:
        if schema.kind == "conv":  # folded at load on the engine (fastbin.runtime.conv): no stored thresholds
            layer_data = layer_arrays(schema.layers, arrays, schema.dtype, get_engine("numpy"))
            return fold_conv(schema.layers, layer_data, schema.dtype, schema.config["input_shape"], engine)
        layer_data = layer_arrays(schema.layers, arrays, schema.dtype, engine)
        folded = arrays if schema.folded else None
        return fold_arrays(schema.layers, layer_data, schema.dtype, engine, folded=folded)
    except (KeyError, TypeError, ValueError) as exc:  # a folded section that does not fold the layers
        raise ModelFileError(f"{path}: inconsistent model file: {exc}") from exc


def _build(data: bytes, path: str, engine) -> InferenceModel:
    schema, _meta, arrays = load_model_arrays_bytes(data, name=path)
    # on a cold Numba cache the numpy engine answers while the numba engine compiles (_warm)
    standby = _warm.standby_engine(engine, schema.kind)
    model = _fold(schema, arrays, path, standby or engine)
    if standby is not None:
        model.warmup = _warm.Warmup(lambda: _fold(schema, arrays, path, engine), model.n_in)
    model._reduced = (_unpickle, (data, _pickle_engine(engine)))  # InferenceModel.__reduce__
    return model


def _unpickle(data: bytes, engine) -> InferenceModel:
    """The other half of ``InferenceModel.__reduce__``: ``engine`` a registered
    engine's name, or an engine class (pickled by reference)."""
    return loads(data, engine=engine)


def _pickle_engine(engine):
    """How ``InferenceModel.__reduce__`` names ``engine``: its name when it is a
    registered engine, else the class itself."""
    name = getattr(engine, "name", None)
    return name if name in ENGINES and get_engine(name) is engine else engine
