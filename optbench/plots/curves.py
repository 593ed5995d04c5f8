"""Metric-against-time figures (cost, accuracy) and learning-rate sensitivity, drawn into given Axes."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import PercentFormatter

from optbench.plots import data
from optbench.plots.style import TRAIN_STYLE, VAL_STYLE, metric_name, place_legend, proxy

BAND_ALPHA = 0.18
SEED_ALPHA = 0.3


def companion(metric: str, groups: list[data.Group]) -> str | None:
    """train_cost -> val_cost (train_acc -> val_acc) when a validation split was measured, else None."""
    if not metric.startswith("train_"):
        return None
    val = "val_" + metric[len("train_"):]
    return val if data.has_values(groups, val) else None


def _draw_metric(ax, group, metric, *, x, band, seeds, linestyle, alpha_band, label, width) -> bool:
    """One label's mean line, band and (optionally) faint single seeds; False when it has no values."""
    curve = data.aggregate(group.runs, metric, x, band)
    if curve is None:
        return False
    if seeds:
        for r in group.runs:
            xs, ys = data.seed_curve(r, metric, x)
            ax.plot(xs, ys, color=group.color, linestyle=linestyle, linewidth=0.8, alpha=SEED_ALPHA)
    if len(group.runs) > 1:
        ax.fill_between(curve.x, curve.lo, curve.hi, color=group.color, alpha=alpha_band, linewidth=0)
    ax.plot(curve.x, curve.mean, color=group.color, linestyle=linestyle, linewidth=width, label=label)
    return True


def draw_curves(ax, groups: list[data.Group], *, metric: str, x: str, band: str, seeds: bool, log_y: bool,
                title: str, lr_in_legend: bool) -> None:
    """Mean over seeds per label with a band; the validation twin dashed in the same colour; x where a run diverged."""
    val = companion(metric, groups)
    handles, marks = [], []
    for i, g in enumerate(groups):
        label = f"{g.name} (lr {data.group_lr(g)})" if lr_in_legend else g.name
        # each later line a little thinner: curves that coincide (GD and momentum in the course) stay visible
        common = dict(x=x, band=band, seeds=seeds, width=3.0 - 1.6 * i / max(len(groups) - 1, 1))
        if not _draw_metric(ax, g, metric, linestyle=TRAIN_STYLE, alpha_band=BAND_ALPHA, label=label, **common):
            continue
        handles.append(ax.get_lines()[-1])
        if val:
            _draw_metric(ax, g, val, linestyle=VAL_STYLE, alpha_band=BAND_ALPHA / 2, label="_val", **common)
        marks += [(px, py, g.color) for px, py in data.divergence_points(g, metric, x)]
    if log_y:
        ax.set_yscale("log")
    if marks:
        columns = [c for c in (metric, val) if c]
        _mark_divergence(ax, marks, data.value_range(groups, columns), data.value_range(groups, columns, diverged=False),
                         log_y)
    if val:
        handles += [proxy("0.35", "training", linestyle=TRAIN_STYLE), proxy("0.35", "validation", linestyle=VAL_STYLE)]
    if marks:
        handles.append(proxy("0.35", "diverged", linestyle="none", marker="x", markersize=8, markeredgewidth=2))
    if metric.endswith("_acc"):
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(metric_name(x))
    ax.set_ylabel(metric_name(metric))
    ax.set_title(title)
    ax.set_xlim(left=0)
    place_legend(ax, handles)


def _mark_divergence(ax, marks, every, normal, log_y: bool) -> None:
    """An x at each diverged run's last point; the y axis stops just above the runs that did not diverge,
    so one exploding cost cannot flatten every other curve (its x sits on the top edge instead)."""
    top = max(py for _, py, _ in marks)
    if normal is not None and every is not None and normal[1] < top:
        lo, hi = every[0], normal[1]
        if log_y and lo > 0:
            pad = (hi / lo) ** 0.05
            lo, top = lo / pad, hi * pad
        else:
            pad = 0.05 * (hi - lo) if hi > lo else 1.0
            lo, top = lo - pad, hi + pad
        ax.set_ylim(lo, top)
    for px, py, color in marks:
        ax.plot([px], [min(py, top)], linestyle="none", marker="x", markersize=9, markeredgewidth=2.2, color=color,
                clip_on=False)


def lr_points(groups: list[data.Group], metric: str) -> dict[str, dict[float, list[tuple[float, bool]]]]:
    """optimizer name -> learning rate -> [(final metric, diverged)] over every run."""
    out: dict[str, dict[float, list[tuple[float, bool]]]] = {}
    for g in groups:
        for r in g.runs:
            lr, value = data.lr_of(r), data.final_value(r, metric)
            if lr is None or value is None:
                continue
            name = str(r.config.get("optimizer", {}).get("name", "?"))
            out.setdefault(name, {}).setdefault(lr, []).append((value, r.status == "diverged"))
    return out


def _spread(values: np.ndarray, band: str) -> tuple[float, float, float]:
    """mean, and the distances down and up of the error bar: std, or to the min and max."""
    m = float(values.mean())
    if band == "minmax":
        return m, m - float(values.min()), float(values.max()) - m
    return m, float(values.std()), float(values.std())


def draw_lr(ax, points: dict[str, dict[float, list[tuple[float, bool]]]], *, metric: str, band: str, log_y: bool,
            title: str) -> None:
    """Final metric against lr (log x), one line per optimizer, error bars over seeds.

    A diverged run's final value means nothing (it is wherever the blow-up was caught), so diverged seeds are
    left out of the mean and shown as an x on the bad edge of the axes: the top for costs, the bottom for accuracy.
    """
    colors = data.color_map(list(points))
    handles, edge = [], 0.0 if metric.endswith("_acc") else 1.0
    any_diverged = False
    for name in sorted(points):
        lrs = sorted(points[name])
        rows = [(lr, *_spread(np.array(ok), band)) for lr in lrs if (ok := [v for v, d in points[name][lr] if not d])]
        if rows:
            x, mean, down, up = map(np.array, zip(*rows))
            handles.append(ax.errorbar(x, mean, yerr=[down, up], color=colors[name], marker="o", markersize=5,
                                       linewidth=1.8, capsize=3, label=name))
        bad = [lr for lr in lrs if any(d for _, d in points[name][lr])]
        if bad:
            any_diverged = True
            ax.plot(bad, [edge] * len(bad), transform=ax.get_xaxis_transform(), linestyle="none", marker="x",
                    markersize=11, markeredgewidth=2.2, color=colors[name], clip_on=False)
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
    ax.set_xlabel("learning rate (optimizer.lr)")
    ax.set_ylabel(f"final {metric_name(metric)} (mean, {'min–max' if band == 'minmax' else '± std'} over seeds)")
    ax.set_title(title)
    place_legend(ax, handles, title="optimizer", outside=True)
