"""``fastbin.runtime.load``: a model file -> a folded :class:`InferenceModel`,
without the trainer.

The file is read and checked by ``fastbin.io.modelschema.load_model_arrays``
(the container, then the header against the schema before any payload is
copied, so every size is bounded by the stored arrays; then the values). A
folded file (format version 2, ``meta["folded"]``) supplies the thresholds;
an older one is folded at load by the threshold search of
:mod:`fastbin.runtime.fold`. Either way the predictions equal those of
``fastbin.nn.load(path).to_inference()`` on the same engine.
"""
from __future__ import annotations

import os

from ..io.modelfile import ModelFileError
from ..io.modelschema import load_model_arrays
from .engines import get_engine
from .fold import fold_arrays, layer_arrays
from .model import InferenceModel

__all__ = ["load"]


def load(path, *, engine=None) -> InferenceModel:
    """Load the model file ``path`` for inference on ``engine`` (``"numba"``,
    ``"numpy"`` or None: ``$FASTBIN_ENGINE``, else numba when it can be
    imported). ``ModelFileError`` (a ``ValueError``) for anything but a valid
    fastbin model file, ``OSError`` when it cannot be read."""
    engine = get_engine(engine)
    path = os.fspath(path)
    schema, _meta, arrays = load_model_arrays(path)
    try:
        layer_data = layer_arrays(schema.layers, arrays, schema.dtype, engine)
        folded = arrays if schema.folded else None
        return fold_arrays(schema.layers, layer_data, schema.dtype, engine, folded=folded)
    except (KeyError, TypeError, ValueError) as exc:  # the schema should have caught it: still a file error
        raise ModelFileError(f"{path}: inconsistent model file: {exc}") from exc
