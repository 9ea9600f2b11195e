"""bnn-conv on the numba engine at batch 1 and 128 (issue 25, branch ``convb1``): the direct one-call
pass (``fastbin.kernels.conv.direct``) against main's one-call pass (``kernels/conv/chain.py`` and
its ``ConvChain``, loaded from ``$MAIN``: a checkout of 621d6d7 or older, which still has
chain.py (default /work/main, as when this was written), into this process beside this tree's
kernels, which it shares) and ONNX Runtime (the suite's graph, one thread), in alternating blocks
in one process: min and median per implementation and the median ratio of adjacent blocks.
Classes (and the two passes' logits) are checked equal first. Run from the repository root:
``nice -n 10 .venv/bin/python benchmarks/results/2026-12-08-convb1.py`` (needs onnxruntime, onnx)."""
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numba  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import test_bench_conv as B  # noqa: E402

import fastbin.runtime as runtime  # noqa: E402
from fastbin.kernels.conv import direct  # noqa: E402

numba.set_num_threads(1)
MAIN = Path(os.environ.get("MAIN", "/work/main"))


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


model_file = load_module("convfast_model", HERE / "2026-12-07-convfast-model.py")
# main's chain under its own name: its relative imports resolve in this tree's packages (unchanged kernels)
sys.modules["fastbin.kernels.conv.chain"] = load_module("fastbin.kernels.conv.chain",
                                                        MAIN / "fastbin/kernels/conv/chain.py")
old = load_module("fastbin.runtime._main_conv_numba", MAIN / "fastbin/runtime/_conv_numba.py")

path = model_file.bnn_file(tempfile.mkdtemp())
new_model = runtime.load(path, engine="numba")
old_model = runtime.load(path, engine="numba")
assert type(new_model.fused).__name__ == "DirectChain"
old_model.fused = old.ConvChain(old_model)
session, out = B._onnx_bnn(ort, path)

check = np.random.default_rng(2).integers(0, 256, (300, 28, 28, 1), dtype=np.uint8)
np.testing.assert_array_equal(new_model.forward(check[:64]), old_model.forward(check[:64]))
expected = old_model.predict(check)
np.testing.assert_array_equal(new_model.predict(check), expected)
np.testing.assert_array_equal(session.run([out], {"x": check.reshape(-1, 1, 28, 28)})[0], expected)
assert len(np.unique(expected)) > 1


def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def rounds(fns, n, inner):
    """Alternating blocks of ``inner`` calls of each of ``fns``: per-call times (n, len(fns))."""
    for f in fns:
        f()
    times = np.empty((n, len(fns)))
    for r in range(n):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(inner):
                f()
            times[r, i] = (time.perf_counter() - t0) / inner
    return times


print(f"CPU: {cpu()}, numba {numba.__version__}, onnxruntime {ort.__version__}, "
      f"load average {os.getloadavg()[0]:.1f}")
for m, n, inner in ((1, 200, 20), (128, 20, 2)):
    x = np.random.default_rng(1).integers(0, 256, (m, 28, 28, 1), dtype=np.uint8)
    feed = {"x": x.reshape(m, 1, 28, 28)}
    chain = new_model.fused
    logits = np.empty((m, 10), chain.consts.dtype)

    def kernel(x=x, logits=logits, chain=chain):
        direct.direct_chain(x, chain.ints, chain.f32, chain.wbits, chain.thr, chain.masks, chain.tail_w,
                            chain.consts, logits)

    names = ["onnxruntime", "main (chain)", "convb1 (direct)", "convb1 kernel alone"]
    fns = [lambda feed=feed: session.run([out], feed)[0], lambda x=x: old_model.predict(x),
           lambda x=x: new_model.predict(x), kernel]
    for p in range(int(os.environ.get("PASSES", "2"))):
        t = rounds(fns, n, inner)
        unit, scale = ("us", 1e6) if m == 1 else ("ms", 1e3)
        print(f"-- batch {m}, pass {p + 1}, load {os.getloadavg()[0]:.1f}")
        for i, name in enumerate(names):
            lo, med = scale * t[:, i].min(), scale * np.median(t[:, i])
            print(f"{name:22s} min {lo:8.1f} {unit}  median {med:8.1f} {unit}")
        for a, b in ((0, 2), (1, 2), (0, 1)):
            print(f"{names[a]} / {names[b]}: median pair ratio {np.median(t[:, a] / t[:, b]):.2f}x, "
                  f"min/min {t[:, a].min() / t[:, b].min():.2f}x")
