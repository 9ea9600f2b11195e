"""Training-mode batch normalisation (validated public API), optionally fused
with the sign activation and its straight-through estimator: one jitted pass
each way (``fastbin.kernels.batch_norm``). Mirrors ``fastbin.reference``'s
``batch_norm_train``, ``batch_norm_sign_train`` and ``batch_norm_backward``
(the same formulas; column sums accumulated in float64, so within the float
tolerance of the reference, which sums in the arrays' dtype).
"""
from __future__ import annotations

import numbers

import numpy as np

from .._validate import FLOAT_DTYPES, check_array, check_positive_float
from ..kernels.batch_norm import batch_norm_backward_into, batch_norm_sign_train_into, batch_norm_train_into
from ..reference import bn_running_update

__all__ = ["batch_norm_train", "batch_norm_sign_train", "batch_norm_backward"]

_BOOL = np.dtype(np.bool_)


def batch_norm_train(z, gamma, beta, running_mean, running_var, momentum, eps):
    """Training-mode batch norm of ``z`` (m, n) float32/float64 over its rows:
    ``y = (z - mean) / sqrt(var + eps) * gamma + beta`` with the batch's mean
    and biased variance; ``running_mean`` and ``running_var`` (n,) are updated
    in place (``r = momentum * r + (1 - momentum) * batch``, the variance
    unbiased). ``gamma``, ``beta``: (n,) of ``z``'s dtype. ``momentum`` in
    [0, 1], ``eps`` > 0. Returns ``(y, xhat, inv_std)``: (m, n), (m, n), (n,)."""
    z, n = _checked(z, gamma, beta, running_mean, running_var, momentum, eps)
    y = np.empty_like(z)
    xhat, inv_std, mean, var = _scratch(z)
    batch_norm_train_into(z, gamma, beta, eps, xhat, inv_std, mean, var, y)
    bn_running_update(running_mean, running_var, mean, var, z.shape[0], momentum)
    return y, xhat, inv_std


def batch_norm_sign_train(z, gamma, beta, running_mean, running_var, momentum, eps):
    """:func:`batch_norm_train` then the sign activation: returns
    ``(h, mask, xhat, inv_std)`` with ``h = sign(y)`` (±1 of ``z``'s dtype,
    sign(0) = +1) and ``mask = |y| <= 1`` (bool (m, n)), where the
    straight-through estimator passes the gradient; ``y`` itself is not kept."""
    z, n = _checked(z, gamma, beta, running_mean, running_var, momentum, eps)
    h = np.empty_like(z)
    mask = np.empty(z.shape, _BOOL)
    xhat, inv_std, mean, var = _scratch(z)
    batch_norm_sign_train_into(z, gamma, beta, eps, xhat, inv_std, mean, var, h, mask)
    bn_running_update(running_mean, running_var, mean, var, z.shape[0], momentum)
    return h, mask, xhat, inv_std


def batch_norm_backward(dy, xhat, inv_std, gamma, mask=None):
    """Gradients of :func:`batch_norm_train` from ``dy = dL/dy`` (m, n), with
    ``xhat`` (m, n) and ``inv_std`` (n,) from the forward pass and ``gamma``
    (n,). ``mask`` (m, n) bool (from :func:`batch_norm_sign_train`): ``dy`` is
    then ``dL/dh`` and only the entries where ``mask`` holds pass (the
    straight-through estimator of the sign). Returns ``(dz, dgamma, dbeta)``."""
    if not (_lean_ok(xhat, (inv_std, gamma)) and type(dy) is np.ndarray and dy.shape == xhat.shape
            and dy.dtype == xhat.dtype and dy.flags.c_contiguous):
        xhat = check_array("xhat", xhat, FLOAT_DTYPES, 2)
        dy = _like("dy", dy, xhat.dtype, xhat.shape)
        inv_std = _like("inv_std", inv_std, xhat.dtype, (xhat.shape[1],))
        gamma = _like("gamma", gamma, xhat.dtype, (xhat.shape[1],))
    m, n = xhat.shape
    dtype = xhat.dtype
    if mask is not None and not (type(mask) is np.ndarray and mask.dtype == _BOOL and mask.shape == (m, n)
                                 and mask.flags.c_contiguous):
        mask = check_array("mask", mask, (_BOOL,), 2)
        if mask.shape != (m, n):
            raise ValueError(f"mask must have shape {(m, n)}, got {mask.shape}")
    dz = np.empty_like(xhat)
    dgamma, dbeta = np.empty(n, dtype), np.empty(n, dtype)
    batch_norm_backward_into(dy, mask, xhat, inv_std, gamma, dz, dgamma, dbeta)
    return dz, dgamma, dbeta


def _scratch(z):
    """``xhat`` (m, n) and ``inv_std``, ``mean``, ``var`` (n,) for the forward kernels."""
    n = z.shape[1]
    return np.empty_like(z), np.empty(n, z.dtype), np.empty(n, z.dtype), np.empty(n, z.dtype)


def _lean_ok(z, vectors, updated=()):
    """True for the common case, in attribute tests only: ``z`` a C-contiguous 2-D
    float array, every vector (and every ``updated`` one, writeable too) a
    C-contiguous (n,) array of its dtype."""
    if type(z) is not np.ndarray or z.ndim != 2 or z.dtype not in FLOAT_DTYPES:
        return False
    if not z.flags.c_contiguous or z.size == 0:
        return False
    shape = (z.shape[1],)
    for vec in vectors + updated:
        if type(vec) is not np.ndarray or vec.shape != shape or vec.dtype != z.dtype or not vec.flags.c_contiguous:
            return False
    return all(vec.flags.writeable for vec in updated)


def _checked(z, gamma, beta, running_mean, running_var, momentum, eps):
    if (_lean_ok(z, (gamma, beta), (running_mean, running_var)) and type(momentum) is float and 0 <= momentum <= 1
            and type(eps) is float and 0 < eps < np.inf):
        return z, z.shape[1]
    z = check_array("z", z, FLOAT_DTYPES, 2)
    n = z.shape[1]
    for name, vec in (("gamma", gamma), ("beta", beta)):
        _like(name, vec, z.dtype, (n,))
    for name, vec in (("running_mean", running_mean), ("running_var", running_var)):
        check_array(name, vec, (z.dtype,), 1, writeable=True)
        if vec.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {vec.shape}")
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise ValueError(f"momentum must be a real number in [0, 1], got {momentum!r}")
    check_positive_float("eps", eps)
    return z, n


def _like(name, value, dtype, shape):
    value = check_array(name, value, (dtype,), len(shape))
    if value.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {value.shape}")
    return value
