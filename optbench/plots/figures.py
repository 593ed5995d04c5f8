"""One function per figure kind: runs grouped by label in, a matplotlib Figure out (not saved)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from optbench.errors import OptbenchError
from optbench.plots import activations, curves, data, heatmap, spatial
from optbench.plots.style import MANY_ENTRIES, metric_name

if TYPE_CHECKING:
    from optbench.plot import Options

Warn = Callable[[str], None]
PANELS_PER_ROW = 4


def _figure(width: float, height: float):
    return Figure(figsize=(width, height), layout="constrained")


def _lr_title(groups) -> str:
    """'Learning rate = 0.0007' when shared (the deeplearning.ai title), else '' (the legend names each label's)."""
    lr = data.shared_lr(groups)
    return f"Learning rate = {lr}" if lr else ""


def _title(*parts: str) -> str:
    return " — ".join(p for p in parts if p)


def _curves_figure(groups, title, opts: Options, warn: Warn):
    _require_metric(groups, opts.metric)
    _warn_mixed_lr(groups, warn)
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    lr = _lr_title(groups)
    curves.draw_curves(ax, groups, metric=opts.metric, x=opts.x, band=opts.band, seeds=opts.seeds, log_y=opts.log_y,
                       title=_title(title, lr), lr_in_legend=not lr)
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
    raise OptbenchError(f"--metric {metric}: no values in these runs{hint}")


def _classification(groups):
    """The groups with accuracies; an OptbenchError when the runs are all regression or 2-D test functions."""
    ok = [g for g in groups if data.task(g) == "classification" and data.has_values([g], "train_acc")]
    if not ok:
        kinds = sorted({data.TASK_NAMES[data.task(g)] for g in groups})
        raise OptbenchError(f"--kind accuracy: needs classification runs (loss bce or softmax_ce); these are "
                            f"{', '.join(kinds)} (try --kind curves)")
    return ok


def _accuracy_figure(groups, title, opts: Options, warn: Warn):
    groups = _classification(groups)
    _warn_mixed_lr(groups, warn)
    fig = _figure(8, 5)
    lr = _lr_title(groups)
    curves.draw_curves(fig.add_subplot(), groups, metric="train_acc", x=opts.x, band=opts.band, seeds=opts.seeds,
                       log_y=opts.log_y, title=_title(title, "accuracy", lr), lr_in_legend=not lr)
    return fig


def _lr_figure(groups, title, opts: Options, warn: Warn):
    _require_metric(groups, opts.metric)
    points = curves.lr_points(groups, opts.metric)
    if not any(len(per) > 1 for per in points.values()):
        found = ", ".join(f"{name} {data.lr_text(set(per))}" for name, per in sorted(points.items()))
        raise OptbenchError(f"--kind lr: needs runs of one optimizer at several learning rates; found one lr per "
                            f"optimizer ({found or 'none'}): train again with --set optimizer.lr=VALUE, or use lr variants")
    fig = _figure(9.5, 5)
    curves.draw_lr(fig.add_subplot(), points, metric=opts.metric, band=opts.band, log_y=opts.log_y,
                   title=_title(title, "learning-rate sensitivity"))
    return fig


def _panels(fig, n: int):
    """n axes in a (sub)figure, PANELS_PER_ROW to a row; the unused ones hidden."""
    cols = min(n, PANELS_PER_ROW)
    axes = fig.subplots(math.ceil(n / cols), cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _grid(fig, n: int, size: tuple[float, float]):
    """n panels of `size` inches, the figure resized to fit them."""
    cols = min(n, PANELS_PER_ROW)
    fig.set_size_inches(max(size[0] * cols, 5), size[1] * math.ceil(n / cols))
    return _panels(fig, n)


def _boundary_figure(groups, title, opts: Options, warn: Warn):
    regs = [r for g in spatial.boundary_groups(groups) if (r := spatial.regions(g, warn)) is not None]
    if not regs:
        raise OptbenchError("--kind boundary: no run with params.npz to rebuild a net from")
    fig = _figure(4, 4)
    for ax, reg in zip(_grid(fig, len(regs), (4.0, 4.0)), regs):
        spatial.draw_boundary(ax, reg)
    fig.suptitle(_title(title, "decision boundaries", _lr_title(groups)))
    return fig


def _activations_figure(groups, title, opts: Options, warn: Warn):
    acts = activations.load(groups, warn)
    cols = max(len(a.layers) for a in acts)
    fig = _figure(2.9 * cols + 1.5, 2.3 * len(acts) + 0.8)
    axes = fig.subplots(len(acts), cols, squeeze=False)
    for row, a in zip(axes, acts):
        rng = activations.row_range(a)
        for ax, (layer, (init, final)) in zip(row, a.layers.items()):
            activations.draw_layer(ax, init, final, color=a.group.color, rng=rng, layer=layer)
        for ax in row[len(a.layers):]:
            ax.set_visible(False)
        row[0].set_ylabel(f"{a.group.name}\nseed {a.seed}", color=a.group.color, fontsize=10)
    fig.legend(handles=[Patch(color=activations.INIT_COLOR, alpha=0.55, label="at initialization"),
                        Patch(color="0.3", alpha=0.55, label="after training (the label's colour)")],
               loc="outside lower center", ncols=2, frameon=False)
    fig.suptitle(_title(title, "hidden activations (first seed of each label)"))
    return fig


def _trajectory_figure(groups, title, opts: Options, warn: Warn):
    sets = spatial.trajectory_sets(groups, seeds=opts.seeds, warn=warn)
    lr = _lr_title(groups)
    fig = _figure(6, 5)
    x0, x1, y0, y1 = sets[0].problem.bounds
    height = min(max(5.6 * (y1 - y0) / (x1 - x0), 2.0), 6.5) + 1.4  # the panels keep the plane's aspect
    width = 8.5 if len(groups) + 2 > MANY_ENTRIES else 6.8  # room for a legend beside the plane
    for ax, paths in zip(_grid(fig, len(sets), (width, height)), sets):
        spatial.draw_trajectory(ax, paths, lr_in_legend=not lr)
        ax.set_title(paths.title)
    fig.suptitle(_title(title, "optimizer paths", lr))
    return fig


def _dashboard_figure(groups, title, opts: Options, warn: Warn):
    """Cost curves, accuracy and the decision regions (or paths) together; panels that do not apply are left out.

    Up to three panels share one row; more put the curves on top and the pictures in rows below.
    """
    _require_metric(groups, opts.metric)
    lr = _lr_title(groups)
    common = dict(x=opts.x, band=opts.band, seeds=opts.seeds, lr_in_legend=not lr)
    top = [lambda ax: curves.draw_curves(ax, groups, metric=opts.metric, log_y=opts.log_y,
                                         title=metric_name(opts.metric), **common)]
    classified = _quiet(_classification, groups)
    if classified:
        top.append(lambda ax: curves.draw_curves(ax, classified, metric="train_acc", log_y=False, title="accuracy",
                                                 **common))
    below = _dashboard_below(groups, opts, warn)
    if len(top) + len(below) <= 3:
        fig = _figure(5.4 * (len(top) + len(below)), 4.8)
        rows = [(fig, top + below)]
    else:
        n_rows = math.ceil(len(below) / PANELS_PER_ROW)
        fig = _figure(max(3.8 * min(len(below), PANELS_PER_ROW), 11), 4.6 + 3.9 * n_rows)
        subs = fig.subfigures(2, 1, height_ratios=[4.6, 3.9 * n_rows])
        rows = [(subs[0], top), (subs[1], below)]
    for sub, draws in rows:
        for ax, draw in zip(_panels(sub, len(draws)), draws):
            draw(ax)
    fig.suptitle(_title(title, lr))
    return fig


def _quiet(fn, *args):
    """fn(*args), or None when it says (OptbenchError) that its panel does not apply."""
    try:
        return fn(*args)
    except OptbenchError:
        return None


def _dashboard_below(groups, opts: Options, warn: Warn) -> list:
    """Drawing functions (ax -> None) for the picture panels: decision regions per label, or paths per 2-D function."""
    lr = _lr_title(groups)
    below = []
    for g in _quiet(spatial.boundary_groups, groups) or []:
        reg = spatial.regions(g, warn)
        if reg is not None:
            below.append(lambda ax, reg=reg: spatial.draw_boundary(ax, reg))
    for paths in _quiet(lambda: spatial.trajectory_sets(groups, seeds=opts.seeds, warn=warn)) or []:
        def draw(ax, p=paths):
            spatial.draw_trajectory(ax, p, lr_in_legend=not lr)
            ax.set_title(p.title)

        below.append(draw)
    return below


FIGURES = {
    "curves": _curves_figure,
    "accuracy": _accuracy_figure,
    "lr": _lr_figure,
    "boundary": _boundary_figure,
    "activations": _activations_figure,
    "trajectory": _trajectory_figure,
    "dashboard": _dashboard_figure,
    "heatmap": heatmap.heatmap_figure,
}
