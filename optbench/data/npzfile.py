"""A dataset from two arrays of a local .npz file (np.savez; read without pickle, headers checked first)."""

from __future__ import annotations

import numpy as np

from optbench.data.dataset import DataError, Dataset, TaskOption
from optbench.data.labels import from_arrays, listed
from optbench.datasets.base import read_dtype
from optbench.errors import OptbenchError
from optbench.files import MissingArrays, safe_npz_arrays


def _npz_array(a: np.ndarray, key: str, path: str) -> np.ndarray:
    if a.ndim == 0 or len(a) == 0:
        raise DataError("path", f"array {key!r} in {path} has dtype {a.dtype} and shape {a.shape} "
                                "(accepted: a non-empty numeric array, one row per example)")
    return a


def npz(
    *, path: str, x_key: str = "X", y_key: str = "y", task: TaskOption = "auto",
    dtype: np.dtype = np.dtype(np.float64), rng: np.random.Generator,
) -> Dataset:
    """Features and labels from two arrays of a local .npz file (np.savez; no pickle)."""
    try:
        arrays = safe_npz_arrays(path, [x_key] if x_key == y_key else [x_key, y_key])
    except MissingArrays as err:
        key, option = (x_key, "x_key") if x_key in err.missing else (y_key, "y_key")
        raise DataError(option, f"{key!r} is not an array in {path} (keys present: {listed(err.present) or 'none'})") from None
    except OptbenchError as err:
        raise DataError("path", str(err)) from None
    X, y = _npz_array(arrays[x_key], x_key, path), _npz_array(arrays[y_key], y_key, path)
    if y.ndim > 2 or len(y) != len(X):
        raise DataError("path", f"array {y_key!r} in {path} has shape {y.shape} but {x_key!r} has {len(X)} rows "
                                "(accepted: one label or target row per example)")
    # 1-D -> one feature; images -> flattened; float32 stays float32 for float32 training (no copy)
    X = X.reshape(len(X), -1).astype(read_dtype(X.dtype, dtype), copy=False)
    bad = np.argwhere(~np.isfinite(X)) if X.dtype.kind == "f" and not np.isfinite(X).all() else ()
    if len(bad):
        raise DataError("path", f"array {x_key!r} in {path} holds {X[tuple(bad[0])]} at row {bad[0][0]}, "
                                f"column {bad[0][1]} (accepted: finite features)")
    columns = tuple(f"{x_key}[:, {j}] of {path}" for j in range(X.shape[1]))
    return from_arrays(X, y, task, path, columns)
