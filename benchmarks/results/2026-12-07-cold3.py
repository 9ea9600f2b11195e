"""Before/after of the cold3 branch (issue 26, item 2), trees alternating in one run.

    python benchmarks/results/2026-12-07-cold3.py cold ROUNDS CASE ... --tree NAME=DIR ...
    python benchmarks/results/2026-12-07-cold3.py speed REPEATS
    python benchmarks/results/2026-12-07-cold3.py imports N --tree NAME=DIR ...

``--tree NAME=DIR``: a directory holding a ``fastbin`` tree (``git archive main | tar -x -C DIR``),
first on ``PYTHONPATH`` for that tree's children; ``NAME=`` (empty DIR): the installed one.
``cold``: per round, case (of ``benchmarks/cold_start.py``) and tree (order reversed every other
round), the first call in a fresh process on an empty ``NUMBA_CACHE_DIR`` (the call alone).
``speed`` (this tree, one process, warm): ``binary_matmul_rows`` against main's
``binary_matmul_kernel`` (``--tree before=DIR``'s ``blocked.py`` loaded into this package: its
``_dots`` takes the row blocks there), this tree's ``binary_matmul_kernel``, and rebuilt copies
with the ``_pc_*`` helpers inlined or not; timeit alternating, minimum of REPEATS, ratio to main's.
``imports``: fresh processes, ``import fastbin.kernels.binary_product`` after ``import fastbin``'s
other imports (numba, numpy), per tree, alternating; seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import timeit
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import cold_start  # noqa: E402


def _order(trees, r):
    items = list(trees.items())
    return items if r % 2 == 0 else items[::-1]


def cold(rounds, cases, trees, tmp):
    for r in range(rounds):
        for case in cases:
            for tree, path in _order(trees, r):
                cold_start.EXTRA_ENV.clear()
                cold_start.EXTRA_ENV["PYTHONPATH"] = path
                out = cold_start.run_case(case, tempfile.mkdtemp(dir=tmp))
                print(json.dumps(dict(round=r, case=case, tree=tree, first=round(out["first"], 3),
                                      second=round(out["second"], 4), load=os.getloadavg()[0])), flush=True)


IMPORTS = """
import time, numpy, numba, fastbin._config, fastbin.kernels.pack, fastbin.kernels.intrinsics
t0 = time.perf_counter()
import fastbin.kernels.binary_product
print(time.perf_counter() - t0)
"""


def imports(n, trees, tmp):
    got = {tree: [] for tree in trees}
    for r in range(n):
        for tree, path in _order(trees, r):
            env = cold_start.fresh_env(os.path.join(tmp, "cache-" + tree))
            env["PYTHONPATH"] = path
            done = subprocess.run([sys.executable, "-c", IMPORTS], env=env, capture_output=True, text=True,
                                  cwd=tmp, check=True)
            got[tree].append(float(done.stdout.split()[-1]))
    for tree, values in got.items():
        print(tree, f"median {statistics.median(values):.4f} min {min(values):.4f}",
              " ".join(f"{v:.4f}" for v in values))


def _variant(blocked, inline):
    """``binary_matmul_rows`` rebuilt with its ``_pc_*``/``_w_block`` helpers inlined or not."""
    from fastbin._config import jit  # fastbin's options; no cache: these share the kernels' names

    env = dict(vars(blocked))
    for name in ("_pc_1x1", "_pc_1x2", "_pc_4x1", "_pc_4x2", "_w_block"):
        env[name] = jit(cache=False, inline="always" if inline else "never")(getattr(blocked, name).py_func)

    def rebuild(func):
        return jit(cache=False)(types.FunctionType(func.py_func.__code__, env, func.py_func.__name__))

    env["_dots_rows"] = rebuild(blocked._dots_rows)
    return rebuild(blocked.binary_matmul_rows)


def _main_blocked(before):
    """Main's ``blocked.py`` (from the tree ``before``) as a module of this package, its lane
    blocks imported as this tree's (``lane_blocks()``); only ``binary_matmul_kernel`` is used."""
    import importlib.util

    source = (Path(before) / "fastbin/kernels/binary_product/blocked.py").read_text()
    source = source.replace("from ._lanes import LANES, lane_blocks, transpose_8x8",
                            "from ._lanes import LANES, transpose_8x8\nfrom ._lanes import lane_blocks as _lb")
    source = source.replace("from ._lanes_bytes import byte_lane_blocks",
                            "from ._lanes_bytes import byte_lane_blocks as _blb")
    source = source.replace("byte_lane_blocks if BYTE_POPCOUNT_LANES else lane_blocks",
                            "_blb() if BYTE_POPCOUNT_LANES else _lb()")
    path = Path(tempfile.mkdtemp()) / "main_blocked.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("fastbin.kernels.binary_product.main_blocked", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speed(repeats, before):
    import numpy as np

    import fastbin
    from fastbin.kernels.binary_product import blocked

    rng = np.random.default_rng(0)
    rows = {"main's kernel": _main_blocked(before).binary_matmul_kernel,
            "kernel (_dots)": blocked.binary_matmul_kernel, "rows": blocked.binary_matmul_rows,
            "rows, helpers inlined": _variant(blocked, True), "rows, helpers not inlined": _variant(blocked, False)}
    for m, k, n in ((1, 784, 512), (4, 784, 512), (7, 2048, 2048), (1, 4096, 4096), (64, 784, 5), (128, 784, 512)):
        a = fastbin.pack_signs(rng.standard_normal((m, k)))
        w = fastbin.pack_weights(rng.standard_normal((k, n)))
        out = np.zeros((m, n), np.int32)
        want = fastbin.reference.binary_matmul(a, w)
        number = max(1, int(2e6 // (m * n * a.n_words)))
        times = {name: [] for name in rows}
        for kernel in rows.values():
            out[:] = 0
            assert kernel(a.bits, w.bits, k, out) and (out == want).all()
        for _ in range(repeats):
            for name, kernel in rows.items():
                args = (a.bits, w.bits, k, out)
                times[name].append(timeit.timeit(lambda f=kernel, x=args: f(*x), number=number) / number)
        base = min(times["main's kernel"])
        print(f"{m}x{k}x{n}: " + ", ".join(f"{name} {min(t) * 1e6:.2f} us ({min(t) / base:.3f}x)"
                                          for name, t in times.items()), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["cold", "speed", "imports"])
    parser.add_argument("rounds", type=int)
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--tree", action="append", default=[])
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    with tempfile.TemporaryDirectory(prefix="cold3-") as tmp:
        if args.mode == "cold":
            cold(args.rounds, args.cases, trees, tmp)
        elif args.mode == "imports":
            imports(args.rounds, trees, tmp)
        else:
            speed(args.rounds, trees.get("before", "/tmp/cold3-before"))


if __name__ == "__main__":
    main()
