"""Where bnn-conv's time goes at batch 1 (and 128) on the numba engine (issue 25, branch
``convfast``): each stage of the loaded ``PackedConvModel`` timed alone (min and median of
many calls, one thread), the first stage both ways (the direct uint8 kernel and the general
route: patches + the exact uint8 product + thresholds), and the whole ``predict``. The model is
``benchmarks/results/2026-12-07-convrt-abab.py``'s (``bnn_conv()``, batch-norm statistics from
random images). Run from the repository root:
``nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convfast-stages.py``."""
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numba  # noqa: E402
import numpy as np  # noqa: E402

import fastbin.runtime as runtime  # noqa: E402

numba.set_num_threads(1)
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
spec = importlib.util.spec_from_file_location("abab_model", HERE / "2026-12-07-convfast-model.py")
model_file = importlib.util.module_from_spec(spec)
spec.loader.exec_module(model_file)


def timed(f, n):
    f()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


path = model_file.bnn_file(tempfile.mkdtemp())
model = runtime.load(path, engine="numba")
def stages(x, n):
    a = x
    for i, stage in enumerate(model.stages):
        lo, med = timed(lambda: stage(a), n)  # noqa: B023 - timed runs it now
        print(f"stage {i} ({stage.kind}): min {1e6 * lo:.1f} us, median {1e6 * med:.1f} us")
        if i == 0 and stage.direct is not None:
            direct, stage.direct = stage.direct, None
            lo, med = timed(lambda: stage(a), n)  # noqa: B023
            general = stage(a)
            stage.direct = direct
            assert (general == stage(a)).all()
            print(f"stage 0 general route (patches + uint8 product + threshold): min {1e6 * lo:.1f} us, "
                  f"median {1e6 * med:.1f} us")
        a = stage(a)
    lo, med = timed(lambda: model.predict(x), n)
    print(f"predict: min {1e6 * lo:.1f} us, median {1e6 * med:.1f} us")


for m, n in ((1, 2000), (128, 30)):
    print(f"-- batch {m}")
    stages(np.random.default_rng(1).integers(0, 256, (m, 28, 28, 1), dtype=np.uint8), n)
