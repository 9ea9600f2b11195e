# ruff: noqa: B023 - every lambda is timed at once, in its own iteration
"""Batch 10000 stage by stage (numba engine, one thread): where predict's time goes; the model file
of 2026-12-07-fused-ab.py (FUSED_MODEL, default /tmp/fused-mlp.fbm; run that script first).
usage: NUMBA_NUM_THREADS=1 2026-12-07-fused-split.py [rows]"""
import os
import sys
import time

import numba
import numpy as np

import fastbin.runtime as runtime
from fastbin import _config
from fastbin._validate import check_model_input
from fastbin.kernels.sign_product import plan

print("CPU kind", _config.CPU_KIND, "threads", numba.get_num_threads())
path = os.environ.get("FUSED_MODEL", "/tmp/fused-mlp.fbm")
model = runtime.load(path, engine="numba")
m = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
u = np.random.default_rng(3).integers(0, 256, (m, 784), dtype=np.uint8)
f = u.astype(np.float32) / np.float32(256)
eng = model.engine
s0, s1, s2 = model.stages

def t(fn, reps=5):
    fn()
    best = 1e9
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3

for name, x in (("uint8", u), ("float", f)):
    print(name, "predict total ms", t(lambda: model.predict(x)))
    if name == "uint8":
        thr, flip = s0.thresholds["uint8"]
        print("  first product path", plan(m, 784, 512, x.dtype).name)
        dot = s0.weights.dot(x)
        print("  first product ms", t(lambda: s0.weights.dot(x)))
    else:
        thr, flip = s0.thresholds["float"]
        dot = eng.sign_threshold_dot(x, s0.weights, thr).astype(s0.dtype, copy=False)
        print("  fast_dot ms", t(lambda: eng.fast_dot(np.ascontiguousarray(x), s0.weights)))
        print("  sign_threshold_dot ms (fast+refine)", t(lambda: eng.sign_threshold_dot(x, s0.weights, thr)))
    print("  threshold_pack ms", t(lambda: eng.threshold(dot, thr, flip)), dot.dtype)
    a1 = s0(x)
    print("  stage0 total ms", t(lambda: s0(x)))
    a2 = s1(a1)
    print("  stage1 (hidden 512x512 sign) ms", t(lambda: s1(a1)))
    print("  tail logits ms", t(lambda: s2(a2)))
    print("  tail + argmax ms", t(lambda: s2(a2).argmax(axis=1)))
    print("  check_model_input ms", t(lambda: check_model_input(x, 784, np.dtype(np.float32))))
