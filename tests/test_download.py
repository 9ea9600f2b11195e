"""Downloads against a loopback HTTP server on 127.0.0.1 (never the internet)."""
import dataclasses
import gzip
import hashlib
import http.server
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_datasets import isolated, make_dataset, needs_debian, upstream_bytes  # noqa: F401 (fixture)

from fastbin.io import datasets as ds
from fastbin.io.datasets import load_fashion_mnist, load_mnist
from fastbin.io.download import DownloadError, download_file

pytestmark = pytest.mark.network

class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    hits: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server API)
        self.hits.append(self.path)
        mode, _, name = self.path.lstrip("/").partition("/")
        data = self.files.get(name)
        if data is None or mode not in ("ok", "short", "drip"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            if mode == "drip":  # one byte every 0.1 s: never idle long enough for a per-read timeout
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.1)
            elif mode == "short":  # promise everything, send half, hang up
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
            else:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    """(base_url, files dict, hits list); serves /ok/<name>, /short/<name> and /drip/<name>."""
    handler = type("Handler", (_Handler,), {"files": {}, "hits": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.files, handler.hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _leftovers(directory: Path):
    return sorted(p.name for p in directory.iterdir())


def test_download_good_file(server, tmp_path):
    base, files, _ = server
    files["a.gz"] = b"hello" * 1000
    used = download_file([f"{base}/ok/a.gz"], tmp_path / "a.gz", hashlib.sha256(files["a.gz"]).hexdigest(), timeout=10)
    assert used == f"{base}/ok/a.gz"
    assert (tmp_path / "a.gz").read_bytes() == files["a.gz"]
    assert _leftovers(tmp_path) == ["a.gz"]


def test_bad_checksum_leaves_nothing(server, tmp_path):
    base, files, _ = server
    files["a.gz"] = b"tampered"
    with pytest.raises(DownloadError, match="does not match the expected"):
        download_file([f"{base}/ok/a.gz"], tmp_path / "a.gz", "0" * 64, timeout=10)
    assert _leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_nothing(server, tmp_path):
    base, files, _ = server
    files["a.gz"] = bytes(range(256)) * 400
    digest = hashlib.sha256(files["a.gz"]).hexdigest()
    with pytest.raises(DownloadError, match=r"connection closed after 51200 of 102400 bytes"):
        download_file([f"{base}/short/a.gz"], tmp_path / "a.gz", digest, timeout=10)
    assert _leftovers(tmp_path) == []


def test_interrupted_download_keeps_previous_file(server, tmp_path):
    base, files, _ = server
    files["a.gz"] = b"new content" * 100
    (tmp_path / "a.gz").write_bytes(b"old")
    with pytest.raises(DownloadError):
        download_file([f"{base}/short/a.gz"], tmp_path / "a.gz", hashlib.sha256(files["a.gz"]).hexdigest(), timeout=10)
    assert (tmp_path / "a.gz").read_bytes() == b"old"
    assert _leftovers(tmp_path) == ["a.gz"]


def test_server_down(dead_url, tmp_path):
    with pytest.raises(DownloadError, match=r"(?s)are you offline.*URLError.*Connection refused") as info:
        download_file([f"{dead_url}/ok/a.gz"], tmp_path / "a.gz", "0" * 64, timeout=5)
    assert "$FASTBIN_DATA" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_falls_back_to_next_mirror(server, dead_url, tmp_path):
    base, files, hits = server
    files["a.gz"] = b"payload"
    urls = [f"{dead_url}/ok/a.gz", f"{base}/missing/a.gz", f"{base}/ok/a.gz"]
    assert download_file(urls, tmp_path / "a.gz", hashlib.sha256(b"payload").hexdigest(), timeout=5) == urls[2]
    assert hits == ["/missing/a.gz", "/ok/a.gz"]


def test_size_cap(server, tmp_path):
    base, files, _ = server
    files["a.gz"] = bytes(5000)
    with pytest.raises(DownloadError, match="more than the 1000 cap"):
        download_file([f"{base}/ok/a.gz"], tmp_path / "a.gz", "0" * 64, timeout=10, max_bytes=1000)
    assert _leftovers(tmp_path) == []


def _serve_dataset(directory, files):
    """Serve every file in ``directory``; returns {stem: (sha256, shape)}."""
    published = {}
    for p in Path(directory).iterdir():
        files[p.name] = p.read_bytes()
        shape = gzip.decompress(files[p.name])[4:]
        stem = p.name[: -len(".gz")]
        shape = struct.unpack(">III" if "images" in stem else ">I", shape[: 12 if "images" in stem else 4])
        published[stem] = (hashlib.sha256(files[p.name]).hexdigest(), shape)
    return published


def _spec_with_digests(spec, published):
    """``spec`` with the served files' digests and shapes as the published ones."""
    new_files = {
        role: dataclasses.replace(
            info, gz_sha256=published[info.stem][0], content_sha256=None, shape=published[info.stem][1]
        )
        for role, info in spec.files.items()
    }
    return dataclasses.replace(spec, files=new_files)


def test_loader_downloads_into_cache_then_reuses_it(server, isolated, rng, monkeypatch):  # noqa: F811
    base, files, hits = server
    arrays = make_dataset(isolated / "upstream", rng, n_train=9, n_test=4)
    digests = _serve_dataset(isolated / "upstream", files)
    monkeypatch.setitem(ds.DATASETS, "mnist", _spec_with_digests(ds.DATASETS["mnist"], digests))
    d = load_mnist(mirrors=[f"{base}/ok/"], timeout=10)
    cache = isolated / "xdg" / "fastbin" / "mnist"
    assert d.source == f"downloaded from {base}/ok into cache: {cache}"
    assert _leftovers(cache) == sorted(files)
    np.testing.assert_array_equal(d.y_train, arrays["train-labels-idx1-ubyte"])
    assert len(hits) == 4
    again = load_mnist(mirrors=[f"{base}/ok/"], timeout=10)
    assert again.source == f"cache: {cache}" and len(hits) == 4
    np.testing.assert_array_equal(again.x_test, d.x_test)


def test_loader_downloads_only_missing_files(server, isolated, rng, monkeypatch):  # noqa: F811
    base, files, hits = server
    make_dataset(isolated / "upstream", rng)
    digests = _serve_dataset(isolated / "upstream", files)
    monkeypatch.setitem(ds.DATASETS, "mnist", _spec_with_digests(ds.DATASETS["mnist"], digests))
    cache = isolated / "xdg" / "fastbin" / "mnist"
    cache.mkdir(parents=True)
    (cache / "train-images-idx3-ubyte.gz").write_bytes(files["train-images-idx3-ubyte.gz"])
    load_mnist(mirrors=[f"{base}/ok"], timeout=10)
    assert sorted(hits) == sorted(f"/ok/{n}" for n in files if not n.startswith("train-images"))


def test_loader_bad_checksum_and_offline(server, dead_url, isolated, rng):  # noqa: F811
    base, files, _ = server
    make_dataset(isolated / "upstream", rng)
    _serve_dataset(isolated / "upstream", files)  # real MNIST digests: all mismatch
    with pytest.raises(DownloadError, match="does not match"):
        load_mnist(mirrors=[f"{base}/ok"], timeout=10)
    with pytest.raises(DownloadError, match="URLError"):
        load_mnist(mirrors=[dead_url], timeout=5)
    cache = isolated / "xdg" / "fastbin" / "mnist"
    assert _leftovers(cache) == []


def test_mirrors_from_the_environment(server, dead_url, isolated, rng, monkeypatch):  # noqa: F811
    base, files, hits = server
    arrays = make_dataset(isolated / "upstream", rng)
    digests = _serve_dataset(isolated / "upstream", files)
    monkeypatch.setitem(ds.DATASETS, "mnist", _spec_with_digests(ds.DATASETS["mnist"], digests))
    real = ds.download_file

    def loopback_only(urls, *args, **kwargs):
        urls = list(urls)
        assert all(u.startswith("http://127.0.0.1:") for u in urls), urls
        return real(urls, *args, **kwargs)

    monkeypatch.setattr(ds, "download_file", loopback_only)
    monkeypatch.setenv("FASTBIN_MIRRORS", f"{dead_url}/ok, {base}/ok")  # commas and/or spaces; in order
    d = load_mnist(timeout=10)
    assert d.source.startswith(f"downloaded from {base}/ok into cache: ")
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert len(hits) == 4


def test_failed_download_says_where_it_looked_and_what_to_do(dead_url, isolated):  # noqa: F811
    with pytest.raises(DownloadError) as info:
        load_fashion_mnist(mirrors=[dead_url], timeout=5)
    first = str(info.value).splitlines()[0]
    assert first.startswith("fashion-mnist not found (no complete copy in ")
    assert str(isolated / "debian") in first and str(isolated / "xdg" / "fastbin" / "fashion-mnist") in first
    assert "Connection refused" in first and "sudo apt-get install dataset-fashion-mnist" in first
    assert "$FASTBIN_DATA/fashion-mnist/" in first and "--data-dir" in first
    assert info.value.reasons and all(r.startswith(dead_url) and "Connection refused" in r for r in info.value.reasons)
    assert isinstance(info.value, OSError)
    assert _leftovers(isolated / "xdg" / "fastbin" / "fashion-mnist") == []


@needs_debian
@pytest.mark.slow
def test_download_real_fashion_mnist(server, isolated):  # noqa: F811
    base, files, _ = server
    for info in ds._FASHION.files.values():
        files[f"{info.stem}.gz"] = upstream_bytes(info.stem)
        assert hashlib.sha256(files[f"{info.stem}.gz"]).hexdigest() == info.gz_sha256
    d = load_fashion_mnist(mirrors=[f"{base}/ok"], timeout=30, dtype="uint8")
    assert d.source.startswith(f"downloaded from {base}/ok into cache: ")
    assert d.x_train.shape == (60000, 784) and d.y_test.shape == (10000,)
    # Downloaded files pass on their .gz digest.
    cache = isolated / "xdg" / "fastbin" / "fashion-mnist"
    for info in ds._FASHION.files.values():
        assert hashlib.sha256((cache / f"{info.stem}.gz").read_bytes()).hexdigest() == info.gz_sha256


def test_a_dripping_server_meets_the_overall_deadline(server, tmp_path):
    """Issue 21, item 7: a byte every 0.1 s never trips the 10 s per-read timeout; the overall
    deadline ends the download, and nothing is left behind."""
    base, files, _ = server
    files["a.gz"] = bytes(200)  # 20 s at the server's pace
    with pytest.raises(DownloadError, match=r"no complete file within the 1(\.0)? s deadline"):
        download_file([f"{base}/drip/a.gz"], tmp_path / "a.gz", hashlib.sha256(files["a.gz"]).hexdigest(),
                      timeout=10, deadline=1.0)
    assert _leftovers(tmp_path) == []


def test_part_files_of_a_killed_download_are_removed_by_the_next(server, tmp_path):
    """Issue 21, item 7: a download killed outright leaves its ``.part`` file; the next download of the
    same target deletes it once it is old enough that no download still writes it."""
    import os

    from fastbin.io.atomic import STALE_TEMP_SECONDS

    base, files, _ = server
    files["a.gz"] = b"payload"
    stale = tmp_path / ".a.gz.0123456789abcdef.part"
    fresh = tmp_path / ".a.gz.fedcba9876543210.part"  # another download, still running
    other = tmp_path / ".b.gz.0123456789abcdef.part"  # another target's
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    for p in (stale, other):
        t = p.stat().st_mtime - STALE_TEMP_SECONDS - 60
        os.utime(p, (t, t))
    download_file([f"{base}/ok/a.gz"], tmp_path / "a.gz", hashlib.sha256(b"payload").hexdigest(), timeout=10)
    assert _leftovers(tmp_path) == sorted(["a.gz", fresh.name, other.name])
