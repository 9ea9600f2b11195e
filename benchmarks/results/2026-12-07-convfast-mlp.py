"""The binary MLP runtime at batch 10000 (issue 25, branch ``convfast``): the fully binary MLP
784-512-512-10 of ``benchmarks/test_bench_runtime.py`` (random weights and batch-norm
statistics), loaded with ``fastbin.runtime.load`` on the numba engine, ``predict`` on 10,000
rows, uint8 and float32 input, one thread; min and median of 15 calls. Run it once per tree
and alternate, e.g. the branch's base exported to /tmp/fb-base (``git archive b9faa46 fastbin
| tar -x -C /tmp/fb-base``) then this tree:
``PYTHONPATH=/tmp/fb-base nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convfast-mlp.py``,
``nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convfast-mlp.py``."""
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numba  # noqa: E402
import numpy as np  # noqa: E402
import test_bench_runtime as B  # noqa: E402

import fastbin  # noqa: E402
import fastbin.runtime as runtime  # noqa: E402

numba.set_num_threads(1)
path = Path(tempfile.mkdtemp()) / "mlp.fbm"
B._random_model([784, 512, 512, 10]).save(path)
model = runtime.load(path, engine="numba")
rng = np.random.default_rng(0)
pixels = rng.integers(0, 256, (10_000, 784), dtype=np.uint8)
for kind, x in (("uint8", pixels), ("float32", pixels.astype(np.float32) / np.float32(256))):
    model.predict(x)
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        model.predict(x)
        times.append(time.perf_counter() - t0)
    print(f"{Path(fastbin.__file__).parent.parent}: MLP 784-512-512-10 batch 10000 {kind}: min "
          f"{1e3 * min(times):.1f} ms, median {1e3 * np.median(times):.1f} ms")
