"""Optimizers (SGD, Adam) and the seed notebooks' learning-rate schedules.

An optimizer updates a model's parameter groups in place through the model's
backend (``backend.sgd_update`` / ``backend.adam_update``: one fused pass per
group). A group is ``(key, param, grad, clip)``: ``Model`` keeps all the
parameters that share a clip bound in one flat buffer, so a step is one or
two kernel calls.

Schedules change ``opt.lr``:

* :class:`StepDecay` (notebook 1, float): ``lr *= factor`` every ``every``
  steps (``StepDecay(20, 0.8)``).
* :class:`DecayOnRise` (notebook 1, BinaryConnect): after each evaluation,
  ``lr *= factor`` when the evaluation loss rose above the previous one, and
  ask the trainer to stop after ``max_rises`` rises (``DecayOnRise(0.9, 5)``).
  As in the notebook the previous loss starts at 0, so the first evaluation
  counts as a rise (``first_counts=False`` to start from +inf).
"""
from __future__ import annotations

import math

import numpy as np

from .._validate import check_int, check_positive_float

__all__ = ["Schedule", "StepDecay", "DecayOnRise", "parse_schedule", "Optimizer", "SGD", "Adam"]


class Schedule:
    """Base class: hooks called by the optimizer / the trainer.
    ``needs_eval``: the schedule acts on evaluation losses (``fit`` then
    requires evaluation data)."""

    needs_eval = False

    def after_step(self, opt, step: int) -> None:
        """Called after update number ``step`` (1-based)."""

    def after_eval(self, opt, loss: float) -> bool:
        """Called with an evaluation loss; return True to stop training."""
        return False

    def state(self) -> dict:
        return {}


class StepDecay(Schedule):
    """``lr *= factor`` after every ``every`` steps."""

    def __init__(self, every: int = 20, factor: float = 0.8):
        self.every = check_int("every", every)
        self.factor = check_positive_float("factor", factor)

    def after_step(self, opt, step):
        if step % self.every == 0:
            opt.lr *= self.factor

    def __repr__(self):
        return f"StepDecay(every={self.every}, factor={self.factor})"


class DecayOnRise(Schedule):
    """``lr *= factor`` when the evaluation loss rises; stop after ``max_rises``."""

    needs_eval = True

    def __init__(self, factor: float = 0.9, max_rises: int = 5, first_counts: bool = True):
        self.factor = check_positive_float("factor", factor)
        self.max_rises = check_int("max_rises", max_rises)
        self.prev = 0.0 if first_counts else math.inf
        self.rises = 0

    def after_eval(self, opt, loss):
        if self.prev < loss:
            opt.lr *= self.factor
            self.rises += 1
        self.prev = loss
        return self.rises >= self.max_rises

    def state(self):
        return {"rises": self.rises}

    def __repr__(self):
        return f"DecayOnRise(factor={self.factor}, max_rises={self.max_rises})"


def parse_schedule(text):
    """``None``/``"none"``, ``"step:EVERY:FACTOR"`` or ``"rise:FACTOR:MAX_RISES"``
    (the CLI's spelling) -> a :class:`Schedule` or None."""
    if text is None or isinstance(text, Schedule):
        return text
    parts = str(text).split(":")
    try:
        if parts[0] == "none" and len(parts) == 1:
            return None
        if parts[0] == "step" and len(parts) == 3:
            return StepDecay(int(parts[1]), float(parts[2]))
        if parts[0] == "rise" and len(parts) == 3:
            return DecayOnRise(float(parts[1]), int(parts[2]))
    except ValueError as exc:
        raise ValueError(f"bad schedule {text!r}: {exc}") from None
    raise ValueError(f"schedule must be 'none', 'step:EVERY:FACTOR' or 'rise:FACTOR:MAX_RISES', got {text!r}")


class Optimizer:
    """Common part: learning rate, step counter, schedule hooks."""

    def __init__(self, lr, schedule=None):
        self.lr = check_positive_float("lr", lr)
        self.initial_lr = self.lr
        self.schedule = parse_schedule(schedule)
        self.steps = 0  # updates done so far

    def step(self, backend, groups) -> None:
        """Update every group ``(key, param, grad, clip)`` in place, then run
        the schedule's step hook."""
        for key, param, grad, clip in groups:
            self._update(backend, key, param, grad, clip)
        self.steps += 1
        if self.schedule is not None:
            self.schedule.after_step(self, self.steps)

    def after_eval(self, loss: float) -> bool:
        """Evaluation hook (the trainer calls it); True means stop."""
        if self.schedule is None:
            return False
        return bool(self.schedule.after_eval(self, loss))

    def _update(self, backend, key, param, grad, clip):
        raise NotImplementedError


class SGD(Optimizer):
    """``param -= lr * grad`` (then clip), via ``backend.sgd_update``."""

    def _update(self, backend, key, param, grad, clip):
        backend.sgd_update(param, grad, self.lr, clip=clip)

    def __repr__(self):
        return f"SGD(lr={self.lr:g}, schedule={self.schedule!r})"


class Adam(Optimizer):
    """autograd's Adam (``b1=0.9, b2=0.999, eps=1e-8``, bias-corrected), via
    ``backend.adam_update``; moment buffers are created on the first step."""

    def __init__(self, lr=1e-3, schedule=None, *, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(lr, schedule)
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1):
            raise ValueError(f"b1 and b2 must be in [0, 1), got {b1}, {b2}")
        check_positive_float("eps", eps)
        self.moments: dict = {}

    def _update(self, backend, key, param, grad, clip):
        if key not in self.moments:
            self.moments[key] = (np.zeros_like(param), np.zeros_like(param))
        m, v = self.moments[key]
        backend.adam_update(param, grad, m, v, self.steps, lr=self.lr, b1=self.b1, b2=self.b2,
                            eps=self.eps, clip=clip)

    def __repr__(self):
        return f"Adam(lr={self.lr:g}, b1={self.b1}, b2={self.b2}, eps={self.eps:g}, schedule={self.schedule!r})"
