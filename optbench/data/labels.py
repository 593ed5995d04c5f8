"""What labels mean: the task read from a file's labels (classes remapped to 0..C-1), and the losses that fit it."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

import numpy as np

from optbench.data.dataset import DataError, Dataset
from optbench.errors import OptbenchError
from optbench.registry import format_value


def listed(values: Any, limit: int = 20) -> str:
    """The first `limit` values for an error message, comma-separated, `...` when there are more."""
    items = [format_value(v) for v in list(values)[:limit]]
    return ", ".join(items) + (", ..." if len(values) > limit else "")


def from_arrays(X: np.ndarray, y: np.ndarray, task: str, source: str,
                 columns: tuple[str, ...] | None = None) -> Dataset:
    """Infer or check the task from the labels; remap class labels to 0..C-1 in sorted order."""
    X = np.ascontiguousarray(X, dtype=X.dtype if X.dtype in (np.float32, np.float64) else np.float64)
    return dataclasses.replace(_labelled(X, y, task, source), columns=columns)


def _labelled(X: np.ndarray, y: np.ndarray, task: str, source: str) -> Dataset:
    yf = y.astype(np.float64)
    if not np.all(np.isfinite(yf)):
        raise DataError("path", f"the labels in {source} are not all finite (accepted: finite numbers)")
    if yf.ndim == 2 and yf.shape[1] > 1:
        if task in ("auto", "regression"):
            return Dataset(X, np.ascontiguousarray(yf), "regression", 0)
        raise DataError("task", f"{task} needs one class label per example, but the labels in {source} have shape "
                                f"{yf.shape} (accepted: regression; store one-hot labels as y.argmax(1))")
    yf = yf.reshape(-1)
    values = np.unique(yf)
    integral = bool(np.all(values == np.round(values)))
    if task == "auto":
        if not integral:
            task = "regression"
        elif len(values) < 2:
            raise DataError("task", f"auto found a single label value {values[0]:g} in {source} "
                                    "(accepted: at least 2 classes, or task regression)")
        else:
            task = "binary" if len(values) == 2 else "multiclass"
    if task == "regression":
        return Dataset(X, yf.reshape(-1, 1), "regression", 0)
    if not integral:
        odd = values[values != np.round(values)][0]
        raise DataError("task", f"{task} needs integer class labels, but {source} has label {odd:g} "
                                "(accepted: regression, or auto)")
    if task == "binary":
        if len(values) > 2:
            shown = listed(values.astype(np.int64).tolist(), 10)
            raise DataError("task", f"binary does not fit the labels of {source}: {len(values)} distinct values "
                                    f"({shown}) (accepted: multiclass, or auto)")
        if np.all((values == 0) | (values == 1)):
            return Dataset(X, yf.astype(np.int64), "binary", 2)
        if len(values) < 2:
            raise DataError("task", f"binary needs labels 0/1 or two distinct values, but {source} has only "
                                    f"{values[0]:g}")
        return Dataset(X, (yf == values[1]).astype(np.int64), "binary", 2)
    if len(values) < 2:
        raise DataError("task", f"multiclass needs at least 2 distinct labels, but {source} has only {values[0]:g}")
    return Dataset(X, np.searchsorted(values, yf).astype(np.int64), "multiclass", len(values))


# ---------------------------------------------------------------- labels vs. loss

_LOSS_TASKS = MappingProxyType({"bce": ("binary",), "softmax_ce": ("binary", "multiclass"), "mse": ("regression",)})
_EXPECTED_LOSS = MappingProxyType({"binary": "bce", "multiclass": "softmax_ce", "regression": "mse"})


def expected_loss(task: str) -> str:
    """The natural loss of a task: binary -> bce, multiclass -> softmax_ce, regression -> mse."""
    return _EXPECTED_LOSS[task]


def check_labels(ds: Dataset, loss: str, path: str = "loss") -> None:
    """Raise OptbenchError when the dataset's labels do not fit `loss` (mse on class labels is rejected too)."""
    if loss not in _LOSS_TASKS:
        raise OptbenchError(f"{path}: unknown loss {format_value(loss)} (accepted: {', '.join(_LOSS_TASKS)})")
    if ds.task in _LOSS_TASKS[loss]:
        return
    what = "regression targets" if ds.task == "regression" else f"{ds.task} labels ({ds.n_classes} classes)"
    fits = ", ".join(k for k, tasks in _LOSS_TASKS.items() if ds.task in tasks)
    hint = " (for numeric targets read from a file, set data.task: regression)" if loss == "mse" else ""
    raise OptbenchError(f"{path}: {loss} does not fit {what}; accepted for this data: {fits}{hint}")

