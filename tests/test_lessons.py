"""Lesson tests: every shipped config is trained (shortened only where its lesson survives) and its lesson is
asserted through `optbench compare --format json`, as the README's table of configs states it.

Each test's docstring is that config's row of the README table, word for word (checked below), so the table
and the tests say the same thing. Each test also asserts the health flags compare gives every label.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import yaml

from conftest import CONFIGS, ROOT


def train(cli, runs, config: str, *sets: str):
    """`optbench train configs/CONFIG.yaml -q --runs-dir RUNS [--set ...]`; returns RUNS."""
    args = [x for s in sets for x in ("--set", s)]
    code, _, err = cli("train", CONFIGS / f"{config}.yaml", "-q", "--runs-dir", runs, *args)
    assert code == 0, err
    return runs


def compare_json(cli, *paths, metric: str | None = None) -> dict[str, dict]:
    """`optbench compare PATHS --format json` as {label: record}."""
    code, out, err = cli("compare", *paths, "--format", "json", *(["--metric", metric] if metric else []))
    assert code == 0, err
    return {r["label"]: r for r in json.loads(out)}


def health(rows: dict[str, dict]) -> dict[str, list[str]]:
    return {label.rpartition("/")[2] if "/" in label else label: r["health"] for label, r in rows.items()}


def short(rows: dict[str, dict]) -> dict[str, dict]:
    """Records keyed by the variant (the label's last part)."""
    return {label.split("/", 1)[1]: r for label, r in rows.items()}


def test_moons_optimizers(cli, tmp_path):
    """the deeplearning.ai figure: GD and EMA momentum end on top of each other, Adam clearly lower"""
    runs = train(cli, tmp_path, "moons-optimizers")  # in full: 5000 epochs, 5 seeds (a few seconds)
    rows = short(compare_json(cli, runs))
    assert {r["metric"] for r in rows.values()} == {"final_train_cost"}  # no validation split
    assert rows["adam"]["verdict"] == "best"
    assert rows["gd"]["verdict"] == rows["momentum"]["verdict"] == "worse"
    assert rows["gd"]["metric_mean"] > 5 * rows["adam"]["metric_mean"]  # clearly lower
    # GD against momentum alone: a tie, their final costs within 0.1% of each other
    pair = short(compare_json(cli, *runs.glob("moons-optimizers-gd-s*"), *runs.glob("moons-optimizers-momentum-s*")))
    assert sorted(r["verdict"] for r in pair.values()) == ["best", "tie"]
    assert abs(pair["gd"]["metric_mean"] / pair["momentum"]["metric_mean"] - 1) < 1e-3
    assert health(rows) == {"adam": [], "gd": [], "momentum": []}


def test_moons_lr_decay(cli, tmp_path):
    """the notebook's learning-rate decay section, its own run (`train.compat: dlai`, decay after each epoch): the interval form takes GD, momentum and Adam to 94–95% training accuracy; plain 1/t decays too fast and stalls GD at 65% (flagged not learning)"""
    runs = train(cli, tmp_path, "moons-lr-decay")
    rows = short(compare_json(cli, runs))
    final = {d.name.split("-s0-")[0].removeprefix("moons-lr-decay-"): json.loads((d / "summary.json").read_text())["final_eval"]
             for d in runs.glob("moons-lr-decay-*")}
    assert {v: round(final[v]["train_acc"], 4) for v in final} == {  # the final models' accuracy, as the notebook's predict
        "gd": 0.9433, "momentum": 0.9533, "adam": 0.94, "gd-1-over-t": 0.6533}
    for v in ("gd", "momentum", "adam"):
        assert rows[v]["final_train_cost"] < rows["gd-1-over-t"]["final_train_cost"] / 4
    assert rows["gd-1-over-t"]["final_train_cost"] > 0.65
    lr = {d.name.split("-s0-")[0]: np.loadtxt(d / "metrics.csv", delimiter=",", skiprows=1, usecols=2)
          for d in runs.glob("moons-lr-decay-gd-*")}
    # decay after each epoch: 0-based epoch i (metrics row i + 1) runs at f(i - 1)
    assert lr["moons-lr-decay-gd"][[1, 1000, 1001, 1002, 4001]].tolist() == [0.1, 0.1, 0.1, 0.05, 0.1 / 4]
    assert lr["moons-lr-decay-gd-1-over-t"][[1, 2, 3, 4]].tolist() == [0.1, 0.1, 0.05, 0.1 / 3]
    assert health(rows) == {"adam": [], "gd": [], "momentum": [], "gd-1-over-t": ["not learning", "update ratio 1.4e-06"]}


# the deeplearning.ai notebook's published table (V2021+): "Cost after epoch i" at i = 0, 1000, ..., 4000
DLAI_TABLE = {
    "gd": [0.702405, 0.668101, 0.635288, 0.600491, 0.573367],
    "momentum": [0.702413, 0.668167, 0.635388, 0.600591, 0.573444],
    "adam": [0.702166, 0.167845, 0.141316, 0.138788, 0.136066],
}
DLAI_ACCURACY = {"gd": 0.716667, "momentum": 0.716667, "adam": 0.943333}


def test_dlai_optimizers(cli, tmp_path):
    """the deeplearning.ai notebook digit for digit (`train.compat: dlai`: its moons, initial weights and mini-batch order): its published costs every 1000 epochs and training accuracies, to 6 decimals"""
    runs = train(cli, tmp_path, "dlai-optimizers")  # 5000 epochs, one run each
    for v, costs in DLAI_TABLE.items():
        (d,) = runs.glob(f"dlai-optimizers-{v}-s0-*")
        train_cost = np.loadtxt(d / "metrics.csv", delimiter=",", skiprows=1, usecols=3)
        assert [round(float(c), 6) for c in train_cost[[1, 1001, 2001, 3001, 4001]]] == costs, v  # row i + 1
        assert round(json.loads((d / "summary.json").read_text())["final_eval"]["train_acc"], 6) == DLAI_ACCURACY[v]
    rows = short(compare_json(cli, runs))
    assert rows["adam"]["final_train_cost"] < rows["gd"]["final_train_cost"] / 4
    assert health(rows) == {"adam": [], "gd": [], "momentum": []}


def test_init_depth(cli, tmp_path):
    """small random init kills a 5-layer ReLU net (cost stuck at ln 3, flagged not learning); Xavier and He train it, and the 3-layer net trains from all three"""
    rows = short(compare_json(cli, train(cli, tmp_path, "init-depth")))
    assert {r["metric"] for r in rows.values()} == {"final_val_cost"}
    dead = rows["5layer-small"]
    assert abs(dead["final_train_cost"] - math.log(3)) < 0.01 and dead["final_val_acc"] < 0.4
    assert dead["verdict"] == "worse"
    for v in ("3layer-small", "3layer-xavier", "3layer-he", "5layer-xavier", "5layer-he"):
        assert rows[v]["final_val_acc"] > 0.9 and rows[v]["final_val_cost"] < 0.2
    assert health(rows) == {v: (["not learning"] if v == "5layer-small" else []) for v in rows}


def test_adagrad_stall(cli, tmp_path):
    """AdaGrad's ever-growing cache slows it down; RMSProp and Adam keep going (and tie)"""
    rows = short(compare_json(cli, train(cli, tmp_path, "adagrad-stall")))
    assert rows["adagrad"]["verdict"] == "worse"
    assert sorted(rows[v]["verdict"] for v in ("rmsprop", "adam")) == ["best", "tie"]
    assert rows["adagrad"]["final_train_cost"] > 3 * max(rows[v]["final_train_cost"] for v in ("rmsprop", "adam"))
    assert rows["adagrad"]["auc"] > max(rows[v]["auc"] for v in ("rmsprop", "adam"))  # slower all the way
    assert health(rows) == {"adagrad": [], "rmsprop": [], "adam": []}


def test_spiral_regularization(cli, tmp_path):
    """the plain net overfits (validation cost climbs); L2, dropout and batch norm hold it down"""
    # 150 of 300 epochs: the plain net's validation cost has climbed from 0.70 (epoch 50) to 1.0, the
    # regularized ones stay near 0.7 (at 300 epochs: 1.48 against 0.71-0.85)
    rows = short(compare_json(cli, train(cli, tmp_path, "spiral-regularization", "train.epochs=150")))
    assert {r["metric"] for r in rows.values()} == {"final_val_cost"}
    none = rows["none"]
    assert none["verdict"] == "worse"
    assert none["final_train_cost"] < min(rows[v]["final_train_cost"] for v in ("l2", "dropout", "batchnorm"))
    assert none["final_val_cost"] > 1.3 * none["best_val_cost"]  # climbed after its minimum
    for v in ("l2", "dropout", "batchnorm"):
        assert rows[v]["final_val_cost"] < 0.8 * none["final_val_cost"]
    assert health(rows) == {"none": [], "l2": [], "dropout": [], "batchnorm": []}


def test_sine_regression(cli, tmp_path):
    """the bootcamp's SGD vs momentum 0.9 vs Adam with MSE on a 1-D curve: all three fit it to the noise level (validation MSE below 0.01, the noise variance); SGD descends slowest"""
    rows = short(compare_json(cli, train(cli, tmp_path, "sine-regression")))
    assert {r["metric"] for r in rows.values()} == {"final_val_cost"}
    for r in rows.values():
        assert r["final_val_cost"] < 0.01 and r["final_val_acc"] is None
    assert rows["sgd"]["auc"] > 1.2 * max(rows[v]["auc"] for v in ("momentum", "adam"))
    assert health(rows) == {"sgd": [], "momentum": [], "adam": []}


def test_ravine_trajectories(cli, tmp_path):
    """optimizer paths on an ill-conditioned quadratic (`optbench plot --kind trajectory`): GD zig-zags across the ravine, momentum, Nesterov, RMSProp and Adam cut along it; Nesterov and momentum end lowest"""
    runs = train(cli, tmp_path, "ravine-trajectories")
    rows = short(compare_json(cli, runs))
    assert rows["nesterov"]["verdict"] == "best"  # one seed: no statistics, but a reference
    ranked = sorted(rows, key=lambda v: rows[v]["final_train_cost"])
    assert ranked[:2] == ["nesterov", "momentum"] and ranked.index("gd") == 2
    # the zig-zag: the steep coordinate's step changes sign (nearly) every step for GD, rarely for the others
    flips = {}
    for d in runs.glob("ravine-trajectories-*"):
        xy = np.load(d / "trajectory.npz")["xy"]
        flips[d.name.split("-")[2]] = int((np.diff(np.sign(np.diff(xy[:31, 1]))) != 0).sum())
    assert flips["gd"] >= 25 and all(flips[v] <= 8 for v in ("momentum", "nesterov", "rmsprop", "adam")), flips
    assert health(rows) == {v: [] for v in rows}  # a 2-D point: no net heuristics


def test_moons_sweep(cli, tmp_path):
    """a budgeted learning-rate search per optimizer, 5 seeds per trial, selected on the validation cost and reported on a held-out test split: tuned, each beats its defaults, and GD and momentum do at least as well as Adam"""
    code, _, err = cli("sweep", CONFIGS / "moons-sweep.yaml", "-q", "--runs-dir", tmp_path)  # in full: ~3 s
    assert code == 0, err
    rows = compare_json(cli, tmp_path)
    picks = {(r["sweep"]["variant"], r["sweep"]["setting"]): r for r in rows.values()}
    assert set(picks) == {(v, s) for v in ("gd", "momentum", "adam") for s in ("default", "tuned")}
    # the sweep table and the paired table: one metric, the sweep's
    assert {r["metric"] for r in rows.values()} == {r["sweep"]["metric"] for r in rows.values()} == {"final_val_cost"}
    for r in rows.values():
        assert r["sweep"]["metric_mean"] == pytest.approx(r["metric_mean"], rel=1e-12)
        assert r["sweep"]["test_metric"] == "final_test_cost"
        assert r["sweep"]["test_mean"] == pytest.approx(r["final_test_cost"], rel=1e-12)
    for v in ("gd", "momentum", "adam"):
        tuned, default = picks[v, "tuned"], picks[v, "default"]
        assert tuned["metric_mean"] < default["metric_mean"] and tuned["final_test_cost"] < default["final_test_cost"]
    for v in ("gd", "momentum"):
        assert picks[v, "tuned"]["metric_mean"] <= picks["adam", "tuned"]["metric_mean"]
        assert picks[v, "tuned"]["final_test_cost"] <= picks["adam", "tuned"]["final_test_cost"]
    assert picks["adam", "tuned"]["verdict"] != "better"
    # defaults at lr 7e-4 for 1000 epochs: GD and momentum have not left ln 2 yet
    assert {k: r["health"] for k, r in picks.items()} == {
        (v, s): ["not learning"] if s == "default" and v != "adam" else [] for v, s in picks}


def test_modern_optimizers(cli, tmp_path):
    """a budgeted learning-rate search per rule (6 trials, 3 seeds each) on the spiral, selected on the validation cost and reported on a held-out test split: tuned, each beats its defaults; Schedule-Free AdamW's defaults are the best defaults (within 20% of its tuned cost); Lion's default lr is far too small here (the worst default); Muon, tuned, trails the other five"""
    code, _, err = cli("sweep", CONFIGS / "modern-optimizers.yaml", "-q", "--runs-dir", tmp_path)  # in full: ~40 s
    assert code == 0, err
    rows = compare_json(cli, tmp_path)
    picks = {(r["sweep"]["variant"], r["sweep"]["setting"]): r["metric_mean"] for r in rows.values()}
    rules = ("adam", "adamw", "lion", "muon", "schedule_free_adamw", "prodigy")
    assert set(picks) == {(v, s) for v in rules for s in ("default", "tuned")}
    assert {r["metric"] for r in rows.values()} == {"final_val_cost"}
    for v in rules:
        assert picks[v, "tuned"] < picks[v, "default"], v
    defaults = sorted(rules, key=lambda v: picks[v, "default"])
    assert defaults[0] == "schedule_free_adamw" and defaults[-1] == "lion"
    assert picks["schedule_free_adamw", "default"] < 1.2 * picks["schedule_free_adamw", "tuned"]
    assert max(rules, key=lambda v: picks[v, "tuned"]) == "muon"


def test_batch_size_sharpness(cli, tmp_path):
    """the bootcamp's lesson that large batches end at sharp minima and small ones at flat ones (Keskar et al. 2017), with SGD at one rate: batch 8 ends flattest (top Hessian eigenvalue about 1), batch 64 about 3x and the full batch about 4x sharper, all below the edge of stability 2/lr = 20 (`optbench plot --kind sharpness`); on moons the flatter minimum does not validate better"""
    # sharpness at the first and last epochs only: the same final values as every 25 (100) epochs, the
    # probes' cost spared; 3 of the 5 seeds (over seeds 0-9 batch 8 ends below the full batch on all 10, below
    # batch 64 on 8)
    runs = train(cli, tmp_path, "batch-size-sharpness", "seeds=[0, 1, 2]", "train.sharpness_every=300",
                 "variants.full.train.sharpness_every=2000")
    rows = short(compare_json(cli, runs))
    assert {r["metric"] for r in rows.values()} == {"final_val_cost"}
    sharp = {v: r["final_sharpness"] for v, r in rows.items()}
    assert sharp["b8"] < sharp["b64"] < sharp["full"] < 2 / 0.1
    # seeds 0-2: 3.1x and 4.1x; over seeds 0-9 the least of four triples was 1.2x and 2.1x
    assert sharp["b64"] > 1.5 * sharp["b8"] and sharp["full"] > 2 * sharp["b8"]
    # apart beyond their spread over seeds
    assert sharp["b8"] + rows["b8"]["final_sharpness_std"] < sharp["full"] - rows["full"]["final_sharpness_std"]
    assert all(r["final_train_cost"] < 0.1 for r in rows.values())  # each at a minimum, not on the way
    assert rows["b8"]["final_val_cost"] > rows["full"]["final_val_cost"] and rows["b8"]["verdict"] == "worse"
    assert health(rows) == {"b8": [], "b64": [], "full": []}


def test_finetune_moons(cli, tmp_path):
    """fine-tuning in one command (`model.init_from: {variant: source}`): a net trained on moons, then 20 epochs on moons rotated by 20°: fine-tuned at a 10x lower rate it beats training from scratch at Adam's 0.01 or 0.03, with its first layer frozen (`model.freeze: [1]`) or not; the source net as it is (`train.epochs: 0`) is worst"""
    runs = train(cli, tmp_path, "finetune-moons")  # in full: 30 runs, under a second of training
    # the rotated problem only (the source's own validation split is plain moons)
    rotated = [d for d in runs.iterdir() if "-source-s" not in d.name]
    rows = short(compare_json(cli, *rotated))
    assert {r["metric"] for r in rows.values()} == {"final_val_cost"}
    cost = {v: r["metric_mean"] for v, r in rows.items()}
    assert rows["finetune"]["verdict"] == "best"
    assert rows["scratch"]["verdict"] == rows["scratch-fast"]["verdict"] == "worse"
    assert max(cost["finetune"], cost["finetune-frozen"]) < min(cost["scratch"], cost["scratch-fast"])
    assert cost["source-as-is"] > 2 * max(cost[v] for v in cost if v != "source-as-is")
    # from the files: each seed starts from its own source run; the frozen layer and the 0-epoch run keep its bytes
    for d in runs.glob("finetune-moons-finetune-frozen-s*"):
        src = yaml.safe_load((d / "config.yaml").read_text())["model"]["init_from"]
        assert f"-source-s{json.loads((d / 'summary.json').read_text())['seed']}-" in src
        with np.load(d / "params.npz") as p, np.load(d / "params_init.npz") as p0, np.load(f"{src}/params.npz") as s:
            assert all(p0[k].tobytes() == s[k].tobytes() for k in s.files)
            assert p["W1"].tobytes() == s["W1"].tobytes() and p["b1"].tobytes() == s["b1"].tobytes()
            assert not np.array_equal(p["W2"], s["W2"])
    for d in runs.glob("finetune-moons-source-as-is-s*"):
        assert len((d / "metrics.csv").read_text().splitlines()) == 2  # the header and epoch 0
    assert health(rows) == {v: [] for v in rows}


def _readme_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    return dict(re.findall(r"^\| `([a-z0-9-]+)\.yaml` \| (.+?) \|$", text, flags=re.M))


def test_the_readme_table_and_these_tests_say_the_same_thing():
    rows = _readme_rows()
    shipped = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert sorted(rows) == shipped
    for name in shipped:
        test = globals()[f"test_{name.replace('-', '_')}"]
        assert test.__doc__ == rows[name], name
