"""Issue 25: 12-epoch conv training on Fashion-MNIST, seed 0: test accuracy per epoch, train time,
folded == unfolded (bnn-conv; binary-conv's hardtanh activations do not fold: NotImplementedError).

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/results/2026-12-07-conv-accuracy.py bnn-conv 12 5e-3
"""
import json
import sys
import time

import numpy as np

from fastbin.nn.model import bnn_conv
from fastbin.nn.optim import Adam, CosineDecay
from fastbin.nn.train import fit
from fastbin.tools.demo import load_data

kind, epochs, lr = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
data = load_data()
if kind == "bnn-conv":
    model = bnn_conv((28, 28, 1), 10, seed=0)
else:
    model = bnn_conv((28, 28, 1), 10, activation="hardtanh", scale=True, seed=0)
steps_per_epoch = -(-len(data.x_train) // 128)
opt = Adam(lr, schedule=CosineDecay(epochs * steps_per_epoch))
t0 = time.perf_counter()
c0 = time.process_time()
h = fit(model, opt, data, epochs=epochs, batch_size=128, eval_every="epoch", progress=False, seed=0)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
for s, a, t in zip(h.step, h.acc, h.time):
    print(f"step {s:6d}  test acc {100*a:.2f}%  train time {t:.1f} s", flush=True)
print(json.dumps(dict(kind=kind, epochs=epochs, lr=lr, acc=h.acc[-1], train_time=h.train_time,
                      total_time=h.total_time, wall=wall, cpu=cpu)), flush=True)
model.save(f"{kind}-{epochs}.fbm")
x = data.x_test
pu = np.argmax(model.forward(x), axis=1)
pf = model.to_inference().predict(x)  # binary-conv: NotImplementedError (no sign after its convs)
print(json.dumps(dict(folded_equal=int((pu == pf).sum()), folded_acc=float((pf == data.y_test).mean()))))
