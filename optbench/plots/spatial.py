"""Pictures in the input plane: decision regions of trained nets, optimizer paths over a 2-D test function."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
from matplotlib.colors import LogNorm

from optbench.errors import OptbenchError
from optbench.plots import data
from optbench.plots.style import place_legend, proxy
from optbench.runs.read import Run

# class colours: red/blue first as in the deeplearning.ai moons figure; regions are the same colours, light
CLASS_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
GRID = 200
MARGIN = 0.1  # of the data's range on each side


@dataclass(frozen=True)
class Regions:
    """A label's predicted class on a grid over the data, and the training points, in raw feature units."""

    group: data.Group
    seed: int
    xx: np.ndarray
    yy: np.ndarray
    classes: np.ndarray  # (GRID, GRID) predicted class index
    X: np.ndarray
    y: np.ndarray
    accuracy: float


@dataclass(frozen=True)
class Paths:
    """The 2-D test function of some runs and each label's path(s) over it."""

    title: str
    problem: object  # optbench.problems.Problem
    paths: list[tuple[data.Group, list[np.ndarray]]]  # first seed first


# ---- decision boundary ----------------------------------------------------------------------------------


def boundary_groups(groups: list[data.Group]) -> list[data.Group]:
    """The groups whose runs classify 2-D points; an OptbenchError naming what the runs are otherwise."""
    from optbench.predict import run_data

    ok, why = [], {}
    for g in groups:
        kind = data.task(g)
        if kind != "classification":
            hint = " (try --kind trajectory)" if kind == "problem" else ""
            why.setdefault(f"{data.TASK_NAMES[kind]}{hint}", []).append(g.name)
            continue
        D = run_data(g.runs[0].path).train.X.shape[1]
        if D != 2:
            why.setdefault(f"data with {D} input features", []).append(g.name)
            continue
        ok.append(g)
    if not ok:
        found = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in why.items())
        raise OptbenchError(f"--kind boundary: needs classification runs on 2-D data; found {found}")
    return ok


def regions(group: data.Group, warn: Callable[[str], None]) -> Regions | None:
    """Predict every grid point with the first seed's trained net (params.npz + config.yaml)."""
    from optbench.predict import load_predictor, run_data

    run = data.first_with(group, "params.npz")
    if run is None:
        warn(f"warning: {group.label}: no run with params.npz; no decision boundary drawn")
        return None
    split = run_data(run.path)
    X = split.train.X if split.mean is None else split.train.X * split.std + split.mean
    y = split.train.y
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = MARGIN * np.where(hi > lo, hi - lo, 1.0)
    xx, yy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], GRID), np.linspace(lo[1] - pad[1], hi[1] + pad[1], GRID))
    predict = load_predictor(run.path)
    classes = _classes(predict(np.column_stack([xx.ravel(), yy.ravel()]))).reshape(xx.shape)
    accuracy = float(np.mean(_classes(predict(X)) == y))
    return Regions(group, run.seed, xx, yy, classes, X, y, accuracy)


def _classes(proba: np.ndarray) -> np.ndarray:
    """Class index from probabilities: (N, 1) is bce's P(class 1), (N, K) softmax."""
    return (proba[:, 0] > 0.5).astype(int) if proba.shape[1] == 1 else proba.argmax(axis=1)


def draw_boundary(ax, reg: Regions, *, rec=None) -> None:
    """Filled decision regions, training points on top, seed and training accuracy in the title.

    Recorded: the training points (z: class) and the boundary lines' vertices (z: the line's index)."""
    k = max(int(reg.y.max()) + 1, int(reg.classes.max()) + 1, 2)
    colors = [CLASS_COLORS[i % len(CLASS_COLORS)] for i in range(k)]
    ax.contourf(reg.xx, reg.yy, reg.classes, levels=np.arange(k + 1) - 0.5, colors=colors, alpha=0.22)
    lines = ax.contour(reg.xx, reg.yy, reg.classes, levels=np.arange(k) + 0.5, colors="0.25", linewidths=0.8)
    if rec is not None:
        panel = reg.group.label
        rec.add(panel, reg.group.label, "points", reg.X[:, 0], reg.X[:, 1], z=np.asarray(reg.y).ravel().astype(int))
        segs = [seg for level in lines.allsegs for seg in level if len(seg)]
        for i, seg in enumerate(segs):
            rec.add(panel, reg.group.label, "boundary", seg[:, 0], seg[:, 1], z=np.full(len(seg), i))
    ax.scatter(reg.X[:, 0], reg.X[:, 1], c=[colors[int(c)] for c in reg.y], s=14, edgecolors="white", linewidths=0.4)
    ax.set_title(f"{reg.group.name}\nseed {reg.seed} (first seed), train acc {reg.accuracy:.1%}", color=reg.group.color)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.grid(False)


# ---- trajectories ---------------------------------------------------------------------------------------


def trajectory_sets(groups: list[data.Group], *, seeds: bool, warn: Callable[[str], None]) -> list[Paths]:
    """The runs on 2-D test functions, one Paths per distinct function; an OptbenchError when there are none."""
    from optbench.problems import PROBLEMS

    sets: dict[str, Paths] = {}
    for g in groups:
        if data.task(g) != "problem":
            continue
        runs = [r for r in g.runs if (r.path / "trajectory.npz").is_file()]
        loaded = [(r, xy) for r in (runs if seeds else runs[:1]) if (xy := _read_xy(r, warn)) is not None]
        if not loaded:
            warn(f"warning: {g.label}: no readable trajectory.npz; no path drawn")
            continue
        sec = loaded[0][0].config["data"]
        name = sec["name"]
        options = {k: v for k, v in sec.items() if k in PROBLEMS.params(name)}
        key = repr((name, sorted(options.items())))  # one panel per function and start
        if key not in sets:
            sets[key] = Paths(_problem_title(name, options), PROBLEMS.build(name, options), [])
        sets[key].paths.append((g, [xy for _, xy in loaded]))
    if not sets:
        raise OptbenchError("--kind trajectory: needs runs on a 2-D test function "
                            f"(data.name one of {', '.join(PROBLEMS.names())}) with trajectory.npz")
    return list(sets.values())


def _problem_title(name: str, options: dict) -> str:
    extra = ", ".join(f"{k}={v:g}" for k, v in options.items() if k != "start" and isinstance(v, (int, float)))
    return f"{name} ({extra})" if extra else name


def _read_xy(run: Run, warn: Callable[[str], None]) -> np.ndarray | None:
    """trajectory.npz `xy` (steps+1, 2), cut at the first non-finite point (a diverged path)."""
    try:
        with np.load(run.path / "trajectory.npz", allow_pickle=False) as f:
            xy = np.asarray(f["xy"], dtype=float)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        warn(f"warning: {run.path}: unreadable trajectory.npz ({err.__class__.__name__})")
        return None
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0:
        warn(f"warning: {run.path}: trajectory.npz xy has shape {xy.shape}, expected (steps+1, 2)")
        return None
    bad = ~np.isfinite(xy).all(axis=1)
    return xy[: int(np.argmax(bad))] if bad.any() else xy


def _levels(fz: np.ndarray, fmin: float | None) -> tuple[np.ndarray, object]:
    """Contour levels log-spaced above the minimum (they follow a valley's floor), from the 1st to the 99th
    percentile of f over the plot, so steep corners (Beale reaches 1e5) do not push every level away from
    the minimum; linear when f has no minimum (a saddle)."""
    if fmin is None:
        return np.linspace(fz.min(), fz.max(), 21), None
    lo, hi = np.percentile(fz - fmin, [1, 99])
    hi = max(float(hi), 1e-12)
    lo = min(max(float(lo), hi * 1e-9), hi / 10)
    levels = fmin + np.geomspace(lo, hi, 20)
    return levels, LogNorm(lo, hi)


def draw_trajectory(ax, paths: Paths, *, lr_in_legend: bool, rec=None) -> None:
    """Contours of f over its bounds, each label's path from the start, start and minimum marked."""
    pr = paths.problem
    x0, x1, y0, y1 = pr.bounds
    xx, yy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    fz = pr.f(np.stack([xx, yy], axis=-1))
    fmin = None if pr.minimum is None else min(float(pr.f(np.array(pr.minimum))), float(fz.min()))
    levels, norm = _levels(fz, fmin)
    shift = 0.0 if fmin is None else fmin
    ax.contour(xx, yy, fz - shift, levels=levels - shift, cmap="viridis", norm=norm, linewidths=0.7, alpha=0.55)
    handles = []
    for g, xys in paths.paths:
        for i, xy in enumerate(reversed(xys)):  # the first seed last, on top
            first = i == len(xys) - 1
            marker = "o" if len(xy) <= 80 else None
            label = (f"{g.name} (lr {data.group_lr(g)})" if lr_in_legend else g.name) if first else None
            ax.plot(xy[:, 0], xy[:, 1], color=g.color, linewidth=1.8 if first else 0.9, alpha=1.0 if first else 0.35,
                    marker=marker, markersize=3, label=label)
            if rec is not None:
                rec.add(paths.title, g.label, "path" if first else f"path {len(xys) - 1 - i}", xy[:, 0], xy[:, 1],
                        z=np.arange(len(xy)))
            if first:
                handles.append(ax.get_lines()[-1])
                ax.plot(*xy[-1], marker="o", markersize=7, color=g.color, markeredgecolor="black", linestyle="none")
    ax.plot(*pr.start, marker="o", markersize=9, color="white", markeredgecolor="black", markeredgewidth=1.5, linestyle="none")
    handles.append(proxy("white", "start", marker="o", markersize=8, markeredgecolor="black", linestyle="none"))
    if pr.minimum is not None:
        ax.plot(*pr.minimum, marker="*", markersize=15, color="gold", markeredgecolor="black", linestyle="none")
        handles.append(proxy("gold", "minimum", marker="*", markersize=12, markeredgecolor="black", linestyle="none"))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")  # true geometry: a ravine looks as narrow as it is
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(False)
    place_legend(ax, handles)
