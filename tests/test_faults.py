"""Sweeps under kills and races, with real processes and signals: a client killed with kill -9, a worker
killed, two clients on one sweep directory, the leftovers of dead clients. Every planned run exactly once,
with the metrics of an uninterrupted sweep."""

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, by_key, run_cli, run_dirs
from optbench.errors import OptbenchError
from optbench.sweep import run_sweep
from optbench.workers.driving import MAX_LOSSES, drive
from optbench.workers.jobs import Job, Lost, Written

# six groups of two runs, a fraction of a second each on an idle machine: a sweep long enough to kill in the middle
SWEEP = {
    "name": "faults",
    "seeds": [0, 1],
    "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "seed": 1},
    "model": {"hidden": [5, 2]},
    "train": {"epochs": 500, "batch_size": 16},
    "optimizer": {"name": "adam", "lr": 0.01},
    "sweep": {"method": "grid", "params": {"train.batch_size": [16, 20, 24, 28, 32, 40]}},
}
RUNS = 12
TIMEOUT = 60  # seconds any one step may take before the test fails (never reached when all is well)


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "faults.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(SWEEP), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def reference(sweep_file, tmp_path_factory) -> dict:
    """The runs of an uninterrupted sweep, in this process (--jobs 1)."""
    root = tmp_path_factory.mktemp("reference")
    out = run_sweep(sweep_file, runs_dir=root, jobs=1)
    assert out.statuses == {"completed": RUNS}
    return by_key(root)


def completed(root: Path) -> int:
    n = 0
    for d in run_dirs(root):
        try:
            n += json.loads((d / "summary.json").read_text())["status"] == "completed"
        except (OSError, ValueError, KeyError):
            pass  # being written
    return n


# ---- processes, from /proc (Linux) -------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return int(fields[1]), fields[0]


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`."""
    parents = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and (st := _stat(int(p.name))) is not None:
            parents[int(p.name)] = st[0]
    out, frontier = [], [pid]
    while frontier:
        kids = [c for c, pp in parents.items() if pp in frontier]
        out += kids
        frontier = kids
    return [c for c in out if alive(c)]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_for(condition, what: str, timeout: float = TIMEOUT, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.02)


def start_sweep(sweep_file: Path, root: Path, *args) -> subprocess.Popen:
    """`optbench sweep` as a subprocess, its stdout a pipe (as in `optbench sweep ... | cat`)."""
    return subprocess.Popen([sys.executable, "-m", "optbench", "sweep", str(sweep_file), "--runs-dir", str(root), "-q", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def reaper():
    """Processes a test started (and their descendants): killed at the end whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def workers(pid: int) -> list[int]:
    return [c for c in descendants(pid) if "--multiprocessing-fork" in cmdline(c)]


# ---- kill -9 of the client ------------------------------------------------------------------------


def test_a_client_killed_with_sigkill_leaves_no_worker_and_its_resume_trains_each_run_once(
        sweep_file, reference, tmp_path, reaper):
    root = tmp_path / "runs"
    p = start_sweep(sweep_file, root, "--jobs", "2")
    reaper.append(p.pid)
    wait_for(lambda: completed(root) >= 1 and workers(p.pid), "completed run and worker process", proc=p)
    tree = descendants(p.pid)
    reaper.extend(tree)
    assert workers(p.pid) and completed(root) < RUNS  # killed mid-sweep, a worker training
    p.send_signal(signal.SIGKILL)
    try:
        p.communicate(timeout=TIMEOUT)  # returns when no process holds the client's stdout any more
    except subprocess.TimeoutExpired:
        pytest.fail(f"the client's stdout is still held after it was killed: {[cmdline(c) for c in tree if alive(c)]}")
    wait_for(lambda: not any(alive(c) for c in tree), "exit of the killed client's processes", timeout=10)

    code, _, err = run_cli("sweep", sweep_file, "--runs-dir", root, "--jobs", "2", "-q", timeout=TIMEOUT)
    assert code == 0, err
    assert by_key(root) == reference  # every planned run once, with the metrics of an uninterrupted sweep
    sweep_dir = next(root.iterdir())
    assert not [d for d in sweep_dir.iterdir() if d.name.startswith(".tmp-")]


# ---- a worker killed ------------------------------------------------------------------------------


def test_a_worker_killed_with_sigkill_loses_and_duplicates_no_run(sweep_file, reference, tmp_path, reaper):
    root = tmp_path / "runs"
    p = start_sweep(sweep_file, root, "--jobs", "3")
    reaper.append(p.pid)
    wait_for(lambda: completed(root) >= 1 and len(workers(p.pid)) == 2, "completed run and two worker processes", proc=p)
    victim = workers(p.pid)[0]
    reaper.extend(descendants(p.pid))
    assert completed(root) < RUNS
    os.kill(victim, signal.SIGKILL)
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("the sweep did not end after one of its workers was killed")
    reaper.extend(descendants(p.pid))
    assert p.returncode == 0, err
    assert by_key(root) == reference


# ---- two clients ----------------------------------------------------------------------------------


def test_a_second_client_on_a_locked_sweep_refuses_naming_the_first(sweep_file, reference, tmp_path, reaper):
    root = tmp_path / "runs"
    a = start_sweep(sweep_file, root, "--jobs", "1")
    reaper.append(a.pid)
    locks = lambda: [f for f in root.glob("*/.lock") if f.read_text().strip() == str(a.pid)]  # noqa: E731
    wait_for(lambda: locks(), "lock written by the first client", proc=a)
    a.send_signal(signal.SIGSTOP)  # the first client holds the sweep while the second one tries
    try:
        code, out, err = run_cli("sweep", sweep_file, "--runs-dir", root, "--jobs", "1", "-q", timeout=TIMEOUT)
    finally:
        a.send_signal(signal.SIGCONT)
    assert code == 2 and f"(pid {a.pid})" in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {locks()[0].parent}: in use by another optbench sweep")
    a_out, a_err = a.communicate(timeout=TIMEOUT)
    assert a.returncode == 0, a_err
    assert by_key(root) == reference  # the first client trained everything, once; the second nothing


def test_a_lock_left_by_a_dead_client_does_not_block(sweep_file, reference, tmp_path):
    root = tmp_path / "runs"
    first = run_sweep(sweep_file, sets=["train.epochs=3"], runs_dir=root, jobs=1)
    sweep_dir = root / first.plan.dirname
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (sweep_dir / ".lock").write_text(dead.stdout)  # the pid of an exited process, no flock held
    again = run_sweep(sweep_file, sets=["train.epochs=3"], runs_dir=root, jobs=1)
    assert again.resumed == RUNS and not again.statuses
    assert (sweep_dir / ".lock").read_text().strip() == str(os.getpid())


# ---- what dead clients leave ----------------------------------------------------------------------


def test_a_resume_removes_hidden_leftovers_and_sets_aside_runs_left_running(sweep_file, tmp_path):
    root = tmp_path / "runs"
    sets = ["train.epochs=3"]
    first = run_sweep(sweep_file, sets=sets, runs_dir=root, jobs=1)
    sweep_dir = root / first.plan.dirname
    runs = run_dirs(root)
    # as a client killed while writing leaves them: a directory never renamed, a run still `running`
    tmp = sweep_dir / f".tmp-{runs[0].name}"
    tmp.mkdir()
    (tmp / "config.yaml").write_text((runs[0] / "config.yaml").read_text())
    summary = json.loads((runs[1] / "summary.json").read_text())
    (runs[1] / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    (sweep_dir / ".sweep.json.tmp").write_text("{")
    again = run_sweep(sweep_file, sets=sets, runs_dir=root, jobs=1)
    assert again.resumed == RUNS - 1 and again.statuses == {"completed": 1}
    assert sorted(p.name for p in sweep_dir.iterdir() if p.name.startswith(".")) == [".lock", ".superseded"]
    assert [p.name for p in (sweep_dir / ".superseded").iterdir()] == [runs[1].name]
    assert len(by_key(root)) == RUNS


# ---- drive retries lost jobs (no processes) ---------------------------------------------------------


class _Flaky:
    """A backend whose trainer dies the first `losses` times it trains each job."""

    name = "flaky"
    late = 0.0

    def __init__(self, losses: int):
        self.losses = losses
        self.tries: dict[str, int] = {}
        self.jobs: dict[int, Job] = {}

    def slots(self):
        return 2

    def submit(self, job):
        self.jobs[len(self.jobs)] = job
        return len(self.jobs) - 1

    def wait(self, handles, timeout):
        return handles

    def result(self, handle):
        job = self.jobs[handle]
        self.tries[job.group] = self.tries.get(job.group, 0) + 1
        if self.tries[job.group] <= self.losses:
            raise Lost
        return Written([], ["completed"] * len(job.cfgs), False)

    def request_stop(self):
        pass

    def close(self):
        pass


def test_drive_gives_a_lost_job_to_the_remaining_trainers_and_gives_up_on_one_that_always_dies(tmp_path):
    jobs = [Job([{}] * 2, tmp_path, g, [{}] * 2) for g in ("a", "b", "c")]
    done, lost = [], []

    def on_lost(job):
        lost.append(job.group)
        return job

    backend = _Flaky(losses=1)
    assert not drive(jobs, backend, lambda job: None, lambda job, w: done.append(job.group), on_lost=on_lost)
    assert sorted(done) == ["a", "b", "c"] and sorted(lost) == ["a", "b", "c"]
    assert backend.tries == {"a": 2, "b": 2, "c": 2}
    with pytest.raises(OptbenchError, match=f"died {MAX_LOSSES} times"):
        drive(jobs[:1], _Flaky(losses=MAX_LOSSES), lambda job: None, lambda job, w: None, on_lost=on_lost)


def test_a_sweep_directory_that_cannot_be_made_is_one_error_line(sweep_file, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, out, err = run_cli("sweep", sweep_file, "--runs-dir", blocker / "runs", "--jobs", "1", "-q", timeout=TIMEOUT)
    assert code == 2 and err.startswith(f"error: {blocker / 'runs'}") and "cannot create the sweep's lock" in err, err
    assert len(err.strip().splitlines()) == 1 and blocker.read_text() == "not a directory"
