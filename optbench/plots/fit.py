"""`--kind fit`: a 1-D regression's data and each label's fitted function (mean over seeds, their range),
and the held-out error along x. Nets are rebuilt from params.npz; nothing trains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from optbench.errors import OptbenchError
from optbench.plots import data
from optbench.plots.curves import overlap_marks
from optbench.plots.record import Record
from optbench.plots.style import place_legend, proxy

GRID = 300
BINS = 12
BAND_ALPHA = 0.2
SPLIT_NAMES = {"val": "validation"}


@dataclass(frozen=True)
class Fit:
    """One label's predictions: xs (G,) a grid over the data, ys (seeds, G); the data in raw units."""

    group: data.Group
    xs: np.ndarray
    ys: np.ndarray
    train: tuple[np.ndarray, np.ndarray]  # x (N,), y (N,)
    held: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # x, y, mean prediction over seeds; None without a split
    held_name: str


def _raw(split, part) -> tuple[np.ndarray, np.ndarray]:
    X = part.X if split.mean is None else part.X * split.std + split.mean
    return X[:, 0], part.y[:, 0]


def fit_groups(groups: list[data.Group]) -> list[data.Group]:
    """The groups that regress one output on one input; an OptbenchError naming what the runs are otherwise."""
    from optbench.predict import run_data

    ok, why = [], {}
    for g in groups:
        kind = data.task(g)
        if kind != "regression":
            why.setdefault(data.TASK_NAMES[kind], []).append(g.name)
            continue
        split = run_data(g.runs[0].path)
        D, K = split.train.X.shape[1], split.train.y.shape[1]
        if D != 1 or K != 1:
            why.setdefault(f"regression with {D} inputs and {K} outputs", []).append(g.name)
            continue
        ok.append(g)
    if not ok:
        found = "; ".join(f"{', '.join(names[:4])}: {reason}" for reason, names in why.items())
        raise OptbenchError(f"--kind fit: needs regression runs with one input and one output; found {found}")
    return ok


def fits(groups: list[data.Group], warn: Callable[[str], None]) -> list[Fit]:
    """Each group's fitted curve on a common grid over the training inputs (10% margin), one row per seed."""
    from optbench.predict import load_predictor, run_data

    out = []
    for g in groups:
        runs = [r for r in g.runs if (r.path / "params.npz").is_file()]
        if not runs:
            warn(f"warning: {g.label}: no run with params.npz; no fitted curve drawn")
            continue
        split = run_data(runs[0].path)
        tx, ty = _raw(split, split.train)
        pad = 0.1 * (tx.max() - tx.min() or 1.0)
        xs = np.linspace(tx.min() - pad, tx.max() + pad, GRID)
        held_part = next(((n, p) for n in ("test", "val") if (p := getattr(split, n, None)) is not None and len(p.y)), None)
        ys, held_pred = [], []
        for r in runs:
            predict = load_predictor(r.path)
            ys.append(predict(xs[:, None])[:, 0])
            if held_part is not None:
                held_pred.append(predict(_raw(split, held_part[1])[0][:, None])[:, 0])
        held = None
        if held_part is not None:
            hx, hy = _raw(split, held_part[1])
            held = (hx, hy, np.mean(held_pred, axis=0))
        out.append(Fit(g, xs, np.array(ys), (tx, ty), held, held_part[0] if held_part else "training"))
    if not out:
        raise OptbenchError("--kind fit: no run with params.npz to rebuild a net from")
    return out


def draw_fit(ax, fs: list[Fit], *, others: frozenset = frozenset(), rec: Record | None = None, panel: str = "fit",
             legend: bool = True) -> None:
    """Training points (grey), held-out points (hollow), each label's mean fitted curve and its seeds' range."""
    tx, ty = fs[0].train
    ax.scatter(tx, ty, s=10, color="0.55", alpha=0.6, linewidths=0, zorder=1)
    _add(rec, panel, "data", "train points", tx, ty)
    handles = [proxy("0.55", "training data", marker="o", linestyle="none", markersize=4)]
    if fs[0].held is not None:
        hx, hy, _ = fs[0].held
        ax.scatter(hx, hy, s=16, facecolors="none", edgecolors="0.25", linewidths=0.8, zorder=1)
        _add(rec, panel, "data", f"{fs[0].held_name} points", hx, hy)
        handles.append(proxy("0.25", f"{SPLIT_NAMES.get(fs[0].held_name, fs[0].held_name)} data", marker="o", linestyle="none", markersize=4,
                             markerfacecolor="none"))
    mean = [data.Curve(f.xs, f.ys.mean(axis=0), f.ys.min(axis=0), f.ys.max(axis=0)) for f in fs]
    extra = overlap_marks([c if f.group.label not in others else None for f, c in zip(fs, mean)], log_y=False,
                          dashes=True)
    named = 0
    for f, c, more in zip(fs, mean, extra):
        faint = f.group.label in others
        if len(f.ys) > 1 and not faint:
            ax.fill_between(c.x, c.lo, c.hi, color=f.group.color, alpha=BAND_ALPHA, linewidth=0)
        width = 0.9 if faint else (1.4 if more else 2.6 - 1.2 * named / max(len(fs) - 1, 1))
        named += 0 if faint else 1
        line, = ax.plot(c.x, c.mean, color=f.group.color, linewidth=width, zorder=1.5 if faint else 3,
                        label="_other" if faint else f.group.name, **more)
        _add(rec, panel, f.group.label, "fit", c.x, c.mean, *((c.lo, c.hi) if len(f.ys) > 1 and not faint else ()))
        if not faint:
            handles.insert(named - 1, line)
    if others:
        handles.append(proxy("0.62", f"{len(others)} others"))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("fitted function (mean over seeds, their range)")
    if legend:
        place_legend(ax, handles)


def draw_error(ax, fs: list[Fit], *, others: frozenset = frozenset(), rec: Record | None = None,
               panel: str = "error") -> None:
    """Mean squared error of the seeds' mean prediction on the held-out points, in BINS bins along x."""
    usable = [f for f in fs if f.held is not None and f.group.label not in others]
    if not usable:
        usable = [f for f in fs if f.group.label not in others]
        where = "training"
    else:
        where = usable[0].held_name
    lo = min(f.xs.min() for f in usable)
    hi = max(f.xs.max() for f in usable)
    n = len(usable[0].held[0]) if usable[0].held is not None else len(usable[0].train[0])
    bins = int(np.clip(n // 8, 3, BINS))  # about 8 points a bin: fewer points, fewer and steadier bins
    edges = np.linspace(lo, hi, bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    curves = []
    for f in usable:
        if f.held is not None:
            hx, hy, pred = f.held
        else:
            hx, hy = f.train
            pred = np.interp(hx, f.xs, f.ys.mean(axis=0))
        idx = np.clip(np.digitize(hx, edges) - 1, 0, bins - 1)
        err = np.array([np.mean((pred[idx == b] - hy[idx == b]) ** 2) if (idx == b).any() else np.nan
                        for b in range(bins)])
        ok = np.isfinite(err)
        curves.append(data.Curve(centers[ok], err[ok], err[ok], err[ok]))
    extra = overlap_marks(curves, log_y=True, dashes=True)
    for i, (f, c, more) in enumerate(zip(usable, curves, extra)):
        style = {"marker": "o", "markersize": 4, "linewidth": 2.4 - 1.0 * i / max(len(usable) - 1, 1)} | more
        ax.plot(c.x, c.mean, color=f.group.color, label=f.group.name, **style)
        _add(rec, panel, f.group.label, f"{where} mse", c.x, c.mean)
    ax.set_yscale("log")
    ax.set_xlabel("x")
    shown = SPLIT_NAMES.get(where, where)
    ax.set_ylabel(f"{shown} squared error (mean per bin)")
    ax.set_title(f"where the fit misses ({shown} data, {bins} bins)")
    place_legend(ax)


def _add(rec: Record | None, panel: str, label: str, series: str, x, y, lo=None, hi=None) -> None:
    if rec is not None:
        rec.add(panel, label, series, x, y, lo, hi)
