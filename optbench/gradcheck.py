"""Numeric gradient checks: central differences against the analytic backward pass."""

from __future__ import annotations

from typing import Callable

import numpy as np


def numeric_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4, indices=None) -> np.ndarray:
    """df/dx by the five-point stencil (f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / 12h, one coordinate at a time.

    Its error is O(h^4) instead of central differences' O(h^2), so h can be large enough that rounding
    (eps * f / h) stays near 1e-12; near a kink (ReLU) a smaller h crosses it less often.
    `indices` (flat) limits the work to those coordinates; the others stay 0.
    """
    g = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size) if indices is None else indices:
        old = flat[i]
        vals = []
        for k in (-2, -1, 1, 2):
            flat[i] = old + k * h
            vals.append(f(x))
        flat[i] = old
        gflat[i] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    return g


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| / (|a| + |b|) in the Euclidean norm over the whole tensor (deeplearning.ai's gradient check).

    Norm-wise rather than elementwise: an entry whose true gradient is exactly zero (a dead ReLU, a
    masked weight) has a numeric estimate of pure rounding noise, which no elementwise ratio can judge.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else 0.0


def check_net(net, theta, A0, Y, *, l2=0.0, keep=None, drop_seed=0, buffers=None, h=1e-4) -> dict[str, float]:
    """Max relative error per named parameter of one replica's full cost (mean data cost + L2).

    Dropout masks come from generators re-seeded at every evaluation, so every evaluation sees the same mask.
    """
    from optbench.losses import l2_penalty

    mask = net.layout.weight_mask()
    B = A0.shape[-1]

    def cost_and_grad(th):
        gens = [np.random.default_rng(drop_seed)] if keep is not None else None
        grad = np.zeros_like(th)
        c = net.loss_grad(th, grad, A0, Y, buffers=buffers, keep=keep, drop_gens=gens)
        grad += l2 * mask * th
        return float(c[0] / B + l2_penalty(th, mask, l2)[0]), grad

    _, analytic = cost_and_grad(theta)
    numeric = numeric_grad(lambda th: cost_and_grad(th)[0], theta.copy(), h)
    a_named, n_named = net.layout.named(analytic), net.layout.named(numeric)
    return {name: rel_error(a_named[name], n_named[name]) for name in a_named}
