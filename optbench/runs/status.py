"""A run's status: what summary.json says, `crashed` for a run whose writer is gone, and stale temporaries."""

from __future__ import annotations

import json
from pathlib import Path

from optbench import owner

STATUSES = ("running", "completed", "diverged", "stopped_early", "interrupted", "failed")  # as summary.json says
FINISHED = ("completed", "diverged", "stopped_early")  # nothing left to train or resume
CRASHED = "crashed"  # not written: a `running` run whose writer is gone (see effective_status)


def effective_status(summary: dict) -> str:
    """summary.json's status, except `crashed` for a run left `running` by a process that no longer lives on
    this host (killed with kill -9, out of memory, power lost; a reused PID is told apart by its start time)."""
    status = summary.get("status")
    if status != "running":
        return status if isinstance(status, str) else "?"
    who = summary.get("owner")
    if isinstance(who, dict) and not owner.alive(who):
        return CRASHED
    return status


def writer_gone(tmp: Path) -> bool:
    """Whether the writer of a temporary run directory (`.tmp-*`) is gone: its summary.json names an owner that
    no longer lives (effective_status's rule), or it has none (its writer died before writing it)."""
    try:
        who = json.loads((tmp / "summary.json").read_text()).get("owner")
    except (OSError, ValueError, AttributeError):
        return True
    return not isinstance(who, dict) or not owner.alive(who)


def remove_stale_temps(root: Path) -> None:
    """Delete the `.tmp-*` run directories under root whose writers are gone (never a live writer's)."""
    import shutil

    if not root.is_dir():
        return
    for p in root.iterdir():
        if p.name.startswith(".tmp-") and p.is_dir() and not p.is_symlink() and writer_gone(p):
            shutil.rmtree(p, ignore_errors=True)
