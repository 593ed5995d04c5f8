"""The LR range test's figure: each label's smoothed loss against the rate (log axis), its raw batch losses
faintly, the suggested rate as a dot with a dashed line and the suggested sweep range as a bar under the curves."""

from __future__ import annotations

import math

from matplotlib.figure import Figure

from optbench.plots import layout
from optbench.plots.style import MANY_ENTRIES, place_legend, proxy


def lr_find_figure(curves, *, title: str) -> Figure:
    """One axes: smoothed loss vs lr per label (lrfind.Curve), with the steepest-descent suggestion marked."""
    fig = Figure(figsize=layout.bounded(9 if len(curves) + 2 > MANY_ENTRIES else 8, 5), layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(curves))]
    tops, lows = [], []
    for i, (c, color) in enumerate(zip(curves, colors)):
        pts = [(x, y, s) for x, y, s in zip(c.lr, c.loss, c.smooth) if x and y is not None and s is not None]
        if not pts:
            continue
        x, y, s = zip(*pts)
        name = c.variant or c.label
        ax.plot(x, y, color=color, alpha=0.18, linewidth=0.8)
        ax.plot(x, s, color=color, linewidth=1.8,
                label=f"{name}: {c.steep:.2g}" if c.steep is not None else f"{name}: no descent")
        tops.append(max(s[: max(len(s) // 10, 1)]))  # the flat start: the curves' scale, not the blow-up
        lows.append(min(s))
        if c.steep is not None:
            y_at = s[list(x).index(c.steep)] if c.steep in x else min(s)
            ax.plot([c.steep], [y_at], "o", color=color, markersize=7, markeredgecolor="black", zorder=5)
            ax.axvline(c.steep, color=color, linestyle="--", linewidth=0.9, alpha=0.7)
    if lows:
        lo, hi = min(lows), max(tops)
        pad = 0.08 * (hi - lo) if hi > lo else 0.1 * abs(hi) or 0.1
        top = hi + 6 * pad  # room above the start for the blow-up's first part
        bottom = lo - (2 + len(curves) * 0.7) * pad
        for i, (c, color) in enumerate(zip(curves, colors)):
            if c.low is not None:  # the sweep range, one bar per label below the curves
                yb = lo - (1.2 + 0.7 * i) * pad
                ax.plot([c.low, c.high], [yb, yb], color=color, linewidth=4, alpha=0.6, solid_capstyle="butt")
        if math.isfinite(top) and math.isfinite(bottom) and top > bottom:
            ax.set_ylim(bottom, top)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale; grows exponentially per iteration)")
    ax.set_ylabel("loss (EMA-smoothed, bias-corrected; raw batches faint)")
    ax.set_title(title)
    handles = ax.get_legend_handles_labels()[0]
    handles += [proxy("black", "suggested lr (steepest descent)", marker="o", linestyle="--"),
                proxy("grey", "suggested sweep range", linewidth=4, alpha=0.6)]
    place_legend(ax, handles, title="label: suggested lr")
    return fig


def save_lr_find(curves, out, *, title: str):
    """Draw and write the figure to `out` (.png, .svg or .pdf), atomically; returns the path."""
    from optbench.plot import output_path, save
    from optbench.plots.style import style

    path = output_path(out, out.parent, "", "lr-find")
    with style():  # also around saving: the dpi and svg.hashsalt are read then
        save(lr_find_figure(curves, title=title), path)
    return path
