"""Kernel benchmarks: packing, binary and sign matmuls, softmax-CE, updates.

One pytest-benchmark group per workload; the implementation is a parameter.
Inputs are built before timing, every implementation is checked once against
``fastbin.reference`` (untimed), and the first call (JIT compile) is not timed.
"""
import numpy as np
import pytest
from baselines import numpy_pack_signs, torch_linear_ce_grads, torch_softmax_ce, with_threads
from benchutil import QUICK, assert_same, measure, pm_one, size

import fastbin
import fastbin.reference as ref

# --------------------------------------------------------------------------
# Sizes: stable group ids; only "large" shrinks in quick mode
# --------------------------------------------------------------------------
LARGE = size(4096, 256)
MATMUL_SIZES = {
    "128x784x10": (128, 784, 10),
    "1x784x10": (1, 784, 10),
    "large": (LARGE, LARGE, LARGE),
}
PACK_SIZES = {"128x784": (128, 784), "large": (LARGE, LARGE)}


def _fast(impl, fn):
    """The fastbin function for a ``fastbin`` / ``fastbin-threaded`` row."""
    bound = with_threads(fn, impl == "fastbin-threaded")
    if bound is None:
        pytest.skip(f"{fn.__name__} has no threads= argument (no threaded variant)")
    return bound


# --------------------------------------------------------------------------
# pack_signs
# --------------------------------------------------------------------------
# Threaded variants only where the work is large enough to use threads.
PACK_CASES = [
    (size_id, impl)
    for size_id in PACK_SIZES
    for impl in ("reference", "numpy", "fastbin", "fastbin-threaded")
    if impl != "fastbin-threaded" or size_id == "large"
]


@pytest.mark.parametrize(("size_id", "impl"), PACK_CASES)
def test_pack_signs(benchmark, rng, size_id, impl):
    m, k = PACK_SIZES[size_id]
    x = rng.standard_normal((m, k)).astype(np.float32)
    if impl == "reference":
        fn = lambda: ref.pack_signs(x)  # noqa: E731
    elif impl == "numpy":
        fn = lambda: numpy_pack_signs(x)  # noqa: E731
    else:
        fast = _fast(impl, fastbin.pack_signs)
        fn = lambda: fast(x)  # noqa: E731
    out = measure(
        benchmark, fn, group=f"pack_signs/{size_id}", impl=impl, shape=f"{m}x{k} float32",
        slow=size_id == "large" and impl == "reference",
    )
    bits = out.bits if hasattr(out, "bits") else out
    assert_same(bits, numpy_pack_signs(x), what=f"pack_signs {impl}")


# --------------------------------------------------------------------------
# binary_matmul: sign(A) @ sign(W), A (m, k), W (k, n)
# --------------------------------------------------------------------------
# No reference at 4096^3 (an int64 NumPy matmul: far too slow); threaded
# variant only on the large product.
MATMUL_CASES = [
    (size_id, impl)
    for size_id in MATMUL_SIZES
    for impl in ("reference", "numpy", "fastbin", "fastbin-threaded", "torch")
    if (impl != "fastbin-threaded" or size_id == "large")
    and (impl != "reference" or size_id != "large" or QUICK)
]


@pytest.mark.parametrize(("size_id", "impl"), MATMUL_CASES)
def test_binary_matmul(benchmark, request, rng, size_id, impl):
    m, k, n = MATMUL_SIZES[size_id]
    a_pm = pm_one(rng, (m, k))
    w_pm = pm_one(rng, (k, n))
    a, w = ref.pack_signs(a_pm), ref.pack_weights(w_pm)
    n_words = a.n_words
    work, unit = m * n * n_words, "word-ops"
    if impl == "reference":
        fn = lambda: ref.binary_matmul(a, w)  # noqa: E731
        work, unit = None, None  # unpacks and multiplies int64: no word-ops to count
    elif impl == "numpy":
        fn = lambda: a_pm @ w_pm  # noqa: E731
        work, unit = 2.0 * m * n * k, "flop"
    elif impl == "torch":
        torch = request.getfixturevalue("torch")
        ta, tw = torch.from_numpy(a_pm), torch.from_numpy(w_pm)
        fn = lambda: (ta @ tw).numpy()  # noqa: E731
        work, unit = 2.0 * m * n * k, "flop"
    else:
        fast = _fast(impl, fastbin.binary_matmul)
        fn = lambda: fast(a, w)  # noqa: E731
    out = measure(
        benchmark, fn, group=f"binary_matmul/{size_id}", impl=impl, shape=f"{m}x{k}x{n}",
        work=work, unit=unit, slow=size_id == "large",
    )
    if m * n * k <= 1 << 24:  # the exact check itself is slow at 4096^3
        assert_same(np.asarray(out).astype(np.int64), (a_pm @ w_pm).astype(np.int64), what=impl)
    else:
        assert_same(np.asarray(out)[:8, :8].astype(np.int64),
                    (a_pm[:8] @ w_pm[:, :8]).astype(np.int64), what=impl)


# --------------------------------------------------------------------------
# sign_matmul: x @ sign(W) for float32 and uint8 x
# --------------------------------------------------------------------------
SIGN_SIZES = {"128x784x10": (128, 784, 10), "1x784x10": (1, 784, 10)}


@pytest.mark.parametrize("impl", ["reference", "numpy", "fastbin", "torch"])
@pytest.mark.parametrize("size_id", list(SIGN_SIZES))
@pytest.mark.parametrize("dtype", ["f32", "u8"])
def test_sign_matmul(benchmark, request, rng, dtype, size_id, impl):
    m, k, n = SIGN_SIZES[size_id]
    if dtype == "f32":
        x = rng.standard_normal((m, k)).astype(np.float32)
    else:
        x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    w_real = rng.standard_normal((k, n)).astype(np.float32)
    w = ref.pack_weights(w_real)
    w_pm = ref.binarize(w_real)  # sign(W) as float32, precomputed
    if impl == "reference":
        fn = lambda: ref.sign_matmul(x, w)  # noqa: E731
    elif impl == "numpy":
        fn = lambda: x @ w_pm  # noqa: E731  (uint8 @ float32 -> float32)
    elif impl == "torch":
        torch = request.getfixturevalue("torch")
        tx, tw = torch.from_numpy(x), torch.from_numpy(w_pm)
        if dtype == "u8":
            fn = lambda: (tx.float() @ tw).numpy()  # noqa: E731
        else:
            fn = lambda: (tx @ tw).numpy()  # noqa: E731
    else:
        fast = _fast(impl, fastbin.sign_matmul)
        fn = lambda: fast(x, w)  # noqa: E731
    out = measure(
        benchmark, fn, group=f"sign_matmul_{dtype}/{size_id}", impl=impl,
        shape=f"{m}x{k}x{n} {'float32' if dtype == 'f32' else 'uint8'} x",
        work=2.0 * m * n * k, unit="flop",
    )
    expected = x.astype(np.float64) @ w_pm.astype(np.float64)
    assert_same(np.asarray(out, dtype=np.float64), expected, rtol=1e-4, atol=1e-2, what=impl)


# --------------------------------------------------------------------------
# softmax cross-entropy from logits, and fused linear + softmax-CE gradient
# --------------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["reference", "fastbin", "torch"])
def test_softmax_cross_entropy(benchmark, request, rng, impl):
    m, c = 128, 10
    logits = (3 * rng.standard_normal((m, c))).astype(np.float32)
    labels = rng.integers(0, c, size=m)
    if impl == "reference":
        fn = lambda: ref.softmax_cross_entropy(logits, labels)  # noqa: E731
    elif impl == "torch":
        fn = torch_softmax_ce(request.getfixturevalue("torch"), logits, labels)
    else:
        fast = fastbin.softmax_cross_entropy
        fn = lambda: fast(logits, labels)  # noqa: E731
    loss, grad = measure(benchmark, fn, group="softmax_ce/128x10", impl=impl, shape="128x10 float32")
    want_loss, want_grad = ref.softmax_cross_entropy(logits, labels)
    assert_same(float(loss), want_loss, what=f"{impl} loss")
    assert_same(np.asarray(grad), want_grad, rtol=1e-3, atol=1e-6, what=f"{impl} grad")


@pytest.mark.parametrize("impl", ["reference", "fastbin", "torch"])
@pytest.mark.parametrize("weights", ["float", "packed"])
def test_linear_softmax_cross_entropy(benchmark, request, rng, weights, impl):
    m, k, c = 128, 784, 10
    x = rng.random((m, k), dtype=np.float32)
    w_real = (0.01 * rng.standard_normal((k, c))).astype(np.float32)
    b = np.zeros(c, dtype=np.float32)
    labels = rng.integers(0, c, size=m)
    w = w_real if weights == "float" else ref.pack_weights(w_real)
    w_dense = w_real if weights == "float" else ref.binarize(w_real)
    if impl == "reference":
        fn = lambda: ref.linear_softmax_cross_entropy(x, w, b, labels)  # noqa: E731
    elif impl == "torch":
        fn = torch_linear_ce_grads(request.getfixturevalue("torch"), x, w_dense, b, labels)
    else:
        fast = fastbin.linear_softmax_cross_entropy
        fn = lambda: fast(x, w, b, labels)  # noqa: E731
    group = "linear_softmax_ce" if weights == "float" else "linear_softmax_ce_packed"
    loss, dw, db = measure(
        benchmark, fn, group=f"{group}/128x784x10", impl=impl,
        shape=f"x 128x784, w 784x10 {'float32' if weights == 'float' else 'packed'}",
        work=4.0 * m * k * c, unit="flop",  # forward x@W and backward x.T@dz
    )
    want_loss, want_dw, want_db = ref.linear_softmax_cross_entropy(x, w, b, labels)
    assert_same(float(loss), want_loss, rtol=1e-3, what=f"{impl} loss")
    assert_same(np.asarray(dw), want_dw, rtol=1e-3, atol=1e-4, what=f"{impl} dw")
    assert_same(np.asarray(db), want_db, rtol=1e-3, atol=1e-5, what=f"{impl} db")


# --------------------------------------------------------------------------
# In-place parameter updates: SGD with clip (BinaryConnect) and Adam
# --------------------------------------------------------------------------
MLP_SHAPES = [(784, 200), (200,), (200, 100), (100,), (100, 10), (10,)]
UPDATE_SIZES = {"784x10": [(784, 10), (10,)], "mlp_178k": MLP_SHAPES}


def _params(rng, shapes):
    params = [rng.uniform(-1, 1, s).astype(np.float32) for s in shapes]
    grads = [(0.01 * rng.standard_normal(s)).astype(np.float32) for s in shapes]
    return params, grads


@pytest.mark.parametrize("impl", ["reference", "fastbin", "torch"])
@pytest.mark.parametrize("size_id", list(UPDATE_SIZES))
def test_sgd_clip_update(benchmark, request, rng, size_id, impl):
    params, grads = _params(rng, UPDATE_SIZES[size_id])
    lr = 0.01
    if impl == "torch":
        torch = request.getfixturevalue("torch")
        tp = [torch.from_numpy(p) for p in params]  # shares memory with params
        tg = [torch.from_numpy(g) for g in grads]

        def fn():
            with torch.no_grad():
                for p, g in zip(tp, tg):
                    p.add_(g, alpha=-lr).clamp_(-1.0, 1.0)
    else:
        update = ref.sgd_update if impl == "reference" else fastbin.sgd_update

        def fn():
            for p, g in zip(params, grads):
                update(p, g, lr, clip=1.0)

    n = sum(p.size for p in params)
    before = [p.copy() for p in params]
    measure(benchmark, fn, group=f"sgd_clip/{size_id}", impl=impl, shape=f"{n} float32 params")
    for p, p0 in zip(params, before):  # every call moved params by -lr*g and clipped
        assert np.all(np.abs(p) <= 1.0) and not np.array_equal(p, p0)


@pytest.mark.parametrize("impl", ["reference", "fastbin", "torch"])
@pytest.mark.parametrize("size_id", list(UPDATE_SIZES))
def test_adam_update(benchmark, request, rng, size_id, impl):
    params, grads = _params(rng, UPDATE_SIZES[size_id])
    lr = 1e-3
    if impl == "torch":
        torch = request.getfixturevalue("torch")
        tp = [torch.from_numpy(p).requires_grad_(True) for p in params]
        for p, g in zip(tp, grads):
            p.grad = torch.from_numpy(g)
        opt = torch.optim.Adam(tp, lr=lr)
        fn = opt.step
    else:
        update = ref.adam_update if impl == "reference" else fastbin.adam_update
        moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]

        def fn():
            for p, g, (m, v) in zip(params, grads, moments):
                update(p, g, m, v, 10, lr=lr)

    n = sum(p.size for p in params)
    before = [p.copy() for p in params]
    measure(benchmark, fn, group=f"adam/{size_id}", impl=impl, shape=f"{n} float32 params")
    for p, p0 in zip(params, before):
        assert np.all(np.isfinite(p)) and not np.array_equal(p, p0)
