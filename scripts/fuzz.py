"""Fuzz the model-file loader and the IDX reader with seeded mutations of valid files.

``python scripts/fuzz.py -n 5000 [--seed 0]`` (``make fuzz N=5000``; a developer tool, not part of
the installed package). Case ``i`` of seed ``s`` is generated from ``numpy.random.default_rng([s, i])``
and is reproduced alone, in this process and with a traceback, by
``python scripts/fuzz.py --seed s --case i``.

The valid files: one model of every kind the trainer makes (softmax regression float, binary,
binary scaled, with input offsets; MLPs with float, binary and scaled binary weights, tanh,
hard-tanh and binary activations, batch norm, dropout, input scales; binary conv networks, fully binary
and with hard-tanh activations), saved packed and latent; training
checkpoints (SGD with momentum, Nesterov and weight decay, AdamW, every schedule, with and
without a run state); and small IDX files (every element type, raw and gzip). The mutations:
truncation at every region boundary (prefix,
header, each payload, the digest) and at random points; bit flips with the SHA-256 recomputed
(or the gzip stream rewritten), so the parser and the schema see them, and a few without;
hostile JSON (huge, negative, zero, fractional and wrong-typed sizes, wrong dtypes and kinds,
infinities, deleted and added keys, nested junk); hostile arrays in a well-formed container
(NaN, inf, negative ``alpha``/``running_var``, huge values, int8/bool/uint8/int64 weights,
wrong shapes, missing and extra arrays, sizes of 600,000 and 10**12 declared in the meta);
folded sections that no longer fold the file's layers (flips inverted, thresholds moved by a
step, outputs swapped, extreme or random thresholds; re-sealed); conv layer lists with hostile
geometry (zero, negative, huge, fractional or wrong-typed kernel sizes, strides, pool sizes, channel
counts and input shapes; layers deleted, duplicated, swapped, pools inserted: shapes that do not
chain; padding switched), mostly with arrays rewritten to match the new list so that the schema's
geometry checks decide; and
hostile IDX headers (ndim 0 to 255, huge dims, unknown type codes, extra bytes, gzip members
with trailing junk, digests and expected shapes that do not match).

Each batch of cases runs in a worker subprocess with ``RLIMIT_AS`` set (``--mem-mib``, after the
worker's imports and a warm-up, which need Numba's address space) and a timeout per case. The
worker prints one JSON line per case. A model file is read every way fastbin reads one:
``fastbin.nn.load`` (the unfolded model of ``eval`` and ``export-c``) and ``fastbin.runtime.load``
on the numpy and the numba engine (what is deployed). Allowed outcomes: ``rejected`` (the
documented error, ``ModelFileError`` / ``IdxError``, from every loader) and ``loaded`` (every
loader accepts the file, each predicts finite logits on float and uint8 input, bit for bit the
unfolded model's on both engines, the classes of the unfolded model, its own folding and both
engines are equal, and its save/load round trip gives bit-identical logits; an IDX array whose
write/read round trip is identical). A file one loader accepts and another refuses is a failure
(``load-mismatch``). Anything else, including a worker killed, out of memory or timed out on a
case, is a failure, reported with the seed and case number. A checkpoint (``fastbin.nn.load_checkpoint``)
is allowed to be ``rejected`` or ``loaded`` (its model predicts soundly, its save/load round trip keeps
the model, optimizer and run state, and its optimizer takes a training step). A conv file whose layer pattern
the folded form does not have (docs/conv.md: ``fastbin.runtime.load`` raises ``NotImplementedError``) is
``unfoldable``: allowed when ``fastbin.nn.load`` reads it, every runtime loader raises that error, and the
unfolded model predicts finite logits and round-trips. The exit status is 1 when any case failed.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import queue
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from fastbin.io.idx import IdxError, read_idx, write_idx
from fastbin.io.modelfile import MAGIC, ModelFileError, load_arrays, save_arrays

__all__ = ["ALLOWED", "Case", "FuzzReport", "generate_case", "run_cases", "main"]

ALLOWED = ("rejected", "loaded", "unfoldable")
_PREFIX = struct.Struct("<8sII")
_ALIGN = 64


# ---------------------------------------------------------------------------
# The valid files
# ---------------------------------------------------------------------------
def _base_models():
    """name -> model file bytes: every model kind the trainer makes, small, a few steps trained."""
    from fastbin.nn.model import mlp, softmax_regression
    from fastbin.nn.optim import SGD, Adam

    n_in = 21  # not a multiple of 64: padding bits in every packed row
    rng = np.random.default_rng(7)
    x = rng.random((24, n_in)).astype(np.float32)
    y = rng.integers(0, 4, 24)
    b = "reference"
    models = {
        "softmax": softmax_regression(n_in, 4, seed=1, backend=b),
        "softmax-binary": softmax_regression(n_in, 4, binary_weights=True, init="normal", seed=1, backend=b),
        "softmax-binary-scaled": softmax_regression(n_in, 4, binary_weights=True, scale=True, backend=b),
        "softmax-offset": softmax_regression(n_in, 4, input_offset=0.5, backend=b),
        "mlp-tanh": mlp([n_in, 9, 6, 4], seed=1, backend=b),
        "mlp-hardtanh": mlp([n_in, 7, 4], activation="hardtanh", backend=b),
        "mlp-tanh-dropout": mlp([n_in, 7, 5, 4], dropout=0.25, backend=b),
        "mlp-tanh-input-scale": mlp([n_in, 7, 4], input_offset=np.linspace(-2, 3, n_in),
                                    input_scale=np.linspace(0.1, 4, n_in), backend=b),
        "mlp-binary-input-scale": mlp([n_in, 9, 4], binary_weights=True, binary_activations=True, input_scale=0.25,
                                      input_offset=0.5, backend=b),
        "softmax-binary-input-scale": softmax_regression(n_in, 4, binary_weights=True, init="normal",
                                                         input_scale=3.0, backend=b),
        "mlp-binary-weights": mlp([n_in, 9, 4], binary_weights=True, backend=b),
        "mlp-binary-weights-bn-scaled": mlp([n_in, 9, 4], binary_weights=True, batch_norm=True, output_bn=True,
                                            scale=True, backend=b),
        "mlp-binary": mlp([n_in, 70, 9, 4], binary_weights=True, binary_activations=True, backend=b),
        "mlp-binary-offset": mlp([n_in, 9, 4], binary_weights=True, binary_activations=True, backend=b,
                                 input_offset=np.linspace(0.1, 0.9, n_in)),
    }
    models.update(_conv_models(b))
    files = {}
    with tempfile.TemporaryDirectory() as d:
        for name, model in models.items():
            opt = Adam(1e-2) if model.kind in ("mlp", "conv") else SGD(0.5)
            xs = x if model.kind != "conv" else rng.random((24, model.n_in)).astype(np.float32)
            for _ in range(3):
                model.train_step(xs, y, opt)
            for latent in (False, True):
                if latent and not model.layers[0].binary:
                    continue
                path = os.path.join(d, "m.fbm")
                model.save(path, latent=latent)
                with open(path, "rb") as f:
                    files[name + ("-latent" if latent else "")] = f.read()
    return files


def _conv_models(b):
    """Small conv models (``fastbin.nn.model.sequential``): the issue's bnn-conv shape (4 conv layers, 2
    pools before batch norms; 33 channels: two words per packed pixel), odd geometry (a (3, 2) kernel
    with stride (2, 1) and one-padding on the image, alpha, biases, a pool after a sign, no batch norm
    on a stage), and binary weights with hard-tanh activations (not foldable: ``fastbin.runtime.load``
    refuses it with ``NotImplementedError``)."""
    from fastbin.nn import BatchNorm, Dense, HardTanh, Sign
    from fastbin.nn.conv import Conv2D, Flatten, MaxPool2D
    from fastbin.nn.model import bnn_conv, sequential

    kw = dict(backend=b)
    odd = [Conv2D(2, 4, (3, 2), stride=(2, 1), padding="same", pad_value=1, scale=True, rng=0, **kw), BatchNorm(4),
           Sign(), Conv2D(4, 5, 2, padding="valid", rng=1, **kw), Sign(), MaxPool2D(2, stride=1), Flatten(),
           Dense(2 * 3 * 5, 4, binary=True, rng=2, **kw), BatchNorm(4)]
    hardtanh = [Conv2D(2, 3, 3, padding="same", pad_value=0, rng=3, **kw), BatchNorm(3), HardTanh(), MaxPool2D(2),
                Flatten(), Dense(3 * 2 * 3, 4, binary=True, rng=4, **kw)]
    return {
        "conv-bnn": bnn_conv((6, 5, 2), 4, channels=(3, 33, 4, 5), seed=1, backend=b),
        "conv-odd": sequential(odd, (7, 5, 2), **kw),
        "conv-hardtanh": sequential(hardtanh, (6, 5, 2), **kw),
    }


def _base_idx():
    """name -> (IDX bytes, raw: not gzip)."""
    rng = np.random.default_rng(11)
    arrays = {
        "images-u8": rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
        "labels-u8": rng.integers(0, 10, 9, dtype=np.uint8),
        "i8": rng.integers(-128, 128, (3, 2), dtype=np.int8),
        "i16": rng.integers(-(2**15), 2**15, (2, 3), dtype=np.int16),
        "i32": rng.integers(-(2**31), 2**31, 4, dtype=np.int32),
        "f32": rng.standard_normal((2, 2, 2)).astype(np.float32),
        "f64": rng.standard_normal(3),
    }
    files = {}
    with tempfile.TemporaryDirectory() as d:
        for name, a in arrays.items():
            path = os.path.join(d, "a.idx")
            write_idx(path, a)
            with open(path, "rb") as f:
                files[name] = f.read()
    return files


def _base_checkpoints():
    """name -> checkpoint bytes: every optimizer and schedule a checkpoint stores, with and
    without a run state, momentum velocities, Adam moments and a dropout model."""
    from fastbin.nn.checkpoint import save_checkpoint
    from fastbin.nn.model import mlp, softmax_regression
    from fastbin.nn.optim import SGD, Adam, CosineDecay, DecayOnRise, StepDecay, WarmUp
    from fastbin.nn.train import fit

    n_in = 21
    rng = np.random.default_rng(8)
    x = rng.random((24, n_in)).astype(np.float32)
    y = rng.integers(0, 4, 24)
    b = "reference"
    runs = {
        "ckpt-nesterov-wd-warmup-cosine-dropout": (
            mlp([n_in, 9, 4], activation="hardtanh", dropout=0.3, seed=2, backend=b),
            SGD(0.1, momentum=0.9, nesterov=True, weight_decay=1e-3, schedule=WarmUp(3, CosineDecay(10, 0.1)))),
        "ckpt-adamw-step-binary": (
            mlp([n_in, 9, 4], binary_weights=True, binary_activations=True, backend=b),
            Adam(1e-2, weight_decay=1e-2, schedule=StepDecay(2, 0.9))),
        "ckpt-sgd-warmup-rise-softmax": (
            softmax_regression(n_in, 4, binary_weights=True, input_offset=0.5, backend=b),
            SGD(0.5, schedule=WarmUp(2, DecayOnRise(0.9, 5)))),
        "ckpt-adam-fresh": (mlp([n_in, 5, 4], backend=b), Adam(1e-3)),
    }
    files = {}
    with tempfile.TemporaryDirectory() as d:
        for name, (model, opt) in runs.items():
            state = None
            if not name.endswith("fresh"):
                state = fit(model, opt, x, y, steps=5, batch_size=5, validation_split=0.25, seed=1, progress=False)
            path = os.path.join(d, "c.fbc")
            save_checkpoint(path, model, opt, state)
            with open(path, "rb") as f:
                files[name] = f.read()
    return files


_BASES = {}


def _bases():
    if not _BASES:
        _BASES["model"] = _base_models()
        _BASES["checkpoint"] = _base_checkpoints()
        _BASES["idx"] = _base_idx()
    return _BASES


# ---------------------------------------------------------------------------
# Model-file structure
# ---------------------------------------------------------------------------
def _round_up(n):
    return -(-n // _ALIGN) * _ALIGN


def _split(data: bytes):
    """(header dict, data region bytes, boundaries) of a valid model file."""
    _, _, hl = _PREFIX.unpack(data[:16])
    header = json.loads(data[16 : 16 + hl])
    start = _round_up(16 + hl)
    region = data[start:-32]
    bounds = {0, 1, 7, 8, 11, 12, 15, 16, 16 + hl // 2, 15 + hl, 16 + hl, start - 1, start,
              len(data) - 33, len(data) - 32, len(data) - 31, len(data) - 1}
    for e in header["arrays"]:
        for b in (e["offset"], e["offset"] + e["nbytes"] // 2, e["offset"] + e["nbytes"]):
            bounds.update({start + b - 1, start + b, start + b + 1})
    return header, region, sorted(b for b in bounds if 0 <= b < len(data))


def _seal(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def _container(header_text: bytes, region: bytes, *, version=1) -> bytes:
    body = _PREFIX.pack(MAGIC, version, len(header_text)) + header_text
    body += bytes(_round_up(len(body)) - len(body)) + region
    return _seal(body)


_INF = "__fuzz_inf__"
_HUGE = [600_000, 10**12, 2**31, 2**32 + 1, 2**63, 10**30, -1, 0, 1, 3, 65, 1.5, -0.0]
_JUNK = [None, True, False, "", "x", "float16", [], {}, [1, 2], {"a": 1}, 0.1, _INF, "-" + _INF]


def _nested(rng, depth):
    v = rng.choice(["x", 1, None])
    for _ in range(depth):
        v = [v] if rng.random() < 0.5 else {"k": v}
    return v


def _hostile_value(rng):
    r = rng.random()
    if r < 0.45:
        return _HUGE[rng.integers(len(_HUGE))]
    if r < 0.9:
        return _JUNK[rng.integers(len(_JUNK))]
    return _nested(rng, int(rng.integers(2, 200)))


def _nodes(obj, path=()):
    """Every (container, key) pair of a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield obj, k, path + (k,)
            yield from _nodes(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield obj, i, path + (i,)
            yield from _nodes(v, path + (i,))


def _dump(header) -> bytes:
    text = json.dumps(header, separators=(",", ":"))
    return text.replace(f'"-{_INF}"', "-1e400").replace(f'"{_INF}"', "1e400").encode()


def _mutate_json(rng, header, where):
    """One hostile change somewhere under header[where]; returns a description."""
    nodes = list(_nodes(header[where], (where,)))
    parent, key, path = nodes[rng.integers(len(nodes))]
    op = rng.random()
    if op < 0.7:
        value = _hostile_value(rng)
        parent[key] = value
        return f"set {'.'.join(map(str, path))} = {json.dumps(value)[:60]}"
    if op < 0.85 and isinstance(parent, dict):
        del parent[key]
        return f"delete {'.'.join(map(str, path))}"
    if isinstance(parent, dict):
        parent["junk"] = _hostile_value(rng)
        return f"add key junk next to {'.'.join(map(str, path))}"
    parent.append(_hostile_value(rng))
    return f"append to {'.'.join(map(str, path[:-1]))}"


_ITEMSIZE = {"float32": 4, "int8": 1, "int32": 4, "int64": 8, "uint8": 1, "bool": 1, "uint64": 8}


def _mutate_table(rng, header, region):
    """Change one table entry, keeping nbytes consistent when the data allows it (so the schema,
    not the container checks, decides)."""
    table = header["arrays"]
    e = table[rng.integers(len(table))]
    op = rng.integers(6)
    if op == 0:
        e["dtype"] = str(rng.choice(["int8", "bool", "uint8", "int32", "int64", "float16", "float64", "uint64"]))
        what = f"dtype of {e['name']} -> {e['dtype']}"
    elif op == 1:
        e["shape"] = list(reversed(e["shape"])) if len(e["shape"]) > 1 else e["shape"] + [1]
        what = f"shape of {e['name']} -> {e['shape']}"
    elif op == 2:
        e["shape"] = [int(s) * int(rng.choice([2, 600_000, 10**12])) for s in e["shape"]]
        what = f"shape of {e['name']} -> {e['shape']}"
    elif op == 3:
        e["kind"] = "array" if e["kind"] == "packed_signs" else "packed_signs"
        if e["kind"] == "array":
            e.pop("n_bits", None)
        else:
            e.setdefault("n_bits", 64 * (e["shape"][-1] if e["shape"] else 1))
        what = f"kind of {e['name']} -> {e['kind']}"
    elif op == 4:
        other = table[rng.integers(len(table))]
        e["name"], other["name"] = other["name"], e["name"]
        what = f"swap names {e['name']} / {other['name']}"
    else:
        e["offset"] = int(rng.integers(0, max(1, len(region))) // 8 * 8)
        what = f"offset of {e['name']} -> {e['offset']}"
    if e.get("dtype") in _ITEMSIZE and rng.random() < 0.8:
        e["nbytes"] = int(np.prod(e["shape"], dtype=object)) * _ITEMSIZE[e["dtype"]]
    return what


def _hostile_array(rng, name, a):
    """(new value, description) for one stored array."""
    from fastbin.packed import PackedSigns

    if isinstance(a, PackedSigns):
        op = rng.integers(4)
        if op == 0:
            with np.errstate(over="ignore", invalid="ignore"):  # any float32 will do, inf included
                return a.bits.view(np.float64).astype(np.float32), "packed signs stored as a float array"
        if op == 1:
            rows = a.bits[:-1] if len(a.bits) > 1 else a.bits
            return PackedSigns(np.ascontiguousarray(rows), a.n_bits), "one row fewer"
        if op == 2:
            bits = np.ascontiguousarray(np.vstack([a.bits, a.bits]))
            return PackedSigns(bits, a.n_bits), "twice the rows"
        return np.zeros(a.bits.shape, np.uint8), "packed signs stored as uint8"
    op = rng.integers(12)
    b = np.array(a, dtype=np.float32, copy=True)
    flat = b.reshape(-1)
    i = int(rng.integers(max(1, flat.size)))
    if op == 0 and flat.size:
        flat[i] = np.nan
        return b, f"NaN at {i}"
    if op == 1 and flat.size:
        flat[i] = np.float32(rng.choice([np.inf, -np.inf]))
        return b, f"inf at {i}"
    if op == 2 and flat.size:
        flat[i] = -abs(flat[i]) - 0.5
        return b, f"negative value at {i}"
    if op == 3 and flat.size:
        flat[i] = np.float32(rng.choice([3e38, -3e38, 1e30, 1e20]))
        return b, f"huge value {flat[i]} at {i}"
    if op == 4 and flat.size:
        flat[:] = np.float32(rng.choice([1e-45, 0.0, -0.0, 1e-38]))
        return b, f"every value {flat[0]}"
    if op == 5:
        dtype = rng.choice(["int8", "bool", "uint8", "int64", "int32"])
        return b.astype(dtype), f"stored as {dtype}"
    if op == 6:
        return np.ascontiguousarray(b.T), "transposed"
    if op == 7:
        return np.concatenate([b.reshape(-1), [1.0]]).astype(np.float32), "flattened, one value more"
    if op == 8:
        return b.reshape(-1)[:0], "empty"
    if op == 9:
        return np.float32(1.0), "a scalar"
    if op == 10:
        return b * np.float32(rng.choice([1e10, 1e15, -1e5])), "scaled"
    return b.astype(np.float64) + 1e-30, "float64 (stored as float32)"


def _mutate_model_arrays(rng, data):
    """A well-formed container with a hostile model inside (save_arrays writes it)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m")
        with open(path, "wb") as f:
            f.write(data)
        meta, arrays = load_arrays(path)
        names = list(arrays)
        op = rng.random()
        if op < 0.6:
            name = names[rng.integers(len(names))]
            arrays[name], what = _hostile_array(rng, name, arrays[name])
            what = f"array {name}: {what}"
        elif op < 0.7:
            name = names[rng.integers(len(names))]
            del arrays[name]
            what = f"array {name} removed"
        elif op < 0.8:
            arrays["99.extra"] = np.ones(3, np.float32)
            what = "an extra array"
        else:  # the file: small arrays, huge sizes declared everywhere in meta
            big = int(rng.choice([600_000, 10**12, 2**40]))
            # a checkpoint declares its sizes in its model part
            inner = meta["model"] if isinstance(meta.get("model"), dict) else meta
            cfg = inner.get("config", {})
            if "sizes" in cfg:
                cfg["sizes"] = [big] * (len(cfg["sizes"]) - 1) + [cfg["sizes"][-1]]
            else:
                cfg["n_in"] = big
            for layer in inner.get("layers", []):
                for key in ("n_in", "n_out", "n"):
                    if key in layer and not (key == "n_out" and layer is inner["layers"][-1]):
                        layer[key] = big
            what = f"layer sizes {big} declared in meta, arrays unchanged"
        try:
            save_arrays(path, meta, arrays)
        except (TypeError, ValueError) as exc:  # e.g. NaN in meta: keep the file valid otherwise
            return data, f"{what} (not storable: {exc}; original file)"
        with open(path, "rb") as f:
            return f.read(), what


def _mutate_folded(rng, data):
    """A folded (version-2) file whose folded section no longer matches its layers, or
    differently written (re-sealed by save_arrays): flips inverted (all or one), thresholds
    moved by one step (one or all), two outputs swapped, extreme or random thresholds."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m")
        with open(path, "wb") as f:
            f.write(data)
        meta, arrays = load_arrays(path)
        names = sorted(n for n in arrays if n.startswith("folded.") and n.endswith("_t"))
        if not names:
            return data, "no folded section (original file)"
        name = names[rng.integers(len(names))]
        flip_name = name[:-2] + "_flip"
        t, flip = arrays[name].copy(), arrays[flip_name].copy()
        floats = name.endswith("float_t")
        values = t.view(np.float32 if t.dtype == np.int32 else np.float64) if floats else t
        j = int(rng.integers(t.size))
        op = int(rng.integers(7))
        with np.errstate(all="ignore"):
            if op == 0:
                flip, what = ~flip, "every flip inverted"
            elif op == 1:
                flip[j], what = ~flip[j], f"flip {j} inverted"
            elif op in (2, 3):
                step = int(rng.choice([-1, 1]))
                where = slice(None) if op == 3 else slice(j, j + 1)
                if floats:
                    values[where] = np.nextafter(values[where], values.dtype.type(step * np.inf))
                else:
                    values[where] += step
                what = f"threshold{'s' if op == 3 else ' ' + str(j)} moved by {step} step"
            elif op == 4:
                k = int(rng.integers(t.size))
                values[[j, k]], flip[[j, k]] = values[[k, j]], flip[[k, j]]
                what = f"outputs {j} and {k} swapped"
            elif op == 5:
                big = values.max() if values.size else 0
                values[j] = -abs(big) if rng.random() < 0.5 else abs(big)
                what = f"threshold {j} set to {values[j]}"
            else:
                scale = float(rng.choice([1.0, 100.0, 1e6]))
                noise = rng.standard_normal(values.size) * scale
                values[...] = noise.astype(values.dtype) if floats else np.round(noise).astype(values.dtype)
                what = f"random thresholds (scale {scale:g})"
        arrays[name], arrays[flip_name] = t, flip
        save_arrays(path, meta, arrays)
        with open(path, "rb") as f:
            return f.read(), f"{name}/{flip_name}: {what}"


_GEOMETRY = [0, -1, 1, 2, 3, 5, 8, 64, 1000, 2**12, 2**16, 2**24, 2**24 + 1, 2**31, 2**63, 10**30, 1.5, True, None,
             "3"]
_CHANNELS = [0, -1, 1, 2, 31, 33, 64, 1000, 2**16, 2**20, 2**24 + 1, 2**31, 10**30, 2.0, None]
#: Most bytes of arrays a conv mutation writes to match its layer list (beyond it the old arrays stay).
_CONV_ARRAY_BUDGET = 4 << 20


def _hostile_pair(rng):
    v = _GEOMETRY[rng.integers(len(_GEOMETRY))]
    r = rng.random()
    if r < 0.5:
        return [v, v]
    if r < 0.7:
        return [v, 1]
    if r < 0.8:
        return [1, v]
    if r < 0.9:
        return [v]
    return v


def _conv_arrays(rng, meta, arrays):
    """The arrays ``meta``'s layer list implies (``fastbin.io.modelschema``'s own table), the old ones kept
    where name and shape agree, new ones random and sane (packed signs with zero padding bits, positive
    variances and alphas); None when the list is too malformed to imply any or the arrays would take more
    than _CONV_ARRAY_BUDGET bytes. So the schema's geometry checks, not the table comparison, decide."""
    from fastbin.io.modelschema import _expected_arrays

    try:
        specs = _expected_arrays(meta["layers"], meta["latent"])
        total = 0
        for spec in specs.values():
            dims = list(spec.shape) + ([spec.n_bits] if spec.n_bits is not None else [])
            if not all(type(v) is int and v >= 0 for v in dims):
                return None
            total += int(np.prod(spec.shape, dtype=object)) * (8 if spec.kind == "packed_signs" else 4)
            if total > _CONV_ARRAY_BUDGET:
                return None
        return _arrays_for(rng, specs, arrays)
    except Exception:  # a malformed list implies no arrays: keep the old ones
        return None


def _arrays_for(rng, specs, arrays):
    from fastbin.packed import PackedSigns

    out = {}
    for name, spec in specs.items():
        old = arrays.get(name)
        if spec.kind == "packed_signs":
            if isinstance(old, PackedSigns) and old.bits.shape == spec.shape and old.n_bits == spec.n_bits:
                out[name] = old
                continue
            rows, words = spec.shape
            bits = np.frombuffer(rng.bytes(8 * rows * words), dtype=np.uint64).reshape(rows, words).copy()
            if spec.n_bits % 64:
                bits[:, -1] &= np.uint64((1 << (spec.n_bits % 64)) - 1)
            out[name] = PackedSigns(bits, spec.n_bits)
        elif isinstance(old, np.ndarray) and old.shape == spec.shape and old.dtype == np.float32:
            out[name] = old
        elif name.endswith(("running_var", "alpha", "input_scale")):
            out[name] = rng.uniform(0.5, 2, spec.shape).astype(np.float32)
        else:
            out[name] = rng.normal(0, 0.5, spec.shape).astype(np.float32)
    return out


def _mutate_conv(rng, data):
    """A conv model file with hostile geometry (re-sealed by save_arrays): zero, negative, huge, fractional
    or wrong-typed kernel sizes, strides and pool sizes; channel counts changed alone or along the chain
    (the conv's filters, its batch norm, the next conv's in_channels); hostile input shapes; layers
    deleted, duplicated, swapped or a pool inserted (shapes that do not chain); padding and pad values
    switched. Mostly with the arrays rewritten to match the new layer list (:func:`_conv_arrays`), so
    a file is refused by the geometry checks or loads and must then predict soundly."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m")
        with open(path, "wb") as f:
            f.write(data)
        meta, arrays = load_arrays(path)
    layers = meta["layers"]
    convs = [i for i, layer in enumerate(layers) if layer.get("kind") == "conv2d"]
    pools = [i for i, layer in enumerate(layers) if layer.get("kind") == "maxpool2d"]
    op = int(rng.integers(6))
    if op == 0 or (op == 1 and not pools):
        i, key = int(rng.choice(convs)), str(rng.choice(["kernel_size", "stride"]))
        layers[i][key] = _hostile_pair(rng)
        what = f"layers[{i}].{key} = {json.dumps(layers[i][key])[:40]}"
    elif op == 1:
        i, key = int(rng.choice(pools)), str(rng.choice(["pool_size", "stride"]))
        layers[i][key] = _hostile_pair(rng)
        what = f"layers[{i}].{key} = {json.dumps(layers[i][key])[:40]}"
    elif op == 2:
        i, n = int(rng.choice(convs)), _CHANNELS[rng.integers(len(_CHANNELS))]
        layers[i]["filters"] = n
        chained = rng.random() < 0.7
        if chained:  # the batch norm of this stage and the next conv follow
            for layer in layers[i + 1 :]:
                if layer.get("kind") == "batchnorm":
                    layer["n"] = n
                if layer.get("kind") in ("conv2d", "flatten"):
                    if layer.get("kind") == "conv2d":
                        layer["in_channels"] = n
                    break
        what = f"layers[{i}].filters = {n}{' (chained)' if chained else ''}"
    elif op == 3:
        shape = list(meta["config"]["input_shape"])
        r = rng.random()
        if r < 0.6:
            shape[int(rng.integers(3))] = _GEOMETRY[rng.integers(len(_GEOMETRY))]
        elif r < 0.8:
            shape = [int(rng.choice([1, 64, 1000, 4096])), int(rng.choice([1, 64, 1000, 4096])), shape[2]]
        else:
            shape = shape[::-1]
        meta["config"]["input_shape"] = shape
        what = f"config.input_shape = {json.dumps(shape)[:60]}"
    elif op == 4:
        i = int(rng.integers(len(layers)))
        r = rng.random()
        if r < 0.3:
            kind = layers.pop(i).get("kind")
            what = f"layers[{i}] ({kind}) deleted"
        elif r < 0.5:
            layers.insert(i, json.loads(json.dumps(layers[i])))
            what = f"layers[{i}] duplicated"
        elif r < 0.8 and i + 1 < len(layers):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
            what = f"layers[{i}] and [{i + 1}] swapped"
        else:
            layers.insert(i, {"kind": "maxpool2d", "pool_size": [2, 2], "stride": [2, 2]})
            what = f"a 2x2 max pool inserted at {i}"
    else:
        i = int(rng.choice(convs))
        if rng.random() < 0.5:
            layers[i]["padding"] = "valid" if layers[i]["padding"] == "same" else "same"
        else:
            layers[i]["pad_value"] = 1.0 - float(layers[i]["pad_value"])
        what = f"layers[{i}] padding {layers[i]['padding']}, pad_value {layers[i]['pad_value']}"
    if rng.random() < 0.85:
        rebuilt = _conv_arrays(rng, meta, arrays)
        if rebuilt is not None:
            arrays, what = rebuilt, what + ", arrays to match"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m")
        try:
            save_arrays(path, meta, arrays)
        except (TypeError, ValueError) as exc:  # not storable: keep the file valid otherwise
            return data, f"{what} (not storable: {exc}; original file)"
        with open(path, "rb") as f:
            return f.read(), what


def _mutate_model(rng, data):
    header, region, bounds = _split(data)
    if header["meta"].get("kind") == "conv" and rng.random() < 0.4:
        out, what = _mutate_conv(rng, data)
        return "conv", out, what
    r = rng.random()
    if r < 0.15:
        cut = int(bounds[rng.integers(len(bounds))]) if rng.random() < 0.8 else int(rng.integers(len(data)))
        return "truncate", data[:cut], f"cut at byte {cut} of {len(data)}"
    if r < 0.35:
        body = bytearray(data[:-32])
        hl = _PREFIX.unpack(data[:16])[2]
        spots = []
        for _ in range(int(rng.integers(1, 5))):
            lo, hi = (16, 16 + hl) if rng.random() < 0.5 else (0, len(body))
            pos = int(rng.integers(lo, hi))
            body[pos] ^= 1 << int(rng.integers(8))
            spots.append(pos)
        if rng.random() < 0.1:
            return "flip-raw", bytes(body) + data[-32:], f"bits flipped at {spots}, checksum kept"
        return "flip", _seal(bytes(body)), f"bits flipped at {spots}, checksum recomputed"
    if r < 0.55:
        what = _mutate_json(rng, header, "meta")
        return "meta", _container(_dump(header), region), what
    if r < 0.7:
        if rng.random() < 0.5:
            what = _mutate_json(rng, header, "arrays")
        else:
            what = _mutate_table(rng, header, region)
        return "table", _container(_dump(header), region), what
    if r < 0.75:
        version, junk = int(rng.choice([0, 2, 2**32 - 1])), rng.random() < 0.5
        if junk:
            return "prefix", _container(b"\xff" * int(rng.integers(1, 50)), region), "header not UTF-8"
        return "prefix", _container(_dump(header), region, version=version), f"format version {version}"
    if r < 0.82:
        out, what = _mutate_folded(rng, data)
        return "folded", out, what
    out, what = _mutate_model_arrays(rng, data)
    return "arrays", out, what


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------
def _idx_header(code, dims):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def _mutate_idx(rng, data):
    """(mutation, bytes, read_idx options, description) for one IDX case."""
    ndim = data[3]
    head = 4 + 4 * ndim
    payload = data[head:]
    opts = {}
    r = rng.random()
    if r < 0.2:
        cuts = [0, 1, 2, 3, 4, 5, head - 1, head, head + 1, head + len(payload) // 2, len(data) - 1]
        cut = int(cuts[rng.integers(len(cuts))])
        mutation, out, what = "truncate", data[: max(0, cut)], f"cut at byte {cut} of {len(data)}"
    elif r < 0.4:
        body = bytearray(data)
        pos = int(rng.integers(len(body))) if rng.random() < 0.5 else int(rng.integers(min(head, len(body))))
        body[pos] ^= 1 << int(rng.integers(8))
        mutation, out, what = "flip", bytes(body), f"bit flipped at {pos}"
    elif r < 0.7:
        op = rng.integers(6)
        if op == 0:
            n = int(rng.choice([0, 17, 33, 40, 64, 255]))
            out, what = bytes([0, 0, data[2], n]) + struct.pack(f">{n}I", *([1] * n)) + payload[:1], f"ndim {n}"
        elif op == 1:
            dims = [int(rng.choice([2**32 - 1, 2**31, 10**9, 60000])) for _ in range(ndim)]
            out, what = bytes([0, 0, data[2], ndim]) + struct.pack(f">{ndim}I", *dims) + payload, f"dims {dims}"
        elif op == 2:
            code = int(rng.choice([0, 1, 7, 0x0A, 0x0F, 0xFF]))
            out, what = bytes([0, 0, code]) + data[3:], f"type code {code:#x}"
        elif op == 3:
            out, what = bytes([0, 0, data[2], ndim]) + struct.pack(f">{ndim}I", *([0] * ndim)), "zero items"
        elif op == 4:
            out, what = data + bytes(int(rng.integers(1, 9))), "extra bytes"
        else:
            out, what = bytes([int(rng.integers(1, 256)), 0]) + data[2:], "bad magic"
        mutation = "header"
    elif r < 0.8:
        n = int(rng.choice([10**6, 10**8, 2**31]))
        mutation, out, what = "bomb", gzip.compress(_idx_header(0x08, (n,)) + bytes(1000)), f"gzip declaring {n} bytes"
        return mutation, out, opts, what
    else:
        mutation, out, what = "options", data, "valid file"
        op = rng.integers(4)
        if op == 0:
            opts["expected_shape"] = [None] + [int(d) + int(rng.integers(0, 2)) for d in
                                                struct.unpack(f">{ndim}I", data[4:head])[1:]]
        elif op == 1:
            opts["allow_empty"] = False
        elif op == 2:
            opts["sha256"] = hashlib.sha256(data).hexdigest() if rng.random() < 0.5 else "0" * 64
        else:
            opts["content_sha256"] = "f" * 64
            opts["sha256"] = "0" * 64
        what += f", options {opts}"
    if rng.random() < 0.4:
        z = gzip.compress(out, mtime=0)
        if rng.random() < 0.2:
            z += b"trailing junk"
            what += ", gzip with trailing junk"
        else:
            what += ", gzip"
        out = z
    return mutation, out, opts, what


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------
@dataclass
class Case:
    seed: int
    index: int
    target: str  # "model" or "idx"
    base: str
    mutation: str
    description: str
    data: bytes = field(repr=False)
    options: dict = field(default_factory=dict)

    @property
    def label(self):
        return f"seed {self.seed} case {self.index}: {self.target} {self.base}, {self.mutation}: {self.description}"


def generate_case(seed: int, index: int) -> Case:
    """Case ``index`` of ``seed`` (deterministic)."""
    bases = _bases()
    rng = np.random.default_rng([seed, index])
    r = rng.random()
    if r < 0.75:
        target = "model" if r < 0.6 else "checkpoint"
        names = sorted(bases[target])
        base = names[rng.integers(len(names))]
        mutation, data, what = _mutate_model(rng, bases[target][base])
        return Case(seed, index, target, base, mutation, what, data)
    names = sorted(bases["idx"])
    base = names[rng.integers(len(names))]
    mutation, data, opts, what = _mutate_idx(rng, bases["idx"][base])
    return Case(seed, index, "idx", base, mutation, what, data, opts)


# ---------------------------------------------------------------------------
# Running one case (in the worker)
# ---------------------------------------------------------------------------
def _inputs(n_in):
    rng = np.random.default_rng(n_in)
    x = rng.random((6, n_in)).astype(np.float32)
    x[0], x[1] = 0.0, 1.0
    u8 = rng.integers(0, 256, (5, n_in), dtype=np.uint8)
    u8[0], u8[1] = 0, 255
    return x, u8


def _same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


ENGINES = ("numpy", "numba")


def _loaders(backend):
    """name -> loader of every way a model file is read: ``fastbin.nn.load`` (the unfolded model,
    what ``eval`` and ``export-c`` see) and ``fastbin.runtime.load`` on both engines (what is
    deployed)."""
    from fastbin import runtime
    from fastbin.nn.model import load

    loaders = {"nn.load": lambda p: load(p, backend=backend)}
    for engine in ENGINES:
        loaders[f"runtime.load({engine})"] = lambda p, engine=engine: runtime.load(p, engine=engine)
    return loaders


def check_model_file(path, scratch, backend="fastbin"):
    """(outcome, detail) of loading the model file at ``path`` every way (:func:`_loaders`).
    Allowed: every loader refuses it with ``ModelFileError`` (``rejected``), or every loader
    accepts it and then: finite logits from each on float and uint8 input, the runtime's on both
    engines bit for bit the unfolded model's, the same classes from the unfolded model, its own
    folding and both engines, and a save/load round trip with bit-identical logits (``loaded``)."""

    models, refused, unfoldable = {}, {}, {}
    for name, loader in _loaders(backend).items():
        try:
            models[name] = loader(path)
        except ModelFileError as exc:
            refused[name] = str(exc)
        except NotImplementedError as exc:  # a conv layer pattern the folded form does not have (yet)
            unfoldable[name] = str(exc)
    if refused and (models or unfoldable):
        return "load-mismatch", (f"refused by {sorted(refused)} ({next(iter(refused.values()))[:200]}), "
                                 f"loaded by {sorted(models)}, unfoldable for {sorted(unfoldable)}")
    if refused:
        return "rejected", next(iter(refused.values()))[:300]
    if unfoldable:
        if sorted(models) != ["nn.load"] or getattr(models["nn.load"], "kind", None) != "conv":
            return "load-mismatch", (f"unfoldable for {sorted(unfoldable)} "
                                     f"({next(iter(unfoldable.values()))[:200]}), loaded by {sorted(models)}")
        return _check_unfoldable(models["nn.load"], scratch, backend, next(iter(unfoldable.values())))
    model = models["nn.load"]
    x, u8 = _inputs(model.n_in)
    for kind, inputs in (("float", x), ("uint8", u8)):
        with np.errstate(all="ignore"):
            logits = {"nn.load": model.forward(inputs)}
            logits.update((name, m.logits(inputs)) for name, m in models.items() if name != "nn.load")
        for name, z in logits.items():
            if not np.all(np.isfinite(z)):
                return "nonfinite", f"{kind} input gives non-finite logits through {name}"
        for name, z in logits.items():
            if not _same(z, logits["nn.load"]):
                return "logits-mismatch", f"{kind} input: the logits of {name} differ from the unfolded model's"
        classes = {"nn.load": np.argmax(logits["nn.load"], axis=1),
                   "nn.load().to_inference()": model.to_inference().predict(inputs)}
        classes.update((name, m.predict(inputs)) for name, m in models.items() if name != "nn.load")
        for name, c in classes.items():
            if not np.array_equal(c, classes["nn.load"]):
                return "fold-mismatch", f"{kind} input: the classes of {name} differ from the unfolded model's"
    mismatch = _roundtrip_mismatch(model, scratch, backend, x, u8)
    if mismatch:
        return mismatch
    return "loaded", f"{model.kind} {model.config.get('sizes', model.config.get('n_in'))}"


def _roundtrip_mismatch(model, scratch, backend, x, u8):
    """None, or ``("roundtrip-mismatch", detail)`` when ``model`` saved and loaded again gives other
    logits on the float input ``x`` or the uint8 input ``u8``."""
    from fastbin.nn.model import load

    again_path = os.path.join(scratch, "again.fbm")
    model.save(again_path)
    again = load(again_path, backend=backend)
    for kind, inputs in (("float", x), ("uint8", u8)):
        with np.errstate(all="ignore"):
            if not _same(again.forward(inputs), model.forward(inputs)):
                return "roundtrip-mismatch", f"{kind} input: logits differ after save + load"
    return None


def _check_unfoldable(model, scratch, backend, reason):
    """A conv file every runtime loader refuses with ``NotImplementedError`` (a layer pattern the folded
    form does not have, documented in docs/conv.md) and ``fastbin.nn.load`` reads: its unfolded model must
    predict finite logits on float and uint8 input, fold with the same error, and survive a save/load
    round trip bit for bit (``unfoldable``)."""

    x, u8 = _inputs(model.n_in)
    for kind, inputs in (("float", x), ("uint8", u8)):
        with np.errstate(all="ignore"):
            logits = model.forward(inputs)
        if not np.all(np.isfinite(logits)):
            return "nonfinite", f"{kind} input gives non-finite logits through nn.load"
    try:
        model.to_inference()
        return "fold-mismatch", "the runtime cannot fold the file, but its unfolded model folds"
    except NotImplementedError:
        pass
    mismatch = _roundtrip_mismatch(model, scratch, backend, x, u8)
    if mismatch:
        return mismatch
    return "unfoldable", reason[:200]


def _check_predictions(model):
    """None, or (outcome, detail) when ``model`` gives non-finite logits or its folded form
    predicts otherwise, on float and uint8 input."""
    x, u8 = _inputs(model.n_in)
    for kind, inputs in (("float", x), ("uint8", u8)):
        with np.errstate(all="ignore"):
            logits = model.forward(inputs)
        if not np.all(np.isfinite(logits)):
            return "nonfinite", f"{kind} input gives non-finite logits"
        folded = model.to_inference().predict(inputs)
        if not np.array_equal(folded, np.argmax(logits, axis=1)):
            return "fold-mismatch", f"{kind} input: folded predictions differ from the model's"
    return None


def check_checkpoint_file(path, scratch, backend="fastbin"):
    """(outcome, detail) of loading the checkpoint at ``path``: rejected, or a model that
    predicts soundly, whose save + load round trip keeps the model, optimizer and run state,
    and that takes a training step with the loaded optimizer."""
    from fastbin.nn.checkpoint import load_checkpoint, save_checkpoint

    try:
        model, opt, state = load_checkpoint(path, backend=backend)
    except ModelFileError as exc:
        return "rejected", str(exc)[:300]
    bad = _check_predictions(model)
    if bad is not None:
        return bad
    again_path = os.path.join(scratch, "again.fbc")
    save_checkpoint(again_path, model, opt, state)
    again, again_opt, again_state = load_checkpoint(again_path, backend=backend)
    x, _ = _inputs(model.n_in)
    with np.errstate(all="ignore"):
        if not _same(again.forward(x), model.forward(x)):
            return "roundtrip-mismatch", "logits differ after save_checkpoint + load_checkpoint"
    if (repr(again_opt), again_opt.steps, getattr(again_state, "step", None)) != (
            repr(opt), opt.steps, getattr(state, "step", None)):
        return "roundtrip-mismatch", "optimizer or run state differs after save_checkpoint + load_checkpoint"
    labels = np.arange(x.shape[0]) % model.n_classes
    with np.errstate(all="ignore"):
        model.train_step(x, labels, opt)
    return "loaded", f"{model.kind} {type(opt).__name__} {opt.schedule!r}"


def check_idx_file(path, scratch, options):
    try:
        a = read_idx(path, **options)
    except IdxError as exc:
        return "rejected", str(exc)[:300]
    again = os.path.join(scratch, "again.idx")
    write_idx(again, a)
    if not _same(read_idx(again), a):
        return "roundtrip-mismatch", "IDX array differs after write + read"
    return "loaded", f"{a.dtype} {a.shape}"


def run_case(case: Case, scratch: str, backend="fastbin"):
    """(outcome, detail) of one case, in this process. Unexpected exceptions are outcomes too."""
    path = os.path.join(scratch, {"model": "case.fbm", "checkpoint": "case.fbc"}.get(case.target, "case.idx"))
    with open(path, "wb") as f:
        f.write(case.data)
    try:
        if case.target == "model":
            return check_model_file(path, scratch, backend)
        if case.target == "checkpoint":
            return check_checkpoint_file(path, scratch, backend)
        return check_idx_file(path, scratch, case.options)
    except MemoryError as exc:
        return "memory-error", repr(exc)[:300]
    except Exception as exc:  # the point of fuzzing: report it
        return f"error:{type(exc).__name__}", f"{exc}"[:300]


# ---------------------------------------------------------------------------
# Worker and driver
# ---------------------------------------------------------------------------
def _vm_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _worker(args):
    """Run cases (seed, indices from stdin as JSON) and print one JSON line per case."""
    spec = json.loads(sys.stdin.readline())
    seed, indices, scratch = spec["seed"], spec["indices"], spec["scratch"]
    # ``scratch`` is the driver's: it removes it, also after it killed this worker
    # warm up (imports, kernel compilation or cache loads) before the memory cap
    warm = generate_case(seed, 0)
    for name in sorted(_bases()["model"]):
        run_case(Case(seed, -1, "model", name, "none", "valid", _bases()["model"][name]), scratch, args.backend)
    run_case(warm, scratch, args.backend)
    vm = _vm_bytes()
    cap = args.mem_mib << 20
    if vm is not None and vm + (256 << 20) > cap:
        cap = vm + (256 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    print(json.dumps({"ready": True, "vm_mib": (vm or 0) >> 20, "cap_mib": cap >> 20}), flush=True)
    selftest = os.environ.get("FASTBIN_FUZZ_SELFTEST", "")  # "crash:i", "hang:i" or "alloc:i": prove the
    for i in indices:                                         # driver reports a dying worker
        if selftest == f"crash:{i}":
            os.kill(os.getpid(), 9)
        if selftest == f"hang:{i}":
            time.sleep(3600)
        case = generate_case(seed, i)
        if selftest == f"alloc:{i}":
            try:
                np.ones(cap, np.uint8)
                outcome, detail = "loaded", "allocated more than the cap?"
            except MemoryError as exc:
                outcome, detail = "memory-error", repr(exc)
        else:
            outcome, detail = run_case(case, scratch, args.backend)
        print(json.dumps({"id": i, "outcome": outcome, "detail": detail}), flush=True)
    print(json.dumps({"done": True, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)


@dataclass
class FuzzReport:
    seed: int
    counts: Counter
    failures: list  # (index, outcome, detail, case label)
    peak_rss_mib: float
    cap_mib: int
    seconds: float

    @property
    def ok(self):
        return not self.failures

    def summary(self) -> str:
        lines = [f"fuzz: {sum(self.counts.values())} cases, seed {self.seed}, {self.seconds:.1f} s; "
                 f"peak RSS of the workers {self.peak_rss_mib:.0f} MiB (RLIMIT_AS {self.cap_mib} MiB)"]
        for key in sorted(self.counts):
            lines.append(f"  {key:<40} {self.counts[key]:>6}{'' if key.split(' ')[0] in ALLOWED else '  <-- FAIL'}")
        for index, outcome, detail, label in self.failures[:50]:
            lines.append(f"FAIL {outcome}: {label}\n     {detail}\n     reproduce: python scripts/fuzz.py "
                         f"--seed {self.seed} --case {index}")
        return "\n".join(lines)


def _reader(stream, q):
    for line in stream:
        q.put(line)
    q.put(None)


def _run_worker(seed, indices, args, results, rusage):
    """Run ``indices`` in one worker; returns the indices left when it died (the first of them
    is then recorded as the failing case)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--mem-mib", str(args.mem_mib),
           "--backend", args.backend]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    q: queue.Queue = queue.Queue()
    err_lines: list = []
    readers = [threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True),
               threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)]
    for t in readers:
        t.start()
    scratch = tempfile.mkdtemp(prefix="fastbin-fuzz-")  # removed below, whatever became of the worker
    try:
        proc.stdin.write(json.dumps({"seed": seed, "indices": list(indices), "scratch": scratch}) + "\n")
        proc.stdin.close()
        return _collect(proc, q, readers, err_lines, indices, args, results, rusage)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def _collect(proc, q, readers, err_lines, indices, args, results, rusage):
    """Read the worker's result lines (see :func:`_run_worker`)."""
    pending = list(indices)
    timeout, failure = args.startup_timeout, None
    while True:
        try:
            line = q.get(timeout=timeout)
        except queue.Empty:
            failure = "timeout", f"no result within {timeout:.0f} s"
            os.kill(proc.pid, 9)
            break
        if line is None:
            break
        msg = json.loads(line)
        if msg.get("ready"):
            rusage["cap_mib"] = max(rusage.get("cap_mib", 0), msg["cap_mib"])
            timeout = args.timeout
        elif "id" in msg:
            results[msg["id"]] = (msg["outcome"], msg["detail"])
            pending.remove(msg["id"])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    rusage["maxrss_kib"] = max(rusage.get("maxrss_kib", 0), usage.ru_maxrss)
    if pending:
        if failure is None:
            tail = "".join(err_lines[-5:]).strip().replace("\n", " | ")[-300:]
            failure = "crash", f"worker exited with status {proc.returncode}: {tail}"
        results[pending[0]] = failure
        return pending[1:]
    return []


def run_cases(n: int, seed: int = 0, *, batch: int = 250, mem_mib: int = 2048, timeout: float = 30.0,
              startup_timeout: float = 300.0, backend: str = "fastbin", start: int = 0) -> FuzzReport:
    """Run cases ``start .. start + n - 1`` of ``seed`` in worker subprocesses; the report's
    ``failures`` lists every disallowed outcome."""
    args = argparse.Namespace(mem_mib=mem_mib, timeout=timeout, startup_timeout=startup_timeout, backend=backend)
    t0 = time.perf_counter()
    results: dict = {}
    rusage: dict = {}
    todo = list(range(start, start + n))
    while todo:
        chunk, todo = todo[:batch], todo[batch:]
        while chunk:
            chunk = _run_worker(seed, chunk, args, results, rusage)
    counts: Counter = Counter()
    failures = []
    for i in sorted(results):
        outcome, detail = results[i]
        case = generate_case(seed, i)
        counts[f"{outcome} ({case.target})"] += 1
        if outcome not in ALLOWED:
            failures.append((i, outcome, detail, case.label))
    return FuzzReport(seed, counts, failures, rusage.get("maxrss_kib", 0) / 1024, rusage.get("cap_mib", mem_mib),
                      time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/fuzz.py", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--cases", type=int, default=500, help="number of cases (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first case index")
    p.add_argument("--batch", type=int, default=250, help="cases per worker subprocess")
    p.add_argument("--mem-mib", type=int, default=2048, help="RLIMIT_AS of a worker in MiB (default 2048)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case (default 30)")
    p.add_argument("--backend", default="fastbin", choices=["fastbin", "reference"])
    p.add_argument("--case", type=int, help="run this one case here, with a traceback")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    if args.case is not None:
        case = generate_case(args.seed, args.case)
        print(case.label)
        with tempfile.TemporaryDirectory() as scratch:
            path = os.path.join(scratch, "case")
            with open(path, "wb") as f:
                f.write(case.data)
            readers = (_loaders(args.backend).values() if case.target == "model"
                       else [lambda p: read_idx(p, **case.options)])
            for read in readers:
                try:
                    read(path)
                except (ModelFileError, IdxError):
                    pass
                except BaseException:
                    traceback.print_exc()
            outcome, detail = run_case(case, scratch, args.backend)
        print(f"{outcome}: {detail}")
        return 0 if outcome in ALLOWED else 1
    report = run_cases(args.cases, args.seed, batch=args.batch, mem_mib=args.mem_mib, timeout=args.timeout,
                       backend=args.backend, start=args.start)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
