"""The options of one `optbench plot` figure: plain data, shared by the entry point (optbench.plot) and the figures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """What to draw: the figure kind and the curve options (ignored by kinds that do not use them)."""

    kind: str = "curves"
    metric: str = "train_cost"
    x: str = "epoch"
    log_y: bool | None = None  # None: log for the costs of 2-D test functions and regression, else linear
    seeds: bool = False
    band: str = "std"
    keys: str = ""  # heatmap: "X,Y", two config key paths (default: the two keys a sweep varied)
    top: int | None = None  # the K best labels (in a sweep: trials per variant, beside its default)
    labels: str = ""  # glob(s) on labels, comma-separated
