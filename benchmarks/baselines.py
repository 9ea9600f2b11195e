"""Baseline implementations the benchmarks compare fastbin with (not tests).

* ``numpy_*``: the natural plain-NumPy way to do the same job (often not the
  same as ``fastbin.reference``, which favours readability).
* ``torch_*``: the PyTorch CPU equivalent (torch is an optional baseline).
* ``autograd_*``: notebook 004's way (autograd's ``grad`` + Adam).

Each builder takes the inputs, does all setup outside the returned closure and
returns a zero-argument callable: the thing that is timed.
"""
from __future__ import annotations

import inspect

import numpy as np

__all__ = [
    "numpy_pack_signs",
    "with_threads",
    "torch_linear_ce_grads",
    "torch_softmax_ce",
    "torch_softmax_regression_step",
    "torch_mlp_step",
    "autograd_mlp_step",
    "numpy_binary_forward",
    "torch_binary_forward",
]


def with_threads(fn, threads: bool):
    """``fn`` with ``threads=threads`` bound when ``fn`` takes that keyword, or
    ``None`` when it does not (no threaded variant to benchmark)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        params = {}
    if "threads" not in params:
        return None if threads else fn

    def bound(*args, **kwargs):
        return fn(*args, threads=threads, **kwargs)

    return bound


def numpy_pack_signs(x):
    """Sign bits of the rows of ``x`` with ``np.packbits`` (LSB first), padded
    to whole uint64 words: the same bits as ``fastbin.reference.pack_signs``."""
    m, k = x.shape
    bytes_ = np.packbits(x < 0, axis=1, bitorder="little")
    n_words = -(-k // 64)
    out = np.zeros((m, n_words * 8), dtype=np.uint8)
    out[:, : bytes_.shape[1]] = bytes_
    return out.view("<u8")


# --------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------
def torch_linear_ce_grads(torch, x, w, b, labels):
    """Loss and gradients of ``softmax_ce(x @ w + b)`` w.r.t. ``w`` and ``b``
    with torch's autograd (``w`` already the ±1 matrix for the packed case)."""
    import torch.nn.functional as F

    tx = torch.from_numpy(x)
    tw = torch.from_numpy(w.copy()).requires_grad_(True)
    tb = torch.from_numpy(b.copy()).requires_grad_(True)
    tl = torch.from_numpy(labels.astype(np.int64))

    def step():
        tw.grad = None
        tb.grad = None
        loss = F.cross_entropy(tx @ tw + tb, tl)
        loss.backward()
        return loss.item(), tw.grad, tb.grad

    return step


def torch_softmax_ce(torch, logits, labels):
    """Loss and gradient w.r.t. the logits with torch's autograd."""
    import torch.nn.functional as F

    tz = torch.from_numpy(logits.copy()).requires_grad_(True)
    tl = torch.from_numpy(labels.astype(np.int64))

    def step():
        tz.grad = None
        loss = F.cross_entropy(tz, tl)
        loss.backward()
        return loss.item(), tz.grad

    return step


def torch_softmax_regression_step(torch, x, labels, *, binary: bool, lr: float, seed: int = 0):
    """One SGD step of softmax regression; ``binary``: BinaryConnect (forward
    with sign(W) through a straight-through estimator, then clip W to
    [-1, 1])."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    w = (torch.rand(x.shape[1], 10, generator=gen) * 2 - 1).requires_grad_(True)
    b = torch.zeros(10, requires_grad=True)
    tx = torch.from_numpy(x)
    tl = torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.SGD([w, b], lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        if binary:
            w_b = w + (torch.where(w < 0, -1.0, 1.0) - w).detach()
        else:
            w_b = w
        loss = F.cross_entropy(tx @ w_b + b, tl)
        loss.backward()
        opt.step()
        if binary:
            with torch.no_grad():
                w.clamp_(-1.0, 1.0)
        return loss.item()

    return step


def torch_mlp_step(torch, sizes, x, labels, *, lr=1e-3, seed=0):
    """One Adam step of the tanh MLP ``sizes`` (e.g. 784-200-100-10)."""
    import torch.nn.functional as F

    torch.manual_seed(seed)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    tx = torch.from_numpy(x)
    tl = torch.from_numpy(labels.astype(np.int64))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tx), tl)
        loss.backward()
        opt.step()
        return loss.item()

    return step


# --------------------------------------------------------------------------
# autograd (notebook 004)
# --------------------------------------------------------------------------
def autograd_mlp_step(sizes, x, labels, *, lr=1e-3, seed=0):
    """Notebook 004's training step: autograd ``grad`` of the tanh MLP's
    log-softmax loss (mean over the batch here), then autograd's Adam update
    (``fastbin.reference.adam_step``) on every array."""
    import autograd.numpy as anp
    from autograd import grad

    from fastbin.reference import adam_step

    rng = np.random.default_rng(seed)
    params = [
        (
            (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(x.dtype),
            np.zeros(fan_out, dtype=x.dtype),
        )
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
    ]
    onehot = np.zeros((x.shape[0], sizes[-1]), dtype=x.dtype)
    onehot[np.arange(x.shape[0]), labels] = 1

    def loss(params):
        inputs, logits = x, None
        for W, b in params:
            logits = anp.dot(inputs, W) + b
            inputs = anp.tanh(logits)
        # log-softmax with the row max subtracted (autograd.scipy needs SciPy)
        z = logits - anp.max(logits, axis=1, keepdims=True)
        logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
        return -anp.sum(onehot * logp) / x.shape[0]

    grad_fn = grad(loss)
    moments = [(np.zeros_like(W), np.zeros_like(b), np.zeros_like(W), np.zeros_like(b)) for W, b in params]
    state = {"params": params, "moments": moments, "i": 0}

    def step():
        g = grad_fn(state["params"])
        new_params, new_moments = [], []
        for (W, b), (gW, gb), (mW, mb, vW, vb) in zip(state["params"], g, state["moments"]):
            W, mW, vW = adam_step(W, gW, mW, vW, state["i"], step_size=lr)
            b, mb, vb = adam_step(b, gb, mb, vb, state["i"], step_size=lr)
            new_params.append((W, b))
            new_moments.append((mW, mb, vW, vb))
        state.update(params=new_params, moments=new_moments, i=state["i"] + 1)
        return new_params

    return step


# --------------------------------------------------------------------------
# Binary inference in plain float arithmetic (what NumPy / torch would do)
# --------------------------------------------------------------------------
def _binary_layers(rng, sizes, dtype=np.float32):
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = np.where(rng.random((fan_in, fan_out)) < 0.5, -1.0, 1.0).astype(dtype)
        b = rng.standard_normal(fan_out).astype(dtype)
        layers.append((w, b))
    return layers


def numpy_binary_forward(sizes, x, *, seed=0):
    """Class predictions of a binary network in float32 NumPy: ±1 weights,
    hidden activations ``sign(h @ W + b)`` as ±1 floats, arg-max at the end.
    (For ``sizes = [784, 10]``: binary softmax regression.)"""
    layers = _binary_layers(np.random.default_rng(seed), sizes, x.dtype)

    def forward():
        h = x
        for w, b in layers[:-1]:
            z = h @ w + b
            h = np.where(z < 0, np.float32(-1), np.float32(1))
        w, b = layers[-1]
        return np.argmax(h @ w + b, axis=1)

    return forward


def torch_binary_forward(torch, sizes, x, *, seed=0):
    """:func:`numpy_binary_forward` in torch (one thread, no autograd)."""
    layers = [
        (torch.from_numpy(w), torch.from_numpy(b))
        for w, b in _binary_layers(np.random.default_rng(seed), sizes, x.dtype)
    ]
    tx = torch.from_numpy(x)

    def forward():
        with torch.no_grad():
            h = tx
            for w, b in layers[:-1]:
                h = torch.where(h @ w + b < 0, -1.0, 1.0)
            w, b = layers[-1]
            return torch.argmax(h @ w + b, dim=1)

    return forward
