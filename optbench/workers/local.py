"""LocalPool: `jobs` trainers on this machine, a thread of this process and jobs - 1 spawned worker processes."""

from __future__ import annotations

from typing import Any

from optbench.datacache import DataCache
from optbench.workers.jobs import Job, Lost, Written, one_blas_thread, train_and_write
from optbench.workers.process import Inherited, init_worker, run_job
from optbench.workers.units import STARTUP


class LocalPool:
    """`jobs` trainers on this machine, one unit each at a time: a thread of this process, warm and started
    at once, and jobs - 1 worker processes (spawned: no forked locks or threads).

    Worker processes die with this process and keep `hold` (a file descriptor: the sweep lock) open while
    they live. When one dies, the pool is broken: its jobs are Lost, and a fresh pool takes the next ones.
    """

    def __init__(self, jobs: int, *, hold: int | None = None, cache: DataCache | None = None, stop=None):
        self.stop = stop  # the client's stop event (cli.py's signal handler), for the trainer in this process
        import multiprocessing
        from concurrent.futures import ThreadPoolExecutor

        self.cache = DataCache() if cache is None else cache  # this process's trainer's (its workers have their own)
        self._ctx = multiprocessing.get_context("spawn")
        self.jobs = jobs
        self.name = f"this process and {jobs - 1} worker process{'es' if jobs > 2 else ''}"
        self._stop = self._ctx.Event()
        self._ticks = self._ctx.Queue()  # epoch progress from every trainer, drained by wait()
        self._ticks.cancel_join_thread()
        self._sink = None
        self._hold = None if hold is None else Inherited(hold)
        self._pool = self._start_pool()
        self._pool_of: dict[Any, Any] = {}  # a worker process's future -> the pool it was submitted to
        # this process would only wait for the workers; training here too saves a process start-up (~0.5 s)
        self._here = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optbench-train")
        self._here_job = None
        self.late = STARTUP  # the processes start training this much after this process's thread

    def _start_pool(self):
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=self.jobs - 1, mp_context=self._ctx, initializer=init_worker,
                                   initargs=(self._stop, self._hold, self._ticks))
        for _ in range(self.jobs - 1):  # start every worker now: they import optbench while the client plans the units
            pool.submit(int)
        return pool

    def _renew(self, broken) -> None:
        """Replace a broken pool (once, whichever of its jobs reports it): its processes are joined first, so
        none of them still writes when the lost jobs' directories are looked at."""
        if broken is self._pool:
            broken.shutdown(wait=True, cancel_futures=True)
            self._pool = self._start_pool()

    def slots(self) -> int:
        return self.jobs

    def submit(self, job):
        from concurrent.futures.process import BrokenProcessPool

        if self._here_job is None or self._here_job.done():
            self._here_job = self._here.submit(self._train_here, job)
            return self._here_job
        try:
            future = self._pool.submit(run_job, job)
        except BrokenProcessPool:  # a worker died since the last wait
            self._renew(self._pool)
            future = self._pool.submit(run_job, job)
        self._pool_of[future] = self._pool
        return future

    def _train_here(self, job: Job) -> Written:
        """In this process's training thread: as a worker process does (Ctrl-C reaches it through `stop`)."""
        with one_blas_thread():
            return train_and_write(job, self._stop.is_set, self._ticks, self.cache, stop=self.stop)

    def watch(self, sink):
        self._sink = sink

    def wait(self, handles, timeout):
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        self._drain_ticks()
        return list(done)

    def _drain_ticks(self) -> None:
        import queue

        while True:
            try:
                group, n = self._ticks.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            if self._sink is not None:
                self._sink(group, n)

    def result(self, handle):
        from concurrent.futures.process import BrokenProcessPool

        pool = self._pool_of.pop(handle, None)
        try:
            return handle.result()
        except BrokenProcessPool:
            self._renew(pool)
            raise Lost from None

    def request_stop(self):
        self._stop.set()

    def close(self):
        self._stop.set()  # after an error, the units still training end at their next epoch, as interrupted
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._here.shutdown(wait=True, cancel_futures=True)
