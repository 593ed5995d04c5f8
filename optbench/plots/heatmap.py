"""`--kind heatmap`: a 2-D sweep as a heat map of the mean final metric, one panel per variant."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from optbench.errors import OptbenchError
from optbench.plots.style import metric_name


def swept_keys(runs) -> list[str]:
    """The config keys a sweep varied, in the order its spec lists them (from summary.json's sweep.params)."""
    keys: list[str] = []
    for r in runs:
        for k in (r.summary.get("sweep") or {}).get("params", {}):
            if k not in keys:
                keys.append(k)
    return keys


def _variant(run) -> str:
    sweep = run.summary.get("sweep") or {}
    return sweep.get("variant") or ""


def _log_spaced(values) -> bool:
    v = [x for x in values if isinstance(x, (int, float))]
    return bool(v) and min(v) > 0 and max(v) / min(v) >= 20


def heatmap_figure(groups, title: str, opts, warn) -> Figure:
    """Mean final metric over the (x, y) values of two swept keys: cells for a grid, colored points for random trials."""
    from optbench.sweep import heatmap_table

    runs = [r for g in groups for r in g.runs]
    keys = [k for k in opts.keys.split(",") if k] if opts.keys else swept_keys(runs)
    if len(keys) != 2 or keys[0] == keys[1]:
        found = ", ".join(swept_keys(runs)) or "none"
        raise OptbenchError(f"--kind heatmap: needs two swept keys; name them with --keys X,Y (swept keys found: {found})")
    x_key, y_key = keys
    variants = sorted({_variant(r) for r in runs})
    fig = Figure(figsize=(4.2 * len(variants) + 1.0, 4.0), layout="constrained")
    axes = fig.subplots(1, len(variants), squeeze=False)[0]
    tables = []
    for v in variants:
        try:
            tables.append(heatmap_table([r for r in runs if _variant(r) == v], x_key, y_key, opts.metric))
        except OptbenchError:
            tables.append(None)
    finite = np.concatenate([t[2][np.isfinite(t[2])] for t in tables if t is not None] or [np.array([])])
    if finite.size == 0:
        raise OptbenchError(f"--kind heatmap: no run sets both {x_key} and {y_key} with a finite {opts.metric}")
    vmin, vmax = float(finite.min()), float(finite.max())
    mappable = None
    for ax, v, table in zip(axes, variants, tables):
        ax.set_title(v)
        ax.grid(False)
        if table is None:
            ax.text(0.5, 0.5, f"no runs set {x_key} and {y_key}", ha="center", va="center", transform=ax.transAxes)
            continue
        xs, ys, grid = table
        if np.isfinite(grid).sum() == grid.size or len(xs) * len(ys) <= 4 * np.isfinite(grid).sum():
            # a grid: one cell per value pair, placed at their indices, labelled with the values
            mappable = ax.pcolormesh(np.arange(len(xs) + 1) - 0.5, np.arange(len(ys) + 1) - 0.5,
                                     np.ma.masked_invalid(grid), vmin=vmin, vmax=vmax, cmap="viridis_r")
            ax.set_xticks(range(len(xs)), [f"{x:.3g}" if isinstance(x, float) else str(x) for x in xs], rotation=45)
            ax.set_yticks(range(len(ys)), [f"{y:.3g}" if isinstance(y, float) else str(y) for y in ys])
            for i in range(len(ys)):
                for j in range(len(xs)):
                    if math.isfinite(grid[i, j]):
                        # dark text on the light (low, good) end of viridis_r, white on the dark end
                        light = (grid[i, j] - vmin) <= 0.5 * (vmax - vmin)
                        ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=7,
                                color="black" if light else "white")
        else:
            # random trials: each (x, y) a point colored by its metric
            pts = [(x, y, grid[i, j]) for i, y in enumerate(ys) for j, x in enumerate(xs) if math.isfinite(grid[i, j])]
            px, py, pc = (np.array(c) for c in zip(*pts))
            mappable = ax.scatter(px, py, c=pc, vmin=vmin, vmax=vmax, cmap="viridis_r", s=60, edgecolors="k")
            if _log_spaced(px):
                ax.set_xscale("log")
            if _log_spaced(py):
                ax.set_yscale("log")
        ax.set_xlabel(x_key)
        ax.set_ylabel(y_key)
    if mappable is not None:
        fig.colorbar(mappable, ax=list(axes), label=f"final {metric_name(opts.metric)} (mean over seeds)")
    fig.suptitle(f"{title} — {opts.metric} over {x_key} × {y_key}")
    return fig
