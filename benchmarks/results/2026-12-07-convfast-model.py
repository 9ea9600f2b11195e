"""The bnn-conv model file of the conv runtime measurements (``bnn_conv()`` with batch-norm
statistics from random images and 30% negative gammas: the suite's and
``2026-12-07-convrt-abab.py``'s), for the ``convfast`` scripts."""
from pathlib import Path

import numpy as np

from fastbin.nn import BatchNorm
from fastbin.nn.model import bnn_conv


def bnn_file(folder):
    rng = np.random.default_rng(0)
    model = bnn_conv(seed=0)
    h = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            z = h.reshape(-1, layer.n).astype(np.float64)
            layer.buffers["running_mean"][...] = z.mean(axis=0)
            layer.buffers["running_var"][...] = z.var(axis=0) + 1.0
            layer.params["gamma"][...] *= np.where(rng.random(layer.n) < 0.3, -1, 1)
            layer.params["beta"][...] = rng.normal(0, 0.2, layer.n)
        h = layer.forward(h)
    path = Path(folder) / "bnn_conv.fbm"
    model.save(path)
    return path
