"""Train runs group by group: streamed into run directories (`execute`), or as data (`train_group`) written after (`write_group`)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from optbench import finetune
from optbench.groups import make_groups
from optbench.records import EpochRecord, Never, RunResult
from optbench.runs.writer import FLUSH_EVERY, RunWriter
from optbench.runs.writing import RunWriteError
from optbench.train import Trainer
from optbench.trainers import make_trainer


class Progress(Protocol):
    """What the CLI shows: a group starts, an epoch ends, a group ends."""

    def group_started(self, index: int, n_groups: int, cfgs: list[dict]) -> None: ...
    def epoch(self, rec: EpochRecord) -> None: ...
    def group_done(self, cfgs: list[dict], results: list[RunResult], seconds: float) -> None: ...


@dataclass
class Outcome:
    """One finished run: its config, result and directory."""

    cfg: dict
    result: RunResult
    path: Path
    seconds: float


CHECKPOINT_EVERY = 5.0  # seconds between checkpoints of a training group (about 3 ms per moons run each)


@dataclass(frozen=True)
class Resume:
    """A run to go on with in its own directory: from `state` (a checkpoint's, at `epoch`), or from the start."""

    path: Path
    epoch: int  # the last epoch whose rows stay in metrics.csv (-1: none, the run starts again)
    state: dict | None


def _subgroups(group: list[dict], resume: dict[int, Resume]) -> list[list[dict]]:
    """A group split by where its runs start: new and restarted runs together, resumed ones by their epoch."""
    out: dict = {}
    for c in group:
        r = resume.get(id(c))
        out.setdefault(None if r is None or r.state is None else r.epoch, []).append(c)
    return list(out.values())


def execute(cfgs: list[dict], runs_dir: Path, progress: Progress | None = None,
            *, trainer: Callable[..., Trainer] = make_trainer, resume: list[Resume | None] | None = None,
            checkpoint_every: float = CHECKPOINT_EVERY, flush_every: float = FLUSH_EVERY,
            clock: Callable[[], float] = time.monotonic, stop=None) -> tuple[list[Outcome], bool]:
    """Train every run; returns the outcomes and whether training was interrupted: `stop` (a threading.Event,
    which cli.py's Ctrl-C / SIGTERM handler sets) ends it at the next step, the open runs marked interrupted.

    Rows reach metrics.csv at most every `flush_every` seconds of `clock` (RunWriter), and always before a
    checkpoint and at the end. Every `checkpoint_every` seconds (and when a stop is requested) each group's
    open runs save their training state beside their rows; `resume[i]` continues cfgs[i] in its old directory.
    """
    stopping = (stop or Never).is_set
    outcomes: list[Outcome] = []
    by_id = {id(c): r for c, r in zip(cfgs, resume or []) if r is not None}
    groups = [sub for g in make_groups(cfgs) for sub in _subgroups(g, by_id)]
    trained: dict[tuple[str, int], Path] = {}  # what fine-tuning runs of the same config may start from
    for gi, group in enumerate(groups):
        finetune.resolve_refs(group, trained)
        gid = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        again = [by_id.get(id(c)) for c in group]
        writer = RunWriter(runs_dir, group, group=gid, reopen=[None if r is None else (r.path, r.epoch) for r in again],
                           flush_every=flush_every, clock=clock)
        states = [r.state for r in again] if again[0] is not None and again[0].state is not None else None
        t0 = time.perf_counter()
        try:
            tr = trainer(group, record_activations=True)
            writer.start()
            if progress is not None:
                progress.group_started(gi, len(groups), group)
            last = [time.perf_counter()]

            def on_epoch(rec, writer=writer, last=last):
                writer.on_epoch(rec)
                if rec.state is not None and rec.epoch > 0:
                    now = time.perf_counter()
                    if now - last[0] >= checkpoint_every or stopping():
                        writer.checkpoint(rec.state())
                        last[0] = time.perf_counter()
                if progress is not None:
                    progress.epoch(rec)

            results = (tr.run(on_epoch=on_epoch, stop=stop) if states is None
                       else tr.run(on_epoch=on_epoch, resume=states, stop=stop))
            seconds = time.perf_counter() - t0
            writer.finish(results, seconds=seconds)
        except KeyboardInterrupt:
            # interrupted outside the loop (set-up or writing): no result to save, say so in the summaries
            writer.fail("interrupted outside the training loop", status="interrupted")
            return outcomes, True
        except BaseException as err:
            writer.fail(str(err) if isinstance(err, RunWriteError) else f"{err.__class__.__name__}: {err}")
            raise
        if progress is not None:
            progress.group_done(group, results, seconds)
        outcomes.extend(Outcome(c, r, d, seconds) for c, r, d in zip(group, results, writer.dirs))
        trained.update(((c["label"], c["seed"]), d) for c, d in zip(group, writer.dirs))
        if tr.interrupted:
            return outcomes, True
    return outcomes, False


# ---- groups as data: trained in one place (a worker), written in another (maybe the client) ----------


@dataclass
class GroupTrace:
    """A trained group as plain data: every epoch's record, packed, and the results; picklable for workers."""

    epochs: np.ndarray  # (T,) the epoch of each record
    metrics: dict[str, np.ndarray]  # column -> (T, R)
    alive: np.ndarray  # (T, R) bool
    ended: list[dict[int, tuple[str, str]]]  # per record
    iter_costs: list[np.ndarray | None]  # per record
    results: list[RunResult]
    seconds: float
    interrupted: bool

    def records(self) -> Iterator[EpochRecord]:
        """The EpochRecords the trainer emitted, in order (replayed into a RunWriter)."""
        for t, e in enumerate(self.epochs.tolist()):
            yield EpochRecord(int(e), {c: v[t] for c, v in self.metrics.items()}, self.alive[t], self.ended[t],
                              self.iter_costs[t])


class _Recorder:
    """on_epoch callback that keeps every record in growing (T, R) columns; it is also the trainer's stop event
    (is_set): set by the caller's `stop`, or at the end of an epoch where `should_stop()` says so."""

    def __init__(self, R: int, should_stop: Callable[[], bool] | None, epochs: int = 0,
                 on_progress: Callable[[int], None] | None = None, stop=None):
        self.R = R
        self.should_stop = should_stop
        self.stop = stop or Never
        self.halt = False  # should_stop() said so at an epoch's end
        self.progress = None if on_progress is None else _RunEpochs(R, epochs, on_progress)
        self.cols: dict[str, np.ndarray] = {}
        self.alive = np.zeros((0, R), dtype=bool)
        self.epochs: list[int] = []
        self.ended: list[dict[int, tuple[str, str]]] = []
        self.iter_costs: list[np.ndarray | None] = []

    def __call__(self, rec: EpochRecord) -> None:
        t = len(self.epochs)  # rows recorded so far
        if t == len(self.alive):  # grow by doubling: appending a row costs a copy per column, not a stack at the end
            cap = max(64, 2 * t)
            self.cols = {c: np.resize(self.cols.get(c, np.empty((0, self.R))), (cap, self.R)) for c in rec.metrics}
            self.alive = np.resize(self.alive, (cap, self.R))
        for c, v in rec.metrics.items():
            self.cols[c][t] = v  # a per-replica array or a shared scalar, broadcast
        self.alive[t] = rec.alive
        self.epochs.append(int(rec.epoch))
        self.ended.append(dict(rec.ended))
        self.iter_costs.append(None if rec.iter_costs is None else np.array(rec.iter_costs))
        if self.progress is not None:
            self.progress(rec)
        # after recording: the rows of this epoch are kept, and the trainer stops before the next step
        if rec.epoch > 0 and self.should_stop is not None and self.should_stop():
            self.halt = True

    def is_set(self) -> bool:
        return self.halt or self.stop.is_set()

    def pack(self, results: list[RunResult], seconds: float, interrupted: bool) -> GroupTrace:
        T = len(self.epochs)
        return GroupTrace(
            epochs=np.array(self.epochs, dtype=np.int64),
            metrics={c: v[:T].copy() for c, v in self.cols.items()},
            alive=self.alive[:T].copy(),
            ended=self.ended, iter_costs=self.iter_costs,
            results=results, seconds=seconds, interrupted=interrupted,
        )


class _RunEpochs:
    """Reports a group's run-epochs done (a replica that ended counts all its planned epochs) to `report`,
    at most every `every` seconds and at the end of training: progress that moves by epochs."""

    def __init__(self, R: int, epochs: int, report: Callable[[int], None], every: float = 0.25):
        self.R, self.E, self.report, self.every = R, epochs, report, every
        self.ended = 0
        self.last = time.monotonic()

    def __call__(self, rec: EpochRecord) -> None:
        self.ended += len(rec.ended)
        now = time.monotonic()
        if now - self.last >= self.every or rec.epoch >= self.E or self.ended == self.R:
            self.last = now
            self.report(self.ended * self.E + (self.R - self.ended) * int(rec.epoch))


def train_group(cfgs: list[dict], *, should_stop: Callable[[], bool] | None = None,
                trainer: Callable[..., Trainer] = make_trainer,
                on_progress: Callable[[int], None] | None = None, stop=None) -> GroupTrace:
    """Train one group (no I/O) and return it as data; `should_stop` polled each epoch, or `stop` (an event
    checked each step), ends it as interrupted; `on_progress(run_epochs)` hears how far it is (see _RunEpochs)."""
    t0 = time.perf_counter()
    tr = trainer(cfgs, record_activations=True)
    rec = _Recorder(len(cfgs), should_stop, cfgs[0]["train"]["epochs"], on_progress, stop)
    results = tr.run(on_epoch=rec, stop=rec)
    return rec.pack(results, time.perf_counter() - t0, bool(tr.interrupted))


def write_group(runs_dir: Path, cfgs: list[dict], trace: GroupTrace, *, group: str,
                tags: list[dict] | None = None) -> list[Path]:
    """Replay a trained group into its run directories, exactly as `execute` writes them while training."""
    writer = RunWriter(runs_dir, cfgs, group=group, tags=tags)
    try:
        writer.start()
        writer.write_trace(trace.metrics, trace.alive, trace.iter_costs)
        writer.finish(trace.results, seconds=trace.seconds)
    except KeyboardInterrupt:
        writer.fail("interrupted while its run directory was written", status="interrupted")
        raise
    except BaseException as err:
        writer.fail(f"{err.__class__.__name__}: {err}")
        raise
    return writer.dirs
