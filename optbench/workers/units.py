"""Cutting groups into units so that every worker trains: a cost model and greedy longest-first scheduling."""

from __future__ import annotations

import math
from typing import Any, Callable

OVERHEAD = 9.0  # per-step cost of a group beyond its replicas, in replica-equivalents (moons net, measured)
STARTUP = 2.5e5  # a worker process's start-up (~0.5 s) in unit_cost's replica-steps (~2 us each on the moons net)


def unit_cost(cfgs: list[dict], n_train: Callable[[dict], int]) -> float:
    """Estimated work of training these configs as one group: epochs x batches x (overhead + replicas)."""
    tr = cfgs[0]["train"]
    n = n_train(cfgs[0])
    if tr["sampling"] == "random" and tr["iterations_per_epoch"]:
        batches = tr["iterations_per_epoch"]
    else:
        batches = 1 if tr["batch_size"] == "full" else math.ceil(n / tr["batch_size"])
    return tr["epochs"] * batches * (OVERHEAD + len(cfgs))


def _split(unit: list, f: float) -> list[list]:
    k = min(max(round(len(unit) * f), 1), len(unit) - 1)
    return [unit[:k], unit[k:]]


def makespan(costs: list[float], workers: int, late: float = 0.0) -> float:
    """Finish time of greedy longest-first scheduling of these costs on `workers` equal workers, all but
    the first of which start `late`."""
    loads = [0.0] + [late] * (workers - 1)
    for c in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += c
    return max(loads) if costs else 0.0


SPLITS = (1 / 2, 3 / 5, 2 / 3, 3 / 4, 4 / 5)  # where a unit may be cut (the larger part first)


def split_units(groups: list[list[Any]], workers: int, cost: Callable[[list[Any]], float],
                late: float = 0.0) -> list[list[Any]]:
    """Cut the largest unit in two while that shortens the estimated makespan; largest units first.

    Cutting costs extra work (each unit pays the per-step overhead) but lets every worker train: three
    groups of 40 on two workers become 40, 40, 20, 20. Workers that start `late` (a process starting up
    while this one already trains) get less: one group of 120 becomes 80 here and 40 there.
    """
    units = [list(g) for g in groups if g]
    best = makespan([cost(u) for u in units], workers, late)
    while workers > 1:
        units.sort(key=cost, reverse=True)
        if len(units[0]) < 2:
            break
        trials = [_split(units[0], f) + units[1:] for f in SPLITS]
        spans = [makespan([cost(u) for u in t], workers, late) for t in trials]
        i = min(range(len(trials)), key=spans.__getitem__)
        if spans[i] >= best:
            break
        units, best = trials[i], spans[i]
    return sorted(units, key=cost, reverse=True)
