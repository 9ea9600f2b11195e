"""The thin trainer: ``fit(model, opt, dataset, ...)``.

Mini-batches come from :class:`fastbin.datasets.BatchIterator` (seeded, so a
seed gives the same batches; with the same initial weights the whole run is
bit-for-bit reproducible). Every ``eval_every`` steps, and after the last
step, the model is evaluated on the test split (as the seed notebooks do); the
optimizer's schedule sees that loss (notebook 1's decay-on-rise), and early
stopping may end the run.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .._validate import check_int
from ..io.datasets import BatchIterator

__all__ = ["History", "EarlyStopping", "fit"]


@dataclass
class History:
    """One entry per evaluation: ``step`` (updates done), ``loss`` and ``acc``
    on the evaluation split, ``train_loss`` (mean batch loss since the
    previous evaluation), ``lr``, and ``time``: seconds since the start of
    training, evaluations excluded. ``total_time`` includes evaluations;
    ``stopped`` says why training ended ("steps", "epochs", "schedule",
    "early_stopping")."""

    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    acc: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    time: list = field(default_factory=list)
    total_time: float = 0.0
    train_time: float = 0.0
    stopped: str = ""

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("step", "loss", "acc", "train_loss", "lr", "time",
                                                "total_time", "train_time", "stopped")}

    @property
    def final_acc(self) -> float:
        return self.acc[-1] if self.acc else math.nan


class EarlyStopping:
    """Stop when the evaluation loss has not improved by ``min_delta`` for
    ``patience`` evaluations in a row."""

    def __init__(self, patience: int = 5, min_delta: float = 0.0):
        self.patience, self.min_delta = check_int("patience", patience), float(min_delta)
        self.best, self.bad = math.inf, 0

    def __call__(self, loss: float) -> bool:
        if loss < self.best - self.min_delta:
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
        return self.bad >= self.patience


def _split(dataset):
    if hasattr(dataset, "x_train"):
        return dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test
    if isinstance(dataset, (tuple, list)) and len(dataset) == 4:
        return tuple(dataset)
    raise TypeError("dataset must be a fastbin.datasets.Dataset or (x_train, y_train, x_test, y_test)")


def fit(model, opt, dataset, epochs=None, steps=None, batch_size=128, eval_every=20, seed=0,
        progress=True, early_stopping=None, eval_data=None) -> History:
    """Train ``model`` with ``opt`` on ``dataset`` and return a :class:`History`.

    Exactly one of ``epochs`` (passes over the training set, rounded up to
    whole batches) and ``steps`` (updates) bounds the run; the optimizer's
    schedule (``DecayOnRise``) or ``early_stopping`` (an :class:`EarlyStopping`
    or an int patience) may end it sooner. ``eval_every`` steps between
    evaluations on ``eval_data`` (default: the test split); ``None`` or 0
    evaluates only at the end. ``progress`` shows a tqdm bar.

    Raw uint8 datasets (``load_fashion_mnist(dtype="uint8")``) train on the
    same values (``float32(pixel) / 255``, converted per batch) and gather
    4x fewer bytes per batch; the test split is converted once.
    """
    x_train, y_train, x_test, y_test = _split(dataset)
    if eval_data is not None:
        x_test, y_test = eval_data
    if getattr(x_test, "dtype", None) == np.uint8:  # convert once, not at every evaluation
        x_test = np.divide(x_test, model.dtype.type(255), dtype=model.dtype)
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs= or steps=")
    for name, value in (("epochs", epochs), ("steps", steps), ("batch_size", batch_size)):
        if value is not None:
            check_int(name, value)
    if eval_every is not None:
        check_int("eval_every", eval_every, minimum=0)
    if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
        early_stopping = EarlyStopping(early_stopping)
    batches = BatchIterator(x_train, y_train, int(batch_size), seed)
    total = int(steps) if steps is not None else int(epochs) * math.ceil(len(x_train) / batch_size)
    history = History()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", leave=False, dynamic_ncols=True)
    start = time.perf_counter()
    eval_seconds, train_losses = 0.0, []
    try:
        for step in range(1, total + 1):
            x, y = batches.next_batch()
            train_losses.append(model.train_step(x, y, opt))
            if bar is not None:
                bar.update(1)
            last = step == total
            if (eval_every and step % eval_every == 0) or last:
                t_eval = time.perf_counter()
                loss, acc = model.evaluate(x_test, y_test)
                history.step.append(step)
                history.loss.append(loss)
                history.acc.append(acc)
                history.train_loss.append(float(np.mean(train_losses)))
                history.lr.append(opt.lr)
                history.time.append(t_eval - start - eval_seconds)
                train_losses = []
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.4f}")
                stop_schedule = opt.after_eval(loss)
                stop_early = early_stopping is not None and early_stopping(loss)
                eval_seconds += time.perf_counter() - t_eval
                if last:
                    history.stopped = "steps" if steps is not None else "epochs"
                elif stop_schedule or stop_early:
                    history.stopped = "schedule" if stop_schedule else "early_stopping"
                    break
    finally:
        if bar is not None:
            bar.close()
    history.total_time = time.perf_counter() - start
    history.train_time = history.total_time - eval_seconds
    return history
