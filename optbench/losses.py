"""Losses on output logits Z (R, C, B) and targets Y (R, C, B): per-replica cost sums and dZ of the mean cost."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from optbench.registry import Registry

LOSSES = Registry("loss")


class Loss(NamedTuple):
    """value_grad(Z, Y, dZ) -> (R,) sum over the batch of per-example costs; writes d(mean cost)/dZ into dZ.

    grad(Z, Y, dZ): the gradient alone (the training hot path); value(Z, Y) -> the sums alone;
    correct(Z, Y) -> (R,) correct predictions (or None); proba(Z) -> probabilities (or predictions).
    """

    value_grad: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray, np.ndarray, np.ndarray], None]
    value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    correct: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    proba: Callable[[np.ndarray], np.ndarray]


@LOSSES.register()
def bce() -> Loss:
    """Sigmoid + binary cross-entropy on one output: softplus(z) - y z; dz = sigmoid(z) - y.

    Targets are stored signed, t = 2y - 1 in [-1, 1] (see `encode_targets`): then
    sigmoid(z) - y = (tanh(z/2) - t) / 2 and the cost is (|z| - t z) / 2 + log1p(exp(-|z|)),
    exact for any |z| and fewer passes over the batch than with y.
    """

    def value(Z, T):
        A = np.abs(Z)
        S = np.multiply(T, Z)
        np.subtract(A, S, out=S)
        S *= 0.5
        np.negative(A, out=A)  # log1p(exp(-|z|)) in place: two arrays for the whole epoch, not eight
        np.exp(A, out=A)
        np.log1p(A, out=A)
        S += A
        return replica_sums(S)

    def grad(Z, T, dZ):
        np.multiply(Z, 0.5, out=dZ)
        np.tanh(dZ, out=dZ)
        dZ -= T
        dZ *= 0.5 / Z.shape[-1]

    def value_grad(Z, T, dZ):
        grad(Z, T, dZ)
        return value(Z, T)

    def correct(Z, T):
        return ((Z > 0) == (T > 0)).sum(axis=(1, 2))

    def proba(Z):
        return 0.5 * (1.0 + np.tanh(0.5 * Z))

    return Loss(value_grad, grad, value, correct, proba)


def encode_targets(loss: str, y: np.ndarray, n_classes: int = 0) -> np.ndarray:
    """Labels or values (N,) / (N, K) -> the (N, C) targets a loss reads: one-hot for softmax_ce,
    signed 2y - 1 for bce, the values themselves for mse."""
    N = len(y)
    if loss == "softmax_ce":
        Y = np.zeros((N, max(n_classes, 2)))
        Y[np.arange(N), y] = 1.0
        return Y
    Y = np.asarray(y, dtype=np.float64).reshape(N, -1)
    return 2.0 * Y - 1.0 if loss == "bce" else Y


@LOSSES.register()
def softmax_ce() -> Loss:
    """Softmax cross-entropy: logsumexp(z) - sum_c y_c z_c; dz = softmax(z) - y."""

    def grad(Z, Y, dZ):
        np.subtract(Z, Z.max(axis=1, keepdims=True), out=dZ)  # shifted logits: exp cannot overflow
        np.exp(dZ, out=dZ)
        dZ /= dZ.sum(axis=1, keepdims=True)
        dZ -= Y
        dZ *= 1.0 / Z.shape[-1]

    def value_grad(Z, Y, dZ):
        grad(Z, Y, dZ)
        return value(Z, Y)

    def value(Z, Y):
        s = Z - Z.max(axis=1, keepdims=True)
        # sum_c y_c = 1 (also when smoothed), so -sum_c y_c log p_c = logsumexp(s) - sum_c y_c s_c
        return replica_sums(np.log(np.exp(s).sum(axis=1, keepdims=True)) - (Y * s).sum(axis=1, keepdims=True))

    def correct(Z, Y):
        return (Z.argmax(axis=1) == Y.argmax(axis=1)).sum(axis=1)

    def proba(Z):
        e = np.exp(Z - Z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return Loss(value_grad, grad, value, correct, proba)


@LOSSES.register()
def mse() -> Loss:
    """Mean squared error over the K outputs: mean_k (z_k - y_k)^2; dz = 2 (z - y) / K."""

    def value(Z, Y):
        return replica_sums((Z - Y) ** 2) / Z.shape[1]

    def grad(Z, Y, dZ):
        np.subtract(Z, Y, out=dZ)
        dZ *= 2.0 / (Z.shape[1] * Z.shape[-1])

    def value_grad(Z, Y, dZ):
        grad(Z, Y, dZ)
        return value(Z, Y)

    def proba(Z):
        return Z

    return Loss(value_grad, grad, value, None, proba)


def replica_sums(a: np.ndarray) -> np.ndarray:
    """(R,) sums of each replica's values, (R, ...) -> (R,).

    Summed over one contiguous block per replica, so the rounding is the same whatever R is and
    however the array is laid out: a run's numbers must not depend on its group.
    """
    R = a.shape[0]
    return np.ascontiguousarray(a).reshape(R, -1).sum(axis=1)


def l2_penalty(theta: np.ndarray, mask: np.ndarray, l2) -> np.ndarray:
    """0.5 * l2 * sum(W^2) over the weights (mask), per replica: (R,)."""
    # a plain row sum reduces each row the same way whatever R is (einsum buffers long rows, and
    # vecdot calls a threaded BLAS dot): a run's numbers must not depend on its group
    return 0.5 * np.asarray(l2).reshape(-1) * (theta * theta * mask).sum(axis=1)


def expected_initial_cost(loss: str, n_outputs: int) -> float | None:
    """The cost of an uninformed classifier (CS231n: ln C; ln 2 for binary cross-entropy)."""
    if loss == "bce":
        return float(np.log(2.0))
    if loss == "softmax_ce":
        return float(np.log(n_outputs))
    return None
