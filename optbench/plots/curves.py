"""Metric-against-time figures (cost, accuracy), drawn into given Axes (learning-rate sensitivity: sensitivity.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.ticker import PercentFormatter

from optbench.plots import data
from optbench.plots.choose import OTHERS_COLOR
from optbench.plots.record import Record
from optbench.plots.style import TRAIN_STYLE, VAL_STYLE, metric_name, place_legend, proxy

BAND_ALPHA = 0.18
SEED_ALPHA = 0.3
MARKERS = ("o", "s", "^", "D", "v", "P")  # for a curve that lies on top of an earlier one
N_MARKS = 12  # markers per overlapping curve, staggered between curves so both stay visible
BAND_MAX = 6  # more named labels than this: no seed bands (they would cover each other); the legend says so
OVERLAP = 0.012  # median distance below this share of the axis span: two curves look like one
BOUNDED_BELOW = ("train_cost", "val_cost", "grad_norm", "update_ratio", "lr", "seconds", "step", "epoch")


def bounds(metric: str) -> tuple[float, float]:
    """The values a metric can take: accuracies [0, 1], costs and norms >= 0, anything else unbounded."""
    if metric.endswith("_acc"):
        return 0.0, 1.0
    return (0.0, math.inf) if metric in BOUNDED_BELOW else (-math.inf, math.inf)


def problem_floor(group: data.Group) -> float | None:
    """f* of the 2-D test function a group's runs minimize (None for nets, or a function without minimum)."""
    from optbench.problems import PROBLEMS

    if data.task(group) != "problem":
        return None
    sec = group.runs[0].config["data"]
    options = {k: v for k, v in sec.items() if k in PROBLEMS.params(sec["name"])}
    pr = PROBLEMS.build(sec["name"], options)
    return None if pr.minimum is None else float(pr.f(np.array(pr.minimum, dtype=float)))


def companion(metric: str, groups: list[data.Group]) -> str | None:
    """train_cost -> val_cost (train_acc -> val_acc) when a validation split was measured, else None."""
    if not metric.startswith("train_"):
        return None
    val = "val_" + metric[len("train_"):]
    return val if data.has_values(groups, val) else None


def _clip(curve: data.Curve, shift: float, lim: tuple[float, float]) -> data.Curve:
    """The curve minus `shift` (f - f*), its band inside the metric's bounds."""
    lo, hi = np.clip(curve.lo - shift, *lim), np.clip(curve.hi - shift, *lim)
    return data.Curve(curve.x, curve.mean - shift, lo, hi)


def _overlaps(a: data.Curve, b: data.Curve, span: float, log_y: bool) -> bool:
    """Whether b would hide under a: their median vertical distance is a tiny share of the axis span."""
    t = (lambda y: np.log10(np.maximum(y, 1e-300))) if log_y else (lambda y: y)
    if len(a.x) < 2 or len(b.x) < 2 or span <= 0:
        return False
    d = np.abs(t(b.mean) - t(np.interp(b.x, a.x, a.mean)))
    return bool(np.median(d[np.isfinite(d)]) < OVERLAP * span) if np.isfinite(d).any() else False


def overlap_marks(curves: list[data.Curve | None], log_y: bool, dashes: bool = False) -> list[dict]:
    """Per curve, extra line options: none, or a marker (staggered) when it lies on top of an earlier curve,
    and with `dashes` (nothing else uses line styles) a dashed line, so the curve below shows through."""
    t = (lambda y: np.log10(y[y > 0])) if log_y else (lambda y: y[np.isfinite(y)])
    values = [t(c.mean) for c in curves if c is not None]
    values = [v for v in values if v.size]
    span = float(np.ptp(np.concatenate(values))) if values else 0.0
    out, rank = [], 0
    for i, c in enumerate(curves):
        under = c is not None and any(p is not None and _overlaps(p, c, span, log_y) for p in curves[:i])
        if not under:
            out.append({})
            continue
        step = max(len(c.x) // N_MARKS, 1)
        more = dict(marker=MARKERS[rank % len(MARKERS)], markersize=6, markevery=(step * (rank + 1) // 3 % step, step),
                    markerfacecolor="white", markeredgewidth=1.5)
        out.append(more | ({"linestyle": (0, (5, 3))} if dashes else {}))
        rank += 1
    return out


@dataclass(frozen=True)
class _Panel:
    """What every label's lines share in one draw_curves call: the Axes, what is drawn, where it is recorded."""

    ax: Any
    metric: str
    val: str | None  # the validation twin of `metric`, when measured
    x: str
    band: str
    seeds: bool
    rec: Record | None
    panel: str

    def add(self, label: str, series: str, x, y, lo=None, hi=None) -> None:
        """Record a drawn series for `plot --data` (when a Record is given)."""
        _add(self.rec, self.panel, label, series, x, y, lo, hi)


def draw_curves(ax, groups: list[data.Group], *, metric: str, x: str, band: str, seeds: bool, log_y: bool,
                title: str, lr_in_legend: bool, others: frozenset = frozenset(), rec: Record | None = None,
                panel: str = "", legend: bool = True) -> None:
    """Mean over seeds per label with a band; the validation twin dashed in the same colour; x where a run diverged.

    2-D test functions are drawn as f - f* (their cost minus the function's minimum). A label in `others`
    is a thin grey line without band or twin, counted in one legend entry. A curve on top of an earlier one
    gets markers, so two coinciding labels (GD and EMA momentum in the course) both show.
    """
    p = _Panel(ax, metric, companion(metric, groups), x, band, seeds, rec, panel)
    shift, lim, shifted = _shifts(groups, metric)
    main = [data.aggregate(g.runs, metric, x, band) for g in groups]
    main = [None if c is None else _clip(c, shift[g.label], lim) for g, c in zip(groups, main)]
    named = [g for g in groups if g.label not in others]
    extra = overlap_marks([c if g.label not in others else None for g, c in zip(groups, main)], log_y, dashes=not p.val)
    handles, marks, n_named = [], [], max(len(named) - 1, 1)
    show_bands = len(named) <= BAND_MAX
    k = 0
    for g, curve, more in zip(groups, main, extra):
        if curve is None:
            continue
        faint = g.label in others
        label = f"{g.name} (lr {data.group_lr(g)})" if lr_in_legend else g.name
        # each later line a little thinner, drawn on top: curves that coincide stay visible
        width = 0.9 if faint else 3.0 - 1.6 * k / n_named
        k += 0 if faint else 1
        banded = len(g.runs) > 1 and not faint and show_bands
        line = _draw_label(p, g, curve, more, shift=shift[g.label], width=width, faint=faint, banded=banded, label=label)
        if not faint:
            handles.append(line)
        marks += _diverged(p, g, shift[g.label])
    if log_y:
        ax.set_yscale("log")
    if marks:
        _mark_diverged(p, groups, marks, min(shift.values(), default=0.0), log_y)
    handles += _legend_notes(p, marks, others=others,
                             no_bands=not show_bands and any(len(g.runs) > 1 for g in named))
    _label_axes(p, lim, log_y, title, "f − f* (cost minus the minimum)" if shifted else metric_name(metric))
    if legend:
        place_legend(ax, handles)


def _shifts(groups: list[data.Group], metric: str) -> tuple[dict[str, float], tuple[float, float], bool]:
    """Per label the value subtracted (f* of a 2-D test function's train_cost when every label's function has a
    minimum, else 0), the bounds of what is drawn, and whether the curves are shifted."""
    floors = {g.label: problem_floor(g) for g in groups} if metric == "train_cost" else {}
    shifted = bool(floors) and all(f is not None for f in floors.values())
    lim = (0.0, math.inf) if shifted else bounds(metric)
    return {g.label: (floors[g.label] if shifted else 0.0) for g in groups}, lim, shifted


def _draw_label(p: _Panel, g: data.Group, curve: data.Curve, more: dict, *, shift: float, width: float, faint: bool,
                banded: bool, label: str):
    """One label's seeds (faintly), band and mean line, then its validation twin; returns the mean's line."""
    if p.seeds and not faint:
        _seed_lines(p, g, p.metric, TRAIN_STYLE, shift)
    if banded:
        p.ax.fill_between(curve.x, curve.lo, curve.hi, color=g.color, alpha=BAND_ALPHA, linewidth=0)
    if more:
        width = min(width, 1.6)  # a curve drawn on top of another: thin, so the one below shows on both sides
    if len(curve.x) == 1:  # a run of train.epochs: 0 is its epoch-0 point alone: a line would not show it
        more.setdefault("marker", "o")
    line, = p.ax.plot(curve.x, curve.mean, color=g.color, linestyle=more.pop("linestyle", TRAIN_STYLE), linewidth=width,
                      alpha=0.75 if faint else 1.0, label="_other" if faint else label, zorder=1.5 if faint else 2.5,
                      **more)
    p.add(g.label, p.metric, curve.x, curve.mean, *((curve.lo, curve.hi) if banded else ()))
    if p.val and not faint:
        _draw_val(p, g, more, width=width, banded=banded)
    return line


def _seed_lines(p: _Panel, g: data.Group, metric: str, style: str, shift: float | None) -> None:
    """Every seed's curve of `metric` (minus `shift`), thin and faint."""
    for r in g.runs:
        xs, ys = data.seed_curve(r, metric, p.x)
        if shift is not None:
            ys = ys - shift
        p.ax.plot(xs, ys, color=g.color, linestyle=style, linewidth=0.8, alpha=SEED_ALPHA)
        p.add(g.label, f"{metric} seed {r.seed}", xs, ys)


def _draw_val(p: _Panel, g: data.Group, more: dict, *, width: float, banded: bool) -> None:
    """The validation twin of a label's curve: dashed, as wide as its training line, half as dark a band."""
    if p.seeds:
        _seed_lines(p, g, p.val, VAL_STYLE, None)
    vc = data.aggregate(g.runs, p.val, p.x, p.band)
    if vc is None:
        return
    vc = _clip(vc, 0.0, bounds(p.val))
    if banded:
        p.ax.fill_between(vc.x, vc.lo, vc.hi, color=g.color, alpha=BAND_ALPHA / 2, linewidth=0)
    p.ax.plot(vc.x, vc.mean, color=g.color, linestyle=VAL_STYLE, linewidth=width, label="_val", zorder=2.5, **more)
    p.add(g.label, p.val, vc.x, vc.mean, *((vc.lo, vc.hi) if banded else ()))


def _diverged(p: _Panel, g: data.Group, shift: float) -> list[tuple[float, float, str]]:
    """(x, y, colour) of the last point of each of a label's diverged runs, recorded."""
    points = [(px, py - shift, g.color) for px, py in data.divergence_points(g, p.metric, p.x)]
    if points:
        p.add(g.label, "diverged", [q[0] for q in points], [q[1] for q in points])
    return points


def _mark_diverged(p: _Panel, groups: list[data.Group], marks: list, low: float, log_y: bool) -> None:
    """_mark_divergence with the value ranges of what is drawn, moved down by the lowest shift."""
    columns = [c for c in (p.metric, p.val) if c]
    every, normal = data.value_range(groups, columns), data.value_range(groups, columns, diverged=False)
    _mark_divergence(p.ax, marks, every and (every[0] - low, every[1] - low),
                     normal and (normal[0] - low, normal[1] - low), log_y)


def _legend_notes(p: _Panel, marks: list, *, others: frozenset, no_bands: bool) -> list:
    """The legend entries after the labels: the grey others, no seed bands, training/validation, diverged."""
    notes = []
    if others:
        notes.append(proxy(OTHERS_COLOR, f"{len(others)} others", linewidth=1.2))
    if no_bands:
        notes.append(proxy("none", f"(no seed bands with > {BAND_MAX} labels)"))
    if p.val:
        notes += [proxy("0.35", "training", linestyle=TRAIN_STYLE), proxy("0.35", "validation", linestyle=VAL_STYLE)]
    if marks:
        notes.append(proxy("0.35", "diverged", linestyle="none", marker="x", markersize=8, markeredgewidth=2))
    return notes


def _label_axes(p: _Panel, lim: tuple[float, float], log_y: bool, title: str, ylabel: str) -> None:
    """Percent ticks for accuracies, the y range inside the metric's bounds, labels and title, x from 0."""
    if p.metric.endswith("_acc"):
        p.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    keep_in_bounds(p.ax, lim, log_y)
    p.ax.set_xlabel(metric_name(p.x))
    p.ax.set_ylabel(ylabel)
    p.ax.set_title(title)
    p.ax.set_xlim(left=0)


def keep_in_bounds(ax, lim: tuple[float, float], log_y: bool) -> None:
    """A linear axis does not extend past what the metric can take (no room below a zero cost)."""
    if log_y:
        return
    lo, hi = ax.get_ylim()
    if math.isfinite(lim[0]) and lo < lim[0] <= hi:
        lo = lim[0]
    if math.isfinite(lim[1]) and hi > lim[1] + 0.02 * (lim[1] - lo) and lo < lim[1]:
        hi = lim[1] + 0.02 * (lim[1] - lo)  # a little room so a line at 100% is not cut by the frame
    ax.set_ylim(lo, hi)


def _add(rec: Record | None, panel: str, label: str, series: str, x, y, lo=None, hi=None) -> None:
    if rec is not None:
        rec.add(panel, label, series, x, y, lo, hi)


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
