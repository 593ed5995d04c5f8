"""Rebuild a trained net from a run directory (config.yaml + params.npz) to predict; never trains."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from optbench.config import load_data, parse_yaml
from optbench.model import build
from optbench.sections import RunConfig


def load_predictor(run_dir: str | Path, *, cache=None) -> Callable[[np.ndarray], np.ndarray]:
    """predict(X) for raw features X (N, D) -> (N, K): class probabilities (N, 1 for bce) or regression outputs.

    Inputs are standardized with the run's training statistics, as during training; the data (for those
    statistics) is rebuilt through `cache`, a DataCache, when given.
    """
    d = Path(run_dir)
    cfg = parse_yaml((d / "config.yaml").read_text(), str(d / "config.yaml"))
    split = load_data(cfg["data"], cache=cache)
    with np.load(d / "params.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    n_out = arrays[f"W{len(cfg['model']['hidden']) + 1}"].shape[0]
    net = build(RunConfig.of(cfg).model, cfg["loss"], split.train.X.shape[1], n_out, R=1, dtype=np.float64)
    params = {k: v[None] for k, v in arrays.items() if not k.startswith("running_")}
    theta = net.layout.from_named(params)
    buffers = {k: v[None] for k, v in arrays.items() if k.startswith("running_")}

    def predict(X: np.ndarray) -> np.ndarray:
        Xs = split.transform(np.asarray(X, dtype=np.float64))
        A0 = np.vstack([Xs.T, np.ones((1, len(Xs)))])[None]
        out = []
        for a in range(0, A0.shape[-1], 4096):
            Z = net.forward(theta, A0[:, :, a : a + 4096], train=False, buffers=buffers)
            out.append(net.loss.proba(Z)[0].T.copy())
        return np.concatenate(out) if out else np.empty((0, n_out))

    return predict


def run_data(run_dir: str | Path, *, cache=None):
    """The run's data Split (regenerated from its config: same seed, same arrays), in raw feature units.

    Split.train.X / val.X are standardized; use Split.mean / Split.std to map back.
    """
    d = Path(run_dir)
    cfg = parse_yaml((d / "config.yaml").read_text(), str(d / "config.yaml"))
    return load_data(cfg["data"], cache=cache)
