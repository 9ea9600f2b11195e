"""Issue 26's AVX-512 grid bars, before and after in one process (2026-12-07-avx512.md).

Per cell of ``benchmarks/report.py``'s grid: NumPy ``x @ sign(W)`` (sgemm on ±1 float32,
one BLAS thread), the public ``fastbin`` call (``threads=False``) planned with the AVX-512
table without the entries of ``uint8_dot``/``lut_dwords`` (main's plan: "old") and with
them ("new"), interleaved in rounds; the minimum of each over the rounds (each round a
batch of about 3 ms of calls). Results are checked against the sgemm result (exact for
uint8 and binary, allclose for float32).

Usage, from the checkout (its .venv)::

    nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-avx512.py KIND M,.. K,.. N,.. [ROUNDS]

``KIND``: ``f32``, ``u8`` or ``binary`` (binary: only "new", the planner did not change);
``GRID_JSON=path`` also writes the rows as JSON.
"""
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import fastbin  # noqa: E402
import fastbin.reference as ref  # noqa: E402
from fastbin import _config  # noqa: E402
from fastbin.kernels import sign_product  # noqa: E402

NEW = _config.TABLE
OLD = {k: v for k, v in NEW.items() if k not in ("uint8_dot_min_rows", "lut_dwords_max_rows", "lut_dwords_min_cols")}


def operands(kind, m, k, n):
    """``(fastbin product, its first operand, the sgemm operands)`` of one cell."""
    rng = np.random.default_rng([20261203, m, k, n])
    w_real = rng.standard_normal((k, n)).astype(np.float32)
    w = fastbin.pack_weights(w_real)
    s = ref.binarize(w_real)
    if kind == "f32":
        x = rng.standard_normal((m, k)).astype(np.float32)
        return fastbin.sign_matmul, x, w, (x, s)
    if kind == "u8":
        x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
        return fastbin.sign_matmul, x, w, (x, s)
    sa = np.where(rng.random((m, k)) < 0.5, -1.0, 1.0).astype(np.float32)
    return fastbin.binary_matmul, fastbin.pack_signs(sa), w, (sa, s)


def cell(kind, m, k, n, rounds):
    fn, a, w, (sa, s) = operands(kind, m, k, n)
    want = sa @ s
    names = {}
    tables = {"old": OLD, "new": NEW} if kind != "binary" else {"new": NEW}
    for label, table in tables.items():
        _config.TABLE = table
        got = fn(a, w, threads=False)
        if kind == "f32":
            assert np.allclose(got, want, rtol=1e-4, atol=1e-3 * np.sqrt(k)), (m, k, n)
        else:
            assert np.array_equal(got.astype(np.int64), want.astype(np.int64)), (m, k, n)
        names[label] = "" if kind == "binary" else sign_product.plan(m, k, n, a.dtype, threads=False).name
    runs = {"numpy": (None, lambda: sa @ s)}
    runs.update({label: (table, lambda: fn(a, w, threads=False)) for label, table in tables.items()})
    reps = {}
    for name, (table, f) in runs.items():
        _config.TABLE = table if table is not None else NEW
        t0 = time.perf_counter()
        f()
        reps[name] = max(1, int(0.003 / max(time.perf_counter() - t0, 1e-7)))
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds if max(reps.values()) > 1 else max(3, rounds // 2)):
        for name, (table, f) in runs.items():
            _config.TABLE = table if table is not None else NEW
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                f()
            best[name] = min(best[name], (time.perf_counter() - t0) / reps[name])
    _config.TABLE = NEW
    row = dict(kind=kind, m=m, k=k, n=n, numpy_us=best["numpy"] * 1e6)
    for label in tables:
        row.update({f"{label}_us": best[label] * 1e6, f"{label}_ratio": best["numpy"] / best[label],
                    f"{label}_path": names[label]})
    return row


def main(argv):
    kind = argv[0]
    ms, ks, ns = ([int(v) for v in a.split(",")] for a in argv[1:4])
    rounds = int(argv[4]) if len(argv) > 4 else 5
    rows = []
    for m in ms:
        for k in ks:
            for n in ns:
                row = cell(kind, m, k, n, rounds)
                rows.append(row)
                parts = [f"{kind} {m}x{k}x{n} numpy {row['numpy_us']:.1f} us"]
                parts += [f"{label} {row[label + '_us']:.1f} us {row[label + '_ratio']:.2f}x ({row[label + '_path']})"
                          for label in ("old", "new") if label + "_us" in row]
                print(" | ".join(parts), flush=True)
    if os.environ.get("GRID_JSON"):
        with open(os.environ["GRID_JSON"], "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
