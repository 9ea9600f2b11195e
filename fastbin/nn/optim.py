"""Optimizers (SGD with momentum, Adam; both with decoupled weight decay) and
learning-rate schedules.

An optimizer updates a model's parameter groups in place through the model's
backend (``backend.sgd_update`` / ``backend.adam_update``: one fused pass per
group). A group is ``(key, param, grad, clip)``: ``Model`` keeps all the
parameters that share a clip bound in one flat buffer, so a step is one or
two kernel calls. Weight decay (``weight_decay=wd``) is decoupled, as in
AdamW and PyTorch's ``AdamW``: before the update, ``param *= 1 - lr * wd``
(every trained parameter: weights, biases, batch-norm scale and shift); with
a clip bound (BinaryConnect's latent weights) the clip comes last.

Schedules change ``opt.lr``; ``opt.initial_lr`` is the ``lr`` given:

* :class:`StepDecay` (notebook 1, float): ``lr *= factor`` every ``every``
  steps (``StepDecay(20, 0.8)``).
* :class:`DecayOnRise` (notebook 1, BinaryConnect): after each evaluation,
  ``lr *= factor`` when the evaluation loss rose above the previous one, and
  ask the trainer to stop after ``max_rises`` rises (``DecayOnRise(0.9, 5)``).
  As in the notebook the previous loss starts at 0, so the first evaluation
  counts as a rise (``first_counts=False`` to start from +inf).
* :class:`CosineDecay`: update ``t`` (1-based) uses ``lr = initial_lr * (f +
  (1 - f) * (1 + cos(pi * min(t - 1, T) / T)) / 2)``, from ``initial_lr``
  down to ``f * initial_lr`` at update ``T + 1`` and after
  (``CosineDecay(T, final_factor=f)``).
* :class:`WarmUp`: update ``t <= n`` uses ``lr = initial_lr * t / n``; from
  update ``n + 1`` on, ``then`` (another schedule or None: constant) runs as
  if training had started there (``WarmUp(500, then=CosineDecay(9500))``).

The per-step schedules (cosine, warm-up) are functions of the step count
alone, so a checkpoint restores them exactly from ``opt.steps``.
"""
from __future__ import annotations

import math

import numpy as np

from .._validate import check_fraction, check_int, check_positive_float

__all__ = ["Schedule", "StepDecay", "DecayOnRise", "CosineDecay", "WarmUp", "parse_schedule", "Optimizer", "SGD",
           "Adam"]


class Schedule:
    """Base class: hooks called by the optimizer / the trainer.
    ``needs_eval``: the schedule acts on evaluation losses (``fit`` then
    requires evaluation data)."""

    needs_eval = False

    def before_step(self, opt, step: int) -> None:
        """Called before update number ``step`` (1-based)."""

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


class CosineDecay(Schedule):
    """Cosine decay over ``total_steps`` updates from ``initial_lr`` to
    ``final_factor * initial_lr`` (held after): update ``t`` (1-based) uses
    ``initial_lr * (f + (1 - f) * (1 + cos(pi * min(t - 1, T) / T)) / 2)``."""

    def __init__(self, total_steps: int, final_factor: float = 0.0):
        self.total_steps = check_int("total_steps", total_steps)
        self.final_factor = check_positive_float("final_factor", final_factor, allow_zero=True)
        if self.final_factor > 1:
            raise ValueError(f"final_factor must be a number in [0, 1], got {self.final_factor}")

    def factor(self, step: int) -> float:
        """The multiplier of ``initial_lr`` for update ``step`` (1-based)."""
        t = min(step - 1, self.total_steps) / self.total_steps
        return self.final_factor + (1.0 - self.final_factor) * 0.5 * (1.0 + math.cos(math.pi * t))

    def before_step(self, opt, step):
        opt.lr = opt.initial_lr * self.factor(step)

    def __repr__(self):
        return f"CosineDecay(total_steps={self.total_steps}, final_factor={self.final_factor})"


class WarmUp(Schedule):
    """Linear warm-up: update ``t <= steps`` (1-based) uses ``initial_lr * t /
    steps``; then ``then`` (a ``StepDecay``, ``DecayOnRise``, ``CosineDecay``
    or None for a constant ``initial_lr``) runs with its steps counted from the
    end of the warm-up. Evaluations during the warm-up are not shown to
    ``then``."""

    def __init__(self, steps: int, then: Schedule | None = None):
        self.steps = check_int("steps", steps)
        if then is not None and (not isinstance(then, Schedule) or isinstance(then, WarmUp)):
            raise TypeError(f"then must be a schedule other than WarmUp, or None, got {then!r}")
        self.then = then

    @property
    def needs_eval(self):
        return self.then is not None and self.then.needs_eval

    def before_step(self, opt, step):
        if step <= self.steps:
            opt.lr = opt.initial_lr * step / self.steps
        elif self.then is not None:
            self.then.before_step(opt, step - self.steps)

    def after_step(self, opt, step):
        if step > self.steps and self.then is not None:
            self.then.after_step(opt, step - self.steps)

    def after_eval(self, opt, loss):
        if self.then is None or opt.steps < self.steps:
            return False
        return self.then.after_eval(opt, loss)

    def __repr__(self):
        return f"WarmUp(steps={self.steps}, then={self.then!r})"


_SCHEDULE_SPELLING = ("'none', 'step:EVERY:FACTOR', 'rise:FACTOR:MAX_RISES' or "
                      "'cosine:TOTAL_STEPS[:FINAL_FACTOR]'")


def parse_schedule(text):
    """``None``/``"none"``, ``"step:EVERY:FACTOR"``, ``"rise:FACTOR:MAX_RISES"`` or
    ``"cosine:TOTAL_STEPS[:FINAL_FACTOR]"`` (the CLI's spelling) -> a :class:`Schedule`
    or None (a :class:`Schedule` is returned as is)."""
    if text is None or isinstance(text, Schedule):
        return text
    if not isinstance(text, str):
        raise TypeError(f"schedule must be a Schedule, a string or None, got {type(text).__name__}")
    parts = text.split(":")
    try:
        if parts[0] == "none" and len(parts) == 1:
            return None
        if parts[0] == "step" and len(parts) == 3:
            return StepDecay(int(parts[1]), float(parts[2]))
        if parts[0] == "rise" and len(parts) == 3:
            return DecayOnRise(float(parts[1]), int(parts[2]))
        if parts[0] == "cosine" and len(parts) in (2, 3):
            return CosineDecay(int(parts[1]), float(parts[2]) if len(parts) == 3 else 0.0)
    except ValueError as exc:
        raise ValueError(f"bad schedule {text!r}: {exc}") from None
    raise ValueError(f"schedule must be {_SCHEDULE_SPELLING}, got {text!r}")


class Optimizer:
    """Common part: learning rate, step counter, schedule hooks, decoupled
    weight decay (``param *= 1 - lr * weight_decay`` before each update)."""

    def __init__(self, lr, schedule=None, *, weight_decay=0.0):
        self.lr = check_positive_float("lr", lr)
        self.initial_lr = self.lr
        self.schedule = parse_schedule(schedule)
        self.weight_decay = check_positive_float("weight_decay", weight_decay, allow_zero=True)
        if self.lr * self.weight_decay >= 1:
            raise ValueError(f"lr * weight_decay must be < 1 (each step multiplies the parameters by "
                             f"1 - lr * weight_decay), got {self.lr} * {self.weight_decay}")
        self.steps = 0  # updates done so far

    def step(self, backend, groups) -> None:
        """Run the schedule's ``before_step`` hook, update every group ``(key,
        param, grad, clip)`` in place, then run its ``after_step`` hook."""
        if self.schedule is not None:
            self.schedule.before_step(self, self.steps + 1)
        for key, param, grad, clip in groups:
            if self.weight_decay:
                np.multiply(param, 1.0 - self.lr * self.weight_decay, out=param)
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
    """Stochastic gradient descent, PyTorch's form of momentum::

        v = momentum * v + grad                       (v starts at 0)
        param -= lr * (v, or grad + momentum * v with nesterov=True)

    (``momentum=0``: ``param -= lr * grad``), then the clip, via
    ``backend.sgd_update``. ``weight_decay``: see :class:`Optimizer`. The
    velocities (``velocity[key]``, one per group) are created on the first step."""

    def __init__(self, lr, schedule=None, *, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr, schedule, weight_decay=weight_decay)
        self.momentum = check_fraction("momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.velocity: dict = {}

    def _update(self, backend, key, param, grad, clip):
        if self.momentum:
            if key not in self.velocity:
                self.velocity[key] = np.zeros_like(param)
            v = self.velocity[key]
            v *= self.momentum
            v += grad
            grad = grad + self.momentum * v if self.nesterov else v
        backend.sgd_update(param, grad, self.lr, clip=clip)

    def __repr__(self):
        extra = f", momentum={self.momentum}, nesterov={self.nesterov}" if self.momentum else ""
        extra += f", weight_decay={self.weight_decay:g}" if self.weight_decay else ""
        return f"SGD(lr={self.lr:g}{extra}, schedule={self.schedule!r})"


class Adam(Optimizer):
    """autograd's Adam (``b1=0.9, b2=0.999, eps=1e-8``, bias-corrected), via
    ``backend.adam_update``; moment buffers are created on the first step.
    With ``weight_decay`` it is AdamW (decoupled, see :class:`Optimizer`)."""

    def __init__(self, lr=1e-3, schedule=None, *, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, schedule, weight_decay=weight_decay)
        self.b1 = check_fraction("b1", b1)
        self.b2 = check_fraction("b2", b2)
        self.eps = check_positive_float("eps", eps)
        self.moments: dict = {}

    def _update(self, backend, key, param, grad, clip):
        if key not in self.moments:
            self.moments[key] = (np.zeros_like(param), np.zeros_like(param))
        m, v = self.moments[key]
        backend.adam_update(param, grad, m, v, self.steps, lr=self.lr, b1=self.b1, b2=self.b2,
                            eps=self.eps, clip=clip)

    def __repr__(self):
        extra = f", weight_decay={self.weight_decay:g}" if self.weight_decay else ""
        return (f"Adam(lr={self.lr:g}, b1={self.b1}, b2={self.b2}, eps={self.eps:g}{extra}, "
                f"schedule={self.schedule!r})")
