"""Dataset loaders: search order, verification, errors; one_hot; BatchIterator."""
import dataclasses
import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from fastbin.io import datasets as ds
from fastbin.io.datasets import BatchIterator, dataset_source, load_dataset, load_fashion_mnist, load_mnist, one_hot
from fastbin.io.idx import write_idx

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(), reason="apt-get install dataset-fashion-mnist"
)


# mtimes of upstream's gzip headers, recovered by matching the published
# SHA-256: Debian's files carry upstream's deflate streams byte for byte, with
# the gzip header normalised (no file name, mtime of the Debian build).
UPSTREAM_MTIME = {"train": 1504176606, "t10k": 1504176627}


def upstream_bytes(stem: str) -> bytes:
    """Upstream's .gz rebuilt from Debian's: same deflate stream, original header."""
    debian = (DEBIAN / f"{stem}.gz").read_bytes()
    assert debian[:4] == b"\x1f\x8b\x08\x00"  # Debian's header: no file name
    mtime = UPSTREAM_MTIME[stem.split("-")[0]]
    return b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x00\x03" + stem.encode() + b"\x00" + debian[10:]


@needs_debian
def test_debian_files_are_upstream_deflate_streams():
    for info in ds._FASHION.files.values():
        if "labels" in info.stem:  # image files: test_download.py::test_download_real_fashion_mnist (slow)
            assert hashlib.sha256(upstream_bytes(info.stem)).hexdigest() == info.gz_sha256
            assert hashlib.sha256(gzip.decompress(upstream_bytes(info.stem))).hexdigest() == info.content_sha256


def make_dataset(directory, rng, n_train=7, n_test=3, compress=True, label_max=10):
    """Small random IDX files with the real names; returns the arrays."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, label_max, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, label_max, n_test, dtype=np.uint8),
    }
    for stem, a in arrays.items():
        write_idx(directory / (stem + (".gz" if compress else "")), a, compress=compress)
    return arrays


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $FASTBIN_DATA, a private cache dir, and a private 'Debian' dir."""
    monkeypatch.delenv("FASTBIN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    system = tmp_path / "debian"
    for name, spec in list(ds.DATASETS.items()):
        monkeypatch.setitem(ds.DATASETS, name, dataclasses.replace(spec, system_dirs=(str(system),)))
    return tmp_path


def test_cache_dir_follows_platformdirs(isolated):
    assert ds.default_cache_dir() == isolated / "xdg" / "fastbin"


@pytest.mark.parametrize("compress", [True, False])
def test_load_from_path(tmp_path, rng, compress):
    arrays = make_dataset(tmp_path / "d", rng, compress=compress)
    d = load_mnist(tmp_path / "d", download=False, verify=False)
    assert d.name == "mnist" and d.source == f"path: {tmp_path / 'd'}"
    assert d.x_train.shape == (7, 784) and d.x_train.dtype == np.float32
    assert d.x_test.shape == (3, 784) and d.y_test.shape == (3,)
    assert d.y_train.dtype == np.int64
    np.testing.assert_array_equal(d.y_train, arrays["train-labels-idx1-ubyte"])
    expected = arrays["train-images-idx3-ubyte"].reshape(7, 784).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(d.x_train, expected)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    raw = load_mnist(tmp_path / "d", dtype="uint8", download=False, verify=False)
    assert raw.x_train.dtype == np.uint8
    np.testing.assert_array_equal(raw.x_test, arrays["t10k-images-idx3-ubyte"].reshape(3, 784))


def test_search_order(isolated, rng, monkeypatch):
    env, cache, system = isolated / "env", isolated / "xdg" / "fastbin", isolated / "debian"
    a_sys = make_dataset(system, rng, n_train=2)
    load = lambda: load_fashion_mnist(download=False, verify=False)  # noqa: E731
    assert dataset_source("fashion-mnist") == f"debian: {system}"
    assert load().x_train.shape[0] == 2
    make_dataset(cache / "fashion-mnist", rng, n_train=3)
    assert load().source == f"cache: {cache / 'fashion-mnist'}"
    assert load().x_train.shape[0] == 3
    make_dataset(env / "fashion-mnist", rng, n_train=4)
    monkeypatch.setenv("FASTBIN_DATA", str(env))
    assert load().source == f"FASTBIN_DATA: {env / 'fashion-mnist'}"
    assert load().x_train.shape[0] == 4
    make_dataset(isolated / "mine", rng, n_train=5)
    d = load_fashion_mnist(isolated / "mine", download=False, verify=False)
    assert d.x_train.shape[0] == 5 and d.source.startswith("path: ")
    # An incomplete directory is skipped: remove one file from env and cache.
    os.remove(env / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz")
    os.remove(cache / "fashion-mnist" / "train-images-idx3-ubyte.gz")
    d = load()
    assert d.source == f"debian: {system}"
    np.testing.assert_array_equal(d.y_train, a_sys["train-labels-idx1-ubyte"])
    # MNIST never looks in the Fashion-MNIST Debian dir... here both point at
    # `system` through the fixture, so check the real spec instead.
    assert ds._MNIST.system_dirs == ()


def test_missing_everywhere(isolated):
    with pytest.raises(FileNotFoundError, match="no complete copy") as info:
        load_fashion_mnist(download=False)
    assert "download=True" in str(info.value)
    assert dataset_source("fashion-mnist") is None
    with pytest.raises(FileNotFoundError, match=str(isolated / "nowhere")):
        load_mnist(isolated / "nowhere", download=False)


def test_explicit_path_must_be_an_existing_directory(tmp_path):
    typo = tmp_path / "datsets"
    with pytest.raises(FileNotFoundError, match=f"data directory {typo} does not exist"):
        load_mnist(typo, mirrors=[])  # download=True: still nothing is created
    assert not typo.exists()
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(NotADirectoryError, match=f"data directory {regular} is not a directory"):
        load_mnist(regular, mirrors=[])
    with pytest.raises(NotADirectoryError):
        dataset_source("mnist", regular)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert dataset_source("mnist", empty) is None  # an existing, incomplete directory: would download into it


def test_mixed_raw_and_gz(tmp_path, rng):
    arrays = make_dataset(tmp_path, rng, compress=True)
    os.remove(tmp_path / "t10k-images-idx3-ubyte.gz")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", arrays["t10k-images-idx3-ubyte"])
    d = load_mnist(tmp_path, download=False, verify=False, dtype="uint8")
    np.testing.assert_array_equal(d.x_test.reshape(3, 28, 28), arrays["t10k-images-idx3-ubyte"])


def test_verify_rejects_unknown_files(tmp_path, rng):
    make_dataset(tmp_path, rng)
    with pytest.raises(ValueError, match="SHA-256 does not match.*verify=False"):
        load_fashion_mnist(tmp_path, download=False)


def test_count_mismatch(tmp_path, rng):
    make_dataset(tmp_path, rng)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(6, np.uint8), compress=True)
    with pytest.raises(ValueError, match="7 images but 6 labels"):
        load_mnist(tmp_path, download=False, verify=False)


def test_label_out_of_range(tmp_path, rng):
    make_dataset(tmp_path, rng)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 10], np.uint8), compress=True)
    with pytest.raises(ValueError, match="label 10 out of range"):
        load_mnist(tmp_path, download=False, verify=False)


def test_wrong_image_shape_and_ndim(tmp_path, rng):
    make_dataset(tmp_path, rng)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((7, 28, 27), np.uint8), compress=True)
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28\)"):
        load_mnist(tmp_path, download=False, verify=False)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((7, 784), np.uint8), compress=True)
    with pytest.raises(ValueError, match="expected a 3-D"):
        load_mnist(tmp_path, download=False, verify=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="dtype must be"):
        load_mnist(tmp_path, dtype="float64", download=False)


@needs_debian
def test_raw_files_verify_on_content_digest(tmp_path):
    info = ds._FASHION.files["y_test"]
    raw = gzip.decompress((DEBIAN / f"{info.stem}.gz").read_bytes())
    (tmp_path / info.stem).write_bytes(raw)
    assert ds._load_file(tmp_path / info.stem, info, verify=True).shape == (10000,)
    changed = bytearray(raw)
    changed[-1] = (changed[-1] + 1) % 10  # still a valid label file, different data
    (tmp_path / info.stem).write_bytes(bytes(changed))
    with pytest.raises(ValueError, match="SHA-256 does not match"):
        ds._load_file(tmp_path / info.stem, info, verify=True)


@needs_debian
def test_debian_label_files_verify():
    # Fast: only the small label files. Debian's .gz headers differ from
    # upstream's, so these pass on the decompressed-content digest.
    for role in ("y_train", "y_test"):
        info = ds._FASHION.files[role]
        f = DEBIAN / f"{info.stem}.gz"
        assert hashlib.sha256(f.read_bytes()).hexdigest() != info.gz_sha256
        y = ds._load_file(f, info, verify=True)
        assert y.shape == info.shape and np.bincount(y).tolist() == [info.shape[0] // 10] * 10


@needs_debian
@pytest.mark.slow
def test_real_fashion_mnist(isolated, monkeypatch):
    monkeypatch.setitem(ds.DATASETS, "fashion-mnist", ds._FASHION)
    d = load_fashion_mnist(download=False)
    assert d.source == f"debian: {DEBIAN}"
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.x_train.dtype == np.float32 and d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert d.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert np.bincount(d.y_test).tolist() == [1000] * 10
    raw = load_fashion_mnist(download=False, dtype="uint8")
    np.testing.assert_array_equal(raw.x_train.astype(np.float32) / np.float32(255), d.x_train)


# one_hot ----------------------------------------------------------------------


def test_one_hot():
    out = one_hot(np.array([2, 0, 1]), 3)
    np.testing.assert_array_equal(out, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert out.dtype == np.float32
    assert one_hot(np.array([9], np.uint8), dtype=np.float64).shape == (1, 10)
    assert one_hot(np.array([], np.int64), 4).shape == (0, 4)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        one_hot(np.array([3]), 3)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        one_hot(np.array([-1]), 3)
    with pytest.raises(TypeError, match="integer class indices"):
        one_hot(np.array([1.0]), 3)
    with pytest.raises(ValueError, match="n_classes"):
        one_hot(np.array([0]), 0)


# BatchIterator ------------------------------------------------------------------


def _data(n=10):
    return np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n)


def test_next_batch_is_reproducible():
    x, y = _data()
    a, b, c = BatchIterator(x, y, 3, seed=1), BatchIterator(x, y, 3, seed=1), BatchIterator(x, y, 3, seed=2)
    batches_a = [a.next_batch() for _ in range(12)]
    batches_b = [b.next_batch() for _ in range(12)]
    batches_c = [c.next_batch() for _ in range(12)]
    for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(ya, yc) for (_, ya), (_, yc) in zip(batches_a, batches_c))
    for xb, yb in batches_a:
        np.testing.assert_array_equal(xb, x[yb])  # rows stay paired


def test_next_batch_epoch_semantics():
    x, y = _data(10)
    it = BatchIterator(x, y, 4, seed=0)
    seen = np.concatenate([it.next_batch()[1] for _ in range(5)])  # 20 rows = 2 epochs
    # Each epoch is a permutation: first 10 and last 10 each cover every row.
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    # The third batch crosses the boundary: 2 old rows + 2 new ones.
    assert it.epochs_completed == 1
    it.next_batch()
    assert it.epochs_completed == 2
    # It reshuffles: the two epochs are (almost surely) different orders.
    assert list(seen[:10]) != list(seen[10:])


def test_epoch_iteration():
    x, y = _data(10)
    it = BatchIterator(x, y, 4, seed=3)
    assert len(it) == 3
    batches = list(it.epoch())
    assert [b[1].shape[0] for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate([b[1] for b in batches])) == list(range(10))
    assert [b[1].shape[0] for b in it.epoch(drop_last=True)] == [4, 4]
    again = list(BatchIterator(x, y, 4, seed=3).epoch())
    for (_, ya), (_, yb) in zip(batches, again):
        np.testing.assert_array_equal(ya, yb)


def test_batch_iterator_errors():
    x, y = _data(5)
    with pytest.raises(ValueError, match="first axis"):
        BatchIterator(x, y[:4], 2)
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 5\]"):
        BatchIterator(x, y, 6)
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator(x, y, 0)
    with pytest.raises(ValueError, match="empty"):
        BatchIterator(x[:0], y[:0], 1)


def test_verified_gzip_is_not_decompressed_past_the_published_shape(tmp_path, monkeypatch):
    """Issue 21, item 7: with a content digest to check, a gzip IDX file must declare exactly the
    published shape before anything is decompressed: a 50 KB bomb declaring 60,001 images is refused
    at its header, not inflated to 47 MB first."""
    import zlib

    from fastbin.io.idx import IdxError

    info = ds._FASHION.files["x_train"]
    bomb = tmp_path / f"{info.stem}.gz"
    bomb.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">III", 60001, 28, 28) + bytes(60001 * 784)))
    assert bomb.stat().st_size < 100_000
    inflated = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *args, **kwargs):
            self._d = real(*args, **kwargs)

        def decompress(self, data, max_length=0):
            out = self._d.decompress(data, max_length)
            inflated.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self._d, name)

    monkeypatch.setattr(zlib, "decompressobj", Counting)  # the one gzip.GzipFile uses
    with pytest.raises(IdxError, match=r"header declares \(60001, 28, 28\).*SHA-256 does not match.*verify=False"):
        ds._load_file(bomb, info, verify=True)
    assert sum(inflated) < 1 << 20, sum(inflated)
