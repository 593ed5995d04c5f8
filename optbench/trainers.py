"""Which trainer a group gets: the MLP engine (train.py) or the point in the plane (trajectory.py); neither imports the other."""

from __future__ import annotations

from optbench.datacache import DataCache
from optbench.groups import make_groups
from optbench.problems import PROBLEMS
from optbench.records import RunResult
from optbench.train import Trainer
from optbench.trajectory import ProblemTrainer


def make_trainer(cfgs: list[dict], *, cache: DataCache | None = None, **kw):
    """The trainer for a group: the MLP engine (its data from `cache`), or the point-in-the-plane one for 2-D problems."""
    if cfgs[0]["data"]["name"] in PROBLEMS:
        return ProblemTrainer(cfgs, **kw)
    return Trainer(cfgs, cache=cache, **kw)


def train_runs(cfgs: list[dict], *, cache: DataCache | None = None, **kw) -> list[RunResult]:
    """Train resolved run configs, grouped; results in the order given (a convenience for tests and sweeps)."""
    out: dict[int, RunResult] = {}
    index = {id(c): i for i, c in enumerate(cfgs)}
    cache = DataCache() if cache is None else cache  # the groups of these runs share their data
    for group in make_groups(cfgs):
        res = make_trainer(group, cache=cache).run(**kw)
        for c, r in zip(group, res):
            out[index[id(c)]] = r
    return [out[i] for i in range(len(cfgs))]
