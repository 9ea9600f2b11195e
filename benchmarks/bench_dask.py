"""Throughput (images/s) of ``fastbin.dask`` on a ``distributed.LocalCluster`` of 1 and 2
worker processes against the local runtime, on this machine.

A standalone script (not collected by pytest)::

    .venv/bin/python benchmarks/bench_dask.py [--rows 200000] [--repeats 3] [--quick] [--out FILE]

Model: the fully binary MLP 784-512-512-10 of ``benchmarks/test_bench_runtime.py`` (random
weights, randomised batch-norm statistics), saved to a model file. Data: ``rows`` random raw
uint8 "images" (784 pixels) and the same as float32 ``pixels / 255``, saved as ``.npy`` and read
by ``fastbin.dask.from_npy`` (memory-mapped, chunk by chunk, on the workers).

Rows of the table:

* ``local runtime``: ``fastbin.runtime.load(path).predict(x)`` on the array in memory, in this
  process, Numba pinned to 1 thread, then with Numba's default thread count;
* ``dask, N workers``: ``client.compute(fastbin.dask.predict(model, from_npy(...)))`` on a
  LocalCluster of N processes, 1 thread each, Numba pinned to 1 thread in each (so N workers
  use N cores), 127.0.0.1 only, dashboard off; ``chunk_rows`` rows a task. Reading the file,
  shipping the predictions back and the scheduler's per-task cost are all inside the time.

Each figure is the median of ``repeats`` timed runs after one untimed warm-up run (which loads
the model on each worker and fills Numba's cache). The result is written as Markdown to
``benchmarks/results/<date>-<cpu>-dask.md`` (``cpu``: ``llvmlite.binding.get_host_cpu_name()``).
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# BLAS and Numba threads are fixed before NumPy and Numba load (the workers inherit it too).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

SIZES = [784, 512, 512, 10]
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}


def random_model(path: Path, seed: int = 0) -> None:
    """The runtime benchmark's binary MLP (``benchmarks/test_bench_runtime.py``), saved."""
    sys.path.insert(0, str(HERE))
    from test_bench_runtime import _random_model

    _random_model(SIZES, seed).save(path)


def timed(fn, repeats: int) -> float:
    """Median wall time (s) of ``repeats`` calls after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_local(model_path, x, repeats, threads):
    import numba

    from fastbin import runtime

    model = runtime.load(model_path)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return timed(lambda: model.predict(x), repeats), model.predict(x)
    finally:
        numba.set_num_threads(before)


def bench_dask(model_path, npy_path, n_workers, chunk_rows, repeats, want):
    import distributed

    import fastbin.dask as fd
    from fastbin import runtime

    model = runtime.load(model_path)
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, scheduler_kwargs={"dashboard": False},
                                  worker_dashboard_address=None, silence_logs=logging.ERROR,
                                  env=WORKER_ENV) as cluster, distributed.Client(cluster, timeout=120) as client:
        client.wait_for_workers(n_workers, timeout=120)

        def run():
            return client.compute(fd.predict(model, fd.from_npy(npy_path, chunk_rows=chunk_rows))).result(timeout=600)

        np.testing.assert_array_equal(run(), want)  # and the warm-up of timed()
        return timed(run, repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[1_000, 10_000, 50_000],
                        help="chunk sizes for the 2-worker rows (the first 1-worker row uses 10000)")
    parser.add_argument("--quick", action="store_true", help="20000 rows, 1 repeat (a smoke run)")
    parser.add_argument("--out", type=Path, help="Markdown output (default benchmarks/results/<date>-<cpu>-dask.md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeats, args.chunk_rows = 20_000, 1, [2_000, 10_000]

    import llvmlite.binding as llvm
    import numba

    cpu = llvm.get_host_cpu_name()
    rng = np.random.default_rng(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastbin-bench-dask-") as tmp:
        model_path = Path(tmp) / "binary_mlp.fbm"
        random_model(model_path)
        pixels = rng.integers(0, 256, (args.rows, SIZES[0]), dtype=np.uint8)
        inputs = {"uint8": pixels, "float32": (pixels / np.float32(255)).astype(np.float32)}
        for kind, x in inputs.items():
            npy = Path(tmp) / f"x_{kind}.npy"
            np.save(npy, x)
            t1, want = bench_local(model_path, x, args.repeats, 1)
            rows.append((kind, "local runtime, 1 Numba thread", "-", t1))
            default_threads = numba.config.NUMBA_NUM_THREADS
            if default_threads > 1:
                t, _ = bench_local(model_path, x, args.repeats, default_threads)
                rows.append((kind, f"local runtime, {default_threads} Numba threads", "-", t))
            chunk_1 = 10_000 if args.rows >= 20_000 else args.chunk_rows[0]
            rows.append((kind, "dask, 1 worker", chunk_1, bench_dask(model_path, npy, 1, chunk_1, args.repeats, want)))
            for chunk in args.chunk_rows:
                rows.append((kind, "dask, 2 workers", chunk, bench_dask(model_path, npy, 2, chunk, args.repeats, want)))
            for row in rows[-(len(args.chunk_rows) + 3):]:
                print(f"{row[0]:8} {row[1]:34} chunk {row[2]!s:>6}: {args.rows / row[3]:12,.0f} images/s", flush=True)

    import dask
    import distributed

    date = datetime.date.today().isoformat()
    lines = [
        f"# fastbin.dask throughput on `{cpu}`, {date}",
        "",
        f"`benchmarks/bench_dask.py --rows {args.rows} --repeats {args.repeats}`"
        f"{' --quick' if args.quick else ''}: predicting {args.rows:,} images (784 pixels, read from a `.npy`) with "
        f"the binary MLP {'-'.join(map(str, SIZES))}; median of {args.repeats} timed runs after a warm-up.",
        "",
        f"- CPU: {platform.processor() or platform.machine()} (LLVM host CPU `{cpu}`), {os.cpu_count()} cores "
        "(shared with other jobs while this ran)",
        f"- Versions: python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"dask {dask.__version__}, distributed {distributed.__version__}",
        "- Workers: LocalCluster processes on 127.0.0.1, 1 thread each, `NUMBA_NUM_THREADS=1` in each",
        "",
        "| input | where | rows per chunk | time | images/s | vs local (1 thread) |",
        "|---|---|---|---|---|---|",
    ]
    base = {kind: t for kind, where, _, t in rows if where == "local runtime, 1 Numba thread"}
    for kind, where, chunk, t in rows:
        chunk_text = f"{chunk:,}" if isinstance(chunk, int) else chunk
        lines.append(f"| {kind} | {where} | {chunk_text} | {t * 1e3:,.0f} ms | {args.rows / t:,.0f} | "
                     f"{base[kind] / t:.2f}x |")
    text = "\n".join(lines) + "\n"
    out = args.out or HERE / "results" / f"{date}-{cpu}-dask.md"
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
