"""Data loaded once, in the training dtype: one load per distinct data section, float32 without a float64 copy."""
import copy
import tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import CONFIGS
from optbench import data, standardize
from optbench.config import expand, load_experiment
from optbench.datacache import DataCache
from optbench.execute import execute
from optbench.train import Trainer
from optbench.trainers import make_trainer


@pytest.fixture
def counted(monkeypatch):
    """data.load wrapped: every call recorded as (data section name, dtype of the features it returned)."""
    calls = []
    real = data.load

    def load(section, **kw):
        split = real(section, **kw)
        calls.append((section["name"], split.train.X.dtype.name))
        return split

    monkeypatch.setattr(data, "load", load)
    return calls


def npz_file(tmp_path: Path, n: int = 400, d: int = 6, dtype=np.float32) -> Path:
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((n, d)) * rng.uniform(0.5, 20, d) + rng.uniform(-5, 5, d)).astype(dtype)
    p = tmp_path / "d.npz"
    np.savez(p, X=X, y=np.arange(n) % 3)
    return p


def experiment(path: Path, dtype: str = "float32") -> dict:
    """Three labels; two of them on the same data section, one on another (a different validation fraction)."""
    return {
        "name": "once", "seeds": [0, 1],
        "data": {"name": "npz", "path": str(path), "val_fraction": 0.2},
        "model": {"hidden": [4]}, "train": {"epochs": 2, "batch_size": 50, "dtype": dtype},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "variants": {"sgd": {}, "adam": {"optimizer": {"name": "adam"}},
                     "other": {"data": {"val_fraction": 0.25}}},
    }


def test_a_multi_label_train_loads_each_distinct_section_once_validation_and_trainers_alike(tmp_path, counted):
    cfg = tmp_path / "once.yaml"
    cfg.write_text(yaml.safe_dump(experiment(npz_file(tmp_path))))
    cache = DataCache()
    cfgs = load_experiment(cfg, cache=cache)  # as `optbench train` does
    assert len(cfgs) == 6 and len(counted) == 2
    outcomes, interrupted = execute(cfgs, tmp_path / "runs", trainer=partial(make_trainer, cache=cache))
    assert not interrupted and len(outcomes) == 6
    assert counted == [("npz", "float32"), ("npz", "float32")]  # the trainers of three groups loaded nothing


def test_without_a_shared_cache_each_command_step_loads_again(tmp_path, counted):
    """The counter above counts what it should: a trainer given no cache loads its own copy."""
    cfgs = expand(experiment(npz_file(tmp_path)))
    assert len(counted) == 2
    Trainer(cfgs[:2])
    assert len(counted) == 3


def test_a_sweep_loads_each_fold_once_for_planning_grouping_and_training(tmp_path, counted):
    from optbench.sweep import run_sweep

    raw = experiment(npz_file(tmp_path), dtype="float64")
    raw["data"]["val_fraction"] = 0
    raw["variants"] = {"sgd": {}}
    raw["sweep"] = {"method": "grid", "params": {"optimizer.lr": [0.01, 0.1]}, "kfold": 3}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = run_sweep(path, runs_dir=tmp_path / "runs", jobs=1)
    assert out.statuses.get("completed") == 2 * 3 * 2
    assert sorted(counted) == [("npz", "float64")] * 3  # one load per fold, nothing reloaded after planning


def test_float32_training_gets_float32_arrays_from_the_loader_without_a_float64_copy(tmp_path, monkeypatch):
    n, d = 60000, 100  # 24 MB as float32; its float64 copy would be 48 MB more
    rng = np.random.default_rng(0)
    X = rng.random((n, d), dtype=np.float32) * 255
    np.savez(tmp_path / "big.npz", X=X, y=np.arange(n) % 10)
    monkeypatch.setattr(standardize, "CHUNK_BYTES", 2**20)
    section = {"name": "npz", "path": str(tmp_path / "big.npz")}
    tracemalloc.start()
    try:
        split = data.load(section, dtype=np.float32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert split.train.X.dtype == np.float32 and split.train.X.shape == (n, d)
    assert peak < 1.5 * X.nbytes, (peak, X.nbytes)  # the array as read, a quarter for isfinite, 1 MB chunks
    tr = Trainer(expand({"name": "t", "data": section, "model": {"hidden": [3]}, "loss": "softmax_ce",
                         "train": {"epochs": 1, "dtype": "float32"}, "optimizer": "sgd"}, cache=(c := DataCache()))[:1],
                 cache=c)
    assert tr.split.train.X.dtype == np.float32 and tr.data.train.dtype == np.float32 and c.loads == 1


@pytest.mark.parametrize("val_fraction", [0.0, 0.2])
def test_chunked_standardization_is_the_float64_formula_bit_for_bit_in_both_dtypes(tmp_path, monkeypatch, val_fraction):
    """float64: (x - mean) / std of a float64 copy exactly; float32: that result rounded once (what the trainer
    made of a float64 split before); with chunks small enough that every statistic spans many of them."""
    path = npz_file(tmp_path, n=3001, d=7)
    monkeypatch.setattr(standardize, "CHUNK_BYTES", 7 * 8 * 100)  # 100 rows a chunk
    section = {"name": "npz", "path": str(path), "val_fraction": val_fraction, "seed": 2}
    s64, s32 = data.load(section), data.load(section, dtype=np.float32)
    raw = np.load(path)["X"].astype(np.float64)
    if val_fraction:  # the split's permutation, drawn as load draws it
        split_rng = np.random.default_rng(np.random.SeedSequence(2).spawn(2)[1])
        perm = split_rng.permutation(len(raw))
        raw = raw[perm[: len(raw) - round(val_fraction * len(raw))]]
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    np.testing.assert_array_equal(s64.mean, mean)
    np.testing.assert_array_equal(s64.std, std)
    assert np.array_equal(s64.train.X, (raw - mean) / std) and s64.train.X.dtype == np.float64
    assert np.array_equal(s32.train.X, s64.train.X.astype(np.float32)) and s32.train.X.dtype == np.float32
    if val_fraction:
        assert np.array_equal(s32.val.X, s64.val.X.astype(np.float32))


def test_one_feature_statistics_are_numpys_pairwise_sums_too(monkeypatch):
    """A contiguous single column is summed pairwise by NumPy: it is reduced whole, not row after row."""
    monkeypatch.setattr(standardize, "CHUNK_BYTES", 64)
    X = np.random.default_rng(1).standard_normal((5000, 1)) * 1e3 + 7
    mean, std, lo, hi = standardize.column_stats(X)
    assert np.array_equal(mean, X.mean(axis=0)) and np.array_equal(std, X.std(axis=0))
    assert (lo, hi) == (X.min(), X.max())


def test_a_shipped_config_trains_on_the_arrays_a_float64_copy_gives_in_float64_and_float32():
    """configs/moons-optimizers.yaml's trainer matrix against (x - mean) / std of a fresh float64 generation,
    and the same config in float32 against that matrix rounded once."""
    cache = DataCache()
    cfgs = load_experiment(CONFIGS / "moons-optimizers.yaml", cache=cache)
    sec = cfgs[0]["data"]
    assert not sec["val_fraction"] and sec["standardize"]
    gen = data.DATASETS.build(sec["name"], {k: v for k, v in sec.items() if k in data.DATASETS.params(sec["name"])},
                              rng=np.random.default_rng(np.random.SeedSequence(sec["seed"]).spawn(2)[0]))
    expected = ((gen.X - gen.X.mean(0)) / gen.X.std(0)).T
    D = gen.X.shape[1]
    m64 = Trainer(cfgs[:1], cache=cache).data.train
    assert np.array_equal(m64[:D], expected) and cache.loads == 1
    f32 = load_experiment(CONFIGS / "moons-optimizers.yaml", sets=["train.dtype=float32"], cache=cache)
    m32 = Trainer(f32[:1], cache=cache).data.train
    assert m32.dtype == np.float32 and np.array_equal(m32[:D], expected.astype(np.float32)) and cache.loads == 2


def test_groups_on_one_section_share_the_trainer_layout_and_the_split_keeps_no_copy_beside_it(tmp_path):
    cache = DataCache()
    cfgs = expand(experiment(npz_file(tmp_path, n=3000, d=2000)), cache=cache)  # rows-major: over 16 MB
    sgd, adam = Trainer(cfgs[:2], cache=cache), Trainer(cfgs[2:4], cache=cache)
    assert sgd.data is adam.data and sgd.data.rows is not None
    split = cache.get(cfgs[0]["data"], "float32")
    assert split is sgd.split and np.shares_memory(split.train.X, sgd.data.rows)
    assert np.shares_memory(split.val.X, sgd.data.val)
    raw = data.load(cfgs[0]["data"], dtype=np.float32)  # the same numbers as loaded afresh
    assert np.array_equal(split.train.X, raw.train.X) and np.array_equal(split.val.X, raw.val.X)
    with pytest.raises(ValueError):  # what every group reads, none may write
        sgd.data.rows[0, 0] = 1.0
    assert cache.loads == 2  # the third label's section is another entry
