"""Parameter snapshots: each replica's flat parameters every K epochs (and epoch 0 and its last) in snapshots.npz.

    snapshots.npz   epoch (S,) int64, theta (S, P) in the training dtype, and per batch-norm buffer
                    `buffer_<name>` (S, ...): what the loss landscape and the training film are drawn from

Written without pickle beside params.npz; theta[-1] is params.npz's parameters, theta[0] the initialization.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optbench.errors import OptbenchError

FILE = "snapshots.npz"
KEY = "train.snapshots_every"


class Recorder:
    """Collects snapshots while a group trains: `take(e, theta, buffers, rows)` after epoch e, `arrays(r, ...)` at the end."""

    def __init__(self, every: int, R: int):
        self.every = every
        self.epochs: list[list[int]] = [[] for _ in range(R)]
        self.thetas: list[list[np.ndarray]] = [[] for _ in range(R)]
        self.bufs: list[list[dict]] = [[] for _ in range(R)]

    def due(self, e: int) -> bool:
        """Whether epoch e is a snapshot epoch (0, K, 2K, ...); a replica's last epoch is added by `arrays`."""
        return self.every > 0 and e % self.every == 0

    def take(self, e: int, theta: np.ndarray, buffers: dict[str, np.ndarray], rows) -> None:
        """Copy rows `rows` of theta (R, P) and of the buffers (R, ...) as epoch e's snapshot."""
        for r in rows:
            self._add(r, e, theta[r], {k: v[r] for k, v in buffers.items()})

    def _add(self, r: int, e: int, th: np.ndarray, buf: dict) -> None:
        if self.epochs[r] and self.epochs[r][-1] == e:  # its end was taken already (a stop at a snapshot epoch)
            self.thetas[r][-1], self.bufs[r][-1] = th.copy(), {k: v.copy() for k, v in buf.items()}
            return
        self.epochs[r].append(e)
        self.thetas[r].append(th.copy())
        self.bufs[r].append({k: v.copy() for k, v in buf.items()})

    def arrays(self, r: int, end: int, theta: np.ndarray, buffers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Replica r's snapshots.npz arrays, its final parameters (theta (P,), at epoch `end`) the last snapshot."""
        self._add(r, end, theta, buffers)
        out = {"epoch": np.array(self.epochs[r], dtype=np.int64), "theta": np.stack(self.thetas[r])}
        for k in self.bufs[r][0]:
            out[f"buffer_{k}"] = np.stack([b[k] for b in self.bufs[r]])
        return out

    def state(self, r: int) -> dict:
        """Replica r's snapshots so far, for a checkpoint (train --resume goes on with them)."""
        return {"epochs": list(self.epochs[r]), "thetas": list(self.thetas[r]), "bufs": list(self.bufs[r])}

    def restore(self, r: int, st: dict | None) -> None:
        if st is not None:
            self.epochs[r], self.thetas[r], self.bufs[r] = list(st["epochs"]), list(st["thetas"]), list(st["bufs"])


@dataclass(frozen=True)
class Snapshots:
    """A run's snapshots read back: epoch (S,), theta (S, P), buffers name -> (S, ...)."""

    epoch: np.ndarray
    theta: np.ndarray
    buffers: dict[str, np.ndarray]

    def at(self, i: int) -> dict[str, np.ndarray]:
        """Snapshot i's buffers, each with a replica axis of one: (1, ...)."""
        return {k: v[i][None] for k, v in self.buffers.items()}


def missing(what: str, run_dir: Path | str) -> OptbenchError:
    """The one-line error for runs trained without snapshots: the key that turns them on."""
    return OptbenchError(f"{what}: {run_dir} has no {FILE} (train with {KEY}: K > 0, e.g. --set {KEY}=10)")


def read(run_dir: Path | str, what: str) -> Snapshots:
    """snapshots.npz of a run directory; an OptbenchError naming `train.snapshots_every` when it has none."""
    p = Path(run_dir) / FILE
    if not p.is_file():
        raise missing(what, run_dir)
    try:
        with np.load(p, allow_pickle=False) as f:
            epoch, theta = np.asarray(f["epoch"]), np.asarray(f["theta"])
            buffers = {k[len("buffer_"):]: np.asarray(f[k]) for k in f.files if k.startswith("buffer_")}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise OptbenchError(f"{what}: {p}: unreadable ({err.__class__.__name__})") from None
    if theta.ndim != 2 or len(epoch) != len(theta) or len(epoch) < 2:
        raise OptbenchError(f"{what}: {p}: expected epoch (S,) and theta (S, P) with S >= 2, found {epoch.shape}, {theta.shape}")
    return Snapshots(epoch, theta, buffers)
