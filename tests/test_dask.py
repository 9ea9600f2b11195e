"""fastbin.dask: batch prediction on Dask, and what it rests on in the runtime.

First the parts that need no Dask: ``fastbin.runtime.loads`` (a model from its file's bytes,
every hostile-file check of the path loader applied to bytes), ``InferenceModel`` pickling as
its file's bytes, and the import rules (``import fastbin`` never imports Dask; a missing Dask
is an ImportError naming the extra). Then ``fastbin.dask`` on the local schedulers, and on a
``distributed.LocalCluster`` of 2 worker processes on 127.0.0.1 (dashboard off): predictions
equal the local runtime's bit for bit, each worker loads a model once, a worker killed in the
middle of a run still gives complete, correct results, and bad input gets the runtime's error.
Every wait on the cluster has a timeout.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import test_modelfile
import test_runtime
from random_models import randomise

from fastbin import runtime
from fastbin.io.modelfile import ModelFileError, load_arrays, load_arrays_bytes, save_arrays
from fastbin.nn.model import load as nn_load
from fastbin.nn.model import mlp, softmax_regression

ROOT = Path(__file__).resolve().parent.parent
N_IN = 37
#: every wait on the cluster (a result, a worker coming back) is bounded by this many seconds
TIMEOUT = 60

KINDS = {
    "bnn": lambda: mlp([N_IN, 70, 19, 5], binary_weights=True, binary_activations=True),
    "bnn_scaled_centred": lambda: mlp([N_IN, 70, 65, 5], binary_weights=True, binary_activations=True, scale=True,
                                      input_offset=0.25),
    "binary_softmax": lambda: softmax_regression(N_IN, 5, binary_weights=True, scale=True, init="normal",
                                                 input_offset=0.3),
    "mlp_f64": lambda: mlp([N_IN, 19, 5], activation="hardtanh", batch_norm=True, dtype="float64"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(13)
    out = {}
    for name, make in KINDS.items():
        path = tmp_path_factory.mktemp("models") / f"{name}.fbm"
        randomise(make(), rng).save(path)
        out[name] = path
    return out


def _inputs(rng, m):
    u8 = rng.integers(0, 256, (m, N_IN), dtype=np.uint8)
    x = (u8 / 255).astype(np.float32)
    x[: m // 4] = np.round(x[: m // 4])  # exact zeros and ones
    return {"float32": x, "float64": x.astype(np.float64), "uint8": u8}


# fastbin.runtime.loads and pickling (no Dask needed) -----------------------------------------


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("name", sorted(KINDS))
def test_loads_equals_load(files, name, engine, rng):
    data = Path(files[name]).read_bytes()
    want = runtime.load(files[name], engine=engine)
    for source in (data, bytearray(data), memoryview(data)):
        got = runtime.loads(source, engine=engine)
        assert got.engine is want.engine
        for x in _inputs(rng, 40).values():
            np.testing.assert_array_equal(got.logits(x), want.logits(x))


def test_loads_rejects_what_is_not_bytes(files):
    with pytest.raises(TypeError, match="data must be the bytes of a model file, got PosixPath"):
        runtime.loads(files["bnn"])
    with pytest.raises(TypeError, match="data must be the bytes of a model file, got str"):
        load_arrays_bytes(str(files["bnn"]))


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_pickles_as_its_file_bytes(files, engine, rng):
    model = runtime.load(files["bnn_scaled_centred"], engine=engine)
    blob = pickle.dumps(model)
    size = Path(files["bnn_scaled_centred"]).stat().st_size
    assert size < len(blob) < size + 300  # the file's bytes and a few names: no compiled code, no arrays
    assert b"_numba" not in blob and b"NumbaEngine" not in blob  # the engine by name
    back = pickle.loads(blob)
    assert back.engine is model.engine
    for x in _inputs(rng, 33).values():
        np.testing.assert_array_equal(back.logits(x), model.logits(x))
    assert pickle.loads(pickle.dumps(back)).engine is model.engine  # and again


def test_in_memory_model_does_not_pickle(files):
    """A model folded in memory has no file: a clear TypeError (save it, load the file)."""
    model = nn_load(files["bnn"]).to_inference()
    with pytest.raises(TypeError, match=r"not loaded from a model file.*model\.save\(path\)"):
        pickle.dumps(model)


_HOSTILE_CONTAINERS = [
    test_modelfile.test_wrong_magic, test_modelfile.test_versions, test_modelfile.test_truncated_at_several_points,
    test_modelfile.test_extra_bytes_and_flipped_bytes, test_modelfile.test_header_length_bounds,
    test_modelfile.test_bad_payload_values, test_modelfile.test_compressed_files_rejected,
    test_modelfile.test_absurd_shapes_rejected_before_allocation,
]


def _cases(test):
    """``test`` with each of its parametrized argument sets (or none)."""
    marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
    if not marks:
        return [(test, {})]
    names = [n.strip() for n in marks[0].args[0].split(",")]
    return [(test, dict(zip(names, values, strict=True))) for values in marks[0].args[1]]


HOSTILE = [case for test in [*_HOSTILE_CONTAINERS, test_modelfile.test_bad_headers,
                             test_modelfile.test_bad_array_tables] for case in _cases(test)]


@pytest.mark.parametrize("test, params", HOSTILE, ids=[f"{t.__name__}-{i}" for i, (t, _) in enumerate(HOSTILE)])
def test_every_hostile_file_check_applies_to_bytes(test, params, tmp_path, rng, monkeypatch):
    """Each hostile-file test of tests/test_modelfile.py, run again with its loader also
    given the bytes: load_arrays_bytes raises the same ModelFileError, naming ``<bytes>``
    where the path loader names the file, and runtime.loads a ModelFileError too."""
    original, calls = test_modelfile.load_bytes, []

    def load_bytes(tmp_path, data, match):
        info = original(tmp_path, data, match)
        path_message = str(info.value).replace(str(tmp_path / "hostile.fbm"), "<bytes>")
        for source in (data, memoryview(bytearray(data))):
            with pytest.raises(ModelFileError, match=match) as got:
                load_arrays_bytes(source)
            assert str(got.value) == path_message
            with pytest.raises(ModelFileError, match="^<bytes>: "):  # the schema may object first
                runtime.loads(source, engine="numpy")
        calls.append(match)
        return info

    monkeypatch.setattr(test_modelfile, "load_bytes", load_bytes)
    kwargs = {"tmp_path": tmp_path, "rng": rng, "monkeypatch": monkeypatch}
    test(**params, **{k: v for k, v in kwargs.items() if k in test.__code__.co_varnames})
    assert calls, "the hostile test never loaded a file"


_FOLDED = _cases(test_runtime.test_hostile_folded_section)


@pytest.mark.parametrize("change, match", [tuple(params.values()) for _, params in _FOLDED])
def test_hostile_folded_sections_from_bytes(files, tmp_path, change, match):
    """The schema checks of tests/test_runtime.py's hostile files, on bytes."""
    meta, arrays = load_arrays(files["bnn"])
    change(meta, arrays)
    path = tmp_path / "hostile.fbm"
    save_arrays(path, meta, arrays)
    with pytest.raises(ModelFileError, match=match) as from_path:
        runtime.load(path, engine="numpy")
    with pytest.raises(ModelFileError, match=match) as from_bytes:
        runtime.loads(path.read_bytes(), engine="numpy")
    assert str(from_bytes.value) == str(from_path.value).replace(str(path), "<bytes>")


def _python(code):
    env = {**os.environ, "FASTBIN_NO_CACHE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          check=False, timeout=TIMEOUT)


def test_import_fastbin_imports_no_dask():
    out = _python("import sys, fastbin, fastbin.runtime, fastbin.dask\n"
                  "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_missing_dask_is_a_clear_import_error(files):
    code = ("import sys; sys.modules['dask'] = None; sys.modules['dask.array'] = None\n"
            "import numpy as np, fastbin.dask\n"
            "try:\n"
            f"    fastbin.dask.predict({str(files['bnn'])!r}, np.zeros((2, {N_IN}), np.float32))\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert "fastbin.dask needs Dask: pip install 'fastbin[dask]'" in out.stdout


# fastbin.dask on the local schedulers ---------------------------------------------------------


@pytest.fixture(scope="module")
def da():
    pytest.importorskip("dask")
    return pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def fd(da):
    import fastbin.dask

    return fastbin.dask


def test_the_real_dask_inside_fastbin_dask(fd, da):
    """fastbin/dask.py shadows no package: the dask it imports is the installed one."""
    import dask

    assert fd._dask_array() is da
    assert Path(dask.__file__).resolve().parent != (ROOT / "fastbin").resolve()
    assert fd.__name__ == "fastbin.dask" and dask.__name__ == "dask"


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("name", sorted(KINDS))
def test_predict_equals_the_local_runtime(fd, da, files, name, engine, rng):
    model = runtime.load(files[name], engine=engine)
    for kind, x in _inputs(rng, 1000).items():
        for chunks in ((250, N_IN), ((100, 400, 1, 499), N_IN), (300, (20, 17))):
            got = fd.predict(model, da.from_array(x, chunks=chunks))
            assert got.dtype == np.intp and got.chunks[0] == da.from_array(x, chunks=chunks).chunks[0]
            np.testing.assert_array_equal(got.compute(), model.predict(x), err_msg=f"{kind} {chunks}")
        np.testing.assert_array_equal(fd.predict(files[name], x, engine=engine).compute(), model.predict(x))


def test_processes_scheduler(fd, da, files, rng):
    """Through pickling into other processes: same predictions."""
    model = runtime.load(files["bnn"])
    x = _inputs(rng, 600)["uint8"]
    got = fd.predict(model, da.from_array(x, chunks=200)).compute(scheduler="processes", num_workers=2)
    np.testing.assert_array_equal(got, model.predict(x))


def test_the_model_is_in_the_graph_once(fd, da, files, rng):
    """One key holds the model's bytes; 40 chunk tasks refer to it."""
    model = runtime.load(files["bnn_scaled_centred"])
    size = Path(files["bnn_scaled_centred"]).stat().st_size
    graph = dict(fd.predict(model, da.from_array(_inputs(rng, 4000)["uint8"], chunks=100)).__dask_graph__())
    import cloudpickle

    holders = [k for k, v in graph.items() if str(k).startswith("fastbin-model-")]
    assert len(holders) == 1
    blob = cloudpickle.dumps(graph)
    assert blob.count(model.__reduce__()[1][0][16:80]) == 1
    assert len(blob) < size + 4000 * N_IN + 50_000  # the data, one model and the tasks


def test_evaluate(fd, da, files, rng):
    model = runtime.load(files["bnn"])
    x = _inputs(rng, 1000)["float32"]
    y = model.predict(x)
    y[::4] = (y[::4] + 1) % 5
    want = float(np.mean(model.predict(x) == y))
    assert want == 0.75
    assert fd.evaluate(model, da.from_array(x, chunks=300), y) == want
    assert fd.evaluate(model, x, da.from_array(y, chunks=77)) == want
    lazy = fd.evaluate(files["bnn"], da.from_array(x, chunks=300), y, compute=False)
    assert lazy.shape == () and float(lazy.compute()) == want
    with pytest.raises(ValueError, match=r"y must have shape \(1000,\) like x's rows, got \(999,\)"):
        fd.evaluate(model, x, y[:-1])
    with pytest.raises(TypeError, match="y must be integer class indices"):
        fd.evaluate(model, x, y.astype(np.float32))


def test_bad_input_gets_the_runtime_error(fd, da, files, rng):
    model = runtime.load(files["bnn"])
    x = da.from_array(_inputs(rng, 1000)["float32"], chunks=250)
    # checked on the metadata: nothing is computed
    with pytest.raises(ValueError, match=rf"x must have shape \(m, {N_IN}\), got \(1000, 36\)"):
        fd.predict(model, x[:, :36])
    with pytest.raises(ValueError, match=rf"x must have shape \(m, {N_IN}\), got \(1000, {N_IN}, 1\)"):
        fd.predict(model, x[:, :, None])
    with pytest.raises(TypeError, match="x must be float .scaled to .0, 1.. or raw uint8 pixels, got int32"):
        fd.predict(model, x.astype(np.int32))
    with pytest.raises(TypeError, match="x must be a dask.array.Array or a numpy.ndarray, got list"):
        fd.predict(model, [[0.0] * N_IN])
    with pytest.raises(TypeError, match="model must be a fastbin.runtime.InferenceModel or a model file path"):
        fd.predict(object(), x)
    with pytest.raises(TypeError, match="fastbin.dask needs a model loaded from a file"):
        fd.predict(nn_load(files["bnn"]).to_inference(), x)
    with pytest.raises(TypeError, match="engine= is for a model given as a path"):
        fd.predict(model, x, engine="numpy")
    # a NaN in one chunk: the runtime's ValueError at compute, naming the chunk's rows
    bad = _inputs(rng, 1000)["float64"]
    bad[612, 5] = np.nan
    p = fd.predict(model, da.from_array(bad, chunks=250))
    with pytest.raises(ValueError, match=r"x contains NaN or infinity \(in the chunk of rows \[500, 750\)\)"):
        p.compute()
    np.testing.assert_array_equal(p[:500].compute(), model.predict(bad[:500]))  # the other chunks are fine


def test_from_npy_reads_by_chunks(fd, files, tmp_path, rng, monkeypatch):
    model = runtime.load(files["bnn"])
    for kind, x in _inputs(rng, 1000).items():
        path = tmp_path / f"x_{kind}.npy"
        np.save(path, x)
        for order in ("C", "F"):
            if order == "F":
                np.save(path, np.asfortranarray(x))
            arr = fd.from_npy(path, chunk_rows=300)
            assert arr.chunks == ((300, 300, 300, 100), (N_IN,)) and arr.dtype == x.dtype
            np.testing.assert_array_equal(fd.predict(model, arr).compute(), model.predict(x))
    # the graph holds the path, not the data; each chunk task maps the file and copies its rows
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((20_000, N_IN), np.uint8))
    graph = dict(fd.predict(model, fd.from_npy(big, chunk_rows=5000)).__dask_graph__())
    assert len(pickle.dumps(graph)) < 20_000 * N_IN // 4
    opened = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: opened.append(k.get("mmap_mode")) or real_load(*a, **k))
    assert fd.from_npy(big, chunk_rows=5000)[7000:7003].compute().shape == (3, N_IN)
    assert opened and set(opened) == {"r"}
    monkeypatch.undo()
    np.save(tmp_path / "flat.npy", np.zeros(10))
    with pytest.raises(ValueError, match=r"expected a 2-D array \(n, n_in\), got shape \(10,\)"):
        fd.from_npy(tmp_path / "flat.npy")
    with pytest.raises(ValueError, match="chunk_rows must be an int >= 1, got 0"):
        fd.from_npy(big, chunk_rows=0)
    arr = fd.from_npy(big, chunk_rows=5000)
    np.save(big, np.zeros((10, N_IN), np.uint8))  # replaced after the graph was made: a clear error
    with pytest.raises(ValueError, match=r"big.npy changed: now uint8 \(10, 37\), was uint8 \(20000, 37\)"):
        arr.compute()


def test_from_zarr(fd, files, tmp_path, rng):
    zarr = pytest.importorskip("zarr")
    model = runtime.load(files["bnn"])
    x = _inputs(rng, 1000)["uint8"]
    z = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=x.shape, chunks=(128, 16), dtype=x.dtype)
    z[...] = x
    arr = fd.from_zarr(str(tmp_path / "x.zarr"))
    assert arr.chunks[0][0] == 128 and arr.chunks[1] == (N_IN,)
    np.testing.assert_array_equal(fd.predict(model, arr).compute(), model.predict(x))
    arr = fd.from_zarr(z, chunk_rows=400)
    assert arr.chunks == ((400, 400, 200), (N_IN,))
    np.testing.assert_array_equal(fd.predict(model, arr).compute(), model.predict(x))


# On a LocalCluster: 2 worker processes, loopback only -----------------------------------------


@pytest.fixture(scope="module")
def client(da):
    distributed = pytest.importorskip("distributed")
    import logging

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        silence_logs=logging.CRITICAL, scheduler_kwargs={"dashboard": False}, worker_dashboard_address=None,
    )
    client = distributed.Client(cluster, timeout=TIMEOUT)
    try:
        client.wait_for_workers(2, timeout=TIMEOUT)
        yield client
    finally:
        client.close(timeout=TIMEOUT)
        cluster.close(timeout=TIMEOUT)


def _digest(model):
    import hashlib

    return hashlib.sha256(model.__reduce__()[1][0]).hexdigest()


@pytest.mark.network
def test_cluster_predictions_equal_the_local_runtime(fd, da, client, files, rng):
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in client.scheduler_info()["workers"])
    for name, engine in (("bnn_scaled_centred", "numba"), ("mlp_f64", "numpy")):
        model = runtime.load(files[name], engine=engine)
        for x in _inputs(rng, 2000).values():
            got = client.compute(fd.predict(model, da.from_array(x, chunks=500))).result(timeout=TIMEOUT)
            np.testing.assert_array_equal(got, model.predict(x))
        # each worker that ran a chunk loaded the model once, however many chunks and computations
        counts = client.run(fd.load_counts)
        assert {c.get(_digest(model), 0) for c in counts.values()} <= {0, 1}
        assert sum(c.get(_digest(model), 0) for c in counts.values()) >= 1
    x = _inputs(rng, 2000)["uint8"]
    y = model.predict(x)
    accuracy = fd.evaluate(model, da.from_array(x, chunks=500), y, compute=False)
    assert client.compute(accuracy).result(timeout=TIMEOUT) == 1.0


@pytest.mark.network
def test_cluster_from_npy(fd, client, files, tmp_path, rng):
    model = runtime.load(files["bnn"])
    x = _inputs(rng, 2000)["float32"]
    np.save(tmp_path / "x.npy", x)
    got = client.compute(fd.predict(model, fd.from_npy(tmp_path / "x.npy", chunk_rows=500))).result(timeout=TIMEOUT)
    np.testing.assert_array_equal(got, model.predict(x))


@pytest.mark.network
def test_cluster_bad_input(fd, da, client, files, rng):
    model = runtime.load(files["bnn"])
    x = _inputs(rng, 2000)["float32"]
    with pytest.raises(ValueError, match=rf"x must have shape \(m, {N_IN}\), got \(2000, 36\)"):
        fd.predict(model, da.from_array(x[:, :36], chunks=500))
    with pytest.raises(TypeError, match="got int32"):
        fd.predict(model, da.from_array(x.astype(np.int32), chunks=500))
    x[1999, 0] = np.inf
    future = client.compute(fd.predict(model, da.from_array(x, chunks=500)))
    with pytest.raises(ValueError, match=r"x contains NaN or infinity \(in the chunk of rows \[1500, 2000\)\)"):
        future.result(timeout=TIMEOUT)


@pytest.mark.network
def test_worker_killed_mid_run(fd, da, client, files, rng):
    """SIGKILL one worker process while its chunks run: the nanny restarts it, the scheduler
    reruns what was lost, and the result is complete and equal to the local runtime's."""
    model = runtime.load(files["bnn"])
    x = _inputs(rng, 2000)["uint8"]

    def slow(block):  # a local function: cloudpickle ships it by value to the workers
        import time

        time.sleep(0.2)
        return block

    slowed = da.from_array(x, chunks=125).map_blocks(slow, dtype=x.dtype)  # 16 chunks, 0.2 s each
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    future = client.compute(fd.predict(model, slowed))
    deadline = time.monotonic() + TIMEOUT
    while not client.processing(workers=[victim]).get(victim):
        assert time.monotonic() < deadline, "the victim never got a task"
        time.sleep(0.02)
    time.sleep(0.3)  # into the middle of the run: a task or two done, more running
    assert not future.done()
    os.kill(pids[victim], signal.SIGKILL)
    got = future.result(timeout=TIMEOUT)
    np.testing.assert_array_equal(got, model.predict(x))
    client.wait_for_workers(2, timeout=TIMEOUT)  # the nanny brought it back
    assert pids[victim] not in client.run(os.getpid).values()
