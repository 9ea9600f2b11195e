"""Before/after of issue 26, item 2 (start and first call), in one run, interleaved.

    python benchmarks/results/2026-12-07-cold-start.py warm --before /tmp/fastbin-before [--rounds 9]
    python benchmarks/results/2026-12-07-cold-start.py cold --before /tmp/fastbin-before [--avx2] [CASE ...]

``--before``: a directory holding another tree's ``fastbin`` package (e.g. ``git archive 01232a0
fastbin | tar -x -C /tmp/fastbin-before``), put first on ``PYTHONPATH`` for the "before" children;
"after" is the installed (editable) fastbin.

``warm``: wall time of fresh processes (interpreter start included): ``import numpy``, ``import
numba``, and per tree and engine ``import fastbin.runtime`` + load the 784-512-512-10 file + predict one
row, on a cache one untimed process filled (each tree its own ``NUMBA_CACHE_DIR``); rounds interleave
every row; median and min per row, and the differences to the baselines.

``cold``: per case of ``benchmarks/cold_start.py``, the first call in a fresh process on an empty
``NUMBA_CACHE_DIR`` (the call alone), before and after alternating, median of ``--rounds``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import cold_start  # noqa: E402


def _env(tree, cache_dir):
    env = cold_start.fresh_env(cache_dir)
    if tree is not None:
        env["PYTHONPATH"] = tree
    return env


def _wall(cmd, env):
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=1800, cwd=tempfile.gettempdir())
    return time.perf_counter() - start


def warm(trees, rounds, tmp):
    model = cold_start.model_file(os.path.join(tmp, "mlp.fbm"))
    rows = {name: ([sys.executable, "-c", code], _env(None, None)) for name, code in cold_start.BASELINES.items()}
    for tree_name, tree in trees.items():
        cache = os.path.join(tmp, f"cache-{tree_name}")
        for engine in ("numba", "numpy"):
            cmd = [sys.executable, "-c", cold_start.PREDICT, model, engine]
            rows[f"{tree_name} {engine}"] = (cmd, _env(tree, cache))
            _wall(cmd, rows[f"{tree_name} {engine}"][1])  # fills the cache
    times = {name: [] for name in rows}
    for _ in range(rounds):
        for name, (cmd, env) in rows.items():
            times[name].append(_wall(cmd, env))
    base = {"numba": statistics.median(times["import-numba"]), "numpy": statistics.median(times["import-numpy"])}
    print("| process | median s | min s | median over `import numba` / `import numpy` s |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        engine = name.split()[-1]
        extra = f"{statistics.median(values) - base[engine]:+.3f}" if engine in base else ""
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} | {extra} |")


def cold(trees, rounds, tmp, names):
    model = cold_start.model_file(os.path.join(tmp, "mlp.fbm"))
    print("| case | " + " | ".join(f"{t} first call s" for t in trees) + " | after / before |")
    print("|---|" + "---:|" * (len(trees) + 1))
    for name in names:
        firsts = {t: [] for t in trees}
        for r in range(rounds):
            for tree_name, tree in trees.items():
                cold_start.EXTRA_ENV.pop("PYTHONPATH", None)
                if tree is not None:
                    cold_start.EXTRA_ENV["PYTHONPATH"] = tree
                cache = tempfile.mkdtemp(prefix=f"{name}-{tree_name}-{r}-", dir=tmp)
                firsts[tree_name].append(cold_start.run_case(name, cache, model)["first"])
        medians = {t: statistics.median(v) for t, v in firsts.items()}
        ratio = medians["after"] / medians["before"] if "before" in medians else float("nan")
        print(f"| {name} | " + " | ".join(f"{medians[t]:.2f}" for t in trees) + f" | {ratio:.2f} |", flush=True)
    cold_start.EXTRA_ENV.pop("PYTHONPATH", None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["warm", "cold"])
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--before", help="directory holding the other tree's fastbin package")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--avx2", action="store_true")
    args = parser.parse_args()
    if args.avx2:
        cold_start.EXTRA_ENV.update(cold_start.avx2_cpu())
    trees = {"before": args.before, "after": None} if args.before else {"after": None}
    with tempfile.TemporaryDirectory(prefix="fastbin-start-") as tmp:
        if args.what == "warm":
            warm(trees, args.rounds or 9, tmp)
        else:
            cold(trees, args.rounds or 1, tmp, args.cases or [*cold_start.CASES, *cold_start.RUNTIME_CASES])


if __name__ == "__main__":
    main()
