"""Test-mode evaluation of a group's replicas: the mean cost and accuracy on a data matrix, chunk by chunk."""

from __future__ import annotations

import numpy as np

from optbench.budget import EVAL_CHUNK


def evaluate(net, theta: np.ndarray, M: np.ndarray, D: int, buffers) -> tuple[np.ndarray, np.ndarray]:
    """Mean cost (R,) and accuracy (R,) (NaN for regression) of theta (R, P) on M = [X^T; 1; Y^T] (D+1+C, N)."""
    R, N = theta.shape[0], M.shape[1]
    cost, correct = np.zeros(R), np.zeros(R)
    loss = net.loss
    for a in range(0, N, EVAL_CHUNK):
        part = M[:, a : a + EVAL_CHUNK]
        Z = net.forward(theta, part[None, : D + 1], train=False, buffers=buffers)
        Y = part[None, D + 1 :]
        cost += loss.value(Z, Y)
        if loss.correct is not None:
            correct += loss.correct(Z, Y)
    acc = correct / N if loss.correct is not None else np.full(R, np.nan)
    return cost / N, acc
