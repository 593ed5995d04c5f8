"""Gradient clipping per replica on the flat (R, P) gradient, as torch.nn.utils does it over all parameters.

    norm:  g *= min(1, max_norm / (||g||_2 + 1e-6))     (clip_grad_norm_, the norm over the whole replica)
    value: g = clamp(g, -v, v)                          (clip_grad_value_)

A replica without clipping gets max_norm = v = inf, which leaves its gradient bit for bit as it was
(a factor of exactly 1, a clamp at +-inf), so a run's numbers do not depend on its group.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from optbench.sections import Train

EPS = 1e-6  # torch's: clip_coef = max_norm / (total_norm + 1e-6)


def clipper(trains: list[Train], P: int, dtype) -> Callable[[np.ndarray], np.ndarray] | None:
    """The in-place clip of a group's gradient (R, P) -> its pre-clip norms (R,), or None when no replica clips;
    trains: each replica's train section (clip_grad_norm, clip_grad_value)."""
    max_norm = np.array([t.clip_grad_norm or np.inf for t in trains]).reshape(-1, 1)
    max_value = np.array([t.clip_grad_value or np.inf for t in trains]).reshape(-1, 1)
    by_norm, by_value = bool(np.isfinite(max_norm).any()), bool(np.isfinite(max_value).any())
    if not (by_norm or by_value):
        return None
    R = len(trains)
    sq = np.empty((R, P), dtype=dtype)
    coef, coef_dt = np.empty((R, 1)), np.empty((R, 1), dtype=dtype)
    hi = max_value.astype(dtype)
    lo = -hi

    def clip(g: np.ndarray) -> np.ndarray:
        np.multiply(g, g, out=sq)
        norm = np.sqrt(sq.sum(axis=1))  # records.norms' digits (a plain row sum), in g's dtype as torch has it
        big = np.isinf(norm)
        if big.any():  # float32 squares past 3.4e38: the norm of a finite gradient again, in float64
            norm = norm.astype(np.float64)
            norm[big] = np.sqrt(np.square(g[big], dtype=np.float64).sum(axis=1))
        if by_value:
            np.clip(g, lo, hi, out=g)
        if by_norm:
            np.divide(max_norm, norm[:, None] + EPS, out=coef)
            np.fmin(coef, 1.0, out=coef)  # fmin: a NaN coefficient (inf/inf, NaN) leaves the gradient as it was
            coef_dt[...] = coef
            np.multiply(g, coef_dt, out=g)
        return norm

    return clip
