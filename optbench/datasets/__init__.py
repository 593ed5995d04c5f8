"""File formats users already have on disk, and scikit-learn's bundled sets: one small module per format.

`LOADERS` maps dataset names to factories that return a `Loaded` (their own test split, if any);
`optbench.data.registry` registers them beside the generators. `PATH_KEYS` are options holding file paths,
resolved against the config file's folder.
"""

from optbench.datasets import cifar, idx, npz_splits, sklearn_sets
from optbench.datasets.base import Loaded, LoaderError

LOADERS = {
    "idx": idx.idx,
    "cifar10": cifar.cifar10,
    "npz_splits": npz_splits.npz_splits,
    **{name: getattr(sklearn_sets, name) for name in ("digits", "iris", "breast_cancer", "wine", "diabetes")},
}

PATH_KEYS = ("path", "images", "labels", "test_images", "test_labels")

__all__ = ["LOADERS", "PATH_KEYS", "Loaded", "LoaderError"]
