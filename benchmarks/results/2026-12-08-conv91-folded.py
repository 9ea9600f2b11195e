"""Folded == unfolded on every Fashion-MNIST test image (uint8) for a saved conv model: the trainable
model (fastbin.nn.load) against the packed runtime on both engines (fastbin.runtime.load), logits bit for bit.

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/results/2026-12-08-conv91-folded.py m.fbm
"""
import json
import sys

import fastbin.runtime
from fastbin.nn import load
from fastbin.tools.demo import load_data

path = sys.argv[1]
data = load_data()
n = int(sys.argv[2]) if len(sys.argv) > 2 else len(data.y_test)  # a quick check on the first n images
x, y = data.x_test[:n], data.y_test[:n]
unfolded = load(path).forward(x)
out = dict(model=path, images=len(y), unfolded_acc=round(100 * float((unfolded.argmax(1) == y).mean()), 2))
for engine in ("numba", "numpy"):
    folded = fastbin.runtime.load(path, engine=engine).logits(x)
    out[f"{engine}_acc"] = round(100 * float((folded.argmax(1) == y).mean()), 2)
    out[f"{engine}_equal_logits"] = int((folded == unfolded).all(axis=1).sum())
    out[f"{engine}_equal_classes"] = int((folded.argmax(1) == unfolded.argmax(1)).sum())
print(json.dumps(out), flush=True)
sys.exit(0 if all(out[f"{e}_equal_logits"] == len(y) for e in ("numba", "numpy")) else 1)
