"""Before/after of the cold4 branch (issue 26, item 2): first calls on an empty Numba cache, and
the warm kernel time of each changed op, trees alternating in one run.

    python benchmarks/results/2026-12-08-cold4.py cold ROUNDS CASE ... --tree NAME=DIR ...
    python benchmarks/results/2026-12-08-cold4.py profile 1 CASE ... --tree NAME=DIR ...
    python benchmarks/results/2026-12-08-cold4.py speed REPEATS [WORD ...] --tree NAME=DIR ...
    FASTBIN_NO_CACHE=1 python benchmarks/results/2026-12-08-cold4.py inproc REPEATS --tree before=DIR

``--tree NAME=DIR``: a directory holding a ``fastbin`` tree (``git archive main fastbin | tar -x -C
DIR``), first on ``PYTHONPATH`` for that tree's children.
``cold``: per round, case (of ``benchmarks/cold_start.py``, ``njit_trivial`` the yardstick) and
tree (order reversed every other round), the first call in a fresh process on an empty
``NUMBA_CACHE_DIR`` (the call alone); one JSON line each, with the 1-minute load average.
``profile``: the same, with the compile time Numba reports per jitted function
(inclusive of the callees compiled meanwhile), the 12 largest.
``speed``: per tree a fresh process (warm: each op called once first; CASE words pick ops by name),
then the public ops' calls timed with timeit, trees alternating REPEATS times per op; the minimum
per tree and the ratio after/before (noisy on a loaded machine: processes differ).
``inproc``: main's ``blocked``, ``linear_ce``, ``avx512`` and ``exact`` modules loaded next to this
tree's in one process (``_before_module``), the changed kernels timed alternating; the outputs
compared (the same bits).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import cold_start  # noqa: E402


def _order(trees, r):
    items = list(trees.items())
    return items if r % 2 == 0 else items[::-1]


def cold(rounds, cases, trees, tmp, profile=False):
    for r in range(rounds):
        for case in cases:
            for tree, path in _order(trees, r):
                cold_start.EXTRA_ENV.clear()
                cold_start.EXTRA_ENV["PYTHONPATH"] = path
                out = cold_start.run_case(case, tempfile.mkdtemp(dir=tmp), profile=profile)
                print(json.dumps(dict(round=r, case=case, tree=tree, first=round(out["first"], 3),
                                      second=round(out["second"], 4), load=os.getloadavg()[0])), flush=True)
                for func, sig, seconds in sorted(out["compiled"], key=lambda row: -row[2])[:12]:
                    print(f"    {seconds:7.3f} s  {func}  {sig}", flush=True)


#: The ops whose first call this branch changes: (name, setup, call), the shapes of the cold cases,
#: and the threaded ops' tall-skinny and serial neighbours.
SPEED = [
    ("binary_matmul 128x784x512 (threads)", "a = fb.pack_signs(f32(128, 784)); w = fb.pack_weights(f32(784, 512))",
     "fb.binary_matmul(a, w)"),
    ("binary_matmul 2048x2048x2048 (threads)",
     "a = fb.pack_signs(f32(2048, 2048)); w = fb.pack_weights(f32(2048, 2048))", "fb.binary_matmul(a, w)"),
    ("binary_matmul 64x784x512 (serial)", "a = fb.pack_signs(f32(64, 784)); w = fb.pack_weights(f32(784, 512))",
     "fb.binary_matmul(a, w, threads=False)"),
    ("binary_matmul 4096x784x5 (threads)", "a = fb.pack_signs(f32(4096, 784)); w = fb.pack_weights(f32(784, 5))",
     "fb.binary_matmul(a, w)"),
    ("binary_dense_sign 128x784x512 (threads)",
     "a = fb.pack_signs(f32(128, 784)); w = fb.pack_weights(f32(784, 512)); t = np.zeros(512, np.int64); "
     "fl = np.zeros(512, bool)", "fb.binary_dense_sign(a, w, t, fl)"),
    ("sign_matmul f32 128x784x512 (threads)", "x = f32(128, 784); w = fb.pack_weights(f32(784, 512))",
     "fb.sign_matmul(x, w)"),
    ("sign_matmul f32 128x784x512 (serial)", "x = f32(128, 784); w = fb.pack_weights(f32(784, 512))",
     "fb.sign_matmul(x, w, threads=False)"),
    ("dense_sign_matmul 128x784x512 (threads)", "x = f32(128, 784); w = f32(784, 512)",
     "fb.dense_sign_matmul(x, w)"),
    ("linear_softmax_cross_entropy 128x784x10", "x = f32(128, 784); w = f32(784, 10); b = f32(10); "
     "y = rng.integers(0, 10, 128)", "fb.linear_softmax_cross_entropy(x, w, b, y)"),
    ("linear_softmax_cross_entropy 8192x784x10 (threads)", "x = f32(8192, 784); w = f32(784, 10); b = f32(10); "
     "y = rng.integers(0, 10, 8192)", "fb.linear_softmax_cross_entropy(x, w, b, y)"),
]

_SPEED_CHILD = """
import sys, timeit
import numpy as np
import fastbin as fb
{inputs}
setup, call = sys.argv[1], sys.argv[2]
exec(setup)
f = eval("lambda: " + call)
f()
number = max(1, int(0.05 / max(1e-7, timeit.timeit(f, number=1))))
for line in sys.stdin:
    print(min(timeit.repeat(f, number=number, repeat=3)) / number, flush=True)
"""


def speed(repeats, trees, only=()):
    env = cold_start.fresh_env(None)  # each tree's kernels cached in its own __pycache__
    for name, setup, call in SPEED:
        if only and not any(word in name for word in only):
            continue
        children = {}
        for tree, path in trees.items():
            children[tree] = subprocess.Popen(
                [sys.executable, "-c", _SPEED_CHILD.format(inputs=cold_start._INPUTS), setup, call],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**env, "PYTHONPATH": path},
                cwd=tempfile.gettempdir())
        times = {tree: [] for tree in trees}
        for r in range(repeats):
            for tree, _ in _order(trees, r):
                children[tree].stdin.write("go\n")
                children[tree].stdin.flush()
                times[tree].append(float(children[tree].stdout.readline()))
        for child in children.values():
            child.stdin.close()
            child.wait()
        best = {tree: min(values) for tree, values in times.items()}
        first = next(iter(best.values()))
        print(f"| {name} | " + " | ".join(f"{tree} {value * 1e6:.1f} us ({value / first:.3f}x)"
                                          for tree, value in best.items())
              + f" | load {os.getloadavg()[0]:.1f} |", flush=True)


def _before_module(before, package, name):
    """``before``'s ``fastbin/<package>/<name>.py`` loaded as ``fastbin.<package>.<name>_before`` (its
    relative imports resolve to this tree's modules), to time its kernels next to this tree's."""
    import importlib.util

    path = Path(before) / "fastbin" / package.replace(".", "/") / f"{name}.py"
    full = f"fastbin.{package}.{name}_before"
    copy = Path(tempfile.mkdtemp()) / f"{name}_before.py"  # its own file: its own Numba cache entries
    copy.write_text(path.read_text())
    spec = importlib.util.spec_from_file_location(full, copy)
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    spec.loader.exec_module(module)
    return module


def inproc(repeats, before):
    """The changed kernels, main's and this tree's, in this one process, alternating (timeit,
    minimum of ``repeats`` rounds of 3)."""
    import timeit

    import numpy as np

    import fastbin as fb
    from fastbin.kernels import linear_ce
    from fastbin.kernels.binary_product import blocked
    from fastbin.kernels.sign_product import avx512, exact

    old = {name: _before_module(before, package, name) for package, name in
           (("kernels.binary_product", "blocked"), ("kernels", "linear_ce"), ("kernels.sign_product", "avx512"),
            ("kernels.sign_product", "exact"))}
    rng = np.random.default_rng(0)

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    cases = []
    for m, k, n, kernel in ((128, 784, 512, "binary_matmul_parallel"), (2048, 2048, 2048, "binary_matmul_parallel"),
                            (64, 784, 512, "binary_matmul_kernel"), (4096, 784, 5, "binary_matmul_parallel")):
        a, w = fb.pack_signs(f32(m, k)), fb.pack_weights(f32(k, n))
        cases.append((f"{kernel} {m}x{k}x{n}", "blocked", kernel, (a.bits, w.bits, k, np.zeros((m, n), np.int32))))
    a, w = fb.pack_signs(f32(128, 784)), fb.pack_weights(f32(784, 512))
    cases.append(("binary_dense_sign_parallel 128x784x512", "blocked", "binary_dense_sign_parallel",
                  (a.bits, w.bits, 784, np.zeros(512, np.int64), np.zeros(512, bool), np.zeros((128, 8), np.uint64))))
    x, wf, b, y = f32(128, 784), f32(784, 10), f32(10), rng.integers(0, 10, 128)
    cases.append(("linear_softmax_ce_labels 128x784x10", "linear_ce", "linear_softmax_ce_labels",
                  (x, wf, b, y, np.empty((784, 10), np.float32), np.empty(10, np.float32))))
    x8k, y8k = f32(8192, 784), rng.integers(0, 10, 8192)
    cases.append(("linear_softmax_ce_parallel 8192x784x10 (placeholders)", "linear_ce", "linear_softmax_ce_parallel",
                  (x8k, wf, np.empty((0, 1), np.uint64), b, y8k, np.zeros((1, 1), np.float32), False,
                   np.empty((784, 10), np.float32), np.empty(10, np.float32), 2)))
    x, w = f32(128, 784), fb.pack_weights(f32(784, 512))
    for kernel in ("sign_matmul_lut_parallel", "sign_matmul_lut"):
        out = np.empty((128, 512), np.float32)
        cases.append((f"{kernel} 128x784x512", "avx512", kernel, (x, w.bits, out, 1 << 20)))
    nib = avx512.nibbles_of(w.bits, 784)
    cases.append(("exact_lut_product_parallel 128x784x512", "exact", "exact_lut_product_parallel",
                  (x, w.bits, nib, np.empty((128, 512), np.float32))))
    modules = {"blocked": blocked, "linear_ce": linear_ce, "avx512": avx512, "exact": exact}
    for name, module, kernel, args in cases:
        pair = {"before": getattr(old[module], kernel), "after": getattr(modules[module], kernel)}
        outs = {}
        for tree, f in pair.items():
            f(*args)
            outs[tree] = [np.array(v, copy=True) for v in args if isinstance(v, np.ndarray) and v.flags.writeable]
        same = all(np.array_equal(p, q) for p, q in zip(outs["before"], outs["after"]))
        number = max(1, int(0.02 / max(1e-7, timeit.timeit(lambda f=pair["after"], a=args: f(*a), number=1))))
        times = {tree: [] for tree in pair}
        for r in range(repeats):
            for tree in (("before", "after") if r % 2 == 0 else ("after", "before")):
                run = pair[tree]
                times[tree].append(min(timeit.repeat(lambda f=run, a=args: f(*a), number=number, repeat=3)) / number)
        lo = {tree: min(v) for tree, v in times.items()}
        ratio = lo["after"] / lo["before"]
        print(f"| {name} | {lo['before'] * 1e6:.1f} us | {lo['after'] * 1e6:.1f} us | {ratio:.3f}x "
              f"| {same} | {os.getloadavg()[0]:.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["cold", "profile", "speed", "inproc"])
    parser.add_argument("rounds", type=int)
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--tree", action="append", default=[])
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    with tempfile.TemporaryDirectory(prefix="cold4-") as tmp:
        if args.mode == "speed":
            speed(args.rounds, trees, args.cases)
        elif args.mode == "inproc":
            inproc(args.rounds, trees["before"])
        else:
            cold(args.rounds, args.cases, trees, tmp, profile=args.mode == "profile")


if __name__ == "__main__":
    main()
