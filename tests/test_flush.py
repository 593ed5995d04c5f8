"""Rows kept in memory and written in blocks: the text equals the row-by-row text, blocks go out when the
(injected) clock says so and before checkpoints, a real SIGTERM keeps every trained epoch's row, and a real
kill -9 loses at most the rows of the last flush interval and shows the runs as crashed."""

import copy
import itertools
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, run_cli
from optbench.config import expand
from optbench.execute import execute, train_group
from optbench.runs.columns import COLUMNS
from optbench.runs.status import effective_status
from optbench.runs.tracks import Tracks
from optbench.runs.writer import RunWriter
from optbench.records import EpochRecord

TIMEOUT = 120
ROW = "%d,%d" + ",%r" * (len(COLUMNS) - 3) + ",%.6f\n"  # metrics.csv's row, one epoch at a time (the unbuffered text)


def row_text(rec: EpochRecord, r: int) -> str:
    v = [float(np.broadcast_to(rec.metrics[c], rec.alive.shape)[r]) for c in COLUMNS]
    return (ROW % tuple(v)).replace("nan", "")


def awkward(cfgs: list[dict]) -> list[EpochRecord]:
    """A real group's records (runs that diverge, stop early and complete, with iteration costs), some cells
    made awkward: signed zeros, infinities, NaN, float32 values, a shared scalar."""
    trace = train_group(cfgs)
    recs = list(trace.records())
    for t, rec in enumerate(recs):
        m = dict(rec.metrics)
        m["grad_norm"] = np.where(np.arange(len(rec.alive)) % 2, -0.0, m["grad_norm"]) if t % 3 == 0 else m["grad_norm"]
        m["update_ratio"] = np.asarray(m["update_ratio"], dtype=np.float32) if t % 2 else m["update_ratio"]
        if t == 4:
            m["val_acc"] = np.full(len(rec.alive), np.inf)
            m["lr"] = np.float32(0.05)  # shared by every run
        recs[t] = EpochRecord(rec.epoch, m, rec.alive, rec.ended, rec.iter_costs)
    return recs, trace.results


GROUP = {
    "name": "fl", "seeds": [0, 1],
    "data": {"name": "moons", "n_samples": 200, "val_fraction": 0.25},
    "optimizer": {"name": "adam", "lr": 0.05},
    "regularization": {"early_stopping": {"metric": "val_cost", "patience": 3}},
    "train": {"epochs": 40, "batch_size": 32, "log_iterations": True},
    "variants": {"ok": {}, "boom": {"optimizer": {"name": "adam", "lr": 1e3}}},
}


def test_rows_written_in_blocks_equal_the_unbuffered_text(tmp_path):
    cfgs = expand(GROUP)
    recs, results = awkward(cfgs)
    ends = {r.epochs for r in results}
    assert len(ends) > 1  # runs end at different epochs: blocks hold rows of some runs only
    texts = {}
    for every in (0.0, 3.0, math.inf):  # every epoch, every third, only the first and the end
        tick = itertools.count()
        w = RunWriter(tmp_path / str(every), cfgs, group="g", flush_every=every, clock=lambda: float(next(tick)))
        w.start()
        for rec in recs:
            w.on_epoch(rec)
        w.finish(results, seconds=1.0)
        texts[every] = [((d / "metrics.csv").read_text(), (d / "iterations.csv").read_text(),
                         json.loads((d / "summary.json").read_text())) for d in w.dirs]
    for r, (metrics, iterations, summary) in enumerate(texts[math.inf]):
        expected = ",".join(COLUMNS) + "\n" + "".join(row_text(rec, r) for rec in recs if rec.alive[r])
        assert metrics == expected
        assert len(metrics.splitlines()) == results[r].epochs + 2  # header, epochs 0..E
        assert iterations.count("\n") > len(metrics.splitlines())  # several batches per epoch
        for every in (0.0, 3.0):
            got = texts[every][r]
            assert got[:2] == (metrics, iterations)
            assert {k: got[2][k] for k in ("initial", "final", "best")} == {k: summary[k] for k in ("initial", "final", "best")}


def test_rows_reach_the_file_when_the_clock_says_and_before_a_checkpoint(tmp_path):
    cfgs = expand({**GROUP, "variants": {"ok": {}}, "regularization": {}, "train": {"epochs": 8, "batch_size": 32}})
    recs, results = awkward(cfgs)
    now = [0.0]
    w = RunWriter(tmp_path, cfgs, group="g", flush_every=1.0, clock=lambda: now[0])
    w.start()
    on_disk = lambda: [len((d / "metrics.csv").read_text().splitlines()) - 1 for d in w.dirs]  # noqa: E731
    seen = []
    for rec, t in zip(recs[:7], (0.0, 0.3, 0.6, 0.99, 1.0, 1.5, 1.9)):
        now[0] = t
        w.on_epoch(rec)
        seen.append(on_disk())
    # the first epoch at once, then nothing until a second has passed since: epochs 1-4 at t = 1.0
    assert seen == [[1, 1], [1, 1], [1, 1], [1, 1], [5, 5], [5, 5], [5, 5]]
    w.checkpoint([{"active": True, "epoch": 6}] * 2)  # a resume keeps the rows up to the checkpoint's epoch: written first
    assert on_disk() == [7, 7] and all((d / "checkpoint.npz").is_file() for d in w.dirs)
    assert len(recs) == 9 and [r.epochs for r in results] == [8, 8]
    now[0] = 2.0  # a second since the last timed write (the checkpoint's does not move the schedule)
    w.on_epoch(recs[7])
    assert on_disk() == [8, 8]
    now[0] = 2.5
    w.on_epoch(recs[8])
    assert on_disk() == [8, 8]
    w.finish(results, seconds=1.0)
    assert on_disk() == [9, 9]


def test_block_trackers_equal_the_value_by_value_rule():
    """First, last and best (lowest cost, highest accuracy, NaN never, the earliest on ties) over blocks of
    any split, and runs missing from some blocks, equal a plain loop over the values."""
    rng = np.random.default_rng(5)
    T, R = 30, 5
    table = rng.choice([0.5, 0.25, -0.0, 0.0, np.nan, np.inf, -np.inf, 0.125], size=(T, R, len(COLUMNS)))
    table[:, :, 0] = np.arange(T)[:, None]
    alive = rng.random((T, R)) < 0.7
    alive[:, 3] = False  # a run with no rows at all
    expected = []
    for r in range(R):
        out = {}
        for k, c in enumerate(("train_cost", "val_cost", "train_acc", "val_acc")):
            j = COLUMNS.index(c)
            xs = [(table[t, r, j], t) for t in range(T) if alive[t, r]]
            best = None
            for x, t in xs:
                if x == x and (best is None or (x > best[0] if c.endswith("acc") else x < best[0])):
                    best = (x, t)
            out[c] = (xs[0][0] if xs else None, xs[-1][0] if xs else None, best)
        expected.append(out)
    for cuts in ([], [1, 2, 3], [7, 19], list(range(1, T))):
        tr = Tracks(R)
        for a, b in zip([0, *cuts], [*cuts, T]):
            tr.extend(table[a:b], alive[a:b])
        for r in range(R):
            got = tr.of(r)
            for c, (first, last, best) in expected[r].items():
                if first is None:
                    assert tr.n[r] == 0
                    continue
                assert repr(got["first"][c]) == repr(float(first)) and repr(got["last"][c]) == repr(float(last)), (cuts, r, c)
                assert (got["best_epoch"][c] is None) == (best is None), (cuts, r, c)
                if best is not None:
                    assert (repr(got["best"][c]), got["best_epoch"][c]) == (repr(float(best[0])), best[1]), (cuts, r, c)


# ---- real signals, through the CLI ------------------------------------------------------------------------

# `optbench train` itself, its execute() given a clock that counts on_epoch calls (one per epoch: flushes every
# K epochs, K = inf: only the first) and a progress that, at epoch X, says so and waits for stdin to close
LAUNCHER = r"""
import itertools, sys
from optbench import execute as ex
X, K = int(sys.argv[1]), float(sys.argv[2])
real = ex.execute

class Gate:
    def __init__(self, inner):
        self.inner = inner
    def group_started(self, *a):
        self.inner.group_started(*a)
    def group_done(self, *a):
        self.inner.group_done(*a)
    def epoch(self, rec):
        self.inner.epoch(rec)
        if rec.epoch == X:
            print("at", X, flush=True)
            sys.stdin.read()

def execute(cfgs, runs_dir, progress=None, **kw):
    return real(cfgs, runs_dir, Gate(progress), flush_every=K, clock=itertools.count().__next__, **kw)

ex.execute = execute
from optbench.cli import app
app(sys.argv[3:], prog_name="optbench")
"""

STUDY = {"name": "sig", "seeds": [0, 1, 2], "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "seed": 3},
         "model": {"hidden": [5, 3]}, "loss": "bce", "train": {"epochs": 60, "batch_size": 16},
         "optimizer": {"name": "adam", "lr": 0.01},
         "variants": {"slow": {}, "fast": {"optimizer": {"name": "adam", "lr": 0.03}}}}  # one group of 6


def rows(d: Path) -> list[str]:
    """metrics.csv's rows without the seconds column."""
    return [line.rsplit(",", 1)[0] for line in (d / "metrics.csv").read_text().splitlines()[1:]]


@pytest.fixture
def study(tmp_path):
    config = tmp_path / "sig.yaml"
    config.write_text(yaml.safe_dump(copy.deepcopy(STUDY), sort_keys=False))
    outcomes, _ = execute(expand(STUDY), tmp_path / "ref")
    reference = {(o.cfg["label"], o.cfg["seed"]): rows(o.path) for o in outcomes}
    assert len(reference) == 6 and {len(v) for v in reference.values()} == {61}
    return config, reference


def gated(config: Path, root: Path, X: int, K: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(X), str(K), "train", str(config), "--runs-dir", str(root),
                          "-q", "--checkpoint-every", "1000"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line != f"at {X}\n":
        p.kill()
        pytest.fail(f"the gated train did not reach epoch {X}: {line!r} {p.communicate(timeout=TIMEOUT)}")
    return p


def by_run(root: Path) -> dict:
    out = {}
    for d in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        s = json.loads((d / "summary.json").read_text())
        out[s["label"], s["seed"]] = (s, rows(d))
    return out


def test_a_real_sigterm_keeps_every_trained_epochs_row(study, tmp_path):
    config, reference = study
    root = tmp_path / "runs"
    X = 20
    p = gated(config, root, X, math.inf)
    try:
        assert {len(r) for _, r in by_run(root).values()} == {1}  # only epoch 0 written so far: the rest is held
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate("", timeout=TIMEOUT)  # stdin closed: the gate opens, training stops at the next step
    finally:
        p.kill()
    assert p.returncode == 130, err
    runs = by_run(root)
    assert set(runs) == set(reference)
    for key, (summary, got) in runs.items():
        assert summary["status"] == "interrupted" and summary["epochs"] == X
        assert got == reference[key][: X + 1]  # epochs 0..X, every row, as an uninterrupted run writes them
    code, out, err = run_cli("compare", root, timeout=TIMEOUT)
    assert code == 0 and "status" not in err, err  # interrupted runs read back whole


def test_a_real_kill_9_loses_at_most_the_last_flush_interval_and_shows_crashed(study, tmp_path):
    config, reference = study
    root = tmp_path / "runs"
    X, K = 20, 7
    p = gated(config, root, X, K)
    try:
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=TIMEOUT)
    finally:
        p.kill()
    runs = by_run(root)
    assert set(runs) == set(reference)
    for key, (summary, got) in runs.items():
        assert summary["status"] == "running" and effective_status(summary) == "crashed"
        last = len(got) - 1  # epochs 0..last on disk, whole rows as the uninterrupted run's
        assert got == reference[key][: last + 1]
        assert X - K < last < X  # epochs last+1..X were trained and held: at most one interval lost
    code, out, err = run_cli("compare", root, timeout=TIMEOUT)
    assert err.count("status crashed") == 6 and "status running" not in err, err
