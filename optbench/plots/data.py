"""Runs to plot: read and select them, group them by label, aggregate a metric over seeds. No matplotlib here."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from optbench.errors import OptbenchError
from optbench.runs.read import Run
from optbench.runset import grouping, reading
from optbench.runset.default import default_paths
from optbench.runset.identity import created, sweep_id

# tab10: distinct, colour-blind tolerable, what users know from matplotlib; labels take them in sorted order
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
TASKS = {"bce": "classification", "softmax_ce": "classification", "mse": "regression"}
TASK_NAMES = {"problem": "2-D test functions", "regression": "regression", "classification": "classification",
              "unknown": "of an unknown task"}


@dataclass(frozen=True)
class Group:
    """The runs of one label and config (sorted by seed), its short display name and its colour."""

    label: str
    name: str  # the label without a shared `<experiment>/`, then the config keys that differ within it
    color: str
    runs: list[Run]
    key: str = ""  # runset.identity.config_key of its runs: compare's config_hash of the same row
    varied: dict = field(default_factory=dict)  # the config keys the name shows, and their values


@dataclass(frozen=True)
class Curve:
    """A metric of one label aligned by epoch: x and the mean over the seeds present, with a band."""

    x: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


# ---- selecting runs ---------------------------------------------------------------------------------


def select_runs(paths: list[str], runs_dir: Path, warn: Callable[[str], None]) -> list[Run]:
    """The runs named by `paths`, or the newest experiment in `runs_dir` (said on stderr), read as compare reads them."""
    where = list(paths) or default_paths(runs_dir, "plotting", warn)
    runs = read_runs(where, warn)
    if not runs:
        raise OptbenchError(f"no runs found in {', '.join(map(str, where))}")
    return runs


def read_runs(paths: list, warn: Callable[[str], None]) -> list[Run]:
    """Every readable run under these paths (runset.reading.read: bad runs skipped with one warning, duplicates resolved)."""
    return reading.read(paths, warn)


def experiment(run: Run) -> str:
    return str(run.summary.get("name") or run.config.get("name") or run.path.name)


def latest_experiment(runs: list[Run]) -> list[Run]:
    """Every run of the experiment (or sweep) of the newest run."""
    def which(r: Run) -> str:
        return sweep_id(r) or f"name:{experiment(r)}"

    newest = max(runs, key=lambda r: (created(r), r.path.name))
    return [r for r in runs if which(r) == which(newest)]


def experiment_title(runs: list[Run]) -> str:
    """The experiment's name, or the names joined when runs of several are plotted together."""
    names = sorted({experiment(r) for r in runs})
    return "+".join(names) if len(names) <= 3 else f"{'+'.join(names[:3])}+{len(names) - 3}-more"


# ---- grouping ------------------------------------------------------------------------------------------


def color_map(keys: list[str]) -> dict[str, str]:
    """Sorted keys -> tab10 colours: the same label gets the same colour in every figure of the same runs."""
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(sorted(set(keys)))}


def group_runs(runs: list[Run]) -> list[Group]:
    """runset.grouping.group (one Group per label and config, as compare's rows); names drop a shared `<experiment>/`."""
    groups = grouping.group(runs, lambda m: None)  # the reader already warned about duplicates
    colors = color_map([g.name for g in groups])
    single = len({experiment(r) for r in runs}) == 1
    out = []
    for g in groups:
        members = list(g.items)
        prefix = f"{experiment(members[0])}/"
        name = g.name[len(prefix):] if single and g.name.startswith(prefix) else g.name
        out.append(Group(g.label, name, colors[g.name], members, g.key, dict(g.varied)))
    return out


def task(group: Group) -> str:
    """classification, regression or problem (a 2-D test function), from the first run's config."""
    from optbench.problems import PROBLEMS

    cfg = group.runs[0].config
    if cfg.get("data", {}).get("name") in PROBLEMS:
        return "problem"
    return TASKS.get(cfg.get("loss"), "unknown")


def lr_of(run: Run) -> float | None:
    lr = run.config.get("optimizer", {}).get("lr")
    return float(lr) if isinstance(lr, (int, float)) else None


def lr_text(lrs: set[float]) -> str:
    return ", ".join(f"{lr:g}" for lr in sorted(lrs))


def shared_lr(groups: list[Group]) -> str | None:
    """The learning rate as text when every run has the same one, else None (then each legend entry names its own)."""
    lrs = {lr_of(r) for g in groups for r in g.runs}
    return lr_text(lrs) if len(lrs) == 1 and None not in lrs else None


def group_lr(group: Group) -> str:
    lrs = {lr for r in group.runs if (lr := lr_of(r)) is not None}
    return lr_text(lrs) if lrs else "-"


def first_with(group: Group, filename: str) -> Run | None:
    """The lowest-seed run of a group that has `filename` (failed runs may lack params.npz)."""
    return next((r for r in group.runs if (r.path / filename).is_file()), None)


# ---- aggregating ---------------------------------------------------------------------------------------


def has_values(groups: list[Group], metric: str) -> bool:
    return any(np.isfinite(r.metrics[metric]).any() for g in groups for r in g.runs)


def by_epoch(runs: list[Run], column: str) -> np.ndarray:
    """(seeds, epochs) matrix of a column, NaN where a run has no row (it ended earlier) or no value."""
    last = max(int(np.nanmax(r.metrics["epoch"])) for r in runs)
    out = np.full((len(runs), last + 1), np.nan)
    for i, r in enumerate(runs):
        epochs = r.metrics["epoch"]
        ok = np.isfinite(epochs) & (epochs >= 0)
        out[i, epochs[ok].astype(int)] = r.metrics[column][ok]
    return out


def aggregate(runs: list[Run], metric: str, x: str, band: str) -> Curve | None:
    """Mean over the seeds present at each epoch (runs that diverged or stopped early drop out), with a band.

    band "std": mean +- std over seeds (within the seeds' range); "minmax": the seeds' range. None when no values.
    """
    Y = by_epoch(runs, metric)
    X = by_epoch(runs, x)
    Y[~np.isfinite(Y)] = np.nan  # an inf cost at divergence would swamp the mean
    keep = np.isfinite(Y).any(axis=0) & np.isfinite(X).any(axis=0)
    if not keep.any():
        return None
    Y, X = Y[:, keep], X[:, keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a seed without x where another has it: harmless
        xs = np.nanmean(X, axis=0)
    mean = np.nanmean(Y, axis=0)  # every kept column has a value
    ymin, ymax, sd = np.nanmin(Y, axis=0), np.nanmax(Y, axis=0), np.nanstd(Y, axis=0)
    # std bands stay inside the seeds' range: no negative cost, no accuracy above 100%, nothing <= 0 on a log axis
    lo, hi = (ymin, ymax) if band == "minmax" else (np.maximum(mean - sd, ymin), np.minimum(mean + sd, ymax))
    return Curve(xs, mean, lo, hi)


def seed_curve(run: Run, metric: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """One run's (x, metric) where both are finite."""
    xs, ys = run.metrics[x], run.metrics[metric]
    ok = np.isfinite(xs) & np.isfinite(ys)
    return xs[ok], ys[ok]


def divergence_points(group: Group, metric: str, x: str) -> list[tuple[float, float]]:
    """The last finite point of each diverged run of a group: where the x marker goes."""
    out = []
    for r in group.runs:
        if r.status == "diverged":
            xs, ys = seed_curve(r, metric, x)
            if len(xs):
                out.append((float(xs[-1]), float(ys[-1])))
    return out


def value_range(groups: list[Group], columns: list[str], *, diverged: bool = True) -> tuple[float, float] | None:
    """Smallest and largest finite value of these columns over the runs (without the diverged ones if asked)."""
    values = [r.metrics[c][np.isfinite(r.metrics[c])] for g in groups for r in g.runs
              if diverged or r.status != "diverged" for c in columns]
    values = np.concatenate(values) if values else np.empty(0)
    return (float(values.min()), float(values.max())) if values.size else None


def final_value(run: Run, metric: str) -> float | None:
    """The metric's last finite value in a run."""
    ys = run.metrics[metric]
    ys = ys[np.isfinite(ys)]
    return float(ys[-1]) if len(ys) else None
