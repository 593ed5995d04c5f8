"""A sweep directory's lock: one client (with its worker processes) trains into it at a time.

`<sweep>/.lock` holds an flock and the client's PID. The kernel releases an flock when the last process
holding its open file ends, however it ends (kill -9 too), so a dead client never blocks the next one.
Local worker processes inherit the open file (workers.local.LocalPool), so the directory stays locked until
the last of them is gone: no process of an earlier pass can still write a run when the next pass scans.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from optbench.errors import OptbenchError

try:
    import fcntl
except ImportError:  # not POSIX: sweeps run unlocked there
    fcntl = None

LOCK = ".lock"
WAIT = 10.0  # seconds to wait while a dead client's workers still hold the lock (they exit within a second)
POLL = 0.1


@dataclass
class SweepLock:
    """The open, flocked lock file; `fd` is what worker processes inherit."""

    path: Path
    fd: int

    def release(self) -> None:
        os.close(self.fd)  # unlocks once no worker process holds it either


def _holder(fd: int) -> int | None:
    """The PID written in the lock file (None while the holder has not written it yet)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (a client killed but not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def lock_sweep(root: Path, *, wait: float = WAIT) -> SweepLock:
    """Create `root` if needed and lock it for this process; a sweep already running there is an error.

    A lock still held after its client died belongs to that client's worker processes, which exit as
    soon as they notice: wait up to `wait` seconds for them.
    """
    path = root / LOCK
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise OptbenchError(f"{path}: cannot create the sweep's lock ({err.__class__.__name__}: {err.strerror}); "
                            "accepted: a writable --runs-dir") from None
    if fcntl is None:
        return SweepLock(path, fd)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            pid = _holder(fd)
            if pid is None or not _running(pid):
                if time.monotonic() < deadline:
                    time.sleep(POLL)
                    continue
                who = f"the worker processes of an exited sweep (pid {pid})" if pid else "another optbench sweep"
            else:
                who = f"another optbench sweep (pid {pid})"
            os.close(fd)
            raise OptbenchError(f"{root}: in use by {who}; wait for it to finish or stop it, then rerun to resume") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return SweepLock(path, fd)
