"""An .npz with split keys (x_train, y_train, x_test, y_test), as Keras' mnist.npz: the test arrays are the test split.

Read by files.safe_npz_arrays: headers checked against their bytes and the memory budget, nothing unpickled.
"""

from __future__ import annotations

import os

import numpy as np

from optbench.errors import OptbenchError
from optbench.files import MissingArrays, safe_npz_arrays
from optbench.datasets.base import Loaded, LoaderError, check_path, class_labels, first, read_dtype
from optbench.registry import PositiveInt

ACCEPTED = "an .npz archive written by np.savez with the split keys (as Keras' mnist.npz)"


def _arrays(path: str, keys: dict[str, str]) -> dict[str, np.ndarray]:
    """option -> the named numeric array of the archive, every header checked first (files.safe_npz_arrays)."""
    check_path(path, "path", ACCEPTED)
    if os.path.isdir(path):
        raise LoaderError("path", f"{path!r} is a directory (accepted: {ACCEPTED})")
    try:
        arrays = safe_npz_arrays(path, list(dict.fromkeys(keys.values())))
    except MissingArrays as err:
        option = next(o for o, k in keys.items() if k in err.missing)
        raise LoaderError(option, f"{keys[option]!r} is not an array in {path} (keys present: "
                                  f"{', '.join(err.present) or 'none'})") from None
    except OptbenchError as err:  # not a regular file, truncated, a header larger than its bytes, over the budget
        raise LoaderError("path", str(err)) from None
    out = {option: arrays[key] for option, key in keys.items()}
    for option, a in out.items():
        if a.dtype.kind not in "biuf" or a.ndim == 0 or len(a) == 0:
            raise LoaderError(option, f"array {keys[option]!r} in {path} has dtype {a.dtype} and shape {a.shape} "
                                      "(accepted: a non-empty numeric array, one row per example)")
    return out


def npz_splits(
    *, path: str, x_train: str = "x_train", y_train: str = "y_train", x_test: str = "x_test", y_test: str = "y_test",
    n_train: PositiveInt | None = None, dtype: np.dtype = np.dtype(np.float64), rng: np.random.Generator,
) -> Loaded:
    """Train and test arrays of one .npz (Keras' mnist.npz layout): images flattened, integer labels are classes."""
    a = _arrays(path, {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test})
    parts = []
    names = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for xk, yk in (("x_train", "y_train"), ("x_test", "y_test")):
        X, y = a[xk], a[yk]
        if y.ndim > 2 or len(y) != len(X):
            raise LoaderError(yk, f"array {names[yk]!r} in {path} has shape {y.shape} but {names[xk]!r} "
                                  f"has {len(X)} rows (accepted: one label or target row per example)")
        parts.append((X, y))
    (X, y), (Xt, yt) = parts
    if X.shape[1:] != Xt.shape[1:]:
        raise LoaderError("x_test", f"array {x_test!r} in {path} has examples of shape {Xt.shape[1:]} but {x_train!r} "
                                    f"has {X.shape[1:]} (accepted: the same shape)")
    n = first(len(X), n_train, path)
    X = X[:n].reshape(n, -1).astype(read_dtype(X.dtype, dtype), copy=False)  # the one copy, if any
    Xt = Xt.reshape(len(Xt), -1).astype(read_dtype(Xt.dtype, dtype), copy=False)
    for name, v in ((x_train, X), (x_test, Xt)):
        if not np.all(np.isfinite(v)):
            raise LoaderError("path", f"array {name!r} in {path} holds a non-finite value (accepted: finite features)")
    y = y[:n]
    if y.dtype.kind in "biu" and yt.dtype.kind in "biu":
        K = int(max(y.max(), yt.max())) + 1
        if K < 2:
            raise LoaderError("y_train", f"array {y_train!r} in {path} holds a single class (accepted: 2 or more)")
        y, yt = class_labels(y, K, "y_train", f"array {y_train!r} in {path}"), class_labels(
            yt, K, "y_test", f"array {y_test!r} in {path}")
        return Loaded(np.ascontiguousarray(X), y, "binary" if K == 2 else "multiclass", K, (Xt, yt))
    targets = [v.astype(np.float64).reshape(len(v), -1) for v in (y, yt)]
    if not all(np.all(np.isfinite(t)) for t in targets):
        raise LoaderError("path", f"the targets in {path} are not all finite (accepted: finite numbers)")
    return Loaded(np.ascontiguousarray(X), targets[0], "regression", 0, (Xt, targets[1]))
