"""The Backend protocol (where jobs train and who writes their runs), and which backend --jobs / --scheduler open."""

from __future__ import annotations

import os
from typing import Any, Callable, Protocol

from optbench.datacache import DataCache
from optbench.errors import OptbenchError
from optbench.workers.cluster import DaskCluster, check_address
from optbench.workers.inprocess import InProcess
from optbench.workers.jobs import Job, Written
from optbench.workers.local import LocalPool


class Backend(Protocol):
    """Trains jobs somewhere and has their run directories written."""

    name: str
    late: float  # how much later than the first slot the other slots start training, in unit_cost's units

    def slots(self) -> int: ...  # jobs that can train at once
    def submit(self, job: Job) -> Any: ...  # a handle
    def wait(self, handles: list[Any], timeout: float) -> list[Any]: ...  # the finished ones (maybe none)
    def result(self, handle: Any) -> Written: ...  # writes on the client if the worker did not; re-raises errors
    def request_stop(self) -> None: ...  # running jobs end at their next epoch, as interrupted
    def close(self) -> None: ...
    def watch(self, sink: Callable[[str, int], None]) -> None: ...  # sink(job.group, run-epochs done) while jobs train


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_backend(*, jobs: int | None, scheduler: str | None) -> None:
    """Fail on bad --jobs / --scheduler before anything is written."""
    if scheduler is not None:
        if jobs is not None:
            raise OptbenchError("--jobs: not used with --scheduler (the cluster's workers decide; drop one of them)")
        check_address(scheduler)
    elif jobs is not None and jobs < 1:
        raise OptbenchError(f"--jobs: {jobs} is invalid (accepted: an integer >= 1)")


def open_backend(*, jobs: int | None, scheduler: str | None, runs: int, hold: int | None = None,
                 cache: DataCache | None = None, stop=None) -> Backend:
    """Dask when a scheduler is given; else min(jobs, runs) local processes, or this process for one.
    Local worker processes keep the file descriptor `hold` open while they live (see LocalPool); this
    process's trainer (and Dask's client) reads data through `cache`, and stops when `stop` is set."""
    check_backend(jobs=jobs, scheduler=scheduler)
    if scheduler is not None:
        return DaskCluster(scheduler, cache=cache)
    n = default_jobs() if jobs is None else jobs
    n = min(n, max(runs, 1))
    return InProcess(cache, stop) if n == 1 else LocalPool(n, hold=hold, cache=cache, stop=stop)
