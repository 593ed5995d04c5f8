"""What a file-format loader returns and how it fails: arrays of examples as rows, and one-line errors."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from optbench.errors import OptbenchError

CHUNK_BYTES = 8 * 2**20  # raw bytes converted at a time: the output is the only full-size copy


def read_dtype(stored, dtype) -> np.dtype:
    """The dtype a loader fills: the training dtype when it holds every stored value exactly (uint8 or float32
    images for float32 training), else float64 (standardized first, then cast, as a float64 copy would be)."""
    dtype = np.dtype(dtype)
    return dtype if np.can_cast(stored, dtype, "safe") else np.dtype(np.float64)


class LoaderError(OptbenchError):
    """Bad value of one dataset option or a bad file; `data.load` prefixes the key with the section's path."""

    def __init__(self, key: str, detail: str):
        super().__init__(f"{key}: {detail}")
        self.key, self.detail = key, detail


@dataclass(frozen=True)
class Loaded:
    """A file's training part X (N, D) (float64, or base.read_dtype's), y (N,) int64 or (N, 1) float64, and its own
    test part, if any."""

    X: np.ndarray
    y: np.ndarray
    task: str  # binary | multiclass | regression
    n_classes: int  # 0 for regression
    test: tuple[np.ndarray, np.ndarray] | None = None  # (X_test, y_test), the file's test split


def check_path(path: str, key: str, what: str, hint: str = "") -> str:
    """`path` itself, or a LoaderError naming the key when nothing is there."""
    if not os.path.exists(path):
        raise LoaderError(key, f"not found: {path!r}" + (f" ({hint})" if hint else f" (accepted: {what})"))
    return path


def class_labels(y: np.ndarray, n_classes: int, key: str, source: str) -> np.ndarray:
    """Integer class labels (N,) int64, each in 0..n_classes-1, or a LoaderError naming the first one outside."""
    if y.dtype.kind not in "biu":
        raise LoaderError(key, f"{source} holds labels of dtype {y.dtype} (accepted: integer class labels)")
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if len(bad):
        raise LoaderError(key, f"{source}: label {int(y[bad[0]])} at example {int(bad[0])} is out of range "
                               f"(accepted: 0..{n_classes - 1})")
    return y.astype(np.int64)


def first(n: int, n_train: int | None, source: str) -> int:
    """How many leading training examples to keep: all n, or n_train of them (CS231n's subsets)."""
    if n_train is None:
        return n
    if n_train > n:
        raise LoaderError("n_train", f"{n_train} is more than the {n} training examples of {source} "
                                     f"(accepted: 1..{n})")
    return n_train
