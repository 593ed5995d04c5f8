"""What the terminal shows: tables within the width (piped and in a real terminal), progress by epochs,
quiet output, interrupted summaries, and the per-run timing of update rules."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT
from optbench import layout
from optbench.compare import compare, records, results_columns
from optbench.config import expand
from optbench.execute import execute
from optbench.sweep import run_sweep

TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "seed": 1, "val_fraction": 0.25},
    "model": {"hidden": [5, 2]},
    "train": {"epochs": 20, "batch_size": 32},
    "optimizer": {"name": "gd", "lr": 0.1},
    "variants": {"gd": {}, "momentum": {"optimizer": {"name": "momentum", "mu": 0.9}},
                 "adam": {"optimizer": {"name": "adam", "lr": 0.01}}},
}
# two groups (the hidden sizes differ), so one can be running while the other has not started
TWO_GROUPS = {**TINY, "variants": {"narrow": {}, "wide": {"model": {"hidden": [8, 4]}}},
              "sweep": {"method": "grid", "params": {"optimizer.lr": [0.01, 0.1]}}}


def env(**extra):
    e = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    e["PYTHONPATH"] = str(ROOT)
    e.update(extra)
    return e


def cli(*args, **kw):
    p = subprocess.run([sys.executable, "-m", "optbench", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                       env=env(**kw), timeout=300)
    return p.returncode, p.stdout, p.stderr


def write(tmp_path, cfg, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sweep_root(tmp_path_factory):
    """A small sweep with long labels, a validation split and two varied keys: the widest compare output."""
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = {**TINY, "name": "a-rather-long-experiment-name",
           "sweep": {"method": "random", "budget": 3, "seed": 0,
                     "params": {"optimizer.lr": {"log_uniform": [1e-3, 1.0]}, "regularization.l2": [0.0, 0.001]}}}
    out = run_sweep(write(tmp, cfg), runs_dir=tmp / "runs", jobs=1)
    return out.root


# ---- fitting tables -------------------------------------------------------------------------------


class Col:
    def __init__(self, header, cells, align="l", best=frozenset()):
        self.header, self.cells, self.align, self.best = header, cells, align, frozenset(best)


@pytest.mark.parametrize("width", [40, 60, 100, 140])
def test_fit_keeps_every_line_within_the_width_and_every_word_whole(width):
    rng = np.random.default_rng(0)
    words = ["update", "ratio", "1.8e-02", "paired,", "5", "seeds", "moons-sweep/momentum/default", "worse", "(CI"]
    cols = [Col("label", [f"moons/variant-{i}" for i in range(5)])]
    cols += [Col(f"metric number {j}", [f"{x:.4g}" for x in rng.normal(size=5)], "r", {j % 5}) for j in range(6)]
    cols += [Col("note", [" ".join(rng.choice(words, size=6)) for _ in range(5)])]
    lines = layout.fit(cols, width)
    text = layout.plain(lines)
    assert max(len(line) for line in text.splitlines()) <= width
    for col in cols:  # numbers and words are never cut: each appears whole somewhere in the text
        for cell in col.cells:
            for w in cell.split():
                if len(w) < width // 3:
                    assert w in text, (w, width)
    starred = sum(t.endswith("*") for line in lines for t, best in line if best)
    assert starred == 6  # one best cell per metric column, marked once


def test_fit_leaves_a_table_that_fits_as_it_is():
    cols = [Col("label", ["a", "bb"]), Col("cost", ["0.5", "0.25"], "r", {1})]
    assert layout.plain(layout.fit(cols, 100)).splitlines() == ["label   cost", "-----  -----", "a       0.5", "bb     0.25*"]


def test_term_width_honours_columns_and_defaults_to_100_in_a_pipe(monkeypatch):
    monkeypatch.setenv("COLUMNS", "77")
    assert layout.term_width() == 77
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert layout.term_width() == 100


def longest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_compare_and_list_fit_100_columns_in_a_pipe(sweep_root):
    for columns in ("100", None, "72"):
        extra = {"COLUMNS": columns} if columns else {}
        code, out, err = cli("compare", sweep_root, **extra)
        assert code == 0, err
        assert longest(out) <= int(columns or 100), columns
        assert "update µs/step" in out.replace("\n", " ") or "µs/step" in out
        code, out, err = cli("list", **extra)
        assert code == 0 and longest(out) <= int(columns or 100) and "initial_accumulator_value=0.0" in out
    code, wide, _ = cli("compare", sweep_root, "--wide", COLUMNS="100")
    assert code == 0 and longest(wide) <= 100
    assert "AUC" in wide and "more columns with --wide" not in wide
    code, narrow, _ = cli("compare", sweep_root, COLUMNS="100")
    assert "more columns with --wide: AUC" in narrow and "AUC  " not in narrow
    assert "labels: a-rather-long-experiment-name/<label>" in narrow


def tmux_capture(tmp_path, command: str) -> str:
    """Run `command` in a detached tmux window 100 columns wide (a real terminal) and capture what it shows."""
    sock = str(tmp_path / "tmux.sock")
    done = tmp_path / "done"
    script = tmp_path / "cmd.sh"
    script.write_text(f"cd {ROOT}\nunset COLUMNS\nexport PYTHONPATH={ROOT}\n{command}\ntouch {done}\nsleep 60\n")
    subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-x", "100", "-y", "50", f"bash {script}"], check=True,
                   env=env())
    try:
        for _ in range(600):
            if done.exists():
                break
            time.sleep(0.1)
        assert done.exists(), "the command in tmux did not finish"
        return subprocess.run(["tmux", "-S", sock, "capture-pane", "-p", "-J", "-S", "-5000"], capture_output=True,
                              text=True, check=True).stdout
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)


def test_compare_and_list_fit_a_100_column_terminal(sweep_root, tmp_path):
    py = sys.executable
    shown = tmux_capture(tmp_path, f"{py} -m optbench compare {sweep_root}; {py} -m optbench list optimizers")
    lines = shown.splitlines()
    assert longest(shown) <= 100
    assert any(line.startswith("vs best:") for line in lines)  # the rich tables were drawn, to the end
    assert any("initial_accumulator_value=0.0" in line for line in lines)
    assert "…" not in shown  # nothing cut


# ---- timing ---------------------------------------------------------------------------------------


def test_each_run_records_its_update_rules_time(tmp_path):
    lbfgs = {"optimizer": {"name": "lbfgs", "lr": 1.0}, "train": {"epochs": 5, "batch_size": "full"}}
    cfgs = expand({**TINY, "variants": {**TINY["variants"], "lbfgs": lbfgs}})
    outcomes, _ = execute(cfgs, tmp_path)
    for o in outcomes:
        s = json.loads((o.path / "summary.json").read_text())
        steps = int(np.loadtxt(o.path / "metrics.csv", delimiter=",", skiprows=1, usecols=1)[-1])
        assert s["update_seconds"] > 0 and s["update_us_per_step"] > 0 and s["update_steps"] == steps
        assert s["update_us_per_step"] == pytest.approx(1e6 * s["update_seconds"] / steps)
        assert s["update_replicas"] == (1 if o.cfg["optimizer"]["name"] == "lbfgs" else 2)  # its slice: two seeds
    c = compare([tmp_path])
    recs = {r["label"]: r for r in records(c)}
    assert all(r["update_us_per_step"] > 0 for r in recs.values())
    col = {col.header: col for col in results_columns(c)}["update µs/step"]
    assert all(cell != "-" and float(cell) > 0 for cell in col.cells)


def test_group_seconds_are_never_best(tmp_path):
    """A diverged run stops early, so its clock reads less: still nothing is marked in the group's time."""
    cfgs = expand({**TINY, "variants": {"ok": {}, "blowup": {"optimizer": {"name": "gd", "lr": 1e4}}}})
    execute(cfgs, tmp_path)
    c = compare([tmp_path])
    assert {r.name: r.runs[0].status for r in c.rows}["tiny/blowup"] == "diverged"
    seconds = {r.name: r.mean("seconds") for r in c.rows}
    assert seconds["tiny/blowup"] < seconds["tiny/ok"]  # the case where a ranking would mark it best
    col = {col.header: col for col in results_columns(c)}["group s"]
    assert col.best == frozenset() and col.wide
    code, out, _ = cli("compare", tmp_path, "--wide", COLUMNS="100")
    assert code == 0
    head = next(i for i, line in enumerate(out.splitlines()) if line.startswith("label"))
    assert not any(cell.endswith("*") for cell in out.splitlines()[head + 2].split()[-2:])
    assert "group s: the wall time of the group" in out.replace("\n  ", " ")


# ---- progress and quiet ---------------------------------------------------------------------------


class Recorder:
    """A progress object that keeps what it was told."""

    def __init__(self):
        self.epochs, self.tallies = [], []

    def group_started(self, index, n_groups, cfgs):
        self.epochs.append(("start", index))

    def epoch(self, rec):
        self.epochs.append(rec.epoch)

    def group_done(self, cfgs, results, seconds):
        self.epochs.append("done")

    def started(self, start):
        pass

    def update(self, tally):
        self.tallies.append(tally)


def test_train_progress_moves_by_epochs(tmp_path):
    rec = Recorder()
    execute(expand({k: v for k, v in TWO_GROUPS.items() if k != "sweep"}), tmp_path, rec)
    assert rec.epochs == [("start", 0), *range(21), "done", ("start", 1), *range(21), "done"]


def test_sweep_progress_moves_by_epochs_before_a_group_finishes(tmp_path):
    rec = Recorder()
    run_sweep(write(tmp_path, TWO_GROUPS), runs_dir=tmp_path / "runs", jobs=1, progress=rec)
    total = 2 * 2 * 2 * 20  # variants x learning rates x seeds x epochs
    assert {t.epochs_total for t in rec.tallies} == {total}
    moving = [t for t in rec.tallies if t.done == 0 and 0 < t.epochs_done]
    assert moving, [(t.done, t.epochs_done) for t in rec.tallies]  # epochs counted while no run had finished
    assert rec.tallies[-1].epochs_done == total and rec.tallies[-1].done == 8
    assert [t.epochs_done for t in rec.tallies] == sorted(t.epochs_done for t in rec.tallies)


def test_worker_processes_report_epochs_to_the_client():
    """LocalPool's second job trains in a worker process: its run-epochs reach the client through the queue."""
    from optbench.workers.jobs import Job
    from optbench.workers.local import LocalPool

    cfgs = expand({k: v for k, v in TINY.items() if k != "variants"})
    pool = LocalPool(2)
    seen = []
    pool.watch(lambda g, n: seen.append((g, n)))
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            jobs = [Job(cfgs, Path(d), f"g{i}", [{} for _ in cfgs]) for i in range(2)]
            handles = [pool.submit(j) for j in jobs]
            assert handles[1] is not pool._here_job  # the second one went to a worker process
            left = list(handles)
            for _ in range(600):
                left = [h for h in left if h not in pool.wait(left, timeout=0.1)] if left else []
                if not left and ("g1", 2 * 20) in seen:
                    break
                if not left:
                    pool.wait([], timeout=0.1)
            assert ("g0", 40) in seen and ("g1", 40) in seen
    finally:
        pool.close()


def test_run_epochs_counts_ended_replicas_as_done():
    from optbench.execute import _RunEpochs
    from optbench.records import EpochRecord

    got = []
    count = _RunEpochs(3, 10, got.append, every=0.0)
    alive = np.ones(3, dtype=bool)
    count(EpochRecord(4, {}, alive, {1: ("diverged", "x")}))
    count(EpochRecord(5, {}, alive, {}))
    assert got == [10 + 2 * 4, 10 + 2 * 5]


def test_sweep_progress_in_a_pipe_prints_epoch_lines(tmp_path):
    code, out, err = cli("sweep", write(tmp_path, TWO_GROUPS), "--runs-dir", tmp_path / "runs", "--jobs", "1")
    assert code == 0, err
    lines = [line for line in out.splitlines() if "% of epochs" in line]
    assert any(" 50% of epochs, runs 0/8 done" in line for line in lines), out  # one group trained, none written yet
    assert lines[-1].lstrip().startswith("100% of epochs, runs 8/8 done")


def test_quiet_train_and_sweep_print_one_line(tmp_path):
    code, out, err = cli("train", write(tmp_path, {k: v for k, v in TINY.items()}), "--runs-dir", tmp_path / "t", "-q")
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith("tiny: 6 runs, 6 completed in ")
    assert not any(d.name in out for d in (tmp_path / "t").iterdir())
    code, out, err = cli("sweep", write(tmp_path, TWO_GROUPS, "s.yaml"), "--runs-dir", tmp_path / "s", "--jobs", "1", "-q")
    assert code == 0, err
    assert out.count("\n") == 1 and "8 completed" in out and "optbench compare" in out and "%" not in out
    code, out, err = cli("train", write(tmp_path, TINY), "--runs-dir", tmp_path / "t2")
    assert code == 0 and "run directories" in out and "epoch 20/20" in out  # not quiet: the listing and progress


def test_rich_train_bar_stops_where_training_stopped(monkeypatch):
    from rich.console import Console

    from optbench.records import RunResult
    from optbench.report import progress

    monkeypatch.setattr(progress, "is_terminal", lambda: True)
    buf = io.StringIO()
    monkeypatch.setattr(progress, "console", lambda width=None: Console(file=buf, width=100, force_terminal=True))
    cfgs = expand({k: v for k, v in TINY.items() if k != "variants"} | {"train": {"epochs": 300, "batch_size": 32}})
    p = progress.TrainProgress()
    with p:
        p.group_started(0, 1, cfgs)
        res = [RunResult("interrupted", "interrupted after epoch 140", 140, {}, {}, "", "") for _ in cfgs]
        p.group_done(cfgs, res, 1.0)
        task = p._bar.tasks[0]
        assert task.completed == 140 and task.total == 300
        assert "2 interrupted at epoch 140/300" in task.fields["costs"]


# ---- interrupts -----------------------------------------------------------------------------------


def start(args, tmp_path):
    return subprocess.Popen([sys.executable, "-m", "optbench", *map(str, args)], cwd=ROOT, env=env(COLUMNS="100"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_rows(root: Path, rows: int, pattern="*/metrics.csv", timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for f in root.glob(pattern):
            if f.read_text().count("\n") > rows:
                return
        time.sleep(0.1)
    raise AssertionError("training did not get going")


def test_interrupted_train_says_where_runs_stopped_and_which_never_started(tmp_path):
    first = write(tmp_path, {**TINY, "train": {"epochs": 200000, "batch_size": 32}}, "first.yaml")
    second = write(tmp_path, {**TINY, "name": "second", "seeds": [7]}, "second.yaml")
    p = start(["train", first, second, "--runs-dir", tmp_path / "runs"], tmp_path)
    wait_rows(tmp_path / "runs", 30)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert max(len(line) for line in out.splitlines()) <= 100
    for d in (tmp_path / "runs").iterdir():
        s = json.loads((d / "summary.json").read_text())
        assert s["status"] == "interrupted"
        row = next(line for line in out.splitlines() if line.split()[:2] == [s["label"].split("/")[-1], str(s["seed"])]
                   or line.split()[:2] == [s["label"], str(s["seed"])])
        assert f"{s['epochs']}/200000" in row
    assert "never started (3 runs): second/gd (s7), second/momentum (s7), second/adam (s7)" in out
    assert "200000/200000" not in out


def test_interrupted_sweep_says_where_runs_stopped_and_which_never_started(tmp_path):
    cfg = {**TWO_GROUPS, "train": {"epochs": 20000, "batch_size": 32}}
    p = start(["sweep", write(tmp_path, cfg), "--runs-dir", tmp_path / "runs", "--jobs", "1"], tmp_path)
    for line in p.stdout:  # a group trains in memory and is written when done: wait for its progress instead
        m = re.match(r"\s*(\d+)% of epochs", line)
        if m and 0 < int(m.group(1)) < 50:  # the first group (half the epochs) is on its way
            break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    (sweep,) = (tmp_path / "runs").iterdir()
    stopped = [json.loads((d / "summary.json").read_text()) for d in sweep.iterdir() if (d / "summary.json").exists()]
    assert len(stopped) == 4 and {s["status"] for s in stopped} == {"interrupted"}
    text = out.replace("\n    ", " ")
    assert f"stopped (4 runs) at epoch {stopped[0]['epochs']}/20000: " in text
    assert "never started (4 runs): " in text
    assert "100% of epochs" not in out
