"""First, last and best value of each tracked metrics.csv column per run, kept as rows are written."""

from __future__ import annotations

import numpy as np

from optbench.runs.columns import COL

TRACKED = ("train_cost", "val_cost", "train_acc", "val_acc")


class Tracks:
    """First, last and best value of each TRACKED column for every run of a group, and the epoch of the best.

    The best is the lowest cost or the highest accuracy, NaN (not measured) never; on ties the earliest.
    Updated a block of rows at a time (extend), in constant memory whatever the epochs.
    """

    def __init__(self, R: int):
        k = len(TRACKED)
        self.cols = [COL[c] for c in TRACKED]
        self.sign = np.array([-1.0 if c.endswith("acc") else 1.0 for c in TRACKED])  # lower sign * x is better
        self.n = np.zeros(R, dtype=np.int64)
        self.first, self.last, self.best = (np.full((R, k), np.nan) for _ in range(3))
        self.best_epoch = np.full((R, k), -1, dtype=np.int64)  # -1: no measured value yet

    def extend(self, table: np.ndarray, alive: np.ndarray, runs: np.ndarray | None = None) -> None:
        """Take in rows table (T, R', columns) where alive (T, R'); `runs` (R',) names the runs (default: all)."""
        runs = np.arange(len(self.n)) if runs is None else np.asarray(runs)
        T = len(table)
        has = alive.any(axis=0)
        if not T or not has.any():
            return
        x = table[:, :, self.cols]  # (T, R', k)
        j = np.arange(x.shape[1])
        first, last = alive.argmax(axis=0), T - 1 - alive[::-1].argmax(axis=0)
        new = has & (self.n[runs] == 0)
        self.first[runs[new]] = x[first[new], j[new]]
        self.last[runs[has]] = x[last[has], j[has]]
        self.n[runs] += alive.sum(axis=0)
        valid = alive[:, :, None] & ~np.isnan(x)
        score = np.where(valid, x * self.sign, np.inf)
        i = score.argmin(axis=0)  # (R', k): the first lowest
        low = np.take_along_axis(score, i[None], axis=0)[0]
        i = np.where(low == np.inf, valid.argmax(axis=0), i)  # only infinities (or nothing): the first measured one
        low = np.take_along_axis(score, i[None], axis=0)[0]
        held = self.best_epoch[runs]
        better = valid.any(axis=0) & ((held < 0) | (low < self.best[runs] * self.sign))
        rr, kk = np.nonzero(better)
        self.best[runs[rr], kk] = x[i[rr, kk], rr, kk]
        self.best_epoch[runs[rr], kk] = table[i[rr, kk], rr, 0].astype(np.int64)

    def reset(self, r: int) -> None:
        self.n[r] = 0
        self.first[r] = self.last[r] = self.best[r] = np.nan
        self.best_epoch[r] = -1

    def of(self, r: int) -> dict[str, dict]:
        """Run r's {first, last, best: {column: value}, best_epoch: {column: epoch or None}}."""
        out: dict[str, dict] = {"first": {}, "last": {}, "best": {}, "best_epoch": {}}
        for k, c in enumerate(TRACKED):
            out["first"][c], out["last"][c] = float(self.first[r, k]), float(self.last[r, k])
            out["best"][c] = float(self.best[r, k])
            out["best_epoch"][c] = int(self.best_epoch[r, k]) if self.best_epoch[r, k] >= 0 else None
        return out
