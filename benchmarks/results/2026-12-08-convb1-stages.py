"""Where the direct one-call pass of bnn-conv spends its time at batch 1 (issue 25, branch ``convb1``):
``direct_chain`` with its stage count cut to 1, 2, 3, 4 (the tail's product and formula always run, on
whatever words the last stage left), min and median of 500 calls each, one thread. Run from the
repository root: ``nice -n 10 .venv/bin/python benchmarks/results/2026-12-08-convb1-stages.py``."""
import importlib.util
import tempfile
import time

import numba
import numpy as np

import fastbin.runtime as runtime
from fastbin.kernels.conv import direct

numba.set_num_threads(1)
spec = importlib.util.spec_from_file_location("m", "benchmarks/results/2026-12-07-convfast-model.py")
mf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mf)
path = mf.bnn_file(tempfile.mkdtemp())
model = runtime.load(path, engine="numba")
x = np.random.default_rng(1).integers(0, 256, (1, 28, 28, 1), dtype=np.uint8)
model.predict(x)
c = model.fused
dot = np.empty((1, 10), c.consts.dtype)
for stages in (1, 2, 3, 4):
    ints = c.ints.copy()
    ints[direct.H_STAGES] = stages

    def k(ints=ints):
        direct.direct_chain(x, ints, c.f32, c.wbits, c.thr, c.masks, c.tail_w, c.consts, dot)
    k()
    t = []
    for _ in range(500):
        t0 = time.perf_counter()
        k()
        t.append(time.perf_counter() - t0)
    print(stages, "stages: kernel min us", round(1e6 * min(t), 1), "median", round(1e6 * np.median(t), 1))
