"""Splitting a dataset into training, validation (a fraction, or one of k folds) and test parts, standardized with
training statistics: x' = (x - mean) / std, chunk by chunk, written in the training dtype."""

from __future__ import annotations

import dataclasses

import numpy as np

from optbench import standardize as standardize_mod
from optbench.data.dataset import Dataset, Split
from optbench.errors import OptbenchError


def _take(ds: Dataset, idx: np.ndarray) -> Dataset:
    return dataclasses.replace(ds, X=np.ascontiguousarray(ds.X[idx]), y=np.ascontiguousarray(ds.y[idx]))


def _scaled(ds: Dataset | None, mean: np.ndarray | None, std: np.ndarray | None, dtype=np.float64,
            dtype_path: str = "train.dtype", *, own: bool = False, largest: float = np.nan) -> Dataset | None:
    """(X - mean) / std (X as is when mean is None) in `dtype`, chunk by chunk (standardize_mod.transformed); in place
    when `own` (the arrays are this pipeline's), refused where a value does not stay finite or fit `dtype`."""
    if ds is None:
        return None
    try:
        X = standardize_mod.transformed(ds.X, mean, std, dtype, in_place=own, largest=largest)
    except standardize_mod.BadValue as bad:
        if bad.kind == "nonfinite":
            raise OptbenchError(f"data: {ds.column(bad.j)}: the value {ds.X[bad.i, bad.j]:.6g} is not finite once "
                                "standardized (accepted: values within float64 after (x - mean) / std, or "
                                "data.standardize: false)") from None
        raise _dtype_error(dtype_path, np.dtype(dtype), bad.value, ds.column(bad.j), mean is not None) from None
    return ds if X is ds.X else dataclasses.replace(ds, X=X)


def _dtype_error(path: str, dtype: np.dtype, value: float, column: str, standardized: bool) -> OptbenchError:
    limit = float(np.finfo(dtype).max)
    return OptbenchError(f"{path}: {dtype} cannot hold the value {value:.6g} of {column} "
                         f"(accepted: float64, or |x| <= {limit:.3g}"
                         + (")" if standardized else "; data.standardize: true scales it)"))


def check_dtype(split: Split, dtype: str, path: str = "train.dtype") -> None:
    """Every array the engine casts to `dtype` stays finite there (float32 overflows beyond 3.4e38); features
    loaded in `dtype` were checked as they were written."""
    limit = float(np.finfo(np.dtype(dtype)).max)
    for part in (split.train, split.val, split.test):
        if part is None:
            continue
        if part.X.dtype != np.dtype(dtype):
            big = np.abs(part.X) > limit
            if big.any():
                j = int(np.argmax(big.any(axis=0)))
                raise _dtype_error(path, np.dtype(dtype), part.X[int(np.argmax(big[:, j])), j], part.column(j),
                                   split.mean is not None)
        if part.task == "regression" and np.any(np.abs(part.y) > limit):
            v = part.y.flat[int(np.argmax(np.abs(part.y) > limit))]
            raise OptbenchError(f"{path}: {dtype} cannot hold the regression target {v:.6g} "
                                f"(accepted: float64, or |y| <= {limit:.3g})")


def split(
    ds: Dataset, *, val_fraction: float = 0.0, standardize: bool = True, rng: np.random.Generator,
    path: str = "val_fraction", folds: int | None = None, fold: int = 0, test_fraction: float = 0.0,
    test_path: str = "test_fraction", dtype=np.float64, dtype_path: str = "train.dtype", own: bool = False,
) -> Split:
    """Random permutation; the last round(val_fraction * N) examples validate; standardize with training statistics.

    With `folds`: the permutation is cut into `folds` near-equal parts (np.array_split); part `fold`
    validates and the others, in permutation order, train. The folds of one seed partition the examples.
    With `test_fraction`: the last round(test_fraction * N) examples of the permutation are held out as
    the test part first, and the rest is split as above (val_fraction stays a fraction of all N).
    test_fraction 0 draws and splits exactly as before the test split existed.
    Features come out in `dtype`; `own`: ds is this caller's to overwrite (standardized in place).
    """
    n = len(ds.y)
    n_test = round(test_fraction * n)
    if test_fraction > 0 and n_test < 1:
        raise OptbenchError(f"{test_path}: {test_fraction} is invalid: leaves no test example of {n} "
                            f"(accepted: 0, or more than {0.5 / n:.3g})")
    if n - n_test < 2:
        raise OptbenchError(f"{test_path}: {test_fraction} is invalid: leaves {n - n_test} of {n} examples to train "
                            "and validate on (accepted: a smaller fraction)")
    if n_test:
        perm = rng.permutation(n)
        test, ds = _take(ds, perm[n - n_test :]), _take(ds, perm[: n - n_test])
        kept = _split_rest(ds, val_fraction, standardize, rng, path, folds, fold, n, dtype, dtype_path, True)
        return with_test(kept, test, dtype, dtype_path, own=True)
    return _split_rest(ds, val_fraction, standardize, rng, path, folds, fold, n, dtype, dtype_path, own)


def _split_rest(ds: Dataset, val_fraction: float, standardize: bool, rng: np.random.Generator, path: str,
                folds: int | None, fold: int, n_all: int, dtype, dtype_path: str, own: bool) -> Split:
    """Training and validation parts of `ds` (all examples but the test part); fractions are of all n_all."""
    n = len(ds.y)
    if folds is not None:
        if folds > n:
            raise OptbenchError(f"{path}: {folds} is invalid: more folds than the {n} examples (accepted: 2..{n})")
        parts = np.array_split(rng.permutation(n), folds)
        train = _take(ds, np.concatenate(parts[:fold] + parts[fold + 1 :]))
        return _standardized(train, _take(ds, parts[fold]), standardize, dtype, dtype_path, True)
    n_val = round(val_fraction * n_all)
    if val_fraction > 0 and n_val < 1:
        raise OptbenchError(f"{path}: {val_fraction} is invalid: leaves no validation example of {n_all} "
                            f"(accepted: 0, or more than {0.5 / n_all:.3g})")
    if n - n_val < 1:
        raise OptbenchError(f"{path}: {val_fraction} is invalid: leaves no training example of {n_all}"
                            + (f" after the {n_all - n} test examples" if n < n_all else "")
                            + " (accepted: a smaller fraction)")
    if n_val:
        perm = rng.permutation(n)
        train, val = _take(ds, perm[: n - n_val]), _take(ds, perm[n - n_val :])
        own = True  # fresh copies
    else:
        train, val = ds, None  # no validation: keep the dataset's own order
    return _standardized(train, val, standardize, dtype, dtype_path, own)


def with_test(parts: Split, test: Dataset, dtype=np.float64, dtype_path: str = "train.dtype", *,
              own: bool = False) -> Split:
    """`parts` with the test part, scaled by the training statistics, in `dtype`."""
    return Split(parts.train, parts.val, parts.mean, parts.std, _scaled(test, parts.mean, parts.std, dtype, dtype_path, own=own))


def _standardized(train: Dataset, val: Dataset | None, standardize: bool, dtype=np.float64,
                  dtype_path: str = "train.dtype", own: bool = False) -> Split:
    """Training statistics (float64, standardize.column_stats) applied to both parts, written in `dtype`."""
    if not standardize:
        return Split(_scaled(train, None, None, dtype, dtype_path, own=own),
                     _scaled(val, None, None, dtype, dtype_path, own=own), None, None)
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std, lo, hi = standardize_mod.column_stats(train.X)
        std[hi - lo == 0] = 1.0  # constant feature: centre only
    # |x - mean| beyond ~1.3e154 squares past float64: the std overflows and (x - mean) / inf zeroes the feature
    bad = ~(np.isfinite(mean) & np.isfinite(std))
    if bad.any():
        j = int(np.argmax(bad))
        top = train.X[int(np.argmax(np.abs(train.X[:, j]))), j]
        raise OptbenchError(f"data: {train.column(j)}: its standard deviation overflows float64 (values up to "
                            f"{top:.6g}; accepted: |x| below about 1e154, or data.standardize: false)")
    largest = standardize_mod.bound(mean, std, lo, hi)  # within float32: no value needs checking
    return Split(_scaled(train, mean, std, dtype, dtype_path, own=own, largest=largest),
                 _scaled(val, mean, std, dtype, dtype_path, own=own), mean, std)
