"""The thin trainer: layers, models (softmax regression, MLPs), optimizers,
the training loop, folding for inference, and the model summary. Every array
operation goes through the model's backend (``fastbin.ops.backend``)."""
from .augment import ImageAugment, smooth_labels
from .checkpoint import load_checkpoint, save_checkpoint
from .fold import fold
from .layers import ACTIVATIONS, BatchNorm, Dense, Dropout, HardTanh, Layer, Sign, Tanh
from .model import FORMAT, Model, load, mlp, softmax_regression
from .optim import SGD, Adam, CosineDecay, DecayOnRise, Optimizer, Schedule, StepDecay, WarmUp, parse_schedule
from .summary import layer_costs, summary_table
from .train import EarlyStopping, History, TrainState, fit, split_validation

__all__ = [
    "ACTIVATIONS", "BatchNorm", "Dense", "Dropout", "HardTanh", "Layer", "Sign", "Tanh",
    "FORMAT", "Model", "load", "mlp", "softmax_regression",
    "SGD", "Adam", "CosineDecay", "DecayOnRise", "Optimizer", "Schedule", "StepDecay", "WarmUp", "parse_schedule",
    "EarlyStopping", "History", "TrainState", "fit", "split_validation", "save_checkpoint", "load_checkpoint",
    "ImageAugment", "smooth_labels",
    "fold", "layer_costs", "summary_table",
]
