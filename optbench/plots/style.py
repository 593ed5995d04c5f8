"""Shared look: matplotlib settings (from the default style, so a user's matplotlibrc cannot change the image),
axis names, legend placement."""

from __future__ import annotations

from contextlib import contextmanager

import matplotlib.style
from matplotlib.lines import Line2D

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "optbench",  # fixed ids in SVG output: the same runs give the same file
    "svg.fonttype": "path",  # no dependency on the viewer's fonts
    "pdf.compression": 6,
}

METRIC_NAMES = {
    "epoch": "epoch",
    "step": "step (optimizer iterations)",
    "lr": "learning rate",
    "train_cost": "cost",
    "val_cost": "validation cost",
    "train_acc": "accuracy",
    "val_acc": "validation accuracy",
    "grad_norm": "gradient norm",
    "update_ratio": "update / weight norm",
    "sharpness": "sharpness (top Hessian eigenvalue)",
    "seconds": "seconds (wall clock)",
    # a sweep's selection metrics (sweep.metric), per trial
    "best_cost": "best cost (validation when split)",
    "final_train_cost": "final training cost",
    "best_acc": "best accuracy (validation when split)",
    "auc": "area under the cost curve",
}

TRAIN_STYLE = "-"
VAL_STYLE = "--"
MANY_ENTRIES = 6  # more legend entries than this go beside the axes, where they cannot hide a curve


@contextmanager
def style():
    """Matplotlib's default style plus ours, only for the duration of drawing and saving."""
    with matplotlib.style.context(["default", RC]):
        yield


def metric_name(column: str) -> str:
    return METRIC_NAMES.get(column, column)


def place_legend(ax, handles=None, *, title: str | None = None, outside: bool = False) -> None:
    """Inside at the best spot when short; outside on the right when long (or asked)."""
    handles = handles if handles is not None else ax.get_legend_handles_labels()[0]
    if not handles:
        return
    if outside or len(handles) > MANY_ENTRIES:
        ax.legend(handles=handles, title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        ax.legend(handles=handles, title=title, loc="best", framealpha=0.85)


def proxy(color: str, label: str, **kw) -> Line2D:
    """A legend entry not tied to a drawn artist (line styles, markers)."""
    return Line2D([], [], color=color, label=label, **kw)
