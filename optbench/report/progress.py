"""Progress while training: a rich bar per group (train) or over a sweep's run-epochs; plain lines in pipes."""

from __future__ import annotations

import time

import numpy as np

from optbench import layout
from optbench.layout import console, is_terminal  # looked up here: tests patch them in this module


def clip(text: str, width: int) -> str:
    """One line of at most `width` characters, cut at a word with an ellipsis."""
    if len(text) <= width:
        return text
    cut = text[: max(0, width - 2)].rsplit("  ", 1)[0] if "  " in text[: max(0, width - 2)] else text[: max(0, width - 2)].rsplit(" ", 1)[0]
    return cut + " …"


class _Bar:
    """A rich Progress on a terminal (none when quiet or in a pipe), opened and closed as a context manager.

    The description, bar and counters never shrink; the last text column takes the room left and is cut
    with an ellipsis, so the counter stays whole at any width."""

    COLUMNS: tuple = ()  # text templates after the description, bar and count; the last one is cut to fit
    PERCENT = False  # the count as a percentage (else completed/total)

    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet
        self.rich = is_terminal() and not quiet
        self.width = layout.term_width()
        self._bar = None
        self._task = None

    def __enter__(self):
        if self.rich:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                       TimeElapsedColumn)
            from rich.table import Column

            whole = lambda: Column(no_wrap=True)  # noqa: E731
            cols = [TimeElapsedColumn(table_column=whole()) if c == "elapsed" else TextColumn(c, table_column=whole())
                    for c in self.COLUMNS]
            cols[-1] = TextColumn(self.COLUMNS[-1], table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))
            self._bar = Progress(TextColumn("{task.description}", table_column=whole()), BarColumn(bar_width=20),
                                 (TaskProgressColumn if self.PERCENT else MofNCompleteColumn)(table_column=whole()),
                                 *cols, console=console(self.width),
                                 expand=True)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


class TrainProgress(_Bar):
    """A rich progress bar per group on a terminal (epochs, current cost per label); plain lines otherwise."""

    COLUMNS = ("elapsed", "{task.fields[costs]}")

    def __init__(self, *, quiet: bool = False):
        super().__init__(quiet=quiet)
        self._last = 0.0
        self._next_line = 0
        self.reached = 0
        self.cfgs: list[dict] = []  # the group being trained, and what group_started finds in it
        self.labels: list[str] = []
        self.by_label: dict[str, np.ndarray] = {}
        self.epochs = 0
        self._room = 0  # characters the costs have beside the rich bar

    def group_started(self, index, n_groups, cfgs):
        self.cfgs = cfgs
        self.labels = sorted({c["label"] for c in cfgs}, key=[c["label"] for c in cfgs].index)
        self.by_label = {lab: np.array([c["label"] == lab for c in cfgs]) for lab in self.labels}
        self.epochs = cfgs[0]["train"]["epochs"]
        self.reached = 0
        desc = f"group {index + 1}/{n_groups} ({len(cfgs)} runs)"
        if self.quiet:
            return
        if self.rich:
            # the room the costs have beside the description, bar, count and clock: cut at a label, not in a number
            self._room = self.width - len(desc) - 20 - len(f"{self.epochs}/{self.epochs}") - len("0:00:00") - 4
            self._task = self._bar.add_task(desc, total=self.epochs, costs="")
        else:
            names = ", ".join(lab.split("/")[-1] for lab in self.labels)
            print(clip(f"{desc}: {names}; {self.epochs} epochs", self.width), flush=True)
            self._next_line = max(1, self.epochs // 10)

    def _costs(self, rec) -> str:
        tc = rec.metrics["train_cost"]
        parts = []
        for lab in self.labels:
            sel = self.by_label[lab] & rec.alive
            if sel.any():
                parts.append(f"{lab.split('/')[-1]} {np.nanmean(tc[sel]):.4g}")
        return "cost: " + "  ".join(parts)

    def epoch(self, rec):
        self.reached = rec.epoch
        if self.quiet or rec.epoch == 0:
            return
        if self.rich:
            now = time.perf_counter()
            if now - self._last > 0.1 or rec.epoch == self.epochs:
                self._last = now
                self._bar.update(self._task, completed=rec.epoch, costs=clip(self._costs(rec), self._room))
        elif rec.epoch >= self._next_line:
            print(clip(f"  epoch {rec.epoch}/{self.epochs}  {self._costs(rec)}", self.width), flush=True)
            self._next_line += max(1, self.epochs // 10)

    def group_done(self, cfgs, results, seconds):
        if self.quiet:
            return
        text = status_counts(results, self.epochs)
        if self.rich:  # the bar stays where training got to: an interrupted group does not read as complete
            reached = max((r.epochs for r in results), default=0)
            done = reached if any(r.status == "interrupted" for r in results) else self.epochs
            self._bar.update(self._task, completed=done, costs=clip(text, self._room))
        else:
            print(clip(f"  done in {seconds:.2f} s: {text}", self.width), flush=True)


def status_counts(results, planned: int) -> str:
    """`15 completed`, `10 interrupted at epoch 140/300, 5 diverged`."""
    counts: dict[str, int] = {}
    for r in results:
        key = f"{r.status} at epoch {r.epochs}/{planned}" if r.status == "interrupted" else r.status
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _clock(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class SweepProgress(_Bar):
    """One bar over a sweep's run-epochs (it moves while groups train, in every worker): runs done, running,
    diverged, elapsed and remaining; plain lines in a pipe (at each 10% and when runs finish)."""

    COLUMNS = ("elapsed", "{task.fields[counts]}")
    PERCENT = True

    def __init__(self, *, quiet: bool = False):
        super().__init__(quiet=quiet)
        self._t0 = time.perf_counter()
        self._last = (-1, -1)
        self._start_epochs = 0

    def started(self, start) -> None:
        self._t0 = time.perf_counter()
        plan = start.plan
        trials = len(plan.trials)
        head = (f"sweep {plan.dirname}: {trials} trials, {start.total} runs"
                + (f", {start.resumed} already complete" if start.resumed else "")
                + (f"; training {start.todo} in {start.units} groups on {start.backend}" if start.todo else ""))
        if self.quiet:
            return
        for line in layout.wrap(head, self.width):
            if self.rich:
                console(self.width).print(line, highlight=False)
            else:
                print(line, flush=True)
        if self.rich:
            self._task = self._bar.add_task("epochs", total=1, completed=0, counts="")

    def _remaining(self, t) -> float:
        """From the run-epochs trained in this pass and the time they took."""
        elapsed = time.perf_counter() - self._t0
        trained = t.epochs_done - self._start_epochs
        return elapsed / trained * (t.epochs_total - t.epochs_done) if trained > 0 else float("nan")

    def update(self, t) -> None:
        if self.quiet:
            return
        if self._last == (-1, -1):
            self._start_epochs = t.epochs_done
        counts = (f"runs {t.done}/{t.total} done, {t.running} running, {t.diverged} diverged"
                  + (f", {t.interrupted} interrupted" if t.interrupted else ""))
        timing = f"remaining {_clock(self._remaining(t))}"
        if self.rich:
            self._bar.update(self._task, completed=t.epochs_done, total=max(t.epochs_total, 1),
                             counts=f"{timing}  {counts}")
            return
        tenth = int(10 * t.epochs_done / t.epochs_total) if t.epochs_total else 10
        if (t.done, tenth) != self._last:
            self._last = (t.done, tenth)
            pct = 100 * t.epochs_done / t.epochs_total if t.epochs_total else 100.0
            elapsed = time.perf_counter() - self._t0
            print(clip(f"  {pct:3.0f}% of epochs, {counts}, elapsed {_clock(elapsed)}, {timing}", self.width), flush=True)
