"""TensorBoard event files: one run directory per run, its metrics as scalars and its settings as HParams.

After the fact (`optbench export --format tensorboard DIR`) from run directories, or live (`train` and
`sweep --tensorboard DIR`) through the CLI's progress callbacks, so the engine stays untouched. tensorboardX
(the `tensorboard` extra, which needs only protobuf) writes the files. The HParams summaries go through each
run's own file writer: tensorboardX's add_hparams() would make one more run directory per call (#519), and
TensorBoard's HParams view would then show every run twice, without its scalars.

Tags: the metrics.csv columns grouped as TensorBoard shows them (`cost/train`, `cost/val`, `accuracy/train`,
...), at step = epoch, and `final/<column>` once at the last epoch: the HParams view's metrics. A run's
hyperparameters are its label, its seed (the view groups seeds by the other columns), its sweep variant and
trial, and the config keys that differ between the runs written together.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from optbench.errors import OptbenchError
from optbench.paths import safe_component

Warn = Callable[[str], None]
TAGS = {"train_cost": "cost/train", "val_cost": "cost/val", "train_acc": "accuracy/train", "val_acc": "accuracy/val",
        "lr": "lr", "grad_norm": "grad_norm", "update_ratio": "update_ratio"}
FINAL = ("train_cost", "val_cost", "train_acc", "val_acc")
STATUS = {"completed": "STATUS_SUCCESS", "stopped_early": "STATUS_SUCCESS", "diverged": "STATUS_FAILURE",
          "failed": "STATUS_FAILURE", "interrupted": "STATUS_RUNNING", "running": "STATUS_RUNNING"}


def tensorboardx():
    """tensorboardX, or one line naming the optional extra that brings it."""
    # tensorboardX imports torch when it can (to accept tensors): seconds spent for nothing, since optbench
    # writes floats. A None in sys.modules makes that optional import fail fast; torch stays importable after.
    masked = "torch" not in sys.modules
    if masked:
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import tensorboardX
        from tensorboardX.summary import hparams  # noqa: F401
    except ImportError:
        raise OptbenchError('--tensorboard needs tensorboardX: pip install "optbench[tensorboard]"') from None
    finally:
        if masked and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return tensorboardX


def _hparam(v: Any) -> bool | str | float | int:
    """What HParams accepts: booleans, numbers and text; anything else as its JSON text."""
    if isinstance(v, (bool, str, int, float)):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def hparams_of(cfg: dict, summary: dict, keys: Sequence[str]) -> dict[str, bool | str | float | int]:
    """A run's HParams: label, seed, its sweep trial (variant, trial, searched keys), then `keys` of its config."""
    from optbench.runset.grouping import flatten
    from optbench.runset.identity import replicate

    flat = flatten(cfg)
    out: dict[str, Any] = {"label": str(summary.get("label") or cfg.get("label")), "seed": int(cfg.get("seed", 0))}
    fold = replicate(cfg)[1]
    if fold >= 0:
        out["fold"] = fold
    tag = summary.get("sweep") if isinstance(summary.get("sweep"), dict) else {}
    for k in ("variant", "trial"):
        if tag.get(k) is not None:
            out[k] = str(tag[k])
    searched = list(tag.get("params") or {}) if isinstance(tag.get("params"), dict) else []
    for k in list(dict.fromkeys([*searched, *keys])):
        if k in flat and flat[k] is not None:
            out[k] = _hparam(flat[k])
    return out


class RunEvents:
    """The event file of one run: scalars epoch by epoch, HParams at the start, the outcome at the end."""

    def __init__(self, logdir: Path, hparams: dict, *, flush_secs: int = 2):
        tbx = tensorboardx()
        from tensorboardX.summary import hparams as hp_summaries

        self.hparams = hparams
        self.writer = tbx.SummaryWriter(logdir=str(logdir), flush_secs=flush_secs)
        exp, ssi, _ = hp_summaries(hparams, {f"final/{c}": 0.0 for c in FINAL})
        fw = self.writer._get_file_writer()  # the run's own writer: no extra run directory (tensorboardX #519)
        fw.add_summary(exp)
        fw.add_summary(ssi)

    def scalars(self, epoch: int, row: dict[str, float], walltime: float | None = None) -> None:
        """One epoch's metrics (NaN: not measured, left out)."""
        for column, tag in TAGS.items():
            v = row.get(column)
            if v is not None and np.isfinite(v):
                self.writer.add_scalar(tag, float(v), global_step=int(epoch), walltime=walltime)

    def close(self, epoch: int, last: dict[str, float], status: str, walltime: float | None = None) -> None:
        """The final metrics (what the HParams view shows) and the session's end: success, failure or still running."""
        from tensorboardX.proto.api_pb2 import Status
        from tensorboardX.summary import hparams as hp_summaries

        for column in FINAL:
            v = last.get(column)
            if v is not None and np.isfinite(v):
                self.writer.add_scalar(f"final/{column}", float(v), global_step=int(epoch), walltime=walltime)
        _, _, sei = hp_summaries(self.hparams, {})
        sei.value[0].metadata.plugin_data.content = _end_info(Status.Value(STATUS.get(status, "STATUS_UNKNOWN")))
        self.writer._get_file_writer().add_summary(sei)
        self.writer.close()


def _end_info(status: int) -> bytes:
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo

    return HParamsPluginData(session_end_info=SessionEndInfo(status=status), version=0).SerializeToString()


def _created(summary: dict) -> float | None:
    import datetime

    text = summary.get("created")
    try:
        # summary.json's `created` is local time (runs.summary.created_text; to the second in older runs)
        return datetime.datetime.fromisoformat(text).timestamp() if isinstance(text, str) else None
    except (ValueError, OverflowError, OSError):
        return None


def write_run(run, logdir: Path, keys: Sequence[str]) -> None:
    """One run directory's metrics.csv and outcome as one TensorBoard run at `logdir` (replaced if present)."""
    tmp = logdir.with_name(f".tmp-{logdir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    ev = RunEvents(tmp, hparams_of(run.config, run.summary, keys), flush_secs=120)
    m = run.metrics
    t0 = _created(run.summary)
    cols = {c: m[c].tolist() for c in TAGS}
    epochs, seconds = m["epoch"].tolist(), m["seconds"].tolist()
    for i, e in enumerate(epochs):
        wall = t0 + seconds[i] if t0 is not None and np.isfinite(seconds[i]) else None
        ev.scalars(int(e), {c: cols[c][i] for c in TAGS}, wall)
    last = {c: m[c][-1] for c in FINAL}
    ev.close(int(epochs[-1]), last, run.status)
    if logdir.exists():
        shutil.rmtree(logdir)
    os.replace(tmp, logdir)


def export_runs(paths: Sequence[str], out: Path, warn: Warn) -> tuple[Path, int]:
    """Every readable run under `paths` as a TensorBoard run below `out` (named as its run directory)."""
    from optbench.runset import reading
    from optbench.share.table import varied_columns

    tensorboardx()
    runs = reading.read(paths, warn)
    if not runs:
        raise OptbenchError(f"no readable runs found in {', '.join(map(str, paths))}")
    if out.exists() and not out.is_dir():
        raise OptbenchError(f"--out: {str(out)!r} is a file (expected a directory for --format tensorboard)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        keys = varied_columns(runs)
        for r in runs:
            write_run(r, out / safe_component(r.path.name), keys)
    except OSError as err:
        raise OptbenchError(f"--out: cannot write in {str(out)!r} ({err.strerror or err.__class__.__name__})") from None
    return out, len(runs)


# ---- live: observers the CLI puts beside its progress display ---------------------------------------------


class LiveTrain:
    """`train --tensorboard DIR`: the Progress protocol of execute(), writing each replica's rows as they come,
    then handing every call on to the terminal's progress display."""

    def __init__(self, inner, root: Path, cfgs: list[dict]):
        from optbench.share.table import varied_keys

        tensorboardx()
        self.inner, self.root = inner, Path(root)
        self.keys = varied_keys(cfgs)  # over every run of this command
        self.events: list[RunEvents] = []
        self.last: list[dict[str, float]] = []

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        for ev in self.events:  # a group cut short by an exception: its files still end cleanly
            ev.writer.close()
        return self.inner.__exit__(*exc)

    def _name(self, cfg: dict, stamp: str) -> Path:
        base = f"{safe_component(cfg['label'])}-s{cfg['seed']}-{stamp}"
        path, n = self.root / base, 1
        while path.exists():
            n += 1
            path = self.root / f"{base}-{n}"
        return path

    def group_started(self, index: int, n_groups: int, cfgs: list[dict]) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.root.mkdir(parents=True, exist_ok=True)
        self.events, self.last = [], []
        for cfg in cfgs:
            self.events.append(RunEvents(self._name(cfg, stamp), hparams_of(cfg, {}, self.keys)))
            self.last.append({})
        self.inner.group_started(index, n_groups, cfgs)

    def epoch(self, rec) -> None:
        R = len(self.events)
        cols = {c: (v if isinstance(v, np.ndarray) else np.full(R, float(v))) for c, v in rec.metrics.items() if c in TAGS}
        for r in np.flatnonzero(rec.alive).tolist():
            row = {c: float(v[r]) for c, v in cols.items()}
            self.events[r].scalars(rec.epoch, row)
            self.last[r] = row | {"epoch": rec.epoch}
        self.inner.epoch(rec)

    def group_done(self, cfgs: list[dict], results, seconds: float) -> None:
        for ev, last, res in zip(self.events, self.last, results):
            ev.close(int(last.get("epoch", 0)), last, res.status)
        self.events = []
        self.inner.group_done(cfgs, results, seconds)


class LiveSweep:
    """`sweep --tensorboard DIR`: each run as its run directory lands (a group's runs arrive together when it
    finishes, from whichever worker trained it), then every call handed on to the terminal's display."""

    def __init__(self, inner, root: Path):
        tensorboardx()
        self.inner, self.root = inner, Path(root)
        self.sweep: Path | None = None
        self.keys: list[str] = []
        self.done = -1
        self.written: set[str] = set()

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        if self.sweep is not None:
            self._catch_up()
        return self.inner.__exit__(*exc)

    def started(self, start) -> None:
        from optbench.share.table import varied_keys

        self.sweep = Path(start.root)
        self.keys = varied_keys([r.cfg for r in start.plan.runs])
        self.root.mkdir(parents=True, exist_ok=True)
        self.inner.started(start)

    def update(self, tally) -> None:
        if tally.done + tally.interrupted != self.done:
            self.done = tally.done + tally.interrupted
            self._catch_up()
        self.inner.update(tally)

    def _catch_up(self) -> None:
        """Write the finished run directories of the sweep not written yet (read once each)."""
        from optbench.runset import reading
        from optbench.runs.read import CorruptRun

        try:
            dirs = sorted(d for d in self.sweep.iterdir() if d.is_dir() and not d.name.startswith("."))
        except OSError:
            return
        for d in dirs:
            if d.name in self.written:
                continue
            try:
                run = reading.read_one(d)
            except CorruptRun:
                continue
            if run.status in ("running", "failed"):
                continue
            write_run(run, self.root / safe_component(d.name), self.keys)
            self.written.add(d.name)
