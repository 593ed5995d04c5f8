"""When a replica stops before its last epoch: divergence (a cost that blew up) and early stopping (patience)."""

from __future__ import annotations

import numpy as np


def diverged(e: int, tc: np.ndarray, cost0: np.ndarray, factor: np.ndarray, active: np.ndarray) -> dict[int, tuple[str, str]]:
    """Active replicas whose train cost is non-finite or above factor * the initial cost at epoch e."""
    bad = active & ~(tc <= factor * cost0)  # NaN compares False: non-finite costs are bad too
    ended = {}
    for r in np.flatnonzero(bad).tolist():
        if not np.isfinite(tc[r]):
            ended[r] = ("diverged", f"train cost became {tc[r]} at epoch {e}")
        else:
            ended[r] = ("diverged", f"train cost {tc[r]:.4g} exceeded {factor[r]:g} x the initial {cost0[r]:.4g} at epoch {e}")
    return ended


class EarlyStopping:
    """Per replica: stop once `metric` has not improved by min_delta for `patience` epochs (sections.EarlyStopping;
    None: never)."""

    def __init__(self, specs: list):
        self.specs = specs
        self.on = any(s is not None for s in specs)
        self.best = np.full(len(specs), np.inf)  # the best score so far (accuracies negated: lower is better)
        self.wait = np.zeros(len(specs), dtype=int)  # epochs since it improved

    def __call__(self, m: dict[str, np.ndarray], rows) -> dict[int, tuple[str, str]]:
        """The replicas among `rows` whose patience ran out with this epoch's metrics m."""
        ended = {}
        for r in rows:
            es = self.specs[r]
            if es is None:
                continue
            val = m[es.metric][r]
            score = -val if es.metric.endswith("acc") else val
            if score < self.best[r] - es.min_delta:
                self.best[r], self.wait[r] = score, 0
            else:
                self.wait[r] += 1
                if self.wait[r] >= es.patience:
                    ended[r] = ("stopped_early", f"{es.metric} did not improve for {es.patience} epochs")
        return ended
