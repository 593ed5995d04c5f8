"""InProcess: units trained one after another in this process (--jobs 1)."""

from __future__ import annotations

from optbench.datacache import DataCache
from optbench.execute import GroupTrace
from optbench.workers.jobs import Job, one_blas_thread, train_unit, write_job


class InProcess:
    """Train units one after another in this process (--jobs 1); `stop` (set by Ctrl-C) reaches the trainer,
    which saves what it has."""

    name = "this process"
    late = 0.0

    def __init__(self, cache: DataCache | None = None, stop=None):
        self.cache = DataCache() if cache is None else cache
        self.stop = stop
        self._pending: dict[int, Job] = {}
        self._done: dict[int, tuple[Job, GroupTrace]] = {}
        self._next = 0
        self._sink = None

    def watch(self, sink):
        self._sink = sink

    def slots(self) -> int:
        return 1

    def submit(self, job):
        self._next += 1
        self._pending[self._next] = job
        return self._next

    def wait(self, handles, timeout):
        h = handles[0]
        if h in self._pending:
            job = self._pending.pop(h)
            tick = None if self._sink is None else (lambda n, g=job.group: self._sink(g, n))
            with one_blas_thread():
                self._done[h] = job, train_unit(job.cfgs, self.cache, on_progress=tick, stop=self.stop)
        return [h]

    def result(self, handle):
        return write_job(*self._done.pop(handle))

    def request_stop(self):
        pass  # `stop` itself stopped the trainer (and a second Ctrl-C's KeyboardInterrupt)

    def close(self):
        pass
