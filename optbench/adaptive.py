"""Rules with a per-coordinate denominator from the squared gradients: adagrad, rmsprop, adadelta."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optbench.optim import OPTIMIZERS
from optbench.optimizer import Hyper, Optimizer, _coef, _ema, _on, _rest, _with_decay
from optbench.registry import NonNegative, Positive, Unit


class Cache(NamedTuple):
    cache: np.ndarray  # (R, P) sum (AdaGrad) or moving average (RMSProp) of g**2


class RMSPropState(NamedTuple):
    cache: np.ndarray  # moving average of g**2
    g_avg: np.ndarray | None  # centered: moving average of g (None otherwise)
    v: np.ndarray | None  # momentum: buffer of the steps, v = momentum*v + g/denominator (None otherwise)


class AdadeltaState(NamedTuple):
    v: np.ndarray  # moving average of g**2
    u: np.ndarray  # moving average of the squared directions



def _over_root(g: np.ndarray, cache: np.ndarray, eps: Hyper, d: np.ndarray) -> np.ndarray:
    """d = g / (sqrt(cache) + eps), into d: the AdaGrad / RMSProp step."""
    np.sqrt(cache, out=d)
    np.add(d, eps, out=d)
    return np.divide(g, d, out=d)


@OPTIMIZERS.register()
def adagrad(*, lr: Positive = 0.01, eps: Positive = 1e-7, initial_accumulator_value: NonNegative = 0.0) -> Optimizer:
    """AdaGrad: cache += g**2; direction = g / (sqrt(cache) + eps)."""

    def init(theta):
        cache = np.empty_like(theta)
        cache[...] = _coef(initial_accumulator_value, theta)
        return Cache(cache)

    def bind(theta):
        eps_, d = _coef(eps, theta), np.empty_like(theta)

        def update(g, state, theta):
            np.multiply(g, g, out=d)
            np.add(state.cache, d, out=state.cache)
            return _over_root(g, state.cache, eps_, d), state

        return update

    return Optimizer(init, bind, lr)


@OPTIMIZERS.register()
def rmsprop(
    *,
    lr: Positive = 0.01,
    decay_rate: Unit = 0.99,
    eps: Positive = 1e-8,
    momentum: Unit = 0.0,
    centered: bool = False,
    weight_decay: NonNegative = 0.0,
) -> Optimizer:
    """RMSProp: cache = d*cache + (1-d)*g**2; direction = g / (sqrt(cache) + eps) (torch's alpha = d).

    torch.optim.RMSprop's options: centered keeps g_avg = d*g_avg + (1-d)*g and divides by
    sqrt(cache - g_avg**2) + eps instead (Graves 2013); momentum > 0 keeps v = momentum*v + g/(...) and
    steps along v; weight_decay puts g + weight_decay*theta in place of g (coupled, as torch).
    """
    plain = not (centered or _on(momentum) or _on(weight_decay))

    def init(theta):
        z = lambda on: np.zeros_like(theta) if on else None  # noqa: E731
        return Cache(np.zeros_like(theta)) if plain else RMSPropState(z(True), z(centered), z(_on(momentum)))

    def bind(theta):
        rest, eps_, d = _rest(decay_rate, theta), _coef(eps, theta), np.empty_like(theta)

        def update(g, state, theta):
            _ema(state.cache, np.multiply(g, g, out=d), rest, d)
            return _over_root(g, state.cache, eps_, d), state

        if plain:
            return update
        decayed, wd, mom, buf = _on(weight_decay), _coef(weight_decay, theta), _coef(momentum, theta), np.empty_like(theta)
        g_wd = np.empty_like(theta) if decayed else None

        def update_full(g, state, theta):
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
            cache, g_avg, v = state
            _ema(cache, np.multiply(g, g, out=d), rest, d)
            if centered:
                _ema(g_avg, g, rest, buf)
                np.multiply(g_avg, g_avg, out=buf)
                np.subtract(cache, buf, out=buf)
                _over_root(g, buf, eps_, d)
            else:
                _over_root(g, cache, eps_, d)
            if v is None:
                return d, state
            np.multiply(v, mom, out=v)
            np.add(v, d, out=v)
            return v, state

        return update_full

    return Optimizer(init, bind, lr)


@OPTIMIZERS.register()
def adadelta(*, lr: Positive = 1.0, rho: Unit = 0.95, eps: Positive = 1e-6) -> Optimizer:
    """Adadelta: v = rho*v + (1-rho)*g**2; d = sqrt((u + eps)/(v + eps))*g; u = rho*u + (1-rho)*d**2; direction = d.

    Zeiler (2012) as torch.optim.Adadelta does it: u, the running mean of squared updates, gives
    the step its units, so lr = 1 is the paper's rule and lr only scales it.
    """

    def bind(theta):
        rest, eps_ = _rest(rho, theta), _coef(eps, theta)
        d, buf = np.empty_like(theta), np.empty_like(theta)

        def update(g, state, theta):
            v, u = state
            _ema(v, np.multiply(g, g, out=buf), rest, buf)
            # one sqrt of the ratio instead of a ratio of two sqrts: same value, one call fewer
            np.add(v, eps_, out=buf)
            np.add(u, eps_, out=d)
            np.divide(d, buf, out=d)
            np.sqrt(d, out=d)
            np.multiply(d, g, out=d)
            _ema(u, np.multiply(d, d, out=buf), rest, buf)
            return d, state

        return update

    return Optimizer(lambda theta: AdadeltaState(np.zeros_like(theta), np.zeros_like(theta)), bind, lr)
