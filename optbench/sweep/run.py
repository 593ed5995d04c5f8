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


def _locked_pass(plan: Plan, root: Path, hold: int, *, jobs: int | None, scheduler: str | None,
                 progress: SweepProgress | None, cache: DataCache | None = None, stop=None) -> Outcome:
    """One pass, with the sweep directory locked (`hold`: the lock's file descriptor)."""
    from optbench.workers.driving import drive
    from optbench.workers.jobs import Job

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
        earlier = Counter(done.values())
        running = [0]
        planned = lambda cfgs: sum(c["train"]["epochs"] for c in cfgs)  # noqa: E731
        epochs = {"resumed": planned([r.cfg for r in plan.runs if r.key in done])}  # job group -> run-epochs done
        started: set[str] = set()

        def tally() -> Tally:
            st = earlier + out.statuses
            return Tally(len(plan.runs), sum(st[s] for s in FINAL), running[0], st["diverged"], st["interrupted"], len(done),
                         sum(epochs.values()), planned([r.cfg for r in plan.runs]))

        def on_start(job):
            running[0] += len(job.cfgs)
            started.add(job.group)
            if progress is not None:
                progress.update(tally())

        def on_progress(group, n):
            epochs[group] = n
            if progress is not None:
                progress.update(tally())

        def on_done(job, written):
            running[0] -= len(job.cfgs)
            out.statuses.update(written.statuses)
            out.stopped += [(c, d) for c, d, s in zip(job.cfgs, written.dirs, written.statuses) if s == "interrupted"]
            if not written.interrupted:
                epochs[job.group] = planned(job.cfgs)
            if progress is not None:
                progress.update(tally())

        def on_lost(job):
            """A job lost with its worker: keep the runs it finished, set aside its partial ones, retry the rest."""
            running[0] -= len(job.cfgs)
            keys = [t["sweep"]["key"] for t in job.tags]
            finished, partial = scan(root, plan, only=set(keys))
            set_aside(root, partial)
            out.statuses.update(finished.values())
            if progress is not None:
                progress.update(tally())
            left = [i for i, k in enumerate(keys) if k not in finished]
            if not left:
                return None
            return Job([job.cfgs[i] for i in left], root, job.group, [job.tags[i] for i in left])

        if progress is not None:
            progress.started(Start(plan, root, len(plan.runs), len(done), len(todo), len(units),
                                   backend.name if backend else "nothing to train"))
            progress.update(tally())
        if backend is not None:
            work = [Job([r.cfg for r in u], root, f"{plan.id}-{unit_id(u)}", [plan.tag(r) for r in u]) for u in units]
            out.interrupted = drive(work, backend, on_start, on_done, on_progress=on_progress, on_lost=on_lost,
                                    should_stop=(lambda: False) if stop is None else stop.is_set)
            out.not_started = [c for job in work if job.group not in started for c in job.cfgs]
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
