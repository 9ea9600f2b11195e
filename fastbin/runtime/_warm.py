"""The numba engine's first predictions on a cold Numba cache: the numpy engine answers
while the numba engine's kernels compile in a background thread.

``fastbin.runtime.load(path, engine="numba")`` in a process where the kernels of the
fused pass are neither compiled nor in Numba's on-disk cache (a new install, a container, a
fresh Dask worker; ``fastbin._config.kernel_cached``) folds the model on the numpy engine,
which imports no Numba and compiles nothing, and returns that model at once. Its
predictions are the numba engine's bit for bit (the engines' promise, tested in
``tests/test_runtime.py`` and, for this switch, ``tests/test_warm.py``). Meanwhile a thread
(:class:`Warmup`) folds the model on the numba engine and runs its batch-1 passes once
(float rows, then uint8 rows), which compiles their kernels (and writes them to the cache
for the next process); the first call after that adopts the numba engine's model
(:meth:`Warmup.poll`, from ``InferenceModel._chunks``), and ``model.engine`` becomes the
numba engine. Larger batches compile their own kernels on their first call after the
switch, as without this.

``FASTBIN_BACKGROUND_COMPILE`` (read at each ``load``): ``auto`` (or unset) as above;
``0`` never (the numba engine from the start, compiling in the first calls); ``1`` always,
even on a warm cache. Only dense models (conv models fold as before), only the numba engine
itself, never under ``NUMBA_DISABLE_JIT``.

Threads: Numba compiles under one process-wide lock, and a thread that needs a kernel
waits there; until the switch the caller runs NumPy only, so nothing waits. The compile
holds the GIL much of the time, which slows the caller's NumPy calls while it runs.
A failure in the background (a compile error) is kept (``Warmup.error``) and the next call
folds the numba model again in the caller, so the error is raised there, as it would be
without the background compile. ``os.fork`` waits for running warm-ups (a child forked
while a thread holds the compiler lock would hang at its first compile), and so does the
end of the process (the thread is not a daemon: a compile is not cut off, and its kernels
reach the cache).
"""
from __future__ import annotations

import os
import threading
import weakref

import numpy as np

__all__ = ["ENV", "GATE", "Warmup", "standby_engine"]

ENV = "FASTBIN_BACKGROUND_COMPILE"
_MODES = {"": "auto", "auto": "auto", "0": "off", "1": "on"}
#: Set: warm-ups start at once. Tests clear it to hold a warm-up before it compiles anything.
GATE = threading.Event()
GATE.set()
_RUNNING: weakref.WeakSet = weakref.WeakSet()


def _mode() -> str:
    value = os.environ.get(ENV, "").strip().lower()
    if value not in _MODES:
        raise ValueError(f"${ENV} must be 'auto', '0' or '1', got {value!r}")
    return _MODES[value]


def standby_engine(engine, kind: str):
    """The engine that answers first when ``load`` was asked for ``engine`` on a model of
    ``kind`` (the schema's): the numpy engine when ``engine`` is the numba engine, the model
    is dense, and the mode (``$FASTBIN_BACKGROUND_COMPILE``) asks for it (``auto``: the fused
    pass's kernels are not ready without compiling); else None."""
    mode = _mode()
    if mode == "off" or kind == "conv" or getattr(engine, "name", None) != "numba":
        return None
    from ._numba import NumbaEngine

    if engine is not NumbaEngine:
        return None
    from .. import _config
    from ._fused import fused_float, fused_uint8

    if _config.jit_disabled():
        return None
    if mode == "auto" and all(_config.kernel_cached(d) for d in (fused_float, fused_uint8)):
        return None
    from ._numpy import NumpyEngine

    return NumpyEngine


class Warmup:
    """The background fold and first passes of a model on the numba engine. ``build()``
    returns that ``InferenceModel``; ``n_in`` its input width. ``state``: ``"compiling"``,
    ``"ready"`` (the next call switches), ``"failed"`` (``error`` holds the exception; the
    next call builds in the caller); ``wait(timeout)`` for the end of the thread."""

    def __init__(self, build, n_in: int):
        self._build, self.n_in = build, int(n_in)
        self.error: BaseException | None = None
        self._model = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fastbin-warmup")
        _RUNNING.add(self)
        self.thread.start()

    @property
    def state(self) -> str:
        if not self._done.is_set():
            return "compiling"
        return "ready" if self._model is not None else "failed"

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background work to end; whether it has."""
        return self._done.wait(timeout)

    def _run(self):
        GATE.wait()
        try:
            model = self._build()
            for dtype in (model.dtype, np.uint8):  # the batch-1 pass of each input kind
                model._forward(np.zeros((1, self.n_in), dtype), True)
            self._model = model
        except Exception as exc:  # kept; poll builds again in the caller, where it is raised
            self.error = exc
        finally:
            self._done.set()
            _RUNNING.discard(self)

    def poll(self, model) -> None:
        """Called by ``model`` (the numpy engine's, returned by ``load``) before each call:
        once the warm-up has ended, take the numba engine's model (its stages, engine and
        fused pass) into ``model``, which stops polling; after a failure, build it here."""
        if not self._done.is_set():
            return
        with self._lock:
            if model.warmup is not self:  # another thread switched it meanwhile
                return
            built = self._model if self._model is not None else self._build()  # raises a compile error here
            # Written in the order InferenceModel.__init__ made them (stages first, certify
            # last): a concurrent call reading them one by one sees a certify flag only
            # with the stages it belongs to; either engine's stages give the same bits.
            state = {k: v for k, v in vars(built).items() if k not in ("warmup", "_reduced")}
            model.__dict__.update(state)
            model.warmup = None


def _finish_all() -> None:
    """Before ``os.fork``: let running warm-ups end (none is held by ``GATE`` then)."""
    me = threading.current_thread()
    for warmup in list(_RUNNING):
        if warmup.thread is not me and GATE.is_set():
            warmup.wait()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_finish_all)
