"""Weight initializers: (fan_out, fan_in) matrices drawn from an explicit generator. Biases always start at zero."""

from __future__ import annotations

from typing import Literal

import numpy as np

from optbench.registry import NonNegative, Registry

INITIALIZERS = Registry("initializer")

Dist = Literal["normal", "uniform"]


def _draw(shape: tuple[int, int], std: float, dist: str, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean draw with standard deviation `std`; uniform on [-a, a] with a = sqrt(3) * std has that std."""
    if dist == "uniform":
        a = np.sqrt(3.0) * std
        return rng.uniform(-a, a, size=shape)
    return rng.standard_normal(shape) * std


@INITIALIZERS.register()
def zeros(*, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """W = 0: every unit computes the same thing and stays so (a demonstration, not a choice)."""
    return np.zeros(shape)


@INITIALIZERS.register()
def small(*, scale: NonNegative = 0.01, dist: Dist = "normal", shape: tuple[int, int], rng: np.random.Generator):
    """W = scale * randn: fine for shallow nets; deep nets' activations shrink toward zero (CS231n)."""
    return _draw(shape, scale, dist, rng)


@INITIALIZERS.register()
def xavier(*, mode: Literal["fan_in", "fan_avg"] = "fan_in", dist: Dist = "normal", shape, rng):
    """Var(W) = 1 / fan_in (CS231n's Xavier, for tanh/linear units); mode fan_avg: 2 / (fan_in + fan_out) (Glorot)."""
    fan_out, fan_in = shape
    var = 1.0 / fan_in if mode == "fan_in" else 2.0 / (fan_in + fan_out)
    return _draw(shape, np.sqrt(var), dist, rng)


@INITIALIZERS.register()
def he(*, dist: Dist = "normal", shape, rng):
    """Var(W) = 2 / fan_in (He/Kaiming): twice Xavier's, because ReLU halves the variance."""
    return _draw(shape, np.sqrt(2.0 / shape[1]), dist, rng)
