"""Threads and processes (issue 12): every public op called from 8 threads at
once gives the serial results; a fork Pool after a threaded kernel works; the
threading layer fastbin chooses is fork-safe (``fastbin._config``)."""
import os
import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np
import pytest
from tolerance import assert_close

import fastbin
from fastbin import _config, ops

N_THREADS = 8
NO_JIT = bool(numba.config.DISABLE_JIT)
#: Plain-Python kernels (NUMBA_DISABLE_JIT=1) run under the GIL: smaller work.
M, K, N, C = (8, 70, 5, 3) if NO_JIT else (64, 784, 40, 10)
ROUNDS = 1 if NO_JIT else 4


def _env_without_layer_choice():
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    env.pop("NUMBA_THREADING_LAYER_PRIORITY", None)
    return env


def _calls(rng, threads):
    """One call of every function in ``fastbin.ops.__all__`` (threaded kernels
    forced where a function has the switch), as name -> zero-argument callable."""
    x = rng.standard_normal((M, K)).astype(np.float32)
    x8 = rng.integers(0, 256, (M, K), dtype=np.uint8)
    W = rng.standard_normal((K, N)).astype(np.float32)
    Wc = rng.standard_normal((K, C)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    labels = rng.integers(0, C, M)
    a, w = fastbin.pack_signs(x), fastbin.pack_weights(W)
    thresholds = rng.integers(-K // 4, K // 4, N).astype(np.int64)
    flip = rng.random(N) < 0.3
    logits = rng.standard_normal((M, C)).astype(np.float32)
    param, grad = rng.standard_normal(M * K), rng.standard_normal(M * K)

    def batch_norm(name):
        running = np.zeros(C, np.float32), np.ones(C, np.float32)
        return getattr(ops, name)(logits, b, b, *running, 0.9, 1e-5), running

    def adam():
        p, m, v = param.copy(), np.zeros_like(param), np.zeros_like(param)
        for step in range(3):
            fastbin.adam_update(p, grad, m, v, step, lr=0.01, clip=1.0)
        return p, m, v

    images = rng.standard_normal((3, 6, 5, 4)).astype(np.float32)
    cols = rng.standard_normal((3 * 6 * 5, 36)).astype(np.float32)
    pooled_dy = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)

    calls = {
        "im2col": lambda: ops.im2col(images, 3, 1, "same"),
        "col2im": lambda: ops.col2im(cols, images.shape, 3, 1, "same"),
        "pack_patches": lambda: ops.pack_patches(images, 3, (1, 2), "same").bits,
        "max_pool2d": lambda: ops.max_pool2d(images, 2),
        "max_pool2d_backward": lambda: ops.max_pool2d_backward(pooled_dy, images, 2),
        "pack_signs": lambda: fastbin.pack_signs(x).bits,
        "pack_weights": lambda: fastbin.pack_weights(W).bits,
        "unpack_signs": lambda: fastbin.unpack_signs(a),
        "binary_matmul": lambda: fastbin.binary_matmul(a, w, threads=threads),
        "sign_matmul": lambda: (fastbin.sign_matmul(x, w, threads=threads), fastbin.sign_matmul(x8, w)),
        "binary_dense_sign": lambda: fastbin.binary_dense_sign(a, w, thresholds, flip, threads=threads).bits,
        "dense_sign_matmul": lambda: (fastbin.dense_sign_matmul(x, W), fastbin.dense_sign_matmul(x[:1], W)),
        "signs": lambda: fastbin.signs(x),
        "unit_from_uint8": lambda: fastbin.unit_from_uint8(x8),
        "softmax_cross_entropy": lambda: fastbin.softmax_cross_entropy(logits, labels),
        "linear_softmax_cross_entropy": lambda: (
            fastbin.linear_softmax_cross_entropy(x, Wc, b, labels, threads=threads),
            fastbin.linear_softmax_cross_entropy(x, fastbin.pack_weights(Wc), b, labels, threads=threads),
        ),
        "sgd_update": lambda: fastbin.sgd_update(param.copy(), grad, 0.1, clip=1.0),
        "adam_update": adam,
        "batch_norm_train": lambda: batch_norm("batch_norm_train"),
        "batch_norm_sign_train": lambda: batch_norm("batch_norm_sign_train"),
        "batch_norm_backward": lambda: ops.batch_norm_backward(logits, logits, np.ones(C, np.float32), b, logits > 0),
    }
    assert set(calls) == set(ops.__all__)  # every public op
    return calls


def _flat(result):
    if isinstance(result, tuple):
        return [leaf for part in result for leaf in _flat(part)]
    return [np.asarray(result)]


#: Threaded and serial kernels agree bit for bit (tested per op), except the
#: fused loss, whose threaded form sums per-thread partial gradients.
APPROXIMATE = {"linear_softmax_cross_entropy"}


def _equal(name, one, other):
    if len(one) != len(other) or any(p.dtype != q.dtype or p.shape != q.shape for p, q in zip(one, other)):
        return False
    if name not in APPROXIMATE:
        return all(np.array_equal(p, q, equal_nan=True) for p, q in zip(one, other))
    try:
        for p, q in zip(one, other):
            assert_close(p, q, dtype=np.float32)
    except AssertionError:
        return False
    return True


def test_eight_threads_calling_every_op_match_serial(monkeypatch):
    """8 threads each call every public op ROUNDS times (the threaded kernels
    forced, pack_signs' threshold lowered so it threads too); each result
    equals the one computed serially beforehand (``APPROXIMATE``: within the
    float32 tolerance)."""
    monkeypatch.setitem(_config.TABLE["parallel_min_work"], "pack_signs", 1)
    monkeypatch.setitem(_config.TABLE["parallel_min_work"], "conv_patches", 1)  # the conv kernels thread too
    serial_calls = _calls(np.random.default_rng(12), threads=False)
    expected = {name: _flat(call()) for name, call in serial_calls.items()}
    calls = _calls(np.random.default_rng(12), threads=True)
    mismatches, errors = [], []
    start = threading.Barrier(N_THREADS)

    def worker(index):
        try:
            start.wait()
            names = list(calls)
            for r in range(ROUNDS):
                # each thread its own order, so different kernels overlap
                for name in names[index % len(names):] + names[: index % len(names)]:
                    if not _equal(name, _flat(calls[name]()), expected[name]):
                        mismatches.append((index, r, name))
        except BaseException as exc:  # reported below, with the thread
            errors.append((index, repr(exc)))

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(N_THREADS)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in workers), "a thread hung"
    assert errors == []
    assert mismatches == []


def test_layer_is_chosen_for_fork_safety():
    """Without a user choice, fastbin runs Numba's tbb or workqueue layer,
    never GNU OpenMP (Numba's default pick after tbb, not fork-safe)."""
    code = """
        import numba, fastbin
        fastbin.pack_signs  # loads the ops, and fastbin._config with them
        numba.get_num_threads()  # launches the layer
        print(numba.threading_layer())
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_env_without_layer_choice(), capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert out.strip() in ("tbb", "workqueue")
    assert tuple(_config.THREADING_LAYER_PRIORITY)[:2] == ("tbb", "workqueue")


FORK_AFTER_THREADS = """
    import multiprocessing as mp
    import numpy as np
    import fastbin

    rng = np.random.default_rng(5)
    a = fastbin.pack_signs(rng.standard_normal((256, 784)))
    w = fastbin.pack_weights(rng.standard_normal((784, 64)))
    x = rng.standard_normal((256, 784)).astype(np.float32)

    def work(i):
        return (fastbin.binary_matmul(a, w, threads=True).sum() + i,
                float(fastbin.sign_matmul(x, w, threads=True).sum()))

    if __name__ == "__main__":
        expected = work(0)  # threaded kernels in the parent before the fork
        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map_async(work, range(4)).get(timeout=60)
        assert got == [(expected[0] + i, expected[1]) for i in range(4)], (got, expected)
        print("ok", len(got))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_fork_pool_after_threaded_kernels(tmp_path):
    """Issue 12: a fork Pool after a threaded kernel hung or killed its children
    under GNU OpenMP. The children run threaded kernels too; a hang fails
    (timeouts) instead of blocking the suite."""
    script = tmp_path / "fork_after_threads.py"
    script.write_text(textwrap.dedent(FORK_AFTER_THREADS))
    try:
        done = subprocess.run(
            [sys.executable, str(script)], env=_env_without_layer_choice(), capture_output=True, text=True, timeout=180
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the fork Pool after a threaded kernel hung")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "4"]


def test_unsafe_layer_keeps_threaded_kernels_on_the_main_thread(monkeypatch, capsys):
    """On a layer that is not thread-safe (workqueue), a thread other than
    the main one gets the serial kernel (once said on stderr); the main
    thread keeps the threaded one."""
    monkeypatch.setattr(_config, "_LAYER_THREAD_SAFE", [False])
    monkeypatch.setattr(_config, "_REFUSED_NOTE", [])
    assert _config.use_threads("binary_matmul", 1 << 30, True)
    seen = []
    for _ in range(3):
        t = threading.Thread(target=lambda: seen.append(_config.use_threads("binary_matmul", 1 << 30, True)))
        t.start()
        t.join()
    assert seen == [False] * 3
    assert not _config.use_threads("binary_matmul", 1 << 30, False)
    err = capsys.readouterr().err
    assert err.count("not thread-safe") == 1 and err.endswith("\n")
    monkeypatch.setattr(_config, "_LAYER_THREAD_SAFE", [True])
    t = threading.Thread(target=lambda: seen.append(_config.use_threads("binary_matmul", 1 << 30, True)))
    t.start()
    t.join()
    assert seen[-1] is True


WORKQUEUE_THREADS = """
    import threading
    import numpy as np
    import fastbin

    rng = np.random.default_rng(1)
    a = fastbin.pack_signs(rng.standard_normal((256, 784)))
    w = fastbin.pack_weights(rng.standard_normal((784, 64)))
    expected = fastbin.binary_matmul(a, w, threads=False)
    bad = []

    def work():
        for _ in range(20):
            if not np.array_equal(fastbin.binary_matmul(a, w, threads=True), expected):
                bad.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    work()  # the main thread too: its calls are the threaded ones
    for t in threads:
        t.join()
    print("ok", len(bad))
"""


def test_workqueue_layer_survives_concurrent_calls():
    """Forced onto the workqueue layer (the fallback without tbb), concurrent
    threaded calls from 8 threads would abort the process ("Concurrent
    access has been detected"); with the main-thread rule they do not."""
    env = {**_env_without_layer_choice(), "NUMBA_THREADING_LAYER": "workqueue"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WORKQUEUE_THREADS)],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "0"]
    assert done.stderr.count("not thread-safe") == 1
