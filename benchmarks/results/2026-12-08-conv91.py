"""Issue 25 (task conv91): bnn-conv training runs on Fashion-MNIST, seed 0: test accuracy and process
CPU seconds per epoch (``time.process_time``, evaluation included), one thread.

    # the bnn-conv recipe as fastbin.tools.demo.RECIPES has it (epochs, schedule, augmentation)
    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/results/2026-12-08-conv91.py --recipe bnn-conv --save bnn-conv.fbm
    # a proxy: 3 epochs, cosine over the 3 epochs, shifts of +/-2 px, flips, label smoothing 0.1
    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/results/2026-12-08-conv91.py --epochs 3 --shift 2 --flip --ls 0.1

Each epoch is one ``fit(..., resume=history)`` call with the same optimizer (bit for bit one run in one
go: the evaluations fall on the epoch ends, the augmentation draws from (seed, step)).
"""
import argparse
import json
import math
import time

from fastbin.nn import Adam, CosineDecay, ImageAugment, WarmUp, fit, smooth_labels
from fastbin.nn.conv import Conv2D
from fastbin.nn.model import bnn_conv
from fastbin.tools.demo import RECIPES, load_data

p = argparse.ArgumentParser()
p.add_argument("--recipe", help="a recipe of fastbin.tools.demo.RECIPES (then the other options are ignored)")
p.add_argument("--epochs", type=int, default=12)
p.add_argument("--lr", type=float, default=5e-3)
p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps before the cosine decay")
p.add_argument("--shift", type=int, default=0)
p.add_argument("--flip", action="store_true")
p.add_argument("--ls", type=float, default=0.0, help="label smoothing")
p.add_argument("--channels", default="32,32,64,64")
p.add_argument("--save", help="write the trained model here")
args = p.parse_args()

data = load_data()
batch = 128
per_epoch = math.ceil(len(data.x_train) / batch)
if args.recipe:
    recipe = RECIPES[args.recipe]
    model = recipe.build("fastbin", 0, data)
    opt = recipe.optimizer()
    fit_args = dict(recipe.fit_args())
    epochs = fit_args.pop("epochs")
    fit_args.pop("eval_every", None)
    config = dict(recipe=args.recipe, optimizer=repr(opt), fit={k: repr(v) for k, v in fit_args.items()})
else:
    channels = tuple(int(c) for c in args.channels.split(","))
    model = bnn_conv((28, 28, 1), 10, channels=channels, seed=0)
    epochs = args.epochs
    decay = CosineDecay(epochs * per_epoch - args.warmup)
    opt = Adam(args.lr, schedule=WarmUp(args.warmup, decay) if args.warmup else decay)
    fit_args = dict(batch_size=batch, label_smoothing=args.ls)
    if args.shift or args.flip:
        fit_args["augment"] = ImageAugment((28, 28, 1), shift=args.shift, flip=args.flip)
    config = dict(vars(args), optimizer=repr(opt))
print(json.dumps(config), flush=True)

# compile (or load from Numba's cache) the kernels outside the timed epochs: two steps and an evaluation
# of a throwaway model
c0 = time.process_time()
spare = bnn_conv((28, 28, 1), 10, channels=[la.filters for la in model.layers if isinstance(la, Conv2D)], seed=1)
for labels in (data.y_train[:batch], smooth_labels(data.y_train[:batch], 10, 0.1)):  # labels and targets
    spare.train_step(data.x_train[:batch], labels, Adam(1e-3))
spare.evaluate(data.x_test.astype("float32") / 255, data.y_test)
print(json.dumps(dict(warm_up_cpu=round(time.process_time() - c0, 1))), flush=True)

history = None
cpu_total = wall_total = 0.0
for epoch in range(1, epochs + 1):
    c0, t0 = time.process_time(), time.perf_counter()
    history = fit(model, opt, data, epochs=epoch, eval_every="epoch", progress=False, seed=0, resume=history,
                  **fit_args)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    cpu_total += cpu
    wall_total += wall
    print(json.dumps(dict(epoch=epoch, acc=round(100 * history.acc[-1], 2), test_loss=round(history.loss[-1], 4),
                          train_loss=round(history.train_loss[-1], 4), cpu=round(cpu, 1), wall=round(wall, 1))),
          flush=True)
print(json.dumps(dict(final_acc=round(100 * history.acc[-1], 2), cpu=round(cpu_total, 1),
                      wall=round(wall_total, 1))), flush=True)
if args.save:
    model.save(args.save)
