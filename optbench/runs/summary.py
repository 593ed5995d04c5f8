"""summary.json's content: who wrote the run and when, its status, and the first, last and best metrics."""

from __future__ import annotations

import math
import platform
import time
from typing import Any

import numpy as np

from optbench import __version__
from optbench.losses import expected_initial_cost


def clean(obj: Any) -> Any:
    """JSON-safe: NaN and inf become null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def created_text(t: float) -> str:
    """summary.json's `created`: local time to the microsecond (2026-12-03T12:30:23.123456), so that runs made
    within one second still sort by when they were made, not by their directories' random suffixes."""
    import datetime

    return datetime.datetime.fromtimestamp(t).isoformat(timespec="microseconds")


def versions() -> dict[str, str]:
    return {"optbench": __version__, "numpy": np.__version__, "python": platform.python_version()}


def summary(cfg: dict, status: str, reason: str, *, group: str, created: str, software: dict, owner: dict,
            tags: dict, track: dict | None, extra: dict | None = None, n_out: int | None = None) -> dict:
    """One run's summary.json: `software` is versions(), `track` its Tracks.of (None before its first row),
    `extra` more keys at the end."""
    out: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "name": cfg["name"],
        "label": cfg["label"],
        "seed": cfg["seed"],
        "group": group,
        "created": created,
        "versions": software,
    }
    if status == "running":  # who trains it: a dead owner makes it `crashed` (status.effective_status)
        out["owner"] = owner
    out.update(tags)
    if track is not None:
        out["initial"] = {"train_cost": track["first"]["train_cost"],
                          "expected_cost": expected_initial_cost(cfg["loss"], n_out or n_outputs(cfg))}
        out["final"] = track["last"]
        out["best"] = {c: {"value": track["best"][c], "epoch": e} for c, e in track["best_epoch"].items() if e is not None}
    if extra:
        out.update(extra)
    out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None
    return clean(out)


def n_outputs(cfg: dict) -> int:
    """Classes for the expected initial cost: read back from the data only when the loss is softmax (and the
    writer has no final parameters whose output layer says it)."""
    if cfg["loss"] != "softmax_ce":
        return 1
    from optbench.datacache import DataCache  # as config.load_data: the writer's data, not the config models

    return max(DataCache().get(cfg["data"], "float64").train.n_classes, 2)
