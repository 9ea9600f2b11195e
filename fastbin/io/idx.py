"""IDX files (the MNIST / Fashion-MNIST container), raw or gzip-compressed.

Layout (all integers big-endian)::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     ndim (number of dimensions, >= 1)
    4 * ndim    dims, uint32 each
    payload     prod(dims) * itemsize bytes, C order, nothing after it

A file starting with the gzip magic ``1f 8b`` is decompressed on the fly.

Every check runs before the payload is allocated: the declared size must fit
the file (raw) or the largest size a deflate stream of this length can expand
to (gzip), so a hostile header cannot trigger a huge allocation. Any
malformed file (bad magic, truncated, too long, corrupt gzip) raises
``ValueError`` naming the file and what was expected.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

__all__ = ["IDX_DTYPES", "read_idx", "write_idx", "is_gzip"]

#: IDX element-type code -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_FOR_KIND = {(d.kind, d.itemsize): code for code, d in IDX_DTYPES.items()}

GZIP_MAGIC = b"\x1f\x8b"
# deflate expands at most ~1032:1; allow headroom for gzip framing.
_MAX_DEFLATE_RATIO = 1100
_CHUNK = 1 << 22


def is_gzip(path) -> bool:
    """True when the file starts with the gzip magic bytes ``1f 8b``."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _read_exact(stream, n: int, path, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise ValueError(f"{path}: truncated IDX file: expected {n} bytes of {what}, got {len(data)}")
    return data


def _readinto_exact(stream, out: np.ndarray, path, n_expected: int) -> None:
    if n_expected == 0:
        return
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < n_expected:
        n = stream.readinto(view[got : got + min(_CHUNK, n_expected - got)])
        if not n:
            raise ValueError(
                f"{path}: truncated IDX file: header declares {n_expected} payload bytes, "
                f"file ends after {got}"
            )
        got += n


def _parse(stream, path, stored_size: int, compressed: bool, expected_ndim, expected_dtype) -> np.ndarray:
    magic = _read_exact(stream, 4, path, "magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file: magic number {magic.hex()} should be 0000 + a type code "
            f"(08 uint8, 09 int8, 0b int16, 0c int32, 0d float32, 0e float64) + ndim"
        )
    dtype = IDX_DTYPES[magic[2]]
    ndim = magic[3]
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(f"{path}: expected a {expected_ndim}-D IDX array, header declares {ndim}-D")
    if expected_dtype is not None and dtype != np.dtype(expected_dtype):
        raise ValueError(f"{path}: expected IDX element type {np.dtype(expected_dtype)}, got {dtype}")
    dims = struct.unpack(f">{ndim}I", _read_exact(stream, 4 * ndim, path, "dimensions"))
    header = 4 + 4 * ndim
    n_payload = math.prod(dims) * dtype.itemsize
    limit = stored_size - header if not compressed else stored_size * _MAX_DEFLATE_RATIO
    if n_payload > limit:
        kind = "the file" if not compressed else "a gzip stream of this size"
        raise ValueError(
            f"{path}: IDX header declares dims {dims} ({n_payload} payload bytes), "
            f"more than {kind} can hold ({limit} bytes)"
        )
    out = np.empty(dims, dtype=dtype)
    _readinto_exact(stream, out, path, n_payload)
    if stream.read(1):
        raise ValueError(
            f"{path}: IDX file too long: extra bytes after the {n_payload} payload bytes "
            f"declared by dims {dims}"
        )
    if dtype.byteorder == ">":
        out = out.astype(dtype.newbyteorder("="))
    return out


def read_idx(path, *, expected_ndim: int | None = None, expected_dtype=None) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a new C-contiguous, writeable array.

    Parameters
    ----------
    path : str or os.PathLike
    expected_ndim : int, optional
        Reject files with another number of dimensions.
    expected_dtype : dtype, optional
        Reject files with another element type (e.g. ``np.uint8``).

    Returns
    -------
    ndarray of shape ``dims`` in native byte order.

    Raises
    ------
    ValueError
        Bad magic, unexpected ndim or type, declared size larger than the file
        can hold, truncated or extra payload, corrupt gzip stream.
    """
    path = os.fspath(path)
    stored_size = os.path.getsize(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            return _parse(raw, path, stored_size, False, expected_ndim, expected_dtype)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, path, stored_size, True, expected_ndim, expected_dtype)
        except EOFError as exc:
            raise ValueError(f"{path}: truncated gzip stream ({exc})") from exc
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt gzip stream ({exc})") from exc


def write_idx(path, array, *, compress: bool = False) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress``).

    Supported dtypes: uint8, int8, int16, int32, float32, float64. Used by
    tests and to convert data; not atomic (this is not the download path).
    """
    array = np.asarray(array)
    code = _CODE_FOR_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"cannot write dtype {array.dtype} with ndim {array.ndim} as IDX")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header)
        f.write(payload)
