"""2-D test functions whose "model" is a point in the plane: the optimizers' paths made visible.

Each is a `data:` name (`data: {name: rosenbrock, start: [-1.5, 2.0]}`); training takes one
optimizer step per epoch on theta = (x, y), and the run directory keeps the path (trajectory.npz).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from optbench.registry import Positive, Registry

PROBLEMS = Registry("problem")


@dataclass(frozen=True)
class Problem:
    """f(P) and its gradient for points P (..., 2); a start, a minimum and plotting bounds."""

    f: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    start: tuple[float, float]
    minimum: tuple[float, float] | None
    bounds: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax


def _xy(P):
    return P[..., 0], P[..., 1]


@PROBLEMS.register()
def rosenbrock(*, a: float = 1.0, b: Positive = 100.0, start: tuple[float, float] = (-1.5, 2.0)) -> Problem:
    """(a - x)^2 + b (y - x^2)^2: a curved valley, minimum at (a, a^2)."""

    def f(P):
        x, y = _xy(P)
        return (a - x) ** 2 + b * (y - x * x) ** 2

    def grad(P):
        x, y = _xy(P)
        return np.stack([-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x)], axis=-1)

    return Problem(f, grad, tuple(start), (a, a * a), (-2.0, 2.0, -1.0, 3.0))


@PROBLEMS.register()
def beale(*, start: tuple[float, float] = (1.0, 1.5)) -> Problem:
    """(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2: flat plateaus, minimum at (3, 0.5)."""
    c = (1.5, 2.25, 2.625)

    def f(P):
        x, y = _xy(P)
        return sum((ci - x + x * y ** (i + 1)) ** 2 for i, ci in enumerate(c))

    def grad(P):
        x, y = _xy(P)
        gx = sum(2 * (ci - x + x * y ** (i + 1)) * (y ** (i + 1) - 1) for i, ci in enumerate(c))
        gy = sum(2 * (ci - x + x * y ** (i + 1)) * x * (i + 1) * y**i for i, ci in enumerate(c))
        return np.stack([gx, gy], axis=-1)

    return Problem(f, grad, tuple(start), (3.0, 0.5), (-4.5, 4.5, -4.5, 4.5))


@PROBLEMS.register()
def quadratic(*, condition: Positive = 10.0, start: tuple[float, float] = (-4.0, 1.0)) -> Problem:
    """(x^2 + condition * y^2) / 2: an ill-conditioned bowl, the ravine where SGD zig-zags; minimum at 0."""

    def f(P):
        x, y = _xy(P)
        return 0.5 * (x * x + condition * y * y)

    def grad(P):
        x, y = _xy(P)
        return np.stack([x, condition * y], axis=-1)

    return Problem(f, grad, tuple(start), (0.0, 0.0), (-5.0, 5.0, -2.0, 2.0))


@PROBLEMS.register()
def saddle(*, start: tuple[float, float] = (-2.0, 1e-3)) -> Problem:
    """x^2 - y^2: a saddle at 0; plain GD lingers near it, momentum and Adam escape along y."""

    def f(P):
        x, y = _xy(P)
        return x * x - y * y

    def grad(P):
        x, y = _xy(P)
        return np.stack([2 * x, -2 * y], axis=-1)

    return Problem(f, grad, tuple(start), None, (-2.5, 2.5, -2.0, 2.0))
