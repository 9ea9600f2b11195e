# ruff: noqa: B023 - every lambda is timed at once, in its own iteration
r"""One process, interleaved A/B of the runtime's batch-1 call (2026-12-08-b1-batch1.md): main's
fastbin, loaded as a second copy under the package name ``fastbin_main``, against this tree's, on
the MLP 784-512-512-10 of 2026-12-07-fused-ab.py (numba engine, one thread). ``predict`` and
``logits`` on one uint8 row and one float32 row: rounds of 20 calls, A and B alternating, min and
median over the rounds (us). For this tree also the compiled entry point called alone (no Python
checks) and the fused kernel looped inside jitted code (no call at all). ``--ort``: ONNX Runtime on
the same inputs (its classes checked equal). Prints one JSON line.

    mkdir -p /tmp/b1-main && git archive main fastbin | tar -x -C /tmp/b1-main
    mv /tmp/b1-main/fastbin /tmp/b1-main/fastbin_main
    cd /tmp/b1-main/fastbin_main && sed -i 's/"fastbin\./"fastbin_main./g' __init__.py kernels/__init__.py \
        runtime/engines.py  # the lazy imports' module names (not the model format's name)
    NUMBA_NUM_THREADS=1 nice -n 10 python 2026-12-08-b1-batch1.py /tmp/b1-main [--ort] [--avx2]

``--avx2`` runs it in a child compiled for Zen 3 (NUMBA_CPU_NAME=znver3, the host's features with
AVX-512, GFNI and AVX-VNNI off: tests/test_sign_avx2.py's ``avx2_features``): the AVX2 code path
on this CPU. FUSED_MODEL (default /tmp/fused-mlp.fbm) is the model file, written on first use.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def avx2_child(argv):
    from numba.core.registry import cpu_target

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from test_sign_avx2 import avx2_features

    features = cpu_target.target_context.codegen().magic_tuple()[2]
    env = {**os.environ, "NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": avx2_features(features),
           "OPENBLAS_CORETYPE": "Haswell"}
    return subprocess.run([sys.executable, __file__, *[a for a in argv if a != "--avx2"]], env=env).returncode


def clock(fns, rounds=300, inner=20):
    """{name: (min, median)} us per call of each fn, rounds interleaved; one untimed call before
    each round (the other functions' rounds evict this one's arrays from L1/L2; without it the
    first call of each round pays those misses: in a first run main's predict on uint8 rows, timed
    right after the jitted float loops, came out at 8.5 us and its logits at 4.7 us)."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            t0 = time.perf_counter_ns()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter_ns() - t0) / inner / 1000)
    out = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = (round(ts[0], 3), round(ts[len(ts) // 2], 3))
    return out


def main(main_dir, ort_too):
    os.environ.setdefault("FASTBIN_BACKGROUND_COMPILE", "0")  # the numba engine from the first call
    sys.path.insert(0, main_dir)
    import fastbin_main.runtime as runtime_main
    import numba
    import numpy as np

    import fastbin
    import fastbin.runtime as runtime
    from fastbin import _config
    from fastbin.runtime import _fused

    sys.path.insert(0, HERE)
    fused_ab = {}
    with open(os.path.join(HERE, "2026-12-07-fused-ab.py")) as f:  # its random_model and inputs
        source = f.read()
    exec(compile(source.split("label = sys.argv[1]")[0], "fused-ab", "exec"), fused_ab)
    model_path = os.environ.get("FUSED_MODEL", "/tmp/fused-mlp.fbm")
    if not os.path.exists(model_path):
        fused_ab["random_model"]([784, 512, 512, 10]).save(model_path)
    new = runtime.load(model_path, engine="numba")
    old = runtime_main.load(model_path, engine="numba")
    assert type(old.fused).__module__ == "fastbin_main.runtime._fused", type(old.fused).__module__  # no mix
    assert type(new.fused).__module__ == "fastbin.runtime._fused"
    u1, f1 = fused_ab["inputs"](1)
    out = {"cpu": _config.CPU_KIND, "numba_cpu": os.environ.get("NUMBA_CPU_NAME", "host"),
           "threads": numba.get_num_threads(), "fastbin": os.path.dirname(fastbin.__file__)}
    for x in (u1, f1):
        for fn in ("predict", "logits"):
            a, b = getattr(old, fn)(x), getattr(new, fn)(x)
            assert a.dtype == b.dtype and np.array_equal(a, b), (fn, x.dtype)
    fns = {}
    for name, x in (("uint8", u1), ("float", f1)):
        fns[f"main_predict_{name}"] = lambda x=x: old.predict(x)
        fns[f"b1_predict_{name}"] = lambda x=x: new.predict(x)
    for name, x in (("uint8", u1), ("float", f1)):
        fns[f"main_logits_{name}"] = lambda x=x: old.logits(x)
        fns[f"b1_logits_{name}"] = lambda x=x: new.logits(x)
    # this tree's pieces: the entry point alone and the kernel looped in jitted code
    fused = new.fused
    run8, _, _, words, row, label = fused.local.u8
    made_at, few, rows, words_f, row_f, label_f, plans = fused.local.fl
    runf, first, how = plans[1]
    labels = np.empty(1, np.int64)
    fns["b1_entry_uint8"] = lambda: run8(u1, fused.data, words, row, labels, True)
    fns["b1_entry_float"] = lambda: runf(f1, first, fused.data, words_f, row_f, labels, how, True)
    k8, kf = _fused.fused_uint8, _fused.fused_float

    @numba.njit
    def loop8(n, x, data, words, row, labels):
        for _ in range(n):
            k8(x, data, words, row, labels, True)

    @numba.njit
    def loopf(n, x, first, data, words, row, labels, how):
        s = 0
        for _ in range(n):
            s += kf(x, first, data, words, row, labels, how, True)
        return s

    times = clock(fns)
    n_loop = 20  # short rounds: the min of many is the figure least disturbed by other jobs
    loops = {"b1_kernel_uint8": lambda: loop8(n_loop, u1, fused.data, words, row, labels),
             "b1_kernel_float": lambda: loopf(n_loop, f1, first, fused.data, words_f, row_f, labels, how)}
    for name, t in clock(loops, rounds=600, inner=1).items():  # one call of a loop runs n_loop kernels
        times[name] = tuple(round(v / n_loop, 3) for v in t)
    out.update({f"{k}_us": v for k, v in times.items()})
    if ort_too:
        import onnxruntime as ort

        sys.path.insert(0, os.path.dirname(HERE))
        from baselines import onnx_binary_forward

        ort_fns = {}
        for name, x in (("uint8", u1), ("float", f1)):
            fn = onnx_binary_forward(ort, model_path, x)
            assert np.array_equal(fn(), new.predict(x))
            ort_fns[f"ort_predict_{name}"] = fn
        out.update({f"{k}_us": v for k, v in clock(ort_fns, rounds=100, inner=10).items()})
    out["load"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--avx2" in args:
        sys.exit(avx2_child(sys.argv[1:]))
    main(args[0], "--ort" in args)
