"""The inference runtime: load a model file and predict, without the trainer.

>>> import fastbin.runtime
>>> model = fastbin.runtime.load("bnn.fbm")              # engine: "numba" (default) or "numpy"
>>> model.predict(x)                                      # x (m, n_in) float in [0, 1] or raw uint8
>>> model.logits(x)
>>> model.predict_proba(x)                                # softmax of the logits, rows sum to 1
>>> fastbin.runtime.loads(data)                          # the same from a model file's bytes

Folded models (packed weights, integer thresholds, the float tail,
:mod:`fastbin.runtime.model`), built from plain arrays by
:mod:`fastbin.runtime.fold`, and the engines that run them
(:mod:`fastbin.runtime.engines`). It imports nothing from the trainer
(``fastbin.nn``) or the tools, nor tqdm or platformdirs, and Numba only for
the numba engine; ``fastbin.nn.fold`` calls the same folding for a trained model.
"""
from .engines import ENGINES, engine_for, get_engine
from .load import load, loads
from .model import InferenceModel

__all__ = ["ENGINES", "InferenceModel", "engine_for", "get_engine", "load", "loads"]
