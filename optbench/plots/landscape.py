"""`--kind landscape`: the training cost along lines and planes through each label's parameters.

Top: the line from the initialization to the final weights (Goodfellow et al. 2015) for every label, and
the lines between two labels' final weights. Below, per label (first seed with snapshots): a slice along two
filter-normalized random directions around the final weights (Li et al. 2018), and the plane of the two
principal directions of the snapshot path with that path projected on it. Costs come from the engine's forward
on the run's training data (optbench.landscape); nothing trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from matplotlib.figure import Figure

from optbench import landscape as ls
from optbench.plots import layout, snapdata
from optbench.plots.record import Record
from optbench.plots.style import place_legend, proxy

ROWS = 3  # labels drawn below (a row of two panels each), the best first
STYLES = ("-", "--", "-.", ":")
PAIRS = 6  # lines between labels' solutions, at most
GRID = 31  # points per side of a plane
SPAN = 1.0  # the random slice covers [-SPAN, SPAN] x [-SPAN, SPAN] in units of the normalized directions
MARGIN = 0.25  # of the path's extent around it in the PCA plane
DIRECTION_SEED = 0  # the random directions' generator: np.random.default_rng(DIRECTION_SEED), afresh per label


@dataclass(frozen=True)
class Surface:
    """Costs J (GRID, GRID) over xs x ys in a plane, with the path's coordinates when it is a PCA plane."""

    xs: np.ndarray
    ys: np.ndarray
    J: np.ndarray
    path: np.ndarray | None = None
    explained: np.ndarray | None = None


def line_to_final(shot: snapdata.Shot, alpha: np.ndarray) -> np.ndarray:
    """J along theta(alpha) = (1 - alpha) theta_0 + alpha theta_final, batch-norm statistics interpolated alike."""
    s = shot.snaps
    bufs = {k: ls.interpolate(v[0], v[-1], alpha) for k, v in s.buffers.items()}
    return shot.net.cost(ls.interpolate(s.theta[0], s.theta[-1], alpha), bufs or None)


def comparable(a: snapdata.Shot, b: snapdata.Shot) -> bool:
    """Whether two labels' weights live in one space over one data set (same model, loss and data)."""
    ca, cb = a.net.cfg, b.net.cfg
    return ca["model"] == cb["model"] and ca["loss"] == cb["loss"] and ca["data"] == cb["data"] \
        and a.snaps.theta.shape[1] == b.snaps.theta.shape[1]


def line_between(a: snapdata.Shot, b: snapdata.Shot, alpha: np.ndarray) -> tuple[np.ndarray, bool]:
    """J from a's final weights (alpha 0) to b's (alpha 1) on a's data; the L2 term only when both use the same."""
    same_l2 = a.net.cfg["regularization"].get("l2") == b.net.cfg["regularization"].get("l2")
    bufs = {k: ls.interpolate(v[-1], b.snaps.buffers[k][-1], alpha) for k, v in a.snaps.buffers.items()}
    return a.net.cost(ls.interpolate(a.snaps.theta[-1], b.snaps.theta[-1], alpha), bufs or None, l2=same_l2), same_l2


def random_slice(shot: snapdata.Shot) -> Surface:
    """J around the final weights along two filter-normalized Gaussian directions (seed DIRECTION_SEED)."""
    theta = shot.snaps.theta[-1].astype(np.float64)
    rng = np.random.default_rng(DIRECTION_SEED)
    U = np.stack([ls.filter_normalized(theta, shot.net.layout, rng) for _ in range(2)])
    xs = ys = np.linspace(-SPAN, SPAN, GRID)
    J = shot.net.cost(ls.plane(theta, U, xs, ys), _final_buffers(shot)).reshape(GRID, GRID)
    return Surface(xs, ys, J)


def pca_plane(shot: snapdata.Shot) -> Surface:
    """J over the plane of the path's two principal directions (origin: the initialization), with the path on it."""
    fr = ls.pca_frame(shot.snaps.theta.astype(np.float64))
    lo, hi = np.minimum(fr.coords.min(axis=0), 0.0), np.maximum(fr.coords.max(axis=0), 0.0)
    pad = MARGIN * np.maximum(hi - lo, 1e-12)
    xs, ys = np.linspace(lo[0] - pad[0], hi[0] + pad[0], GRID), np.linspace(lo[1] - pad[1], hi[1] + pad[1], GRID)
    J = shot.net.cost(ls.plane(fr.origin, fr.U, xs, ys), _final_buffers(shot)).reshape(GRID, GRID)
    return Surface(xs, ys, J, fr.coords, fr.explained)


def _final_buffers(shot: snapdata.Shot) -> dict | None:
    return shot.snaps.at(-1) or None  # batch norm: the final running statistics everywhere on a plane


def _name(shot: snapdata.Shot) -> str:
    return f"{shot.group.name} (seed {shot.run.seed})"


def draw_lines(ax, shots, alpha, rec: Record) -> None:
    """Each label's J from its initialization (alpha 0) to its final weights (alpha 1)."""
    for shot in shots:
        J = line_to_final(shot, alpha)
        ax.plot(alpha, J, color=shot.group.color, linewidth=1.8, label=_name(shot))
        ends = np.isin(alpha, (0.0, 1.0))
        ax.plot(alpha[ends], J[ends], "o", color=shot.group.color, markersize=5)
        rec.add("init to final", shot.group.label, "cost", alpha, J)
    _alpha_axis(ax, "initialization", "final weights")
    ax.set_ylabel("training cost")
    ax.set_title("from initialization to final weights (Goodfellow et al. 2015)")
    place_legend(ax)


def draw_between(ax, shots, alpha, rec: Record, warn) -> None:
    """J between the final weights of two labels, for up to PAIRS pairs that share model and data."""
    pairs = [(a, b) for a, b in combinations(shots, 2) if comparable(a, b)]
    if len(pairs) > PAIRS:
        warn(f"warning: --kind landscape: {len(pairs)} pairs of labels; drawing the first {PAIRS}")
    ylabel = "training cost"
    for i, (a, b) in enumerate(pairs[:PAIRS]):
        J, with_l2 = line_between(a, b, alpha)
        ylabel = ylabel if with_l2 else "training cost without the L2 term"
        barrier = float(J[(alpha >= 0) & (alpha <= 1)].max() - max(J[alpha == 0][0], J[alpha == 1][0]))
        said = f"barrier {barrier:.3g}" if barrier > 1e-12 else "no barrier"
        ax.plot(alpha, J, color=a.group.color, linewidth=1.8, linestyle=STYLES[i % len(STYLES)],
                label=f"{a.group.name} → {b.group.name} ({said})")
        for at, end in ((0.0, a), (1.0, b)):  # each end marked in its own label's colour
            ax.plot(at, J[alpha == at][0], "o", color=end.group.color, markersize=6, markeredgecolor="black")
        rec.add("between labels", f"{a.group.label} -> {b.group.label}", "cost", alpha, J)
    if not pairs:
        ax.text(0.5, 0.5, "needs two labels with the same\nmodel, loss and data", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    _alpha_axis(ax, "first label's weights", "second label's")
    ax.set_ylabel(ylabel)
    ax.set_title("between labels' final weights (first seeds; barrier: max on [0, 1] - higher end)")
    place_legend(ax)


def _alpha_axis(ax, at0: str, at1: str) -> None:
    for a in (0.0, 1.0):
        ax.axvline(a, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_xlabel(f"α   (0: {at0}, 1: {at1})")


def _contours(ax, fig, surf: Surface):
    """Filled contours of log10 J (clipped at its 98th percentile, so a cliff does not flatten the valley)."""
    logJ = np.log10(np.maximum(surf.J, 1e-12))
    hi = np.percentile(logJ, 98)
    levels = np.linspace(logJ.min(), max(hi, logJ.min() + 1e-9), 16)
    cs = ax.contourf(surf.xs, surf.ys, np.minimum(logJ, hi), levels=levels, cmap="viridis")
    ax.contour(surf.xs, surf.ys, logJ, levels=levels, colors="white", linewidths=0.4, alpha=0.5)
    fig.colorbar(cs, ax=ax, label="log10 training cost", shrink=0.9, format="%.3g")
    ax.grid(False)


def draw_random(ax, fig, shot: snapdata.Shot, rec: Record) -> None:
    surf = random_slice(shot)
    _contours(ax, fig, surf)
    ax.plot(0, 0, marker="*", markersize=13, color="gold", markeredgecolor="black", linestyle="none")
    ax.set_xlabel("δ (filter-normalized random)")
    ax.set_ylabel("η (filter-normalized random)")
    ax.set_title(f"{_name(shot)}: around the final weights ★\nalong two filter-normalized random directions "
                 f"(Li et al. 2018; rng seed {DIRECTION_SEED})", color=shot.group.color, fontsize=9.5)
    _record_surface(rec, f"{shot.group.label} random slice", shot.group.label, surf)


def draw_pca(ax, fig, shot: snapdata.Shot, rec: Record) -> None:
    surf = pca_plane(shot)
    _contours(ax, fig, surf)
    xy, ep = surf.path, shot.snaps.epoch
    ax.plot(xy[:, 0], xy[:, 1], color="white", linewidth=2.6)
    ax.plot(xy[:, 0], xy[:, 1], color=shot.group.color, linewidth=1.4, marker="o", markersize=3)
    ax.plot(*xy[0], marker="o", markersize=9, color="white", markeredgecolor="black", linestyle="none")
    ax.plot(*xy[-1], marker="*", markersize=13, color="gold", markeredgecolor="black", linestyle="none")
    e1, e2 = (100 * surf.explained).tolist()
    ax.set_xlabel(f"PC1 of θ_t − θ_0 ({e1:.1f}% of the path)")
    ax.set_ylabel(f"PC2 ({e2:.1f}%)")
    ax.set_title(f"{_name(shot)}: the path projected on its principal directions\n"
                 f"origin ○ = initialization (epoch 0), ★ = epoch {int(ep[-1])}", color=shot.group.color, fontsize=9.5)
    place_legend(ax, [proxy(shot.group.color, f"path, {len(ep)} snapshots", marker="o", markersize=3)])
    _record_surface(rec, f"{shot.group.label} pca plane", shot.group.label, surf)
    rec.add(f"{shot.group.label} pca plane", shot.group.label, "path", xy[:, 0], xy[:, 1], z=ep)


def _record_surface(rec: Record, panel: str, label: str, surf: Surface) -> None:
    gx, gy = np.meshgrid(surf.xs, surf.ys)
    rec.add(panel, label, "cost", gx.ravel(), gy.ravel(), z=surf.J.ravel())


def landscape_figure(view, title: str, opts, warn, rec: Record):
    """The lines on top, then a (random slice, PCA plane) pair of panels per label."""
    shots = snapdata.load(view, "--kind landscape", warn, ROWS)
    alpha = ls.alphas()
    fig = Figure(figsize=layout.bounded(13, 4.6 + 4.6 * len(shots)), layout="constrained")
    top, below = fig.subfigures(2, 1, height_ratios=[4.6, 4.6 * len(shots)])
    left, right = top.subplots(1, 2)
    draw_lines(left, shots, alpha, rec)
    draw_between(right, shots, alpha, rec, warn)
    for (ax_r, ax_p), shot in zip(below.subplots(len(shots), 2, squeeze=False), shots):
        draw_random(ax_r, below, shot, rec)
        draw_pca(ax_p, below, shot, rec)
    fig.suptitle(f"{title} — loss landscape (training cost, first seed of each label)")
    return fig
