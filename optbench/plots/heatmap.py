"""`--kind heatmap`: a sweep's selection metric over its swept keys, the selected trials marked.

Two swept keys: one panel per variant, cells for a grid, coloured points for random trials. One swept key: one
panel, a row per variant. The colour scale runs the same way for every metric: yellow is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from optbench.errors import OptbenchError
from optbench.plots import choose, data, layout
from optbench.plots.record import Record
from optbench.plots.style import metric_name, proxy

PER_ROW = 3
BETTER = "yellow is better"


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


def _lookup(cfg: dict, path: str):
    node = cfg
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


@dataclass(frozen=True)
class Cell:
    """One trial (or one label outside a sweep): its key values, its metric (NaN: diverged) and its role."""

    label: str
    variant: str
    x: object
    y: object
    value: float
    role: str  # default, tuned, best or ""


def _cells(groups: list[data.Group], x_key: str, y_key: str | None, opts) -> tuple[list[Cell], str, int]:
    """The cells, the metric's name and its direction (+1: lower is better)."""
    from optbench.sweep.spec import METRICS

    score, role, metric = choose.sweep_scores(groups)
    use_sweep = bool(score) and opts.metric == "train_cost"  # the sweep's own metric unless another was asked for
    name = next(iter(metric.values())) if use_sweep else f"final {opts.metric}"
    sign = METRICS.get(name, 1) if use_sweep else (-1 if opts.metric.endswith("_acc") else 1)
    cells = []
    for g in groups:
        cfg = g.runs[0].config
        x = _lookup(cfg, x_key)
        y = _variant(g.runs[0]) if y_key is None else _lookup(cfg, y_key)
        if x is None or y is None:
            continue
        if use_sweep:
            s = score.get(g.label, math.inf)
            value = sign * s if math.isfinite(s) else math.nan
        else:
            s = choose.final_score(g, opts.metric)
            value = (-s if opts.metric.endswith("_acc") else s) if math.isfinite(s) else math.nan
        cells.append(Cell(g.label, _variant(g.runs[0]), x, y, value, role.get(g.label, "")))
    return cells, name, sign


def _tick(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def heatmap_figure(view: choose.View, title: str, opts, warn, rec: Record | None = None) -> Figure:
    """The sweep's metric over one or two swept keys; the selected trial of each variant ringed, defaults squared."""
    groups = view.pool
    runs = [r for g in groups for r in g.runs]
    keys = [k for k in opts.keys.split(",") if k] if opts.keys else swept_keys(runs)
    found = ", ".join(swept_keys(runs)) or "none"
    if len(keys) not in (1, 2) or len(set(keys)) != len(keys):
        raise OptbenchError(f"--kind heatmap: needs one or two swept keys; name them with --keys X,Y "
                            f"(swept keys found: {found})")
    x_key, y_key = keys[0], (keys[1] if len(keys) == 2 else None)
    cells, metric, sign = _cells(groups, x_key, y_key, opts)
    if not cells:
        raise OptbenchError(f"--kind heatmap: no run sets {' and '.join(keys)} (swept keys found: {found})")
    finite = np.array([c.value for c in cells if math.isfinite(c.value)])
    if finite.size == 0:
        raise OptbenchError(f"--kind heatmap: no run over {' x '.join(keys)} has a finite {metric}")
    vmin, vmax = float(finite.min()), float(finite.max())
    cmap = "viridis_r" if sign > 0 else "viridis"  # the better end is yellow whichever way the metric runs
    panels = sorted({c.variant for c in cells}) if y_key is not None else [""]
    rows, cols, w, h = layout.panel_grid(len(panels), (4.6, 4.2) if y_key else (9.0, 1.6 + 0.8 * len({c.variant for c in cells})),
                                         PER_ROW, extra=(1.6, 1.0))
    fig = Figure(figsize=(max(w, 7.0), h), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    mappable = None
    for ax, v in zip(axes, panels):
        mine = [c for c in cells if c.variant == v] if y_key is not None else cells
        mappable = _draw_panel(ax, mine, x_key, y_key, vmin, vmax, cmap, rec, v or "all") or mappable
        ax.set_title(v or "each trial (mean over seeds)")
    if mappable is not None:
        cbar = fig.colorbar(mappable, ax=list(axes[: len(panels)]), label=f"{metric} (mean over seeds)\n{BETTER}")
        if sign > 0:
            cbar.ax.invert_yaxis()  # better at the top
    roles = {c.role for c in cells}
    ring = "s" if any(_is_grid(*_axes_values(cells, v, y_key)) for v in panels) and y_key else "o"
    handles = [proxy("none", f"selected ({r})", marker=ring, markersize=12, markeredgecolor="red",
                     markeredgewidth=2.2, linestyle="none") for r in ("tuned", "best") if r in roles]
    if "default" in roles:
        handles.append(proxy("none", "default", marker="s", markersize=11, markeredgecolor="black",
                             markeredgewidth=1.6, linestyle="none"))
    if any(not math.isfinite(c.value) for c in cells):
        handles.append(proxy("0.3", "diverged", marker="x", markersize=8, markeredgewidth=2, linestyle="none"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle(f"{title}: {metric_name(metric)}\nover {' × '.join(keys)}")
    return fig


def _axes_values(cells: list[Cell], variant: str, y_key: str | None) -> tuple[list, list, int]:
    mine = [c for c in cells if c.variant == variant] if y_key is not None else cells
    return list({c.x for c in mine}), list({c.y for c in mine}), len(mine)


def _is_grid(xs: list, ys: list, n: int) -> bool:
    return len(xs) * len(ys) <= 2 * n


def _draw_panel(ax, cells: list[Cell], x_key: str, y_key: str | None, vmin, vmax, cmap, rec, panel):
    ax.grid(False)
    xs = sorted({c.x for c in cells}, key=_order)
    ys = sorted({c.y for c in cells}, key=_order)
    grid = y_key is not None and _is_grid(xs, ys, len(cells))
    if grid:
        Z = np.full((len(ys), len(xs)), np.nan)
        for c in cells:
            Z[ys.index(c.y), xs.index(c.x)] = c.value
        pos = {c.label: (xs.index(c.x), ys.index(c.y)) for c in cells}
        mappable = ax.pcolormesh(np.arange(len(xs) + 1) - 0.5, np.arange(len(ys) + 1) - 0.5, np.ma.masked_invalid(Z),
                                 vmin=vmin, vmax=vmax, cmap=cmap)
        ax.set_xticks(range(len(xs)), [_tick(x) for x in xs], rotation=45)
        ax.set_yticks(range(len(ys)), [_tick(y) for y in ys])
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_ylim(-0.5, len(ys) - 0.5)
        for c in cells:
            if math.isfinite(c.value):
                light = (c.value - vmin) <= 0.5 * (vmax - vmin)  # readable text on either end of the colour scale
                dark_end = light == (cmap == "viridis")
                ax.text(*pos[c.label], f"{c.value:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if dark_end else "black")
    else:
        rows = {y: i for i, y in enumerate(ys)}
        pos = {c.label: (c.x, rows[c.y] if y_key is None else c.y) for c in cells}
        ok = [c for c in cells if math.isfinite(c.value)]
        mappable = ax.scatter([pos[c.label][0] for c in ok], [pos[c.label][1] for c in ok], c=[c.value for c in ok],
                              vmin=vmin, vmax=vmax, cmap=cmap, s=70, edgecolors="k", linewidths=0.5, zorder=2)
        if _log_spaced(xs):
            ax.set_xscale("log")
        if y_key is None:
            ax.set_yticks(range(len(ys)), [str(y) for y in ys])
            ax.set_ylim(-0.6, len(ys) - 0.4)
        elif _log_spaced(ys):
            ax.set_yscale("log")
    for c in cells:
        px, py = pos[c.label]
        if not math.isfinite(c.value):
            ax.plot([px], [py], marker="x", color="0.3", markersize=9, markeredgewidth=2, linestyle="none", zorder=3)
        if grid and c.role:  # a frame around the cell, so its value stays readable
            red = c.role in ("tuned", "best")
            ax.add_patch(Rectangle((px - 0.47, py - 0.47), 0.94, 0.94, fill=False, zorder=4, label=f"_{c.role}",
                                   edgecolor="red" if red else "black", linewidth=3.0 if red else 2.0))
        elif c.role in ("tuned", "best"):
            ax.plot([px], [py], marker="o", markersize=15, markerfacecolor="none", markeredgecolor="red",
                    markeredgewidth=2.2, linestyle="none", zorder=4)
        elif c.role == "default":
            ax.plot([px], [py], marker="s", markersize=12, markerfacecolor="none", markeredgecolor="black",
                    markeredgewidth=1.6, linestyle="none", zorder=4)
        if rec is not None:
            rec.add(panel, c.label, c.role or "trial", [c.x], [c.y], z=[c.value])
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key or "variant")
    return mappable


def _order(v):
    """Numbers by value, then anything else by its text (a mixed column must still sort)."""
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))
