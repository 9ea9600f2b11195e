"""IDX files (the MNIST / Fashion-MNIST container), raw or gzip-compressed.

Layout (all integers big-endian)::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     ndim (number of dimensions, >= 1)
    4 * ndim    dims, uint32 each
    payload     prod(dims) * itemsize bytes, C order, nothing after it

A file starting with the gzip magic ``1f 8b`` is decompressed on the fly, in
bounded chunks: never more than the header, the payload its dims declare and
one byte (to detect extra data).

Every check runs before the payload is allocated: ``ndim`` at most
``MAX_NDIM``; the dims against ``expected_shape`` and ``allow_empty`` when
given; the declared size must fit the file (raw) or the largest size a
deflate stream of this length can expand to (gzip), so a hostile header
cannot trigger a huge allocation. With ``sha256=`` the digest of the stored
file is checked first, streamed, before anything is decompressed or
allocated; with ``content_sha256=`` the digest of the decompressed bytes is
computed while they are read (the size bounded as above). Any malformed file
(bad magic, truncated, too long, corrupt gzip, a digest that does not match)
raises ``IdxError`` (a ``ValueError``) naming the file and what was expected.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib

import numpy as np

__all__ = ["IDX_DTYPES", "MAX_NDIM", "IdxError", "IdxShapeError", "read_idx", "write_idx", "is_gzip"]

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
#: Most dimensions an IDX file may declare (the format allows 255; images use 1 to 4).
MAX_NDIM = 16


class IdxError(ValueError):
    """An IDX file is malformed, truncated, too long, corrupt, of an unexpected
    shape or type, or does not match its digest. The message names the file."""


class IdxShapeError(IdxError):
    """The header declares a shape other than ``expected_shape`` (raised before any payload
    is read or decompressed)."""


def is_gzip(path) -> bool:
    """True when the file starts with the gzip magic bytes ``1f 8b``."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _read_exact(stream, n: int, path, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise IdxError(f"{path}: truncated IDX file: expected {n} bytes of {what}, got {len(data)}")
    return data


def _readinto_exact(stream, out: np.ndarray, path, n_expected: int, hasher) -> None:
    if n_expected == 0:
        return
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < n_expected:
        n = stream.readinto(view[got : got + min(_CHUNK, n_expected - got)])
        if not n:
            raise IdxError(
                f"{path}: truncated IDX file: header declares {n_expected} payload bytes, "
                f"file ends after {got}"
            )
        if hasher is not None:
            hasher.update(view[got : got + n])
        got += n


def _check_dims(path, dims, expected_shape, allow_empty) -> None:
    if expected_shape is not None:
        expected = tuple(expected_shape)
        if len(dims) != len(expected) or any(e is not None and d != e for d, e in zip(dims, expected)):
            shown = "(" + ", ".join("n" if e is None else str(e) for e in expected) + ")"
            raise IdxShapeError(f"{path}: expected an IDX array of shape {shown}, header declares {tuple(dims)}")
    if not allow_empty and (not dims or dims[0] == 0):
        raise IdxError(f"{path}: IDX file holds no items (dims {tuple(dims)}); expected at least one")


def _parse(stream, path, stored_size: int, compressed: bool, expected_ndim, expected_dtype,
           expected_shape=None, allow_empty=True, hasher=None) -> np.ndarray:
    magic = _read_exact(stream, 4, path, "magic number")
    if hasher is not None:
        hasher.update(magic)
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
        raise IdxError(
            f"{path}: not an IDX file: magic number {magic.hex()} should be 0000 + a type code "
            f"(08 uint8, 09 int8, 0b int16, 0c int32, 0d float32, 0e float64) + ndim"
        )
    dtype = IDX_DTYPES[magic[2]]
    ndim = magic[3]
    if ndim == 0:
        raise IdxError(f"{path}: IDX header declares 0 dimensions")
    if ndim > MAX_NDIM:
        raise IdxError(f"{path}: IDX header declares {ndim} dimensions, more than the {MAX_NDIM} this reader accepts")
    if expected_ndim is not None and ndim != expected_ndim:
        raise IdxError(f"{path}: expected a {expected_ndim}-D IDX array, header declares {ndim}-D")
    if expected_dtype is not None and dtype != np.dtype(expected_dtype):
        raise IdxError(f"{path}: expected IDX element type {np.dtype(expected_dtype)}, got {dtype}")
    raw_dims = _read_exact(stream, 4 * ndim, path, "dimensions")
    if hasher is not None:
        hasher.update(raw_dims)
    dims = struct.unpack(f">{ndim}I", raw_dims)
    _check_dims(path, dims, expected_shape, allow_empty)
    header = 4 + 4 * ndim
    n_payload = math.prod(dims) * dtype.itemsize
    limit = stored_size - header if not compressed else stored_size * _MAX_DEFLATE_RATIO
    if n_payload > limit:
        kind = "the file" if not compressed else "a gzip stream of this size"
        raise IdxError(
            f"{path}: IDX header declares dims {dims} ({n_payload} payload bytes), "
            f"more than {kind} can hold ({limit} bytes)"
        )
    out = np.empty(dims, dtype=dtype)
    _readinto_exact(stream, out, path, n_payload, hasher)
    if stream.read(1):
        raise IdxError(
            f"{path}: IDX file too long: extra bytes after the {n_payload} payload bytes "
            f"declared by dims {dims}"
        )
    if dtype.byteorder == ">":
        out = out.astype(dtype.newbyteorder("="))
    return out


def _file_sha256(raw) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: raw.read(1 << 20), b""):
        h.update(chunk)
    raw.seek(0)
    return h.hexdigest()


def read_idx(path, *, expected_ndim: int | None = None, expected_dtype=None, expected_shape=None,
             allow_empty: bool = True, sha256: str | None = None, content_sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a new C-contiguous, writeable array.

    Parameters
    ----------
    path : str or os.PathLike
    expected_ndim : int, optional
        Reject files with another number of dimensions.
    expected_dtype : dtype, optional
        Reject files with another element type (e.g. ``np.uint8``).
    expected_shape : tuple of int or None, optional
        Reject files of another shape; ``None`` entries match any size, e.g.
        ``(None, 28, 28)``. Checked before anything is allocated.
    allow_empty : bool
        ``False`` rejects a file whose first dimension is 0 (no items).
    sha256, content_sha256 : str, optional
        Hex SHA-256 digests: the file is accepted only if the digest of the
        stored file equals ``sha256`` or the digest of its decompressed IDX
        bytes equals ``content_sha256`` (either may be None). The stored
        digest is computed first, streamed, before any decompression.

    Returns
    -------
    ndarray of shape ``dims`` in native byte order.

    Raises
    ------
    IdxError (a ValueError)
        Bad magic, too many dimensions, unexpected ndim, type or shape, no
        items, declared size larger than the file can hold, truncated or extra
        payload, corrupt gzip stream, digest mismatch.
    """
    path = os.fspath(path)
    verify = sha256 is not None or content_sha256 is not None
    with open(path, "rb") as raw:
        stored_size = os.fstat(raw.fileno()).st_size  # of the file being read, not of the path
        if verify and sha256 is not None and _file_sha256(raw) == sha256.lower():
            verify = False  # the stored file is the published one
        hasher = hashlib.sha256() if verify and content_sha256 is not None else None
        if verify and hasher is None:
            raise IdxError(f"{path}: SHA-256 of the file does not match the expected {sha256}")
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        args = (expected_ndim, expected_dtype, expected_shape, allow_empty, hasher)
        if not compressed:
            out = _parse(raw, path, stored_size, False, *args)
        else:
            try:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    out = _parse(stream, path, stored_size, True, *args)
            except EOFError as exc:
                raise IdxError(f"{path}: truncated gzip stream ({exc})") from exc
            except (gzip.BadGzipFile, zlib.error) as exc:
                raise IdxError(f"{path}: corrupt gzip stream ({exc})") from exc
    if hasher is not None and hasher.hexdigest() != content_sha256.lower():
        expected = " or ".join(d for d in (sha256 and f"file {sha256}", f"content {content_sha256}") if d)
        raise IdxError(f"{path}: SHA-256 does not match the expected digest ({expected})")
    return out


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
