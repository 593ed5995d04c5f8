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

from optbench import __version__
from optbench.config import dump_yaml, parse_yaml
from optbench.errors import OptbenchError
from optbench.paths import safe_component
from optbench.model import expected_initial_cost

COLUMNS = ("epoch", "step", "lr", "train_cost", "val_cost", "train_acc", "val_acc", "grad_norm", "update_ratio", "seconds")
_COL = {c: i for i, c in enumerate(COLUMNS)}
# epoch and step as integers, the metrics exact (%r reads back to the same float), seconds to the microsecond
_ROW = "%d,%d" + ",%r" * (len(COLUMNS) - 3) + ",%.6f\n"
TRACKED = ("train_cost", "val_cost", "train_acc", "val_acc")
STATUSES = ("running", "completed", "diverged", "stopped_early", "interrupted", "failed")


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


class RunWriter:
    """Writes the run directories of one group: opened at start, a row per epoch, finished at the end."""

    def __init__(self, root: Path, cfgs: list[dict], *, group: str, tags: list[dict] | None = None,
                 flush: bool = True):
        self.root = Path(root)
        self.cfgs = cfgs
        self.group = group
        self.tags = tags or [{} for _ in cfgs]
        self.flush = flush  # every epoch while training; a replay of a finished trace writes once  # more summary.json keys per run, e.g. {"sweep": {id, trial, ...}}
        self.dirs: list[Path] = []
        self._metrics: list[Any] = []
        self._iters: list[Any] = []
        self._rows: list[list[tuple[int, _Track]]] = []  # (column, tracker): constant memory, whatever the epochs
        self._t0 = time.time()
        self.finished = [False] * len(cfgs)

    def start(self) -> list[Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for cfg in self.cfgs:
            base = safe_component(cfg["label"])  # a label is data: one safe directory name, never a path
            while True:
                name = f"{base}-s{cfg['seed']}-{stamp}-{secrets.token_hex(2)}"
                final = self.root / name
                tmp = self.root / f".tmp-{name}"
                if not final.exists() and not tmp.exists():
                    break
            tmp.mkdir()
            (tmp / "config.yaml").write_text(dump_yaml(cfg))
            (tmp / "summary.json").write_text(json.dumps(self._summary(cfg, "running", ""), indent=2))
            with open(tmp / "metrics.csv", "w", newline="") as f:
                f.write(",".join(COLUMNS) + "\n")
            if cfg["train"]["log_iterations"]:
                (tmp / "iterations.csv").write_text("epoch,iteration,step,cost\n")
            os.rename(tmp, final)  # the directory appears complete or not at all
            self.dirs.append(final)
            self._metrics.append(open(final / "metrics.csv", "a", newline=""))
            self._iters.append(open(final / "iterations.csv", "a") if cfg["train"]["log_iterations"] else None)
            self._rows.append([(_COL[c], _Track(c)) for c in TRACKED])
        return self.dirs

    def on_epoch(self, rec) -> None:
        """Append this epoch's row to every run alive at it, and flush. Metrics are (R,) arrays or shared scalars."""
        m = rec.metrics
        R = len(self.cfgs)
        cols = [m[c].tolist() if isinstance(m[c], np.ndarray) else [float(m[c])] * R for c in COLUMNS]
        epoch = int(rec.epoch)
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

    def write_trace(self, metrics: dict[str, np.ndarray], alive: np.ndarray, iter_costs: list) -> None:
        """Write a finished group's every epoch at once (a sweep replays workers' results): the files
        on_epoch writes row by row, from columns (T, R) and alive (T, R), in a fraction of the time."""
        table = np.stack([np.asarray(metrics[c], dtype=float) for c in COLUMNS], axis=-1)  # (T, R, columns)
        for r in range(len(self.cfgs)):
            rows = table[alive[:, r], r]
            if not len(rows):
                continue
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
            _atomic_write(d / "summary.json", json.dumps(self._summary(cfg, res.status, res.reason, r, extra), indent=2))
            self._close(r)

    def fail(self, reason: str, status: str = "failed") -> None:
        """Mark every unfinished run failed (or interrupted): never leave a half-written run looking good."""
        for r, cfg in enumerate(self.cfgs):
            if r < len(self.dirs) and not self.finished[r]:
                _atomic_write(self.dirs[r] / "summary.json",
                              json.dumps(self._summary(cfg, status, reason, r), indent=2))
                self._close(r)

    def _close(self, r: int) -> None:
        self.finished[r] = True
        for f in (self._metrics[r], self._iters[r]):
            if f is not None:
                f.close()

    def _summary(self, cfg: dict, status: str, reason: str, r: int | None = None, extra: dict | None = None) -> dict:
        out: dict[str, Any] = {
            "status": status,
            "reason": reason,
            "name": cfg["name"],
            "label": cfg["label"],
            "seed": cfg["seed"],
            "group": self.group,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self._t0)),
            "versions": versions(),
        }
        out.update(next(t for c, t in zip(self.cfgs, self.tags) if c is cfg))
        if r is not None and self._rows[r][0][1].n:
            rows = {t.name: t for _, t in self._rows[r]}
            out["initial"] = {"train_cost": rows["train_cost"].first,
                              "expected_cost": expected_initial_cost(cfg["loss"], _n_outputs(cfg, rows))}
            out["final"] = {c: t.last for c, t in rows.items()}
            out["best"] = {c: {"value": t.best, "epoch": t.best_epoch} for c, t in rows.items() if t.best_epoch is not None}
        if extra:
            out.update(extra)
        out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None
        return _clean(out)


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
    """Classes for the expected initial cost: read back from the data only when the loss is softmax."""
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
        return self.summary.get("status", "?")


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
