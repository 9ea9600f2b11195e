"""Alternating rounds (ORT, fastbin numba, ORT, fastbin numba, ...) of the two bars of issue 25:
the binary conv layer (3x3, 64 -> 64, 14x14) at batch 128 and bnn-conv at batch 1, the ratio taken
per adjacent pair so that the shared machine's load drift cancels. One thread everywhere.
Run from the repository root: ``nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convrt-abab.py``
(needs onnxruntime and onnx). Graphs and models are those of ``benchmarks/test_bench_conv.py``."""
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import test_bench_conv as B  # noqa: E402
from onnx import TensorProto  # noqa: E402

import fastbin.runtime as runtime  # noqa: E402
from fastbin.nn import BatchNorm  # noqa: E402
from fastbin.nn.model import bnn_conv  # noqa: E402
from fastbin.reference import pack_weights  # noqa: E402

numba.set_num_threads(1)


def bnn_file(folder):
    """bnn_conv() as the suite's fixture builds it (batch-norm statistics from random images)."""
    rng = np.random.default_rng(0)
    model = bnn_conv(seed=0)
    h = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            z = h.reshape(-1, layer.n).astype(np.float64)
            layer.buffers["running_mean"][...] = z.mean(axis=0)
            layer.buffers["running_var"][...] = z.var(axis=0) + 1.0
            layer.params["gamma"][...] *= np.where(rng.random(layer.n) < 0.3, -1, 1)
            layer.params["beta"][...] = rng.normal(0, 0.2, layer.n)
        h = layer.forward(h)
    path = Path(folder) / "bnn_conv.fbm"
    model.save(path)
    return path


rng = np.random.default_rng(25)
w = pack_weights(rng.standard_normal((576, 64)).astype(np.float32))
t = rng.integers(-40, 41, 64).astype(np.int64)
flip = rng.random(64) < 0.3
bits, words = B._layer_input(rng, 128)
eng = runtime.get_engine("numba")
weights = B.SignWeights(eng, B.pixel_words(w, 9, 64), np.float32)
g = (3, 3, 1, 1, 1, 1, 14, 14, "same")


def fb():
    return eng.dense_sign(eng.patches(words, g, np.uint64(0)), weights, t, flip)


graph = B._Graph()
out = graph.sign_stage("x", B._oihw(w, 3, 3, 64), (1, 1, 1, 1), 1, (1, 1), t, flip, None)
sess = B._ort_session(ort, graph.model(TensorProto.FLOAT, ["m", 64, 14, 14], out, TensorProto.FLOAT))
feed = {"x": np.ascontiguousarray(np.where(bits, -1.0, 1.0).astype(np.float32).transpose(0, 3, 1, 2))}


def fo():
    return sess.run([out], feed)[0]


a = np.unpackbits(fb().view(np.uint8), axis=1, bitorder="little").astype(bool).reshape(128, 14, 14, 64)
assert (a == (fo().transpose(0, 2, 3, 1) < 0)).all()

path = bnn_file(tempfile.mkdtemp())
model = runtime.load(path, engine="numba")
x1 = np.random.default_rng(1).integers(0, 256, (1, 28, 28, 1), dtype=np.uint8)
s2, o2 = B._onnx_bnn(ort, path)


def f2o():
    return s2.run([o2], {"x": x1.reshape(1, 1, 28, 28)})[0]


def f2b():
    return model.predict(x1)


assert (f2o() == f2b()).all()


def pairs(fa, fb_, n, inner):
    """Medians of fa's and fb_'s times, the median ratio of adjacent blocks, min(fa) / min(fb_)."""
    fa()
    fb_()
    ratios, ta, tb = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        for _ in range(inner):
            fa()
        t1 = time.perf_counter()
        for _ in range(inner):
            fb_()
        t2 = time.perf_counter()
        ta.append((t1 - t0) / inner)
        tb.append((t2 - t1) / inner)
        ratios.append((t1 - t0) / (t2 - t1))
    return np.median(ta), np.median(tb), np.median(ratios), min(ta) / min(tb)


for _ in range(int(os.environ.get("PASSES", "2"))):
    oa, nb, r, rmin = pairs(fo, fb, 40, 3)
    print(f"conv layer batch 128: ORT median {oa * 1e3:.2f} ms, numba {nb * 1e3:.2f} ms, "
          f"median pair ratio {r:.2f}x, min/min {rmin:.2f}x")
    oa, nb, r, rmin = pairs(f2o, f2b, 200, 20)
    print(f"bnn-conv batch 1:     ORT median {oa * 1e6:.1f} us, numba {nb * 1e6:.1f} us, "
          f"median pair ratio {r:.2f}x, min/min {rmin:.2f}x")
