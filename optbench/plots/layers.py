"""`--kind layers`: per-layer weight and gradient distributions over the snapshot epochs, and update ratios.

For each label (first seed with snapshots) two rows, one column per dense layer: the distribution of the
layer's weights W_l (biases left out) and of its full-batch gradient dJ/dW_l recomputed at each snapshot
(optbench.landscape.RunNet.gradient), drawn as TensorBoard draws distributions: bands between the
percentiles 0-100, 7-93, 16-84, 31-69 and the median. The last column: the update ratio
|W_l(t_k+1) - W_l(t_k)| / |W_l(t_k)| between consecutive snapshots per layer (the run's own per-step ratio
of the whole net from metrics.csv beside it, and CS231n's 1e-3 per step), and the gradient norm per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from optbench.plots import layout, snapdata
from optbench.plots.record import Record
from optbench.plots.style import proxy

LABELS = 3
PERCENTILES = (0, 7, 16, 31, 50, 69, 84, 93, 100)  # TensorBoard's distribution bands
BANDS = ((0, 8, 0.15), (1, 7, 0.25), (2, 6, 0.35), (3, 5, 0.5))  # (lower index, upper index, alpha)
LAYER_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
CS231N_RATIO = 1e-3


@dataclass(frozen=True)
class LayerStats:
    """One label's per-layer statistics at its snapshot epochs (S,): percentiles (L, S, 9) of weights and
    gradients, gradient norms (L, S), update ratios (L, S-1) between consecutive snapshots."""

    shot: snapdata.Shot
    weights: np.ndarray
    grads: np.ndarray
    grad_norm: np.ndarray
    ratio: np.ndarray


def _weights(shot: snapdata.Shot, rows: np.ndarray) -> list[np.ndarray]:
    """Each dense layer's weights (S, n_out * n_in) of parameter rows (S, P), biases left out."""
    lay = shot.net.layout
    return [lay.view(rows, b)[:, :, :-1].reshape(len(rows), -1) for b in lay.blocks if b.kind == "dense"]


def stats(shot: snapdata.Shot) -> LayerStats:
    theta = shot.snaps.theta
    W = _weights(shot, theta)
    G = _weights(shot, shot.net.gradient(theta))
    pct = lambda a: np.percentile(a, PERCENTILES, axis=1).T  # noqa: E731 - (S, 9)
    ratio = [np.linalg.norm(np.diff(w, axis=0), axis=1) / np.maximum(np.linalg.norm(w[:-1], axis=1), 1e-300) for w in W]
    return LayerStats(shot, np.stack([pct(w) for w in W]), np.stack([pct(g) for g in G]),
                      np.stack([np.linalg.norm(g, axis=1) for g in G]), np.stack(ratio))


def draw_distribution(ax, epochs: np.ndarray, p: np.ndarray, color: str, rec: Record, panel: str, label: str) -> None:
    """Percentile bands p (S, 9) over the epochs, the median as a line."""
    for lo, hi, alpha in BANDS:
        ax.fill_between(epochs, p[:, lo], p[:, hi], color=color, alpha=alpha, linewidth=0)
    ax.plot(epochs, p[:, 4], color=color, linewidth=1.4)
    rec.add(panel, label, "median", epochs, p[:, 4], lo=p[:, 0], hi=p[:, 8])


def draw_ratio(ax, st: LayerStats, rec: Record) -> None:
    """Update ratio per layer between snapshots; the logged per-step ratio of the whole net; 1e-3."""
    s = st.shot
    ep = s.snaps.epoch
    steps = np.interp(ep, s.run.metrics["epoch"], s.run.metrics["step"])
    for l, r in enumerate(st.ratio, start=1):
        ax.plot(ep[1:], r, color=LAYER_COLORS[(l - 1) % len(LAYER_COLORS)], marker="o", markersize=2.5, linewidth=1.3)
        rec.add(f"{s.group.label} update ratio", s.group.label, f"W{l}", ep[1:], r)
    m = s.run.metrics
    ok = np.isfinite(m["update_ratio"]) & (m["update_ratio"] > 0)
    if ok.any():
        ax.plot(m["epoch"][ok], m["update_ratio"][ok], color="0.55", linewidth=0.9)
    ax.axhline(CS231N_RATIO, color="black", linestyle=":", linewidth=1.0)
    ax.set_yscale("log")
    gap = np.diff(steps)
    ax.set_title(f"update ratio |ΔW| / |W|\nbetween snapshots ({_gap(np.diff(ep))} epochs = {_gap(gap)} steps)", fontsize=9.5)
    ax.set_xlabel("epoch")


def _gap(d: np.ndarray) -> str:
    d = np.unique(np.round(d).astype(int))
    return str(d[0]) if len(d) == 1 else f"{d.min()}-{d.max()}"


def draw_grad_norm(ax, st: LayerStats, rec: Record) -> None:
    s = st.shot
    for l, g in enumerate(st.grad_norm, start=1):
        ax.plot(s.snaps.epoch, g, color=LAYER_COLORS[(l - 1) % len(LAYER_COLORS)], marker="o", markersize=2.5,
                linewidth=1.3, label=f"W{l}")
        rec.add(f"{s.group.label} gradient norm", s.group.label, f"W{l}", s.snaps.epoch, g)
    ax.set_yscale("log")
    ax.set_title("full-batch gradient norm |dJ/dW_l|", fontsize=9.5)
    ax.set_xlabel("epoch")


def _legend(fig, L: int) -> None:
    """One legend for the right-hand column: the layers' colours, the logged ratio, CS231n's rule of thumb."""
    handles = [proxy(LAYER_COLORS[l % len(LAYER_COLORS)], f"W{l + 1}", marker="o", markersize=3) for l in range(L)]
    handles += [proxy("0.55", "whole net, per step (metrics.csv update_ratio)"),
                proxy("black", "1e-3 per step (CS231n's rule of thumb)", linestyle=":")]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)


def layers_figure(view, title: str, opts, warn, rec: Record):
    shots = snapdata.load(view, "--kind layers", warn, LABELS)
    sts = [stats(s) for s in shots]
    L = max(len(st.weights) for st in sts)
    fig = Figure(figsize=layout.bounded(3.3 * (L + 1) + 0.5, 2.7 * 2 * len(sts) + 0.9), layout="constrained")
    axes = fig.subplots(2 * len(sts), L + 1, squeeze=False)
    for k, st in enumerate(sts):
        g, ep = st.shot.group, st.shot.snaps.epoch
        top, bottom = axes[2 * k], axes[2 * k + 1]
        for l in range(L):
            if l >= len(st.weights):
                top[l].set_visible(False)
                bottom[l].set_visible(False)
                continue
            draw_distribution(top[l], ep, st.weights[l], g.color, rec, f"W{l + 1}", g.label)
            draw_distribution(bottom[l], ep, st.grads[l], g.color, rec, f"dW{l + 1}", g.label)
            top[l].set_title(f"{g.name}: weights W{l + 1}", color=g.color, fontsize=9.5)
            # gradients shrink by orders of magnitude after the first epochs: symlog, linear within the typical 16-84 spread
            spread = np.median(np.abs(st.grads[l][:, [2, 6]]))
            if spread > 0:
                bottom[l].set_yscale("symlog", linthresh=float(spread))
            bottom[l].set_title(f"{g.name}: gradient dJ/dW{l + 1} (full batch, symlog)", color=g.color, fontsize=9.5)
            bottom[l].set_xlabel("epoch")
        draw_ratio(top[L], st, rec)
        draw_grad_norm(bottom[L], st, rec)
    _legend(fig, L)
    fig.suptitle(f"{title} — per-layer distributions over training (first seed; bands: percentiles "
                 f"{'/'.join(map(str, PERCENTILES))}; gradients recomputed at each snapshot)")
    return fig
