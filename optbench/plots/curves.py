"""Metric-against-time figures (cost, accuracy) and learning-rate sensitivity, drawn into given Axes."""

from __future__ import annotations

import math

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


def draw_curves(ax, groups: list[data.Group], *, metric: str, x: str, band: str, seeds: bool, log_y: bool,
                title: str, lr_in_legend: bool, others: frozenset = frozenset(), rec: Record | None = None,
                panel: str = "", legend: bool = True) -> None:
    """Mean over seeds per label with a band; the validation twin dashed in the same colour; x where a run diverged.

    2-D test functions are drawn as f - f* (their cost minus the function's minimum). A label in `others`
    is a thin grey line without band or twin, counted in one legend entry. A curve on top of an earlier one
    gets markers, so two coinciding labels (GD and EMA momentum in the course) both show.
    """
    val = companion(metric, groups)
    floors = {g.label: problem_floor(g) for g in groups} if metric == "train_cost" else {}
    shifted = bool(floors) and all(f is not None for f in floors.values())
    lim = (0.0, math.inf) if shifted else bounds(metric)
    shift = {g.label: (floors[g.label] if shifted else 0.0) for g in groups}
    main = [data.aggregate(g.runs, metric, x, band) for g in groups]
    main = [None if c is None else _clip(c, shift[g.label], lim) for g, c in zip(groups, main)]
    named = [g for g in groups if g.label not in others]
    extra = overlap_marks([c if g.label not in others else None for g, c in zip(groups, main)], log_y, dashes=not val)
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
        if seeds and not faint:
            for r in g.runs:
                xs, ys = data.seed_curve(r, metric, x)
                ax.plot(xs, ys - shift[g.label], color=g.color, linestyle=TRAIN_STYLE, linewidth=0.8, alpha=SEED_ALPHA)
                _add(rec, panel, g.label, f"{metric} seed {r.seed}", xs, ys - shift[g.label])
        banded = len(g.runs) > 1 and not faint and show_bands
        if banded:
            ax.fill_between(curve.x, curve.lo, curve.hi, color=g.color, alpha=BAND_ALPHA, linewidth=0)
        if more:
            width = min(width, 1.6)  # a curve drawn on top of another: thin, so the one below shows on both sides
        if len(curve.x) == 1:  # a run of train.epochs: 0 is its epoch-0 point alone: a line would not show it
            more.setdefault("marker", "o")
        line, = ax.plot(curve.x, curve.mean, color=g.color, linestyle=more.pop("linestyle", TRAIN_STYLE), linewidth=width,
                        alpha=0.75 if faint else 1.0, label="_other" if faint else label, zorder=1.5 if faint else 2.5,
                        **more)
        _add(rec, panel, g.label, metric, curve.x, curve.mean, *((curve.lo, curve.hi) if banded else ()))
        if not faint:
            handles.append(line)
        if val and not faint:
            if seeds:
                for r in g.runs:
                    xs, ys = data.seed_curve(r, val, x)
                    ax.plot(xs, ys, color=g.color, linestyle=VAL_STYLE, linewidth=0.8, alpha=SEED_ALPHA)
                    _add(rec, panel, g.label, f"{val} seed {r.seed}", xs, ys)
            vc = data.aggregate(g.runs, val, x, band)
            if vc is not None:
                vc = _clip(vc, 0.0, bounds(val))
                if banded:
                    ax.fill_between(vc.x, vc.lo, vc.hi, color=g.color, alpha=BAND_ALPHA / 2, linewidth=0)
                ax.plot(vc.x, vc.mean, color=g.color, linestyle=VAL_STYLE, linewidth=width, label="_val", zorder=2.5,
                        **more)
                _add(rec, panel, g.label, val, vc.x, vc.mean, *((vc.lo, vc.hi) if banded else ()))
        points = [(px, py - shift[g.label], g.color) for px, py in data.divergence_points(g, metric, x)]
        marks += points
        if points:
            _add(rec, panel, g.label, "diverged", [p[0] for p in points], [p[1] for p in points])
    if log_y:
        ax.set_yscale("log")
    if marks:
        columns = [c for c in (metric, val) if c]
        every, normal = data.value_range(groups, columns), data.value_range(groups, columns, diverged=False)
        low = min(shift.values(), default=0.0)
        _mark_divergence(ax, marks, every and (every[0] - low, every[1] - low),
                         normal and (normal[0] - low, normal[1] - low), log_y)
    if others:
        handles.append(proxy(OTHERS_COLOR, f"{len(others)} others", linewidth=1.2))
    if not show_bands and any(len(g.runs) > 1 for g in named):
        handles.append(proxy("none", f"(no seed bands with > {BAND_MAX} labels)"))
    if val:
        handles += [proxy("0.35", "training", linestyle=TRAIN_STYLE), proxy("0.35", "validation", linestyle=VAL_STYLE)]
    if marks:
        handles.append(proxy("0.35", "diverged", linestyle="none", marker="x", markersize=8, markeredgewidth=2))
    if metric.endswith("_acc"):
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    _keep_in_bounds(ax, lim, log_y)
    ax.set_xlabel(metric_name(x))
    ax.set_ylabel("f − f* (cost minus the minimum)" if shifted else metric_name(metric))
    ax.set_title(title)
    ax.set_xlim(left=0)
    if legend:
        place_legend(ax, handles)


def _keep_in_bounds(ax, lim: tuple[float, float], log_y: bool) -> None:
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


# ---- learning-rate sensitivity ---------------------------------------------------------------------------


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
    _keep_in_bounds(ax, lim, log_y)
    ax.set_xlabel("learning rate (optimizer.lr)")
    ax.set_ylabel(f"final {metric_name(metric)} (mean, {'min–max' if band == 'minmax' else '± std'} over seeds)")
    ax.set_title(title)
    place_legend(ax, handles[:14], title="optimizer", outside=True)
