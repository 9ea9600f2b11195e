"""Batch prediction and evaluation on Dask, from chunked data on disk.

>>> import fastbin.dask as fd
>>> x = fd.from_npy("x_test.npy", chunk_rows=10_000)  # memory-mapped, read chunk by chunk
>>> fd.predict("bnn.fbm", x).compute()                # or fd.evaluate("bnn.fbm", x, y) -> accuracy

``x`` is a Dask array (n, n_in), float (scaled to [0, 1]) or raw uint8,
chunked by rows (a NumPy array is wrapped, :data:`DEFAULT_CHUNK_ROWS` rows a
chunk). Each chunk runs ``InferenceModel.predict`` of :mod:`fastbin.runtime`,
so the results equal the local runtime's, bit for bit, on any scheduler (the
threaded default, processes, or a ``distributed`` cluster).

How the model travels: the graph holds it once, as one key whose value is
the model file's bytes and the engine's name (never compiled code); every
chunk task depends on that key, so ``distributed`` ships the bytes to each
worker once per computation. A worker loads (checks and folds) a model once
per process, keyed by the SHA-256 of its bytes, and keeps it for later
computations (:func:`load_counts` tells how many loads a process did); its
engine compiles there, or loads Numba's on-disk cache.

Checks: ``x``'s width and dtype are checked on the Dask array's metadata
before anything runs, with the runtime's messages
(``fastbin._validate.check_model_input``); a float chunk holding NaN or
infinity raises ``ValueError`` when it is computed, naming its rows (the
runtime itself does not scan for NaN: a sign stage would map it to +1).

Needs the ``dask`` extra (``pip install 'fastbin[dask]'``: ``dask[array]``
and ``distributed``), imported on first use: ``import fastbin`` and ``import
fastbin.dask`` do not import Dask. Zarr input (:func:`from_zarr`) also needs
``zarr``.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter, OrderedDict

import numpy as np

from fastbin._validate import check_finite, check_model_input
from fastbin.runtime import InferenceModel, load, loads

__all__ = ["DEFAULT_CHUNK_ROWS", "evaluate", "from_npy", "from_zarr", "load_counts", "predict"]

#: Rows per chunk when fastbin.dask chunks an array itself (a NumPy ``x``, :func:`from_npy`).
DEFAULT_CHUNK_ROWS = 16_384
#: Models kept per process (most recently used); a worker that sees more reloads the oldest.
MODEL_CACHE_SIZE = 8

_EXTRA = "fastbin.dask needs Dask: pip install 'fastbin[dask]' (dask[array] and distributed)"


def _dask_array():
    """``dask.array``, or an ImportError naming the extra."""
    try:
        import dask.array as da
    except ImportError as exc:
        raise ImportError(f"{_EXTRA} ({exc})") from exc
    return da


# The model, shipped as its file bytes and loaded once per process -----------------------------

_LOCK = threading.Lock()
_MODELS: OrderedDict = OrderedDict()  # (digest, engine) -> InferenceModel
_LOADS: Counter = Counter()  # digest -> loads in this process


def load_counts() -> dict:
    """SHA-256 hex digest of a model file -> how many times this process loaded it for
    fastbin.dask (1 per process unless the model cache evicted it). On a cluster:
    ``client.run(fastbin.dask.load_counts)``."""
    with _LOCK:
        return dict(_LOADS)


class _ShippedModel:
    """What the graph holds: a model file's bytes and its engine (a registered engine's
    name, or an engine class, pickled by reference), plus ``n_in``/``dtype`` for the checks.
    Pickles as those; :meth:`model` loads it once per process."""

    __slots__ = ("data", "engine", "digest", "n_in", "dtype")

    def __init__(self, data: bytes, engine, n_in: int, dtype):
        self.data, self.engine, self.n_in, self.dtype = data, engine, int(n_in), np.dtype(dtype)
        self.digest = hashlib.sha256(data).hexdigest()

    @property
    def key(self):
        engine = self.engine
        return self.digest, engine if isinstance(engine, str) else f"{engine.__module__}.{engine.__qualname__}"

    def __reduce__(self):
        return _ShippedModel, (self.data, self.engine, self.n_in, self.dtype.str)

    def __dask_tokenize__(self):
        return "fastbin.dask.model", self.key

    def model(self) -> InferenceModel:
        with _LOCK:
            model = _MODELS.get(self.key)
            if model is None:
                # under the lock: threads of one worker wait for the one load
                model = loads(self.data, engine=self.engine)
                _LOADS[self.digest] += 1
                self._keep(model)
            else:
                _MODELS.move_to_end(self.key)
        return model

    def _keep(self, model):
        """Cache ``model`` under this key (lock held)."""
        _MODELS[self.key] = model
        while len(_MODELS) > MODEL_CACHE_SIZE:
            _MODELS.popitem(last=False)

    @classmethod
    def of(cls, model, engine=None) -> _ShippedModel:
        """From an ``InferenceModel`` loaded from a file (``engine`` must then be None) or
        a model file's path. The model itself is cached in this process too, so the
        threaded scheduler runs it without loading it again."""
        if isinstance(model, (str, os.PathLike)):
            model = load(model, engine=engine)
        elif not isinstance(model, InferenceModel):
            raise TypeError(f"model must be a fastbin.runtime.InferenceModel or a model file path, "
                            f"got {type(model).__name__}")
        elif engine is not None:
            raise TypeError("engine= is for a model given as a path; this InferenceModel already has one")
        try:
            _, (data, engine) = model.__reduce__()  # the file's bytes, the engine's name
        except TypeError:
            raise TypeError("fastbin.dask needs a model loaded from a file (fastbin.runtime.load(path)), so "
                            "that workers can load it from its bytes; this InferenceModel was made in memory: "
                            "save the trained model and pass the path") from None
        shipped = cls(data, engine, model.n_in, model.dtype)
        with _LOCK:
            if shipped.key not in _MODELS:
                shipped._keep(model)
        return shipped


# Chunk tasks ----------------------------------------------------------------------------------


def _predict_block(block, shipped: _ShippedModel, block_info=None):
    model = shipped.model()
    try:
        check_finite("x", block)
    except ValueError as exc:
        location = (block_info or {}).get(0, {}).get("array-location")
        if location:
            start, stop = location[0]
            raise ValueError(f"{exc} (in the chunk of rows [{start}, {stop}))") from None
        raise
    return model.predict(block)


# The public functions -------------------------------------------------------------------------


def _as_dask_rows(x, name="x"):
    """``x`` as a Dask array; a NumPy array is chunked by :data:`DEFAULT_CHUNK_ROWS` rows."""
    da = _dask_array()
    if isinstance(x, da.Array):
        return x
    if isinstance(x, np.ndarray):
        return da.from_array(x, chunks=(DEFAULT_CHUNK_ROWS,) + (-1,) * (x.ndim - 1) if x.ndim else ())
    raise TypeError(f"{name} must be a dask.array.Array or a numpy.ndarray, got {type(x).__name__}")


def _check_meta(x, n_in, dtype):
    """The runtime's input check on ``x``'s metadata (shape and dtype, no data), with the
    runtime's message for the real shape."""
    probe = np.empty(tuple(0 if i == 0 or s != s else s for i, s in enumerate(x.shape)), x.dtype)
    try:
        check_model_input(probe, n_in, dtype)
    except ValueError as exc:
        raise ValueError(str(exc).replace(str(probe.shape), str(x.shape))) from None


def predict(model, x, *, engine=None):
    """Predicted classes of the rows of ``x``: a lazy Dask array (n,) of int64, chunked
    like ``x``'s rows, each chunk ``model.predict(chunk)``.

    ``model``: an ``InferenceModel`` from ``fastbin.runtime.load``/``loads``, or a model
    file's path (loaded with ``engine``). ``x``: a Dask array (n, n_in), float or uint8 (a
    NumPy array is wrapped); chunks across columns are merged. ``ValueError``/``TypeError``
    (the runtime's) for a wrong width or dtype, here, before anything is computed."""
    da = _dask_array()
    shipped = _ShippedModel.of(model, engine)
    x = _as_dask_rows(x)
    _check_meta(x, shipped.n_in, shipped.dtype)
    if len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    import dask

    ref = dask.delayed(shipped, name="fastbin-model-" + "-".join(shipped.key))
    return da.map_blocks(_predict_block, x, ref, drop_axis=1, dtype=np.intp, meta=np.empty((0,), np.intp),
                         token="fastbin-predict")


def evaluate(model, x, y, *, engine=None, compute=True, **compute_kwargs):
    """Accuracy of ``model`` on rows ``x`` with labels ``y`` (integer class indices (n,), a
    Dask or NumPy array): the fraction of rows where ``predict(model, x)`` equals ``y``.
    Computed (``dask.compute(..., **compute_kwargs)``) and returned as a float; with
    ``compute=False``, the lazy 0-d Dask array."""
    da = _dask_array()
    pred = predict(model, x, engine=engine)
    y = _as_dask_rows(y, "y")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise TypeError(f"y must be integer class indices of shape (n,), got {y.dtype} {y.shape}")
    n = pred.shape[0]
    if n == n and y.shape[0] == y.shape[0] and y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) like x's rows, got {y.shape}")
    if n == 0:
        raise ValueError("x has no rows: the accuracy of nothing is undefined")
    if y.chunks[0] != pred.chunks[0] and n == n:
        y = y.rechunk((pred.chunks[0],))
    accuracy = da.mean(pred == y)
    if not compute:
        return accuracy
    import dask

    (value,) = dask.compute(accuracy, **compute_kwargs)
    return float(value)


# Inputs from disk -----------------------------------------------------------------------------


class _NpyRows:
    """A 2-D ``.npy`` file as an array-like for ``dask.array.from_array``: pickles as its
    path, shape and dtype; each read memory-maps the file and copies the rows asked for
    (so a worker reads only its chunks; the path must be readable on every worker)."""

    ndim = 2

    def __init__(self, path: str, shape: tuple, dtype: np.dtype):
        self.path, self.shape, self.dtype = path, tuple(shape), np.dtype(dtype)

    def __getitem__(self, index):
        mm = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if mm.shape != self.shape or mm.dtype != self.dtype:
            raise ValueError(f"{self.path} changed: now {mm.dtype} {mm.shape}, was {self.dtype} {self.shape}")
        return np.ascontiguousarray(mm[index])

    def __dask_tokenize__(self):
        st = os.stat(self.path)
        return "fastbin.dask.npy", self.path, self.shape, self.dtype.str, st.st_mtime_ns, st.st_size


def _row_chunks(chunk_rows):
    if chunk_rows is None:
        return DEFAULT_CHUNK_ROWS
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be an int >= 1, got {chunk_rows!r}")
    return int(chunk_rows)


def from_npy(path, *, chunk_rows=None):
    """A 2-D ``.npy`` file as a Dask array chunked by ``chunk_rows`` rows (default
    :data:`DEFAULT_CHUNK_ROWS`), without loading it: only the header is read here, and each
    chunk task memory-maps the file and copies its rows. The path must be readable by
    every worker (a shared file system). ``ValueError`` for a file that is not 2-D;
    NumPy's errors for one that is not a ``.npy`` (object arrays are never unpickled)."""
    da = _dask_array()
    rows = _row_chunks(chunk_rows)
    path = os.path.abspath(os.fspath(path))
    mm = np.load(path, mmap_mode="r", allow_pickle=False)
    if mm.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array (n, n_in), got shape {mm.shape}")
    from dask.base import tokenize

    source = _NpyRows(path, mm.shape, mm.dtype)
    del mm
    return da.from_array(source, chunks=(rows, -1), meta=np.empty((0, 0), source.dtype), asarray=False,
                         name=f"fastbin-npy-{tokenize(source)}")


def from_zarr(source, *, component=None, chunk_rows=None):
    """A 2-D Zarr array (a path, URL, store or ``zarr.Array``; ``component``: the array
    inside a group) as a Dask array chunked by rows: ``chunk_rows`` rows a chunk (default:
    the stored chunks' rows), all columns in one chunk. Read chunk by chunk by the
    workers (``dask.array.from_zarr``). Needs ``zarr``."""
    da = _dask_array()
    try:
        import zarr  # noqa: F401  (dask.array.from_zarr imports it too; this gives the clear message)
    except ImportError as exc:
        raise ImportError(f"fastbin.dask.from_zarr needs zarr: pip install zarr ({exc})") from exc
    x = da.from_zarr(source, component=component)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D Zarr array (n, n_in), got shape {x.shape}")
    rows = x.chunks[0][0] if chunk_rows is None and x.chunks[0] else _row_chunks(chunk_rows)
    if x.chunks[0][:-1] != (rows,) * (len(x.chunks[0]) - 1) or len(x.chunks[1]) > 1:
        x = x.rechunk((rows, -1))
    return x
