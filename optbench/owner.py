"""Who writes a file: this process as {pid, host, start}, and whether such an owner still lives.

`start` is the process's start time in clock ticks since boot (/proc/PID/stat, field 22, Linux): a PID
reused by a later process has another start time, so a dead writer is never taken for a live one.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None where there is no such file."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def process_start(pid: int) -> int | None:
    """Start time of process `pid` in clock ticks since boot; None when unknown (no /proc, or no such process)."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def me() -> dict:
    """This process as an owner record."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid())}


def alive(owner: dict) -> bool:
    """Whether the process an owner record names may still run: True on another host (we cannot tell) or for
    a record we cannot read; False when the PID is gone, a zombie, or a later process with the same PID."""
    pid, host, start = owner.get("pid"), owner.get("host"), owner.get("start")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except (OverflowError, OSError):
        return True
    fields = _stat(pid)
    if fields is None:  # no /proc: the PID exists, which is all we know
        return True
    if fields[:1] in (["Z"], ["X"]):  # killed, not yet reaped by its parent
        return False
    return not isinstance(start, int) or process_start(pid) == start
