"""DaskCluster: units as tasks on a Dask distributed cluster; the workers return their traces, the client writes."""

from __future__ import annotations

import time
import uuid
from typing import Any

from optbench.datacache import DataCache
from optbench.errors import OptbenchError
from optbench.execute import GroupTrace
from optbench.workers.jobs import Job, one_blas_thread, train_unit, write_job

STOP_POLL = 1.0  # seconds between a Dask task's checks of the stop event (each is a round trip to the scheduler)
FILE_DATASETS = ("csv", "npz")  # data read from the client's disk: shipped to Dask workers with the task


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

    with one_blas_thread():
        return train_unit(unit, cache, should_stop=should_stop)


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
