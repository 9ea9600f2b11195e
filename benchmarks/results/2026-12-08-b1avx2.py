"""The fused batch-1 pass on the AVX2 code path (benchmarks/results/2026-12-08-b1avx2.md): the
runtime's MLP 784-512-512-10 (2026-12-07-fused-ab.py's random model), numba engine, one thread.

    python 2026-12-08-b1avx2.py --avx2 predict LABEL   # batch-1 predict, uint8 and float rows
    python 2026-12-08-b1avx2.py --avx2 pieces          # the first layer and the 512 x 512 stage,
                                                       # old kernels against the byte tables, one process

``--avx2`` re-runs the script in a child compiled for Zen 3 on this CPU (NUMBA_CPU_NAME=znver3,
NUMBA_CPU_FEATURES = the host's with AVX-512, AVX10, GFNI and AVX-VNNI off, one thread everywhere),
as 2026-12-07-avx2b.py. PYTHONPATH picks the fastbin tree for ``predict`` (main's extracted with
``git archive main | tar -x -C /tmp/b1avx2-main``, or this branch); ``pieces`` needs this branch.
Prints one JSON line; times are min / median over rounds of calls (us).
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

# the numba engine from the first call (on a cold cache runtime.load would answer by the numpy
# engine while the numba one compiles in the background: fastbin/runtime/_warm.py)
os.environ.setdefault("FASTBIN_BACKGROUND_COMPILE", "0")


def avx2_env():
    from numba.core.registry import cpu_target

    features = cpu_target.target_context.codegen().magic_tuple()[2]
    not_zen3 = ("avx512", "avx10", "evex512", "gfni", "avxvnni")  # as tests/test_sign_avx2.py
    off = ",".join(("-" + f[1:]) if f.startswith("+") and any(p in f for p in not_zen3) else f
                   for f in features.split(","))
    one = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**os.environ, **one, "NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": off,
            "OPENBLAS_CORETYPE": "Haswell", "FASTBIN_BACKGROUND_COMPILE": "0"}


def random_model(sizes, seed=0):
    """2026-12-07-fused-ab.py's MLP: random weights and batch-norm statistics."""
    import fastbin.nn.model as models

    model = models.mlp(sizes, binary_weights=True, binary_activations=True, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        if "gamma" in layer.params:
            n = layer.params["gamma"].shape[0]
            layer.params["gamma"][...] = rng.normal(1.0, 0.7, n)
            layer.params["beta"][...] = rng.normal(0.0, 0.5, n)
            layer.buffers["running_mean"][...] = rng.normal(0.0, 5.0, n)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, n)
    return model


def load_model():
    import fastbin.runtime as runtime

    path = os.environ.get("FUSED_MODEL", "/tmp/b1avx2-mlp.fbm")
    if not os.path.exists(path):
        random_model([784, 512, 512, 10]).save(path)
    return runtime.load(path, engine="numba")


def inputs(m, seed=3):
    rng = np.random.default_rng(seed)
    u8 = rng.integers(0, 256, (m, 784), dtype=np.uint8)
    return u8, u8.astype(np.float32) / np.float32(256)


def small(fn, rounds=300, inner=20):
    """(min, median) us per call over ``rounds`` rounds of ``inner`` calls."""
    fn()
    best = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        best.append((time.perf_counter_ns() - t0) / inner / 1000)
    best.sort()
    return round(best[0], 3), round(best[len(best) // 2], 3)


def predict(label):
    import fastbin
    from fastbin import _config

    model = load_model()
    u1, f1 = inputs(1)
    out = {"label": label, "fastbin": os.path.dirname(fastbin.__file__), "cpu": _config._MAGIC_TUPLE[1],
           "kind": _config.CPU_KIND, "byte_tables": getattr(_config, "FUSED_BYTE_TABLES", None)}
    out["b1_uint8_us"] = small(lambda: model.predict(u1))
    out["b1_float_us"] = small(lambda: model.predict(f1))
    out["load"] = os.getloadavg()
    print(json.dumps(out))


def pieces():
    """The old kernels (bit planes one output at a time; ``xor_count`` one row of w at a time) and
    the byte tables on the same row and weights, each looped inside jitted code (no dispatch)."""
    import numba

    from fastbin import _config
    from fastbin.runtime import _fused as F

    assert _config.FUSED_BYTE_TABLES and not F._BLOCKS
    model = load_model()
    fused = model.fused
    u1, _ = inputs(1)
    words, _, _ = fused._scratch()
    ints, floats, wflat, w0 = fused.ints, fused.floats, fused.wflat, fused.w0
    n0, n_words = w0.shape
    width = int(ints[F._MAX_WORDS])
    planes = words[: 8 * n_words].reshape((n_words, 8))
    a = words[8 * n_words : 8 * n_words + width]
    extra = words[8 * n_words + 2 * width :]
    sums = np.empty(F._SUMS, np.int64)
    row, out_row = u1[0], np.zeros(10, np.float32)
    at = int(ints[F._U8_THR])
    r = F._STAGES
    n, nw, n_bits, thr, wp = (int(ints[r + f]) for f in (F._S_N, F._S_NW, F._S_BITS, F._S_THR, F._S_W))
    w1 = wflat[wp : wp + n * nw].reshape((n, nw))
    out_old, out_new = np.zeros(8, np.uint64), np.zeros(8, np.uint64)

    @numba.njit
    def first_old(reps, row, w0, planes, ints, floats, at, sums, a, out_row):
        for _ in range(reps):
            F._first_layer_planes(row, w0, planes, False, ints, floats, at, sums, a, out_row)

    @numba.njit
    def first_new(reps, row, n0, n_words, wflat, ints, floats, at, extra, a, out_row):
        for _ in range(reps):
            F._first_tables_impl(row, n0, n_words, wflat, ints, floats, False, at, extra, a, out_row)

    @numba.njit
    def stage_old(reps, a, w, n_bits, ints, at, out, counts):
        for _ in range(reps):
            F._packed_stage(a, w, n_bits, ints, at, out, counts)

    @numba.njit
    def stage_new(reps, a, wflat, p0, n, n_bits, ints, at, out, extra):
        for _ in range(reps):
            F._stage_tables_impl(a, wflat, p0, n, n_bits, ints, at, out, extra)

    first_old(1, row, w0, planes, ints, floats, at, sums, a, out_row)
    want = a.copy()
    first_new(1, row, n0, n_words, wflat, ints, floats, at, extra, a, out_row)
    assert np.array_equal(a, want)
    act = a[:nw].copy()
    stage_old(1, act, w1, n_bits, ints, thr, out_old, sums)
    stage_new(1, act, wflat, wp + n * nw, n, n_bits, ints, thr, out_new, extra)
    assert np.array_equal(out_old, out_new)
    # float rows: the first layer's fast product, the int8 rows kernel (main's plan at m = 1) and
    # the word-form lookups (this branch's), before the refinement near the thresholds
    from fastbin.kernels.sign_product.avx2_dwords import sign_dot_dwords
    from fastbin.kernels.sign_product.portable import sign_dot_rows

    _, f1 = inputs(1)
    dot_a, dot_b = np.empty((1, n0), np.float32), np.empty((1, n0), np.float32)
    tab, acc = fused.local.tables  # made by fused._scratch() above

    @numba.njit
    def dot_rows(reps, x, rows, out):
        for _ in range(reps):
            sign_dot_rows(x, rows, out)

    @numba.njit
    def dot_dwords(reps, x, wt, out, tab, acc):
        for _ in range(reps):
            sign_dot_dwords(x, wt, out, tab, acc)

    dot_rows(1, f1, fused.rows0, dot_a)
    dot_dwords(1, f1, fused.dwords0, dot_b, tab, acc)
    bound = np.abs(f1.astype(np.float64)).sum() * 784 * 2.0**-24
    assert np.abs(dot_a - dot_b).max() <= bound
    reps = 50
    res = {"cpu": _config._MAGIC_TUPLE[1], "kind": _config.CPU_KIND}
    for _ in range(3):  # alternate: the machine's load moves between the rounds
        for name, fn in (("dot_rows", lambda: dot_rows(reps, f1, fused.rows0, dot_a)),
                         ("dot_dwords", lambda: dot_dwords(reps, f1, fused.dwords0, dot_b, tab, acc)),
                         ("first_old", lambda: first_old(reps, row, w0, planes, ints, floats, at, sums, a, out_row)),
                         ("first_new", lambda: first_new(reps, row, n0, n_words, wflat, ints, floats, at, extra, a,
                                                         out_row)),
                         ("stage_old", lambda: stage_old(reps, act, w1, n_bits, ints, thr, out_old, sums)),
                         ("stage_new", lambda: stage_new(reps, act, wflat, wp + n * nw, n, n_bits, ints, thr, out_new,
                                                         extra))):
            lo, med = small(fn, rounds=100, inner=1)
            best = res.get(name, (1e9, 1e9))
            res[name] = (min(best[0], round(lo / reps, 3)), round(med / reps, 3))
    res["load"] = os.getloadavg()
    print(json.dumps(res))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--avx2":
        sys.exit(subprocess.run([sys.executable, __file__, *args[1:]], env=avx2_env()).returncode)
    if args[0] == "predict":
        predict(args[1] if len(args) > 1 else "")
    else:
        pieces()
