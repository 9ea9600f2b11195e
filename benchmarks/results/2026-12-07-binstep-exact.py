"""The exact dense product's paths forced, against the reference, at the evaluation shapes of the
784-200-100-10 recipes (benchmarks/results/2026-12-07-binstep.md): min / median of 5 calls, ms;
every path checked equal to fastbin.reference.dense_sign_matmul bit for bit first."""
import os
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from fastbin import _config  # noqa: E402
from fastbin import reference as R  # noqa: E402
from fastbin.kernels.sign_product import plan_dense  # noqa: E402
from fastbin.ops.dense import dense_product  # noqa: E402

SHAPES = [(8192, 784, 200), (1808, 784, 200), (256, 784, 200), (64, 784, 200), (16, 784, 200), (8192, 200, 100),
          (8192, 100, 10), (8192, 784, 10), (1808, 784, 10)]
rng = np.random.default_rng(0)
print(_config.CPU_KIND, _config._MAGIC_TUPLE[1], "numba threads", numba.get_num_threads())
for m, k, n in SHAPES:
    x = rng.random((m, k), dtype=np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    want = R.dense_sign_matmul(x, w)
    paths = ["exact_rows", "exact_rows_parallel", "exact_blas"]
    if _config.FLOAT_LUT:
        paths += ["exact_lut", "exact_lut_parallel"]
    ts = {p: [] for p in paths}
    for p in paths:
        assert np.array_equal(dense_product(plan_dense(m, k, n, np.float32, exact=True, force=p), x, w), want), p
    t0 = time.perf_counter()
    R.dense_sign_matmul(x, w)
    tr = time.perf_counter() - t0
    for _ in range(5):
        for p in paths:
            pp = plan_dense(m, k, n, np.float32, exact=True, force=p)
            t0 = time.perf_counter()
            dense_product(pp, x, w)
            ts[p].append(time.perf_counter() - t0)
    cells = "; ".join(f"{p} {min(v) * 1e3:.2f}/{np.median(v) * 1e3:.2f}" for p, v in ts.items())
    print(f"{m}x{k}x{n}: planned {plan_dense(m, k, n, np.float32, exact=True).name}; reference {tr * 1e3:.2f} ms; "
          f"{cells}", flush=True)
