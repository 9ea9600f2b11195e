"""Before/after of the cold2 branch (issue 26, item 2), trees alternating in one run.

    python benchmarks/results/2026-12-07-cold2.py cold ROUNDS CASE ... [--before /tmp/cold2-before]
    python benchmarks/results/2026-12-07-cold2.py stages N [--engine numba] [--before /tmp/cold2-before]
    python benchmarks/results/2026-12-07-cold2.py during 1
    python benchmarks/results/2026-12-07-cold2.py variants N

``--before``: a directory holding another tree (``git archive main | tar -x -C /tmp/cold2-before``),
first on ``PYTHONPATH`` for the "before" children; "after" is the installed (editable) fastbin.

``cold``: per round, case (of ``benchmarks/cold_start.py``) and tree, the first call in a fresh
process on an empty ``NUMBA_CACHE_DIR`` (the call alone); one JSON line each.
``stages``: in-process stages of fresh processes on each tree's warm cache (``import numpy``,
``import numba``, ``import fastbin.runtime``, ``load``, the first ``predict`` of one float row of
the 784-512-512-10 MLP), and "beyond": everything after ``import numba`` (numpy engine: after
``import numpy``); an untimed first process per tree fills its cache.
``during`` (after only): one process on an empty cache: ``load``, then one-row ``predict`` calls
in a loop while the numba engine compiles behind the numpy stand-in; their latencies against the
numpy engine's alone and the numba engine's after the switch.
``variants`` (after only, warm cache): ``import fastbin.runtime`` + ``load`` + the first
``predict`` after ``import numba``, as is, with the garbage collector off (throughout, or during
``load`` only), and with ``numpy.ma`` imported before the clock starts.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import cold_start  # noqa: E402

STAGES = """
import time, sys; t0=time.perf_counter()
import numpy as np; t1=time.perf_counter()
{numba}t2=time.perf_counter()
import fastbin.runtime; t3=time.perf_counter()
m = fastbin.runtime.load(sys.argv[1], engine=sys.argv[2]); t4=time.perf_counter()
m.predict(np.full((1,784),0.5,np.float32)); t5=time.perf_counter()
print(t1-t0, t2-t1, t3-t2, t4-t3, t5-t4, m.engine.name, 'numpy.ma' in sys.modules)"""


def _order(trees, r):
    items = list(trees.items())
    return items if r % 2 == 0 else items[::-1]


def cold(rounds, cases, trees, tmp):
    model = cold_start.model_file(os.path.join(tmp, "mlp.fbm"))
    for r in range(rounds):
        for case in cases:
            for tree, path in _order(trees, r):
                cold_start.EXTRA_ENV.clear()
                cold_start.EXTRA_ENV["PYTHONPATH"] = path
                out = cold_start.run_case(case, tempfile.mkdtemp(dir=tmp), model)
                print(json.dumps(dict(round=r, case=case, tree=tree, first=round(out["first"], 3),
                                      second=round(out["second"], 4), load=os.getloadavg()[0])), flush=True)


def stages(n, engine, trees, tmp):
    model = cold_start.model_file(os.path.join(tmp, "mlp.fbm"))
    code = STAGES.format(numba="import numba; " if engine == "numba" else "")
    beyond = {tree: [] for tree in trees}
    for r in range(n + 1):
        for tree, path in _order(trees, r):
            env = cold_start.fresh_env(os.path.join(tmp, "cache-" + tree))
            env["PYTHONPATH"] = path
            done = subprocess.run([sys.executable, "-c", code, model, engine], env=env, capture_output=True, text=True,
                                  cwd=tmp, check=True)
            fields = done.stdout.split()
            values = [float(v) for v in fields[:5]]
            if r == 0:
                continue  # filled the cache
            beyond[tree].append(sum(values[2:]) if engine == "numba" else sum(values[1:]))
            print(tree, " ".join(f"{v:.3f}" for v in values), fields[5], f"beyond={beyond[tree][-1]:.3f}",
                  f"load={os.getloadavg()[0]:.1f}", flush=True)
    for tree, values in beyond.items():
        print(tree, "median beyond", round(statistics.median(values), 3), "min", round(min(values), 3))


DURING = """
import sys, time
import numpy as np
import fastbin.runtime as rt
x = np.random.default_rng(0).random((1, 784), dtype=np.float32)
t0 = time.perf_counter()
m = rt.load(sys.argv[1], engine="numba")
t1 = time.perf_counter()
lat = []
while m.warmup is not None and m.warmup.state == "compiling":
    a = time.perf_counter(); m.predict(x); lat.append(time.perf_counter() - a)
t2 = time.perf_counter()
ref = rt.load(sys.argv[1], engine="numpy")
alone = []
for _ in range(200):
    a = time.perf_counter(); ref.predict(x); alone.append(time.perf_counter() - a)
m.predict(x)
after = []
for _ in range(200):
    a = time.perf_counter(); m.predict(x); after.append(time.perf_counter() - a)
def q(v):
    return f"median {np.median(v)*1e3:.2f} ms p99 {np.percentile(v, 99)*1e3:.2f} ms max {max(v)*1e3:.1f} ms n={len(v)}"
print(f"load {t1-t0:.3f} s; numba ready after {t2-t0:.1f} s; engine now {m.engine.name}")
print("stand-in during the compile:", q(lat))
print("numpy engine alone:         ", q(alone))
print("numba engine after:         ", q(after))
"""

VARIANT = """
import time, sys, gc
import numpy as np
import numba
{pre}
t2 = time.perf_counter()
{gc_all}
import fastbin.runtime
{load}
m.predict(np.full((1, 784), 0.5, np.float32)); t5 = time.perf_counter()
print(t5 - t2)"""
LOAD = "m = fastbin.runtime.load(sys.argv[1], engine='numba')"
VARIANTS = {"base": dict(pre="", gc_all="", load=LOAD), "gc-off": dict(pre="", gc_all="gc.disable()", load=LOAD),
            "gc-off-load": dict(pre="", gc_all="", load=f"gc.disable(); {LOAD}; gc.enable()"),
            "ma-before": dict(pre="import numpy.ma", gc_all="", load=LOAD)}


def during(tmp):
    model = cold_start.model_file(os.path.join(tmp, "mlp.fbm"))
    env = {**cold_start.fresh_env(tempfile.mkdtemp(dir=tmp)), "OPENBLAS_NUM_THREADS": "1"}
    print(subprocess.run([sys.executable, "-c", DURING, model], env=env, capture_output=True, text=True, cwd=tmp,
                         check=True).stdout)


def variants(n, tmp):
    model = cold_start.model_file(os.path.join(tmp, "mlp.fbm"))
    env = cold_start.fresh_env(os.path.join(tmp, "cache"))
    subprocess.run([sys.executable, "-c", VARIANT.format(**VARIANTS["base"]), model], env=env, check=True, cwd=tmp,
                   capture_output=True)  # fills the cache
    times = {name: [] for name in VARIANTS}
    for _ in range(n):
        for name, parts in VARIANTS.items():
            done = subprocess.run([sys.executable, "-c", VARIANT.format(**parts), model], env=env, check=True, cwd=tmp,
                                  capture_output=True, text=True)
            times[name].append(float(done.stdout))
    for name, values in times.items():
        print(name, "median", round(statistics.median(values), 3), "min", round(min(values), 3))
    print("load average", os.getloadavg())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["cold", "stages", "during", "variants"])
    parser.add_argument("n", type=int)
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--engine", default="numba")
    parser.add_argument("--before", default="/tmp/cold2-before")
    args = parser.parse_args()
    trees = {"before": args.before, "after": ""}
    with tempfile.TemporaryDirectory(prefix="cold2-") as tmp:
        if args.what == "cold":
            cold(args.n, args.cases, trees, tmp)
        elif args.what == "stages":
            stages(args.n, args.engine, trees, tmp)
        elif args.what == "during":
            during(tmp)
        else:
            variants(args.n, tmp)


if __name__ == "__main__":
    main()
