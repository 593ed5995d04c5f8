"""RunWriter: a group's run directories, opened at start, rows kept and written in blocks, finished at the end."""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from optbench import owner
from optbench.paths import safe_component
from optbench.runs.checkpoints import CHECKPOINTS, config_hash, text_hash
from optbench.runs.columns import columns_of, fmt, lines_through, rows_lines
from optbench.runs.read import read_metrics
from optbench.runs.status import FINISHED
from optbench.runs.summary import created_text, summary, versions
from optbench.runs.tracks import Tracks
from optbench.runs.writing import RunWriteError, Writing, atomic_write
from optbench.yamlio import dump_yaml

FLUSH_EVERY = 1.0  # seconds between writes of kept rows while training: what a kill -9 may lose
ITERATIONS_HEADER = "epoch,iteration,step,cost\n"  # iterations.csv's


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
        self._tracks = Tracks(len(cfgs))  # per run r = its index in cfgs (and in dirs, once started)
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
        with Writing(self.root):
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
            with Writing(tmp):
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
                    iters.write(ITERATIONS_HEADER)
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
        with Writing(d):
            keep = lines_through((d / "metrics.csv").read_text().splitlines(keepends=True), epoch)
            atomic_write(d / "metrics.csv", ",".join(self.columns) + "\n" + "".join(keep))
            if cfg["train"]["log_iterations"]:
                it = d / "iterations.csv"
                kept = lines_through(it.read_text().splitlines(keepends=True) if it.is_file() else [], epoch)
                atomic_write(it, ITERATIONS_HEADER + "".join(kept))
            try:
                created = json.loads((d / "summary.json").read_text()).get("created")
            except (OSError, ValueError, AttributeError):
                created = None
            if isinstance(created, str):
                self._created[r] = created
            atomic_write(d / "summary.json", json.dumps(self._summary(r, "running", ""), indent=2))
            self._add(d, open(d / "metrics.csv", "a", newline=""),
                      open(d / "iterations.csv", "a") if cfg["train"]["log_iterations"] else None)
        if keep:
            table = read_metrics(d / "metrics.csv")
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
        return rows_lines(runs_major) if len(runs_major) else [], offsets, table, alive, [p[2] for p in pending]

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
                                it.write("".join(f"{epoch},{i + 1},{step0 + i + 1},{fmt(c)}\n"
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
            with Writing(path):
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
            with Writing(d):
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
                atomic_write(d / "summary.json", json.dumps(self._summary(r, res.status, res.reason, extra, n_out=n_out),
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
                    atomic_write(self.dirs[r] / "summary.json", json.dumps(self._summary(r, status, reason), indent=2))
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
        """Run r's summary.json now (summary.summary), from what this writer found once and its tracks."""
        track = self._tracks.of(r) if self._tracks.n[r] else None
        return summary(self.cfgs[r], status, reason, group=self.group, created=self._created[r], software=self._versions,
                       owner=self._owner, tags=self.tags[r], track=track, extra=extra, n_out=n_out)
