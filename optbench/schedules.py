"""Learning-rate and momentum schedules: functions of the 0-based epoch `e`, evaluated once per epoch.

Every numeric parameter may be a Python number or an `(R, 1)` array (one value per replica);
`multiplier` then returns a float or an `(R, 1)` array. `epochs` (total epochs of the run) is
passed by the engine to every factory and is not part of the config schema (see registry.RESERVED).
"""

from __future__ import annotations

import inspect
from typing import Callable, Literal, NamedTuple

import numpy as np

from optbench.registry import NonNegative, NonNegativeInt, OpenUnit, Positive, PositiveInt, Registry, Unit

SCHEDULES = Registry("schedule")
MOMENTUM_SCHEDULES = Registry("momentum schedule")


class Schedule(NamedTuple):
    """lr multiplier per epoch: state = init(R); m, state = multiplier(e, state); state = observe(metric, state)."""

    init: Callable[[int], dict]
    multiplier: Callable[[int, dict], tuple[float | np.ndarray | None, dict]]
    observe: Callable[[np.ndarray, dict], dict]  # metric of shape (R,) after each epoch; a no-op for all but plateau


def stateless(f: Callable[[int], float | np.ndarray | None]) -> Schedule:
    """A Schedule from a pure function of the epoch: no state, metrics ignored."""
    return Schedule(init=lambda R: {}, multiplier=lambda e, state: (f(e), state), observe=lambda metric, state: state)


def warmed(factory: Callable[..., Schedule]) -> Callable[..., Schedule]:
    """A schedule factory with a `warmup` option: m(e) = (e+1)/(warmup+1) for e < warmup, then inner(e - warmup).

    The inner schedule runs over the epochs after the warmup (as cosine's own warmup does), so a OneCycle or
    a cosine restart period is counted from the end of the warmup. warmup 0 is the inner schedule itself.
    """

    def make(*, warmup: int = 0, epochs: int, **options) -> Schedule:
        if np.all(np.asarray(warmup) == 0):
            return factory(epochs=epochs, **options)
        inner = factory(epochs=np.maximum(epochs - warmup, 1), **options)

        def multiplier(e, state):
            m, state = inner.multiplier(np.maximum(e - warmup, 0), state)
            return np.where(e < warmup, (e + 1.0) / (warmup + 1.0), m)[()], state

        return Schedule(inner.init, multiplier, inner.observe)

    sig = inspect.signature(factory)
    params = [p for k, p in sig.parameters.items() if k != "epochs"]
    warmup = inspect.Parameter("warmup", inspect.Parameter.KEYWORD_ONLY, default=0, annotation="NonNegativeInt")
    make.__signature__ = sig.replace(parameters=[*params, warmup, sig.parameters["epochs"]])
    make.__name__, make.__qualname__, make.__doc__ = factory.__name__, factory.__qualname__, factory.__doc__
    make.__module__ = factory.__module__
    return make


# ---------------------------------------------------------------- learning-rate multipliers


@SCHEDULES.register()
@warmed
def constant(*, epochs: int) -> Schedule:
    """1"""
    return stateless(lambda e: 1.0)


@SCHEDULES.register()
@warmed
def step(*, every: PositiveInt = 1000, gamma: Positive = 0.1, epochs: int) -> Schedule:
    """gamma ** floor(e / every)   (torch StepLR)"""
    return stateless(lambda e: np.power(gamma, np.floor(e / every)))


@SCHEDULES.register()
@warmed
def exponential(*, gamma: Positive = 0.95, epochs: int) -> Schedule:
    """gamma ** e   (torch ExponentialLR)"""
    return stateless(lambda e: np.power(gamma, float(e)))


@SCHEDULES.register()
@warmed
def inverse_time(
    *, decay_rate: NonNegative = 1.0, interval: PositiveInt = 1, timing: Literal["during", "after"] = "during",
    power: Positive = 1.0, epochs: int,
) -> Schedule:
    """f(e) = 1 / (1 + decay_rate * floor(e / interval))^power during epoch e; timing after: f(e - 1) (f(0) in epoch 0)

    (deeplearning.ai; interval 1 is the plain 1/t form). timing during is torch's convention (LambdaLR stepped
    after each epoch: epoch e runs at f(e)); after is the notebook's (its lr updated after epoch e with f(e)).
    power 0.5 with decay_rate = n_train is scikit-learn's invscaling (lr_init / (t + 1)^power_t, t the examples
    seen, updated after each epoch).
    """
    lag = 1 if timing == "after" else 0

    def f(e):
        t = 1.0 + decay_rate * np.floor(np.maximum(e - lag, 0) / interval)
        return 1.0 / (t if np.all(np.asarray(power) == 1.0) else t**power)  # power 1: the plain division's bits

    return stateless(f)


@SCHEDULES.register()
def cosine(*, warmup: NonNegativeInt = 0, min_factor: Unit = 0.0, epochs: int) -> Schedule:
    """(e+1)/(warmup+1) if e < warmup else min_factor + (1-min_factor) * (1 + cos(pi*(e-warmup)/(epochs-warmup)))/2"""
    # max(., 1): when warmup >= epochs the cosine branch is never selected, but np.where evaluates it anyway.
    span = np.maximum(epochs - warmup, 1)

    def f(e):
        # Clipped at 1 so that epochs past the end stay at min_factor instead of climbing back (torch is periodic).
        t = np.clip((e - warmup) / span, 0.0, 1.0)
        decay = min_factor + (1.0 - min_factor) * 0.5 * (1.0 + np.cos(np.pi * t))
        return np.where(e < warmup, (e + 1.0) / (warmup + 1.0), decay)[()]  # [()]: 0-d array -> scalar

    return stateless(f)


def _anneal(start, end, pct, how: str):
    """From start at pct 0 to end at pct 1: cosine (torch's default) or linear."""
    if how == "cos":
        return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1.0)
    return (end - start) * pct + start


def _one_cycle_phases(e, epochs, pct_start):
    """(phase 1?, pct within the phase) of torch's two-phase OneCycleLR at step e of `epochs` steps."""
    e = np.minimum(e, epochs - 1)  # past the end: the final value (torch raises)
    up = pct_start * epochs - 1.0  # the step at the peak, as torch computes it
    first = e <= up
    pct = np.where(first, e / np.where(up > 0, up, 1.0), (e - up) / np.maximum(epochs - 1.0 - up, 1e-300))
    return first, np.where(first & (up <= 0), 1.0, pct)


@SCHEDULES.register()
@warmed
def one_cycle(
    *, pct_start: OpenUnit = 0.3, div_factor: Positive = 25.0, final_div_factor: Positive = 1e4,
    anneal: Literal["cos", "linear"] = "cos", epochs: int,
) -> Schedule:
    """1/div_factor -> 1 over pct_start of the run, then -> 1/(div_factor*final_div_factor) (OneCycleLR; lr = max_lr)

    torch's OneCycleLR (two phases) with total_steps = epochs, stepped once per epoch: optbench's schedules are
    per epoch. optimizer.lr is torch's max_lr. torch also cycles momentum by default (cycle_momentum): here that
    is `momentum_schedule: {name: one_cycle}`.
    """
    m0 = 1.0 / div_factor
    m_min = m0 / final_div_factor

    def f(e):
        first, pct = _one_cycle_phases(e, epochs, pct_start)
        return np.where(first, _anneal(m0, 1.0, pct, anneal), _anneal(1.0, m_min, pct, anneal))[()]

    return stateless(f)


@SCHEDULES.register()
@warmed
def cosine_restarts(*, T_0: PositiveInt = 10, T_mult: PositiveInt = 1, min_factor: Unit = 0.0, epochs: int) -> Schedule:
    """min_factor + (1-min_factor) * (1 + cos(pi*T_cur/T_i))/2, T_i = T_0*T_mult^i (CosineAnnealingWarmRestarts)

    torch's CosineAnnealingWarmRestarts stepped once per epoch (eta_min = min_factor * lr): period i lasts
    T_0 * T_mult^i epochs and T_cur counts the epochs since the last restart.
    """

    flat = np.asarray(T_mult) == 1  # equal periods; else period n starts at T_0 * (T_mult^n - 1) / (T_mult - 1)
    q = np.where(flat, 2.0, T_mult).astype(float)  # 2: any base > 1 keeps the unused branch finite

    def f(e):
        e = np.asarray(e, dtype=float)
        n = np.floor(np.log(e / T_0 * (q - 1.0) + 1.0) / np.log(q))  # the restart index, as torch computes it
        t_cur = np.where(flat, np.mod(e, T_0), e - T_0 * (q**n - 1.0) / (q - 1.0))
        t_i = np.where(flat, T_0, T_0 * q**n)
        return (min_factor + (1.0 - min_factor) * 0.5 * (1.0 + np.cos(np.pi * t_cur / t_i)))[()]

    return stateless(f)


@SCHEDULES.register()
@warmed
def plateau(
    *,
    factor: OpenUnit = 0.1,
    patience: NonNegativeInt = 10,
    threshold: NonNegative = 1e-4,
    cooldown: NonNegativeInt = 0,
    min_factor: NonNegative = 0.0,
    epochs: int,
) -> Schedule:
    """m = max(m*factor, min_factor) after > patience epochs without metric < best*(1-threshold) (ReduceLROnPlateau)"""
    # State is per replica, shape (R,); (R, 1) parameters are flattened to broadcast against it.
    factor, patience, threshold, cooldown, min_factor = map(
        np.ravel, (factor, patience, threshold, cooldown, min_factor)
    )

    def init(R):
        return {"m": np.ones(R), "best": np.full(R, np.inf), "bad": np.zeros(R, int), "cool": np.zeros(R, int)}

    def observe(metric, state):
        # Same order as torch's step(): compare, count, spend cooldown (which forgives bad epochs), then reduce.
        metric = np.asarray(metric, dtype=float)
        better = metric < state["best"] * (1.0 - threshold)  # NaN compares False: a bad epoch, best unchanged
        best = np.where(better, metric, state["best"])
        bad = np.where(better, 0, state["bad"] + 1)
        cooling = state["cool"] > 0
        cool = np.where(cooling, state["cool"] - 1, 0)
        bad = np.where(cooling, 0, bad)
        reduce = bad > patience
        m = np.where(reduce, np.maximum(state["m"] * factor, min_factor), state["m"])
        return {"m": m, "best": best, "bad": np.where(reduce, 0, bad), "cool": np.where(reduce, cooldown, cool)}

    return Schedule(init=init, multiplier=lambda e, state: (state["m"][:, None], state), observe=observe)


# ---------------------------------------------------------------- momentum coefficients (absolute, not multipliers)


@MOMENTUM_SCHEDULES.register("constant")
def momentum_constant(*, epochs: int) -> Schedule:
    """None: mu stays as configured in the optimizer"""
    return stateless(lambda e: None)


@MOMENTUM_SCHEDULES.register()
def ramp(*, start: Unit = 0.5, end: Unit = 0.99, over: PositiveInt = 100, epochs: int) -> Schedule:
    """mu = start + (end - start) * min(e / over, 1)   (CS231n: momentum annealed 0.5 -> 0.99)"""
    return stateless(lambda e: start + (end - start) * np.minimum(e / over, 1.0))


@MOMENTUM_SCHEDULES.register("one_cycle")
def momentum_one_cycle(
    *, pct_start: OpenUnit = 0.3, base: Unit = 0.85, peak: Unit = 0.95, anneal: Literal["cos", "linear"] = "cos",
    epochs: int,
) -> Schedule:
    """mu: peak -> base while the OneCycle rate rises, then base -> peak (OneCycleLR's cycle_momentum)"""

    def f(e):
        first, pct = _one_cycle_phases(e, epochs, pct_start)
        return np.where(first, _anneal(peak, base, pct, anneal), _anneal(base, peak, pct, anneal))[()]

    return stateless(f)
