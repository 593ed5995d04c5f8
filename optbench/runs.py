"""Run directories, the contract between `train` and `compare`/`plot`.

    runs/<label>-s<seed>-<YYYYmmdd-HHMMSS>-<4 hex>/
      config.yaml    the resolved config of this run; `optbench train` on it reruns it exactly
      metrics.csv    one row per epoch (epoch 0 = before training), flushed every epoch
      summary.json   status, reason, final and best metrics, fingerprints, versions
      params.npz     final parameters (and batch-norm statistics) by name, no pickle
      activations.npz  hidden activations on up to 256 training examples, at init and at the end
      iterations.csv per-iteration batch costs, when train.log_iterations is set
      trajectory.npz the path `xy` (steps+1, 2) of a run on a 2-D problem

Directories appear atomically (written under a temporary name, then renamed) and are never overwritten.
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
from typing import Any

import numpy as np

from optbench import __version__, owner
from optbench.config import dump_yaml, parse_yaml
from optbench.errors import OptbenchError
from optbench.paths import safe_component
from optbench.model import expected_initial_cost

COLUMNS = ("epoch", "step", "lr", "train_cost", "val_cost", "train_acc", "val_acc", "grad_norm", "update_ratio", "seconds")
_COL = {c: i for i, c in enumerate(COLUMNS)}
# epoch and step as integers, the metrics exact (%r reads back to the same float), seconds to the microsecond
_ROW = "%d,%d" + ",%r" * (len(COLUMNS) - 3) + ",%.6f\n"
TRACKED = ("train_cost", "val_cost", "train_acc", "val_acc")
STATUSES = ("running", "completed", "diverged", "stopped_early", "interrupted", "failed")  # as summary.json says
CRASHED = "crashed"  # not written: a `running` run whose writer is gone (see effective_status)


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


def _rows_text(rows: np.ndarray) -> str:
    """metrics.csv lines for rows (T, columns), the same text as _ROW row by row, a column at a time.

    A float's shortest exact text costs about a microsecond, so each distinct value of a column is
    formatted once: lr, accuracies and empty cells repeat from row to row.
    """
    cols = [list(map(str, rows[:, 0].astype(np.int64).tolist())), list(map(str, rows[:, 1].astype(np.int64).tolist()))]
    for j in range(2, rows.shape[1] - 1):
        # distinct bit patterns, not values: -0.0 and 0.0 are equal but read differently
        uniq, inv = np.unique(np.ascontiguousarray(rows[:, j]).view(np.int64), return_inverse=True)
        text = ["" if v != v else repr(v) for v in uniq.view(np.float64).tolist()]
        cols.append([text[i] for i in inv.tolist()])
    cols.append([("%.6f" % v).replace("nan", "") for v in rows[:, -1].tolist()])
    return "\n".join(map(",".join, zip(*cols))) + "\n"


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


def versions() -> dict[str, str]:
    return {"optbench": __version__, "numpy": np.__version__, "python": platform.python_version()}


CHECKPOINT = "checkpoint.npz"  # the state of an open run at its last checkpointed epoch; removed when it finishes
FINISHED = ("completed", "diverged", "stopped_early")


class RunWriter:
    """Writes the run directories of one group: opened at start, a row per epoch, finished at the end.

    `reopen[r]`, when given, is (an existing run directory, the last epoch whose rows stay): the run goes on
    there (`train --resume`) instead of in a new directory. Every write that fails is a RunWriteError.
    """

    def __init__(self, root: Path, cfgs: list[dict], *, group: str, tags: list[dict] | None = None,
                 flush: bool = True, reopen: list[tuple[Path, int] | None] | None = None):
        self.root = Path(root)
        self.cfgs = cfgs
        self.group = group
        self.tags = tags or [{} for _ in cfgs]  # more summary.json keys per run, e.g. {"sweep": {id, trial, ...}}
        self.flush = flush  # every epoch while training; a replay of a finished trace writes once
        self.reopen = reopen or [None] * len(cfgs)
        self.dirs: list[Path] = []
        self._metrics: list[Any] = []
        self._iters: list[Any] = []
        self._rows: list[list[tuple[int, _Track]]] = []  # (column, tracker): constant memory, whatever the epochs
        self._t0 = time.time()
        self._created = [time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self._t0))] * len(cfgs)
        self._frozen = [False] * len(cfgs)  # its checkpoint holds its end: nothing changes any more
        self.finished = [False] * len(cfgs)

    def start(self) -> list[Path]:
        with _Writing(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for r, cfg in enumerate(self.cfgs):
            if self.reopen[r] is not None:
                self._reopen(r, *self.reopen[r])
                continue
            base = safe_component(cfg["label"])  # a label is data: one safe directory name, never a path
            while True:
                name = f"{base}-s{cfg['seed']}-{stamp}-{secrets.token_hex(2)}"
                final = self.root / name
                tmp = self.root / f".tmp-{name}"
                if not final.exists() and not tmp.exists():
                    break
            with _Writing(tmp):
                tmp.mkdir()
                (tmp / "config.yaml").write_text(dump_yaml(cfg))
                (tmp / "summary.json").write_text(json.dumps(self._summary(cfg, "running", ""), indent=2))
                with open(tmp / "metrics.csv", "w", newline="") as f:
                    f.write(",".join(COLUMNS) + "\n")
                if cfg["train"]["log_iterations"]:
                    (tmp / "iterations.csv").write_text("epoch,iteration,step,cost\n")
                os.rename(tmp, final)  # the directory appears complete or not at all
            self._open(final, cfg)
        return self.dirs

    def _open(self, d: Path, cfg: dict) -> None:
        with _Writing(d):
            self.dirs.append(d)
            self._metrics.append(open(d / "metrics.csv", "a", newline=""))
            self._iters.append(open(d / "iterations.csv", "a") if cfg["train"]["log_iterations"] else None)
            self._rows.append([(_COL[c], _Track(c)) for c in TRACKED])

    def _reopen(self, r: int, d: Path, epoch: int) -> None:
        """Go on in run directory d: rows after `epoch` dropped (they are trained again), summary `running` again."""
        cfg = self.cfgs[r]
        with _Writing(d):
            lines = (d / "metrics.csv").read_text().splitlines(keepends=True)
            keep = [ln for ln in lines[1:] if ln.split(",", 1)[0].isdigit() and int(ln.split(",", 1)[0]) <= epoch]
            _atomic_write(d / "metrics.csv", ",".join(COLUMNS) + "\n" + "".join(keep))
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
            _atomic_write(d / "summary.json", json.dumps(self._summary(cfg, "running", "", created=self._created[r]), indent=2))
        self._open(d, cfg)
        if keep:
            table = _read_metrics(d / "metrics.csv")
            for i, track in self._rows[-1]:
                track.set(table[COLUMNS[i]], table["epoch"])

    def on_epoch(self, rec) -> None:
        """Append this epoch's row to every run alive at it, and flush. Metrics are (R,) arrays or shared scalars."""
        m = rec.metrics
        R = len(self.cfgs)
        cols = [m[c].tolist() if isinstance(m[c], np.ndarray) else [float(m[c])] * R for c in COLUMNS]
        epoch = int(rec.epoch)
        r = 0
        try:
            for r in np.flatnonzero(rec.alive).tolist():
                v = [col[r] for col in cols]
                # %r is the shortest text that reads back to the same float; NaN (not measured) is empty
                f = self._metrics[r]
                f.write((_ROW % tuple(v)).replace("nan", ""))
                if self.flush:
                    f.flush()
                for i, track in self._rows[r]:
                    track.add(v[i], epoch)
                it = self._iters[r]
                if it is not None and rec.iter_costs is not None:
                    step0 = int(v[1]) - rec.iter_costs.shape[1]
                    it.write("".join(
                        f"{rec.epoch},{i + 1},{step0 + i + 1},{_fmt(c)}\n" for i, c in enumerate(rec.iter_costs[r])
                    ))
                    if self.flush:
                        it.flush()
        except OSError as err:
            raise RunWriteError(self.dirs[r], err) from None

    def checkpoint(self, states: list[dict]) -> None:
        """Save each open run's training state (Trainer EpochRecord.state()) beside its flushed rows, atomically;
        a run that ended keeps the checkpoint of its end."""
        from optbench import checkpoint

        for r, st in enumerate(states):
            if self.finished[r] or self._frozen[r]:
                continue
            with _Writing(self.dirs[r] / CHECKPOINT):
                checkpoint.save(self.dirs[r] / CHECKPOINT, {"config": config_hash(self.cfgs[r]), "state": st})
            self._frozen[r] = not st["active"]

    def write_trace(self, metrics: dict[str, np.ndarray], alive: np.ndarray, iter_costs: list) -> None:
        """Write a finished group's every epoch at once (a sweep replays workers' results): the files
        on_epoch writes row by row, from columns (T, R) and alive (T, R), in a fraction of the time."""
        table = np.stack([np.asarray(metrics[c], dtype=float) for c in COLUMNS], axis=-1)  # (T, R, columns)
        for r in range(len(self.cfgs)):
            rows = table[alive[:, r], r]
            if not len(rows):
                continue
            with _Writing(self.dirs[r]):
                self._metrics[r].write(_rows_text(rows))
                for i, track in self._rows[r]:
                    track.set(rows[:, i], rows[:, 0])
                it = self._iters[r]
                if it is not None:
                    for t in np.flatnonzero(alive[:, r]).tolist():
                        if iter_costs[t] is not None:
                            step0 = int(table[t, r, 1]) - iter_costs[t].shape[1]
                            epoch = int(table[t, r, 0])
                            it.write("".join(f"{epoch},{i + 1},{step0 + i + 1},{_fmt(c)}\n" for i, c in enumerate(iter_costs[t][r])))

    def finish(self, results, *, seconds: float) -> None:
        for r, (cfg, res) in enumerate(zip(self.cfgs, results)):
            d = self.dirs[r]
            with _Writing(d):
                for f in (self._metrics[r], self._iters[r]):
                    if f is not None:
                        f.flush()  # a full disk shows here, before the summary says the rows are all there
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
                _atomic_write(d / "summary.json", json.dumps(self._summary(cfg, res.status, res.reason, r, extra, n_out=n_out),
                                                             indent=2))
                if res.status in FINISHED:  # nothing left to resume (an interrupted run keeps its checkpoint)
                    (d / CHECKPOINT).unlink(missing_ok=True)
            self._close(r)

    def fail(self, reason: str, status: str = "failed") -> None:
        """Mark every unfinished run failed (or interrupted): never leave a half-written run looking good.

        Best effort: when even this write fails (a full disk), the summary still says `running` with this
        process as its owner, and once this process is gone effective_status says `crashed`."""
        for r, cfg in enumerate(self.cfgs):
            if r < len(self.dirs) and not self.finished[r]:
                try:
                    _atomic_write(self.dirs[r] / "summary.json",
                                  json.dumps(self._summary(cfg, status, reason, r), indent=2))
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

    def _summary(self, cfg: dict, status: str, reason: str, r: int | None = None, extra: dict | None = None,
                 created: str | None = None, n_out: int | None = None) -> dict:
        out: dict[str, Any] = {
            "status": status,
            "reason": reason,
            "name": cfg["name"],
            "label": cfg["label"],
            "seed": cfg["seed"],
            "group": self.group,
            "created": created or (self._created[r] if r is not None else self._created[0]),
            "versions": versions(),
        }
        if status == "running":  # who trains it: a dead owner makes it `crashed` (effective_status)
            out["owner"] = owner.me()
        out.update(next(t for c, t in zip(self.cfgs, self.tags) if c is cfg))
        if r is not None and self._rows[r][0][1].n:
            rows = {t.name: t for _, t in self._rows[r]}
            out["initial"] = {"train_cost": rows["train_cost"].first,
                              "expected_cost": expected_initial_cost(cfg["loss"], n_out or _n_outputs(cfg, rows))}
            out["final"] = {c: t.last for c, t in rows.items()}
            out["best"] = {c: {"value": t.best, "epoch": t.best_epoch} for c, t in rows.items() if t.best_epoch is not None}
        if extra:
            out.update(extra)
        out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None
        return _clean(out)


def config_hash(cfg: dict) -> str:
    """The hash of a resolved config's text (its config.yaml): a checkpoint belongs to exactly this config."""
    import hashlib

    return hashlib.sha256(dump_yaml(cfg).encode()).hexdigest()


class _Track:
    """First, last and best value of one metric column, and the epoch of the best (the first one on ties)."""

    def __init__(self, name: str):
        self.name = name
        self.higher = name.endswith("acc")
        self.n = 0
        self.first = self.last = self.best = math.nan
        self.best_epoch: int | None = None

    def add(self, x: float, epoch: int) -> None:
        if self.n == 0:
            self.first = x
        self.n += 1
        self.last = x
        if x == x and (self.best_epoch is None or (x > self.best if self.higher else x < self.best)):
            self.best, self.best_epoch = x, epoch

    def set(self, values: np.ndarray, epochs: np.ndarray) -> None:
        """The same state as add() over every value, in one pass."""
        self.n, self.first, self.last = len(values), float(values[0]), float(values[-1])
        finite = ~np.isnan(values)
        if finite.any():
            i = int(np.nanargmax(values) if self.higher else np.nanargmin(values))  # the first best, as add()
            self.best, self.best_epoch = float(values[i]), int(epochs[i])


def _n_outputs(cfg: dict, rows) -> int:
    """Classes for the expected initial cost: read back from the data only when the loss is softmax (and the
    writer has no final parameters whose output layer says it)."""
    if cfg["loss"] != "softmax_ce":
        return 1
    from optbench.config import load_data

    return max(load_data(cfg["data"]).train.n_classes, 2)


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
    if not rows or tuple(rows[0]) != COLUMNS:
        raise CorruptRun(f"{path}: missing or unexpected header")
    body = rows[1:]
    if not body:
        raise CorruptRun(f"{path}: no rows")
    cols: dict[str, list[float]] = {c: [] for c in COLUMNS}
    for i, row in enumerate(body, start=2):
        if len(row) != len(COLUMNS):
            raise CorruptRun(f"{path} line {i}: truncated row")
        for c, cell in zip(COLUMNS, row):
            try:
                cols[c].append(float(cell) if cell else math.nan)
            except ValueError:
                raise CorruptRun(f"{path} line {i}: {cell!r} is not a number") from None
    return {c: np.array(v) for c, v in cols.items()}


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
