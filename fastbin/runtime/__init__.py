"""The inference runtime: folded models (packed weights, integer thresholds,
the float tail) and the engines that run them. It imports nothing from the
trainer (``fastbin.nn``) or the tools; ``fastbin.nn.fold`` builds its models.
"""
from .engines import NumbaEngine, NumpyEngine, engine_for
from .model import InferenceModel

__all__ = ["InferenceModel", "NumbaEngine", "NumpyEngine", "engine_for"]
