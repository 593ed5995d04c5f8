"""Loss landscapes from a run directory: its training cost at any parameters, lines and planes through them.

The cost is the one metrics.csv logs at epoch 0, J(theta) = mean test-mode cost over the training set
+ 0.5 l2 sum W^2, computed by the engine's own forward on the run's data (rebuilt from config.yaml), many
parameter vectors at once on the replica axis. Nothing trains.

    interpolation (Goodfellow et al. 2015)   theta(alpha) = (1 - alpha) theta_a + alpha theta_b
    filter-normalized direction (Li et al. 2018)   d_ij <- d_ij / |d_ij| * |theta_ij| for neuron j of layer i
    PCA frame of a path   v1, v2 = the top right singular vectors of [theta_t - theta_0]_t: theta_0 is the origin
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from optbench.budget import EVAL_CHUNK
from optbench.config import load_data, parse_yaml
from optbench.sections import RunConfig
from optbench.losses import encode_targets, l2_penalty

if TYPE_CHECKING:
    from optbench.model import MLP

WORK_BYTES = 32 * 2**20  # a chunk of parameter vectors evaluated at once keeps its activations under this
DROPOUT_SEED = 0


def read_config(run_dir: Path | str) -> dict:
    d = Path(run_dir)
    return parse_yaml((d / "config.yaml").read_text(), str(d / "config.yaml"))


class RunNet:
    """A run's net and training data, rebuilt from its config.yaml: `cost(thetas)` and `predict(thetas, X)`."""

    def __init__(self, run_dir: Path | str, *, cache=None):
        cfg = self.cfg = read_config(run_dir)
        self.dtype = dt = np.dtype(cfg["train"]["dtype"])
        self.split = split = load_data(cfg["data"], dt, cache=cache)
        tr = split.train
        Y = encode_targets(cfg["loss"], tr.y, tr.n_classes)
        self.D, self.C, self.N = tr.X.shape[1], Y.shape[1], len(tr.X)
        self.A0 = np.vstack([tr.X.T, np.ones((1, self.N))]).astype(dt)[None]  # (1, D+1, N)
        self.Y = np.ascontiguousarray(Y.T, dtype=dt)[None]  # (1, C, N)
        self._nets: dict[int, MLP] = {}
        self.layout = self.net(1).layout
        self.mask = self.layout.weight_mask().astype(dt)
        self.l2 = np.asarray(cfg["regularization"].get("l2") or 0.0, dtype=dt)

    def net(self, R: int) -> MLP:
        if R not in self._nets:
            from optbench.model import build  # here: plots import this module, and only these figures rebuild a net

            self._nets[R] = build(RunConfig.of(self.cfg).model, self.cfg["loss"], self.D, self.C, R=R, dtype=self.dtype)
        return self._nets[R]

    def _chunk(self, B: int) -> int:
        width = max(self.net(1).dims)
        return max(1, int(WORK_BYTES // (4 * width * B * self.dtype.itemsize)))

    def _forward(self, th: np.ndarray, A0: np.ndarray, buffers: dict | None) -> np.ndarray:
        """Test-mode logits (r, C, B) of parameter rows th (r, P); buffers (1 or r, ...) broadcast to r rows."""
        r = len(th)
        buf = {k: np.ascontiguousarray(np.broadcast_to(v, (r, *v.shape[1:]))) for k, v in (buffers or {}).items()}
        with np.errstate(all="ignore"):  # far out on a plane a cost may overflow: it is drawn as what it is
            return self.net(r).forward(th, A0, train=False, buffers=buf)

    def cost(self, thetas: np.ndarray, buffers: dict | None = None, *, l2: bool = True) -> np.ndarray:
        """J (K,) at parameter rows thetas (K, P), as the training loop logs train_cost (test mode, + L2 unless `l2` False)."""
        thetas = np.ascontiguousarray(thetas, dtype=self.dtype)
        out = np.empty(len(thetas))
        step = self._chunk(min(self.N, EVAL_CHUNK))
        loss = self.net(1).loss
        for s in range(0, len(thetas), step):
            th = thetas[s : s + step]
            buf = None if buffers is None else {k: v[s : s + step] if len(v) > 1 else v for k, v in buffers.items()}
            total = np.zeros(len(th))
            for a in range(0, self.N, EVAL_CHUNK):  # the loop's chunks: the same sums in the same order
                Z = self._forward(th, self.A0[:, :, a : a + EVAL_CHUNK], buf)
                with np.errstate(all="ignore"):
                    total += loss.value(Z, self.Y[:, :, a : a + EVAL_CHUNK])
            out[s : s + step] = total / self.N + (l2_penalty(th, self.mask, self.l2) if self.l2 and l2 else 0.0)
        return out

    def gradient(self, thetas: np.ndarray) -> np.ndarray:
        """dJ/dtheta (K, P) of the full-batch training objective (mean training-mode cost + L2) at rows thetas (K, P).

        Training mode: batch norm normalizes with the whole training set's statistics, and dropout draws its
        masks from generators seeded DROPOUT_SEED (one per row), so the same snapshots give the same gradients.
        """
        thetas = np.ascontiguousarray(thetas, dtype=self.dtype)
        out = np.empty_like(thetas)
        step = self._chunk(self.N)
        keep = 1.0 - self.cfg["model"]["drop_prob"]
        for s in range(0, len(thetas), step):
            th = thetas[s : s + step]
            r = len(th)
            gens = [np.random.default_rng([DROPOUT_SEED, i]) for i in range(r)] if keep < 1.0 else None
            with np.errstate(all="ignore"):
                self.net(r).objective(th, self.A0, self.Y, out[s : s + step], l2=self.l2,
                                      keep=np.full((r, 1, 1), keep, dtype=self.dtype), drop_gens=gens)
        return out

    def predict(self, thetas: np.ndarray, X: np.ndarray, buffers: dict | None = None) -> np.ndarray:
        """Outputs (K, N, C) for raw features X (N, D): class probabilities (bce: P(class 1)) or regression values."""
        Xs = self.split.transform(np.asarray(X, dtype=np.float64))
        A0 = np.vstack([Xs.T, np.ones((1, len(Xs)))]).astype(self.dtype)[None]
        thetas = np.ascontiguousarray(thetas, dtype=self.dtype)
        out = np.empty((len(thetas), len(Xs), self.C))
        step = self._chunk(len(Xs))
        for s in range(0, len(thetas), step):
            buf = None if buffers is None else {k: v[s : s + step] if len(v) > 1 else v for k, v in buffers.items()}
            Z = self._forward(thetas[s : s + step], A0, buf)
            out[s : s + step] = self.net(1).loss.proba(Z).transpose(0, 2, 1)
        return out


def alphas(lo: float = -0.5, hi: float = 1.5, n: int = 81) -> np.ndarray:
    """Interpolation coefficients, 0 and 1 among them exactly."""
    a = np.round(np.linspace(lo, hi, n), 12)
    return np.unique(np.concatenate([a, [0.0, 1.0]]))


def interpolate(a: np.ndarray, b: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(K, ...) points (1 - alpha) a + alpha b: a exactly at alpha 0, b exactly at alpha 1."""
    al = np.asarray(alpha, dtype=np.float64).reshape(-1, *([1] * np.ndim(a)))
    return (1.0 - al) * a + al * b


def filter_normalized(theta: np.ndarray, layout, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian direction (P,) with each neuron's incoming weights scaled to that neuron's norm in theta (Li et
    al. 2018); biases and normalization parameters 0 (their code's `ignore biasbn`), so the slice moves weights only."""
    d = rng.standard_normal(theta.shape[-1])
    for blk in layout.blocks:
        v = layout.view(d[None], blk)[0]
        if blk.kind != "dense":
            v[...] = 0.0
            continue
        t = layout.view(theta[None], blk)[0]
        w = v[:, :-1]
        scale = np.linalg.norm(t[:, :-1], axis=1) / np.maximum(np.linalg.norm(w, axis=1), 1e-300)
        w *= scale[:, None]
        v[:, -1] = 0.0
    return d


@dataclass(frozen=True)
class Frame:
    """Two orthonormal directions U (2, P) through an origin (P,); `explained` the share of the path's squared
    displacement each carries (PCA frames), `coords` (T, 2) the path's projection."""

    origin: np.ndarray
    U: np.ndarray
    explained: np.ndarray
    coords: np.ndarray


def pca_frame(path: np.ndarray) -> Frame:
    """The principal directions of a path (T, P) about its first point: SVD of theta_t - theta_0 (uncentered, so the
    start is the origin); signs chosen so the path ends at positive coordinates."""
    disp = path - path[0]
    _, s, Vt = np.linalg.svd(disp[1:], full_matrices=False)
    U = Vt[:2].copy()
    if len(U) < 2:  # a path of two points spans one direction: a second, orthogonal one for the plane
        e = np.zeros(path.shape[1])
        e[np.argmin(np.abs(U[0]))] = 1.0
        e -= (e @ U[0]) * U[0]
        U = np.vstack([U, e / np.linalg.norm(e)])
        s = np.concatenate([s, [0.0]])
    coords = disp @ U.T
    flip = np.where(coords[-1] < 0, -1.0, 1.0)
    U, coords = U * flip[:, None], coords * flip
    total = float((s**2).sum())
    explained = (s[:2] ** 2) / total if total > 0 else np.zeros(2)
    return Frame(path[0].copy(), U, explained, coords)


def plane(origin: np.ndarray, U: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Parameter rows (len(ys) * len(xs), P): origin + x U[0] + y U[1] on the grid, x fastest."""
    gx, gy = np.meshgrid(xs, ys)
    return origin + gx.reshape(-1, 1) * U[0] + gy.reshape(-1, 1) * U[1]
