"""Run directories, the contract between `train` and `compare`/`plot`.

    runs/<label>-s<seed>-<YYYYmmdd-HHMMSS>-<4 hex>/
      config.yaml    the resolved config of this run; `optbench train` on it reruns it exactly
      metrics.csv    one row per epoch (epoch 0 = before training), written at most every FLUSH_EVERY seconds
      summary.json   status, reason, final and best metrics, fingerprints, versions
      params.npz     final parameters (and batch-norm statistics) by name, no pickle
      params_init.npz the parameters training started from, the same keys (train.epochs: 0 evaluates them only)
      activations.npz  hidden activations on up to 256 training examples, at init and at the end
      iterations.csv per-iteration batch costs, when train.log_iterations is set
      trajectory.npz the path `xy` (steps+1, 2) of a run on a 2-D problem
      snapshots.npz  epoch (S,), theta (S, P): the flat parameters every train.snapshots_every epochs (optbench/snapshots.py)

Directories appear atomically (written under a temporary name, then renamed) and are never overwritten.
A group's directories are made in one pass (one listing of the runs directory, the owner and versions
found once, each metrics.csv opened once); its rows are kept in memory and written in blocks: at the first
epoch, then at most every FLUSH_EVERY seconds, before every checkpoint, at the end and when training stops,
so a kill -9 loses at most the rows of the last interval, and a stop (Ctrl-C, SIGTERM) none.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from optbench import __version__, owner
from optbench.errors import OptbenchError
from optbench.losses import expected_initial_cost
from optbench.paths import safe_component
from optbench.yamlio import dump_yaml, parse_yaml

COLUMNS = ("epoch", "step", "lr", "train_cost", "val_cost", "train_acc", "val_acc", "grad_norm", "update_ratio", "seconds")
OPTIONAL = ("sharpness",)  # written only by the runs that measure it (train.sharpness_every > 0), before `seconds`
ALL_COLUMNS = COLUMNS[:-1] + OPTIONAL + COLUMNS[-1:]  # what a run read back has: an optional column it lacks is NaN
_COL = {c: i for i, c in enumerate(COLUMNS)}
# epoch and step as integers, the metrics exact (%r reads back to the same float), seconds to the microsecond
_ROW = "%d,%d" + ",%r" * (len(COLUMNS) - 3) + ",%.6f\n"
TRACKED = ("train_cost", "val_cost", "train_acc", "val_acc")
STATUSES = ("running", "completed", "diverged", "stopped_early", "interrupted", "failed")  # as summary.json says
CRASHED = "crashed"  # not written: a `running` run whose writer is gone (see effective_status)


def columns_of(cfg: dict) -> tuple[str, ...]:
    """metrics.csv's columns for a resolved run config: COLUMNS, with `sharpness` when it is measured; a run
    that does not measure it writes the file it wrote before the option existed."""
    return ALL_COLUMNS if cfg["train"].get("sharpness_every") else COLUMNS


def effective_status(summary: dict) -> str:
    """summary.json's status, except `crashed` for a run left `running` by a process that no longer lives on
    this host (killed with kill -9, out of memory, power lost; a reused PID is told apart by its start time)."""
    status = summary.get("status")
    if status != "running":
        return status if isinstance(status, str) else "?"
    who = summary.get("owner")
    if isinstance(who, dict) and not owner.alive(who):
        return CRASHED
    return status


def writer_gone(tmp: Path) -> bool:
    """Whether the writer of a temporary run directory (`.tmp-*`) is gone: its summary.json names an owner that
    no longer lives (effective_status's rule), or it has none (its writer died before writing it)."""
    try:
        who = json.loads((tmp / "summary.json").read_text()).get("owner")
    except (OSError, ValueError, AttributeError):
        return True
    return not isinstance(who, dict) or not owner.alive(who)


def remove_stale_temps(root: Path) -> None:
    """Delete the `.tmp-*` run directories under root whose writers are gone (never a live writer's)."""
    import shutil

    if not root.is_dir():
        return
    for p in root.iterdir():
        if p.name.startswith(".tmp-") and p.is_dir() and not p.is_symlink() and writer_gone(p):
            shutil.rmtree(p, ignore_errors=True)


class RunWriteError(OptbenchError):
    """A run directory (or a file in it) that cannot be written: one line naming the path and the OS error."""

    def __init__(self, path: Path | str, err: OSError):
        super().__init__(f"{path}: cannot write ({err.__class__.__name__}: {err.strerror or err})")
        self.path = Path(path)


class _Writing:
    """`with _Writing(path):` turns an OSError into a RunWriteError naming the file it names (else `path`)."""

    def __init__(self, path: Path | str):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if isinstance(err, OSError):
            raise RunWriteError(getattr(err, "filename", None) or self.path, err) from None
        return False


def _fmt(x: float) -> str:
    """Shortest round-trip text of a float; NaN (not measured) as an empty cell."""
    x = float(x)
    if math.isnan(x):
        return ""
    if x == int(x) and abs(x) < 1e15:
        return str(int(x)) if x != 0 or math.copysign(1, x) > 0 else "0"
    return repr(x)


def _rows_lines(rows: np.ndarray) -> list[str]:
    """metrics.csv lines (newline included) for rows (T, columns), the same text as _ROW row by row, a column at a time.

    A float's shortest exact text costs about a microsecond, so each distinct value of a column is
    formatted once: lr, accuracies and empty cells repeat from row to row.
    """
    cols = [list(map(str, rows[:, 0].astype(np.int64).tolist())), list(map(str, rows[:, 1].astype(np.int64).tolist()))]
    for j in range(2, rows.shape[1] - 1):
        # distinct bit patterns, not values: -0.0 and 0.0 are equal but read differently
        uniq, inv = np.unique(np.ascontiguousarray(rows[:, j], dtype=np.float64).view(np.int64), return_inverse=True)
        values = uniq.view(np.float64)
        text = list(map(repr, values.tolist()))
        for i in np.flatnonzero(np.isnan(values)).tolist():
            text[i] = ""
        cols.append(list(map(text.__getitem__, inv.tolist())))
    seconds = rows[:, -1]
    cols.append(list(map("%.6f\n".__mod__, seconds.tolist())))
    for i in np.flatnonzero(np.isnan(seconds)).tolist():
        cols[-1][i] = "\n"
    return list(map(",".join, zip(*cols)))


def _rows_text(rows: np.ndarray) -> str:
    """metrics.csv text for rows (T, columns): _rows_lines joined."""
    return "".join(_rows_lines(rows))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN and inf become null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def created_text(t: float) -> str:
    """summary.json's `created`: local time to the microsecond (2026-12-03T12:30:23.123456), so that runs made
    within one second still sort by when they were made, not by their directories' random suffixes."""
    import datetime

    return datetime.datetime.fromtimestamp(t).isoformat(timespec="microseconds")


def versions() -> dict[str, str]:
    return {"optbench": __version__, "numpy": np.__version__, "python": platform.python_version()}


FLUSH_EVERY = 1.0  # seconds between writes of kept rows while training: what a kill -9 may lose
CHECKPOINT = "checkpoint.npz"  # the state of an open run at its last checkpointed epoch; removed when it finishes
CHECKPOINTS = (CHECKPOINT, "checkpoint.1.npz")  # the two slots written in turn (checkpoint.overwrite)
FINISHED = ("completed", "diverged", "stopped_early")


class RunWriter:
    """Writes the run directories of one group: opened at start, rows kept and written in blocks, finished at the end.

    `reopen[r]`, when given, is (an existing run directory, the last epoch whose rows stay): the run goes on
    there (`train --resume`) instead of in a new directory. Rows given to on_epoch reach the files at the
    first epoch, then when `clock()` has moved `flush_every` past the last write, and in flush() (which
    checkpoint, finish and fail call). Every write that fails is a RunWriteError.
    """

    def __init__(self, root: Path, cfgs: list[dict], *, group: str, tags: list[dict] | None = None,
                 reopen: list[tuple[Path, int] | None] | None = None, flush_every: float = FLUSH_EVERY,
                 clock: Callable[[], float] = time.monotonic):
        self.root = Path(root)
        self.cfgs = cfgs
        self.group = group
        self.tags = tags or [{} for _ in cfgs]  # more summary.json keys per run, e.g. {"sweep": {id, trial, ...}}
        self.reopen = reopen or [None] * len(cfgs)
        self.flush_every = flush_every
        self.clock = clock
        self.dirs: list[Path] = []
        self._metrics: list[Any] = []
        self._iters: list[Any] = []
        self._tracks = _Tracks(len(cfgs))  # per run r = its index in cfgs (and in dirs, once started)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []  # per epoch: (R, columns), alive, iter costs
        self._block: tuple | None = None  # rows being written: (lines, per-run line offsets, table, alive, iter costs)
        self._next = 0  # the first run of _block not written yet (a second Ctrl-C may cut a write short)
        self._last = -math.inf  # clock() at the last write of rows
        self._t0 = time.time()
        self._created = [created_text(self._t0)] * len(cfgs)
        self._owner = owner.me()  # found once: every summary of this group names the same writer
        self._versions = versions()
        self._frozen = [False] * len(cfgs)  # its checkpoint holds its end: nothing changes any more
        self._hash: list[str | None] = [None] * len(cfgs)  # config_hash of each run, found once
        self._slot = [0] * len(cfgs)  # the CHECKPOINTS slot each run's next checkpoint overwrites
        self.finished = [False] * len(cfgs)
        self.columns = columns_of(cfgs[0])  # a group shares its train section

    def start(self) -> list[Path]:
        """Make every run directory in one pass: the runs directory listed once, each file opened once."""
        with _Writing(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
            taken = set(os.listdir(self.root))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        header = ",".join(self.columns) + "\n"
        for r, cfg in enumerate(self.cfgs):
            if self.reopen[r] is not None:
                self._reopen(r, *self.reopen[r])
                continue
            base = safe_component(cfg["label"])  # a label is data: one safe directory name, never a path
            while True:
                name = f"{base}-s{cfg['seed']}-{stamp}-{secrets.token_hex(2)}"
                if name not in taken and f".tmp-{name}" not in taken:
                    break
            taken.add(name)
            final, tmp = self.root / name, self.root / f".tmp-{name}"
            with _Writing(tmp):
                os.mkdir(tmp)  # fails if another writer took the name since the listing
                text = dump_yaml(cfg)
                (tmp / "config.yaml").write_text(text)
                self._hash[r] = text_hash(text)  # here, where the text is made: dumping it costs ~2 ms a run
                (tmp / "summary.json").write_text(json.dumps(self._summary(r, "running", ""), indent=2))
                metrics = open(tmp / "metrics.csv", "w", newline="")  # kept open: renaming the directory keeps the file
                metrics.write(header)
                metrics.flush()
                iters = None
                if cfg["train"]["log_iterations"]:
                    iters = open(tmp / "iterations.csv", "w")
                    iters.write("epoch,iteration,step,cost\n")
                    iters.flush()
                os.rename(tmp, final)  # the directory appears complete or not at all
            self._add(final, metrics, iters)
        return self.dirs

    def _add(self, d: Path, metrics, iters) -> None:
        self.dirs.append(d)
        self._metrics.append(metrics)
        self._iters.append(iters)

    def _reopen(self, r: int, d: Path, epoch: int) -> None:
        """Go on in run directory d: rows after `epoch` dropped (they are trained again), summary `running` again."""
        cfg = self.cfgs[r]
        with _Writing(d):
            lines = (d / "metrics.csv").read_text().splitlines(keepends=True)
            keep = [ln for ln in lines[1:] if ln.split(",", 1)[0].isdigit() and int(ln.split(",", 1)[0]) <= epoch]
            _atomic_write(d / "metrics.csv", ",".join(self.columns) + "\n" + "".join(keep))
            if cfg["train"]["log_iterations"]:
                it = d / "iterations.csv"
                old = it.read_text().splitlines(keepends=True)[1:] if it.is_file() else []
                kept = [ln for ln in old if ln.split(",", 1)[0].isdigit() and int(ln.split(",", 1)[0]) <= epoch]
                _atomic_write(it, "epoch,iteration,step,cost\n" + "".join(kept))
            try:
                created = json.loads((d / "summary.json").read_text()).get("created")
            except (OSError, ValueError, AttributeError):
                created = None
            if isinstance(created, str):
                self._created[r] = created
            _atomic_write(d / "summary.json", json.dumps(self._summary(r, "running", ""), indent=2))
            self._add(d, open(d / "metrics.csv", "a", newline=""),
                      open(d / "iterations.csv", "a") if cfg["train"]["log_iterations"] else None)
        if keep:
            table = _read_metrics(d / "metrics.csv")
            rows = np.stack([table[c] for c in self.columns], axis=-1)[:, None]  # (T, 1, columns)
            self._tracks.reset(r)
            self._tracks.extend(rows, np.ones(rows.shape[:2], dtype=bool), runs=np.array([r]))

    def on_epoch(self, rec) -> None:
        """Keep this epoch's row of every run alive at it; write the kept rows when it is time (see the class).
        Metrics are (R,) arrays or shared scalars."""
        row = np.empty((len(self.cfgs), len(self.columns)))
        for j, c in enumerate(self.columns):
            row[:, j] = rec.metrics[c]  # float32 widens exactly: the same text as its Python float
        costs = None if rec.iter_costs is None else np.array(rec.iter_costs)
        self._pending.append((row, np.array(rec.alive, dtype=bool), costs))  # one append: a Ctrl-C keeps it whole or not at all
        now = self.clock()
        if now - self._last >= self.flush_every:
            self._last = now
            self.flush()

    def flush(self) -> None:
        """Write every kept row to its run's files, and flush them (one write per file, whatever the epochs)."""
        while self._block is not None or self._pending:
            if self._block is None:
                pending, self._pending = self._pending, []
                self._block, self._next = self._stack(pending), 0
            self._write_block()

    def _stack(self, pending: list) -> tuple:
        """(lines, offsets, table (T, R, columns), alive (T, R), iter costs per epoch): run r's lines are
        lines[offsets[r]:offsets[r + 1]], every run's formatted in one pass."""
        table = np.stack([p[0] for p in pending])
        alive = np.stack([p[1] for p in pending])
        runs_major = table.transpose(1, 0, 2)[alive.T]  # (rows, columns), run 0's rows first
        offsets = np.concatenate([[0], np.cumsum(alive.sum(axis=0))]).tolist()
        return _rows_lines(runs_major) if len(runs_major) else [], offsets, table, alive, [p[2] for p in pending]

    def _write_block(self) -> None:
        lines, offsets, table, alive, iter_costs = self._block
        for r in range(self._next, len(self.dirs)):
            a, b = offsets[r], offsets[r + 1]
            self._next = r + 1  # before writing: a write cut short by a second Ctrl-C is never made twice
            if b > a:
                try:
                    self._metrics[r].write("".join(lines[a:b]))
                    self._metrics[r].flush()
                    it = self._iters[r]
                    if it is not None:
                        for t in np.flatnonzero(alive[:, r]).tolist():
                            if iter_costs[t] is not None:
                                step0 = int(table[t, r, 1]) - iter_costs[t].shape[1]
                                epoch = int(table[t, r, 0])
                                it.write("".join(f"{epoch},{i + 1},{step0 + i + 1},{_fmt(c)}\n"
                                                 for i, c in enumerate(iter_costs[t][r])))
                        it.flush()
                except OSError as err:  # these rows are lost with the disk; the next runs' still get their chance
                    raise RunWriteError(self.dirs[r], err) from None
        self._tracks.extend(table, alive)  # once every run's rows are written (a failed write raised above)
        self._block = None

    def checkpoint(self, states: list[dict]) -> None:
        """Save each open run's training state (Trainer EpochRecord.state()) beside its rows, once those rows
        are written (a resume keeps the rows up to the checkpoint's epoch); a run that ended keeps the
        checkpoint of its end. Each run has two slots, rewritten in place in turn: a kill while one is
        written leaves the other whole, and resume.py takes the newest that reads back."""
        from optbench import checkpoint

        self.flush()
        for r, st in enumerate(states):
            if self.finished[r] or self._frozen[r]:
                continue
            if self._hash[r] is None:  # a reopened run: once, not at every checkpoint
                self._hash[r] = config_hash(self.cfgs[r])
            path = self.dirs[r] / CHECKPOINTS[self._slot[r]]
            with _Writing(path):
                checkpoint.overwrite(path, checkpoint.dumps({"config": self._hash[r], "state": st}))
            self._slot[r] ^= 1  # the next one goes to the other slot: this one stays whole whatever happens to it
            self._frozen[r] = not st["active"]

    def write_trace(self, metrics: dict[str, np.ndarray], alive: np.ndarray, iter_costs: list) -> None:
        """Write a finished group's every epoch at once (a sweep replays workers' results): the files
        on_epoch writes, from columns (T, R) and alive (T, R), in one block."""
        table = np.stack([np.broadcast_to(np.asarray(metrics[c], dtype=float).reshape(len(alive), -1), alive.shape)
                          for c in self.columns], axis=-1)  # (T, R, columns)
        self.flush()
        self._pending = [(table[t], alive[t], iter_costs[t]) for t in range(len(alive))]
        self.flush()

    def finish(self, results, *, seconds: float) -> None:
        """Write the kept rows, then each run's parameters and final summary."""
        ends = np.array([res.epochs for res in results])
        for row, alive, _ in self._pending:  # a second Ctrl-C inside on_epoch: no row past the epoch the summary names
            alive &= row[:, 0] <= ends
        self.flush()  # a full disk shows here, before the summary says the rows are all there
        for r, (cfg, res) in enumerate(zip(self.cfgs, results)):
            d = self.dirs[r]
            with _Writing(d):
                np.savez(d / "params.npz", **res.params, **res.buffers)
                if res.activations:  # float32, uncompressed: zlib on these costs more than the whole run's CSV
                    np.savez(d / "activations.npz", **{k: v.astype(np.float32) for k, v in res.activations.items()})
                for fname, arrays in res.extra.items():
                    np.savez(d / f"{fname}.npz", **arrays)
                extra = {"epochs": res.epochs, "seconds": seconds,
                         "fingerprints": {"init": res.init_fingerprint, "batches": res.batch_fingerprint}}
                if res.final_eval:  # test mode, final parameters (the rows' train metrics average over batches)
                    extra["final_eval"] = res.final_eval
                extra.update(getattr(res, "timing", None) or {})  # update_seconds, update_us_per_step, ...
                n_out = res.params[f"W{len(cfg['model']['hidden']) + 1}"].shape[0] if cfg["loss"] == "softmax_ce" else None
                _atomic_write(d / "summary.json", json.dumps(self._summary(r, res.status, res.reason, extra, n_out=n_out),
                                                             indent=2))
                if res.status in FINISHED:  # nothing left to resume (an interrupted run keeps its checkpoint)
                    for name in CHECKPOINTS:
                        (d / name).unlink(missing_ok=True)
            self._close(r)

    def fail(self, reason: str, status: str = "failed") -> None:
        """Write the kept rows, then mark every unfinished run failed (or interrupted): never leave a
        half-written run looking good.

        Best effort: when even this write fails (a full disk), the summary still says `running` with this
        process as its owner, and once this process is gone effective_status says `crashed`."""
        while self._block is not None or self._pending:
            try:
                self.flush()
            except RunWriteError:
                continue  # that run's rows are lost; the next runs' are still written
        for r, cfg in enumerate(self.cfgs):
            if r < len(self.dirs) and not self.finished[r]:
                try:
                    _atomic_write(self.dirs[r] / "summary.json", json.dumps(self._summary(r, status, reason), indent=2))
                except OSError:
                    pass
                self._close(r)

    def _close(self, r: int) -> None:
        self.finished[r] = True
        for f in (self._metrics[r], self._iters[r]):
            if f is not None:
                try:
                    f.close()
                except OSError:  # its buffered rows could not be written; finish has said so already
                    pass

    def _summary(self, r: int, status: str, reason: str, extra: dict | None = None, n_out: int | None = None) -> dict:
        cfg = self.cfgs[r]
        out: dict[str, Any] = {
            "status": status,
            "reason": reason,
            "name": cfg["name"],
            "label": cfg["label"],
            "seed": cfg["seed"],
            "group": self.group,
            "created": self._created[r],
            "versions": self._versions,
        }
        if status == "running":  # who trains it: a dead owner makes it `crashed` (effective_status)
            out["owner"] = self._owner
        out.update(self.tags[r])
        if self._tracks.n[r]:
            t = self._tracks.of(r)
            out["initial"] = {"train_cost": t["first"]["train_cost"],
                              "expected_cost": expected_initial_cost(cfg["loss"], n_out or _n_outputs(cfg))}
            out["final"] = t["last"]
            out["best"] = {c: {"value": t["best"][c], "epoch": e} for c, e in t["best_epoch"].items() if e is not None}
        if extra:
            out.update(extra)
        out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None
        return _clean(out)


def config_hash(cfg: dict) -> str:
    """The hash of a resolved config's text (its config.yaml): a checkpoint belongs to exactly this config."""
    return text_hash(dump_yaml(cfg))


def text_hash(text: str) -> str:
    """config_hash of the config whose config.yaml is `text`."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


class _Tracks:
    """First, last and best value of each TRACKED column for every run of a group, and the epoch of the best.

    The best is the lowest cost or the highest accuracy, NaN (not measured) never; on ties the earliest.
    Updated a block of rows at a time (extend), in constant memory whatever the epochs.
    """

    def __init__(self, R: int):
        k = len(TRACKED)
        self.cols = [_COL[c] for c in TRACKED]
        self.sign = np.array([-1.0 if c.endswith("acc") else 1.0 for c in TRACKED])  # lower sign * x is better
        self.n = np.zeros(R, dtype=np.int64)
        self.first, self.last, self.best = (np.full((R, k), np.nan) for _ in range(3))
        self.best_epoch = np.full((R, k), -1, dtype=np.int64)  # -1: no measured value yet

    def extend(self, table: np.ndarray, alive: np.ndarray, runs: np.ndarray | None = None) -> None:
        """Take in rows table (T, R', columns) where alive (T, R'); `runs` (R',) names the runs (default: all)."""
        runs = np.arange(len(self.n)) if runs is None else np.asarray(runs)
        T = len(table)
        has = alive.any(axis=0)
        if not T or not has.any():
            return
        x = table[:, :, self.cols]  # (T, R', k)
        j = np.arange(x.shape[1])
        first, last = alive.argmax(axis=0), T - 1 - alive[::-1].argmax(axis=0)
        new = has & (self.n[runs] == 0)
        self.first[runs[new]] = x[first[new], j[new]]
        self.last[runs[has]] = x[last[has], j[has]]
        self.n[runs] += alive.sum(axis=0)
        valid = alive[:, :, None] & ~np.isnan(x)
        score = np.where(valid, x * self.sign, np.inf)
        i = score.argmin(axis=0)  # (R', k): the first lowest
        low = np.take_along_axis(score, i[None], axis=0)[0]
        i = np.where(low == np.inf, valid.argmax(axis=0), i)  # only infinities (or nothing): the first measured one
        low = np.take_along_axis(score, i[None], axis=0)[0]
        held = self.best_epoch[runs]
        better = valid.any(axis=0) & ((held < 0) | (low < self.best[runs] * self.sign))
        rr, kk = np.nonzero(better)
        self.best[runs[rr], kk] = x[i[rr, kk], rr, kk]
        self.best_epoch[runs[rr], kk] = table[i[rr, kk], rr, 0].astype(np.int64)

    def reset(self, r: int) -> None:
        self.n[r] = 0
        self.first[r] = self.last[r] = self.best[r] = np.nan
        self.best_epoch[r] = -1

    def of(self, r: int) -> dict[str, dict]:
        """Run r's {first, last, best: {column: value}, best_epoch: {column: epoch or None}}."""
        out: dict[str, dict] = {"first": {}, "last": {}, "best": {}, "best_epoch": {}}
        for k, c in enumerate(TRACKED):
            out["first"][c], out["last"][c] = float(self.first[r, k]), float(self.last[r, k])
            out["best"][c] = float(self.best[r, k])
            out["best_epoch"][c] = int(self.best_epoch[r, k]) if self.best_epoch[r, k] >= 0 else None
        return out


def _n_outputs(cfg: dict) -> int:
    """Classes for the expected initial cost: read back from the data only when the loss is softmax (and the
    writer has no final parameters whose output layer says it)."""
    if cfg["loss"] != "softmax_ce":
        return 1
    from optbench.datacache import DataCache  # as config.load_data: the writer's data, not the config models

    return max(DataCache().get(cfg["data"], "float64").train.n_classes, 2)


# ---- reading ----------------------------------------------------------------------------------


@dataclass
class Run:
    """A run directory read back: its resolved config, summary and metrics columns."""

    path: Path
    config: dict
    summary: dict
    metrics: dict[str, np.ndarray]

    @property
    def label(self) -> str:
        return self.summary.get("label") or self.config.get("label", self.path.name)

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def status(self) -> str:
        """The effective status: `crashed` for a run whose writer died while it was `running`."""
        return effective_status(self.summary)


class CorruptRun(Exception):
    """A run directory that cannot be read; the message says why."""


def read_run(path: str | Path, *, allow_running: bool = False) -> Run:
    p = Path(path)
    if not p.is_dir():
        raise CorruptRun(f"{p}: not a directory")
    for f in ("config.yaml", "summary.json", "metrics.csv"):
        if not (p / f).is_file():
            raise CorruptRun(f"{p}: incomplete run directory (no {f})")
    try:
        summary = json.loads((p / "summary.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise CorruptRun(f"{p}: unreadable summary.json ({err.__class__.__name__})") from None
    if not isinstance(summary, dict) or summary.get("status") not in STATUSES:
        raise CorruptRun(f"{p}: summary.json has no valid status")
    if summary["status"] == "running" and not allow_running:
        raise CorruptRun(f"{p}: status running (still training, or killed before it finished)")
    try:
        config = parse_yaml((p / "config.yaml").read_text(), str(p / "config.yaml"))
    except (OptbenchError, OSError, UnicodeDecodeError) as err:
        raise CorruptRun(f"{p}: unreadable config.yaml ({err})") from None
    if not isinstance(config, dict):
        raise CorruptRun(f"{p}: config.yaml is not a mapping")
    metrics = _read_metrics(p / "metrics.csv")
    return Run(p, config, summary, metrics)


def _read_metrics(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise CorruptRun(f"{path}: unreadable ({err.__class__.__name__})") from None
    header = tuple(rows[0]) if rows else ()
    if header not in (COLUMNS, ALL_COLUMNS):
        raise CorruptRun(f"{path}: missing or unexpected header")
    body = rows[1:]
    if not body:
        raise CorruptRun(f"{path}: no rows")
    cols: dict[str, list[float]] = {c: [] for c in header}
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise CorruptRun(f"{path} line {i}: truncated row")
        for c, cell in zip(header, row):
            try:
                cols[c].append(float(cell) if cell else math.nan)
            except ValueError:
                raise CorruptRun(f"{path} line {i}: {cell!r} is not a number") from None
    out = {c: np.array(v) for c, v in cols.items()}
    return {c: out[c] if c in out else np.full(len(body), math.nan) for c in ALL_COLUMNS}


def find_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run directories named directly, or found one level below a directory that holds runs."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if (p / "summary.json").exists() or (p / "config.yaml").exists() or (p / "metrics.csv").exists():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_dir() and not q.name.startswith(".") and q.name != "plots"))
        elif p.exists():
            out.append(p)  # not a directory: read_run says so
        else:
            raise OptbenchError(f"{raw}: no such run directory")
    return out
