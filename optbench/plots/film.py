"""`--kind film`: training as a film, from each label's parameter snapshots.

Each frame shows, side by side per label, the decision regions (classification of 2-D data) or the fitted
function (regression of one input on one output) of that label's snapshot at an epoch. Saved as a frame
strip (PNG/SVG/PDF: rows are labels, columns STRIP epochs) or, with --out FILE.gif, as an animated GIF with a
frame per snapshot epoch (at most MAX_FRAMES). Predictions come from the engine's forward (optbench.landscape).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from optbench.errors import OptbenchError
from optbench.plots import data, layout, snapdata, spatial
from optbench.plots.record import Record

LABELS = 4  # labels side by side, the best first
STRIP = 6  # epochs in a frame strip
MAX_FRAMES = 120  # frames of a GIF: more snapshots are thinned evenly (the first and the last kept)
GRID = 120  # points per side of a decision-region frame
CURVE = 200  # points of a fitted-function frame
FRAME_MS, LAST_MS = 250, 1500  # how long a GIF shows each frame, and its last one
GIF_DPI = 80


@dataclass(frozen=True)
class Reel:
    """One label's pictures at its snapshot epochs: `out` (S, points, C) predictions on a grid or a line."""

    shot: snapdata.Shot
    task: str  # "boundary" or "fit"
    grid: tuple  # boundary: (xx, yy) (GRID, GRID); fit: (xs,) (CURVE,)
    out: np.ndarray
    X: np.ndarray  # training inputs in raw units (N, D)
    y: np.ndarray  # training labels (N,) or values (N,)
    logged: dict[int, tuple[float, float]]  # metrics.csv (train_cost, train_acc) by epoch

    def index(self, epoch: int) -> int:
        """The latest snapshot at or before `epoch` (its first when none is)."""
        ep = self.shot.snaps.epoch
        return max(int(np.searchsorted(ep, epoch, side="right")) - 1, 0)


def _task(shot: snapdata.Shot) -> str | None:
    tr = shot.net.split.train
    if data.task(shot.group) == "classification" and tr.X.shape[1] == 2:
        return "boundary"
    if data.task(shot.group) == "regression" and tr.X.shape[1] == 1 and shot.net.C == 1:
        return "fit"
    return None


def reels(view, warn, what: str = "--kind film") -> list[Reel]:
    """Each shown label's predictions at every snapshot; an OptbenchError when no label is 2-D classification or
    1-D regression."""
    shots = snapdata.load(view, what, warn, LABELS)
    out = []
    for shot in shots:
        task = _task(shot)
        if task is None:
            warn(f"warning: {shot.group.label}: {what} draws classification of 2-D data or regression of one input; left out")
            continue
        split = shot.net.split
        tr = split.train
        X = tr.X if split.mean is None else tr.X * split.std + split.mean
        lo, hi = X.min(axis=0), X.max(axis=0)
        pad = spatial.MARGIN * np.where(hi > lo, hi - lo, 1.0)
        if task == "boundary":
            grid = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], GRID), np.linspace(lo[1] - pad[1], hi[1] + pad[1], GRID))
            pts = np.column_stack([grid[0].ravel(), grid[1].ravel()])
        else:
            grid = (np.linspace(lo[0] - pad[0], hi[0] + pad[0], CURVE),)
            pts = grid[0][:, None]
        s = shot.snaps
        preds = np.stack([shot.net.predict(s.theta[i : i + 1], pts, s.at(i) or None)[0] for i in range(len(s.epoch))]) \
            if s.buffers else shot.net.predict(s.theta, pts)
        m = shot.run.metrics
        logged = {int(e): (float(c), float(a)) for e, c, a in zip(m["epoch"], m["train_cost"], m["train_acc"])}
        out.append(Reel(shot, task, grid, preds, X, np.asarray(tr.y).reshape(len(X), -1)[:, 0], logged))
    if not out:
        raise OptbenchError(f"{what}: needs classification runs on 2-D data or regression runs with one input and one output")
    return out


def epochs(rs: list[Reel], limit: int) -> np.ndarray:
    """The frames' epochs: every label's snapshot epochs together, thinned evenly to `limit` (first and last kept)."""
    ep = np.unique(np.concatenate([r.shot.snaps.epoch for r in rs]))
    if len(ep) <= limit:
        return ep
    return ep[np.unique(np.round(np.linspace(0, len(ep) - 1, limit)).astype(int))]


def draw_frame(ax, reel: Reel, epoch: int, rec: Record | None = None, panel: str = "") -> None:
    """Reel's picture at its latest snapshot at or before `epoch`, the snapshot's epoch and cost in the title."""
    i = reel.index(epoch)
    e = int(reel.shot.snaps.epoch[i])
    g = reel.shot.group
    if reel.task == "boundary":
        proba = reel.out[i]
        classes = spatial._classes(proba).reshape(reel.grid[0].shape)
        reg = spatial.Regions(g, reel.shot.run.seed, reel.grid[0], reel.grid[1], classes, reel.X, reel.y.astype(int), 0.0)
        spatial.draw_boundary(ax, reg)
        if rec is not None:
            lines = [c for c in ax.collections if isinstance(c, ContourSet) and not c.filled]
            segs = [seg for cs in lines for level in cs.allsegs for seg in level if len(seg)]
            for k, seg in enumerate(segs):
                rec.add(panel, g.label, f"boundary epoch {e}", seg[:, 0], seg[:, 1], z=np.full(len(seg), k))
    else:
        xs = reel.grid[0]
        ax.scatter(reel.X[:, 0], reel.y, s=9, color="0.6", linewidths=0, zorder=1)
        ax.plot(xs, reel.out[0][:, 0], color="0.35", linewidth=0.9, linestyle="--", zorder=2)
        ax.plot(xs, reel.out[i][:, 0], color=g.color, linewidth=2.2, zorder=3)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        span = np.ptp(reel.y) or 1.0
        ax.set_ylim(reel.y.min() - 0.25 * span, reel.y.max() + 0.25 * span)
        if rec is not None:
            rec.add(panel, g.label, f"fit epoch {e}", xs, reel.out[i][:, 0])
    cost, acc = reel.logged.get(e, (np.nan, np.nan))
    said = (f", cost {cost:.4g}" if np.isfinite(cost) else "") + (f", acc {acc:.1%}" if np.isfinite(acc) else "")
    ax.set_title(f"{g.name}\nepoch {e}{said}", color=g.color, fontsize=9.5)


def strip_figure(view, title: str, opts, warn, rec: Record):
    """Rows: labels; columns: STRIP epochs from the first snapshot to the last."""
    rs = reels(view, warn)
    ep = epochs(rs, STRIP)
    fig = Figure(figsize=layout.bounded(2.9 * len(ep) + 0.4, 2.9 * len(rs) + 0.9), layout="constrained")
    axes = fig.subplots(len(rs), len(ep), squeeze=False)
    for row, reel in zip(axes, rs):
        for ax, e in zip(row, ep):
            draw_frame(ax, reel, int(e), rec, panel=f"epoch {int(e)}")
    fig.suptitle(f"{title} — training as a film ({_what(rs)}; first seed of each label; dashed: at initialization)"
                 if any(r.task == "fit" for r in rs) else f"{title} — training as a film ({_what(rs)}; first seed of each label)")
    return fig


def _what(rs: list[Reel]) -> str:
    return " and ".join(sorted({"decision regions" if r.task == "boundary" else "fitted function" for r in rs}))


def write_gif(view, title: str, opts, warn, rec: Record, path: Path) -> int:
    """An animated GIF at `path` (written by the caller's atomic writer): one frame per epoch, labels side by side;
    returns the number of frames."""
    from PIL import Image

    rs = reels(view, warn)
    ep = epochs(rs, MAX_FRAMES)
    fig = Figure(figsize=layout.bounded(3.6 * len(rs) + 0.3, 4.0), layout="constrained")
    axes = fig.subplots(1, len(rs), squeeze=False)[0]
    frames = []
    for e in ep:
        for ax, reel in zip(axes, rs):
            ax.clear()
            draw_frame(ax, reel, int(e), rec, panel=f"epoch {int(e)}")
        fig.suptitle(f"{title} — epoch {int(e)} of {int(ep[-1])}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=GIF_DPI, metadata={"Software": None})
        frames.append(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_MS]
    # PIL directly (matplotlib's PillowWriter names the format by the file's extension, and the atomic
    # writer's temporary file has none): an infinite loop, the last frame held
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return len(frames)
