"""scikit-learn's bundled data sets by name (no download): digits, iris, breast_cancer, wine, diabetes.

scikit-learn is an optional extra: `pip install 'optbench[datasets]'`; without it each name fails with one line.
"""

from __future__ import annotations

import importlib

import numpy as np

from optbench.datasets.base import Loaded, LoaderError


def _bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        sets = importlib.import_module("sklearn.datasets")
    except ImportError:
        raise LoaderError("name", f"{name} is one of scikit-learn's bundled sets, and scikit-learn is not installed "
                                  "(accepted: pip install 'optbench[datasets]', or another data.name)") from None
    X, y = getattr(sets, f"load_{name}")(return_X_y=True)
    return np.ascontiguousarray(X, dtype=np.float64), y


def _classes(name: str) -> Loaded:
    X, y = _bundled(name)
    k = int(y.max()) + 1
    return Loaded(X, y.astype(np.int64), "binary" if k == 2 else "multiclass", k)


def digits(*, rng: np.random.Generator) -> Loaded:
    """scikit-learn's 8x8 handwritten digits: 1797 examples, 64 features (0..16), 10 classes."""
    return _classes("digits")


def iris(*, rng: np.random.Generator) -> Loaded:
    """Fisher's iris (scikit-learn's copy): 150 examples, 4 features, 3 classes."""
    return _classes("iris")


def breast_cancer(*, rng: np.random.Generator) -> Loaded:
    """Wisconsin breast cancer (scikit-learn's copy): 569 examples, 30 features, binary."""
    return _classes("breast_cancer")


def wine(*, rng: np.random.Generator) -> Loaded:
    """UCI wine recognition (scikit-learn's copy): 178 examples, 13 features, 3 classes."""
    return _classes("wine")


def diabetes(*, rng: np.random.Generator) -> Loaded:
    """scikit-learn's diabetes regression: 442 examples, 10 features, a disease-progression target."""
    X, y = _bundled("diabetes")
    return Loaded(X, y.astype(np.float64).reshape(-1, 1), "regression", 0)
