"""Standardization with training statistics, chunk by chunk: x' = (x - mean) / std, written in the training dtype.

The statistics and the arithmetic are float64 whatever the stored dtype, and the sums run over the examples
in order, so mean and std equal X.astype(float64).mean(0) and .std(0) bit for bit, and a float32 result is
the float64 result rounded once: the same numbers as standardizing a float64 copy, without the copy.
Temporaries are a few CHUNK_BYTES of float64 at a time, never the size of the data.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

CHUNK_BYTES = 2 * 2**20  # float64 values per chunk: small beside the data, large beside a NumPy call's overhead


class BadValue(Exception):
    """Value x[i, j] (of the array being transformed) whose result `value` fails the check `kind`."""

    def __init__(self, kind: str, i: int, j: int, value: float):
        super().__init__(f"{kind} at [{i}, {j}]")
        self.kind, self.i, self.j, self.value = kind, i, j, value


def chunk_rows(X: np.ndarray) -> int:
    """Rows per chunk: CHUNK_BYTES of float64 (all rows for a single feature: see column_stats)."""
    D = int(np.prod(X.shape[1:], dtype=np.int64)) or 1
    return len(X) if D == 1 else max(1, CHUNK_BYTES // (8 * D))


def _ordered_sum(X: np.ndarray, fill: Callable[[np.ndarray, np.ndarray], None], rows: int) -> np.ndarray:
    """sum_i f(X[i]) over axis 0, added row after row as NumPy's axis-0 reduction adds them (bit-identical):
    each chunk's f (written by fill(chunk, out)) is reduced below the running sum, in one reused buffer."""
    buf = np.empty((rows + 1, X.shape[1]), dtype=np.float64)
    acc = np.zeros(X.shape[1], dtype=np.float64)
    for a in range(0, len(X), rows):
        k = min(rows, len(X) - a)
        fill(X[a : a + k], buf[1 : k + 1])
        if a:
            buf[0] = acc
        np.add.reduce(buf[int(a == 0) : k + 1], axis=0, out=acc)
    return acc


def column_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, min, max), each (D,) float64, of X (N, D); std as np.std (ddof 0).

    One feature (D = 1) is reduced whole: NumPy sums a contiguous column pairwise, not row after row.
    """
    n = len(X)
    rows = chunk_rows(X)
    if rows >= n:
        X64 = X.astype(np.float64, copy=False)
        return X64.mean(axis=0), X64.std(axis=0), X64.min(axis=0), X64.max(axis=0)
    mean = _ordered_sum(X, lambda c, out: np.copyto(out, c), rows) / n

    def square(c, out):
        np.subtract(c, mean, out=out)
        np.multiply(out, out, out=out)

    std = np.sqrt(_ordered_sum(X, square, rows) / n)
    lo = np.min([X[a : a + rows].min(axis=0) for a in range(0, n, rows)], axis=0).astype(np.float64)
    hi = np.max([X[a : a + rows].max(axis=0) for a in range(0, n, rows)], axis=0).astype(np.float64)
    return mean, std, lo, hi


def bound(mean: np.ndarray, std: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """The largest |(x - mean) / std| over lo <= x <= hi, as computed (rounding is monotonic): NaN or inf
    when some result may not be finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.max(np.maximum(hi - mean, mean - lo) / std, initial=0.0))


def transformed(X: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None, dtype, *,
                in_place: bool, largest: float = np.nan) -> np.ndarray:
    """(X - mean) / std (or X itself when mean is None) in `dtype`, computed in float64 chunk by chunk.

    In place when allowed and X already has `dtype`; else one new array. BadValue("nonfinite") when a
    standardized value is not finite, BadValue("range") when it exceeds what `dtype` holds; reported as
    a whole-array check would (the first column holding one, its first row), with X left as it was there.
    `largest` (see bound): known to be finite and within `dtype`, the checks are skipped.
    """
    dtype = np.dtype(dtype)
    if mean is None and X.dtype == dtype:
        return X
    out = X if in_place and X.dtype == dtype else np.empty(X.shape, dtype=dtype)
    limit = None if dtype == np.float64 else float(np.finfo(dtype).max)
    rows = max(1, CHUNK_BYTES // (8 * max(1, X.shape[1])))

    def f(c):
        v = c.astype(np.float64)
        if mean is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                v -= mean
                v /= std
        return v

    checks = ([("nonfinite", lambda v: ~np.isfinite(v))] if mean is not None else []) + (
        [("range", lambda v: np.abs(v) > limit)] if limit is not None else [])
    if np.isfinite(largest) and (limit is None or largest <= limit):
        checks = []
    buf = np.empty((min(rows, len(X)), X.shape[1]), dtype=np.float64)
    for a in range(0, len(X), rows):
        v = buf[: min(rows, len(X) - a)]
        np.copyto(v, X[a : a + len(v)])
        if mean is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                np.subtract(v, mean, out=v)
                np.divide(v, std, out=v)
        for kind, bad in checks:
            if bad(v).any():
                raise _first_bad(X, a, rows, f, bad, kind)
        out[a : a + len(v)] = v
    return out


def _first_bad(X, start: int, rows: int, f, bad, kind: str) -> BadValue:
    """The first column of f(X[start:]) holding a bad value, and its first row (rows before start hold none)."""
    cols = np.zeros(X.shape[1], dtype=bool)
    for a in range(start, len(X), rows):
        cols |= bad(f(X[a : a + rows])).any(axis=0)
    j = int(np.argmax(cols))
    for a in range(start, len(X), rows):
        v = f(X[a : a + rows])
        hit = np.flatnonzero(bad(v[:, j]))
        if len(hit):
            return BadValue(kind, a + int(hit[0]), j, float(v[hit[0], j]))
    raise AssertionError("no bad value found again")  # pragma: no cover - f is deterministic
