"""Learning-rate sensitivity (`plot --kind lr`): a run's final metric against its lr, a line per optimizer and
setting, error bars over seeds, diverged seeds marked on the axes' edge."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.ticker import PercentFormatter

from optbench.plots import data
from optbench.plots.curves import bounds, keep_in_bounds, overlap_marks
from optbench.plots.record import Record
from optbench.plots.style import metric_name, place_legend, proxy


def _flat(cfg, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
    return out


NOT_A_LINE = ("seed", "name", "label", "optimizer.lr", "data.fold")


def line_keys(groups: list[data.Group]) -> list[str]:
    """The config keys besides the learning rate that differ between runs of one optimizer: each of their
    value combinations gets its own line (an lr x mu grid: one line per mu), never pooled into the error bars."""
    by_opt: dict[str, list[dict]] = {}
    for g in groups:
        for r in g.runs:
            by_opt.setdefault(str(r.config.get("optimizer", {}).get("name", "?")), []).append(_flat(r.config))
    keys: set[str] = set()
    for flats in by_opt.values():
        for k in {k for f in flats for k in f}:
            if k not in NOT_A_LINE and len({repr(f.get(k)) for f in flats}) > 1:
                keys.add(k)
    return sorted(keys)


def lr_points(groups: list[data.Group], metric: str) -> dict[str, dict[float, list[tuple[float, bool]]]]:
    """line name (optimizer, plus the other differing keys' values) -> lr -> [(final metric, diverged)] over runs."""
    keys = line_keys(groups)
    out: dict[str, dict[float, list[tuple[float, bool]]]] = {}
    for g in groups:
        for r in g.runs:
            lr, value = data.lr_of(r), data.final_value(r, metric)
            if lr is None or value is None:
                continue
            flat = _flat(r.config)
            name = str(r.config.get("optimizer", {}).get("name", "?"))
            shown = [f"{k.split('.')[-1]} {_value(flat.get(k))}" for k in keys if k in flat and k != "optimizer.name"]
            line = f"{name} ({', '.join(shown)})" if shown else name
            out.setdefault(line, {}).setdefault(lr, []).append((value, r.status == "diverged"))
    return out


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _spread(values: np.ndarray, band: str, lim: tuple[float, float]) -> tuple[float, float, float]:
    """mean, and the distances down and up of the error bar: std (inside the seeds' range and the metric's
    bounds), or to the min and max."""
    m = float(values.mean())
    if band == "minmax":
        return m, m - float(values.min()), float(values.max()) - m
    sd = float(values.std())
    lo, hi = max(m - sd, float(values.min()), lim[0]), min(m + sd, float(values.max()), lim[1])
    return m, m - lo, hi - m


def draw_lr(ax, points: dict[str, dict[float, list[tuple[float, bool]]]], *, metric: str, band: str, log_y: bool,
            title: str, rec: Record | None = None, panel: str = "") -> None:
    """Final metric against lr (log x), one line per optimizer and setting, error bars over seeds.

    A diverged run's final value means nothing (it is wherever the blow-up was caught), so diverged seeds are
    left out of the mean and shown as an x on the bad edge of the axes: the top for costs, the bottom for accuracy.
    """
    names = sorted(points)
    colors = {n: data.PALETTE[i % len(data.PALETTE)] for i, n in enumerate(names)}
    handles, edge = [], 0.0 if metric.endswith("_acc") else 1.0
    any_diverged = False
    lim = bounds(metric)
    table = {}
    for name in names:
        lrs = sorted(points[name])
        table[name] = [(lr, *_spread(np.array(ok), band, lim)) for lr in lrs if (ok := [v for v, d in points[name][lr] if not d])]
    lines = [data.Curve(*(np.array(c) for c in list(zip(*rows))[:2]), None, None) if len(rows) > 1 else None
             for rows in table.values()]
    extra = overlap_marks(lines, log_y, dashes=True)
    for i, (name, more) in enumerate(zip(names, extra)):
        lrs = sorted(points[name])
        style = dict(marker="o", linestyle=("-", "--", ":")[i // len(data.PALETTE) % 3], linewidth=1.8)
        if more:  # on top of another line: its own marker, dashed and thinner
            style.update(marker=more["marker"], linestyle=more["linestyle"], linewidth=1.2, markerfacecolor="white")
        rows = table[name]
        if rows:
            x, mean, down, up = map(np.array, zip(*rows))
            handles.append(ax.errorbar(x, mean, yerr=[down, up], color=colors[name], markersize=6, capsize=3,
                                       label=name, **style))
            _add(rec, panel, name, f"final {metric}", x, mean, mean - down, mean + up)
        bad = [lr for lr in lrs if any(d for _, d in points[name][lr])]
        if bad:
            any_diverged = True
            ax.plot(bad, [edge] * len(bad), transform=ax.get_xaxis_transform(), linestyle="none", marker="x",
                    markersize=11, markeredgewidth=2.2, color=colors[name], clip_on=False)
            _add(rec, panel, name, "diverged", bad, [math.nan] * len(bad))
            if not rows:
                handles.append(proxy(colors[name], name, marker="x", linestyle="none"))
    if any_diverged:
        handles.append(proxy("0.35", "diverged seeds (not in the mean)", linestyle="none", marker="x", markersize=8,
                             markeredgewidth=2))
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    if metric.endswith("_acc"):
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    keep_in_bounds(ax, lim, log_y)
    ax.set_xlabel("learning rate (optimizer.lr)")
    ax.set_ylabel(f"final {metric_name(metric)} (mean, {'min–max' if band == 'minmax' else '± std'} over seeds)")
    ax.set_title(title)
    place_legend(ax, handles[:14], title="optimizer", outside=True)


def _add(rec: Record | None, panel: str, label: str, series: str, x, y, lo=None, hi=None) -> None:
    if rec is not None:
        rec.add(panel, label, series, x, y, lo, hi)
