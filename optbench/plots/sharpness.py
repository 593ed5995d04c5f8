"""The sharpness figure: each label's top Hessian eigenvalue over training (mean over seeds, with a band), and the
edge of stability 2/lr (Cohen et al. 2021: GD at rate lr is unstable along a direction of curvature above 2/lr)."""

from __future__ import annotations

import numpy as np

from optbench.errors import OptbenchError
from optbench.plots import curves, data
from optbench.plots.record import Record
from optbench.plots.style import place_legend, proxy

METRIC = "sharpness"


def edge(group: data.Group, x: str) -> data.Curve | None:
    """2/lr against x for a group (its first run's lr column: schedules included); None without a positive lr."""
    run = group.runs[0]
    xs, lr = run.metrics[x], run.metrics["lr"]
    ok = np.isfinite(xs) & np.isfinite(lr) & (lr > 0)
    if not ok.any():
        return None
    y = 2.0 / lr[ok]
    return data.Curve(xs[ok], y, y, y)


def draw_sharpness(ax, groups: list[data.Group], *, x: str, band: str, seeds: bool, log_y: bool, title: str,
                   lr_in_legend: bool, others: frozenset, rec: Record) -> None:
    """Sharpness curves per label (curves.draw_curves), each label's 2/lr dotted in its colour (one grey line when
    every label shares it), and a legend naming both."""
    if not data.has_values(groups, METRIC):
        raise OptbenchError("--kind sharpness: no sharpness in these runs (train with train.sharpness_every: K > 0)")
    measured = [g for g in groups if data.has_values([g], METRIC)]
    curves.draw_curves(ax, measured, metric=METRIC, x=x, band=band, seeds=seeds, log_y=log_y, title=title,
                       lr_in_legend=lr_in_legend, others=others, rec=rec, panel=METRIC, legend=False)
    edges = {g.label: e for g in measured if (e := edge(g, x)) is not None}
    levels = {tuple(np.unique(e.mean)) for e in edges.values()}
    handles = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    if len(levels) == 1:  # one constant rate (or one schedule) for all: one grey line across the axes
        (level,) = levels
        e = max(edges.values(), key=lambda c: c.x[-1])
        ax.plot(e.x, e.mean, color="0.3", linestyle=":", linewidth=1.6, zorder=1.2, label="_edge")
        rec.add(METRIC, "", "2/lr", e.x, e.mean)
        what = f"2/lr = {level[0]:.3g}" if len(level) == 1 else "2/lr"
        handles.append(proxy("0.3", f"{what}: edge of stability (GD)", linestyle=":", linewidth=1.6))
    elif edges:
        for g in measured:
            if (e := edges.get(g.label)) is not None:
                ax.plot(e.x, e.mean, color=g.color, linestyle=":", linewidth=1.6, zorder=1.2, label="_edge")
                rec.add(METRIC, g.label, "2/lr", e.x, e.mean)
        handles.append(proxy("0.3", "2/lr, each label's (its colour): edge of stability (GD)", linestyle=":", linewidth=1.6))
    lo, hi = ax.get_ylim()
    top = max((float(np.nanmax(e.mean)) for e in edges.values()), default=hi)
    ax.set_ylim(lo, max(hi, top * (1.3 if log_y else 1.05)))  # the edge in view, above the curves
    ax.set_ylabel("sharpness: top eigenvalue of the training cost's Hessian")
    place_legend(ax, handles)
