"""IDX reader: round trips and every malformed-file error."""
import gzip
import struct
import zlib

import numpy as np
import pytest

from fastbin.io.idx import MAX_NDIM, IdxError, is_gzip, read_idx, write_idx


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "dtype,shape",
    [(np.uint8, (7, 28, 28)), (np.uint8, (5,)), (np.int8, (3, 4)), (np.int16, (2, 3)),
     (np.int32, (4,)), (np.float32, (2, 2, 2)), (np.float64, (3,)), (np.uint8, (0, 28, 28))],
)
def test_round_trip(tmp_path, rng, compress, dtype, shape):
    a = (rng.normal(size=shape) * 100).astype(dtype)
    f = tmp_path / "a.idx"
    write_idx(f, a, compress=compress)
    assert is_gzip(f) == compress
    b = read_idx(f)
    assert b.dtype == np.dtype(dtype).newbyteorder("=") and b.shape == shape
    assert b.flags.c_contiguous and b.flags.writeable
    np.testing.assert_array_equal(a, b)


def test_uint8_header_bytes(tmp_path):
    f = tmp_path / "l.idx"
    write_idx(f, np.arange(3, dtype=np.uint8))
    assert f.read_bytes() == bytes.fromhex("00000801 00000003 000102".replace(" ", ""))


def _write(path, data: bytes, compress: bool):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _header(code, dims):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "data,match",
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"x", "not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"x", "not an IDX file"),  # unknown type code
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00", "expected 4 bytes of magic"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "bytes of dimensions"),
        (_header(0x08, (10,)) + b"\x00" * 9, "truncated IDX file|more than"),
        (_header(0x08, (10,)) + b"\x00" * 11, "too long"),
        (_header(0x0C, (3,)) + b"\x00" * 11, "truncated IDX file|more than"),
    ],
)
def test_malformed(tmp_path, compress, data, match):
    f = _write(tmp_path / "bad", data, compress)
    with pytest.raises(IdxError, match=match) as info:
        read_idx(f)
    assert str(f) in str(info.value)


def test_wrong_ndim_and_dtype(tmp_path):
    f = tmp_path / "a"
    write_idx(f, np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="expected a 3-D IDX array, header declares 2-D"):
        read_idx(f, expected_ndim=3)
    with pytest.raises(ValueError, match="expected IDX element type int32"):
        read_idx(f, expected_dtype=np.int32)


@pytest.mark.parametrize("compress", [False, True])
def test_absurd_dims_rejected_before_allocation(tmp_path, compress, monkeypatch):
    # 2**32-1 cubed elements: far beyond memory; must fail on the size check,
    # never reaching np.empty.
    f = _write(tmp_path / "huge", _header(0x08, (2**32 - 1,) * 3) + b"\x00" * 100, compress)
    calls = []
    monkeypatch.setattr(np, "empty", lambda *a, **k: calls.append(a) or pytest.fail("allocated"))
    with pytest.raises(ValueError, match="more than"):
        read_idx(f)
    assert not calls


def test_gzip_bomb_bound_uses_compressed_size(tmp_path):
    # 50 MB of zeros compresses to ~50 KB: declared size fits the deflate bound
    # and the file is read fine; the same header claiming 1000x more is refused.
    n = 50_000_000
    ok = _write(tmp_path / "ok.gz", _header(0x08, (n,)) + bytes(n), True)
    assert read_idx(ok).shape == (n,)
    size = ok.stat().st_size
    bad = _write(tmp_path / "bad.gz", _header(0x08, (size * 2000,)) + bytes(16), True)
    with pytest.raises(ValueError, match="a gzip stream of this size"):
        read_idx(bad)


def test_truncated_gzip(tmp_path):
    data = gzip.compress(_header(0x08, (1000,)) + np.arange(1000, dtype=np.uint32).astype(np.uint8).tobytes())
    for cut in (len(data) - 4, len(data) - 8, len(data) // 2, 12):
        f = tmp_path / f"t{cut}.gz"
        f.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated") as info:
            read_idx(f)
        assert str(f) in str(info.value)


def test_corrupt_gzip(tmp_path, rng):
    payload = _header(0x08, (5000,)) + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    data = bytearray(gzip.compress(payload))
    # Bad CRC in the trailer.
    crc_bad = bytearray(data)
    crc_bad[-8] ^= 0xFF
    f = tmp_path / "crc.gz"
    f.write_bytes(bytes(crc_bad))
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(f)
    # Garbage in the deflate stream.
    body_bad = bytearray(data)
    body_bad[20:60] = b"\xff" * 40
    f = tmp_path / "body.gz"
    f.write_bytes(bytes(body_bad))
    with pytest.raises(ValueError, match="gzip|IDX"):
        read_idx(f)
    # Trailing garbage after the gzip member.
    f = tmp_path / "trail.gz"
    f.write_bytes(bytes(data) + b"garbage!")
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(f)


def test_zlib_error_is_value_error(tmp_path):
    # A gzip header followed by an invalid deflate block type.
    f = tmp_path / "z.gz"
    f.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x07" * 30)
    with pytest.raises(ValueError, match="gzip"):
        read_idx(f)
    assert issubclass(zlib.error, Exception)


def test_write_idx_rejects_unsupported(tmp_path):
    with pytest.raises(ValueError, match="cannot write"):
        write_idx(tmp_path / "x", np.zeros(3, np.complex64))
    with pytest.raises(ValueError, match="cannot write"):
        write_idx(tmp_path / "x", np.uint8(3))


# Errors name the file and are IdxError; bounds from the caller; digests before decompression ---------


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("ndim", [MAX_NDIM + 1, 40, 255])
def test_absurd_ndim(tmp_path, compress, ndim):
    # 255 dims of 1: NumPy's own "maximum supported dimension" error before, without the file name
    f = _write(tmp_path / "nd", _header(0x08, (1,) * ndim) + b"\x07", compress)
    with pytest.raises(IdxError, match=f"{ndim} dimensions, more than the {MAX_NDIM}") as info:
        read_idx(f)
    assert str(f) in str(info.value)


def test_all_errors_are_idx_errors(tmp_path):
    f = _write(tmp_path / "t", _header(0x08, (10,)) + b"\x00" * 3, False)
    with pytest.raises(IdxError, match="more than the file"):
        read_idx(f)
    f = _write(tmp_path / "z.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x07" * 30, False)
    with pytest.raises(IdxError, match="gzip"):
        read_idx(f)
    assert issubclass(IdxError, ValueError)


@pytest.mark.parametrize("compress", [False, True])
def test_empty_split_rejected_when_asked(tmp_path, compress):
    f = tmp_path / "e.idx"
    write_idx(f, np.zeros((0, 28, 28), np.uint8), compress=compress)
    assert read_idx(f).shape == (0, 28, 28)  # a valid IDX file
    with pytest.raises(IdxError, match=r"holds no items \(dims \(0, 28, 28\)\)") as info:
        read_idx(f, allow_empty=False)
    assert str(f) in str(info.value)


@pytest.mark.parametrize("compress", [False, True])
def test_expected_shape_checked_before_allocation(tmp_path, compress, monkeypatch):
    f = tmp_path / "s.idx"
    write_idx(f, np.zeros((3, 28, 27), np.uint8), compress=compress)
    assert read_idx(f, expected_shape=(None, 28, 27)).shape == (3, 28, 27)
    monkeypatch.setattr(np, "empty", lambda *a, **k: pytest.fail("allocated"))
    for shape in [(None, 28, 28), (3, 28), (4, 28, 27)]:
        with pytest.raises(IdxError, match=r"expected an IDX array of shape \(.*\), header declares \(3, 28, 27\)"):
            read_idx(f, expected_shape=shape)


def test_file_digest_checked_before_decompressing(tmp_path, monkeypatch):
    import hashlib

    from fastbin.io import idx

    data = gzip.compress(_header(0x08, (1000,)) + bytes(1000))
    f = _write(tmp_path / "d.gz", data, False)
    good = hashlib.sha256(data).hexdigest()
    assert read_idx(f, sha256=good).shape == (1000,)

    def no_gzip(*args, **kwargs):
        raise AssertionError("decompressed before the digest check")

    monkeypatch.setattr(idx.gzip, "GzipFile", no_gzip)
    with pytest.raises(IdxError, match="SHA-256 of the file does not match"):
        read_idx(f, sha256="0" * 64)


@pytest.mark.parametrize("compress", [False, True])
def test_content_digest(tmp_path, compress):
    import hashlib

    raw = _header(0x08, (4, 3)) + bytes(range(12))
    f = _write(tmp_path / "c", raw, compress)
    content = hashlib.sha256(raw).hexdigest()
    assert read_idx(f, sha256="0" * 64, content_sha256=content).shape == (4, 3)
    with pytest.raises(IdxError, match="SHA-256 does not match"):
        read_idx(f, sha256="0" * 64, content_sha256="1" * 64)


def test_gzip_read_stops_after_the_declared_payload(tmp_path, monkeypatch):
    """A small header followed by 20 MB of zeros in one gzip: rejected after reading the declared
    10 bytes and one more, not the whole stream."""
    from fastbin.io import idx

    f = _write(tmp_path / "long.gz", _header(0x08, (10,)) + bytes(20_000_000), True)
    counted = []

    class Counting(gzip.GzipFile):
        def read(self, size=-1):
            out = super().read(size)
            counted.append(len(out))
            return out  # (GzipFile.readinto reads through read)

    monkeypatch.setattr(idx.gzip, "GzipFile", Counting)
    with pytest.raises(IdxError, match="too long"):
        read_idx(f)
    assert sum(counted) <= 4 + 4 + 10 + 1, counted


def test_read_racing_a_replace_sees_one_whole_file(tmp_path, monkeypatch):
    """Issue 21, item 4: a file replaced right after the reader's size query (the old reader asked
    ``os.path.getsize`` before it opened the file) is read whole, old or new, never called corrupt."""
    import os

    f, bigger = tmp_path / "a.idx", tmp_path / "b.idx"
    write_idx(f, np.arange(4, dtype=np.uint8))
    write_idx(bigger, np.arange(200, dtype=np.uint8))
    real_getsize = os.path.getsize

    def getsize(path):
        size = real_getsize(path)
        if os.fspath(path) == str(f) and bigger.exists():
            os.replace(bigger, f)
        return size

    monkeypatch.setattr(os.path, "getsize", getsize)
    assert read_idx(f).shape in ((4,), (200,))
