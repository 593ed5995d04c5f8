"""optbench compare: runs made by the real engine, read back, aggregated, rendered; corrupt runs skipped."""

import csv
import io
import json
import math
import re
import shutil

import numpy as np
import pytest

from optbench import compare as cmp
from optbench.compare import compare, compare_command, parse_threshold
from optbench.config import expand, load_experiment
from optbench.errors import OptbenchError
from optbench.execute import execute

from conftest import CONFIGS

SMALL = {
    "name": "t",
    "seeds": [0, 1, 2],
    "data": {"name": "moons", "n_samples": 200, "noise": 0.2, "seed": 3},
    "model": {"hidden": [5, 2], "activation": "relu", "init": "he"},
    "loss": "bce",
    "train": {"epochs": 30, "batch_size": 64},
    "optimizer": {"name": "adam", "lr": 0.02},
}


def train(root, cfgs):
    outcomes, interrupted = execute(cfgs, root)
    assert not interrupted and len(outcomes) == len(cfgs)
    return root


@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    """The reference experiment, small: gd, momentum, adam x 3 seeds, with a validation split."""
    cfgs = load_experiment(CONFIGS / "moons-optimizers.yaml",
                           sets=["train.epochs=30", "seeds=[0, 1, 2]", "data.val_fraction=0.2"])
    return train(tmp_path_factory.mktemp("moons"), cfgs)


@pytest.fixture(scope="module")
def contest(tmp_path_factory):
    """A clear winner (adam lr 0.02 vs gd lr 1e-4) and an exact tie (adam and its twin differ only in label)."""
    fast = {"optimizer": {"name": "adam", "lr": 0.02}}
    cfgs = expand({**SMALL, "variants": {"adam": fast, "gd": {"optimizer": {"name": "gd", "lr": 1e-4}}, "twin": fast}})
    return train(tmp_path_factory.mktemp("contest"), cfgs)


@pytest.fixture(scope="module")
def sick(tmp_path_factory):
    """Health cases: a huge learning rate (diverges) and huge initial weights (initial cost far above ln 2)."""
    cfgs = expand({**SMALL, "seeds": [0, 1], "variants": {
        "huge_lr": {"optimizer": {"name": "gd", "lr": 200.0}},
        "big_init": {"model": {"init": {"name": "small", "scale": 30.0}}, "train": {"diverge_factor": None}},
    }})
    return train(tmp_path_factory.mktemp("sick"), cfgs)


def run(paths, **kw):
    """compare_command -> (exit code, warning lines)."""
    lines = []
    code = compare_command([str(p) for p in paths], warn=lines.append, **kw)
    return code, lines


def rows_of(root, **kw):
    return {r.name: r for r in compare([root], **kw).rows}


def copy(src, tmp_path):
    dst = tmp_path / "runs"
    shutil.copytree(src, dst)
    return dst


def dirs_of(root, label):
    return sorted(p for p in root.iterdir() if p.name.startswith(label))


# ---- content ------------------------------------------------------------------------------------


def test_one_row_per_label_with_seed_counts_and_what_varied(moons):
    c = compare([moons])
    assert [r.name for r in c.rows] == ["moons-optimizers/adam", "moons-optimizers/gd", "moons-optimizers/momentum"]
    assert all(r.seeds == (0, 1, 2) and r.status() == "3 ok" for r in c.rows)
    assert c.varied == ["optimizer.name"]  # lr is shared; mu, beta1 ... belong to one optimizer each
    assert c.n_runs == 9


def test_aggregates_match_the_run_files(moons):
    r = rows_of(moons)["moons-optimizers/adam"]
    summaries = [json.loads((f.path / "summary.json").read_text()) for f in r.runs]
    finals = [s["final"]["train_cost"] for s in summaries]
    assert r.mean("final_train_cost") == pytest.approx(np.mean(finals), rel=1e-12)
    assert r.std("final_train_cost") == pytest.approx(np.std(finals, ddof=1), rel=1e-12)
    assert r.mean("best_cost") == pytest.approx(np.mean([s["best"]["val_cost"]["value"] for s in summaries]), rel=1e-12)
    assert r.split == "val"
    f = r.runs[0]
    with open(f.path / "metrics.csv") as fh:
        cost = np.array([float(row["train_cost"]) for row in csv.DictReader(fh)])
    assert f.auc == pytest.approx((cost[0] / 2 + cost[1:-1].sum() + cost[-1] / 2) / 30, rel=1e-12)


def test_every_format_holds_the_comparison(moons, tmp_path):
    outs = {}
    for fmt in cmp.FORMATS:
        out = tmp_path / f"cmp.{fmt}"
        assert run([moons], fmt=fmt, out=out, thresholds=["train_cost=0.6"]) == (0, [])
        outs[fmt] = out.read_text()
    for fmt, text in outs.items():
        for label in ("moons-optimizers/adam", "moons-optimizers/gd", "moons-optimizers/momentum"):
            assert label in text, fmt
        assert "optimizer.name" in text and "data.n_samples" not in text, fmt
    assert "AUC: area under the train-cost curve" in outs["table"]
    assert re.search(r"moons-optimizers/gd\s+gd\s+3\s+3 ok", outs["table"])
    assert "| moons-optimizers/adam | adam | 3 | 3 ok |" in outs["markdown"]
    assert outs["latex"].count(r"\begin{tabular}") == 2 and r"train\_cost$\le$0.6" in outs["latex"]

    recs = list(csv.DictReader(io.StringIO(outs["csv"])))
    assert [r["label"] for r in recs] == ["moons-optimizers/adam", "moons-optimizers/gd", "moons-optimizers/momentum"]
    assert recs[1]["config.optimizer.name"] == "gd" and recs[1]["seeds"] == "3"
    assert float(recs[1]["final_train_cost"]) > 0 and float(recs[1]["diff_ci_low"]) > 0
    assert recs[0]["verdict"] == "best" and recs[1]["pairing"] == "paired"
    assert not any("*" in v for r in recs for v in r.values())  # no decoration in machine formats

    data = json.loads(outs["json"])
    assert isinstance(data, list) and len(data) == 3
    assert len({tuple(d) for d in data}) == 1  # the same keys in every object
    expected = {"label", "varied", "seeds", "status", "final_train_cost", "final_train_cost_std", "best_cost",
                "best_cost_epoch", "best_acc", "best_acc_epoch", "thresholds", "auc", "seconds", "diff", "diff_ci_low",
                "diff_ci_high", "win_rate", "verdict", "pairing", "ensemble_acc", "single_acc", "health"}
    assert expected <= set(data[0])
    assert data[0]["varied"] == {"optimizer.name": "adam"} and data[0]["seeds"] == 3
    assert isinstance(data[0]["final_train_cost"], float) and data[0]["thresholds"][0]["metric"] == "train_cost"


def test_stdout_is_plain_text_in_a_pipe_and_rich_on_a_terminal(moons, capsys, monkeypatch):
    assert run([moons])[0] == 0
    text = capsys.readouterr().out
    assert text.startswith("9 runs, 3 labels") and "*: best in column." in text
    monkeypatch.setattr("optbench.layout.is_terminal", lambda: True)
    assert run([moons])[0] == 0
    assert "moons-optimizers/momentum" in capsys.readouterr().out


def test_best_value_of_each_column_is_marked(contest):
    c = compare([contest])
    cols = {col.header: col for col in cmp.results_columns(c)}
    names = [r.name for r in c.rows]
    # adam and its twin share the best final cost; gd (lr 1e-4) is far behind
    assert {names[i] for i in cols["final train cost"].best} == {"t/adam", "t/twin"}
    results = cmp.render_plain(c).split("\n\n")[0].splitlines()
    final = {line.split()[0]: re.search(r"\S+ ± \S+", line).group() for line in results if line.startswith("t/")}
    assert final["t/adam"].endswith("*") and final["t/twin"].endswith("*") and not final["t/gd"].endswith("*")
    md = cmp.render_markdown(c)
    assert re.search(r"\| t/gd \|.*\| [\d.]+ ± [\d.e+-]+ \|", md) and re.search(r"\| t/adam \|.*± [\d.e+-]+\* \|", md)
    assert r"\textbf{" in cmp.render_latex(c)


# ---- paired statistics --------------------------------------------------------------------------


def test_clear_winner_and_exact_tie(contest):
    rows = rows_of(contest)
    adam, gd, twin = rows["t/adam"], rows["t/gd"], rows["t/twin"]
    assert adam.versus.verdict == "best"
    assert gd.versus.verdict == "worse" and gd.versus.lo > 0 and gd.versus.win_rate == 0
    assert gd.versus.pairing == "paired" and gd.versus.n == 3
    assert twin.versus.verdict == "tie" and twin.versus.pairing == "paired"
    assert (twin.versus.diff, twin.versus.lo, twin.versus.hi) == (0.0, 0.0, 0.0)
    assert twin.versus.win_rate == 0.5  # every seed a tie
    text = cmp.render_plain(compare([contest]))
    assert "worse (CI excludes 0)" in text and "tie (CI includes 0)" in text


def test_bootstrap_is_deterministic(contest):
    a, b = compare([contest]).rows, compare([contest]).rows
    assert [(r.versus.lo, r.versus.hi) for r in a] == [(r.versus.lo, r.versus.hi) for r in b]


def test_one_seed_says_n_a(contest, tmp_path):
    root = copy(contest, tmp_path)
    for d in dirs_of(root, "t-gd-s1") + dirs_of(root, "t-gd-s2"):
        shutil.rmtree(d)
    gd = rows_of(root)["t/gd"]
    assert gd.versus.verdict == "n/a" and gd.ensemble is None
    assert "n/a" in cmp.render_plain(compare([root]))


def test_different_fingerprints_fall_back_to_unpaired(contest, tmp_path):
    root = copy(contest, tmp_path)
    p = dirs_of(root, "t-gd-s1")[0] / "summary.json"
    s = json.loads(p.read_text())
    s["fingerprints"]["init"] = "0000000000000000"
    p.write_text(json.dumps(s))
    rows = rows_of(root)
    assert rows["t/gd"].versus.pairing == "unpaired: fingerprints differ"
    assert rows["t/gd"].versus.verdict == "worse"  # still clear, now over all 3 x 3 pairs of seeds
    assert rows["t/twin"].versus.pairing == "paired"
    assert "unpaired: fingerprints differ" in cmp.render_plain(compare([root]))


# ---- thresholds, sorting ------------------------------------------------------------------------


def test_thresholds_count_first_epochs(moons):
    t = parse_threshold("train_cost=0.65")
    acc = parse_threshold("val_acc=0.8")
    assert (t.op, acc.op) == ("<=", ">=")
    row = rows_of(moons, thresholds=[t, acc])["moons-optimizers/adam"]
    firsts = []
    for f in row.runs:
        with open(f.path / "metrics.csv") as fh:
            cost = [float(r["train_cost"]) for r in csv.DictReader(fh)]
        firsts.append(next((e for e, c in enumerate(cost) if c <= 0.65), None))
    hit = [e for e in firsts if e is not None]
    mean, reached, measured = row.reached[0]
    assert (reached, measured) == (len(hit), 3)
    assert mean == pytest.approx(np.mean(hit)) if hit else math.isnan(mean)


def test_threshold_on_an_unmeasured_metric_is_a_dash(contest):
    row = rows_of(contest, thresholds=[parse_threshold("val_cost=0.5")])["t/adam"]
    assert row.reached[0][2] == 0  # no validation split: not measured, not "never reached"


def test_sort_orders_rows_best_first(moons):
    by_acc = compare([moons], sort="best_acc").rows
    accs = [r.mean("best_acc") for r in by_acc]
    assert accs == sorted(accs, reverse=True)
    by_cost = compare([moons], sort="final_train_cost").rows
    assert [r.mean("final_train_cost") for r in by_cost] == sorted(r.mean("final_train_cost") for r in by_cost)
    assert by_cost[0].versus.verdict == "best"
    c = compare([moons], sort="best_acc")
    assert c.metric == "best_acc" and c.best == by_acc[0].name


@pytest.mark.parametrize("kw, match", [
    ({"fmt": "xml"}, "--format: 'xml' is not a format (accepted: table, markdown, csv, json, latex)"),
    ({"sort": "speed"}, "--sort: 'speed' is not a metric (accepted: final_train_cost"),
    ({"thresholds": ["train_cost"]}, "--threshold: 'train_cost' is invalid: expected METRIC=VALUE"),
    ({"thresholds": ["loss=0.3"]}, "--threshold: 'loss=0.3' is invalid: expected METRIC=VALUE with METRIC one of"),
    ({"thresholds": ["train_cost=low"]}, "--threshold: 'train_cost=low' is invalid: 'low' is not a finite number"),
])
def test_bad_option_values_are_one_line_errors(moons, kw, match):
    with pytest.raises(OptbenchError, match=re.escape(match)):
        compare_command([str(moons)], warn=lambda line: None, **kw)


# ---- ensembles and health -----------------------------------------------------------------------


def test_ensemble_of_seeds_beside_the_mean_single_model(moons, contest):
    for root, split in ((moons, "val"), (contest, "train")):
        for r in compare([root]).rows:
            e = r.ensemble
            assert e.models == 3 and e.split == split
            finals = [json.loads((f.path / "summary.json").read_text())["final_eval"][f"{split}_acc"] for f in r.runs]
            # the rebuilt predictors score exactly what training measured on its final parameters
            assert e.single_acc == pytest.approx(np.mean(finals), abs=1e-12)
            assert 0 <= e.acc <= 1


def test_ensemble_skipped_without_params(contest, tmp_path):
    root = copy(contest, tmp_path)
    for d in dirs_of(root, "t-adam-s")[:2]:
        (d / "params.npz").unlink()
    rows = rows_of(root)
    assert rows["t/adam"].ensemble is None and rows["t/twin"].ensemble.models == 3


def test_regression_has_no_ensemble(tmp_path):
    cfgs = load_experiment(CONFIGS / "sine-regression.yaml", sets=["train.epochs=5", "seeds=[0, 1]"])[:2]
    c = compare([train(tmp_path, cfgs)])
    (row,) = c.rows
    assert row.ensemble is None and math.isnan(row.mean("best_acc")) and row.health.expected_name == ""
    assert "-" in cmp.render_plain(c)


def test_health_flags_divergence_and_bad_init(sick, moons):
    rows = rows_of(sick)
    huge, big = rows["t/huge_lr"], rows["t/big_init"]
    assert huge.status().startswith("2 diverged at epochs")
    assert huge.health.diverged == 2 and any("diverged" in f for f in huge.health.flags)
    assert huge.health.update_ratio > 1e-2 and any("update ratio" in f for f in huge.health.flags)
    assert huge.ensemble is None  # diverged weights are not averaged
    assert big.health.initial_ratio > 2 and any(f.startswith("init cost") for f in big.health.flags)
    text = cmp.render_plain(compare([sick]))
    assert "health: t/huge_lr: " in text and "learning rate likely too high" in text
    big_line = next(line for line in text.splitlines() if line.startswith("health: t/big_init: "))
    assert "initial cost (median seed) is" in big_line and "weights too large" in big_line
    # 30 epochs of Adam at lr 7e-4 leave the cost near ln 2: only "not learning" may be said of it
    adam = rows_of(moons)["moons-optimizers/adam"]
    assert adam.health.flags == ("not learning",) and adam.mean("final_train_cost") > 0.9 * math.log(2)


# ---- reading: corrupt runs, no runs, reruns -----------------------------------------------------


def test_corrupt_run_directories_are_skipped_with_one_warning_each(moons, tmp_path):
    root = copy(moons, tmp_path)
    gd = dirs_of(root, "moons-optimizers-gd")
    (gd[0] / "summary.json").unlink()
    metrics = gd[1] / "metrics.csv"
    text = metrics.read_text()
    metrics.write_text(text[: text.rindex(",") - 3])  # cut mid-row
    (gd[2] / "config.yaml").write_text("name: [unclosed\n  : :")
    mom = dirs_of(root, "moons-optimizers-momentum")
    s = json.loads((mom[0] / "summary.json").read_text())
    s["status"] = "running"
    (mom[0] / "summary.json").write_text(json.dumps(s))
    cut = mom[1] / "metrics.csv"
    cut.write_text("".join(cut.read_text().splitlines(keepends=True)[:10]))  # cut at a row boundary
    (root / "empty-dir").mkdir()

    code, warnings = run([root], fmt="json", out=tmp_path / "out.json")
    assert code == 0
    assert len(warnings) == 6 and all(w.startswith("warning: ") for w in warnings)
    said = "\n".join(warnings)
    for d, reason in [(gd[0], "no summary.json"), (gd[1], "truncated row"), (gd[2], "unreadable config.yaml"),
                      (mom[0], "status running"), (mom[1], "ends at epoch 8 but summary.json says 30"),
                      (root / "empty-dir", "incomplete run directory")]:
        assert re.search(re.escape(str(d)) + ".*" + re.escape(reason), said), reason
    data = json.loads((tmp_path / "out.json").read_text())
    assert {d["label"]: d["seeds"] for d in data} == {
        "moons-optimizers/adam": 3, "moons-optimizers/momentum": 1}


def test_no_runs_exits_2_and_says_where_it_looked(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    code, warnings = run([tmp_path / "empty"])
    assert code == 2 and "no readable runs found" in warnings[-1] and str(tmp_path / "empty") in warnings[-1]
    monkeypatch.chdir(tmp_path)  # no arguments: ./runs, which does not exist here
    code, warnings = run([])
    assert code == 2 and warnings == ["error: no runs found in runs (no such directory; train first or name run directories)"]
    code, _ = run([tmp_path / "missing-*"])
    assert code == 2


def test_globs_single_dirs_and_overlaps_read_each_run_once(moons):
    adam = dirs_of(moons, "moons-optimizers-adam")
    c = compare([*adam, moons, *adam])
    assert c.n_runs == 9
    only = compare(adam)
    assert [r.name for r in only.rows] == ["moons-optimizers/adam"] and only.varied == []


def test_reruns_with_another_config_get_their_own_row(moons, tmp_path):
    root = copy(moons, tmp_path)
    cfgs = load_experiment(CONFIGS / "moons-optimizers.yaml", sets=["train.epochs=10", "seeds=[0, 1]"])
    train(root, [c for c in cfgs if c["label"] == "moons-optimizers/adam"])
    lines = []
    c = compare([root], warn=lines.append)
    names = [r.name for r in c.rows]
    # the row names show what differs within the label, smallest value first
    assert names[:2] == ["moons-optimizers/adam val_fraction=0 epochs=10", "moons-optimizers/adam val_fraction=0.2 epochs=30"]
    assert len(names) == 4 and not any("duplicate" in line or "configs" in line for line in lines)
    assert "train.epochs" in c.varied and "data.val_fraction" in c.varied
    second = c.rows[0]
    assert second.seeds == (0, 1) and second.runs[0].epochs == 10


def test_a_run_trained_again_within_the_same_second_is_the_one_kept(tmp_path):
    """Runs made one after another sort by `created` (to the microsecond), never by their directories' random
    suffixes: the newest of four trainings of one run is the one compare keeps, each time."""
    cfgs = expand({**SMALL, "seeds": [0], "train": {"epochs": 2, "batch_size": 64}})
    root = tmp_path / "runs"
    made = [execute(cfgs, root)[0][0].path for _ in range(4)]
    created = [json.loads((d / "summary.json").read_text())["created"] for d in made]
    assert created == sorted(created) and len(set(created)) == 4
    for n in range(2, 5):  # the first n trainings: the n-th is kept
        lines = []
        rows = compare(made[:n], warn=lines.append).rows
        assert [r.path for r in rows[0].runs] == [made[n - 1]] and any("duplicate" in line for line in lines)


def test_duplicate_seed_of_the_same_config_counts_once(moons, tmp_path):
    root = copy(moons, tmp_path)
    src = dirs_of(root, "moons-optimizers-gd-s0")[0]
    shutil.copytree(src, root / (src.name + "-copy"))
    lines = []
    rows = {r.name: r for r in compare([root], warn=lines.append).rows}
    assert rows["moons-optimizers/gd"].seeds == (0, 1, 2)
    assert lines == ["warning: 1 duplicate run ignored (same label, config and seed); the newest finished run of each kept"]


def test_failed_and_interrupted_runs(contest, tmp_path):
    root = copy(contest, tmp_path)
    a, b = dirs_of(root, "t-gd-s")[:2]
    s = json.loads((a / "summary.json").read_text())
    (a / "summary.json").write_text(json.dumps({**s, "status": "failed", "reason": "MemoryError: boom"}))
    metrics = b / "metrics.csv"
    metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:21]))
    s = json.loads((b / "summary.json").read_text())
    (b / "summary.json").write_text(json.dumps({**s, "status": "interrupted", "epochs": 19}))
    lines = []
    gd = {r.name: r for r in compare([root], warn=lines.append).rows}["t/gd"]
    assert len(lines) == 1 and "status failed (MemoryError: boom)" in lines[0]
    assert gd.status() == "1 ok, 1 interrupted at epoch 19"


# ---- what was varied ----------------------------------------------------------------------------


def test_varied_keys_show_only_what_differs():
    base = {"name": "x", "label": "x/a", "seed": 0, "optimizer": {"name": "momentum", "lr": 0.1, "mu": 0.9},
            "model": {"hidden": [5, 2]}, "regularization": {"early_stopping": None, "polyak": None}}
    other = {**base, "label": "x/b", "seed": 1, "optimizer": {"name": "adam", "lr": 0.1, "beta1": 0.9}}
    third = {**base, "label": "x/c", "optimizer": {"name": "momentum", "lr": 0.1, "mu": 0.5},
             "model": {"hidden": [8]}, "regularization": {"early_stopping": {"patience": 5}, "polyak": None}}
    flats = [cmp.flatten(c) for c in (base, other, third)]
    assert cmp.varied_keys(flats[:2]) == ["optimizer.name"]
    assert cmp.varied_keys(flats) == ["optimizer.name", "optimizer.mu", "model.hidden",
                                      "regularization.early_stopping.patience"]
