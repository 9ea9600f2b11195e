"""The thin trainer: ``fit(model, opt, X, y, ...)`` on arrays, or
``fit(model, opt, dataset, ...)`` on a train/test split.

Mini-batches come from :class:`fastbin.datasets.BatchIterator` (seeded, so a
seed gives the same batches; with the same initial weights the whole run is
bit-for-bit reproducible). Every ``eval_every`` steps, and after the last
step, the model is evaluated on the *evaluation data*; the optimizer's
schedule sees that loss (notebook 1's decay-on-rise), and early stopping may
end the run. The evaluation data is, in this order:

* ``validation_data=(x_val, y_val)`` (``eval_data=`` is its older name);
* ``validation_split=f``: a fraction ``f`` of the training rows, drawn from
  ``seed`` (:func:`split_validation`) and left out of training;
* with arrays ``X, y`` and neither: none (no early stopping, no
  decay-on-rise; the history keeps the training loss only);
* with a dataset (a :class:`fastbin.datasets.Dataset` or ``(x_train,
  y_train, x_test, y_test)``) and neither: its test split, as the seed
  notebooks did (the demo's recipes keep that behaviour). Give a validation
  split or validation data and the test split is never read.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field

import numpy as np

from .._validate import check_fraction, check_int, check_labels
from ..io.datasets import BatchIterator
from .augment import smooth_labels

__all__ = ["History", "EarlyStopping", "TrainState", "fit", "split_validation"]


@dataclass
class TrainState:
    """Where a run stands after ``fit``: ``step`` (updates done since the run
    began), ``seed`` (its data seed) and ``data`` (the batch order,
    :meth:`fastbin.datasets.BatchIterator.state`). ``fit(..., resume=state)``
    continues the run (``History.state`` holds it; :func:`fastbin.nn.save_checkpoint`
    writes it to a file with the model and the optimizer)."""

    step: int
    seed: int | None
    data: dict


@dataclass
class History:
    """One entry per evaluation: ``step`` (updates done), ``loss`` and ``acc``
    on the evaluation data (NaN when there is none), ``train_loss`` (mean
    batch loss since the previous evaluation), ``lr``, and ``time``: seconds
    since the start of training, evaluations excluded. ``total_time``
    includes evaluations; ``stopped`` says why training ended ("steps",
    "epochs", "schedule", "early_stopping"); ``eval_on`` what ``loss`` and
    ``acc`` were measured on ("validation", "test" or "" for none);
    ``restored_step`` the step whose weights ``EarlyStopping(...,
    restore_best_weights=True)`` put back (None: the last weights kept);
    ``state`` the :class:`TrainState` to resume from."""

    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    acc: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    time: list = field(default_factory=list)
    total_time: float = 0.0
    train_time: float = 0.0
    stopped: str = ""
    eval_on: str = ""
    restored_step: int | None = None
    state: TrainState | None = None

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("step", "loss", "acc", "train_loss", "lr", "time",
                                                "total_time", "train_time", "stopped", "eval_on",
                                                "restored_step")}

    @property
    def final_acc(self) -> float:
        return self.acc[-1] if self.acc else math.nan


class EarlyStopping:
    """Stop when the evaluation loss has not improved by ``min_delta`` for
    ``patience`` evaluations in a row.

    ``restore_best_weights``: when training ends (early or not), put back
    the parameters and batch-norm statistics of the evaluation with the
    lowest loss, if a later evaluation was worse (``History.restored_step``).
    The object keeps its state (``best``, ``bad``, ``best_step``) across
    ``fit`` calls on the same model, so a resumed run compares with the best
    loss so far; given another model, ``fit`` resets it first."""

    def __init__(self, patience: int = 5, min_delta: float = 0.0, *, restore_best_weights: bool = False):
        self.patience = check_int("patience", patience)
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not min_delta >= 0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        if not isinstance(restore_best_weights, (bool, np.bool_)):
            raise TypeError(f"restore_best_weights must be a bool, got {type(restore_best_weights).__name__}")
        self.min_delta, self.restore_best_weights = float(min_delta), bool(restore_best_weights)
        self.reset()

    def reset(self) -> None:
        """Forget the best loss and weights (``fit`` calls it when given another model)."""
        self.best, self.bad = math.inf, 0
        self.improved = False  # whether the last call improved on the best loss
        self.best_step = None  # set by fit: the step of the best evaluation
        self.best_weights = None  # set by fit when restore_best_weights: a copy of the model's state
        self.model_id = None  # set by fit: id() of the model it watches

    def __call__(self, loss: float) -> bool:
        self.improved = loss < self.best - self.min_delta
        if self.improved:
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
        return self.bad >= self.patience

    def __repr__(self):
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best_weights={self.restore_best_weights})")


def split_validation(n: int, fraction: float, seed=0):
    """Row indices ``(train, validation)`` of a seeded split of ``n`` rows:
    ``round(n * fraction)`` validation rows drawn without replacement by
    ``numpy.random.default_rng([seed, 1])`` (a stream apart from the batch
    order's ``default_rng(seed)``; ``seed=None``: fresh entropy), each part
    in increasing order (int64). ``ValueError`` unless ``0 < fraction < 1``
    leaves at least one row on each side."""
    n = check_int("n", n)
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise ValueError(f"validation_split must be a number in (0, 1), got {fraction!r}")
    n_val = int(round(n * float(fraction)))
    if not 1 <= n_val <= n - 1:
        raise ValueError(f"validation_split={fraction} of {n} rows leaves {n_val} validation and {n - n_val} "
                         f"training rows: each needs at least one")
    rng = np.random.default_rng(None if seed is None else [seed, 1])
    val = np.zeros(n, bool)
    val[rng.permutation(n)[:n_val]] = True
    return np.flatnonzero(~val), np.flatnonzero(val)


def _is_dataset(data) -> bool:
    return hasattr(data, "x_train") or (isinstance(data, (tuple, list)) and len(data) == 4)


def _training_data(data, y):
    """``(x_train, y_train, dataset or None)`` from ``fit``'s ``data, y``."""
    if y is None:
        if hasattr(data, "x_train"):
            return data.x_train, data.y_train, data
        if isinstance(data, (tuple, list)) and len(data) == 4:
            return data[0], data[1], data
        raise TypeError("fit needs arrays fit(model, opt, X, y) or a dataset: a fastbin.datasets.Dataset or "
                        f"(x_train, y_train, x_test, y_test); got {type(data).__name__} and no y")
    if _is_dataset(data):
        raise TypeError("y must be None when the first argument is a dataset (it holds the labels); "
                        "epochs= and steps= are keyword arguments")
    if not isinstance(data, np.ndarray):
        raise TypeError(f"X must be a numpy.ndarray, got {type(data).__name__}")
    if not isinstance(y, np.ndarray):
        raise TypeError(f"y must be a numpy.ndarray, got {type(y).__name__}")
    return data, y, None


def _pair(name, value):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (x, y) of arrays, got {type(value).__name__}")
    return tuple(value)


def _check_arrays(model, name, x, y):
    """``x`` as ``check_model_input`` returns it (uint8 kept, floats cast to the model's
    dtype once), ``y`` checked against the model's classes."""
    x = model.check_input(x)
    check_labels(f"{name} labels", y, x.shape[0], model.n_classes, model.dtype)
    return x, y


def _eval_split(model, data, y, validation_split, validation_data, eval_data, seed):
    """``(x_train, y_train, x_eval, y_eval, eval_on)``; the test split of a dataset is read
    only when it is the evaluation data."""
    if eval_data is not None:
        if validation_data is not None:
            raise ValueError("give validation_data= or its older name eval_data=, not both")
        validation_data = eval_data
    if validation_data is not None and validation_split is not None:
        raise ValueError("give validation_split= or validation_data=, not both")
    x_train, y_train, dataset = _training_data(data, y)
    if dataset is None:
        x_train, y_train = _check_arrays(model, "y", x_train, y_train)
    if validation_data is not None:
        x_val, y_val = _check_arrays(model, "validation_data", *_pair("validation_data", validation_data))
        return x_train, y_train, x_val, y_val, "validation"
    if validation_split is not None:
        n = len(x_train)
        if len(y_train) != n:
            raise ValueError(f"x_train and y_train must have the same number of rows, got {n} and {len(y_train)}")
        train, val = split_validation(n, validation_split, seed)
        x_val, y_val = np.take(x_train, val, axis=0), np.take(y_train, val, axis=0)
        return np.take(x_train, train, axis=0), np.take(y_train, train, axis=0), x_val, y_val, "validation"
    if dataset is None:
        return x_train, y_train, None, None, ""
    if hasattr(dataset, "x_test"):
        return x_train, y_train, dataset.x_test, dataset.y_test, "test"
    return x_train, y_train, dataset[2], dataset[3], "test"


def _state(model) -> list:
    """A copy of everything training changes in ``model``: the flat parameter buffers, then
    every layer's buffers (batch-norm statistics) and ``alpha_override``."""
    state = [flat.copy() for _, flat, _, _ in model.groups]
    for layer in model.layers:
        state.extend(value.copy() for value in layer.buffers.values())
        state.append(getattr(layer, "alpha_override", None))
    return state


def _set_state(model, state) -> None:
    """Write back a :func:`_state` copy in place."""
    values = iter(state)
    for _, flat, _, _ in model.groups:
        flat[...] = next(values)
    for layer in model.layers:
        for target in layer.buffers.values():
            target[...] = next(values)
        alpha = next(values)
        if hasattr(layer, "alpha_override"):
            layer.alpha_override = alpha


def fit(model, opt, data, y=None, *, epochs=None, steps=None, batch_size=128, eval_every="auto", seed=0,
        progress=True, early_stopping=None, validation_split=None, validation_data=None,
        eval_data=None, resume=None, augment=None, label_smoothing=0.0) -> History:
    """Train ``model`` with ``opt`` and return a :class:`History`.

    ``data, y``: arrays ``X`` (m, n_in) float or raw uint8 and ``y`` (m,)
    integer class indices in ``[0, n_classes)`` (or targets (m, n_classes));
    or a dataset (``y=None``): a :class:`fastbin.datasets.Dataset` or
    ``(x_train, y_train, x_test, y_test)``. The evaluation data is
    ``validation_data=(x_val, y_val)``, else a seeded ``validation_split``
    fraction of the training rows, else (dataset only) the test split; see
    the module docstring.

    Exactly one of ``epochs`` (passes over the training rows, rounded up to
    whole batches) and ``steps`` (updates) bounds the run; the optimizer's
    schedule (``DecayOnRise``) or ``early_stopping`` (an :class:`EarlyStopping`
    or an int patience) may end it sooner: both need evaluation data.
    ``eval_every`` steps between evaluations: ``"epoch"`` (one pass:
    ``ceil(m / batch_size)`` steps), ``"auto"`` (one epoch with arrays, 20
    steps with a dataset, as before), an int >= 1, or ``None``/0: only at the
    end. ``progress`` shows a tqdm bar.

    ``resume``: a :class:`TrainState` (or the :class:`History` of the run)
    to continue: the batch order goes on where it stopped, and ``epochs`` /
    ``steps`` count from the start of that run (``epochs=10`` after 5 trains
    5 more). With the optimizer of that run (the same object, or
    :func:`fastbin.nn.load_checkpoint`'s), 5 + 5 epochs give bit for bit the
    weights of 10 epochs in one go, as long as the evaluations fall on the
    same steps (the end of the first part is an evaluation: ``eval_every``
    dividing its steps, e.g. ``"epoch"``, or a schedule that ignores
    evaluations). Same data, seed, batch size and validation split required.

    Raw uint8 input (``load_fashion_mnist(dtype="uint8")``) trains on the
    same values (``float32(pixel) / 255``, converted per batch) and gathers
    4x fewer bytes per batch; the evaluation data is converted once. On the
    fastbin backend a binary first layer's forward is the pixels' exact integer
    product (``Dense.uint8_training``): within float rounding of the float run.

    ``augment``: a callable ``augment(x_batch, rng) -> x_batch`` (same shape and
    dtype), e.g. :class:`fastbin.nn.ImageAugment`, applied to every training batch
    with ``rng = numpy.random.default_rng([seed, 2, step])`` (``step`` the update,
    1-based; ``seed=None``: fresh entropy), so runs and resumed runs are reproducible.
    ``label_smoothing``: ``eps`` in [0, 1); the training batches' labels become
    targets ``(1 - eps) * onehot + eps / n_classes`` (:func:`fastbin.nn.smooth_labels`).
    Neither touches the evaluation data; a resumed run needs the same values.
    """
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs= or steps=")
    for name, value in (("epochs", epochs), ("steps", steps), ("batch_size", batch_size)):
        if value is not None:
            check_int(name, value)
    if seed is not None:
        check_int("seed", seed, minimum=0)
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be callable as augment(x_batch, rng), got {type(augment).__name__}")
    label_smoothing = check_fraction("label_smoothing", label_smoothing)
    if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
        early_stopping = EarlyStopping(early_stopping)
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"early_stopping must be an EarlyStopping or an int patience, "
                        f"got {type(early_stopping).__name__}")
    x_train, y_train, x_eval, y_eval, eval_on = _eval_split(model, data, y, validation_split, validation_data,
                                                            eval_data, seed)
    if not eval_on:
        for what, used in (("early_stopping", early_stopping is not None),
                           (f"the schedule {opt.schedule!r}", getattr(opt.schedule, "needs_eval", False))):
            if used:
                raise ValueError(f"{what} watches an evaluation loss: give validation_split= or validation_data=")
    per_epoch = math.ceil(len(x_train) / batch_size)
    if eval_every == "auto":
        eval_every = per_epoch if y is not None else 20
    elif eval_every == "epoch":
        eval_every = per_epoch
    elif eval_every is not None:
        check_int("eval_every", eval_every, minimum=0)
    if getattr(x_eval, "dtype", None) == np.uint8:  # convert once, not at every evaluation
        x_eval = np.divide(x_eval, model.dtype.type(255), dtype=model.dtype)
    batches = BatchIterator(x_train, y_train, int(batch_size), seed)
    total = int(steps) if steps is not None else int(epochs) * per_epoch
    first = 1
    if resume is not None:
        state = resume.state if isinstance(resume, History) else resume
        if not isinstance(state, TrainState):
            raise TypeError(f"resume must be a TrainState or the History of a run, got {type(resume).__name__}")
        if state.seed != seed:
            raise ValueError(f"resume: the run used seed={state.seed}, this call seed={seed}")
        batches.set_state(state.data)
        if state.step >= total:
            raise ValueError(f"resume: the run has done {state.step} steps; epochs= and steps= count from its "
                             f"start, so they must ask for more (this call: {total} steps)")
        first = state.step + 1
    history = History(eval_on=eval_on)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total - first + 1, unit="step", leave=False, dynamic_ncols=True)
    restore = early_stopping is not None and early_stopping.restore_best_weights
    if early_stopping is not None and early_stopping.model_id != id(model):
        early_stopping.reset()
        early_stopping.model_id = id(model)
    start = time.perf_counter()
    eval_seconds, train_losses = 0.0, []
    try:
        step = first - 1
        for step in range(first, total + 1):
            x, labels = batches.next_batch()
            if augment is not None:
                x = augment(x, np.random.default_rng(None if seed is None else [seed, 2, step]))
            if label_smoothing:
                labels = smooth_labels(labels, model.n_classes, label_smoothing, model.dtype)
            train_losses.append(model.train_step(x, labels, opt))
            if bar is not None:
                bar.update(1)
            last = step == total
            if (eval_every and step % eval_every == 0) or last:
                t_eval = time.perf_counter()
                loss, acc = model.evaluate(x_eval, y_eval) if eval_on else (math.nan, math.nan)
                history.step.append(step)
                history.loss.append(loss)
                history.acc.append(acc)
                history.train_loss.append(float(np.mean(train_losses)))
                history.lr.append(opt.lr)
                history.time.append(t_eval - start - eval_seconds)
                train_losses = []
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.4f}")
                stop_schedule = bool(eval_on) and opt.after_eval(loss)
                stop_early = early_stopping is not None and early_stopping(loss)
                if early_stopping is not None and early_stopping.improved:
                    early_stopping.best_step = step
                    if restore:
                        early_stopping.best_weights = _state(model)
                eval_seconds += time.perf_counter() - t_eval
                if last:
                    history.stopped = "steps" if steps is not None else "epochs"
                elif stop_schedule or stop_early:
                    history.stopped = "schedule" if stop_schedule else "early_stopping"
                    break
    finally:
        if bar is not None:
            bar.close()
    if restore and early_stopping.best_weights is not None and not early_stopping.improved:
        _set_state(model, early_stopping.best_weights)
        history.restored_step = early_stopping.best_step
    history.state = TrainState(step, seed, batches.state())
    history.total_time = time.perf_counter() - start
    history.train_time = history.total_time - eval_seconds
    return history
