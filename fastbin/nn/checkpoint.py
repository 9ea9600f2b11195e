"""Training checkpoints: the model, its optimizer and schedule, and where the run stands,
exactly, in one file (the model file container; schema: :mod:`fastbin.io.checkpoint`).

>>> h = fit(model, opt, X, y, epochs=5, validation_split=0.1)
>>> save_checkpoint("run.fbc", model, opt, h)           # h: the History (or h.state), or None
>>> model, opt, state = load_checkpoint("run.fbc")
>>> fit(model, opt, X, y, epochs=10, validation_split=0.1, resume=state)   # 5 more epochs

Resumed this way, 5 + 5 epochs give bit for bit the weights of 10 epochs in one go (the
conditions are :func:`fastbin.nn.fit`'s ``resume``). Saved: every parameter and buffer
(bit patterns of the model dtype, plus the float32 model file arrays), ``SGD``/``Adam`` (lr,
initial lr, step count, weight decay, SGD's momentum and velocities, Adam's constants and
moment estimates), a ``StepDecay``, ``DecayOnRise``, ``CosineDecay`` or ``WarmUp`` schedule
with its state, and the :class:`~fastbin.nn.train.TrainState` (step,
seed, batch order: the generator's state and the current epoch's permutation). Not saved:
an ``EarlyStopping`` object's state, and other optimizer or schedule classes (``TypeError``).
"""
from __future__ import annotations

import numpy as np

from ..io.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, bits_dtype, load_checkpoint_arrays
from ..io.modelfile import ModelFileError, save_arrays
from .model import Model, _build, _restore
from .optim import SGD, Adam, CosineDecay, DecayOnRise, StepDecay, WarmUp
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
    if type(schedule) is CosineDecay:
        return {"kind": "cosine", "total_steps": schedule.total_steps, "final_factor": schedule.final_factor}
    if type(schedule) is WarmUp:
        return {"kind": "warmup", "steps": schedule.steps, "then": _schedule_meta(schedule.then)}
    raise TypeError(f"cannot checkpoint the schedule {schedule!r}: StepDecay, DecayOnRise, CosineDecay, WarmUp "
                    f"or None")


def _optimizer_meta(opt):
    common = {"lr": float(opt.lr), "initial_lr": float(opt.initial_lr), "steps": int(opt.steps),
              "weight_decay": opt.weight_decay, "schedule": _schedule_meta(opt.schedule)}
    if type(opt) is SGD:
        return {"kind": "sgd", **common, "momentum": opt.momentum, "nesterov": opt.nesterov,
                "velocity": bool(opt.velocity)}
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
    ``StepDecay``/``DecayOnRise``/``CosineDecay``/``WarmUp``/None) and ``state`` (a ``TrainState``, the ``History`` of
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
    buffers = {}  # array name prefix -> {group key: flat buffer}
    if meta["optimizer"]["kind"] == "adam" and opt.moments:
        buffers = {f"adam.{which}": {key: pair[i] for key, pair in opt.moments.items()} for i, which in enumerate("mv")}
    elif meta["optimizer"]["kind"] == "sgd" and opt.velocity:
        buffers = {"sgd.velocity": opt.velocity}
    for prefix, flats in buffers.items():
        for name, (key, offset, size) in model.param_slices.items():
            shape = model_arrays[name].shape
            arrays[f"{prefix}.{name}"] = _bits(flats[key][offset : offset + size].reshape(shape), model.dtype)
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


def _schedule(meta):
    if meta is None:
        return None
    if meta["kind"] == "step":
        return StepDecay(meta["every"], meta["factor"])
    if meta["kind"] == "cosine":
        return CosineDecay(meta["total_steps"], meta["final_factor"])
    if meta["kind"] == "warmup":
        return WarmUp(meta["steps"], then=_schedule(meta["then"]))
    rise = DecayOnRise(meta["factor"], meta["max_rises"])
    rise.prev = np.inf if meta["prev"] is None else meta["prev"]
    rise.rises = meta["rises"]
    return rise


def _flat_buffers(model, arrays, prefix, dtype):
    """``{group key: flat buffer}`` from the per-parameter arrays ``"<prefix>.<name>"``."""
    flats = {key: np.zeros_like(flat) for key, flat, _, _ in model.groups}
    for name, (key, offset, size) in model.param_slices.items():
        flats[key][offset : offset + size] = arrays[f"{prefix}.{name}"].view(dtype).ravel()
    return flats


def _optimizer(meta, model, arrays, dtype):
    schedule = _schedule(meta["schedule"])
    # the constructor checks lr * weight_decay < 1 for the initial lr, which a
    # schedule may have lowered: build with the initial lr
    if meta["kind"] == "sgd":
        opt = SGD(meta["initial_lr"], schedule=schedule, momentum=meta["momentum"], nesterov=meta["nesterov"],
                  weight_decay=meta["weight_decay"])
        if meta["velocity"]:
            opt.velocity = _flat_buffers(model, arrays, "sgd.velocity", dtype)
    else:
        opt = Adam(meta["initial_lr"], schedule=schedule, b1=meta["b1"], b2=meta["b2"], eps=meta["eps"],
                   weight_decay=meta["weight_decay"])
        if meta["moments"]:
            m, v = (_flat_buffers(model, arrays, f"adam.{which}", dtype) for which in "mv")
            opt.moments = {key: (m[key], v[key]) for key in m}
    opt.lr, opt.initial_lr, opt.steps = meta["lr"], meta["initial_lr"], meta["steps"]
    return opt
