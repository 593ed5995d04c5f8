"""Per-layer histograms of hidden activations at initialization and after training (the CS231n init figure)."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

from optbench.errors import OptbenchError
from optbench.plots import data

BINS = 50
INIT_COLOR = "0.55"
_KEY = re.compile(r"(init|final)_layer(\d+)$")


@dataclass(frozen=True)
class Activations:
    """One label's hidden activations, from its first seed: layer -> (at init, at the end), flattened."""

    group: data.Group
    seed: int
    layers: dict[int, tuple[np.ndarray, np.ndarray]]


def load(groups: list[data.Group], warn: Callable[[str], None]) -> list[Activations]:
    """activations.npz of each label's first seed that has one; an OptbenchError when no run has any."""
    out, missing = [], []
    for g in groups:
        run = data.first_with(g, "activations.npz")
        if run is None:
            missing.append(g.label)
            continue
        try:
            with np.load(run.path / "activations.npz", allow_pickle=False) as f:
                arrays = {k: np.asarray(f[k], dtype=float).ravel() for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            warn(f"warning: {run.path}: unreadable activations.npz ({err.__class__.__name__})")
            continue
        layers = {}
        for k in arrays:
            m = _KEY.match(k)
            if m and m.group(1) == "init" and f"final_layer{m.group(2)}" in arrays:
                layers[int(m.group(2))] = (arrays[k], arrays[f"final_layer{m.group(2)}"])
        if layers:
            out.append(Activations(g, run.seed, dict(sorted(layers.items()))))
    if not out:
        why = "2-D test functions have no net" if all(data.task(g) == "problem" for g in groups) else \
            "a net without hidden layers has none"
        raise OptbenchError(f"--kind activations: no run has activations.npz with hidden layers ({why})")
    for label in missing:
        warn(f"warning: {label}: no run with activations.npz; left out")
    return out


def row_range(acts: Activations) -> tuple[float, float]:
    """One x range for a whole row, so a layer whose activations shrank shows as a spike at zero, as in CS231n.

    Percentiles, not min/max, so that a few large activations cannot squash every histogram; but the extremes
    when they are close (a bounded activation such as tanh piles up at +-1, which is worth seeing).
    """
    values = np.concatenate([a[np.isfinite(a)] for pair in acts.layers.values() for a in pair])
    if values.size == 0:
        return -1.0, 1.0
    lo, hi = np.percentile(values, [0.1, 99.9])
    vmin, vmax = values.min(), values.max()
    slack = 0.25 * (hi - lo)
    lo, hi = (vmin if lo - vmin <= slack else lo), (vmax if vmax - hi <= slack else hi)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        return lo - 1.0, hi + 1.0
    return float(lo), float(hi)


def _stats(a: np.ndarray) -> str:
    """Mean and std of all values; the share of exact zeros (ReLU's inactive units) when there are any."""
    if a.size == 0:
        return "no values"
    zeros = np.mean(a == 0)
    text = f"μ {a.mean():.2g}  σ {a.std():.2g}"
    return f"{text}  ({zeros:.0%} zero)" if zeros >= 0.005 else text


def draw_layer(ax, init: np.ndarray, final: np.ndarray, *, color: str, rng: tuple[float, float], layer: int,
               rec=None, label: str = "") -> None:
    """Init and final histograms overlaid (final in the label's colour); mean and std of both in the title.

    Exact zeros are left out of the bars (counted in the title): ReLU's inactive half would dwarf the rest.
    Recorded: one row per bin (x its centre, lo and hi its edges, y its count).
    """
    bins = np.linspace(*rng, BINS + 1)
    init, final = init[np.isfinite(init)], final[np.isfinite(final)]
    for values, c, name in ((init, INIT_COLOR, "init"), (final, color, "final")):
        counts, _ = np.histogram(values[values != 0], bins=bins)
        ax.stairs(counts, bins, fill=True, color=c, alpha=0.55)  # one polygon: far faster than 50 bar patches
        if rec is not None:
            rec.add(f"{label} layer {layer}", label, name, (bins[:-1] + bins[1:]) / 2, counts, bins[:-1], bins[1:])
    ax.set_title(f"layer {layer}\ninit {_stats(init)}\nfinal {_stats(final)}", fontsize=8.5)
    ax.set_xlim(*rng)
    ax.tick_params(labelsize=7.5)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    ax.set_yticks([])  # counts mean little; the shape and the x scale carry the message
    ax.grid(False)
