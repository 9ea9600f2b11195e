"""Folding a trained model for inference: a thin caller of
:mod:`fastbin.runtime.fold`, which holds the arithmetic (binary dense + batch
norm + sign -> integer thresholds on packed bits, the float tail) on plain
arrays. Here the model's layers are turned into those arrays: the layer
configs, and the arrays in the model's dtype with every binary dense layer as
its packed signs and ``alpha`` (the same ``sign(W)`` and scale the unfolded
evaluation path uses), all copied, so the folded model does not change when
training goes on.
"""
from __future__ import annotations

import numpy as np

from ..runtime.engines import engine_for
from ..runtime.fold import Affine, float_thresholds, fold_arrays, int_thresholds, threshold_arrays
from ..runtime.model import InferenceModel
from .layers import Dense

__all__ = ["affine", "fold", "fold_inputs", "folded_arrays", "int_thresholds", "float_thresholds"]


def fold_inputs(model):
    """``(layers, arrays)`` of ``model`` for :func:`fastbin.runtime.fold.fold_arrays`."""
    layers = [layer.config() for layer in model.layers]
    arrays = {}
    for i, layer in enumerate(model.layers):
        for name, value in list(layer.params.items()) + list(layer.buffers.items()):
            if isinstance(layer, Dense) and name == "W" and layer.binary:
                arrays[f"{i}.W_bits"] = layer.packed_weights()
                if layer.scale:
                    arrays[f"{i}.alpha"] = np.array(layer.alpha(), dtype=model.dtype)
            else:
                arrays[f"{i}.{name}"] = np.array(value, dtype=model.dtype)
    return layers, arrays


def fold(model) -> InferenceModel:
    """Fold ``model`` (a :class:`fastbin.nn.model.Model`) for inference on the
    engine of its backend (``"fastbin"`` -> numba, ``"reference"`` -> numpy)."""
    layers, arrays = fold_inputs(model)
    return fold_arrays(layers, arrays, model.dtype, engine_for(model.backend.name))


def folded_arrays(model) -> dict:
    """The ``"folded.*"`` arrays (thresholds and flips) a folded model file stores."""
    return threshold_arrays(fold(model))


def affine(dense, bn, uint8_input) -> Affine:
    """The :class:`~fastbin.runtime.fold.Affine` ``f(dot)`` of a trained dense
    layer (+ batch norm ``bn`` or None), as its evaluation path computes it."""
    scale = dense.eval_scale(uint8_input)
    bias = dense.eval_bias()
    bn_args = None if bn is None else (bn.buffers["running_mean"].copy(), bn.eval_k(), bn.params["beta"].copy())
    return Affine(scale, None if bias is None else bias.copy(), bn_args, dense.dtype, dense.n_out)
