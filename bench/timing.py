"""Paired timing: the contenders take turns (A, B, A, B, ...), so that both sides of a ratio see the same machine.

On a shared machine the speed drifts by up to 2-3x within seconds; independent best-of-k figures taken
minutes apart can move one side alone. Here every round times each contender once (in an order that
rotates from round to round), a ratio is formed within the round, and the figures are the median and
the range [min-max] of those per-round ratios.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable


def autorange(fn: Callable, min_seconds: float = 0.05, max_calls: int = 50):
    """Call fn() (returning a Run) until min_seconds have passed; the Run with the fewest seconds (the least disturbed)."""
    best, spent, calls = None, 0.0, 0
    t = time.perf_counter()
    while calls == 0 or (spent < min_seconds and calls < max_calls):
        run = fn()
        calls += 1
        if best is None or run.seconds < best.seconds:
            best = run
        spent = time.perf_counter() - t
    return best


def rounds(contenders: dict[str, Callable], n: int, min_seconds: float = 0.05, log=None) -> dict[str, list]:
    """{name: [Run per round]}: n rounds, each timing every contender once (autorange), the order rotating."""
    names = list(contenders)
    out: dict[str, list] = {k: [] for k in names}
    for i in range(n):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            out[name].append(autorange(contenders[name], min_seconds))
        if log:
            log(f"  round {i + 1}/{n}: " + ", ".join(f"{k} {v[-1].per_replica_step_us:.2f}" for k, v in out.items()) + " us")
    return out


def ratios(num: list, den: list) -> list[float]:
    """Per-round ratios of per-replica-step costs: num[i] / den[i]."""
    return [a.per_replica_step_us / b.per_replica_step_us for a, b in zip(num, den)]


def summary(xs: list[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(xs), min(xs), max(xs)


def fmt(xs: list[float], unit: str = "x", digits: int = 2) -> str:
    """'median [min-max]unit'."""
    m, lo, hi = summary(xs)
    return f"{m:.{digits}f}{unit} [{lo:.{digits}f}-{hi:.{digits}f}]"
