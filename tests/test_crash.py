"""Crashes, resumes and write failures, with real processes and signals: a `train` killed with kill -9 shows
as crashed and `train --resume` finishes it with the numbers of an uninterrupted run; a runs directory that
cannot be written, or fills up, is one error line (exit 2) and leaves no run `running`; a killed Dask client's
temporary directories are removed by the next pass (never a live writer's); float32 lr cells do not depend
on the group."""

import copy
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, run_cli
from optbench import checkpoint
from optbench.config import expand
from optbench.execute import execute
from optbench.owner import me, process_start
from optbench.runs.status import effective_status
from optbench.groups import make_groups
from optbench.train import Trainer

TIMEOUT = 60

# one replica-batched group of 8 runs: Adam at two learning rates, momentum with a ramp, SGD on a plateau schedule;
# float32 (L-BFGS and the other state kinds: the engine-level resume test)
EPOCHS = 4000
EXPERIMENT = {
    "name": "crash",
    "seeds": [0, 1],
    "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "seed": 3},
    "model": {"hidden": [5, 3]},
    "loss": "bce",
    # long enough that a kill 0.2 s + 0.3 s in lands mid-training: 800 epochs took 0.46 s on an AVX-512 machine
    "train": {"epochs": EPOCHS, "batch_size": 16, "dtype": "float32"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "variants": {
        "adam": {},
        "adam-fast": {"optimizer": {"name": "adam", "lr": 0.03, "beta1": 0.8}},
        "momentum": {"optimizer": {"name": "momentum", "lr": 0.05, "mu": 0.9},
                     "momentum_schedule": {"name": "ramp", "start": 0.5, "end": 0.99, "over": 100}},
        "sgd": {"optimizer": {"name": "sgd", "lr": 0.5}, "schedule": {"name": "plateau", "patience": 5}},
    },
}


def write_config(tmp_path: Path, raw: dict, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(copy.deepcopy(raw), sort_keys=False))
    return path


def runs_of(root: Path) -> dict:
    """(label, seed) -> (status, metrics.csv without the seconds column, params.npz arrays as bytes)."""
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        s = json.loads((d / "summary.json").read_text())
        rows = [line.rsplit(",", 1)[0] for line in (d / "metrics.csv").read_text().splitlines()]
        with np.load(d / "params.npz") as p:
            params = {k: p[k].tobytes() for k in p.files}
        key = (s["label"], s["seed"])
        assert key not in out, f"two run directories for {key}"
        out[key] = (s["status"], rows, params)
    return out


def summaries(root: Path) -> list[dict]:
    out = []
    for f in sorted(root.glob("*/summary.json")):
        try:
            out.append(json.loads(f.read_text()))
        except ValueError:
            pass  # being replaced
    return out


def wait_for(condition, what: str, proc=None, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def reaper():
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=TIMEOUT)


def start_train(config: Path, root: Path, *args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "optbench", "train", str(config), "--runs-dir", str(root), "-q", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# ---- kill -9 of a train, then --resume --------------------------------------------------------------


def test_a_train_killed_with_sigkill_shows_crashed_and_resumes_to_the_uninterrupted_numbers(tmp_path, reaper):
    config = write_config(tmp_path, EXPERIMENT)
    ref = tmp_path / "ref"
    code, _, err = run_cli("train", config, "--runs-dir", ref, "-q", timeout=300)
    assert code == 0, err
    reference = runs_of(ref)
    assert len(reference) == 8 and "completed" in {s for s, _, _ in reference.values()}

    root = tmp_path / "runs"
    p = start_train(config, root, "--checkpoint-every", "0.2")
    reaper.append(p)
    ckpts = lambda: len(list(root.glob("*/checkpoint.npz"))) == 8  # noqa: E731
    wait_for(ckpts, "checkpoint of every run", proc=p)
    time.sleep(0.3)  # rows beyond the checkpoint: they are dropped and trained again
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=TIMEOUT)
    left = summaries(root)
    assert len(left) == 8 and {s["status"] for s in left} == {"running"}  # killed mid-training
    assert {s["owner"]["pid"] for s in left} == {p.pid} and {s["owner"]["host"] for s in left} == {socket.gethostname()}
    assert {effective_status(s) for s in left} == {"crashed"}
    epochs = [len((d / "metrics.csv").read_text().splitlines()) - 1 for d in root.iterdir()]
    assert 1 < min(epochs) and max(epochs) < EPOCHS + 1

    code, out, err = run_cli("compare", root, timeout=TIMEOUT)
    assert err.count("status crashed") == 8 and "status running" not in err, err

    code, out, err = run_cli("train", config, "--runs-dir", root, "-q", "--resume", timeout=300)
    assert code == 0, err
    assert "8 runs go on from their checkpoints" in err, err
    assert runs_of(root) == reference  # same directories, rows and parameters as the uninterrupted runs
    assert not list(root.glob("*/checkpoint*.npz"))  # both slots removed once a run finishes

    code, out, err = run_cli("train", config, "--runs-dir", root, "-q", "--resume", timeout=TIMEOUT)
    assert code == 0 and "8 finished already" in err, err
    assert runs_of(root) == reference


def test_an_interrupted_train_resumes_from_its_checkpoint_and_a_run_without_one_starts_again(tmp_path, reaper):
    raw = {**EXPERIMENT, "seeds": [0], "train": {**EXPERIMENT["train"], "dtype": "float64"}, "variants": {
        "adam": {}, "sgd": EXPERIMENT["variants"]["sgd"]}}
    config = write_config(tmp_path, raw)
    ref = tmp_path / "ref"
    assert run_cli("train", config, "--runs-dir", ref, "-q", timeout=300)[0] == 0
    root = tmp_path / "runs"
    p = start_train(config, root, "--checkpoint-every", "0.2")
    reaper.append(p)
    wait_for(lambda: len(list(root.glob("*/checkpoint.npz"))) == 2, "checkpoints", proc=p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 130, err
    assert {s["status"] for s in summaries(root)} == {"interrupted"}
    crashed = sorted(root.iterdir())[0]
    for slot in crashed.glob("checkpoint*.npz"):  # as if killed before its first checkpoint
        slot.unlink()
    code, _, err = run_cli("train", config, "--runs-dir", root, "-q", "--resume", timeout=300)
    assert code == 0 and "1 runs go on from their checkpoints, 1 start again" in err, err
    assert runs_of(root) == runs_of(ref)


def test_a_resumed_group_may_mix_runs_of_other_groups_and_still_equals_the_uninterrupted_runs():
    """Engine level, every kind of state: optimizer and schedule states, dropout, batch norm, Polyak, noise, mixup,
    early stopping, random sampling, drawn-ahead shuffles, L-BFGS; resumed in another grouping than trained."""
    base = copy.deepcopy(EXPERIMENT)
    base["train"] = {"epochs": 30, "batch_size": 16}
    reg = {"model": {"hidden": [6], "drop_prob": 0.2, "norm": "batch"},
           "regularization": {"polyak": 0.9, "input_noise": 0.1, "mixup": 0.2,
                              "early_stopping": {"metric": "train_cost", "patience": 4}}}
    cases = [
        (base, 7, [7, 2, 5, 0]),
        ({**base, "train": {**base["train"], "dtype": "float32"}}, 11, [3, 1]),
        ({**base, "train": {**base["train"], "sharpness_every": 4}}, 9, [3, 0]),  # its probes: the same numbers
        ({**base, **reg}, 6, [0, 5]),
        ({**base, "train": {"epochs": 12, "batch_size": 16, "sampling": "random", "iterations_per_epoch": 5}}, 4, [2]),
        ({**base, "data": {**base["data"], "n_samples": 3000}, "train": {"epochs": 6, "batch_size": 512}}, 3, [6, 1]),
        ({**{k: v for k, v in base.items() if k != "variants"}, "train": {"epochs": 6, "batch_size": "full"}, "optimizer": {"name": "lbfgs", "lr": 1.0}}, 2, [1]),
    ]
    for raw, K, pick in cases:
        assert_resume_equals_uninterrupted(raw, K, pick)


def assert_resume_equals_uninterrupted(raw: dict, K: int, pick: list[int]) -> None:
    """Train raw's runs in their groups, checkpointing every run at epoch K (through the file); resume runs
    `pick` (regrouped) from there: each one's later rows, status and parameters equal the uninterrupted run's."""
    cfgs = [c for g in make_groups(expand(raw)) for c in g]
    rows, saved = {}, {}

    def on_epoch(rec, rows=rows):
        for r in np.flatnonzero(rec.alive).tolist():
            rows.setdefault(r, []).append(repr({k: float(np.broadcast_to(v, rec.alive.shape)[r])
                                                for k, v in rec.metrics.items() if k != "seconds"}))
        if rec.epoch == K:
            with tempfile.TemporaryDirectory() as tmp:  # through the file: what a resume reads
                for r, st in enumerate(rec.state()):
                    checkpoint.save(Path(tmp) / "c.npz", st)
                    saved[r] = checkpoint.load(Path(tmp) / "c.npz")

    full = Trainer(cfgs).run(on_epoch=on_epoch)
    for group in make_groups([cfgs[i] for i in pick]):
        idx = [next(i for i in pick if cfgs[i] is c) for c in group]
        again: dict = {}

        def on2(rec, again=again, idx=idx):
            for r in np.flatnonzero(rec.alive).tolist():
                again.setdefault(idx[r], []).append(repr({k: float(np.broadcast_to(v, rec.alive.shape)[r])
                                                          for k, v in rec.metrics.items() if k != "seconds"}))

        res = Trainer(group).run(on_epoch=on2, resume=[saved[i] for i in idx])
        for j, i in enumerate(idx):
            assert rows[i][K + 1:] == again.get(i, []), (raw["name"], cfgs[i]["label"])
            assert (res[j].status, res[j].epochs, repr(res[j].final_eval)) == (full[i].status, full[i].epochs, repr(full[i].final_eval))
            for k, v in full[i].params.items():
                assert v.tobytes() == res[j].params[k].tobytes(), (raw["name"], cfgs[i]["label"], k)


def test_a_resumed_nadam_beta1_sweep_equals_the_uninterrupted_runs():
    """NAdam's mu_product is one value per replica once the replicas' beta1 differ (and one shared value while
    they agree): resumed in the same group, and regrouped with only one beta1, the runs go on exactly."""
    raw = {**{k: v for k, v in EXPERIMENT.items() if k != "variants"}, "train": {"epochs": 12, "batch_size": 16},
           "optimizer": {"name": "nadam", "lr": 0.01},
           "variants": {"b08": {"optimizer": {"name": "nadam", "beta1": 0.8}},
                        "b095": {"optimizer": {"name": "nadam", "beta1": 0.95}}}}
    assert len(make_groups(expand(raw))) == 1  # one group: beta1 is an (R, 1) column
    assert_resume_equals_uninterrupted(raw, 5, [0, 1, 2, 3])
    assert_resume_equals_uninterrupted(raw, 5, [1, 3])  # a beta1 whose runs now train alone


def test_checkpoints_keep_numpy_types_and_named_tuples():
    from typing import NamedTuple

    class State(NamedTuple):
        t: int
        m: np.ndarray
        hist: list

    template = State(0, np.zeros((2, 3), np.float32), [])
    tree = {"opt": State(4, np.arange(6, dtype=np.float32).reshape(2, 3), [np.ones(2), None]),
            "s": np.float32(0.1), "big": 2**100, "nan": float("nan"), "tup": (1, "a")}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.save(Path(tmp) / "c.npz", [checkpoint.rows_of(tree["opt"], i, 2) for i in range(2)] + [tree])
        a, b, back = checkpoint.load(Path(tmp) / "c.npz")
    opt = checkpoint.combine([a, b], template, 2)
    assert type(opt) is State and opt.t == 4 and opt.m.dtype == np.float32 and np.array_equal(opt.m, tree["opt"].m)
    assert type(back["s"]) is np.float32 and back["s"] == tree["s"] and back["big"] == 2**100 and back["tup"] == (1, "a")
    assert np.isnan(back["nan"])


def test_a_torn_checkpoint_slot_is_rejected_and_the_other_slot_is_taken(tmp_path):
    a, b = tmp_path / "checkpoint.npz", tmp_path / "checkpoint.1.npz"
    state = lambda e: {"config": "h", "state": {"epoch": e, "theta": np.arange(50.0) * e}}  # noqa: E731
    checkpoint.overwrite(a, checkpoint.dumps(state(3)))
    checkpoint.overwrite(b, checkpoint.dumps(state(4)))
    pick = lambda: checkpoint.newest([a, b], lambda t: t["config"] == "h", key=lambda t: t["state"]["epoch"])  # noqa: E731
    assert pick()["state"]["epoch"] == 4
    checkpoint.overwrite(a, checkpoint.dumps(state(5)))  # in place over a longer-lived file: still whole
    assert pick()["state"]["epoch"] == 5 and np.array_equal(pick()["state"]["theta"], np.arange(50.0) * 5)
    data = bytearray(checkpoint.dumps(state(6)))
    torn = bytes(data[: len(data) // 2]) + a.read_bytes()[len(data) // 2 :]  # killed half way through rewriting a
    a.write_bytes(torn)
    with pytest.raises(ValueError):
        checkpoint.load(a)
    assert pick()["state"]["epoch"] == 4  # the slot written before is whole
    assert checkpoint.newest([a, b], lambda t: t["config"] == "other", key=lambda t: 0) is None


# ---- effective status ---------------------------------------------------------------------------------


def test_effective_status_tells_a_dead_or_reused_pid_from_a_live_writer():
    live = {"status": "running", "owner": me()}
    assert effective_status(live) == "running"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert effective_status({"status": "running", "owner": {**me(), "pid": int(dead.stdout)}}) == "crashed"
    assert process_start(os.getpid()) is not None  # Linux: /proc/PID/stat
    reused = {**me(), "start": process_start(os.getpid()) - 1}  # this PID, but a process started at another time
    assert effective_status({"status": "running", "owner": reused}) == "crashed"
    elsewhere = {**me(), "pid": int(dead.stdout), "host": socket.gethostname() + "-other"}
    assert effective_status({"status": "running", "owner": elsewhere}) == "running"  # cannot tell: not crashed
    assert effective_status({"status": "completed", "owner": {**me(), "pid": int(dead.stdout)}}) == "completed"


# ---- write failures -----------------------------------------------------------------------------------


def test_an_unwritable_runs_dir_is_one_error_line_naming_it(tmp_path):
    config = write_config(tmp_path, {**EXPERIMENT, "train": {"epochs": 2, "batch_size": 16}})
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for runs_dir, why in ((blocker / "runs", "NotADirectoryError"), (blocker, "FileExistsError")):
        code, out, err = run_cli("train", config, "--runs-dir", runs_dir, "-q", timeout=TIMEOUT)
        assert code == 2 and err.startswith(f"error: {runs_dir}: cannot write ({why}") and len(err.splitlines()) == 1, err
    assert blocker.read_text() == "not a directory"


def _file_limit(limit: int):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    return pre


def test_a_full_disk_is_one_error_line_and_leaves_no_run_running(tmp_path):
    config = write_config(tmp_path, {**EXPERIMENT, "train": {"epochs": 2000, "batch_size": 16}})
    root = tmp_path / "runs"
    p = start_train(config, root, "--checkpoint-every", "1000", preexec_fn=_file_limit(24_000))
    out, err = p.communicate(timeout=300)
    assert p.returncode == 2, err
    assert err.startswith(f"error: {root}/") and "cannot write (OSError: File too large)" in err, err
    assert len(err.strip().splitlines()) == 1, err
    left = summaries(root)
    assert len(left) == 8 and {s["status"] for s in left} == {"failed"}
    assert all("File too large" in s["reason"] for s in left)


# ---- float32: lr cells do not depend on the group ------------------------------------------------------


def test_float32_lr_cells_are_the_same_alone_and_grouped(tmp_path):
    raw = {**EXPERIMENT, "seeds": [0], "train": {"epochs": 2, "batch_size": 32, "dtype": "float32"},
           "optimizer": {"name": "adam", "lr": 0.0007},
           "variants": {"a": {}, "b": {"optimizer": {"name": "adam", "lr": 0.003}}}}
    cfgs = expand(raw)
    grouped, _ = execute(cfgs, tmp_path / "grouped")
    alone, _ = execute(cfgs[:1], tmp_path / "alone")
    rows = lambda o: [r.rsplit(",", 1)[0] for r in (o.path / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert rows(grouped[0]) == rows(alone[0])
    assert rows(alone[0])[1].split(",")[2] == repr(float(np.float32(0.0007)))  # epoch 0: the lr epoch 1 trains with


# ---- kill -9 of a Dask sweep client -------------------------------------------------------------------

from test_sweep import cluster  # noqa: E402,F401 - the module's Dask scheduler and two workers

SWEEP = {"name": "dcrash", "seeds": [0, 1], "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "seed": 1},
         "model": {"hidden": [5, 2]}, "train": {"epochs": 200, "batch_size": 16},
         "optimizer": {"name": "adam", "lr": 0.01},
         "sweep": {"method": "grid", "params": {"train.batch_size": [16, 20, 24, 28, 32, 40]}}}


def test_a_dask_client_killed_with_sigkill_leaves_temporary_dirs_that_the_next_pass_removes_but_never_a_live_ones(
        cluster, tmp_path, reaper):
    from conftest import by_key
    from optbench.sweep import run_sweep

    address, _ = cluster
    config = write_config(tmp_path, SWEEP, "sweep.yaml")
    ref = tmp_path / "ref"
    assert run_sweep(config, runs_dir=ref, jobs=1).statuses == {"completed": 12}
    root = tmp_path / "runs"
    p = subprocess.Popen([sys.executable, "-m", "optbench", "sweep", str(config), "--runs-dir", str(root), "-q",
                          "--scheduler", address], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reaper.append(p)
    done = lambda: sum(s.get("status") == "completed" for s in summaries(next(root.iterdir()))) if root.is_dir() and any(root.iterdir()) else 0  # noqa: E731
    wait_for(lambda: done() >= 1, "a completed run", proc=p)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=TIMEOUT)
    sweep_dir = next(root.iterdir())
    assert done() < 12  # killed mid-sweep
    # what the client leaves when the kill lands while it writes a run directory: a .tmp-* one, its summary
    # naming the client; and beside it one of a writer that still lives (this process)
    template = next(d for d in sweep_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    for name, who in (("dead", {**me(), "pid": p.pid, "start": None}), ("live", me())):
        tmp = sweep_dir / f".tmp-{name}"
        tmp.mkdir()
        (tmp / "config.yaml").write_text((template / "config.yaml").read_text())
        (tmp / "summary.json").write_text(json.dumps({"status": "running", "owner": who}))
    code, out, err = run_cli("sweep", config, "--runs-dir", root, "-q", "--scheduler", address, timeout=300)
    assert code == 0, err
    assert sorted(d.name for d in sweep_dir.iterdir() if d.name.startswith(".tmp-")) == [".tmp-live"]
    assert by_key(root) == by_key(ref)  # every planned run once, with the numbers of an uninterrupted sweep
