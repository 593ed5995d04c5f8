"""Generated datasets: 2-D toy problems (moons, circles, spiral, blobs, xor) and 1-D sine regression, from an rng.

Each generator's keyword-only signature is its config schema (DATASETS in optbench.data.registry); X (N, D)
float64 examples as rows, shuffled, y (N,) int64 labels (sine: (N, 1) float64 targets).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np
from pydantic import Field

from optbench.data.dataset import DataError, Dataset, Task
from optbench.registry import NonNegative, NonNegativeInt, PositiveInt, Unit

Samples = Annotated[int, Field(ge=2)]
Classes = Annotated[int, Field(ge=2)]


def _even_labels(n: int, k: int) -> np.ndarray:
    """Labels 0..k-1 in blocks whose sizes differ by at most one (the first n % k blocks get the extra example)."""
    if n < k:
        raise DataError("n_samples", f"{n} is invalid: needs at least one example per class (accepted: >= {k})")
    return np.repeat(np.arange(k, dtype=np.int64), n // k + (np.arange(k) < n % k))


def _shuffled(X: np.ndarray, y: np.ndarray, task: Task, n_classes: int, rng: np.random.Generator) -> Dataset:
    perm = rng.permutation(len(y))
    return Dataset(np.ascontiguousarray(X[perm], dtype=np.float64), y[perm].astype(np.int64), task, n_classes)


def _sklearn_order(X: np.ndarray, y: np.ndarray, noise: float, random_state: int) -> Dataset:
    """scikit-learn's generators' tail: shuffle (sklearn.utils.shuffle), then Gaussian noise, from one RandomState."""
    state = np.random.RandomState(random_state)
    perm = np.arange(len(y))
    state.shuffle(perm)
    X = X[perm] + state.normal(scale=noise, size=X.shape)
    return Dataset(np.ascontiguousarray(X), y[perm].astype(np.int64), "binary", 2)


def moons(
    *, n_samples: Samples = 300, noise: NonNegative = 0.2, random_state: NonNegativeInt | None = None,
    rotate: Annotated[float, Field(ge=-360, le=360)] = 0.0, rng: np.random.Generator,
) -> Dataset:
    """Two interleaving half circles (sklearn's make_moons), 2 features, binary.

    random_state: scikit-learn's make_moons(n_samples, noise=noise, random_state=random_state) point for point
    (shuffle, then noise, from a RandomState) instead of optbench's own draw from data.seed.
    rotate: degrees counterclockwise about the moons' centre (0.5, 0.25), after the noise: the same points,
    turned (a shifted problem to fine-tune on).
    """
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.concatenate([np.c_[np.cos(t_out), np.sin(t_out)], np.c_[1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5]])
    if random_state is not None:
        ds = _sklearn_order(X, np.repeat([0, 1], [n_out, n_in]), noise, random_state)
    else:
        X += noise * rng.standard_normal(X.shape)
        ds = _shuffled(X, np.repeat([0, 1], [n_out, n_in]), "binary", 2, rng)
    return ds if rotate == 0 else dataclasses.replace(ds, X=_rotated(ds.X, rotate, (0.5, 0.25)))


def _rotated(X: np.ndarray, degrees: float, centre: tuple[float, float]) -> np.ndarray:
    """Points (N, 2) turned counterclockwise by `degrees` about `centre`: (x - c) R^T + c."""
    a = np.deg2rad(degrees)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(centre)
    return np.ascontiguousarray((X - c) @ R.T + c)


def circles(
    *, n_samples: Samples = 300, noise: NonNegative = 0.1, factor: Unit = 0.5,
    random_state: NonNegativeInt | None = None, rng: np.random.Generator,
) -> Dataset:
    """Two concentric circles, the inner one `factor` times the outer radius (sklearn's make_circles), binary.

    random_state: scikit-learn's make_circles(n_samples, noise=noise, factor=factor, random_state=random_state)
    point for point, as for moons.
    """
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.concatenate([np.c_[np.cos(t_out), np.sin(t_out)], factor * np.c_[np.cos(t_in), np.sin(t_in)]])
    if random_state is not None:
        return _sklearn_order(X, np.repeat([0, 1], [n_out, n_in]), noise, random_state)
    X += noise * rng.standard_normal(X.shape)
    return _shuffled(X, np.repeat([0, 1], [n_out, n_in]), "binary", 2, rng)


def spiral(
    *, n_samples: Samples = 300, classes: Classes = 3, noise: NonNegative = 0.2, rng: np.random.Generator
) -> Dataset:
    """CS231n's spiral: `classes` arms, radius 0..1, angle 4 rad per arm plus noise, multiclass."""
    y = _even_labels(n_samples, classes)
    counts = np.bincount(y, minlength=classes)
    r = np.concatenate([np.linspace(0, 1, c) for c in counts])
    t = np.concatenate([np.linspace(4 * j, 4 * (j + 1), c) for j, c in enumerate(counts)])
    t += noise * rng.standard_normal(n_samples)
    return _shuffled(np.c_[r * np.sin(t), r * np.cos(t)], y, "multiclass", classes, rng)


def blobs(
    *, n_samples: Samples = 300, classes: Classes = 3, dim: PositiveInt = 2, spread: NonNegative = 1.0,
    rng: np.random.Generator,
) -> Dataset:
    """Gaussian clusters (std `spread`) around random centers in [-5, 5]^dim; binary if classes == 2."""
    y = _even_labels(n_samples, classes)
    centers = rng.uniform(-5, 5, (classes, dim))
    X = centers[y] + spread * rng.standard_normal((n_samples, dim))
    return _shuffled(X, y, "binary" if classes == 2 else "multiclass", classes, rng)


def xor(*, n_samples: Samples = 300, noise: NonNegative = 0.1, rng: np.random.Generator) -> Dataset:
    """Four clusters at (±1, ±1), label 1 where the signs differ (XOR), binary."""
    # Round-robin over clusters with alternating labels: balanced classes for any n_samples >= 2.
    centers = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    c = centers[np.arange(n_samples) % 4]
    X = c + noise * rng.standard_normal(c.shape)
    return _shuffled(X, (c[:, 0] * c[:, 1] < 0).astype(np.int64), "binary", 2, rng)


def sine(*, n_samples: Samples = 300, noise: NonNegative = 0.1, rng: np.random.Generator) -> Dataset:
    """1-D regression: x uniform on [-pi, pi], y = sin(x) + Gaussian noise."""
    X = rng.uniform(-np.pi, np.pi, (n_samples, 1))
    y = np.sin(X) + noise * rng.standard_normal((n_samples, 1))
    return Dataset(X, y, "regression", 0)
