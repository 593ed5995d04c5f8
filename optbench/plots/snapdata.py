"""The snapshots a figure draws from: each label's first seed with snapshots.npz, its net and data rebuilt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from optbench import snapshots
from optbench.errors import OptbenchError
from optbench.landscape import RunNet
from optbench.plots import data
from optbench.runs import Run


@dataclass(frozen=True)
class Shot:
    """One label's run (its lowest seed with snapshots), those snapshots and the run's net and data."""

    group: data.Group
    run: Run
    snaps: snapshots.Snapshots
    net: RunNet


def load(groups: list[data.Group], what: str, warn: Callable[[str], None], cache=None) -> list[Shot]:
    """A Shot per group that has snapshots (a warning for each that has none); an OptbenchError naming
    `train.snapshots_every` when none has, or naming what the runs are when they have no network."""
    nets = [g for g in groups if data.task(g) in ("classification", "regression")]
    if not nets:
        kinds = sorted({data.TASK_NAMES[data.task(g)] for g in groups})
        hint = " (try --kind trajectory)" if "2-D test functions" in kinds else ""
        raise OptbenchError(f"{what}: needs runs of a network; these are {', '.join(kinds)}{hint}")
    from optbench.datacache import DataCache

    cache = DataCache() if cache is None else cache  # labels of one experiment share their data: loaded once
    out = []
    for g in nets:
        run = data.first_with(g, snapshots.FILE)
        if run is None:
            if len(nets) == 1:
                raise snapshots.missing(what, g.runs[0].path)
            warn(f"warning: {g.label}: no run with {snapshots.FILE} (trained without {snapshots.KEY}); left out")
            continue
        out.append(Shot(g, run, snapshots.read(run.path, what), RunNet(run.path, cache=cache)))
    if not out:
        raise snapshots.missing(what, nets[0].runs[0].path)
    return out
