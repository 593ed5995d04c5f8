"""Layers on features-major arrays (R, D, B): dense, activations, batch/layer norm.

Activations work in place on the pre-activation and take their derivative from the output,
so the forward pass keeps one array per layer. Every backward here has a numeric gradient check.
(Inverted dropout, mask = (U < keep) / keep, is drawn where its generators are: model.MLP.forward.)
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from optbench.registry import OpenUnit, Positive, Registry

ACTIVATIONS = Registry("activation")


def dense_forward(W: np.ndarray, A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Z = W A: W (R, n_out, n_in+1) with the bias as its last column, A (R, n_in+1, B) whose last row is ones.

    CS231n's affine_forward, out = x w + b, with examples as columns and the bias folded into the product.
    """
    return np.matmul(W, A, out=out)


def dense_backward(dZ: np.ndarray, W: np.ndarray, A: np.ndarray, dW: np.ndarray, dA: np.ndarray | None = None) -> None:
    """dW = dZ A^T into dW (the bias gradient, dZ summed over examples, is its last column); dA = W^T dZ into dA.

    CS231n's affine_backward (dw = x^T dout, db = sum dout, dx = dout w^T). dA (R, n_in, B) leaves out the ones
    row, which has no gradient; None skips it (the first layer's input is data).
    """
    np.matmul(dZ, A.swapaxes(-1, -2), out=dW)
    if dA is not None:
        np.matmul(W[:, :, :-1].swapaxes(-1, -2), dZ, out=dA)


class Activation(NamedTuple):
    """forward(Z): Z <- f(Z) in place; backward(dA, A): dA <- dA * f'(.) in place, f' read from the output A."""

    forward: Callable[[np.ndarray], None]
    backward: Callable[[np.ndarray, np.ndarray], None]


@ACTIVATIONS.register()
def relu() -> Activation:
    """max(0, x): fast, no saturation for x > 0, dead for x < 0."""

    masks: dict[tuple, np.ndarray] = {}  # a mask buffer per layout: allocating one per call costs a quarter more

    def forward(Z):
        np.maximum(Z, 0, out=Z)

    def backward(dA, A):
        key = (A.shape, A.strides)
        m = masks.get(key)
        if m is None:
            m = masks[key] = np.empty_like(A, dtype=bool)
        np.greater(A, 0, out=m)
        np.multiply(dA, m, out=dA)

    return Activation(forward, backward)


@ACTIVATIONS.register()
def leaky_relu(*, slope: OpenUnit = 0.01) -> Activation:
    """max(slope * x, x): ReLU with a small gradient for x < 0."""

    def forward(Z):
        np.maximum(Z, slope * Z, out=Z)

    def backward(dA, A):
        one, s = np.ones((), dtype=A.dtype), np.asarray(slope, dtype=A.dtype)  # where() of two Python floats is float64
        np.multiply(dA, np.where(A > 0, one, s), out=dA)

    return Activation(forward, backward)


@ACTIVATIONS.register()
def elu(*, alpha: Positive = 1.0) -> Activation:
    """x for x > 0, alpha * (exp(x) - 1) otherwise; f' = f + alpha on the negative side."""

    def forward(Z):
        neg = Z < 0
        Z[neg] = alpha * np.expm1(Z[neg])

    def backward(dA, A):
        np.multiply(dA, np.where(A > 0, 1.0, A + alpha), out=dA)

    return Activation(forward, backward)


@ACTIVATIONS.register()
def tanh() -> Activation:
    """tanh(x): zero-centred, saturates; f' = 1 - f^2."""

    def forward(Z):
        np.tanh(Z, out=Z)

    def backward(dA, A):
        dA *= 1.0 - A * A

    return Activation(forward, backward)


@ACTIVATIONS.register()
def sigmoid() -> Activation:
    """1 / (1 + exp(-x)) computed as (1 + tanh(x/2)) / 2 (no overflow); f' = f (1 - f)."""

    def forward(Z):
        Z *= 0.5
        np.tanh(Z, out=Z)
        Z += 1.0
        Z *= 0.5

    def backward(dA, A):
        dA *= A * (1.0 - A)

    return Activation(forward, backward)


@ACTIVATIONS.register()
def identity() -> Activation:
    """x: a linear net, for demonstrations."""

    def forward(Z):
        pass

    def backward(dA, A):
        pass

    return Activation(forward, backward)


NORM_EPS = 1e-5
BN_MOMENTUM = 0.9  # running = m * running + (1 - m) * batch statistic (CS231n)


def norm_forward(Z: np.ndarray, gamma: np.ndarray, beta: np.ndarray, axis: int, stats=None):
    """out = gamma * (Z - mean) / sqrt(var + eps) + beta over `axis` (-1: batch norm, -2: layer norm).

    Z (R, D, B); gamma, beta (R, D, 1). With `stats` = (mean, var) those are used instead of the
    batch's (batch norm at test time). Returns out and the cache (xhat, inv_std) for backward.
    """
    if stats is None:
        mean = Z.mean(axis=axis, keepdims=True)
        var = Z.var(axis=axis, keepdims=True)
    else:
        mean, var = stats
    inv_std = 1.0 / np.sqrt(var + NORM_EPS)
    xhat = (Z - mean) * inv_std
    return gamma * xhat + beta, (xhat, inv_std, mean, var)


def norm_backward(dout: np.ndarray, gamma: np.ndarray, cache, axis: int):
    """Gradients of norm_forward with batch statistics: dZ (R, D, B), dgamma, dbeta (R, D, 1)."""
    xhat, inv_std = cache[0], cache[1]
    n = dout.shape[axis]
    # gamma and beta are per feature in both norms, so their gradients sum over examples (last axis)
    dbeta = dout.sum(axis=-1, keepdims=True)
    dgamma = (dout * xhat).sum(axis=-1, keepdims=True)
    dxhat = dout * gamma
    # d/dZ of xhat = (Z - mean) * inv_std, with mean and var over `axis`
    dZ = inv_std / n * (n * dxhat - dxhat.sum(axis=axis, keepdims=True) - xhat * (dxhat * xhat).sum(axis=axis, keepdims=True))
    return dZ, dgamma, dbeta
