"""A compact, safe container for model arrays: ``save_arrays`` / ``load_arrays``.

File layout (integers little-endian)::

    offset   size  field
    0        8     magic b"FBIN\\x00MDL"
    8        4     format version (uint32), currently 1
    12       4     header length H (uint32), at most 1 MiB
    16       H     header: UTF-8 JSON {"meta": {...}, "arrays": [entry, ...]}
    D        ...   payloads; D = 16 + H rounded up to a multiple of 64, each
                   payload starts on a 64-byte boundary, gaps are zero bytes
    end-32   32    SHA-256 of every byte before it

An array-table entry is ``{"name", "kind", "dtype", "shape", "offset",
"nbytes"}`` (``offset`` counted from D); ``kind`` is ``"array"`` or
``"packed_signs"`` (then also ``"n_bits"``: a ``PackedSigns`` stored as its
uint64 words, ``shape = [rows, n_words]``, so 1 bit per sign plus padding to
whole words).

Stored dtypes: float32 (every float array is stored as float32), int8, int32,
int64, uint8, bool; uint64 for packed signs only.

Safety: loading runs no code (no pickle: the header is JSON and the payloads
are raw numbers) and nothing is compressed, so there is no decompression bomb.
Every size in the header is checked against the actual file size before
anything is allocated; the checksum, bounds, overlaps and ``prod(shape) *
itemsize == nbytes`` are all verified. Any problem raises ``ModelFileError``
(a ``ValueError``). The size and the bytes come from one open file, so a save
replacing the file meanwhile gives the old file or the new one, whole. Writes
are atomic (:mod:`fastbin.io.atomic`): a temporary file in the same directory,
fsynced, then ``os.replace``; a failure leaves any previous file untouched;
only a regular file is replaced (a symbolic link, device node, FIFO or
directory is refused); a new file gets the mode the umask allows, a replaced
one keeps its mode.

Temporary files are named ``.<target name>.<16 hex digits>.tmp`` and removed on
every error Python sees (exceptions, ``KeyboardInterrupt``). A process killed
outright (SIGKILL, the default SIGTERM action, power loss) cannot clean up, so
each ``save_arrays`` also deletes the temporary files of *the same target*
(exactly that pattern, owned by this user) older than ``STALE_TEMP_SECONDS``
(:mod:`fastbin.io.atomic`): old enough that no save still writes them. A library installing signal
handlers would be worse: they belong to the application.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct

import numpy as np

from ..bits import aligned_empty, n_words_for
from ..packed import PackedSigns
from .atomic import STALE_TEMP_SECONDS, atomic_write

__all__ = ["FORMAT_VERSION", "MAGIC", "STALE_TEMP_SECONDS", "ModelFileError", "load_arrays", "load_arrays_bytes",
           "read_model_bytes", "save_arrays"]

MAGIC = b"FBIN\x00MDL"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 1 << 20
_PREFIX = struct.Struct("<8sII")  # magic, version, header length
_DIGEST = 32
_ALIGN = 64
_MAX_NDIM = 32

#: Stored dtype name -> little-endian numpy dtype.
_DTYPES = {
    "float32": np.dtype("<f4"),
    "int8": np.dtype("i1"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
    "uint64": np.dtype("<u8"),  # packed signs only
}
_ARRAY_DTYPES = ("float32", "int8", "int32", "int64", "uint8", "bool")


class ModelFileError(ValueError):
    """A model file is malformed, corrupt, truncated or from a newer format."""


def _round_up(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _stored(name: str, value):
    """(entry without offset, little-endian C-contiguous array) for one value."""
    if isinstance(value, PackedSigns):
        if not value.padding_is_zero():
            raise ValueError(f"arrays[{name!r}] has non-zero padding bits past n_bits={value.n_bits}")
        data = np.ascontiguousarray(value.bits, dtype=_DTYPES["uint64"])
        return {"name": name, "kind": "packed_signs", "dtype": "uint64", "n_bits": value.n_bits}, data
    if isinstance(value, np.generic):  # a numpy scalar: store as a 0-d array
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"arrays[{name!r}] must be a numpy.ndarray or PackedSigns, got {type(value).__name__}")
    if value.dtype.kind == "f":
        dtype_name = "float32"
    elif value.dtype.name in _ARRAY_DTYPES:
        dtype_name = value.dtype.name
    else:
        raise TypeError(
            f"arrays[{name!r}] has dtype {value.dtype}; storable: floats (as float32), "
            f"{', '.join(_ARRAY_DTYPES[1:])}"
        )
    data = np.asarray(value, dtype=_DTYPES[dtype_name], order="C")  # keeps 0-d arrays 0-d
    return {"name": name, "kind": "array", "dtype": dtype_name}, data


def _write_payload(f, hasher, data: bytes | memoryview) -> None:
    hasher.update(data)
    f.write(data)


def save_arrays(path, meta: dict, arrays: dict, *, check=None) -> None:
    """Write ``meta`` (a JSON-serialisable dict) and ``arrays`` (name ->
    ndarray or ``PackedSigns``) to ``path`` atomically.

    Raises ``TypeError`` / ``ValueError`` for input that cannot be stored
    (non-JSON meta, NaN in meta, unsupported dtype, non-str names, a header
    over 1 MiB); ``OSError`` from the filesystem, ``FileExistsError`` when
    ``path`` is not a regular file (a symbolic link, directory, device, FIFO:
    never replaced). The target is replaced only after the whole file is
    written and fsynced (:func:`fastbin.io.atomic.atomic_write`: a new file
    gets the mode the umask allows, a replaced one keeps its mode), and after
    ``check(temp_path)``, if given, returned without an error.
    """
    path = os.fspath(path)
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict of name -> array, got {type(arrays).__name__}")
    entries, payloads, offset = [], [], 0
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"array names must be non-empty str, got {name!r}")
        entry, data = _stored(name, value)
        entry.update(shape=list(data.shape), offset=offset, nbytes=int(data.nbytes))
        entries.append(entry)
        payloads.append(data)
        offset = _round_up(offset + data.nbytes)
    try:
        header = json.dumps({"meta": meta, "arrays": entries}, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"meta must be JSON-serialisable (no NaN/inf): {exc}") from exc
    if len(header) > MAX_HEADER_BYTES:
        raise ValueError(f"header is {len(header)} bytes, more than the {MAX_HEADER_BYTES} limit")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header))
    data_start = _round_up(len(prefix) + len(header))

    with atomic_write(path, check=check) as f:
        hasher = hashlib.sha256()
        _write_payload(f, hasher, prefix + header + bytes(data_start - len(prefix) - len(header)))
        position = 0
        for entry, data in zip(entries, payloads):
            _write_payload(f, hasher, bytes(entry["offset"] - position))
            if data.nbytes:
                _write_payload(f, hasher, memoryview(data.reshape(-1).view(np.uint8)))
            position = entry["offset"] + data.nbytes
        f.write(hasher.digest())


def _fail(path, message: str):
    raise ModelFileError(f"{path}: {message}")


def _no_constants(token):
    raise ValueError(f"non-standard JSON constant {token}")


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key in {keys}")
    return dict(pairs)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_entry(path, i: int, entry, data_size: int, file_size: int) -> None:
    """Table entry ``i`` is well formed and its payload lies in the data region."""
    where = f"array table entry {i}"
    keys = {"name", "kind", "dtype", "shape", "offset", "nbytes"}
    if not isinstance(entry, dict):
        _fail(path, f"{where} is not an object")
    kind = entry.get("kind")
    if kind == "packed_signs":
        keys = keys | {"n_bits"}
    elif kind != "array":
        _fail(path, f"{where} has unknown kind {kind!r} (expected 'array' or 'packed_signs')")
    if set(entry) != keys:
        _fail(path, f"{where} has keys {sorted(entry)}, expected {sorted(keys)}")
    name, dtype_name, shape = entry["name"], entry["dtype"], entry["shape"]
    if not isinstance(name, str) or not name:
        _fail(path, f"{where} has an invalid name {name!r}")
    where = f"array {name!r}"
    allowed = ("uint64",) if kind == "packed_signs" else _ARRAY_DTYPES
    if dtype_name not in allowed:
        _fail(path, f"{where} has unknown or unsupported dtype {dtype_name!r} (expected one of {allowed})")
    if not isinstance(shape, list) or len(shape) > _MAX_NDIM or not all(_is_int(s) and s >= 0 for s in shape):
        _fail(path, f"{where} has an invalid shape {shape!r}")
    if any(s > file_size for s in shape):
        _fail(path, f"{where} declares shape {shape}, larger than the {file_size}-byte file can hold")
    offset, nbytes = entry["offset"], entry["nbytes"]
    if not (_is_int(offset) and _is_int(nbytes) and offset >= 0 and nbytes >= 0):
        _fail(path, f"{where} has invalid offset/nbytes {offset!r}/{nbytes!r}")
    if offset + nbytes > data_size:
        _fail(path, f"{where} spans bytes [{offset}, {offset + nbytes}) of the data region, which holds {data_size}")
    expected = math.prod(shape) * _DTYPES[dtype_name].itemsize
    if expected != nbytes:
        _fail(path,
              f"{where}: shape {shape} x {_DTYPES[dtype_name].itemsize} bytes = {expected}, but nbytes = {nbytes}")
    if kind == "packed_signs":
        n_bits = entry["n_bits"]
        if not _is_int(n_bits) or n_bits < 1 or len(shape) != 2 or shape[1] != n_words_for(n_bits):
            _fail(path, f"{where}: packed signs need shape [rows, ceil(n_bits/64)], got {shape} with n_bits={n_bits!r}")


def _check_prefix(path, head: bytes, file_size: int) -> tuple[int, int]:
    """The 16-byte prefix ``head`` of a ``file_size``-byte file: magic, version, header
    length, and room for the header and the digest. Returns ``(header_len, data_start)``."""
    if head[:2] == b"\x1f\x8b":
        _fail(path, "this is a gzip file, not a fastbin model file (model files are never compressed)")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        _fail(path, "this is a zip archive (e.g. .npz), not a fastbin model file")
    if len(head) < _PREFIX.size and MAGIC.startswith(head[:8]):
        _fail(path, f"truncated: {file_size} bytes, too short for the {_PREFIX.size}-byte prefix")
    if head[:8] != MAGIC:
        _fail(path, f"not a fastbin model file: magic {head[:8]!r}, expected {MAGIC!r}")
    _, version, header_len = _PREFIX.unpack(head)
    if version > FORMAT_VERSION:
        _fail(path,
              f"format version {version} was written by a newer fastbin; this one reads version {FORMAT_VERSION}")
    if version < 1:
        _fail(path, f"invalid format version {version}")
    if header_len > MAX_HEADER_BYTES:
        _fail(path, f"header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit")
    data_start = _round_up(_PREFIX.size + header_len)
    if data_start + _DIGEST > file_size:
        _fail(path, f"truncated: header of {header_len} bytes needs at least {data_start + _DIGEST} bytes, "
                    f"file has {file_size}")
    return header_len, data_start


def read_model_bytes(path) -> bytes:
    """The bytes of the model file ``path``, read after its prefix passed the checks of
    :func:`load_arrays` (so a non-model file is not read whole); the rest is checked by
    :func:`load_arrays_bytes`. ``ModelFileError``, or ``OSError`` when it cannot be read."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size  # the size of the file being read, not of the path
        head = f.read(_PREFIX.size)
        _check_prefix(path, head, file_size)
        body = head + f.read(file_size - _PREFIX.size)  # file_size is the real size: bounded
    if len(body) != file_size:
        _fail(path, "file changed size while being read")
    return body


def load_arrays(path, *, check=None):
    """Read a file written by :func:`save_arrays`: returns ``(meta, arrays)``
    with ``arrays`` in the saved order, each a new writeable 64-byte aligned
    array (or ``PackedSigns``) in native byte order.

    ``check(meta, table)``, if given, runs after the container checks and
    before any payload is copied (``table``: the header's list of entries);
    it may raise ``ModelFileError`` (e.g. ``fastbin.io.modelschema.check_header``).

    Raises ``ModelFileError`` for anything but a valid, intact file of this
    format (see the module docstring for the checks), ``OSError`` when the file
    cannot be read.
    """
    path = os.fspath(path)
    return _parse(path, read_model_bytes(path), check)


def load_arrays_bytes(data, *, check=None, name="<bytes>"):
    """:func:`load_arrays` on the bytes of a model file (``bytes``, ``bytearray`` or
    ``memoryview``, copied unless ``bytes``), every check the same; errors name ``name``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be the bytes of a model file, got {type(data).__name__}")
    return _parse(name, bytes(data), check)


def _parse(path, body: bytes, check):
    file_size = len(body)
    header_len, data_start = _check_prefix(path, body[: _PREFIX.size], file_size)
    if hashlib.sha256(memoryview(body)[: file_size - _DIGEST]).digest() != body[file_size - _DIGEST :]:
        _fail(path, "SHA-256 checksum mismatch: the file is corrupt or truncated")
    try:
        header = json.loads(
            body[_PREFIX.size : _PREFIX.size + header_len].decode("utf-8"),
            parse_constant=_no_constants,
            object_pairs_hook=_no_duplicates,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        _fail(path, f"header is not valid JSON: {exc}")
    if not isinstance(header, dict) or set(header) != {"meta", "arrays"}:
        _fail(path, "header must be a JSON object with exactly the keys 'meta' and 'arrays'")
    meta, table = header["meta"], header["arrays"]
    if not isinstance(meta, dict) or not isinstance(table, list):
        _fail(path, "header 'meta' must be an object and 'arrays' a list")
    data_size = file_size - _DIGEST - data_start
    for i, entry in enumerate(table):
        _check_entry(path, i, entry, data_size, file_size)
    names = [e["name"] for e in table]
    if len(set(names)) != len(names):
        _fail(path, f"duplicate array names in {names}")
    spans = sorted((e["offset"], e["offset"] + e["nbytes"], e["name"]) for e in table if e["nbytes"])
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            _fail(path, f"arrays {first!r} and {second!r} overlap")
    if check is not None:
        check(meta, table)
    # All checks passed: every allocation below is bounded by the file size.
    arrays = {}
    for e in table:
        dtype = _DTYPES[e["dtype"]]
        out = aligned_empty(tuple(e["shape"]), dtype.newbyteorder("="))
        begin = data_start + e["offset"]
        raw = np.frombuffer(body, dtype=dtype, count=math.prod(e["shape"]), offset=begin)
        out.reshape(-1)[...] = raw
        if e["dtype"] == "bool" and raw.size and np.frombuffer(body, np.uint8, raw.size, begin).max() > 1:
            _fail(path, f"array {e['name']!r}: bool payload holds bytes other than 0 and 1")
        if e["kind"] == "packed_signs":
            out = PackedSigns(out, e["n_bits"])
            if not out.padding_is_zero():
                _fail(path, f"array {e['name']!r}: non-zero padding bits past n_bits={e['n_bits']}")
        arrays[e["name"]] = out
    return meta, arrays
