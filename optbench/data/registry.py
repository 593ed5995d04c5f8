"""DATASETS: every name a `data:` section may give, a generator or a file format, and its factory."""

from __future__ import annotations

from optbench.data import csvfile, npzfile, synthetic
from optbench.datasets import LOADERS
from optbench.registry import Registry


def _datasets() -> Registry:
    """The generators, then the local CSV/NPZ files, then the formats of optbench.datasets (the order of
    `optbench list datasets` and of every `accepted:` list)."""
    datasets = Registry("dataset")
    for factory in (synthetic.moons, synthetic.circles, synthetic.spiral, synthetic.blobs, synthetic.xor,
                    synthetic.sine, csvfile.csv, npzfile.npz):
        datasets.register()(factory)
    for name, loader in LOADERS.items():
        datasets.register(name)(loader)
    return datasets


DATASETS = _datasets()
