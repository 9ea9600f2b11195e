"""The specification: plain NumPy, readable before fast.

Two parts:

1. The seed notebooks' functions, with their exact semantics (softmax
   regression and BinaryConnect from notebook 000; the tanh MLP with a
   log-softmax loss and autograd's Adam from notebook 004).
2. One function for every function of fastbin's fast API, under the same name,
   with the same arguments and results. Tests and benchmarks compare the fast
   kernels with these; the trainer can run on either (``backend=``).

No Numba here, and no trick that hides the formula.
"""
from __future__ import annotations

import numpy as np

from .bits import aligned_zeros, n_words_for
from .packed import PackedSigns

__all__ = [
    # notebook 000: softmax regression and BinaryConnect
    "logistic_model",
    "ce_loss",
    "gradients",
    "update_params",
    "binarize",
    "clip",
    # notebook 004: MLP, log-softmax loss, autograd's Adam
    "logsumexp",
    "mlp_predict",
    "mlp_loss",
    "accuracy",
    "adam_step",
    # mirror of the fast API
    "pack_signs",
    "pack_weights",
    "unpack_signs",
    "binary_matmul",
    "sign_matmul",
    "binary_dense_sign",
    "dense_sign_matmul",
    "signs",
    "unit_from_uint8",
    "softmax",
    "softmax_cross_entropy",
    "linear_softmax_cross_entropy",
    "sgd_update",
    "adam_update",
    "batch_norm_train",
    "batch_norm_sign_train",
    "batch_norm_backward",
    "bn_running_update",
    # evaluation-time formulas of a dense layer and a batch norm, shared by the
    # trainable model and the folded runtime (the same operations, the same bits)
    "dense_affine",
    "offset_bias",
    "binary_eval_scale",
    "bn_affine",
    "bn_scale",
    # the exact real-valued product x @ sign(W) of the evaluation path
    "grid_bits",
    "sign_grid",
    "exact_sign_product",
    "refine_near_thresholds",
    "rounding_constants",
    # convolution over NHWC images: im2col with one-padding, the binary conv, max pooling
    "int_pair",
    "conv_geometry",
    "im2col",
    "col2im",
    "pack_patches",
    "sign_conv2d",
    "sign_conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
]


# --------------------------------------------------------------------------
# Notebook 000: softmax regression, cross-entropy, SGD, BinaryConnect
# --------------------------------------------------------------------------
def logistic_model(inputs, weights, bias):
    """Softmax probabilities ``softmax(inputs @ weights + bias)``, row-wise,
    with the row max subtracted first ("safe softmax")."""
    return softmax(np.dot(inputs, weights) + bias)


def softmax(logits):
    """Row-wise probabilities of ``logits`` (m, c) float: ``e / sum_j e[:, j]``
    with ``e = exp(z - max_j z[:, j])`` ("safe softmax": finite for any finite
    logits, the largest entry of a row is ``exp(0) = 1``, so no row sums to
    0). Same dtype as ``logits``; each row sums to 1 within its rounding. The
    ``predict_proba`` of trainable and folded models."""
    z = logits - np.max(logits, axis=1, keepdims=True)
    e = np.exp(z, out=z)
    e /= np.sum(e, axis=1, keepdims=True)
    return e


def ce_loss(output, target):
    """Mean cross-entropy ``-mean_i sum_j target[i, j] * log(output[i, j])`` of
    probabilities ``output`` against one-hot ``target``."""
    return -1.0 * np.mean(np.sum(target * np.log(output), axis=1))


def gradients(logits, target, inputs):
    """Gradients of :func:`ce_loss` of :func:`logistic_model` w.r.t. weights and
    bias. ``logits`` are the probabilities (the notebook's name):
    ``grad_z = (p - t) / m``, ``grad_w = inputs.T @ grad_z``,
    ``grad_b = sum_i grad_z`` (shape (1, c))."""
    if logits.shape != target.shape or inputs.shape[0] != logits.shape[0]:
        raise ValueError("gradients: logits, target and inputs disagree in shape")
    grad_z = (logits - target) / (1.0 * target.shape[0])
    grad_w = np.dot(inputs.T, grad_z)
    grad_b = np.sum(grad_z, axis=0, keepdims=True)
    return grad_w, grad_b


def update_params(params, grads, alpha=0.5):
    """Plain SGD: ``(w - alpha * gw, b - alpha * gb)`` (new arrays)."""
    (w, b), (eg_w, eg_b) = params, grads
    if w.shape != eg_w.shape or b.shape != eg_b.shape:
        raise ValueError("update_params: parameter and gradient shapes differ")
    return (w - alpha * eg_w, b - alpha * eg_b)


def binarize(m):
    """Deterministic BinaryConnect binarisation: -1 where ``m < 0``, +1
    elsewhere (so sign(0) = +1), same dtype as ``m``."""
    bm = np.ones_like(m)
    bm[m < 0] = -1
    return bm


def clip(m):
    """Clip to [-1, 1] (BinaryConnect keeps the real weights there)."""
    return np.clip(m, -1, 1)


# --------------------------------------------------------------------------
# Notebook 004: tanh MLP, log-softmax loss, autograd's Adam
# --------------------------------------------------------------------------
def logsumexp(a, axis=None, keepdims=False):
    """``log(sum(exp(a)))`` computed with the max subtracted (as scipy's)."""
    a_max = np.max(a, axis=axis, keepdims=True)
    a_max = np.where(np.isfinite(a_max), a_max, 0.0)
    out = np.log(np.sum(np.exp(a - a_max), axis=axis, keepdims=True)) + a_max
    return out if keepdims else np.squeeze(out, axis=axis)


def mlp_predict(parameters, X):
    """Log-probabilities of the notebook's MLP: ``tanh`` between layers, no
    activation on the last, then log-softmax. ``parameters`` is a list of
    ``(W (m, n), b (n,))``."""
    y_hat = X
    for W, b in parameters:
        y_hat = np.dot(X, W) + b
        X = np.tanh(y_hat)
    return y_hat - logsumexp(y_hat, axis=1, keepdims=True)


def mlp_loss(parameters, X, y):
    """The notebook's loss: ``-sum(y * log_softmax)`` (a sum, not a mean)."""
    return -np.sum(y * mlp_predict(parameters, X))


def accuracy(parameters, X, y):
    """Fraction of rows whose arg-max prediction equals the one-hot label."""
    return np.mean(np.argmax(mlp_predict(parameters, X), axis=1) == np.argmax(y, axis=1))


def adam_step(x, g, m, v, i, step_size=0.001, b1=0.9, b2=0.999, eps=10**-8):
    """One step of ``autograd.misc.optimizers.adam`` (``i`` counts from 0).
    Returns new ``(x, m, v)``."""
    m = (1 - b1) * g + b1 * m
    v = (1 - b2) * (g**2) + b2 * v
    mhat = m / (1 - b1 ** (i + 1))
    vhat = v / (1 - b2 ** (i + 1))
    x = x - step_size * mhat / (np.sqrt(vhat) + eps)
    return x, m, v


# --------------------------------------------------------------------------
# Mirror of the fast API (same names, arguments and results)
# --------------------------------------------------------------------------
def pack_signs(x) -> PackedSigns:
    """Pack the signs of each row of ``x`` (m, k) into ``PackedSigns`` (m, k):
    bit 1 where ``x < 0`` (sign(0) = +1), least significant bit first, padding 0."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"pack_signs expects a 2-D array (m, k), got shape {x.shape}")
    m, k = x.shape
    n_words = n_words_for(k)
    negative = np.zeros((m, n_words * 64), dtype=np.uint64)
    negative[:, :k] = x < 0
    weights = np.uint64(1) << np.arange(64, dtype=np.uint64)
    words = (negative.reshape(m, n_words, 64) * weights).sum(axis=2, dtype=np.uint64)
    bits = aligned_zeros((m, n_words), np.uint64)
    bits[...] = words
    return PackedSigns(bits, k)


def pack_weights(w) -> PackedSigns:
    """Pack a weight matrix ``w`` (k, n) for ``x @ sign(w)``: column ``j`` becomes
    packed row ``j`` (along the contraction axis ``k``), i.e. ``pack_signs(w.T)``."""
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"pack_weights expects a 2-D array (k, n), got shape {w.shape}")
    return pack_signs(w.T)


def unpack_signs(packed: PackedSigns, dtype=np.float32):
    """The ±1 matrix (rows, n_bits) of ``dtype`` that ``packed`` stores."""
    m, n_words, k = packed.rows, packed.n_words, packed.n_bits
    shifts = np.arange(64, dtype=np.uint64)
    bit = (packed.bits[:, :, None] >> shifts) & np.uint64(1)
    bit = bit.reshape(m, n_words * 64)[:, :k]
    return np.where(bit == 1, -1, 1).astype(dtype)


def binary_matmul(a: PackedSigns, w: PackedSigns):
    """``sign(A) @ sign(W)`` as int32 (m, n), from ``a = pack_signs(A)`` (m, k)
    and ``w = pack_weights(W)`` (n, k)."""
    if a.n_bits != w.n_bits:
        raise ValueError(f"binary_matmul: a has k={a.n_bits} but w has k={w.n_bits}")
    sa = unpack_signs(a, np.int64)
    sw = unpack_signs(w, np.int64)
    return (sa @ sw.T).astype(np.int32)


def sign_matmul(x, w: PackedSigns):
    """``x @ sign(W)`` for real ``x`` (m, k) and ``w = pack_weights(W)`` (n, k).

    float32/float64 ``x`` gives the same dtype; uint8 ``x`` gives the exact
    int32 result."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != w.n_bits:
        raise ValueError(f"sign_matmul: x must be (m, {w.n_bits}), got {x.shape}")
    if x.dtype == np.uint8:
        return (x.astype(np.int64) @ unpack_signs(w, np.int64).T).astype(np.int32)
    return x @ unpack_signs(w, x.dtype).T


def binary_dense_sign(a: PackedSigns, w: PackedSigns, thresholds, flip) -> PackedSigns:
    """A binary dense layer followed by a folded batch-norm and sign, on packed
    activations: with ``dot = binary_matmul(a, w)`` (m, n), the output sign is
    -1 (bit 1) where ``dot < thresholds[j]`` (``flip[j]`` False) or where
    ``dot > thresholds[j]`` (``flip[j]`` True), +1 elsewhere. Returns
    ``PackedSigns`` (m, n): the next layer's packed input."""
    dot = binary_matmul(a, w).astype(np.int64)
    thresholds = np.asarray(thresholds, dtype=np.int64)
    flip = np.asarray(flip, dtype=bool)
    negative = np.where(flip, dot > thresholds, dot < thresholds)
    return pack_signs(np.where(negative, -1, 1))


def grid_bits(k: int) -> int:
    """Bits ``G`` of the exact product's grid for rows of length ``k``:
    ``52 - ceil(log2(k))``, so that ``k`` integers of magnitude at most
    ``2**G`` sum to at most ``2**52``: exact in float64 in any order."""
    return 52 - max(int(k) - 1, 0).bit_length()


def sign_grid(x):
    """The exact product's input: ``x`` (m, k) float rounded to integers on a
    per-row grid. Returns ``(q, s1, s2)``: ``q`` (m, k) float64 integers with
    ``|q| <= 2**G`` (:func:`grid_bits`), ``q[i] = rint(x[i] * 2**(G - e_i))``
    where ``max |x[i]| < 2**e_i`` (``frexp``), and the grid step ``2**(e_i -
    G)`` as two factors ``s1 * s2`` (m,) float64, so that neither underflows.
    The scale-up is two multiplications as well (``x * u1 * u2``), each exact
    where the result matters, so a jitted kernel doing the same operations
    gets the same ``q``. Rounding to the grid moves each ``x`` by at most
    ``2**(e_i - G - 1)``, about ``2**-43`` of the row's largest ``|x|`` at
    ``k = 784``: far below float32's resolution."""
    q = np.array(x, dtype=np.float64)  # a new array, scaled and rounded in place
    k = q.shape[1]
    g = grid_bits(k)
    with np.errstate(invalid="ignore"):
        top = np.maximum(np.max(q, axis=1), -np.min(q, axis=1)) if k else np.zeros(q.shape[0])
    _, e = np.frexp(top)
    up, down = g - e, e - g
    u1, u2 = np.ldexp(1.0, up // 2), np.ldexp(1.0, up - up // 2)
    s1, s2 = np.ldexp(1.0, down // 2), np.ldexp(1.0, down - down // 2)
    with np.errstate(invalid="ignore", over="ignore"):
        q *= u1[:, None]
        q *= u2[:, None]
        np.rint(q, out=q)
    return q, s1, s2


#: A fast float product's error bound is taken this many times over before a
#: threshold decision is trusted (:func:`refine_near_thresholds`): 1, the bound
#: itself, for every fast product is a sum of the k terms ``±x`` in some order
#: (a product formed as ``sum(x) - 2 * sum(x where bit)`` would need 3).
THRESHOLD_BOUND_FACTOR = 1.0


def rounding_constants(dtype):
    """``(unit, tiny)`` of :func:`refine_near_thresholds` for a fast product summed in
    ``dtype``: the unit roundoff (half the machine epsilon) and the smallest subnormal."""
    info = np.finfo(dtype)
    return float(info.eps) / 2, float(info.smallest_subnormal)


def refine_near_thresholds(x, rows, dot, thresholds, *, pairs_per_chunk=4096):
    """In place: ``dot`` (m, n), a fast float product ``x @ sign(W)`` summed in
    ``dot``'s dtype in any order, gets the exact product (:func:`dense_sign_matmul`)
    wherever it lies within its error bound of ``thresholds[j]``, so that ``dot <
    t`` and ``dot > t`` decide as the exact product does; ``rows`` (n, k) are the
    ±1 rows of ``sign(W).T`` (any dtype). Bound per row: ``gamma_(k+1) * sum
    |x|`` (``gamma_n = n u / (1 - n u)`` bounds a k-term float sum in any order,
    times ``THRESHOLD_BOUND_FACTOR``), plus the grid's rounding (``k *
    max|x| * 2**-G``), plus two ulps of the threshold. Only those entries are
    recomputed, each as one exact dot product. The jitted
    ``fastbin.kernels.sign_product.exact.refine_near_thresholds`` does the same."""
    unit, tiny = rounding_constants(dot.dtype)
    m, k = x.shape
    x64 = np.abs(x.astype(np.float64))
    nk = THRESHOLD_BOUND_FACTOR * (k + 1) * unit
    with np.errstate(invalid="ignore", over="ignore"):
        top = x64.max(axis=1) if k else np.zeros(m)
        bound = nk / (1 - nk) * x64.sum(axis=1) * (1 + 1e-9) + k * top * 2.0 ** -grid_bits(k)
        bound = np.where(bound <= np.finfo(np.float64).max, bound, np.inf)
        t = np.asarray(thresholds, np.float64)
        margin = bound[:, None] + 2 * (np.abs(t) * 2 * unit + tiny)
        near = ~(np.abs(dot.astype(np.float64) - t) > margin)
    pair_rows, pair_cols = np.nonzero(near)
    if not pair_rows.size:
        return dot
    used, where = np.unique(pair_rows, return_inverse=True)
    q, s1, s2 = sign_grid(x[used])
    bad = ~np.isfinite(q).all(axis=1)
    if bad.any():  # NaN or ±inf in the row: the plain float64 sum (NaN/±inf in any order)
        q[bad], s1[bad], s2[bad] = x[used[bad]].astype(np.float64), 1.0, 1.0
    for lo in range(0, pair_rows.size, pairs_per_chunk):
        sel = slice(lo, lo + pairs_per_chunk)
        r, c = where[sel], pair_cols[sel]
        with np.errstate(invalid="ignore", over="ignore"):
            exact = np.einsum("pk,pk->p", q[r], rows[c].astype(np.float64)) * s1[r] * s2[r]
            dot[pair_rows[sel], c] = exact.astype(dot.dtype)
    return dot


def dense_sign_matmul(x, w, *, signs=None, rows=None):
    """``x @ sign(W)`` of a dense layer's evaluation path: ``w`` the real
    weights ``W`` (k, n) or ``pack_weights(W)``; ``signs`` / ``rows`` are the
    fast version's optional caches of ``sign(W)`` and are not needed here.

    uint8 ``x``: the exact int32 product (:func:`sign_matmul`). Float ``x``:
    the *exact* product on :func:`sign_grid`'s grid, rounded once to ``x``'s
    dtype: ``((q @ sign(W)) * s1 * s2).astype(x.dtype)``. Every partial sum is
    an integer below ``2**52``, so any summation order (BLAS, a blocked or
    threaded kernel, another CPU) gives the same bits: this is the product
    the trainer's evaluation path and both runtime engines share. A row with
    a NaN or an infinity gives NaN/±inf outputs, as the float sum would."""
    w = w if isinstance(w, PackedSigns) else pack_weights(w)
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return sign_matmul(x, w)
    if x.ndim != 2 or x.shape[1] != w.n_bits:
        raise ValueError(f"dense_sign_matmul: x must be (m, {w.n_bits}), got {x.shape}")
    return exact_sign_product(x, unpack_signs(w, np.float64).T)


def exact_sign_product(x, signs64):
    """:func:`dense_sign_matmul` for float ``x`` (m, k) and ``signs64`` ((k, n)
    ±1 float64): ``((q @ signs64) * s1 * s2)`` in ``x``'s dtype, non-finite
    rows as the float64 sum ``x @ signs64``."""
    q, s1, s2 = sign_grid(x)
    with np.errstate(invalid="ignore", over="ignore"):  # rows with NaN/inf: replaced below
        dot = q @ signs64
    dot *= s1[:, None]
    dot *= s2[:, None]
    finite = np.isfinite(q).all(axis=1)
    if not finite.all():
        bad = ~finite
        with np.errstate(invalid="ignore"):
            dot[bad] = x[bad].astype(np.float64) @ signs64
    with np.errstate(over="ignore"):  # beyond the dtype's range: ±inf, as a float sum gives
        return dot.astype(x.dtype)


def signs(x):
    """``sign(x)`` as ±1 of ``x``'s dtype and shape: -1 where ``x < 0``, else
    +1 (so sign(0) = sign(-0.0) = +1, and NaN gives +1)."""
    return binarize(np.asarray(x))


def unit_from_uint8(x, dtype=np.float32):
    """Raw pixels to ``dtype(x) / 255`` (correctly rounded)."""
    dtype = np.dtype(dtype)
    return np.divide(x, dtype.type(255), dtype=dtype)


def dense_affine(dot, scale, bias, *, out=None):
    """``dot * scale + bias`` in ``scale``'s (else ``dot``'s) dtype: the
    evaluation formula of a dense layer after its product ``dot``. ``scale``
    (n,) or None (no multiply), ``bias`` (n,) or None. ``out``: write into
    this array (``dot`` itself for an in-place update of a fresh product)."""
    if scale is not None:
        z = np.multiply(dot, scale, dtype=scale.dtype) if out is None else np.multiply(dot, scale, out=out)
    else:
        z = np.array(dot, copy=True) if out is None else out
    if bias is not None:
        z += bias
    return z


def binary_eval_scale(alpha, input_scale, n, dtype, uint8_input):
    """``dense_affine``'s scale (n,) of a binary layer's evaluation path, or None: ``alpha``
    (n,) or None, times the layer's single input scale ``s`` (``input_scale``: None, or a
    (k,) vector holding one value, which a binary layer folds: ``((x - o) * s) @ sign(W) =
    s * (x @ sign(W)) - s * (o @ sign(W))``), times ``1/255`` for raw pixels (``uint8_input``).
    Each factor is applied element by element in ``dtype``."""
    dtype = np.dtype(dtype)
    scale = alpha
    if input_scale is not None:
        s = np.asarray(input_scale, dtype=dtype).reshape(-1)[0]
        scale = np.full(n, s, dtype=dtype) if scale is None else (scale * s).astype(dtype)
    if not uint8_input:
        return scale
    inv = np.full(n, 1.0 / 255.0, dtype=dtype)
    return inv if scale is None else (scale * inv).astype(dtype)


def offset_bias(bias, input_offset, signs, alpha, dtype):
    """``dense_affine``'s bias of a binary layer whose input is centred first:
    ``b - input_offset @ (sign(W) * alpha)`` (n,) of ``dtype``, or ``bias``
    when ``input_offset`` is None. ``input_offset`` (k,), ``signs`` ±1 (k, n)
    of any dtype, ``alpha`` (n,) or None, ``bias`` (n,) or None.

    The same bits on every CPU, as the product it is added to: the sum is
    :func:`exact_sign_product` (integers on a grid, rounded once to ``dtype``),
    then ``alpha`` and ``bias`` are applied element by element. A BLAS ``gemv``
    here would round by its kernel (FMA or not, the summation order), and
    folded logits would differ between CPUs (issue 21)."""
    if input_offset is None:
        return None if bias is None else np.array(bias, dtype=dtype)
    dtype = np.dtype(dtype)
    offset = np.asarray(input_offset, dtype=dtype).reshape(1, -1)
    shift = exact_sign_product(offset, np.asarray(signs, dtype=np.float64))[0]
    if alpha is not None:
        shift = np.multiply(shift, alpha, dtype=dtype)
    return -shift if bias is None else np.subtract(bias, shift, dtype=dtype)


def bn_scale(gamma, running_var, eps, dtype):
    """``k = gamma / sqrt(running_var + eps)`` (n,) of ``dtype``, the batch norm
    factor at evaluation time. The square root is taken in float64 and rounded
    once to ``dtype``: for float32 that is the correctly rounded ``sqrt`` (53 >=
    2 * 24 + 2 bits), the same on every CPU, where NumPy's float32 ``sqrt`` on
    32-bit ARM (NEON) is an estimate an ulp off on about a third of the inputs."""
    dtype = np.dtype(dtype)
    root = np.sqrt(np.asarray(running_var + dtype.type(eps), dtype=np.float64)).astype(dtype)
    return (gamma / root).astype(dtype)


def bn_affine(z, mean, k, beta):
    """Batch norm at evaluation time: ``(z - mean) * k + beta`` with
    ``k = gamma / sqrt(running_var + eps)`` (a new array)."""
    y = z - mean
    y *= k
    y += beta
    return y


def batch_norm_train(z, gamma, beta, running_mean, running_var, momentum, eps):
    """Training-mode batch normalisation of ``z`` (m, n) over its batch axis::

        mu = mean_i z;  var = mean_i (z - mu)**2  (biased);  inv_std = 1 / sqrt(var + eps)
        xhat = (z - mu) * inv_std;  y = xhat * gamma + beta

    in ``z``'s dtype (float32/float64), and the running statistics updated in
    place by :func:`bn_running_update`. ``gamma``, ``beta``, ``running_mean``,
    ``running_var``: (n,) of ``z``'s dtype. Returns ``(y, xhat, inv_std)``,
    (m, n), (m, n) and (n,): what :func:`batch_norm_backward` needs."""
    dtype = z.dtype
    mu = z.mean(axis=0)
    xc = z - mu
    var = np.mean(xc * xc, axis=0)
    inv_std = 1.0 / np.sqrt(var + dtype.type(eps))
    xhat = xc * inv_std
    bn_running_update(running_mean, running_var, mu, var, z.shape[0], momentum)
    return xhat * gamma + beta, xhat, inv_std


def batch_norm_sign_train(z, gamma, beta, running_mean, running_var, momentum, eps):
    """:func:`batch_norm_train` followed by a sign activation with its
    straight-through estimator: ``h = signs(y)`` (±1 of ``z``'s dtype, sign(0) = +1)
    and ``mask = |y| <= 1`` (bool), where the estimator passes the gradient.
    Returns ``(h, mask, xhat, inv_std)``."""
    y, xhat, inv_std = batch_norm_train(z, gamma, beta, running_mean, running_var, momentum, eps)
    return signs(y), np.abs(y) <= 1, xhat, inv_std


def batch_norm_backward(dy, xhat, inv_std, gamma, mask=None):
    """Gradients of :func:`batch_norm_train` from ``dy = dL/dy`` (m, n); with a
    ``mask`` (m, n) bool (from :func:`batch_norm_sign_train`) ``dy`` is first
    ``dL/dh * mask``, the sign's straight-through estimator::

        dgamma = sum_i dy * xhat;  dbeta = sum_i dy;  dxhat = dy * gamma
        dz = inv_std * (dxhat - mean_i dxhat - xhat * mean_i (dxhat * xhat))

    Returns ``(dz, dgamma, dbeta)``: (m, n), (n,), (n,) of ``dy``'s dtype."""
    if mask is not None:
        dy = dy * mask
    dgamma = np.sum(dy * xhat, axis=0)
    dbeta = np.sum(dy, axis=0)
    dxhat = dy * gamma
    dz = dxhat - dxhat.mean(axis=0) - xhat * np.mean(dxhat * xhat, axis=0)
    dz *= inv_std
    return dz, dgamma, dbeta


def bn_running_update(running_mean, running_var, mean, var, m, momentum):
    """In place: ``r = momentum * r + (1 - momentum) * batch`` for the running
    mean and variance (the variance unbiased, ``var * m / (m - 1)``, as
    PyTorch; ``var`` itself when ``m == 1``), in the arrays' dtype."""
    dtype = running_mean.dtype
    mom = dtype.type(momentum)
    unbiased = var * dtype.type(m / (m - 1)) if m > 1 else var
    running_mean *= mom
    running_mean += (1 - mom) * mean
    running_var *= mom
    running_var += (1 - mom) * unbiased


def _log_softmax(logits):
    z = logits - np.max(logits, axis=1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))


def _targets(labels, m, c, dtype):
    labels = np.asarray(labels)
    if labels.ndim == 1:
        onehot = np.zeros((m, c), dtype=dtype)
        onehot[np.arange(m), labels] = 1
        return onehot
    return labels.astype(dtype, copy=False)


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy and its gradient w.r.t. the logits.

    ``logits`` (m, c) float; ``labels`` either integer class indices (m,) or
    targets (m, c) (one-hot or any non-negative weights). With
    ``p = softmax(logits)`` and ``t`` the targets:

        loss     = -(1/m) * sum_i sum_j t[i, j] * log_softmax(logits)[i, j]
        dlogits  = (p * sum_j t[i, j] - t) / m        (= (p - onehot) / m)

    Returns ``(loss: float, dlogits: ndarray like logits)``. The loss uses
    log-softmax (max subtracted), so logits of +-1e4 give a finite loss.
    """
    logits = np.asarray(logits)
    m, c = logits.shape
    t = _targets(labels, m, c, logits.dtype)
    logp = _log_softmax(logits)
    loss = float(-np.sum(t * logp, dtype=np.float64) / m)
    p = np.exp(logp)
    dlogits = (p * np.sum(t, axis=1, keepdims=True) - t) / m
    return loss, dlogits.astype(logits.dtype)


def linear_softmax_cross_entropy(x, w, b, labels):
    """One softmax-regression training step's loss and gradients.

    ``z = x @ W + b`` with ``x`` (m, k), ``W`` (k, c) float or
    ``w = pack_weights(W)`` (c rows of k bits, meaning ``sign(W)``), ``b`` (c,);
    then :func:`softmax_cross_entropy`. Returns ``(loss, dw, db)`` with
    ``dw = x.T @ dz`` (k, c) and ``db = sum_i dz`` (c,), in ``x``'s dtype.
    For packed ``w`` the gradient is w.r.t. ``sign(W)``: BinaryConnect applies
    it to the real ``W``.
    """
    x = np.asarray(x)
    weights = unpack_signs(w, x.dtype).T if isinstance(w, PackedSigns) else w
    z = x @ weights + b
    loss, dz = softmax_cross_entropy(z, labels)
    return loss, (x.T @ dz).astype(x.dtype), dz.sum(axis=0).astype(x.dtype)


def sgd_update(param, grad, lr, clip=None):
    """In place: ``param -= lr * grad``, then, if ``clip`` is given,
    ``param = clip(param, -clip, clip)`` (BinaryConnect uses ``clip=1``).
    Returns ``param``."""
    param -= lr * grad
    if clip is not None:
        np.clip(param, -clip, clip, out=param)
    return param


def adam_update(param, grad, m, v, step, lr=0.001, b1=0.9, b2=0.999, eps=1e-8, clip=None):
    """In place, autograd's Adam (``step`` counts from 0), then the optional
    clip to [-clip, clip]:

        m = (1 - b1) * g + b1 * m;     v = (1 - b2) * g**2 + b2 * v
        mhat = m / (1 - b1**(step+1)); vhat = v / (1 - b2**(step+1))
        param -= lr * mhat / (sqrt(vhat) + eps)

    Returns ``param``."""
    m *= b1
    m += (1 - b1) * grad
    v *= b2
    v += (1 - b2) * grad**2
    mhat = m / (1 - b1 ** (step + 1))
    vhat = v / (1 - b2 ** (step + 1))
    param -= lr * mhat / (np.sqrt(vhat) + eps)
    if clip is not None:
        np.clip(param, -clip, clip, out=param)
    return param


# --------------------------------------------------------------------------
# Convolution over NHWC images (m, height, width, channels)
# --------------------------------------------------------------------------
# A binary convolution is a dense product on patches: im2col lays every
# (kh, kw, c) patch out as one row, so ``conv(x, W) = im2col(x) @ W`` with W
# as a (kh * kw * c_in, c_out) matrix, row index ``(i * kw + j) * c_in + ch``
# (the row order of a (kh, kw, c_in, c_out) array reshaped). "same" padding
# writes ``pad_value`` around the image: 1 by default ("one-padding", as
# larq/compute-engine: +1 is bit 0 of a packed sign, so it costs nothing in
# the packed form, where true zero padding would need a correction term).


def int_pair(name, value):
    """``value`` (an int >= 1 or a pair of them) as a pair of ints."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                 for v in pair):
        raise ValueError(f"{name} must be an int >= 1 or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def conv_geometry(height, width, kernel_size, stride=1, padding="valid"):
    """Output size and padding of a convolution (or pooling) window over an
    image of ``height`` x ``width``: ``(out_h, out_w, (top, bottom), (left,
    right))``.

    ``"valid"``: no padding, ``out = (size - kernel) // stride + 1`` (the
    window must fit: ``size >= kernel``). ``"same"``: ``out = ceil(size /
    stride)``, padding ``max((out - 1) * stride + kernel - size, 0)`` split
    with the smaller half first (top/left), as TensorFlow and LCE do."""
    kh, kw = int_pair("kernel_size", kernel_size)
    sh, sw = int_pair("stride", stride)
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    sizes = []
    for name, size, k, s in (("height", height, kh, sh), ("width", width, kw, sw)):
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
            raise ValueError(f"image {name} must be an int >= 1, got {size!r}")
        if padding == "valid":
            if size < k:
                raise ValueError(f"'valid' window of {k} does not fit an image {name} of {size}")
            out, pad = (size - k) // s + 1, 0
        else:
            out = -(-size // s)
            pad = max((out - 1) * s + k - size, 0)
        sizes.append((out, (pad // 2, pad - pad // 2)))
    (out_h, pad_h), (out_w, pad_w) = sizes
    return out_h, out_w, pad_h, pad_w


def _check_images(name, x):
    x = np.asarray(x)
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{name} must be non-empty images (m, height, width, channels), got shape {x.shape}")
    return x


def im2col(x, kernel_size, stride=1, padding="valid", pad_value=1):
    """The patches of images ``x`` (m, h, w, c) as rows: (m * out_h * out_w,
    kh * kw * c) of ``x``'s dtype, row ``(n * out_h + p) * out_w + q`` the
    patch under output pixel (p, q) of image n, column ``(i * kw + j) * c +
    ch`` its pixel (i, j), channel ch. Padding (:func:`conv_geometry`) holds
    ``pad_value`` in ``x``'s units (1: one-padding; raw uint8 pixels meaning
    x / 255 pad with 255 for 1.0)."""
    x = _check_images("x", x)
    m, h, w, c = x.shape
    kh, kw = int_pair("kernel_size", kernel_size)
    sh, sw = int_pair("stride", stride)
    out_h, out_w, pad_h, pad_w = conv_geometry(h, w, (kh, kw), (sh, sw), padding)
    xp = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=pad_value)
    cols = np.empty((m, out_h, out_w, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw, :]
    return cols.reshape(m * out_h * out_w, kh * kw * c)


def col2im(cols, input_shape, kernel_size, stride=1, padding="valid"):
    """The adjoint of :func:`im2col`: gradients ``cols`` (m * out_h * out_w,
    kh * kw * c) of the patches summed back onto the pixels they came from,
    (m, h, w, c) of ``cols``' dtype with ``input_shape = (m, h, w, c)``. The
    padding is a constant: its gradients are dropped."""
    m, h, w, c = (int(v) for v in input_shape)
    kh, kw = int_pair("kernel_size", kernel_size)
    sh, sw = int_pair("stride", stride)
    out_h, out_w, (top, bottom), (left, right) = conv_geometry(h, w, (kh, kw), (sh, sw), padding)
    cols = np.asarray(cols)
    if cols.shape != (m * out_h * out_w, kh * kw * c):
        raise ValueError(f"cols must have shape {(m * out_h * out_w, kh * kw * c)}, got {cols.shape}")
    d = cols.reshape(m, out_h, out_w, kh, kw, c)
    xp = np.zeros((m, h + top + bottom, w + left + right, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw, :] += d[:, :, :, i, j, :]
    return xp[:, top : top + h, left : left + w, :]


def pack_patches(x, kernel_size, stride=1, padding="valid") -> PackedSigns:
    """The signs of the patches of images ``x`` (m, h, w, c), packed:
    ``pack_signs(im2col(x, kernel_size, stride, padding, 1))``, PackedSigns
    (m * out_h * out_w, kh * kw * c), with one-padding (+1, bit 0). What the
    packed product of a binary convolution on ±1 input takes."""
    return pack_signs(im2col(x, kernel_size, stride, padding, 1))


def _conv_weights(w, c_in):
    w = np.asarray(w)
    if w.ndim != 4 or w.shape[2] != c_in or 0 in w.shape:
        raise ValueError(f"w must be (kh, kw, {c_in}, c_out) for images of {c_in} channels, got shape {w.shape}")
    return w


def sign_conv2d(x, w, stride=1, padding="valid", pad_value=1):
    """A convolution with binary weights: ``im2col(x) @ sign(W)`` as (m,
    out_h, out_w, c_out), with ``w`` the real weights W (kh, kw, c_in, c_out)
    (sign(0) = +1) and ``x`` (m, h, w, c_in). Float ``x``: ``x``'s dtype (a
    plain float sum); uint8 ``x``: the exact int32 product. ``pad_value`` in
    ``x``'s units, as :func:`im2col`."""
    x = _check_images("x", x)
    w = _conv_weights(w, x.shape[3])
    kh, kw, c_in, c_out = w.shape
    out_h, out_w, _, _ = conv_geometry(x.shape[1], x.shape[2], (kh, kw), stride, padding)
    cols = im2col(x, (kh, kw), stride, padding, pad_value)
    s = signs(w).reshape(kh * kw * c_in, c_out)
    if x.dtype == np.uint8:
        z = (cols.astype(np.int64) @ s.astype(np.int64)).astype(np.int32)
    else:
        z = cols @ s.astype(x.dtype)
    return z.reshape(x.shape[0], out_h, out_w, c_out)


def sign_conv2d_backward(dz, x, w, stride=1, padding="valid", pad_value=1):
    """Gradients of :func:`sign_conv2d` from ``dz`` (m, out_h, out_w, c_out)
    (float): ``(dx, dw)`` with ``dx = col2im(dz @ sign(W).T)`` (m, h, w,
    c_in) and ``dw = im2col(x).T @ dz`` (kh, kw, c_in, c_out), the gradient
    w.r.t. ``sign(W)`` that BinaryConnect applies to W (straight through);
    both of ``dz``'s dtype (uint8 ``x`` is taken as its raw values)."""
    x = _check_images("x", x)
    w = _conv_weights(w, x.shape[3])
    kh, kw, c_in, c_out = w.shape
    dz = np.asarray(dz)
    out_h, out_w, _, _ = conv_geometry(x.shape[1], x.shape[2], (kh, kw), stride, padding)
    if dz.shape != (x.shape[0], out_h, out_w, c_out):
        raise ValueError(f"dz must have shape {(x.shape[0], out_h, out_w, c_out)}, got {dz.shape}")
    d = dz.reshape(-1, c_out)
    cols = im2col(x, (kh, kw), stride, padding, pad_value).astype(dz.dtype)
    s = signs(w).reshape(kh * kw * c_in, c_out).astype(dz.dtype)
    dx = col2im(d @ s.T, x.shape, (kh, kw), stride, padding)
    dw = (cols.T @ d).reshape(w.shape)
    return dx, dw


def _pool_windows(x, pool_size, stride):
    """``(x, (ph, pw), (sh, sw), out_h, out_w)`` of a "valid" pooling of ``x``."""
    x = _check_images("x", x)
    ph, pw = int_pair("pool_size", pool_size)
    sh, sw = int_pair("stride", (ph, pw) if stride is None else stride)
    out_h, out_w, _, _ = conv_geometry(x.shape[1], x.shape[2], (ph, pw), (sh, sw), "valid")
    return x, (ph, pw), (sh, sw), out_h, out_w


def max_pool2d(x, pool_size, stride=None):
    """Max pooling of images ``x`` (m, h, w, c) over ``pool_size`` windows
    moved by ``stride`` (default: the pool size), no padding ("valid"):
    (m, out_h, out_w, c) of ``x``'s dtype. On ±1 values this is a bitwise
    operation: the max is -1 only where the whole window is -1, i.e. the AND
    of the packed bits (bit 1 = -1)."""
    x, (ph, pw), (sh, sw), out_h, out_w = _pool_windows(x, pool_size, stride)
    y = None
    for i in range(ph):
        for j in range(pw):
            v = x[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw, :]
            y = v.copy() if y is None else np.maximum(y, v)
    return y


def max_pool2d_backward(dy, x, pool_size, stride=None):
    """Gradient of :func:`max_pool2d` w.r.t. ``x`` from ``dy`` (m, out_h,
    out_w, c): each window's gradient goes to its *first* maximum in
    row-major window order (ties are common on ±1 or integer inputs; PyTorch
    also picks one), summed where windows overlap. (m, h, w, c) of ``dy``'s dtype."""
    x, (ph, pw), (sh, sw), out_h, out_w = _pool_windows(x, pool_size, stride)
    dy = np.asarray(dy)
    if dy.shape != (x.shape[0], out_h, out_w, x.shape[3]):
        raise ValueError(f"dy must have shape {(x.shape[0], out_h, out_w, x.shape[3])}, got {dy.shape}")
    y = max_pool2d(x, (ph, pw), (sh, sw))
    dx = np.zeros(x.shape, dtype=dy.dtype)
    taken = np.zeros(y.shape, dtype=bool)
    for i in range(ph):
        for j in range(pw):
            window = (slice(None), slice(i, i + sh * (out_h - 1) + 1, sh), slice(j, j + sw * (out_w - 1) + 1, sw))
            hit = (x[window] == y) & ~taken
            dx[window] += np.where(hit, dy, 0)
            taken |= hit
    return dx
