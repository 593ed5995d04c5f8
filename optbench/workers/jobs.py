"""What a backend trains and hands back: a Job (a unit and where its runs go), Written, Lost; training a unit
and writing its run directories."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from optbench.datacache import DataCache
from optbench.execute import GroupTrace, train_group, write_group


@dataclass(frozen=True)
class Job:
    """A unit to train and where its run directories go: `root`, with a group id and summary.json tags per run."""

    cfgs: list[dict]
    root: Path
    group: str
    tags: list[dict]


@dataclass(frozen=True)
class Written:
    """A job done: its run directories and their statuses."""

    dirs: list[Path]
    statuses: list[str]
    interrupted: bool


def train_unit(cfgs: list[dict], cache: DataCache, **kw) -> GroupTrace:
    """execute.train_group with the trainer's data from `cache`."""
    from optbench.trainers import make_trainer

    return train_group(cfgs, trainer=lambda c, **k: make_trainer(c, cache=cache, **k), **kw)


def write_job(job: Job, trace: GroupTrace) -> Written:
    dirs = write_group(job.root, job.cfgs, trace, group=job.group, tags=job.tags)
    return Written(dirs, [r.status for r in trace.results], trace.interrupted)


class Lost(Exception):
    """A job lost with the process that trained it (killed, out of memory): its runs may be trained again."""


def one_blas_thread():
    """A context pinning BLAS to one thread (threadpoolctl, when installed): workers must not fight over cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the environment variables set for worker processes apply
        return nullcontext()
    return threadpool_limits(limits=1)


def train_and_write(job: Job, should_stop: Callable[[], bool], ticks, cache: DataCache, stop=None) -> Written:
    """Train a unit, then write its run directories where this trainer runs (the client's file system);
    its progress, if `ticks` (a queue), as (group, run-epochs done); `stop`: an event checked every step."""
    tick = None if ticks is None else (lambda n: ticks.put((job.group, n)))
    return write_job(job, train_unit(job.cfgs, cache, should_stop=should_stop, on_progress=tick, stop=stop))
