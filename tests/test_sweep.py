"""Sweeps: spec and expansion, budget and k-fold bookkeeping, local and Dask execution, resume, compare, heat maps."""

import copy
import csv
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import CONFIGS, ROOT, by_key, run_cli, run_dirs
from optbench.compare import compare, records, render_plain
from optbench.errors import OptbenchError
from optbench.runs.read import read_run
from optbench.sweep import heatmap_table, make_units, plan_sweep, run_sweep
from optbench.groups import make_groups
from optbench.workers.units import makespan, split_units

BASE = {
    "name": "tiny",
    "seeds": [0, 1],
    "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "seed": 1, "val_fraction": 0.25},
    "model": {"hidden": [5, 2]},
    "train": {"epochs": 12, "batch_size": 32},
    "optimizer": {"name": "gd", "lr": 0.01},
    "variants": {"gd": {}, "momentum": {"optimizer": {"name": "momentum", "mu": 0.9}}, "adam": {"optimizer": {"name": "adam"}}},
    "sweep": {"method": "grid", "params": {"optimizer.lr": [0.003, 0.03, 0.3]}},
}
# six groups (one per batch size) of two runs, each about a second: long enough to interrupt
LONG = {**BASE, "train": {"epochs": 1500, "batch_size": 16}, "data": {**BASE["data"], "val_fraction": 0.0},
        "variants": {"adam": {"optimizer": {"name": "adam"}}},
        "sweep": {"method": "grid", "params": {"optimizer.lr": [0.01], "train.batch_size": [16, 20, 24, 28, 32, 40]}}}


def config(tmp_path: Path, cfg: dict, name: str = "sweep.yaml", **sweep) -> Path:
    cfg = copy.deepcopy(cfg)
    cfg["sweep"].update(sweep)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ---- spec and expansion ---------------------------------------------------------------------------


def test_grid_is_the_product_of_the_lists_per_variant_times_seeds(tmp_path):
    plan = plan_sweep(config(tmp_path, BASE, params={"optimizer.lr": [0.01, 0.1, 1.0], "regularization.l2": [0, 1e-3]}))
    assert len(plan.trials) == 3 * 3 * 2 and len(plan.runs) == 3 * 3 * 2 * 2
    adam = [t for t in plan.trials if t.variant == "adam"]
    assert [t.name for t in adam] == [f"t{i:03d}" for i in range(6)]
    assert [(t.params["optimizer.lr"], t.params["regularization.l2"]) for t in adam] == [
        (0.01, 0), (0.01, 1e-3), (0.1, 0), (0.1, 1e-3), (1.0, 0), (1.0, 1e-3)]
    run = next(r for r in plan.runs if r.key == "adam/t003/s1")
    assert run.cfg["optimizer"]["name"] == "adam" and run.cfg["optimizer"]["lr"] == 0.1
    assert run.cfg["regularization"]["l2"] == 1e-3 and run.cfg["seed"] == 1 and run.cfg["label"] == "tiny/adam/t003"
    assert run.cfg["optimizer"]["beta1"] == 0.9  # the rest of the variant as resolved by `train`


def test_random_trials_are_reproducible_under_the_sweep_seed_and_in_range(tmp_path):
    params = {"optimizer.lr": {"log_uniform": [1e-4, 1.0]}, "regularization.l2": {"uniform": [0.0, 0.01]},
              "train.batch_size": {"int_uniform": [8, 12]}, "model.activation": {"choice": ["relu", "tanh"]}}
    cfg = {**BASE, "variants": {"adam": {"optimizer": {"name": "adam"}}}}
    plan = plan_sweep(config(tmp_path, cfg, method="random", trials=200, seed=7, params=params))
    again = plan_sweep(config(tmp_path, cfg, method="random", trials=200, seed=7, params=params))
    other = plan_sweep(config(tmp_path, cfg, method="random", trials=200, seed=8, params=params))
    assert len(plan.trials) == 200 and len(plan.runs) == 400
    assert [t.params for t in plan.trials] == [t.params for t in again.trials] and plan.id == again.id
    assert [t.params for t in plan.trials] != [t.params for t in other.trials] and plan.id != other.id
    lr = np.array([t.params["optimizer.lr"] for t in plan.trials])
    assert lr.min() >= 1e-4 and lr.max() <= 1.0
    assert 0.25 < np.mean(np.log10(lr) < -2) < 0.75  # log scale: half the draws below 1e-2
    l2 = np.array([t.params["regularization.l2"] for t in plan.trials])
    assert l2.min() >= 0 and l2.max() <= 0.01 and 0.3 < np.mean(l2 < 0.005) < 0.7
    bs = [t.params["train.batch_size"] for t in plan.trials]
    assert set(bs) == {8, 9, 10, 11, 12} and all(type(b) is int for b in bs)
    assert set(t.params["model.activation"] for t in plan.trials) == {"relu", "tanh"}
    assert {r.cfg["model"]["activation"]["name"] for r in plan.runs} == {"relu", "tanh"}


def test_variants_draw_the_same_values_of_a_shared_key_and_add_their_own(tmp_path):
    path = config(tmp_path, BASE, method="random", trials=4, params={"optimizer.lr": {"log_uniform": [1e-3, 1.0]}},
                  variants={"momentum": {"params": {"optimizer.mu": {"uniform": [0.5, 0.99]}}}})
    plan = plan_sweep(path)
    lrs = {v: [t.params["optimizer.lr"] for t in plan.trials if t.variant == v] for v in ("gd", "momentum", "adam")}
    assert lrs["gd"] == lrs["momentum"] == lrs["adam"]  # common random numbers: one stream per key
    mom = [t for t in plan.trials if t.variant == "momentum"]
    assert all(0.5 <= t.params["optimizer.mu"] <= 0.99 for t in mom)
    assert all("optimizer.mu" not in t.params for t in plan.trials if t.variant != "momentum")


def test_budget_gives_every_variant_the_same_trials_and_its_defaults(tmp_path):
    plan = plan_sweep(config(tmp_path, BASE, method="random", budget=5, params={"optimizer.lr": {"log_uniform": [1e-4, 1]}}))
    per = Counter(t.variant for t in plan.trials)
    assert per == {"gd": 6, "momentum": 6, "adam": 6}
    defaults = {r.trial.variant: r.cfg for r in plan.runs if r.trial.name == "default"}
    assert defaults["gd"]["optimizer"]["lr"] == 0.01 and defaults["adam"]["optimizer"]["lr"] == 0.001  # adam's own default
    assert defaults["momentum"]["optimizer"]["mu"] == 0.9
    assert json.loads(json.dumps(plan.spec.as_data()))["budget"] == 5
    assert all(plan.tag(r)["sweep"]["budget"] == 5 for r in plan.runs)


def test_kfold_runs_every_trial_on_k_folds_whose_validation_parts_partition_the_data(tmp_path):
    from optbench.config import load_data

    cfg = {**BASE, "data": {**BASE["data"], "val_fraction": 0}}
    plan = plan_sweep(config(tmp_path, cfg, kfold=3))
    assert len(plan.runs) == 3 * 3 * 2 * 3
    runs = [r for r in plan.runs if r.trial.variant == "adam" and r.trial.name == "t001" and r.seed == 0]
    assert [r.fold for r in runs] == [0, 1, 2] and [r.key for r in runs] == [f"adam/t001/s0/f{i}" for i in range(3)]
    vals = [load_data(r.cfg["data"]).val.X for r in runs]
    assert sum(len(v) for v in vals) == 120
    assert len({tuple(x) for v in vals for x in v}) == 120  # each example validates in exactly one fold


def test_sweep_id_is_stable_and_changes_with_the_config(tmp_path):
    path = config(tmp_path, BASE)
    a, b = plan_sweep(path), plan_sweep(path)
    assert a.id == b.id and a.dirname == f"tiny-{a.id}"
    assert plan_sweep(path, sets=["train.epochs=13"]).id != a.id
    assert plan_sweep(path, sets=["sweep.params.optimizer.lr=[0.003, 0.03]"]).id != a.id


BAD = [
    ({"foo": 1}, r"sweep.foo: unknown key (accepted: method, params, trials, budget"),
    ({"method": "bayes"}, "sweep.method: 'bayes' is invalid: unknown search method (accepted: grid, random)"),
    ({"params": {"optimizer.lr": {"log_uniform": [0, 1]}}, "method": "random", "trials": 2},
     "sweep.params.optimizer.lr.log_uniform: [0, 1] is invalid: low must be > 0 on a log scale (accepted: [low, high] with 0 < low < high)"),
    ({"params": {"optimizer": {"lr": {"uniform": [1, 1]}}}, "method": "random", "trials": 2},
     "sweep.params.optimizer.lr.uniform: [1, 1] is invalid: low must be less than high"),
    ({"params": {"train.batch_size": {"int_uniform": [8.5, 16]}}, "method": "random", "trials": 2},
     "sweep.params.train.batch_size.int_uniform: [8.5, 16] is invalid: low and high must be integers"),
    ({"params": {"optimizer.lr": {"log_uniform": [1e-3, 1], "uniform": [0, 1]}}, "method": "random", "trials": 2},
     "sweep.params.optimizer.lr: {'log_uniform': [0.001, 1], 'uniform': [0, 1]} is invalid: one distribution per key"),
    ({"params": {"optimizer.lr": 0.01}}, "sweep.params.optimizer.lr: 0.01 is invalid: expected a list of values or a distribution"),
    ({"params": {}}, "sweep.params: {} is invalid: expected a mapping of config key paths"),
    ({"params": {"foo.bar": [1]}}, "sweep.params.foo.bar: 'foo' is not a config key (accepted: a key path under data, model"),
    ({"params": {"seed": [1, 2]}}, "sweep.params.seed: seeds are not searched (set sweep.seeds"),
    ({"params": {"optimizer.lrr": [0.1]}}, "sweep.params.optimizer.lrr: unknown option for gd (accepted: lr, weight_decay) (trial t000 of gd)"),
    ({"params": {"optimizer.lr": [0.1, -1]}}, "sweep.params.optimizer.lr: -1 is invalid: input should be greater than 0 (trial t001 of gd)"),
    ({"method": "random"}, "sweep.trials: required for method random (or budget: N"),
    ({"method": "random", "trials": 0}, "sweep.trials: 0 is invalid: expected an integer >= 1"),
    ({"method": "random", "trials": 2, "budget": 2}, "sweep.budget: 2 is invalid: give trials or budget, not both"),
    ({"budget": 4}, "sweep.budget: 4 is invalid: the budget protocol is a random search (accepted: method: random)"),
    ({"trials": 4}, "sweep.trials: 4 is invalid: a grid runs every combination"),
    ({"params": {"optimizer.lr": {"log_uniform": [1e-3, 1]}}},
     "sweep.params.optimizer.lr.log_uniform: a distribution cannot be a grid (accepted: a list of values, or method: random)"),
    ({"kfold": 1}, "sweep.kfold: 1 is invalid: expected an integer >= 2"),
    ({"kfold": 3}, "sweep.kfold: 3 is invalid: the folds are the validation parts, but data.val_fraction is 0.25"),
    ({"seeds": [1, 1]}, "sweep.seeds: [1, 1] is invalid: has duplicates"),
    ({"metric": "loss"}, "sweep.metric: 'loss' is invalid: not a metric (accepted: best_cost, best_acc, final_train_cost, "
     "final_train_acc, final_val_cost, final_val_acc, best_train_cost, best_train_acc, best_val_cost, best_val_acc, auc)"),
    ({"metric": "final_test_cost"}, "sweep.metric: 'final_test_cost' is invalid: the test split is never selected on"),
    ({"variants": {"adamm": {"params": {"optimizer.lr": [1]}}}}, "sweep.variants.adamm: not a variant of the experiment (accepted: gd, momentum, adam)"),
]


@pytest.mark.parametrize("sweep,message", BAD)
def test_bad_sweep_input_is_one_line_naming_the_key_path(sweep, message, tmp_path):
    with pytest.raises(OptbenchError) as err:
        plan_sweep(config(tmp_path, BASE, **sweep))
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_bad_input_on_the_command_line_exits_2_with_no_directory(tmp_path):
    cases = [(config(tmp_path, BASE, method="random"), "error: sweep.trials: required for method random"),
             (CONFIGS / "moons-optimizers.yaml", "error: sweep: required key is missing"),
             (config(tmp_path, BASE, name="ok.yaml"), "error: --scheduler: 'localhost:1' is invalid (accepted: tcp://HOST:PORT")]
    for i, (path, message) in enumerate(cases):
        extra = ["--scheduler", "localhost:1"] if i == 2 else []
        code, out, err = run_cli("sweep", path, "--runs-dir", tmp_path / "runs", *extra)
        assert code == 2 and err.strip().startswith(message) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()
    code, out, _ = run_cli("sweep", "-h")
    assert code == 0 and all(opt in out for opt in ("--set", "--runs-dir", "--jobs", "--scheduler", "--quiet"))


def test_the_shipped_sweep_searches_each_optimizer_with_a_budget_over_five_seeds():
    plan = plan_sweep(CONFIGS / "moons-sweep.yaml")
    assert plan.spec.method == "random" and plan.spec.budget == 8
    assert {v: p["optimizer.lr"].kind for v, p in plan.spec.params.items()} == {v: "log_uniform" for v in ("gd", "momentum", "adam")}
    assert len(plan.runs) == 3 * (8 + 1) * 5


# ---- units for workers ----------------------------------------------------------------------------


def test_groups_are_split_so_every_worker_has_work():
    cost = lambda u: 9 + len(u)  # noqa: E731
    groups = [list(range(40)), list(range(40, 80)), list(range(80, 120))]
    units = split_units(groups, 2, cost)
    assert sorted(map(len, units), reverse=True) == [40, 40, 20, 20]
    assert sorted(x for u in units for x in u) == list(range(120))
    assert makespan([cost(u) for u in units], 2) < makespan([cost(g) for g in groups], 2)
    assert split_units(groups, 1, cost) == groups
    assert sorted(map(len, split_units([list(range(40))], 2, cost))) == [20, 20]


def test_a_worker_that_starts_late_gets_less():
    """This process trains at once, a worker process after its start-up: one group is cut unevenly,
    the larger part first (the first unit submitted goes to this process)."""
    cost = lambda u: 1000 * (9 + len(u))  # noqa: E731
    group = [list(range(120))]
    even = split_units(group, 2, cost)
    late = split_units(group, 2, cost, late=25 * 1000)
    assert list(map(len, even)) == [60, 60]
    assert len(late) == 2 and len(late[0]) > len(late[1]) and sorted(late[0] + late[1]) == list(range(120))
    assert makespan([cost(u) for u in late], 2, 25 * 1000) < makespan([cost(u) for u in even], 2, 25 * 1000)
    assert split_units([list(range(4))], 2, cost, late=10**9) == [list(range(4))]  # never worth waiting for


# ---- execution ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the dask scheduler exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"no dask scheduler on port {port} after {timeout} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Dask scheduler and two single-threaded workers on 127.0.0.1, as subprocesses; always killed at the end."""
    import distributed  # noqa: F401  (the dask extra; CI installs it)
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    procs = {}
    try:
        procs["scheduler"] = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                              stdout=open(logs / "scheduler.log", "w"), stderr=subprocess.STDOUT, cwd=ROOT)
        _wait_for_port(port, procs["scheduler"], 60)
        for name in ("w1", "w2"):
            procs[name] = subprocess.Popen(
                [dask, "worker", address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--host", "127.0.0.1", "--death-timeout", "60"],
                stdout=open(logs / f"{name}.log", "w"), stderr=subprocess.STDOUT, cwd=ROOT)
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, procs
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


def test_jobs_1_jobs_2_and_dask_give_identical_metrics(cluster, tmp_path):
    path = config(tmp_path, BASE)
    plan = plan_sweep(path)
    groups = make_groups([r.cfg for r in plan.runs])
    assert len(make_units(list(plan.runs), 2)) > len(groups)  # a group split in two: both workers train
    results = {}
    for name, kw in {"jobs1": {"jobs": 1}, "jobs2": {"jobs": 2}, "dask": {"scheduler": cluster[0]}}.items():
        out = run_sweep(path, runs_dir=tmp_path / name, **kw)
        assert not out.interrupted and out.statuses["completed"] == 18
        results[name] = by_key(tmp_path / name)
    assert sorted(results["jobs1"]) == sorted(r.key for r in plan.runs)
    assert results["jobs1"] == results["jobs2"] == results["dask"]


def test_a_dask_worker_killed_mid_sweep_loses_and_duplicates_no_run(cluster, tmp_path):
    from distributed import Client

    address, procs = cluster
    path = config(tmp_path, LONG)
    done: dict = {}
    sweep = threading.Thread(target=lambda: done.update(out=run_sweep(path, runs_dir=tmp_path / "runs", scheduler=address)))
    sweep.start()
    with Client(address, timeout=60, set_as_default=False) as client:
        deadline = time.time() + 60
        while time.time() < deadline:
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
            if any(names.get(a) == "w1" and tasks for a, tasks in client.processing().items()):
                break
            time.sleep(0.05)
        else:
            pytest.fail("worker w1 never got a unit")
        time.sleep(0.3)  # well inside the unit (about a second of training)
        procs["w1"].kill()
    sweep.join(timeout=120)
    assert not sweep.is_alive() and "out" in done
    out = done["out"]
    assert not out.interrupted and out.statuses == {"completed": 12}
    runs = by_key(tmp_path / "runs")
    assert sorted(runs) == sorted(r.key for r in out.plan.runs)  # by_key fails on a duplicate
    assert {s for s, _, _ in runs.values()} == {"completed"}


def test_passes_starting_in_the_same_second_are_two_passes(tmp_path, monkeypatch):
    import optbench.sweep.run as run_mod

    monkeypatch.setattr(run_mod.time, "strftime", lambda fmt, *a: "2026-11-30T06:00:00")  # one frozen second
    path = config(tmp_path, {**BASE, "train": {**BASE["train"], "epochs": 2}})
    first = run_sweep(path, runs_dir=tmp_path / "runs", jobs=1)
    run_sweep(path, runs_dir=tmp_path / "runs", jobs=1)
    record = json.loads((tmp_path / "runs" / first.plan.dirname / "sweep.json").read_text())
    assert [p["todo"] for p in record["passes"]] == [len(first.plan.runs), 0]
    assert len({p["pass"] for p in record["passes"]}) == 2


def test_an_interrupted_sweep_resumes_only_the_missing_runs(tmp_path):
    path = config(tmp_path, LONG)
    root = tmp_path / "runs"
    p = subprocess.Popen([sys.executable, "-m", "optbench", "sweep", str(path), "--runs-dir", str(root), "--jobs", "2"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(
            json.loads((d / "summary.json").read_text()).get("status") == "completed" for d in run_dirs(root)):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    first = {d: json.loads((d / "summary.json").read_text()) for d in run_dirs(root)}
    statuses = Counter(s["status"] for s in first.values())
    assert statuses["completed"] >= 2 and set(statuses) <= {"completed", "interrupted"} and len(first) < 12
    complete = {s["sweep"]["key"] for s in first.values() if s["status"] == "completed"}

    out = run_sweep(path, runs_dir=root, jobs=2)
    assert out.resumed == len(complete) and sum(out.statuses.values()) == 12 - len(complete) and not out.interrupted
    runs = by_key(root)
    assert sorted(runs) == sorted(r.key for r in out.plan.runs) and {s for s, _, _ in runs.values()} == {"completed"}
    assert all(d.exists() for d, s in first.items() if s["status"] == "completed")  # kept, not retrained
    superseded = list((root / out.plan.dirname / ".superseded").iterdir()) if statuses["interrupted"] else []
    assert len(superseded) == statuses["interrupted"]
    record = json.loads((root / out.plan.dirname / "sweep.json").read_text())
    assert record["id"] == out.plan.id and record["spec"]["method"] == "grid" and len(record["passes"]) == 2

    again = run_sweep(path, runs_dir=root, jobs=2)
    assert again.resumed == 12 and not again.statuses
    changed = run_sweep(path, sets=["train.epochs=5"], runs_dir=root, jobs=1)
    assert changed.plan.id != out.plan.id and changed.resumed == 0 and changed.statuses == {"completed": 12}
    assert len(run_dirs(root)) == 24  # the changed sweep is a new directory; the old one is untouched


# ---- results --------------------------------------------------------------------------------------


def test_compare_shows_default_and_tuned_rows_with_the_budget_and_aggregates_folds(tmp_path):
    cfg = {**BASE, "data": {**BASE["data"], "val_fraction": 0}, "variants": {"gd": {}, "adam": {"optimizer": {"name": "adam"}}}}
    path = config(tmp_path, cfg, method="random", budget=3, kfold=3, seed=1, params={"optimizer.lr": {"log_uniform": [1e-3, 1]}})
    out = run_sweep(path, runs_dir=tmp_path / "runs", jobs=1)
    assert out.statuses == {"completed": 2 * 4 * 3 * 2}
    c = compare([tmp_path / "runs"], warn=lambda m: None)
    (sw,) = c.sweeps
    assert sw.budget == 3 and sw.folds == 3 and sw.seeds == 2 and sw.n_trials == 8 and sw.n_runs == 48
    assert [(p.result.variant, p.role) for p in sw.picks] == [("adam", "default"), ("adam", "tuned"), ("gd", "default"), ("gd", "tuned")]
    facts = c.rows[0].runs[0]
    assert facts.fold is not None
    for p in sw.picks:
        assert len(p.result.runs) == 6 and p.trials == 3 and p.runs == 18 and p.epochs == 18 * 12
        assert {f.sweep["trial"] for f in p.result.runs} == {p.result.trial}
        assert p.result.mean == pytest.approx(np.mean([f.best_cost for f in p.result.runs]))
    tuned = {p.result.variant: p.result for p in sw.picks if p.role == "tuned"}
    # the tuned trial has the lowest mean best validation cost of its variant's searched trials
    all_runs = [read_run(d) for d in run_dirs(tmp_path / "runs")]
    for v, best in tuned.items():
        per = {}
        for r in all_runs:
            if r.summary["sweep"]["variant"] == v and r.summary["sweep"]["trial"] != "default":
                per.setdefault(r.summary["sweep"]["trial"], []).append(np.nanmin(r.metrics["val_cost"]))
        assert best.trial == min(per, key=lambda t: np.mean(per[t]))
    assert len(c.rows) == 4 and all(len(r.runs) == 6 and r.folds == 3 and len(r.seeds) == 2 for r in c.rows)
    text = render_plain(c)
    assert "random search, budget 3 trials per variant" in text and "2 x 3 folds" in text
    assert "3 trials, 18 runs, 216 epochs" in text
    rec = {r["label"]: r for r in records(c)}
    assert rec[f"tiny/adam/{tuned['adam'].trial}"]["sweep"]["setting"] == "tuned"
    assert rec["tiny/gd/default"]["sweep"]["params"] == {} and rec["tiny/gd/default"]["folds"] == 3


def test_heatmap_table_of_a_2d_grid(tmp_path):
    cfg = {**BASE, "variants": {"momentum": {"optimizer": {"name": "momentum"}}}}
    path = config(tmp_path, cfg, params={"optimizer.lr": [0.01, 0.1], "optimizer.mu": [0.5, 0.9, 0.99]})
    run_sweep(path, runs_dir=tmp_path / "runs", jobs=1)
    runs = [read_run(d) for d in run_dirs(tmp_path / "runs")]
    xs, ys, grid = heatmap_table(runs, "optimizer.lr", "optimizer.mu", "val_cost")
    assert xs == [0.01, 0.1] and ys == [0.5, 0.9, 0.99] and grid.shape == (3, 2)
    want = np.mean([r.metrics["val_cost"][-1] for r in runs
                    if r.config["optimizer"]["lr"] == 0.1 and r.config["optimizer"]["mu"] == 0.9])
    assert grid[1, 1] == pytest.approx(want) and np.isfinite(grid).all()
    with pytest.raises(OptbenchError, match="no run sets both"):
        heatmap_table(runs, "optimizer.lr", "optimizer.beta1")
    one = [r for r in runs if r.config["optimizer"]["mu"] == 0.5][:1]
    xs1, ys1, grid1 = heatmap_table(one, "optimizer.lr", "optimizer.mu", "val_cost")
    assert grid1.shape == (1, 1) and grid1[0, 0] == one[0].metrics["val_cost"][-1]
