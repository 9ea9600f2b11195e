"""Model file container: round trips, size, hostile files, atomic writes."""
import gzip
import hashlib
import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastbin.bits import n_words_for
from fastbin.io import modelfile
from fastbin.io.modelfile import MAGIC, ModelFileError, load_arrays, save_arrays
from fastbin.packed import PackedSigns


def random_packed(rng, rows, n_bits):
    bits = rng.integers(0, 2**64, (rows, n_words_for(n_bits)), dtype=np.uint64, endpoint=False)
    if n_bits % 64:
        bits[:, -1] &= np.uint64((1 << (n_bits % 64)) - 1)
    return PackedSigns(np.ascontiguousarray(bits), n_bits)


def assert_same(a, b):
    if isinstance(a, PackedSigns):
        assert isinstance(b, PackedSigns) and a.n_bits == b.n_bits
        np.testing.assert_array_equal(a.bits, b.bits)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bit-exact, NaN payloads included


# Round trips -------------------------------------------------------------------


def test_round_trip(tmp_path, rng):
    meta = {"format": "fastbin-mlp", "layers": [{"kind": "binary_dense", "n_in": 784, "n_out": 10}],
            "lr": 0.5, "flags": [True, None], "name": "ünïcode ✓"}
    arrays = {
        "w0": random_packed(rng, 10, 784),
        "w1": random_packed(rng, 3, 65),
        "b0": rng.normal(size=10).astype(np.float32),
        "thresholds": rng.integers(-100, 100, 10, dtype=np.int32),
        "flip": rng.integers(0, 2, 10).astype(bool),
        "counts": rng.integers(-(2**62), 2**62, (2, 3), dtype=np.int64),
        "i8": rng.integers(-128, 128, 7, dtype=np.int8),
        "u8": rng.integers(0, 256, (3, 4, 5), dtype=np.uint8),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
        "nan": np.array([np.nan, -np.inf, -0.0], np.float32),
    }
    f = tmp_path / "m.fbm"
    save_arrays(f, meta, arrays)
    meta2, arrays2 = load_arrays(f)
    assert meta2 == meta
    assert list(arrays2) == list(arrays)
    for name in arrays:
        assert_same(arrays[name], arrays2[name])
    for a in arrays2.values():
        bits = a.bits if isinstance(a, PackedSigns) else a
        assert bits.flags.c_contiguous and bits.flags.writeable
        assert bits.size == 0 or bits.ctypes.data % 64 == 0  # (numpy moves empty arrays' pointer)


def test_float_arrays_stored_as_float32(tmp_path, rng):
    x = rng.normal(size=(3, 5))
    save_arrays(tmp_path / "m", {}, {"x64": x, "x16": x.astype(np.float16), "xt": x.T})
    _, out = load_arrays(tmp_path / "m")
    assert out["x64"].dtype == np.float32 and out["x16"].dtype == np.float32
    np.testing.assert_array_equal(out["x64"], x.astype(np.float32))
    np.testing.assert_array_equal(out["xt"], x.T.astype(np.float32))


def test_packed_file_size(tmp_path, rng):
    f = tmp_path / "w.fbm"
    save_arrays(f, {"layers": [{"n_in": 784, "n_out": 10}]}, {"w": random_packed(rng, 10, 784)})
    size = f.stat().st_size
    payload = 10 * 13 * 8
    assert payload < size <= payload + 400, size  # 1040 bits-bytes + header + checksum
    # The same weights as float32 would take 784*10*4 = 31360 bytes.


def test_save_rejects_bad_input(tmp_path, rng):
    f = tmp_path / "m"
    with pytest.raises(TypeError, match="meta must be a dict"):
        save_arrays(f, [], {})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_arrays(f, {"a": object()}, {})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_arrays(f, {"a": float("nan")}, {})
    with pytest.raises(TypeError, match="dtype complex64"):
        save_arrays(f, {}, {"c": np.zeros(2, np.complex64)})
    with pytest.raises(TypeError, match="dtype uint16"):
        save_arrays(f, {}, {"c": np.zeros(2, np.uint16)})
    with pytest.raises(TypeError, match="numpy.ndarray or PackedSigns"):
        save_arrays(f, {}, {"l": [1, 2]})
    with pytest.raises(TypeError, match="names must be non-empty str"):
        save_arrays(f, {}, {1: np.zeros(2)})
    bad = random_packed(rng, 2, 10)
    bad.bits[0, 0] |= np.uint64(1 << 20)
    with pytest.raises(ValueError, match="padding"):
        save_arrays(f, {}, {"w": bad})
    with pytest.raises(ValueError, match="1048576"):
        save_arrays(f, {"big": "x" * (1 << 20)}, {})
    assert not f.exists() and os.listdir(tmp_path) == []


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.one_of(
            hnp.arrays(
                st.sampled_from([np.float32, np.int8, np.int32, np.int64, np.uint8, np.bool_]),
                hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
            ),
            st.tuples(st.integers(0, 4), st.integers(1, 200), st.integers(0, 2**32)),
        ),
        max_size=6,
    ),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(), st.booleans(), st.none()), max_size=4),
)
def test_hypothesis_round_trip(tmp_path_factory, arrays, meta):
    arrays = {
        k: random_packed(np.random.default_rng(v[2]), v[0], v[1]) if isinstance(v, tuple) else v
        for k, v in arrays.items()
    }
    f = tmp_path_factory.mktemp("h") / "m.fbm"
    save_arrays(f, meta, arrays)
    meta2, arrays2 = load_arrays(f)
    assert meta2 == meta and list(arrays2) == list(arrays)
    for name in arrays:
        assert_same(arrays[name], arrays2[name])


# Hostile files -------------------------------------------------------------------


def craft(header, data=b"", *, version=1, magic=MAGIC, header_len=None, checksum=True):
    """A file with an arbitrary header (dict or raw bytes) and a valid SHA-256."""
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    hl = len(hb) if header_len is None else header_len
    body = struct.pack("<8sII", magic, version, hl) + hb
    body += bytes(-len(body) % 64) + data
    return body + (hashlib.sha256(body).digest() if checksum else bytes(32))


def entry(name="a", kind="array", dtype="float32", shape=(2,), offset=0, nbytes=8, **extra):
    return {"name": name, "kind": kind, "dtype": dtype, "shape": list(shape), "offset": offset, "nbytes": nbytes,
            **extra}


def load_bytes(tmp_path, data, match):
    f = tmp_path / "hostile.fbm"
    f.write_bytes(data)
    with pytest.raises(ModelFileError, match=match) as info:
        load_arrays(f)
    assert str(f) in str(info.value)
    return info


def test_crafted_valid_file_loads(tmp_path):
    # The crafting helper itself makes loadable files, so the failures below
    # are due to the one thing each test changes.
    f = tmp_path / "ok"
    f.write_bytes(craft({"meta": {}, "arrays": [entry()]}, np.array([1, 2], "<f4").tobytes()))
    meta, arrays = load_arrays(f)
    np.testing.assert_array_equal(arrays["a"], [1, 2])


def test_wrong_magic(tmp_path):
    load_bytes(tmp_path, craft({"meta": {}, "arrays": []}, magic=b"FBIN\x00XXX"), "not a fastbin model file")
    load_bytes(tmp_path, b"hello world, definitely not a model file" * 3, "not a fastbin model file")
    load_bytes(tmp_path, b"", "truncated")


def test_versions(tmp_path):
    load_bytes(tmp_path, craft({"meta": {}, "arrays": []}, version=2), "version 2 was written by a newer fastbin")
    load_bytes(tmp_path, craft({"meta": {}, "arrays": []}, version=0), "invalid format version 0")


def test_truncated_at_several_points(tmp_path, rng):
    f = tmp_path / "m"
    save_arrays(f, {"k": 1}, {"w": random_packed(rng, 4, 100), "b": np.ones(5, np.float32)})
    good = f.read_bytes()
    for cut in (0, 3, 8, 12, 15, 16, 40, 63, 64, 100, len(good) // 2, len(good) - 33, len(good) - 32, len(good) - 1):
        load_bytes(tmp_path, good[:cut], "truncated|checksum")


def test_extra_bytes_and_flipped_bytes(tmp_path, rng):
    f = tmp_path / "m"
    save_arrays(f, {"k": 1}, {"w": random_packed(rng, 4, 100), "b": np.ones(5, np.float32)})
    good = f.read_bytes()
    load_bytes(tmp_path, good + b"\x00", "checksum")
    for position in (20, 70, len(good) // 2, len(good) - 40, len(good) - 1):
        flipped = bytearray(good)
        flipped[position] ^= 0x01
        load_bytes(tmp_path, bytes(flipped), "checksum")


def test_header_length_bounds(tmp_path):
    load_bytes(tmp_path, craft(b"{}", header_len=(1 << 20) + 1), "exceeds the 1048576-byte limit")
    load_bytes(tmp_path, craft(b'{"meta":{},"arrays":[]}', header_len=5000), "truncated: header of 5000 bytes")


@pytest.mark.parametrize(
    "header,match",
    [
        (b"\xff\xfe not utf-8", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b'{"meta": NaN, "arrays": []}', "not valid JSON"),
        (b'{"meta": {}, "meta": {}, "arrays": []}', "not valid JSON"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
        (b"[]", "exactly the keys"),
        (b'{"meta": {}, "arrays": [], "code": "import os"}', "exactly the keys"),
        (b'{"meta": [], "arrays": []}', "'meta' must be an object"),
    ],
)
def test_bad_headers(tmp_path, header, match):
    load_bytes(tmp_path, craft(header), match)


@pytest.mark.parametrize(
    "table,match",
    [
        ([entry(dtype="object")], "unknown or unsupported dtype 'object'"),
        ([entry(dtype="float64", nbytes=16)], "unsupported dtype 'float64'"),
        ([entry(dtype="uint64", nbytes=16)], "unsupported dtype 'uint64'"),
        ([entry(kind="pickle")], "unknown kind 'pickle'"),
        ([entry(extra=1)], "has keys"),
        ([entry(name="")], "invalid name"),
        ([entry(shape=(-2,))], "invalid shape"),
        ([entry(shape=(2.0,))], "invalid shape"),
        ([entry(shape=(True, 2))], "invalid shape"),
        ([entry(shape=(1,) * 33, nbytes=4)], "invalid shape"),
        ([entry(shape=(3,))], r"shape \[3\] x 4 bytes = 12, but nbytes = 8"),
        ([entry(offset=-8)], "invalid offset"),
        ([entry(offset=64)], "spans bytes"),
        ([entry(offset=10**30)], "spans bytes"),
        ([entry(nbytes=10**30)], "spans bytes"),
        ([entry(), entry(name="b", shape=(1,), nbytes=4, offset=4)], "overlap"),
        ([entry(), entry()], "duplicate array names"),
        ([entry(kind="packed_signs", dtype="uint64", shape=(1, 1), nbytes=8)], "has keys"),
        ([entry(kind="packed_signs", dtype="uint64", shape=(1, 1), nbytes=8, n_bits=65)], "ceil"),
        ([entry(kind="packed_signs", dtype="uint64", shape=(1, 1), nbytes=8, n_bits=0)], "ceil"),
        ([entry(kind="packed_signs", dtype="float32", shape=(1, 2), nbytes=8, n_bits=64)], "unsupported dtype"),
        (["oops"], "not an object"),
    ],
)
def test_bad_array_tables(tmp_path, table, match):
    data = bytes(64)
    load_bytes(tmp_path, craft({"meta": {}, "arrays": table}, data), match)


def test_absurd_shapes_rejected_before_allocation(tmp_path, monkeypatch):
    # Correct checksum, so only the shape checks stand between this header and
    # a 2**120-byte allocation.
    calls = []
    monkeypatch.setattr(modelfile, "aligned_empty", lambda *a, **k: calls.append(a))
    huge = [2**40, 2**40, 2**40]
    load_bytes(tmp_path, craft({"meta": {}, "arrays": [entry(shape=huge, nbytes=2**122)]}, bytes(64)), "larger than")
    load_bytes(tmp_path, craft({"meta": {}, "arrays": [entry(shape=[0, 2**62], nbytes=0)]}, bytes(64)), "larger than")
    load_bytes(tmp_path, craft({"meta": {}, "arrays": [entry(shape=[100, 100], nbytes=40000)]}, bytes(64)),
               "spans bytes")
    packed = entry(kind="packed_signs", dtype="uint64", shape=[2**30, 2**20], nbytes=2**53, n_bits=2**26)
    load_bytes(tmp_path, craft({"meta": {}, "arrays": [packed]}, bytes(64)), "larger than|spans")
    assert calls == []


def test_bad_payload_values(tmp_path):
    data = bytes([0, 1, 2, 0]) + bytes(60)
    load_bytes(tmp_path, craft({"meta": {}, "arrays": [entry(dtype="bool", shape=(4,), nbytes=4)]}, data),
               "bool payload")
    padded = np.array([[2**63]], np.uint64).tobytes() + bytes(56)  # bit 63 set, n_bits=10
    bad = entry(kind="packed_signs", dtype="uint64", shape=(1, 1), nbytes=8, n_bits=10)
    load_bytes(tmp_path, craft({"meta": {}, "arrays": [bad]}, padded), "padding")


def test_compressed_files_rejected(tmp_path, rng):
    f = tmp_path / "m"
    save_arrays(f, {}, {"b": np.ones(5, np.float32)})
    good = f.read_bytes()
    load_bytes(tmp_path, gzip.compress(good), "gzip file.*never compressed")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model.fbm", good)
    load_bytes(tmp_path, buf.getvalue(), "zip archive")
    buf = io.BytesIO()
    np.savez(buf, b=np.ones(3))
    load_bytes(tmp_path, buf.getvalue(), "zip archive")


# Atomic writes -------------------------------------------------------------------


def test_failed_write_leaves_old_file(tmp_path, rng, monkeypatch):
    f = tmp_path / "m.fbm"
    save_arrays(f, {"version": "old"}, {"b": np.ones(3, np.float32)})
    old = f.read_bytes()
    real = modelfile._write_payload
    calls = []

    def failing(fh, hasher, data):
        calls.append(len(data))
        if len(calls) == 3:  # prefix+header, padding, then die in the first payload
            real(fh, hasher, bytes(data)[: len(data) // 2])
            raise OSError("disk full")
        real(fh, hasher, data)

    monkeypatch.setattr(modelfile, "_write_payload", failing)
    with pytest.raises(OSError, match="disk full"):
        save_arrays(f, {"version": "new"}, {"w": random_packed(rng, 50, 1000), "b": np.zeros(3, np.float32)})
    assert len(calls) == 3
    assert f.read_bytes() == old and os.listdir(tmp_path) == ["m.fbm"]
    monkeypatch.setattr(modelfile, "_write_payload", real)
    assert load_arrays(f)[0] == {"version": "old"}


def test_failed_replace_and_interrupt_leave_nothing(tmp_path, monkeypatch):
    f = tmp_path / "m.fbm"

    def boom(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(modelfile.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_arrays(f, {}, {"b": np.ones(3, np.float32)})
    assert os.listdir(tmp_path) == []


def test_overwrite(tmp_path):
    f = tmp_path / "m.fbm"
    save_arrays(f, {"v": 1}, {"a": np.ones(2, np.float32)})
    save_arrays(str(f), {"v": 2}, {})
    assert load_arrays(f) == ({"v": 2}, {})
    assert oct(f.stat().st_mode & 0o777) == "0o644"


# Temporary files of interrupted saves ---------------------------------------------------------------


def _age(path, seconds):
    t = os.path.getmtime(path) - seconds
    os.utime(path, (t, t))


def test_stale_temp_files_of_the_same_target_are_removed(tmp_path):
    f = tmp_path / "m.fbm"
    stale = tmp_path / ".m.fbm.0123456789abcdef.tmp"  # what a killed save leaves behind
    fresh = tmp_path / ".m.fbm.fedcba9876543210.tmp"  # another process's save, still running
    other = tmp_path / ".n.fbm.0123456789abcdef.tmp"  # another target's
    mine = tmp_path / ".m.fbm.notes.tmp"  # not the pattern: never touched
    for p in (stale, fresh, other, mine):
        p.write_bytes(b"partial")
    for p in (stale, other, mine):
        _age(p, modelfile.STALE_TEMP_SECONDS + 60)
    save_arrays(f, {}, {"b": np.ones(3, np.float32)})
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (f, fresh, other, mine))


def test_killed_save_leftover_is_removed_by_the_next_save(tmp_path):
    """SIGKILL mid-write: nothing can clean up then; the next save of the same target does."""
    import signal
    import subprocess
    import sys

    f = tmp_path / "m.fbm"
    script = (
        "import os, signal, numpy as np\n"
        "from fastbin.io import modelfile\n"
        "real = modelfile._write_payload\n"
        "def dying(fh, hasher, data):\n"
        "    real(fh, hasher, data); fh.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "modelfile._write_payload = dying\n"
        f"modelfile.save_arrays({str(f)!r}, {{}}, {{'b': np.ones(1000, np.float32)}})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith(".m.fbm.") and left[0].endswith(".tmp"), left
    save_arrays(f, {"v": 1}, {})  # too recent to be stale: it might be another live save
    assert sorted(os.listdir(tmp_path)) == sorted([left[0], "m.fbm"])
    _age(tmp_path / left[0], modelfile.STALE_TEMP_SECONDS + 1)
    save_arrays(f, {"v": 2}, {})
    assert os.listdir(tmp_path) == ["m.fbm"] and load_arrays(f)[0] == {"v": 2}


def test_check_hook_runs_before_payloads_are_copied(tmp_path, monkeypatch):
    f = tmp_path / "m.fbm"
    save_arrays(f, {"k": 1}, {"b": np.ones(3, np.float32)})
    seen = []

    def check(meta, table):
        seen.append((meta, [(e["name"], e["dtype"], e["shape"]) for e in table]))
        raise ModelFileError("no")

    monkeypatch.setattr(modelfile, "aligned_empty", lambda *a, **k: pytest.fail("allocated before the check"))
    with pytest.raises(ModelFileError, match="no"):
        load_arrays(f, check=check)
    assert seen == [({"k": 1}, [("b", "float32", [3])])]


# What a save may replace, and the modes it leaves (issue 21, item 3) ----------------------------------


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "fifo", "directory"])
def test_save_replaces_only_a_regular_file(tmp_path, kind):
    target, f = tmp_path / "real.fbm", tmp_path / "m.fbm"
    save_arrays(target, {"v": "target"}, {})
    before = target.read_bytes()
    if kind == "symlink":
        f.symlink_to(target)
    elif kind == "dangling symlink":
        f.symlink_to(tmp_path / "nowhere.fbm")
    elif kind == "fifo":
        os.mkfifo(f)
    else:
        f.mkdir()
    what = {"symlink": "a symbolic link", "dangling symlink": "a symbolic link", "fifo": "a FIFO",
            "directory": "a directory"}[kind]
    with pytest.raises(FileExistsError, match=f"refusing to replace {what}: only a regular file is replaced"):
        save_arrays(f, {"v": "new"}, {"b": np.ones(3, np.float32)})
    assert os.path.lexists(f) and f.is_symlink() == kind.endswith("symlink") and f.is_dir() == (kind == "directory")
    assert target.read_bytes() == before  # a link's target is untouched too
    assert sorted(os.listdir(tmp_path)) == sorted(["real.fbm", "m.fbm"])  # no temporary file left


def test_new_file_mode_follows_the_umask_and_a_replaced_file_keeps_its_mode(tmp_path):
    old = os.umask(0o027)
    try:
        new = tmp_path / "new.fbm"
        save_arrays(new, {}, {})
        assert oct(new.stat().st_mode & 0o777) == oct(0o666 & ~0o027)
        kept = tmp_path / "kept.fbm"
        for mode in (0o600, 0o664, 0o640):
            save_arrays(kept, {"mode": mode}, {})
            os.chmod(kept, mode)
            save_arrays(kept, {"again": True}, {"b": np.ones(2, np.float32)})
            assert oct(kept.stat().st_mode & 0o777) == oct(mode)
            assert load_arrays(kept)[0] == {"again": True}
    finally:
        os.umask(old)


# A load reads the size and the bytes from one open file (issue 21, item 4) ----------------------------


def test_load_racing_an_atomic_save_sees_one_whole_file(tmp_path, monkeypatch):
    """A save replacing the file between the loader's size query and its open must not make a
    good file look corrupt: here the replacement happens right after any ``os.path.getsize`` or
    ``os.stat`` of the path (where the old loader asked for the size); the loader must read
    either file whole."""
    f = tmp_path / "m.fbm"
    save_arrays(f, {"v": "small"}, {"a": np.ones(3, np.float32)})
    real_getsize, real_stat, swapped = os.path.getsize, os.stat, []

    def swap():
        if not swapped:
            swapped.append(True)
            save_arrays(f, {"v": "large"}, {"a": np.ones(5000, np.float32)})

    def getsize(path):
        size = real_getsize(path)
        if os.fspath(path) == str(f):
            swap()
        return size

    def stat(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if not isinstance(path, int) and os.fspath(path) == str(f):
            swap()
        return result

    monkeypatch.setattr(os.path, "getsize", getsize)
    monkeypatch.setattr(os, "stat", stat)
    meta, arrays = load_arrays(f)
    assert (meta, arrays["a"].shape) in (({"v": "small"}, (3,)), ({"v": "large"}, (5000,)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_batch_norm_eps_that_is_zero_in_the_model_dtype_is_refused(tmp_path, dtype):
    """Issue 21, item 1: eps > 0 in float64 but 0 in the model's dtype, with a zero running variance
    and gamma on one channel, made the batch-norm factor 0/0 = NaN in the runtime (the bound check
    computed it in float64). Every loader refuses it now; a representable eps still loads."""
    from fastbin import runtime
    from fastbin.nn import load, mlp

    tiny = 1e-50 if dtype == "float32" else 1e-330  # 1e-330 is 0 in float64 as well: JSON keeps it 0.0
    model = mlp([8, 3], binary_weights=True, output_bn=True, dtype=dtype, seed=0)
    layers, meta, arrays = model.file_contents()
    bn = next(j for j, layer in enumerate(layers) if layer["kind"] == "batchnorm")
    arrays[f"{bn}.gamma"][0] = 0
    arrays[f"{bn}.running_var"][0] = 0
    for eps, refused in ((tiny, True), (1e-5, False)):
        meta["layers"][bn]["eps"] = eps
        path = tmp_path / f"eps-{eps}.fbm"
        save_arrays(path, meta, arrays)
        if eps == 0.0:  # float64 underflow: the header check (eps in (0, 1]) refuses it already
            refused = True
        for read in (runtime.load, load):
            if refused:
                with pytest.raises(ModelFileError, match="batch|activations|eps"):
                    read(path)
            else:
                x = np.random.default_rng(0).random((5, 8))
                assert np.isfinite(read(path).logits(x) if read is runtime.load else read(path).forward(x)).all()
