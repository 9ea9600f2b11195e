"""One process: batch-1 and batch-10000 predict of the runtime's MLP 784-512-512-10 (numba engine,
one thread) and ONNX Runtime on the same inputs. Prints one JSON line.
usage: 2026-12-07-fused-ab.py LABEL [--ort] [--big]  (PYTHONPATH picks the fastbin tree: main's code
extracted with `git archive main | tar -x -C /tmp/fused-before`, or this branch)"""
import json
import os
import sys
import time

import numpy as np

import fastbin
import fastbin.runtime as runtime


def random_model(sizes, seed=0):
    """benchmarks/test_bench_runtime.py's MLP: random weights and batch-norm statistics."""
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


def inputs(m, seed=3):
    """uint8 pixels and the float input pixels / 256 (exact products: ORT must agree)."""
    rng = np.random.default_rng(seed)
    u8 = rng.integers(0, 256, (m, 784), dtype=np.uint8)
    return u8, u8.astype(np.float32) / np.float32(256)


label = sys.argv[1]
MODEL = os.environ.get("FUSED_MODEL", "/tmp/fused-mlp.fbm")
if not os.path.exists(MODEL):
    random_model([784, 512, 512, 10]).save(MODEL)
model = runtime.load(MODEL, engine="numba")
u1, f1 = inputs(1)
out = {"label": label, "fastbin": os.path.dirname(fastbin.__file__)}

def small(fn, rounds=300, inner=20):
    fn()
    best = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        best.append((time.perf_counter_ns() - t0) / inner / 1000)
    best.sort()
    return round(best[0], 3), round(best[len(best) // 2], 3)

def big(fn, rounds=7):
    fn()
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return round(ts[0], 2), round(ts[len(ts) // 2], 2)

out["b1_uint8_us"] = small(lambda: model.predict(u1))
out["b1_float_us"] = small(lambda: model.predict(f1))
if "--ort" in sys.argv:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import onnxruntime as ort
    from baselines import onnx_binary_forward
    for name, x in (("uint8", u1), ("float", f1)):
        fn = onnx_binary_forward(ort, MODEL, x)
        assert np.array_equal(fn(), model.predict(x))
        out[f"ort_b1_{name}_us"] = small(fn, rounds=100, inner=10)
if "--big" in sys.argv:
    u, f = inputs(10000, seed=7)
    out["b10000_uint8_ms"] = big(lambda: model.predict(u))
    out["b10000_float_ms"] = big(lambda: model.predict(f))
    if "--ort" in sys.argv:
        for name, x in (("uint8", u), ("float", f)):
            fn = onnx_binary_forward(ort, MODEL, x)
            assert np.array_equal(fn(), model.predict(x))
            out[f"ort_b10000_{name}_ms"] = big(fn, rounds=3)
out["load"] = os.getloadavg()
print(json.dumps(out))
