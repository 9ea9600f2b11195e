"""IDX reader: round trips and every malformed-file error."""
import gzip
import struct
import zlib

import numpy as np
import pytest

from fastbin.io.idx import is_gzip, read_idx, write_idx


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
    with pytest.raises(ValueError, match=match) as info:
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
