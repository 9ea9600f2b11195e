"""Training checkpoints: the model, its optimizer and schedule, and where the run stands,
exactly, in one file (the model file container; schema: :mod:`fastbin.io.checkpoint`).

>>> h = fit(model, opt, X, y, epochs=5, validation_split=0.1)
>>> save_checkpoint("run.fbc", model, opt, h)           # h: the History (or h.state), or None
>>> model, opt, state = load_checkpoint("run.fbc")
>>> fit(model, opt, X, y, epochs=10, validation_split=0.1, resume=state)   # 5 more epochs

Resumed this way, 5 + 5 epochs give bit for bit the weights of 10 epochs in one go (the
conditions are :func:`fastbin.nn.fit`'s ``resume``). Saved: every parameter and buffer
(bit patterns of the model dtype, plus the float32 model file arrays), ``SGD``/``Adam`` (lr,
initial lr, step count, Adam's constants and moment estimates), a ``StepDecay`` or
``DecayOnRise`` schedule with its state, and the :class:`~fastbin.nn.train.TrainState` (step,
seed, batch order: the generator's state and the current epoch's permutation). Not saved:
an ``EarlyStopping`` object's state, and other optimizer or schedule classes (``TypeError``).
"""
from __future__ import annotations

import numpy as np

from ..io.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, bits_dtype, load_checkpoint_arrays
from ..io.modelfile import ModelFileError, save_arrays
from .model import Model, _build, _restore
from .optim import SGD, Adam, DecayOnRise, StepDecay
from .train import History, TrainState

__all__ = ["save_checkpoint", "load_checkpoint"]


def _bits(value, dtype):
    return np.ascontiguousarray(value, dtype=dtype).view(bits_dtype(dtype))


def _schedule_meta(schedule):
    if schedule is None:
        return None
    if type(schedule) is StepDecay:
        return {"kind": "step", "every": schedule.every, "factor": schedule.factor}
    if type(schedule) is DecayOnRise:
        prev = None if schedule.prev == np.inf else float(schedule.prev)
        return {"kind": "rise", "factor": schedule.factor, "max_rises": schedule.max_rises, "prev": prev,
                "rises": schedule.rises}
    raise TypeError(f"cannot checkpoint the schedule {schedule!r}: StepDecay, DecayOnRise or None")


def _optimizer_meta(opt):
    common = {"lr": float(opt.lr), "initial_lr": float(opt.initial_lr), "steps": int(opt.steps),
              "schedule": _schedule_meta(opt.schedule)}
    if type(opt) is SGD:
        return {"kind": "sgd", **common}
    if type(opt) is Adam:
        return {"kind": "adam", **common, "b1": opt.b1, "b2": opt.b2, "eps": opt.eps, "moments": bool(opt.moments)}
    raise TypeError(f"cannot checkpoint the optimizer {opt!r}: SGD or Adam")


def _trainer_meta(state):
    data = state.data
    rng = data["rng"]
    if rng.get("bit_generator") != "PCG64":
        raise TypeError(f"cannot checkpoint a {rng.get('bit_generator')} batch order (PCG64 only)")
    return {"step": int(state.step), "seed": state.seed, "n": int(data["n"]), "batch_size": int(data["batch_size"]),
            "index": int(data["index"]), "epochs_completed": int(data["epochs_completed"]),
            "perm": data["perm"] is not None,
            "rng": {"bit_generator": "PCG64", "state": str(rng["state"]["state"]), "inc": str(rng["state"]["inc"]),
                    "has_uint32": int(rng["has_uint32"]), "uinteger": int(rng["uinteger"])}}


def save_checkpoint(path, model, opt, state=None) -> None:
    """Write ``model`` (a :class:`~fastbin.nn.Model`), ``opt`` (``SGD``/``Adam``, schedule
    ``StepDecay``/``DecayOnRise``/None) and ``state`` (a ``TrainState``, the ``History`` of
    the run, or None) to ``path`` atomically. ``TypeError`` for anything else."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be a fastbin.nn.Model, got {type(model).__name__}")
    if isinstance(state, History):
        state = state.state
    if state is not None and not isinstance(state, TrainState):
        raise TypeError(f"state must be a TrainState, the History of a run, or None, got {type(state).__name__}")
    _, model_meta, model_arrays = model.file_contents(latent=True)
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model_meta,
            "optimizer": _optimizer_meta(opt), "trainer": None if state is None else _trainer_meta(state)}
    arrays = {f"model.{name}": value for name, value in model_arrays.items()}
    arrays.update({f"exact.{name}": _bits(value, model.dtype) for name, value in model_arrays.items()})
    if meta["optimizer"]["kind"] == "adam" and opt.moments:
        for name, (key, offset, size) in model.param_slices.items():
            shape = model_arrays[name].shape
            for which, moment in zip("mv", opt.moments[key]):
                arrays[f"adam.{which}.{name}"] = _bits(moment[offset : offset + size].reshape(shape), model.dtype)
    if state is not None and state.data["perm"] is not None:
        arrays["data.perm"] = np.asarray(state.data["perm"], dtype=np.int64)
    save_arrays(path, meta, arrays)


def load_checkpoint(path, *, backend="fastbin"):
    """Read a checkpoint written by :func:`save_checkpoint`: ``(model, opt, state)``, the
    model on ``backend``, the optimizer with its schedule, and the ``TrainState`` (None if
    none was saved) to pass to ``fit(..., resume=state)``. The file is checked against the
    schema before anything of the model's size is built; ``ModelFileError`` otherwise."""
    schema, meta, arrays = load_checkpoint_arrays(path)
    dtype = np.dtype(schema.dtype)
    try:
        model = _build(schema, backend)
        _restore(model, meta["model"], {name: arrays[f"exact.{name}"].view(dtype) for name in schema.arrays})
        model.config = dict(meta["model"]["config"])
        opt = _optimizer(meta["optimizer"], model, arrays, dtype)
    except (KeyError, TypeError, ValueError) as exc:  # the schema should have caught it: still a file error
        raise ModelFileError(f"{path}: inconsistent checkpoint: {exc}") from exc
    trainer = meta["trainer"]
    state = None
    if trainer is not None:
        rng = {"bit_generator": "PCG64", "state": {"state": int(trainer["rng"]["state"]),
                                                   "inc": int(trainer["rng"]["inc"])},
               "has_uint32": trainer["rng"]["has_uint32"], "uinteger": trainer["rng"]["uinteger"]}
        data = {"n": trainer["n"], "batch_size": trainer["batch_size"], "rng": rng,
                "perm": arrays.get("data.perm"), "index": trainer["index"],
                "epochs_completed": trainer["epochs_completed"]}
        state = TrainState(trainer["step"], trainer["seed"], data)
    return model, opt, state


def _optimizer(meta, model, arrays, dtype):
    schedule = meta["schedule"]
    if schedule is not None and schedule["kind"] == "step":
        schedule = StepDecay(schedule["every"], schedule["factor"])
    elif schedule is not None:
        rise = DecayOnRise(schedule["factor"], schedule["max_rises"])
        rise.prev = np.inf if schedule["prev"] is None else schedule["prev"]
        rise.rises = schedule["rises"]
        schedule = rise
    if meta["kind"] == "sgd":
        opt = SGD(meta["lr"], schedule=schedule)
    else:
        opt = Adam(meta["lr"], schedule=schedule, b1=meta["b1"], b2=meta["b2"], eps=meta["eps"])
        if meta["moments"]:
            for key, flat, _, _ in model.groups:
                opt.moments[key] = (np.zeros_like(flat), np.zeros_like(flat))
            for name, (key, offset, size) in model.param_slices.items():
                for moment, which in zip(opt.moments[key], "mv"):
                    moment[offset : offset + size] = arrays[f"adam.{which}.{name}"].view(dtype).ravel()
    opt.lr, opt.initial_lr, opt.steps = meta["lr"], meta["initial_lr"], meta["steps"]
    return opt
