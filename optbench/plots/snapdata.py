"""The snapshots a figure draws from: each label's first seed with snapshots.npz, its net and data rebuilt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from optbench import snapshots
from optbench.errors import OptbenchError
from optbench.landscape import RunNet
from optbench.plots import choose, data
from optbench.runs.read import Run


@dataclass(frozen=True)
class Shot:
    """One label's run (its lowest seed with snapshots), those snapshots and the run's net and data."""

    group: data.Group
    run: Run
    snaps: snapshots.Snapshots
    net: RunNet


def load(view, what: str, warn: Callable[[str], None], limit: int, cache=None) -> list[Shot]:
    """A Shot for each of the best `limit` labels of a View that has snapshots (a warning for those that have none);
    one OptbenchError line naming `train.snapshots_every` when none has, or what the runs are when they have no network."""
    from optbench.datacache import DataCache

    kinds = {data.task(g) for g in view.groups}
    if not kinds & {"classification", "regression"}:
        names = sorted(data.TASK_NAMES[k] for k in kinds)
        hint = " (try --kind trajectory)" if "problem" in kinds else ""
        raise OptbenchError(f"{what}: needs runs of a network; these are {', '.join(names)}{hint}")
    with_file = [g for g in view.groups if data.first_with(g, snapshots.FILE) is not None]
    if not with_file:
        raise snapshots.missing(what, view.groups[0].runs[0].path)
    cache = DataCache() if cache is None else cache  # labels of one experiment share their data: loaded once
    out = []
    for g in choose.best_panels(view, warn, what, limit):
        run = data.first_with(g, snapshots.FILE)
        if data.task(g) not in ("classification", "regression"):
            continue
        if run is None:
            warn(f"warning: {g.label}: no run with {snapshots.FILE} (trained without {snapshots.KEY}); left out")
            continue
        out.append(Shot(g, run, snapshots.read(run.path, what), RunNet(run.path, cache=cache)))
    if not out:
        raise snapshots.missing(what, view.groups[0].runs[0].path)
    return out
