"""Where groups train and who writes their run directories: this process, local workers, or a Dask cluster.

A *unit* is a list of resolved configs that trains as one vectorized group (a whole group, or a chunk of a
large one: a run's numbers do not depend on its group); a Job is a unit with the place its run directories
go. In this process and in local worker processes (one machine, one file system) the trainer's process
(or thread) writes them, so writing runs in parallel too; a Dask worker returns its `execute.GroupTrace` as data and
the client writes, so the cluster needs no shared file system.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from optbench.datacache import DataCache
from optbench.errors import OptbenchError
from optbench.execute import GroupTrace, train_group, write_group

OVERHEAD = 9.0  # per-step cost of a group beyond its replicas, in replica-equivalents (moons net, measured)
STARTUP = 2.5e5  # a worker process's start-up (~0.5 s) in unit_cost's replica-steps (~2 us each on the moons net)
STOP_POLL = 1.0  # seconds between a Dask task's checks of the stop event (each is a round trip to the scheduler)
FILE_DATASETS = ("csv", "npz")  # data read from the client's disk: shipped to Dask workers with the task


# ---- splitting groups into units ----------------------------------------------------------------


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


# ---- backends ------------------------------------------------------------------------------------


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


def _train(cfgs: list[dict], cache: DataCache, **kw) -> GroupTrace:
    """execute.train_group with the trainer's data from `cache`."""
    from optbench.trainers import make_trainer

    return train_group(cfgs, trainer=lambda c, **k: make_trainer(c, cache=cache, **k), **kw)


def write_job(job: Job, trace: GroupTrace) -> Written:
    dirs = write_group(job.root, job.cfgs, trace, group=job.group, tags=job.tags)
    return Written(dirs, [r.status for r in trace.results], trace.interrupted)


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


def _one_blas_thread():
    """A context pinning BLAS to one thread (threadpoolctl, when installed): workers must not fight over cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the environment variables set for worker processes apply
        return nullcontext()
    return threadpool_limits(limits=1)


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
            with _one_blas_thread():
                self._done[h] = job, _train(job.cfgs, self.cache, on_progress=tick, stop=self.stop)
        return [h]

    def result(self, handle):
        return write_job(*self._done.pop(handle))

    def request_stop(self):
        pass  # `stop` itself stopped the trainer (and a second Ctrl-C's KeyboardInterrupt)

    def close(self):
        pass


_STOP = None  # a worker process's stop event (set by the client on Ctrl-C)
_LIMITS = None  # its BLAS thread limit, held for the life of the process
_TICKS = None  # its queue of (group, run-epochs done) for the client's progress display
_CACHE = None  # its DataCache: the jobs it trains one after another share their data
ORPHANED = 3  # a worker process's exit code when its client died


class Lost(Exception):
    """A job lost with the process that trained it (killed, out of memory): its runs may be trained again."""


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


def _local_init(stop, hold: Inherited | None = None, ticks=None) -> None:
    """Worker process set-up: die with the client, one BLAS thread, Ctrl-C left to the client, which stops
    us through `stop`; `hold` (the sweep lock) stays open for the life of the process."""
    global _STOP, _LIMITS, _TICKS, _CACHE
    threading.Thread(target=_die_with_parent, name="optbench-parent-watch", daemon=True).start()
    _STOP = stop
    _TICKS = ticks
    _CACHE = DataCache()
    if ticks is not None:
        ticks.cancel_join_thread()  # progress is best effort: never hold up the worker's exit for it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # effective when threadpoolctl is missing and BLAS is not loaded yet
    _LIMITS = _one_blas_thread().__enter__()  # kept for the life of the process


def _train_and_write(job: Job, should_stop: Callable[[], bool], ticks, cache: DataCache, stop=None) -> Written:
    """Train a unit, then write its run directories where this trainer runs (the client's file system);
    its progress, if `ticks` (a queue), as (group, run-epochs done); `stop`: an event checked every step."""
    tick = None if ticks is None else (lambda n: ticks.put((job.group, n)))
    return write_job(job, _train(job.cfgs, cache, should_stop=should_stop, on_progress=tick, stop=stop))


def _local_job(job: Job) -> Written:
    """In a worker process."""
    return _train_and_write(job, _STOP.is_set, _TICKS, _CACHE)


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

        pool = ProcessPoolExecutor(max_workers=self.jobs - 1, mp_context=self._ctx, initializer=_local_init,
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
            future = self._pool.submit(_local_job, job)
        except BrokenProcessPool:  # a worker died since the last wait
            self._renew(self._pool)
            future = self._pool.submit(_local_job, job)
        self._pool_of[future] = self._pool
        return future

    def _train_here(self, job: Job) -> Written:
        """In this process's training thread: as a worker process does (Ctrl-C reaches it through `stop`)."""
        with _one_blas_thread():
            return _train_and_write(job, self._stop.is_set, self._ticks, self.cache, stop=self.stop)

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


def _dask_unit(unit: list[dict], stop_name: str, data: Any = None) -> GroupTrace:
    """A Dask task: train one unit on a worker; file data arrives with the task; polls the sweep's stop event."""
    from distributed import Event

    cache = DataCache()
    if data is not None:  # the worker may not see the client's files
        cache.put(unit[0]["data"], unit[0]["train"]["dtype"], data)
    event = Event(stop_name)
    last = [time.monotonic()]

    def should_stop() -> bool:
        now = time.monotonic()
        if now - last[0] < STOP_POLL:
            return False
        last[0] = now
        return event.is_set()

    with _one_blas_thread():
        return _train(unit, cache, should_stop=should_stop)


class DaskCluster:
    """Units as tasks on a Dask distributed cluster; a lost worker's task is retried elsewhere by the scheduler."""

    late = 0.0  # its workers are running already

    def __init__(self, address: str, *, timeout: float = 30.0, cache: DataCache | None = None):
        check_address(address)
        self.cache = DataCache() if cache is None else cache
        try:
            from distributed import Client, Event
        except ImportError:
            raise OptbenchError("--scheduler: needs Dask distributed: pip install 'optbench[dask]'") from None
        try:
            self.client = Client(address, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise OptbenchError(f"--scheduler: cannot connect to {address} ({err.__class__.__name__}: {err})") from None
        self.name = f"Dask cluster at {address}"
        self._stop_name = f"optbench-stop-{uuid.uuid4().hex}"
        self._stop = Event(self._stop_name, client=self.client)
        self._jobs: dict[str, Job] = {}

    def slots(self) -> int:
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(w.get("nthreads", 1) for w in workers.values()))

    def submit(self, job):
        data = None
        if job.cfgs[0]["data"]["name"] in FILE_DATASETS:
            data = self.cache.get(job.cfgs[0]["data"], job.cfgs[0]["train"]["dtype"])
        future = self.client.submit(_dask_unit, job.cfgs, self._stop_name, data, pure=False,
                                    key=f"optbench-unit-{uuid.uuid4().hex}")
        self._jobs[future.key] = job
        return future

    def wait(self, handles, timeout):
        from distributed import wait

        try:
            done, _ = wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        return list(done)

    def result(self, handle):
        return write_job(self._jobs.pop(handle.key), handle.result())  # the client writes: no shared file system

    def request_stop(self):
        self._stop.set()

    def watch(self, sink):
        pass  # a task reports when it is done; epoch progress stays on the worker

    def close(self):
        self.client.close()


def check_address(address: str) -> None:
    """`tcp://HOST:PORT` (or tls://, ws://, wss://, inproc://): fail before connecting when it is not one."""
    scheme, sep, rest = address.partition("://")
    ok = sep and scheme in ("tcp", "tls", "ws", "wss", "inproc") and rest
    if ok and scheme != "inproc":
        host, _, port = rest.rpartition(":")
        ok = bool(host) and port.isdigit()
    if not ok:
        raise OptbenchError(f"--scheduler: {address!r} is invalid (accepted: tcp://HOST:PORT, e.g. tcp://127.0.0.1:8786)")


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


# ---- driving ---------------------------------------------------------------------------------------


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
