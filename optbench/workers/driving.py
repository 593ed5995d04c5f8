"""Driving a sweep's jobs through a backend: at most `slots` at a time, stop requests, jobs lost with their worker."""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterable

from optbench.errors import OptbenchError
from optbench.workers.backend import Backend
from optbench.workers.jobs import Job, Lost, Written

MAX_LOSSES = 3  # a job lost this often (it kills its worker: out of memory?) ends the sweep


def drive(jobs: Iterable[Job], backend: Backend, on_start: Callable[[Job], None],
          on_done: Callable[[Job, Written], None], *, on_lost: Callable[[Job], Job | None] = lambda job: job,
          should_stop: Callable[[], bool] = lambda: False, drain_timeout: float = 120.0,
          on_progress: Callable[[str, int], None] | None = None) -> bool:
    """Train every job, at most `slots` at a time, in order; returns whether it was interrupted.

    A stop request (`should_stop()`: cli.py's handler set the stop event; a second one raises KeyboardInterrupt) or a trainer interrupted
    in this process stops submitting; the running jobs are asked to stop at their next epoch and their runs
    are still written, marked interrupted. A job's run directories are written whole: a signal that comes
    while they are written is handled after. A job Lost with its worker goes to `on_lost`, which returns
    what is left of it to train (or None); that goes first in the queue, for the remaining workers.
    """
    if on_progress is not None:
        backend.watch(on_progress)
    queue = deque(jobs)
    running: dict[Any, Job] = {}
    losses: dict[str, int] = {}
    stopping = False
    try:
        while running or (queue and not stopping):
            while queue and not stopping and len(running) < backend.slots():
                job = queue.popleft()
                running[backend.submit(job)] = job
                on_start(job)
            for h in backend.wait(list(running), timeout=0.5):
                job = running.pop(h)
                with deferred_signals():
                    try:
                        done = backend.result(h)
                    except Lost:
                        losses[job.group] = losses.get(job.group, 0) + 1
                        if losses[job.group] >= MAX_LOSSES:
                            raise OptbenchError(f"group {job.group}: its worker process died {MAX_LOSSES} times while "
                                                "training it (out of memory?); finished runs are kept, rerun to resume") from None
                        retry = on_lost(job)
                        if retry is not None:
                            queue.appendleft(retry)
                        continue
                    on_done(job, done)
                stopping |= done.interrupted
            if should_stop() and not stopping:
                stopping = True
                backend.request_stop()
    except KeyboardInterrupt:
        stopping = True
        backend.request_stop()
        _drain(backend, running, on_done, drain_timeout)
    return stopping


@contextmanager
def deferred_signals():
    """Hold SIGINT and SIGTERM until the block ends, then hand each one that came to its own handler (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {sig: signal.signal(sig, lambda signum, frame: got.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    for sig in got:
        handler = old[sig]
        if callable(handler):
            handler(sig, None)
        elif handler != signal.SIG_IGN:
            raise KeyboardInterrupt  # the default action would end the process: end it the clean way


def _drain(backend: Backend, running: dict, on_done, timeout: float) -> None:
    """Collect the jobs still running after a stop request (they end within an epoch); give up after `timeout`."""
    deadline = time.monotonic() + timeout
    while running and time.monotonic() < deadline:
        for h in backend.wait(list(running), timeout=0.5):
            job = running.pop(h)
            try:
                with deferred_signals():
                    on_done(job, backend.result(h))
            except Exception:  # noqa: BLE001 - a job lost while stopping is trained again by the next pass
                continue
