"""A rule's trajectory on a gradient field, stepped as the training loop steps it: to check a rule against a reference."""

from __future__ import annotations

from typing import Callable

import numpy as np

from optbench.optim import OPTIMIZERS


def trajectory(name: str, grad: Callable, x0, *, steps: int = 20, **options) -> np.ndarray:
    """(steps, R, P) parameters of rule `name` (built-in or of your own) from x0 (P,) or (R, P), stepped on grad(theta)
    as the loop steps it: direction, state = update(grad(theta), state, theta); theta -= lr * direction."""
    opt = OPTIMIZERS.build(name, OPTIMIZERS.validate(name, options, "optimizer"))
    theta = np.array(x0, dtype=np.float64, ndmin=2)
    state, update = opt.init(theta), opt.bind(theta)
    out = []
    for _ in range(steps):
        direction, state = update(grad(theta), state, theta)
        theta -= opt.lr * direction
        out.append(theta.copy())
    return np.array(out)
