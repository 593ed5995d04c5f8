"""Numeric gradient checks: five-point differences against the analytic gradient, with kinks set aside.

An entry passes when its relative error |a - n| / max(|a| + |n|, FLOOR) is at most RTOL (a analytic,
n numeric): relative for gradients well above rounding level, an absolute bound RTOL * FLOOR for
those at it (a small-init deep net's weights, a bias just before batch norm), where the
numeric estimate is rounding noise. A coordinate whose stencil moves a ReLU-type unit across its
kink (the active set differs between x and some x + kh) has no derivative a finite difference can
check (CS231n's "kinks"): it is reported as not checkable and left out of the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from optbench.model import MLP

H = 1e-4  # five-point error O(h^4): h this large keeps rounding (eps * |J| / h, ~1e-12) far below RTOL * FLOOR
RTOL = 1e-7  # CS231n: "1e-7 and less you should be happy"
FLOOR = 1e-3  # |a| + |n| below this is judged absolutely: |a - n| <= RTOL * FLOOR = 1e-10
KINKED = ("relu", "leaky_relu", "elu")  # max(0, x)-type units (elu: a kink in f', or in f'' when alpha = 1)
STENCIL = ((-2, 1.0), (-1, -8.0), (1, 8.0), (2, -1.0))  # f'(x) ~ sum w_k f(x + k h) / 12 h


def numeric_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4, indices=None) -> np.ndarray:
    """df/dx by the five-point stencil (f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / 12h, one coordinate at a time.

    `indices` (flat) limits the work to those coordinates; the others stay 0.
    """
    g = np.zeros_like(x, dtype=np.float64)
    gflat = g.reshape(-1)
    idx = range(x.size) if indices is None else indices
    gflat[list(idx)] = numeric_at(lambda v: (f(v), None), x, idx, h)[0]
    return g


def numeric_at(probe, x: np.ndarray, indices, h: float = H) -> tuple[np.ndarray, np.ndarray]:
    """Five-point dJ/dx at flat `indices`, and whether each stencil crosses a kink.

    probe(x) -> (J, pattern): pattern (the active units, or None) must be the same at x and at every
    x + kh for the coordinate to be checkable. x is restored after each coordinate.
    """
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numeric_at perturbs x through a flat view: x must be contiguous")
    _, base = probe(x)
    num = np.empty(len(indices))
    kink = np.zeros(len(indices), dtype=bool)
    for j, i in enumerate(indices):
        old, total = flat[i], 0.0
        for k, w in STENCIL:
            flat[i] = old + k * h
            J, pattern = probe(x)
            total += w * J
            kink[j] |= pattern is not None and not np.array_equal(pattern, base)
        flat[i] = old
        num[j] = total / (12 * h)
    return num, kink


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| / (|a| + |b|) in the Euclidean norm over the whole tensor (deeplearning.ai's gradient check)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else 0.0


@dataclass(frozen=True)
class Comparison:
    """Analytic a and numeric n (k,) at k checked coordinates; kink (k,) marks those not checkable."""

    a: np.ndarray
    n: np.ndarray
    kink: np.ndarray

    def take(self, sel) -> "Comparison":
        return Comparison(self.a[sel], self.n[sel], self.kink[sel])

    @property
    def rel(self) -> np.ndarray:
        """|a - n| / max(|a| + |n|, FLOOR) per entry; pass <= RTOL."""
        return np.abs(self.a - self.n) / np.maximum(np.abs(self.a) + np.abs(self.n), FLOOR)

    def stats(self) -> dict:
        """Counts (checked, kinks, at_floor, failed) and the worst relative error over the checkable entries."""
        ok = ~self.kink
        rel = self.rel[ok]
        return {
            "checked": int(ok.sum()),
            "kinks": int(self.kink.sum()),
            "at_floor": int((np.abs(self.a[ok]) + np.abs(self.n[ok]) < FLOOR).sum()),
            "failed": int((rel > RTOL).sum()),
            "worst": float(rel.max()) if rel.size else 0.0,
        }


@dataclass
class Objective:
    """One replica's training cost J(theta) = mean data cost over the batch + 0.5 l2 sum W^2, and its gradients.

    theta (1, P); A0 (1, D+1, B) with its ones row; Y (1, C, B). With dropout, every evaluation draws
    its mask from a generator seeded afresh with `drop_seed`, so J is one smooth function of theta.
    """

    net: MLP  # R = 1
    A0: np.ndarray
    Y: np.ndarray
    l2: float = 0.0
    keep: np.ndarray | None = None  # (1, 1, 1) keep probability, with dropout
    drop_seed: int = 0
    kinked: bool = False  # ReLU-type activation: probe reports the active units

    def __post_init__(self):
        self.mask = self.net.layout.weight_mask()

    def _pass(self) -> dict:
        """The dropout arguments, with a fresh generator: every evaluation draws the same mask."""
        if not self.net.dropout:
            return {}
        return {"keep": self.keep, "drop_gens": [np.random.default_rng(self.drop_seed)]}

    def probe(self, theta: np.ndarray) -> tuple[float, np.ndarray | None]:
        """J(theta) and, for ReLU-type units, which hidden units are active (h > 0) on each example."""
        net = self.net
        J = float(net.objective(theta, self.A0, self.Y, l2=self.l2, **self._pass())[0])
        if not self.kinked:
            return J, None
        ws = net.workspace(self.A0.shape[-1], True)
        return J, np.concatenate([np.zeros(0, dtype=bool)] + [ws.post[l].reshape(-1) > 0 for l in range(1, net.L)])

    def general(self, theta: np.ndarray) -> np.ndarray:
        """dJ/dtheta (P,) through MLP.backward (MLP.objective: L-BFGS, and the step of norm and dropout nets)."""
        g = np.zeros_like(theta)
        self.net.objective(theta, self.A0, self.Y, g, l2=self.l2, buffers=self.net.new_buffers(), **self._pass())
        return g[0]

    def step(self, theta: np.ndarray) -> np.ndarray:
        """dJ/dtheta (P,) from the training step compile_step builds (its fused backward on plain nets),
        plus the L2 gradient l2 * W the training loop adds to it."""
        g = np.zeros_like(theta)
        Z = np.empty((1, self.net.dims[-1], self.A0.shape[-1]), dtype=theta.dtype)
        self.net.compile_step(theta, g, self.A0, self.Y, Z, buffers=self.net.new_buffers(), **self._pass())()
        return (g + self.l2 * self.mask * theta)[0]

    def paths(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """The analytic gradients to check: "fused" (plain nets' training step) and "general" (MLP.backward)."""
        return ({"fused": self.step} if self.net.fused else {}) | {"general": self.general}


def compare_paths(obj: Objective, theta: np.ndarray, indices, h: float = H) -> dict[str, Comparison]:
    """Each path's analytic gradient against one numeric estimate at flat `indices` of theta (1, P)."""
    n, kink = numeric_at(obj.probe, theta.copy(), indices, h)
    return {path: Comparison(grad(theta.copy())[indices], n, kink) for path, grad in obj.paths().items()}


def check_net(net, theta, A0, Y, *, l2=0.0, keep=None, drop_seed=0, kinked=False, h=H) -> dict[tuple[str, str], dict]:
    """Stats of every entry of every named parameter, per (path, name), for one replica (theta (1, P))."""
    obj = Objective(net, A0, Y, l2=l2, keep=keep, drop_seed=drop_seed, kinked=kinked)
    where = net.layout.named(np.arange(net.layout.P)[None])
    indices = np.arange(net.layout.P)
    out = {}
    for path, cmp in compare_paths(obj, theta, indices, h).items():
        for name, idx in where.items():
            out[path, name] = cmp.take(idx.reshape(-1)).stats()
    return out
