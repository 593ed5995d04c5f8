"""The held-out test split (data.test_fraction) and the metrics compare ranks on: nothing selects on test."""

import json
import math

import numpy as np
import pytest

from optbench.compare import compare
from optbench.compare.stats import health
from optbench.config import expand
from optbench.data import load
from optbench.errors import OptbenchError
from optbench.execute import execute
from optbench.metrics import METRICS, SELECTABLE, metric_name, split_of

MOONS = {"name": "moons", "n_samples": 200, "noise": 0.2, "seed": 3}
SMALL = {
    "name": "t", "seeds": [0, 1, 2], "data": MOONS, "model": {"hidden": [5, 2], "activation": "relu", "init": "he"},
    "loss": "bce", "train": {"epochs": 40, "batch_size": 64}, "optimizer": {"name": "adam", "lr": 0.02},
}


def rows_set(parts):
    return {tuple(r) for r in np.round(np.concatenate([p.X for p in parts if p is not None]), 12)}


@pytest.mark.parametrize("extra", [{"val_fraction": 0.2}, {}, {"folds": 4, "fold": 1}])
def test_test_split_is_held_out_first_and_the_rest_splits_as_before(extra):
    plain = load({**MOONS, **extra, "standardize": False})
    held = load({**MOONS, **extra, "standardize": False, "test_fraction": 0.25})
    assert plain.test is None and len(held.test.y) == 50
    # a partition of the same examples, test disjoint from training and validation
    assert rows_set([held.train, held.val, held.test]) == rows_set([plain.train, plain.val])
    assert not rows_set([held.test]) & rows_set([held.train, held.val])
    n_val = 0 if held.val is None else len(held.val.y)
    assert len(held.train.y) + n_val == 150
    if "val_fraction" in extra:
        assert n_val == 40  # val_fraction stays a fraction of all examples


def test_test_fraction_zero_is_the_split_of_before_and_resolves_without_the_key():
    a, b = load({**MOONS, "val_fraction": 0.2}), load({**MOONS, "val_fraction": 0.2, "test_fraction": 0})
    for x, y in ((a.train, b.train), (a.val, b.val)):
        assert np.array_equal(x.X, y.X) and np.array_equal(x.y, y.y)
    cfg = expand({**SMALL, "data": {**MOONS, "test_fraction": 0.0}})[0]
    assert "test_fraction" not in cfg["data"]  # config.yaml and config hashes as before the key existed
    assert expand({**SMALL, "data": {**MOONS, "test_fraction": 0.2}})[0]["data"]["test_fraction"] == 0.2


def test_test_split_is_standardized_with_training_statistics():
    s = load({**MOONS, "val_fraction": 0.2, "test_fraction": 0.2})
    raw = load({**MOONS, "val_fraction": 0.2, "test_fraction": 0.2, "standardize": False})
    assert np.allclose(s.train.X.mean(0), 0) and not np.allclose(s.test.X.mean(0), 0)
    assert np.allclose(s.test.X, (raw.test.X - raw.train.X.mean(0)) / raw.train.X.std(0))


@pytest.mark.parametrize("data,message", [
    ({"test_fraction": 0.001}, "data.test_fraction: 0.001 is invalid: leaves no test example of 200"),
    ({"test_fraction": 0.996}, "data.test_fraction: 0.996 is invalid: leaves 1 of 200 examples"),
    ({"test_fraction": 1.0}, "data.test_fraction: 1.0 is invalid: input should be less than 1"),
    ({"test_fraction": 0.5, "val_fraction": 0.5}, "data.val_fraction: 0.5 is invalid: leaves no training example of 200 "
                                                  "after the 100 test examples"),
    ({"test_fraction": -0.1}, "data.test_fraction"),
])
def test_bad_test_fractions_name_the_key(data, message):
    with pytest.raises(OptbenchError) as err:
        load({**MOONS, **data})
    assert str(err.value).startswith(message), str(err.value)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """adam at two learning rates, 3 seeds, with validation and test splits."""
    root = tmp_path_factory.mktemp("heldout")
    cfgs = expand({**SMALL, "data": {**MOONS, "val_fraction": 0.2, "test_fraction": 0.2},
                   "variants": {"slow": {"optimizer": {"name": "adam", "lr": 0.002}}, "fast": {}}})
    assert not execute(cfgs, root)[1]
    return root


def test_the_test_split_is_measured_once_at_the_end(heldout):
    d = next(heldout.glob("t-fast-s0-*"))
    fe = json.loads((d / "summary.json").read_text())["final_eval"]
    assert {"test_cost", "test_acc"} <= set(fe) and 0 < fe["test_cost"] < 1 and 0.5 < fe["test_acc"] <= 1
    assert "test" not in (d / "metrics.csv").read_text().splitlines()[0]  # never per epoch
    r = {r.name: r for r in compare([heldout]).rows}["t/fast"]
    assert r.mean("final_test_acc") == pytest.approx(np.mean([f.values["final_test_acc"] for f in r.runs]))
    assert all(f.has_test for f in r.runs)


def test_compare_ranks_on_final_val_cost_by_default_and_any_metric_on_request(heldout, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: the headers stay on one line
    c = compare([heldout])
    assert c.metric == "final_val_cost" and all(r.versus.metric == "final_val_cost" for r in c.rows)
    best = min(c.rows, key=lambda r: r.mean("final_val_cost"))
    assert c.best == best.name
    for m in ("final_test_acc", "best_val_acc", "final_train_cost"):
        c = compare([heldout], metric=m)
        sign = METRICS[m]
        assert c.metric == m and c.best == min(c.rows, key=lambda r: sign * r.mean(m)).name
    code, out, err = cli("compare", heldout, "--metric", "final_test_cost")
    assert code == 0 and "vs best: " in out and "on final test cost" in out and "Δ final test cost" in out
    recs = json.loads(cli("compare", heldout, "-f", "json")[1])
    assert {r["metric"] for r in recs} == {r["diff_metric"] for r in recs} == {"final_val_cost"}
    assert all(r["final_test_cost"] is not None for r in recs)


@pytest.mark.parametrize("args,message", [
    (["--metric", "best_test_cost"], "error: --metric: 'best_test_cost' is not a per-run metric (the test split has no best"),
    (["--metric", "val_cost"], "error: --metric: 'val_cost' is not a per-run metric (accepted: final_train_cost,"),
])
def test_bad_metric_is_one_line_and_exit_2(cli, tmp_path, args, message):
    code, out, err = cli("compare", tmp_path, *args)
    assert code == 2 and err.startswith(message) and len(err.strip().splitlines()) == 1, err


def test_old_sort_keys_still_rank_and_pair():
    assert {"final_train_cost", "best_cost", "best_acc", "auc"} <= set(METRICS)
    assert split_of("final_val_acc") == "val" and split_of("auc") == "train" and split_of("best_cost") is None
    assert metric_name("best_cost", "val") == "best val cost" and metric_name("final_test_acc") == "final test acc"
    assert not any("test" in m for m in SELECTABLE) and "final_test_cost" in METRICS


def _facts(**kw):
    from optbench.compare.read import RunFacts

    base = dict(path=None, label="x", seed=0, status="completed", epochs=100, config={}, created="", split="val",
                final_train_cost=0.5, best_cost=0.5, best_cost_epoch=1.0, best_acc=0.5, best_acc_epoch=1.0, auc=0.6,
                seconds=1.0, initial_cost=math.log(3), expected_cost=math.log(3), update_ratio=1e-3,
                fingerprints=None, reached=())
    return RunFacts(**{**base, **kw})


def test_health_rules():
    dead = [_facts(seed=s, final_train_cost=0.95 * math.log(3)) for s in range(3)]
    assert health(dead).flags == ("not learning",)
    # a large initial cost that falls to ln C has learned nothing either: the lower of the two counts
    assert health([_facts(initial_cost=2.5 * math.log(3), final_train_cost=math.log(3))]).flags == ("not learning",)
    assert health([_facts(initial_cost=2.5 * math.log(3), final_train_cost=0.1)]).flags == ()  # He-like init: ok
    assert health([_facts(initial_cost=3.5 * math.log(3), final_train_cost=0.1)]).flags[0].startswith("init cost")
    assert health([_facts(update_ratio=3e-6)]).flags == ("update ratio 3.0e-06",)
    # a 2-D test function: no initial-cost or update-ratio heuristics, but not learning still counts
    point = dict(problem=True, expected_cost=None, initial_cost=10.0, update_ratio=0.2)
    assert health([_facts(final_train_cost=1e-9, **point)]).flags == ()
    assert health([_facts(final_train_cost=9.5, **point)]).flags == ("not learning",)
