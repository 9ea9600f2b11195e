"""Training-mode batch normalisation, optionally fused with the sign activation
and its straight-through estimator: one jitted call forward and one backward
instead of a dozen NumPy passes (the formulas: ``fastbin.reference.batch_norm_train``,
``batch_norm_sign_train`` and ``batch_norm_backward``).

The kernels take C-contiguous (m, n) arrays and (n,) vectors of one float
dtype, allocated and checked by ``fastbin.ops.batch_norm``. Column sums are
accumulated in float64 over rows (the inner loop runs along a row, over the
columns, so it vectorises), then rounded once to the arrays' dtype.
"""
from __future__ import annotations

import numpy as np

from .._config import jit

__all__ = ["batch_norm_train_into", "batch_norm_sign_train_into", "batch_norm_backward_into"]


@jit
def _column_stats(z, mean, var):
    """``mean`` and the biased ``var`` (n,) of ``z`` (m, n) over its rows."""
    m, n = z.shape
    acc = np.zeros(n, np.float64)
    for i in range(m):
        for j in range(n):
            acc[j] += z[i, j]
    for j in range(n):
        mean[j] = acc[j] / m
        acc[j] = 0.0
    for i in range(m):
        for j in range(n):
            d = z[i, j] - mean[j]  # in z's dtype, as the reference's z - mu
            acc[j] += d * d
    for j in range(n):
        var[j] = acc[j] / m


@jit
def _stats_into(z, eps, inv_std, mean, var):
    """``mean``, biased ``var`` and ``inv_std = 1 / sqrt(var + eps)`` (n,) of ``z``."""
    _column_stats(z, mean, var)
    one = inv_std.dtype.type(1)
    eps_ = inv_std.dtype.type(eps)
    for j in range(z.shape[1]):
        inv_std[j] = one / np.sqrt(var[j] + eps_)


@jit
def batch_norm_train_into(z, gamma, beta, eps, xhat, inv_std, mean, var, y):
    """Forward pass of batch norm, written into the given arrays::

        mean, var = column mean and biased variance of z;  inv_std = 1 / sqrt(var + eps)
        xhat = (z - mean) * inv_std;  y = xhat * gamma + beta

    z, xhat, y : (m, n); gamma, beta, inv_std, mean, var : (n,); all of one
    float dtype, C-contiguous. eps : float > 0."""
    _stats_into(z, eps, inv_std, mean, var)
    _apply(z, mean, inv_std, gamma, beta, xhat, y)


@jit
def batch_norm_sign_train_into(z, gamma, beta, eps, xhat, inv_std, mean, var, h, mask):
    """:func:`batch_norm_train_into` followed by the sign activation: instead of
    ``y``, ``h = -1 if y < 0 else +1`` (z's dtype) and ``mask = |y| <= 1`` (bool)."""
    _stats_into(z, eps, inv_std, mean, var)
    _apply_sign(z, mean, inv_std, gamma, beta, xhat, h, mask)


@jit
def _apply(z, mean, inv_std, gamma, beta, xhat, y):
    m, n = z.shape
    for i in range(m):
        for j in range(n):
            x = (z[i, j] - mean[j]) * inv_std[j]
            xhat[i, j] = x
            y[i, j] = x * gamma[j] + beta[j]


@jit
def _apply_sign(z, mean, inv_std, gamma, beta, xhat, h, mask):
    m, n = z.shape
    one = h.dtype.type(1)
    for i in range(m):
        zi, xi, hi, mi = z[i], xhat[i], h[i], mask[i]
        for j in range(n):  # selects, no branches: the loop vectorises
            x = (zi[j] - mean[j]) * inv_std[j]
            xi[j] = x
            v = x * gamma[j] + beta[j]
            hi[j] = -one if v < 0 else one
            mi[j] = abs(v) <= one


@jit
def batch_norm_backward_into(dy, mask, xhat, inv_std, gamma, dz, dgamma, dbeta):
    """Backward pass of batch norm, written into ``dz`` (m, n), ``dgamma`` and
    ``dbeta`` (n,); ``g = dy * mask`` (the straight-through estimator) when
    ``mask`` (m, n) bool is given, else ``g = dy``::

        dgamma = sum_i g * xhat;  dbeta = sum_i g
        dz = gamma * inv_std * (g - dbeta / m - xhat * dgamma / m)

    (the reference's ``inv_std * (dxhat - mean dxhat - xhat * mean(dxhat * xhat))``
    with ``dxhat = g * gamma``, its two means taken from the two sums)."""
    m, n = dy.shape
    zero = dz.dtype.type(0)
    acc_g = np.zeros(n, np.float64)
    acc_b = np.zeros(n, np.float64)
    for i in range(m):
        for j in range(n):
            g = dy[i, j]
            if mask is not None:
                g = g if mask[i, j] else zero
            acc_g[j] += g * xhat[i, j]
            acc_b[j] += g
    mean_b = np.empty(n, dz.dtype)
    mean_g = np.empty(n, dz.dtype)
    factor = np.empty(n, dz.dtype)
    for j in range(n):
        dgamma[j] = acc_g[j]
        dbeta[j] = acc_b[j]
        mean_b[j] = acc_b[j] / m
        mean_g[j] = acc_g[j] / m
        factor[j] = gamma[j] * inv_std[j]
    for i in range(m):
        for j in range(n):
            g = dy[i, j]
            if mask is not None:
                g = g if mask[i, j] else zero
            dz[i, j] = factor[j] * (g - mean_b[j] - xhat[i, j] * mean_g[j])
