"""Start-up of fastbin in fresh processes: the first call of each public op on a cold Numba
cache, and the first prediction of the runtime on a warm one (not a test module: the
benchmark suite, ``benchmarks/test_bench_runtime.py``, and this script share it).

A cold cache is an empty temporary ``NUMBA_CACHE_DIR``: Numba then looks for cached kernels
there only (its user-provided locator comes first), as a new install, a container or a fresh
Dask worker would. Each case runs in its own process: ``import fastbin`` and the case's
imports, its inputs (NumPy, plus any fastbin call the inputs need, e.g. ``pack_signs`` before
``binary_matmul``: that op's own case times it), then the first call and a second one (the
difference is the compilation, or the cache loading). The numbers are the child's
``time.perf_counter()`` differences; interpreter start-up is outside them.

    python benchmarks/cold_start.py [--rounds N] [--warm] [--profile] [CASE ...]

``--warm``: the same cases on a cache the first round filled (what a second process pays).
``--profile``: per jitted function, the compile time Numba reports (inclusive of callees
compiled meanwhile) and whether it came from the cache. Prints one table (Markdown).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

__all__ = ["CASES", "RUNTIME_CASES", "CASE_ENV", "child_code", "describe", "start_case", "run_case", "fresh_env",
           "avx2_cpu", "EXTRA_ENV", "model_file", "PREDICT", "BASELINES"]

_INPUTS = """
rng = np.random.default_rng(0)
def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)
def u8(*shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)
"""

#: case -> (setup, call): ``setup`` builds the inputs (``fb`` is ``fastbin``), ``call`` is timed.
CASES: dict[str, tuple[str, str]] = {
    "pack_weights": ("w = f32(784, 512)", "fb.pack_weights(w)"),
    "pack_signs_128": ("x = f32(128, 784)", "fb.pack_signs(x)"),
    "pack_signs_10000": ("x = f32(10000, 784)", "fb.pack_signs(x)"),
    "unpack_signs": ("p = fb.pack_weights(f32(784, 512))", "fb.unpack_signs(p)"),
    "binary_matmul_1": ("a = fb.pack_signs(f32(1, 784)); w = fb.pack_weights(f32(784, 512))",
                        "fb.binary_matmul(a, w)"),
    "binary_matmul_128": ("a = fb.pack_signs(f32(128, 784)); w = fb.pack_weights(f32(784, 512))",
                          "fb.binary_matmul(a, w)"),
    "binary_matmul_2048": ("a = fb.pack_signs(f32(2048, 2048)); w = fb.pack_weights(f32(2048, 2048))",
                           "fb.binary_matmul(a, w)"),
    "binary_dense_sign_128": ("a = fb.pack_signs(f32(128, 784)); w = fb.pack_weights(f32(784, 512)); "
                              "t = np.zeros(512, np.int64); fl = np.zeros(512, bool)",
                              "fb.binary_dense_sign(a, w, t, fl)"),
    "sign_matmul_f32_1": ("x = f32(1, 784); w = fb.pack_weights(f32(784, 512))", "fb.sign_matmul(x, w)"),
    "sign_matmul_f32_128": ("x = f32(128, 784); w = fb.pack_weights(f32(784, 512))", "fb.sign_matmul(x, w)"),
    "sign_matmul_u8_1": ("x = u8(1, 784); w = fb.pack_weights(f32(784, 512))", "fb.sign_matmul(x, w)"),
    "sign_matmul_u8_128": ("x = u8(128, 784); w = fb.pack_weights(f32(784, 512))", "fb.sign_matmul(x, w)"),
    "dense_sign_matmul_128": ("x = f32(128, 784); w = f32(784, 512)", "fb.dense_sign_matmul(x, w)"),
    "signs": ("x = f32(128, 784)", "fb.signs(x)"),
    "unit_from_uint8": ("x = u8(128, 784)", "fb.unit_from_uint8(x)"),
    "softmax_cross_entropy": ("z = f32(128, 10); y = rng.integers(0, 10, 128)", "fb.softmax_cross_entropy(z, y)"),
    "linear_softmax_cross_entropy": ("x = f32(128, 784); w = f32(784, 10); b = f32(10); "
                                     "y = rng.integers(0, 10, 128)",
                                     "fb.linear_softmax_cross_entropy(x, w, b, y)"),
    "sgd_update": ("p = f32(784, 512); g = f32(784, 512)", "fb.sgd_update(p, g, 0.01)"),
    "adam_update": ("p = f32(784, 512); g = f32(784, 512); m = np.zeros_like(p); v = np.zeros_like(p)",
                    "fb.adam_update(p, g, m, v, 0)"),
    "batch_norm_train": ("z = f32(128, 512); o = np.ones(512, np.float32); n = np.zeros(512, np.float32)",
                         "fb.batch_norm_train(z, o, n, n.copy(), o.copy(), 0.9, 1e-5)"),
    "batch_norm_sign_train": ("z = f32(128, 512); o = np.ones(512, np.float32); n = np.zeros(512, np.float32)",
                              "fb.batch_norm_sign_train(z, o, n, n.copy(), o.copy(), 0.9, 1e-5)"),
    "batch_norm_backward": ("z = f32(128, 512); o = np.ones(512, np.float32); "
                            "y, xh, inv = fb.reference.batch_norm_train(z, o, 0 * o, 0 * o, o.copy(), 0.9, 1e-5)",
                            "fb.batch_norm_backward(f32(128, 512), xh, inv, o)"),
}

#: The runtime: ``fastbin.runtime.load`` + the first ``predict`` of one row (``MODEL`` is the file).
RUNTIME_CASES: dict[str, tuple[str, str]] = {
    f"runtime_{engine}_{kind}": (
        "import fastbin.runtime as rt\nx = "
        + ("u8(1, 784)" if kind == "uint8" else "rng.random((1, 784), dtype=np.float32)"),
        f"rt.load(MODEL, engine={engine!r}).predict(x)",
    )
    for engine in ("numba", "numpy")
    for kind in ("float", "uint8")
}
_FLOAT_ROW = "import fastbin.runtime as rt\nx = rng.random((1, 784), dtype=np.float32)"
RUNTIME_CASES.update({
    # the numba engine without the numpy stand-in: compiled in the first call (before _warm)
    "runtime_numba_float_inline": (_FLOAT_ROW, "rt.load(MODEL, engine='numba').predict(x)"),
    # load, a first prediction (the stand-in on a cold cache), then until the numba engine predicts
    "runtime_numba_float_switch": (_FLOAT_ROW, "(lambda m: (m.predict(x), getattr(m, 'warmup', None) "
                                               "and m.warmup.wait(), m.predict(x), m.engine.name))"
                                               "(rt.load(MODEL, engine='numba'))"),
})
#: A yardstick of the machine's state: the first compile of a trivial ``@numba.njit`` loop in a
#: fresh process (Numba's one-time registry refresh and LLVM's first compile).
CASES["njit_trivial"] = ("import numba\n@numba.njit\ndef f(n):\n    s = 0\n    for i in range(n):\n"
                         "        s += i\n    return s", "f(10)")
#: Environment of a case beyond ``fresh_env``.
CASE_ENV: dict[str, dict[str, str]] = {"runtime_numba_float_inline": {"FASTBIN_BACKGROUND_COMPILE": "0"}}

_CHILD = """\
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastbin as fb
MODEL = sys.argv[1]
PROFILE = sys.argv[2] == "1"
INTERACTIVE = sys.argv[3] == "1"  # "ready", then the first call when a line comes in, then "first-done"
t1 = time.perf_counter()
{inputs}
{setup}
events = []
if PROFILE:
    from numba.core import event as ev
    class Listener(ev.Listener):
        def on_start(self, event):
            events.append((time.perf_counter(), "start", event))
        def on_end(self, event):
            events.append((time.perf_counter(), "end", event))
    listener = Listener()
    ev.register("numba:compile", listener)
if INTERACTIVE:
    print("ready", flush=True)
    sys.stdin.readline()
t2 = time.perf_counter()
first = {call}
t3 = time.perf_counter()
if INTERACTIVE:
    print("first-done", flush=True)
second = {call}
t4 = time.perf_counter()
compiled = []
if PROFILE:
    starts = {{}}
    for t, what, event in events:
        disp = event.data["dispatcher"]
        key = (disp.py_func.__module__ + "." + disp.py_func.__qualname__, str(event.data["args"]))
        if what == "start":
            starts[key] = t
        else:
            compiled.append([key[0], key[1][:80], round(t - starts.pop(key), 4)])
loaded = 0
if "numba" in sys.modules:
    from numba.core.registry import CPUDispatcher
    import gc
    for obj in gc.get_objects():
        if isinstance(obj, CPUDispatcher):
            loaded += sum(obj.stats.cache_hits.values())
print(json.dumps({{"import": t1 - t0, "first": t3 - t2, "second": t4 - t3, "compiled": compiled,
                  "cache_hits": loaded, "numba": "numba" in sys.modules}}))
"""


#: Added to every child's environment: ``--avx2`` puts ``avx2_cpu()`` here (children compile for Zen 3
#: with every AVX-512 feature off, the CPU of issue 26's figures); a before/after script a
#: ``PYTHONPATH`` to another tree of fastbin.
EXTRA_ENV: dict[str, str] = {}


def avx2_cpu() -> dict[str, str]:
    """``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` of a Zen 3 from this host's features, AVX-512 off
    (as ``tests/test_sign_avx2.py``)."""
    import llvmlite.binding as ll

    features = ll.get_host_cpu_features().flatten()
    off = ",".join(("-" + f[1:]) if f.startswith("+") and any(p in f for p in ("avx512", "avx10", "evex512"))
                   else f for f in features.split(","))
    return {"NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": off}


def fresh_env(cache_dir: str | None, case: str | None = None) -> dict:
    """The environment of a child: Numba's cache in ``cache_dir`` (None: the default), every
    fastbin/Numba choice left at its default (no forced engine, no cache switch, all threads)
    but those of ``CASE_ENV[case]``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTBIN_ENGINE", "FASTBIN_NO_CACHE", "FASTBIN_BACKGROUND_COMPILE", "NUMBA_CACHE_DIR",
                        "NUMBA_DISABLE_JIT")}
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    env.update(EXTRA_ENV)
    env.update(CASE_ENV.get(case, {}))
    return env


def child_code(name: str) -> str:
    """The child's program for case ``name`` (of ``CASES`` or ``RUNTIME_CASES``); its arguments:
    the model file (or ``-``), ``1`` to profile Numba's compiles, ``1`` to wait for a line on
    stdin before the first call (after printing ``ready``; ``first-done`` after it)."""
    setup, call = {**CASES, **RUNTIME_CASES}[name]
    return _CHILD.format(inputs=_INPUTS, setup=setup, call=call)


def describe(name: str) -> str:
    """What case ``name`` times: its call and its inputs."""
    setup, call = {**CASES, **RUNTIME_CASES}[name]
    return f"{call} with {setup.replace(chr(10), '; ')}"


def start_case(name: str, cache_dir: str | None, model: str = "-") -> subprocess.Popen:
    """Case ``name`` in a fresh process (Numba's cache in ``cache_dir``), stopped before its
    first call: it has printed ``ready``; send a line to make the call, read ``first-done``."""
    child = subprocess.Popen([sys.executable, "-c", child_code(name), model, "0", "1"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fresh_env(cache_dir, name),
                             cwd=tempfile.gettempdir())
    line = child.stdout.readline().strip()
    if line != "ready":
        child.kill()
        raise RuntimeError(f"case {name} failed before its first call: {line} {child.stderr.read()[-3000:]}")
    return child


def run_case(name: str, cache_dir: str | None, model: str = "-", profile: bool = False) -> dict:
    """Run case ``name`` (of ``CASES`` or ``RUNTIME_CASES``) in a fresh process with Numba's
    cache in ``cache_dir``; the child's timings (seconds) and, with ``profile``, its compiles."""
    done = subprocess.run([sys.executable, "-c", child_code(name), model, "1" if profile else "0", "0"],
                          capture_output=True, text=True, env=fresh_env(cache_dir, name), timeout=1800, check=False,
                          cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(f"case {name} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def model_file(path: str) -> str:
    """Save the random fully binary MLP 784-512-512-10 of the runtime benchmarks to ``path``."""
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[2])
        from test_bench_runtime import _random_model
        _random_model([784, 512, 512, 10]).save(sys.argv[1])
    """)
    subprocess.run([sys.executable, "-c", code, path, os.path.dirname(os.path.abspath(__file__))], check=True,
                   env={**fresh_env(None), "PYTHONPATH": ""}, cwd=tempfile.gettempdir())
    return path


#: A fresh process to its first prediction (``sys.argv[1]`` the model file, ``[2]`` the engine).
PREDICT = (
    "import sys\n"
    "import numpy as np\n"
    "import fastbin.runtime\n"
    "model = fastbin.runtime.load(sys.argv[1], engine=sys.argv[2])\n"
    "print(int(model.predict(np.full((1, 784), 0.5, np.float32))[0]))\n"
)
#: The baselines of the warm start: a fresh process that imports only Numba, or only NumPy.
BASELINES = {"import-numba": "import numba\nprint(0)\n", "import-numpy": "import numpy\nprint(0)\n"}


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warm", action="store_true", help="also time a second process on the filled cache")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--avx2", action="store_true", help="compile for Zen 3, AVX-512 off (NUMBA_CPU_NAME)")
    args = parser.parse_args(argv)
    if args.avx2:
        EXTRA_ENV.update(avx2_cpu())
    names = args.cases or [*CASES, *RUNTIME_CASES]
    with tempfile.TemporaryDirectory(prefix="fastbin-cold-") as tmp:
        model = model_file(os.path.join(tmp, "mlp.fbm")) if any(n in RUNTIME_CASES for n in names) else "-"
        print("| case | import s | first call s (cold) | second call s | first call s (warm cache) | hits |")
        print("|---|---|---|---|---|---|")
        for name in names:
            firsts, imports, seconds, warms, profile = [], [], [], [], None
            for r in range(args.rounds):
                cache = os.path.join(tmp, f"cache-{name}-{r}")
                out = run_case(name, cache, model, args.profile and r == 0)
                firsts.append(out["first"])
                imports.append(out["import"])
                seconds.append(out["second"])
                profile = profile or out["compiled"]
                if args.warm:
                    warms.append(run_case(name, cache, model)["first"])
            warm = f"{statistics.median(warms):.3f}" if warms else ""
            print(f"| {name} | {statistics.median(imports):.3f} | {statistics.median(firsts):.3f} | "
                  f"{statistics.median(seconds):.4f} | {warm} | {out['cache_hits']} |", flush=True)
            if profile:
                for func, sig, seconds_ in sorted(profile, key=lambda row: -row[2])[:25]:
                    print(f"|   {func} | {sig} | {seconds_:.3f} | | | |")


if __name__ == "__main__":
    _main()
