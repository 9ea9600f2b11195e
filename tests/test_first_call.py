"""A public op's first call compiles the kernels it runs, not their siblings (issue 26, item 2:
the first call on an empty Numba cache; its time is the benchmark suite's,
``benchmarks/test_bench_runtime.py`` ``first_call_cold``): in a fresh process, after the
threaded ``binary_matmul`` and ``binary_dense_sign`` from 8 rows and the serial
``linear_softmax_cross_entropy`` on class labels, the kernels none of them runs have no
compiled overload (the row blocks, ``_dots`` with both branches, the targets' cross-entropy
block), and the ones they run have one. The results are checked against ``fastbin.reference`` there too."""
import json
import os
import subprocess
import sys

import numba
import pytest

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no compiles under NUMBA_DISABLE_JIT=1")

_CHILD = """
import json
import numpy as np
import fastbin as fb
from fastbin import reference as R
from fastbin.kernels.binary_product import blocked
from fastbin.kernels import linear_ce, softmax_ce

rng = np.random.default_rng(0)
a = fb.pack_signs(rng.standard_normal((20, 130)))
w = fb.pack_weights(rng.standard_normal((130, 70)))
assert (fb.binary_matmul(a, w, threads=True) == R.binary_matmul(a, w)).all()
t, fl = rng.integers(-130, 130, 70), rng.random(70) < 0.5
assert (fb.binary_dense_sign(a, w, t, fl, threads=True).bits == R.binary_dense_sign(a, w, t, fl).bits).all()
x, wf = rng.standard_normal((20, 30)), rng.standard_normal((30, 3))
b, y = rng.standard_normal(3), rng.integers(0, 3, 20)
loss = fb.linear_softmax_cross_entropy(x, wf, b, y, threads=False)[0]
assert abs(loss - R.linear_softmax_cross_entropy(x, wf, b, y)[0]) < 1e-9
compiled = {name: len(getattr(module, name).overloads) for module, names in (
    (blocked, ["binary_matmul_parallel", "binary_dense_sign_parallel", "_dots", "_dots_rows", "_threshold_rows"]),
    (linear_ce, ["linear_softmax_ce_labels", "_rows_loss_grad"]),
    (softmax_ce, ["ce_block_labels", "ce_block_targets"])) for name in names}
print(json.dumps(compiled))
"""


def test_first_calls_compile_what_they_run():
    env = {**os.environ, "FASTBIN_NO_CACHE": "1"}  # compile in this process: no cache to load from
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=1200,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    compiled = json.loads(done.stdout.strip().splitlines()[-1])
    ran = ("binary_matmul_parallel", "binary_dense_sign_parallel", "linear_softmax_ce_labels", "_rows_loss_grad",
           "ce_block_labels")
    assert all(compiled[name] == 1 for name in ran), compiled
    # not run: the row blocks (8+ rows of a and w take the lanes alone), the serial kernels'
    # shape switch, the targets' cross-entropy block
    assert not any(compiled[name] for name in compiled if name not in ran), compiled
