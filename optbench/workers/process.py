"""A local worker process's side of LocalPool: its set-up (die with the client, one BLAS thread, Ctrl-C left to
the client), the sweep lock it inherits, and the jobs it trains."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

from optbench.datacache import DataCache
from optbench.workers.jobs import Job, Written, one_blas_thread, train_and_write

ORPHANED = 3  # a worker process's exit code when its client died


@dataclass(frozen=True)
class Worker:
    """What a worker process's set-up made, for the jobs it trains one after another."""

    stop: Any  # its stop event (set by the client on Ctrl-C)
    ticks: Any  # its queue of (group, run-epochs done) for the client's progress display, or None
    cache: DataCache  # the jobs it trains one after another share their data
    limits: Any  # its BLAS thread limit, held for the life of the process


# The one per-process slot: a pool's initializer has no other way to hand its tasks what it made (the stop
# event and the queue can reach a process only while it is spawned). Set once, in a worker process only.
_worker: Worker | None = None


class Inherited:
    """An open file descriptor that a spawned worker process inherits (the same open file, not a copy): the
    sweep's lock stays held while any worker lives. Pickled only while spawning (multiprocessing passes the fd)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self):
        from multiprocessing.reduction import DupFd

        return _inherit, (DupFd(self.fd),)


def _inherit(dup) -> Inherited:
    return Inherited(dup.detach())  # left open: it closes when the worker process ends


def _die_with_parent() -> None:
    """In a worker process, a daemon thread: exit at once when the client ends (kill -9 too), writing no more runs.

    The parent's sentinel is a pipe whose other end only the client holds: it reads EOF when the client dies.
    """
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return
    parent.join()
    os._exit(ORPHANED)  # a run directory half written now is `running`, set aside by the next pass


def init_worker(stop, hold: Inherited | None = None, ticks=None) -> None:
    """Worker process set-up: die with the client, one BLAS thread, Ctrl-C left to the client, which stops
    us through `stop`; `hold` (the sweep lock) stays open for the life of the process."""
    global _worker
    threading.Thread(target=_die_with_parent, name="optbench-parent-watch", daemon=True).start()
    cache = DataCache()
    if ticks is not None:
        ticks.cancel_join_thread()  # progress is best effort: never hold up the worker's exit for it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # effective when threadpoolctl is missing and BLAS is not loaded yet
    _worker = Worker(stop, ticks, cache, one_blas_thread().__enter__())  # the limit kept for the life of the process


def run_job(job: Job) -> Written:
    """In a worker process: train and write a job with what init_worker made."""
    return train_and_write(job, _worker.stop.is_set, _worker.ticks, _worker.cache)
