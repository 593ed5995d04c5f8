"""One function per figure kind: the chosen labels (a View) in, a matplotlib Figure out (not saved).

Every function also appends what it draws to a Record (`plot --data`). Sizes go through `layout`, so no
figure exceeds layout.MAX_PX on a side whatever the number of runs.
"""

from __future__ import annotations

from typing import Callable

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from optbench.errors import OptbenchError
from optbench.plots import activations, choose, curves, data, fit, heatmap, layout, sensitivity, spatial
from optbench.plots.choose import View
from optbench.plots.options import Options
from optbench.plots.record import Record
from optbench.plots.style import MANY_ENTRIES, metric_name, place_legend

Warn = Callable[[str], None]
PANELS_PER_ROW = 4
ACT_ROWS = 6  # activations: one row per label, at most this many (the best)
COST = ("train_cost", "val_cost")


def _figure(width: float, height: float):
    return Figure(figsize=layout.bounded(width, height), layout="constrained")


def _lr_title(groups) -> str:
    """'Learning rate = 0.0007' when shared (the deeplearning.ai title), else '' (the legend names each label's)."""
    lr = data.shared_lr(groups)
    return f"Learning rate = {lr}" if lr else ""


def _title(*parts: str) -> str:
    return " — ".join(p for p in parts if p)


def log_y(opts: Options, groups, metric: str) -> bool:
    """--log-y / --linear-y as given; by default log for costs of 2-D test functions (f - f*) and regression,
    whose costs fall by orders of magnitude (a linear axis shows them flat after the first epochs)."""
    if opts.log_y is not None:
        return opts.log_y
    return metric in COST and bool(groups) and all(data.task(g) in ("problem", "regression") for g in groups)


def _legend_lr(view: View) -> bool:
    """Name each label's lr in its legend entry when the lr is not shared (sweep names already carry it)."""
    return not _lr_title(view.groups) and not any(choose.sweep_tag(g) for g in view.groups)


def _curves_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    groups = view.groups
    _require_metric(groups, opts.metric)
    _warn_mixed_lr(groups, warn)
    fig = _figure(9 if len(view.named()) + 3 > MANY_ENTRIES else 8, 5)
    curves.draw_curves(fig.add_subplot(), groups, metric=opts.metric, x=opts.x, band=opts.band, seeds=opts.seeds,
                       log_y=log_y(opts, groups, opts.metric), title=_title(title, _lr_title(groups)),
                       lr_in_legend=_legend_lr(view), others=view.others, rec=rec, panel=opts.metric)
    return fig


def _warn_mixed_lr(groups, warn: Warn) -> None:
    """Curves average a label's seeds; say so when they were trained with different learning rates."""
    for g in groups:
        lrs = {data.lr_of(r) for r in g.runs} - {None}
        if len(lrs) > 1:
            warn(f"warning: {g.label}: averaging runs with learning rates {data.lr_text(lrs)} (see --kind lr)")


def _require_metric(groups, metric: str) -> None:
    if data.has_values(groups, metric):
        return
    hint = ""
    if metric.startswith("val_"):
        hint = " (no validation split: set data.val_fraction > 0 when training)"
    elif metric.endswith("_acc"):
        hint = " (regression runs have no accuracy)"
    elif metric == "sharpness":
        hint = " (measured with train.sharpness_every: K > 0)"
    raise OptbenchError(f"--metric {metric}: no values in these runs{hint}")


def _classification(groups):
    """The groups with accuracies; an OptbenchError when the runs are all regression or 2-D test functions."""
    ok = [g for g in groups if data.task(g) == "classification" and data.has_values([g], "train_acc")]
    if not ok:
        kinds = sorted({data.TASK_NAMES[data.task(g)] for g in groups})
        raise OptbenchError(f"--kind accuracy: needs classification runs (loss bce or softmax_ce); these are "
                            f"{', '.join(kinds)} (try --kind curves)")
    return ok


def _accuracy_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    groups = _classification(view.groups)
    _warn_mixed_lr(groups, warn)
    fig = _figure(9 if len(view.named()) + 3 > MANY_ENTRIES else 8, 5)
    curves.draw_curves(fig.add_subplot(), groups, metric="train_acc", x=opts.x, band=opts.band, seeds=opts.seeds,
                       log_y=bool(opts.log_y), title=_title(title, "accuracy", _lr_title(groups)),
                       lr_in_legend=_legend_lr(view), others=view.others, rec=rec, panel="train_acc")
    return fig


def _lr_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    groups = view.pool  # every trial: the sensitivity is the point
    _require_metric(groups, opts.metric)
    points = sensitivity.lr_points(groups, opts.metric)
    if not any(len(per) > 1 for per in points.values()):
        found = ", ".join(f"{name} {data.lr_text(set(per))}" for name, per in sorted(points.items()))
        raise OptbenchError(f"--kind lr: needs runs of one optimizer at several learning rates; found one lr per "
                            f"optimizer ({found or 'none'}): train again with --set optimizer.lr=VALUE, or use lr variants")
    fig = _figure(10 if len(points) > 3 else 9.5, 5)
    sensitivity.draw_lr(fig.add_subplot(), points, metric=opts.metric, band=opts.band,
                        log_y=log_y(opts, groups, opts.metric), title=_title(title, "learning-rate sensitivity"),
                        rec=rec, panel=f"final {opts.metric}")
    return fig


def _grid(fig, n: int, size: tuple[float, float], extra: tuple[float, float] = (0.0, 0.8)):
    """n panels of `size` inches (at most PANELS_PER_ROW to a row), the figure resized to fit them, bounded."""
    rows, cols, w, h = layout.panel_grid(n, size, PANELS_PER_ROW, extra)
    fig.set_size_inches(w, h)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _boundary_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    shown = choose.best_panels(view, warn, "--kind boundary")
    regs = [r for g in spatial.boundary_groups(shown) if (r := spatial.regions(g, warn)) is not None]
    if not regs:
        raise OptbenchError("--kind boundary: no run with params.npz to rebuild a net from")
    fig = _figure(4, 4)
    for ax, reg in zip(_grid(fig, len(regs), (4.0, 4.0)), regs):
        spatial.draw_boundary(ax, reg, rec=rec)
    fig.suptitle(_title(title, "decision boundaries", _lr_title(view.groups)))
    return fig


def _activations_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    shown = choose.best_panels(view, warn, "--kind activations", ACT_ROWS)
    acts = activations.load(shown, warn)
    cols = max(len(a.layers) for a in acts)
    fig = _figure(*layout.bounded(2.9 * cols + 1.5, 2.3 * len(acts) + 0.8))
    axes = fig.subplots(len(acts), cols, squeeze=False)
    for row, a in zip(axes, acts):
        rng = activations.row_range(a)
        for ax, (layer, (init, final)) in zip(row, a.layers.items()):
            activations.draw_layer(ax, init, final, color=a.group.color, rng=rng, layer=layer, rec=rec,
                                   label=a.group.label)
        for ax in row[len(a.layers):]:
            ax.set_visible(False)
        name = a.group.name.replace(" (", "\n(", 1)  # a sweep trial's name and its values on two lines
        row[0].set_ylabel(f"{name}\nseed {a.seed}", color=a.group.color, fontsize=9.5)
    fig.legend(handles=[Patch(color=activations.INIT_COLOR, alpha=0.55, label="at initialization"),
                        Patch(color="0.3", alpha=0.55, label="after training (the label's colour)")],
               loc="outside lower center", ncols=2, frameon=False)
    fig.suptitle(_title(title, "hidden activations (first seed of each label)"))
    return fig


def _trajectory_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    groups = view.groups
    sets = spatial.trajectory_sets(groups, seeds=opts.seeds, warn=warn)
    lr = _lr_title(groups)
    fig = _figure(6, 5)
    x0, x1, y0, y1 = sets[0].problem.bounds
    height = min(max(5.6 * (y1 - y0) / (x1 - x0), 2.0), 6.5) + 1.4  # the panels keep the plane's aspect
    width = 8.5 if len(groups) + 2 > MANY_ENTRIES else 6.8  # room for a legend beside the plane
    for ax, paths in zip(_grid(fig, len(sets), (width, height)), sets):
        spatial.draw_trajectory(ax, paths, lr_in_legend=not lr, rec=rec)
        ax.set_title(paths.title)
    fig.suptitle(_title(title, "optimizer paths", lr))
    return fig


def _fit_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    fs = fit.fits(fit.fit_groups(view.groups), warn)
    fig = _figure(13, 5)
    left, right = fig.subplots(1, 2)
    fit.draw_fit(left, fs, others=view.others, rec=rec)
    fit.draw_error(right, fs, others=view.others, rec=rec)
    fig.suptitle(_title(title, "fitted functions", _lr_title(view.groups)))
    return fig


def _dashboard_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    """Cost curves, accuracy and the decision regions (or paths, or the fitted function) together; panels that
    do not apply are left out. One legend for the curve panels, beside them, where it hides no title."""
    groups = view.groups
    _require_metric(groups, opts.metric)
    lr = _lr_title(groups)
    common = dict(x=opts.x, band=opts.band, seeds=opts.seeds, lr_in_legend=_legend_lr(view), others=view.others,
                  rec=rec, legend=False)
    top = [lambda ax: curves.draw_curves(ax, groups, metric=opts.metric, log_y=log_y(opts, groups, opts.metric),
                                         title=metric_name(opts.metric), panel=opts.metric, **common)]
    classified = _quiet(_classification, groups)
    if classified:
        top.append(lambda ax: curves.draw_curves(ax, classified, metric="train_acc", log_y=False, title="accuracy",
                                                 panel="train_acc", **common))
    fitted = _quiet(lambda: fit.fits(fit.fit_groups(groups), warn))
    if fitted:
        top.append(lambda ax: fit.draw_fit(ax, fitted, others=view.others, rec=rec, legend=False))
        top.append(lambda ax: fit.draw_error(ax, fitted, others=view.others, rec=rec))
    below = _dashboard_below(view, opts, warn, rec)
    rows_below, cols_below = layout.grid_shape(len(below), PANELS_PER_ROW) if below else (0, 0)
    width = max(4.6 * len(top) + 2.6, 3.8 * cols_below, 8.0)
    heights = [4.4] + [3.6 * rows_below] * bool(below)
    fig = _figure(width, sum(heights) + 0.6)
    subs = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False).ravel()
    axes = subs[0].subplots(1, len(top), squeeze=False)[0]
    for ax, draw in zip(axes, top):
        draw(ax)
    place_legend(axes[0], _dashboard_handles(axes[0], view), outside=True)
    if below:
        rows, cols = layout.grid_shape(len(below), PANELS_PER_ROW)
        pics = subs[1].subplots(rows, cols, squeeze=False).ravel()
        for ax in pics[len(below):]:
            ax.set_visible(False)
        for ax, draw in zip(pics, below):
            draw(ax)
    fig.suptitle(_title(title, lr))
    return fig


def _dashboard_handles(ax, view: View):
    """The curve panel's legend entries (named labels, training/validation, diverged, others), as draw_curves makes them."""
    from optbench.plots.style import proxy

    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    val = any(ln.get_label() == "_val" for ln in ax.get_lines())
    handles = list(lines)
    if view.others:
        handles.append(proxy(choose.OTHERS_COLOR, f"{len(view.others)} others", linewidth=1.2))
    if val:
        handles += [proxy("0.35", "training", linestyle="-"), proxy("0.35", "validation", linestyle="--")]
    if any(ln.get_marker() == "x" for ln in ax.get_lines()):
        handles.append(proxy("0.35", "diverged", linestyle="none", marker="x", markersize=8, markeredgewidth=2))
    return handles


def _quiet(fn, *args):
    """fn(*args), or None when it says (OptbenchError) that its panel does not apply."""
    try:
        return fn(*args)
    except OptbenchError:
        return None


def _dashboard_below(view: View, opts: Options, warn: Warn, rec: Record) -> list:
    """Drawing functions (ax -> None) for the picture panels: decision regions per label, or paths per 2-D function."""
    lr = _lr_title(view.groups)
    below = []
    # the pictures of the labels named in the curves legend, in their colours
    shown = choose.best_panels(view, warn, "--kind dashboard", choose.LEGEND_MAX - 1)
    for g in _quiet(spatial.boundary_groups, shown) or []:
        reg = spatial.regions(g, warn)
        if reg is not None:
            below.append(lambda ax, reg=reg: spatial.draw_boundary(ax, reg, rec=rec))
    for paths in _quiet(lambda: spatial.trajectory_sets(view.groups, seeds=opts.seeds, warn=warn)) or []:
        def draw(ax, p=paths):
            spatial.draw_trajectory(ax, p, lr_in_legend=not lr, rec=rec)
            ax.set_title(p.title)

        below.append(draw)
    return below


def _sharpness_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    from optbench.plots import sharpness

    groups = view.groups
    _warn_mixed_lr(groups, warn)
    fig = _figure(9 if len(view.named()) + 3 > MANY_ENTRIES else 8, 5)
    sharpness.draw_sharpness(fig.add_subplot(), groups, x=opts.x, band=opts.band, seeds=opts.seeds,
                             log_y=True if opts.log_y is None else opts.log_y,
                             title=_title(title, "sharpness", _lr_title(groups)), lr_in_legend=_legend_lr(view),
                             others=view.others, rec=rec)
    return fig


def _heatmap_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    return heatmap.heatmap_figure(view, title, opts, warn, rec)


def _landscape_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    from optbench.plots import landscape

    return landscape.landscape_figure(view, title, opts, warn, rec)


def _film_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    from optbench.plots import film

    return film.strip_figure(view, title, opts, warn, rec)


def _layers_figure(view: View, title, opts: Options, warn: Warn, rec: Record):
    from optbench.plots import layers

    return layers.layers_figure(view, title, opts, warn, rec)


FIGURES = {
    "curves": _curves_figure,
    "accuracy": _accuracy_figure,
    "lr": _lr_figure,
    "boundary": _boundary_figure,
    "activations": _activations_figure,
    "trajectory": _trajectory_figure,
    "dashboard": _dashboard_figure,
    "heatmap": _heatmap_figure,
    "fit": _fit_figure,
    "landscape": _landscape_figure,
    "film": _film_figure,
    "layers": _layers_figure,
    "sharpness": _sharpness_figure,
}
