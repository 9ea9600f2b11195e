"""The schema of a fastbin training checkpoint: a model file container (:mod:`fastbin.io.modelfile`)
holding a model, its optimizer, its schedule and where the run stands, exactly.

``meta`` (JSON)::

    {"format": "fastbin.checkpoint", "version": 2,
     "model": <the meta of a latent, unfolded model file: fastbin.io.modelschema>,
     "optimizer": {"kind": "sgd", "lr", "initial_lr", "steps", "weight_decay", "momentum", "nesterov",
                   "velocity", "schedule"}
                | {"kind": "adam", "lr", "initial_lr", "steps", "weight_decay", "b1", "b2", "eps", "moments",
                   "schedule"},
     "trainer": null | {"step", "seed", "n", "batch_size", "index", "epochs_completed", "perm", "rng"}}

``schedule`` is null, ``{"kind": "step", "every", "factor"}``, ``{"kind": "rise", "factor",
"max_rises", "prev", "rises"}`` (``prev`` null for +inf), ``{"kind": "cosine", "total_steps",
"final_factor"}`` or ``{"kind": "warmup", "steps", "then"}`` (``then`` a schedule other than
warmup, or null). ``weight_decay`` >= 0 with ``lr * weight_decay < 1`` (``initial_lr`` too);
``momentum`` in [0, 1), ``nesterov`` a bool (true only with momentum > 0). Version 1 (before
weight decay, momentum and the per-step schedules) is read as version 2 with ``weight_decay``
0, ``momentum`` 0, ``nesterov`` and ``velocity`` false. ``rng`` is a PCG64 state with its two
128-bit integers as decimal strings (``{"bit_generator": "PCG64", "state", "inc", "has_uint32",
"uinteger"}``). Floats in JSON round-trip exactly.

Arrays, each ``<name>`` an array of the model file (``"<layer>.<param or buffer>"``):

* ``"model.<name>"``: the model file's arrays (float32), checked by
  :func:`fastbin.io.modelschema.check_header` / ``check_values`` like any model file;
* ``"exact.<name>"``: the same values bit for bit, as the int32 (float32 model) or int64
  (float64 model) bit patterns of the model dtype (the container stores floats as float32);
* ``"adam.m.<name>"``, ``"adam.v.<name>"`` (Adam with ``moments``: true), for each parameter
  (not the buffers ``input_offset``, ``input_scale``, ``running_mean``, ``running_var``): the moment
  estimates, bit patterns as above;
* ``"sgd.velocity.<name>"`` (SGD with ``velocity``: true), for each parameter: the momentum
  buffer, bit patterns as above;
* ``"data.perm"`` (int64 (n,), when ``trainer.perm``): the current epoch's order of the rows.

:func:`load_checkpoint_arrays` checks the header (exact keys and types, the model part, the
array table equal to the one ``meta`` implies) before any payload is copied, then the values
(finite floats, ``running_var`` and ``v`` >= 0, ``model.*`` equal to ``exact.*`` rounded to
float32, ``data.perm`` a permutation). Any violation is a ``ModelFileError``.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from .modelfile import ModelFileError, load_arrays
from .modelschema import FORMAT as MODEL_FORMAT
from .modelschema import check_header, check_values

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "BUFFERS", "bits_dtype", "check_checkpoint_header",
           "load_checkpoint_arrays"]

CHECKPOINT_FORMAT = "fastbin.checkpoint"
CHECKPOINT_VERSION = 2
#: array names (after ``"<layer>."``) that are buffers, not trained parameters
BUFFERS = ("input_offset", "input_scale", "running_mean", "running_var")
_META_KEYS = {"format", "version", "model", "optimizer", "trainer"}
_OPT_KEYS = {"sgd": {"kind", "lr", "initial_lr", "steps", "weight_decay", "momentum", "nesterov", "velocity",
                     "schedule"},
             "adam": {"kind", "lr", "initial_lr", "steps", "weight_decay", "b1", "b2", "eps", "moments", "schedule"}}
#: what version 1 lacked, with the values that mean "as version 1 did"
_V1_DEFAULTS = {"sgd": {"weight_decay": 0.0, "momentum": 0.0, "nesterov": False, "velocity": False},
                "adam": {"weight_decay": 0.0}}
_SCHEDULE_KEYS = {"step": {"kind", "every", "factor"}, "rise": {"kind", "factor", "max_rises", "prev", "rises"},
                  "cosine": {"kind", "total_steps", "final_factor"}, "warmup": {"kind", "steps", "then"}}
_TRAINER_KEYS = {"step", "seed", "n", "batch_size", "index", "epochs_completed", "perm", "rng"}
_RNG_KEYS = {"bit_generator", "state", "inc", "has_uint32", "uinteger"}
_UINT128 = re.compile(r"0|[1-9][0-9]{0,38}")


def bits_dtype(model_dtype) -> np.dtype:
    """The integer type holding the bit patterns of ``model_dtype`` (float32 -> int32, float64 -> int64)."""
    return np.dtype(np.int32 if np.dtype(model_dtype) == np.float32 else np.int64)


def _fail(path, message):
    raise ModelFileError(f"{path}: {message}")


def _keys(path, where, d, keys):
    if not isinstance(d, dict):
        _fail(path, f"{where} must be an object, got {type(d).__name__}")
    if set(d) != keys:
        _fail(path, f"{where} has the wrong keys (missing {sorted(keys - set(d))}, unexpected {sorted(set(d) - keys)})")


def _int(path, where, v, minimum=0):
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        _fail(path, f"{where} must be an int >= {minimum}, got {v!r}")
    return v


def _float(path, where, v, ok=lambda x: x > 0, expected="a finite number > 0"):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
        _fail(path, f"{where} must be {expected}, got {v!r}")
    return float(v)


def _kind(obj):
    """``obj["kind"]`` when ``obj`` is a dict whose kind is a string, else None (a JSON list or
    object as a kind must not reach a dict look-up: unhashable)."""
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) else None


def _check_optimizer(path, opt):
    if _kind(opt) not in _OPT_KEYS:
        _fail(path, "meta.optimizer must be an object with kind 'sgd' or 'adam'")
    _keys(path, "meta.optimizer", opt, _OPT_KEYS[opt["kind"]])
    _float(path, "meta.optimizer.lr", opt["lr"])
    _float(path, "meta.optimizer.initial_lr", opt["initial_lr"])
    _int(path, "meta.optimizer.steps", opt["steps"])
    decay = _float(path, "meta.optimizer.weight_decay", opt["weight_decay"], lambda x: x >= 0, "a finite number >= 0")
    if max(opt["lr"], opt["initial_lr"]) * decay >= 1:
        _fail(path, "meta.optimizer: lr * weight_decay must be < 1")
    if opt["kind"] == "sgd":
        _float(path, "meta.optimizer.momentum", opt["momentum"], lambda x: 0 <= x < 1, "a number in [0, 1)")
        for key in ("nesterov", "velocity"):
            if not isinstance(opt[key], bool):
                _fail(path, f"meta.optimizer.{key} must be true or false")
        if opt["nesterov"] and opt["momentum"] == 0:
            _fail(path, "meta.optimizer.nesterov is true but momentum is 0")
        if opt["velocity"] and opt["momentum"] == 0:
            _fail(path, "meta.optimizer.velocity is true but momentum is 0")
    if opt["kind"] == "adam":
        for key in ("b1", "b2"):
            _float(path, f"meta.optimizer.{key}", opt[key], lambda x: 0 <= x < 1, "a number in [0, 1)")
        _float(path, "meta.optimizer.eps", opt["eps"])
        if not isinstance(opt["moments"], bool):
            _fail(path, "meta.optimizer.moments must be true or false")
    _check_schedule(path, "meta.optimizer.schedule", opt["schedule"], _SCHEDULE_KEYS)


def _check_schedule(path, where, schedule, kinds):
    if schedule is None:
        return
    if _kind(schedule) not in kinds:
        _fail(path, f"{where} must be null or an object with kind {' or '.join(map(repr, kinds))}")
    _keys(path, where, schedule, kinds[schedule["kind"]])
    if schedule["kind"] == "cosine":
        _int(path, f"{where}.total_steps", schedule["total_steps"], 1)
        _float(path, f"{where}.final_factor", schedule["final_factor"], lambda x: 0 <= x <= 1, "a number in [0, 1]")
        return
    if schedule["kind"] == "warmup":
        _int(path, f"{where}.steps", schedule["steps"], 1)
        then_kinds = {k: v for k, v in kinds.items() if k != "warmup"}
        _check_schedule(path, f"{where}.then", schedule["then"], then_kinds)
        return
    _float(path, f"{where}.factor", schedule["factor"])
    if schedule["kind"] == "step":
        _int(path, f"{where}.every", schedule["every"], 1)
    else:
        _int(path, f"{where}.max_rises", schedule["max_rises"], 1)
        _int(path, f"{where}.rises", schedule["rises"])
        if schedule["prev"] is not None:
            _float(path, f"{where}.prev", schedule["prev"], lambda x: True, "null or a finite number")


def _check_trainer(path, trainer):
    if trainer is None:
        return None
    _keys(path, "meta.trainer", trainer, _TRAINER_KEYS)
    n = _int(path, "meta.trainer.n", trainer["n"], 1)
    for key in ("step", "epochs_completed"):
        _int(path, f"meta.trainer.{key}", trainer[key])
    _int(path, "meta.trainer.batch_size", trainer["batch_size"], 1)
    if _int(path, "meta.trainer.index", trainer["index"]) > n:
        _fail(path, f"meta.trainer.index must be an int in [0, {n}], got {trainer['index']!r}")
    if trainer["seed"] is not None:
        _int(path, "meta.trainer.seed", trainer["seed"])
    if not isinstance(trainer["perm"], bool):
        _fail(path, "meta.trainer.perm must be true or false")
    rng = trainer["rng"]
    _keys(path, "meta.trainer.rng", rng, _RNG_KEYS)
    if rng["bit_generator"] != "PCG64":
        _fail(path, f"meta.trainer.rng.bit_generator must be 'PCG64', got {rng['bit_generator']!r}")
    for key in ("state", "inc"):
        if not isinstance(rng[key], str) or not _UINT128.fullmatch(rng[key]) or int(rng[key]) >= 1 << 128:
            _fail(path, f"meta.trainer.rng.{key} must be a 128-bit unsigned integer in decimal")
    _int(path, "meta.trainer.rng.has_uint32", rng["has_uint32"])
    if rng["has_uint32"] > 1 or _int(path, "meta.trainer.rng.uinteger", rng["uinteger"]) >= 1 << 32:
        _fail(path, "meta.trainer.rng.has_uint32 must be 0 or 1 and uinteger a 32-bit unsigned integer")
    return n


def check_checkpoint_header(meta, table, *, path="checkpoint"):
    """Check a checkpoint's ``meta`` and array ``table`` (see the module doc); returns the
    :class:`~fastbin.io.modelschema.ModelSchema` of its model. Needs no payload. A version 1
    ``meta`` is upgraded in place to version 2 first."""
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        hint = " (a model file: load it with fastbin.nn.load)" if fmt == MODEL_FORMAT else ""
        _fail(path, f"not a fastbin checkpoint (format {fmt!r}, expected {CHECKPOINT_FORMAT!r}){hint}")
    if meta.get("version") == 1 and isinstance(meta.get("optimizer"), dict):  # read as version 2
        for key, value in _V1_DEFAULTS.get(_kind(meta["optimizer"]), {}).items():
            if key in meta["optimizer"]:
                _fail(path, f"meta.optimizer.{key} is not a version 1 field")
            meta["optimizer"][key] = value
        meta["version"] = CHECKPOINT_VERSION
    if meta.get("version") != CHECKPOINT_VERSION:
        _fail(path, f"checkpoint version {meta.get('version')!r} is not supported (this fastbin reads "
                    f"versions 1 and {CHECKPOINT_VERSION})")
    _keys(path, "meta", meta, _META_KEYS)
    if not isinstance(table, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in table):
        _fail(path, "the array table must be a list of named entries")
    model_meta = meta["model"]
    if not isinstance(model_meta, dict) or (model_meta.get("latent"), model_meta.get("folded")) != (True, False):
        _fail(path, "meta.model must be the meta of a latent, unfolded model file")
    model_table = [dict(e, name=e["name"][len("model."):]) for e in table if e["name"].startswith("model.")]
    schema = check_header(model_meta, model_table, path=f"{path} (model)")
    _check_optimizer(path, meta["optimizer"])
    n = _check_trainer(path, meta["trainer"])
    bits = bits_dtype(schema.dtype).name
    expected = {f"model.{name}" for name in schema.arrays}
    for name, spec in schema.arrays.items():
        expected_entry = ("array", bits, tuple(spec.shape))
        exact = {f"exact.{name}": expected_entry}
        if name.split(".")[1] not in BUFFERS:
            if meta["optimizer"]["kind"] == "adam" and meta["optimizer"]["moments"]:
                exact.update({f"adam.m.{name}": expected_entry, f"adam.v.{name}": expected_entry})
            if meta["optimizer"]["kind"] == "sgd" and meta["optimizer"]["velocity"]:
                exact[f"sgd.velocity.{name}"] = expected_entry
        for key, want in exact.items():
            expected.add(key)
            e = next((e for e in table if e["name"] == key), None)
            if e is not None and (e.get("kind"), e.get("dtype"), tuple(e.get("shape", ()))) != want:
                _fail(path, f"array {key!r} must be {bits} of shape {list(spec.shape)}, got {e.get('dtype')} "
                            f"{e.get('kind')} of shape {e.get('shape')}")
    if n is not None and meta["trainer"]["perm"]:
        expected.add("data.perm")
        e = next((e for e in table if e["name"] == "data.perm"), None)
        if e is not None and (e.get("kind"), e.get("dtype"), tuple(e.get("shape", ()))) != ("array", "int64", (n,)):
            _fail(path, f"array 'data.perm' must be int64 of shape [{n}]")
    names = [e["name"] for e in table]
    missing, extra = sorted(expected - set(names)), sorted(set(names) - expected)
    if missing or extra or len(names) != len(set(names)):
        _fail(path, f"arrays do not match the checkpoint: missing {missing}, unexpected {extra}")
    return schema


def _check_checkpoint_values(schema, meta, arrays, path):
    check_values(schema, {name: arrays[f"model.{name}"] for name in schema.arrays}, path=f"{path} (model)")
    dtype = np.dtype(schema.dtype)
    for name, value in arrays.items():
        if name.startswith(("exact.", "adam.", "sgd.")):
            x = value.view(dtype)
            if not np.isfinite(x).all():
                _fail(path, f"array {name!r} holds NaN or infinite values")
            if (name.startswith("adam.v.") or name.endswith(".running_var")) and x.size and x.min() < 0:
                _fail(path, f"array {name!r} must be >= 0")
            if name.startswith("exact.") and not np.array_equal(x.astype(np.float32), arrays["model." + name[6:]]):
                _fail(path, f"array {name!r} does not match {'model.' + name[6:]!r}")
    if "data.perm" in arrays and not np.array_equal(np.sort(arrays["data.perm"]), np.arange(meta["trainer"]["n"])):
        _fail(path, "array 'data.perm' is not a permutation of the rows")


def load_checkpoint_arrays(path):
    """Read and check the checkpoint ``path``: ``(model schema, meta, arrays)``. ``ModelFileError``
    for anything but a valid checkpoint, ``OSError`` when it cannot be read."""
    path = os.fspath(path)
    holder = []
    meta, arrays = load_arrays(path, check=lambda m, t: holder.append(check_checkpoint_header(m, t, path=path)))
    _check_checkpoint_values(holder[0], meta, arrays, path)
    return holder[0], meta, arrays
