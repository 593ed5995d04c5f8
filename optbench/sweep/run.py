"""Running a sweep: skip its complete runs, train the rest on a backend, record each pass in sweep.json."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from optbench.datacache import DataCache
from optbench.sweep.lock import lock_sweep
from optbench.sweep.plan import (FINAL, Plan, SweepRun, _write_json, plan_sweep, read_sweep_json, remove_leftovers, scan,
                                 set_aside, sweep_record)


@dataclass(frozen=True)
class Start:
    """What a sweep pass is about to do (for the progress display)."""

    plan: Plan
    root: Path
    total: int  # runs in the sweep
    resumed: int  # already complete from an earlier pass
    todo: int
    units: int
    backend: str


@dataclass(frozen=True)
class Tally:
    """Counts of runs so far; `done` includes the ones resumed from an earlier pass."""

    total: int
    done: int
    running: int
    diverged: int
    interrupted: int
    resumed: int
    epochs_done: int = 0  # run-epochs: a finished run counts its planned epochs, a training one those it reached
    epochs_total: int = 0


class SweepProgress(Protocol):
    """What the CLI shows while a sweep trains."""

    def started(self, start: Start) -> None: ...
    def update(self, tally: Tally) -> None: ...


@dataclass
class Outcome:
    """A finished (or interrupted) sweep pass."""

    plan: Plan
    root: Path
    resumed: int
    statuses: Counter = field(default_factory=Counter)  # of the runs trained in this pass
    interrupted: bool = False
    seconds: float = 0.0
    stopped: list = field(default_factory=list)  # (config, run directory) of the runs interrupted in this pass
    not_started: list = field(default_factory=list)  # configs of the runs this pass never began

    @property
    def left(self) -> int:
        """Runs still to train (a next pass trains them)."""
        return len(self.plan.runs) - self.resumed - sum(n for s, n in self.statuses.items() if s in FINAL)


def make_units(todo: list[SweepRun], workers: int, late: float = 0.0,
               cache: DataCache | None = None) -> list[list[SweepRun]]:
    """Runs that share structure in one unit (a vectorized group), large groups split so every worker has
    work; workers but the first starting `late` (see workers.units.split_units); data sizes read from `cache`."""
    from optbench.problems import PROBLEMS
    from optbench.groups import make_groups
    from optbench.workers.units import split_units, unit_cost

    by_id = {id(r.cfg): r for r in todo}
    groups = [[by_id[id(c)] for c in g] for g in make_groups([r.cfg for r in todo])]

    def n_train(cfg: dict) -> int:
        return 1 if cfg["data"]["name"] in PROBLEMS else len(cache.get(cfg["data"], cfg["train"]["dtype"]).train.y)

    cache = DataCache() if cache is None else cache

    return split_units(groups, workers, lambda u: unit_cost([r.cfg for r in u], n_train), late)


def _open(jobs: int | None, scheduler: str | None, todo: list[SweepRun], hold: int, cache: DataCache, stop=None):
    """The backend (started first: local workers spawn while the runs are grouped) and the units for its slots;
    its worker processes hold the sweep lock `hold` too; this process reads data through `cache`."""
    from optbench.workers.backend import open_backend

    backend = open_backend(jobs=jobs, scheduler=scheduler, runs=len(todo), hold=hold, cache=cache, stop=stop)
    try:
        return backend, make_units(todo, backend.slots(), backend.late, cache)
    except BaseException:
        backend.close()
        raise


def run_sweep(config: str | Path, *, sets=(), runs_dir: Path = Path("runs"), jobs: int | None = None,
              scheduler: str | None = None, progress: SweepProgress | None = None, stop=None) -> Outcome:
    """Plan the sweep, skip its complete runs, train the rest on the chosen backend, write every run directory;
    once `stop` (a threading.Event: cli.py's Ctrl-C / SIGTERM handler) is set, the running units end interrupted.

    The sweep directory is locked for the whole pass (another client there is an error); what dead
    clients left (runs still `running`, hidden temporary directories) is set aside or removed first.
    """
    from optbench.workers.backend import check_backend

    cache = DataCache()  # planning validates on it, and this process's trainer reads the same arrays
    plan = plan_sweep(config, sets=sets, cache=cache)
    check_backend(jobs=jobs, scheduler=scheduler)
    root = Path(runs_dir) / plan.dirname
    lock = lock_sweep(root)
    try:
        return _locked_pass(plan, root, lock.fd, jobs=jobs, scheduler=scheduler, progress=progress, cache=cache,
                            stop=stop)
    finally:
        lock.release()


class _PassTally:
    """What a pass has done so far, kept up as its jobs start, progress, finish or are lost, shown to `progress`."""

    def __init__(self, plan: Plan, root: Path, done: dict, out: Outcome, progress: SweepProgress | None):
        self.plan, self.root, self.out, self.progress = plan, root, out, progress
        self.earlier = Counter(done.values())  # statuses of the runs complete from an earlier pass
        self.resumed = len(done)
        self.running = 0  # runs of the jobs training now
        # job group -> run-epochs done
        self.epochs = {"resumed": _planned([r.cfg for r in plan.runs if r.key in done])}
        self.epochs_total = _planned([r.cfg for r in plan.runs])
        self.started: set[str] = set()  # groups of the jobs begun

    def tally(self) -> Tally:
        st = self.earlier + self.out.statuses
        return Tally(len(self.plan.runs), sum(st[s] for s in FINAL), self.running, st["diverged"], st["interrupted"],
                     self.resumed, sum(self.epochs.values()), self.epochs_total)

    def _show(self) -> None:
        if self.progress is not None:
            self.progress.update(self.tally())

    def on_start(self, job) -> None:
        self.running += len(job.cfgs)
        self.started.add(job.group)
        self._show()

    def on_progress(self, group: str, n: int) -> None:
        self.epochs[group] = n
        self._show()

    def on_done(self, job, written) -> None:
        self.running -= len(job.cfgs)
        self.out.statuses.update(written.statuses)
        self.out.stopped += [(c, d) for c, d, s in zip(job.cfgs, written.dirs, written.statuses) if s == "interrupted"]
        if not written.interrupted:
            self.epochs[job.group] = _planned(job.cfgs)
        self._show()

    def on_lost(self, job):
        """A job lost with its worker: keep the runs it finished, set aside its partial ones, retry the rest."""
        from optbench.workers.jobs import Job

        self.running -= len(job.cfgs)
        keys = [t["sweep"]["key"] for t in job.tags]
        finished, partial = scan(self.root, self.plan, only=set(keys))
        set_aside(self.root, partial)
        self.out.statuses.update(finished.values())
        self._show()
        left = [i for i, k in enumerate(keys) if k not in finished]
        if not left:
            return None
        return Job([job.cfgs[i] for i in left], self.root, job.group, [job.tags[i] for i in left])


def _planned(cfgs: list[dict]) -> int:
    """The run-epochs these runs train when they finish."""
    return sum(c["train"]["epochs"] for c in cfgs)


def _train_units(units: list[list[SweepRun]], backend, track: _PassTally, stop) -> None:
    """Every unit as a job through `backend`; the outcome says if the pass was interrupted and what never began."""
    from optbench.workers.driving import drive
    from optbench.workers.jobs import Job

    plan, root, out = track.plan, track.root, track.out
    work = [Job([r.cfg for r in u], root, f"{plan.id}-{unit_id(u)}", [plan.tag(r) for r in u]) for u in units]
    out.interrupted = drive(work, backend, track.on_start, track.on_done, on_progress=track.on_progress,
                            on_lost=track.on_lost, should_stop=(lambda: False) if stop is None else stop.is_set)
    out.not_started = [c for job in work if job.group not in track.started for c in job.cfgs]


def _locked_pass(plan: Plan, root: Path, hold: int, *, jobs: int | None, scheduler: str | None,
                 progress: SweepProgress | None, cache: DataCache | None = None, stop=None) -> Outcome:
    """One pass, with the sweep directory locked (`hold`: the lock's file descriptor)."""
    old = read_sweep_json(root, plan)
    remove_leftovers(root)
    done, stale = scan(root, plan)
    todo = [r for r in plan.runs if r.key not in done]
    backend, units = _open(jobs, scheduler, todo, hold, DataCache() if cache is None else cache, stop) if todo else (None, [])
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    out = Outcome(plan, root, resumed=len(done))
    t0 = time.perf_counter()
    try:
        set_aside(root, stale)
        # a pass is known by a token, not its start time: two passes can start within the same second
        info = {"pass": uuid.uuid4().hex[:8], "started": started, "backend": backend.name if backend else None,
                "resumed": len(done), "todo": len(todo)}
        _write_json(root / "sweep.json", sweep_record(plan, old, info))
        track = _PassTally(plan, root, done, out, progress)
        if progress is not None:
            progress.started(Start(plan, root, len(plan.runs), len(done), len(todo), len(units),
                                   backend.name if backend else "nothing to train"))
            progress.update(track.tally())
        if backend is not None:
            _train_units(units, backend, track, stop)
        out.seconds = time.perf_counter() - t0
        info.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S"), seconds=round(out.seconds, 3),
                    trained=dict(out.statuses), interrupted=out.interrupted)
        _write_json(root / "sweep.json", sweep_record(plan, read_sweep_json(root, plan), info))
    finally:
        if backend is not None:
            backend.close()
        remove_leftovers(root)  # of trainers lost in this pass; all have stopped now
    return out


def unit_id(unit: list[SweepRun]) -> str:
    """A short, stable name for a unit's group (its first run's key, hashed)."""
    return hashlib.sha256(unit[0].key.encode()).hexdigest()[:6]
