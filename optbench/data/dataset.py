"""What the data of a run is: a Dataset (examples as rows) and its Split into training, validation and test parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from optbench.errors import OptbenchError

Task = Literal["binary", "multiclass", "regression"]
TaskOption = Literal["auto", "binary", "multiclass", "regression"]


@dataclass(frozen=True)
class Dataset:
    """Examples as rows: X (N, D) float64 (or float32); y (N,) int64 class labels, or (N, K) float64 regression targets."""

    X: np.ndarray
    y: np.ndarray
    task: Task
    n_classes: int  # 0 for regression
    columns: tuple[str, ...] | None = None  # how errors name feature j ("column 3 ('b') of d.csv"); None: "feature j+1"

    def column(self, j: int, source: str = "") -> str:
        """The name errors give feature column j."""
        if self.columns is not None and j < len(self.columns):
            return self.columns[j]
        return f"feature {j + 1}" + (f" of {source}" if source else "")


@dataclass(frozen=True)
class Split:
    """Training, validation and held-out test parts, standardized with training statistics."""

    train: Dataset
    val: Dataset | None
    mean: np.ndarray | None  # (D,) statistics used, or None when not standardized
    std: np.ndarray | None
    test: Dataset | None = None  # measured once, on the final model; nothing selects on it

    def transform(self, X: np.ndarray) -> np.ndarray:
        """New inputs (M, D) -> (X - mean) / std with the training statistics (e.g. a decision-boundary grid)."""
        X = np.asarray(X, dtype=np.float64)
        return X if self.mean is None else (X - self.mean) / self.std


class DataError(OptbenchError):
    """Bad value of one dataset option; `load` prefixes the key with the config section's path."""

    def __init__(self, key: str, detail: str):
        super().__init__(f"{key}: {detail}")
        self.key, self.detail = key, detail
