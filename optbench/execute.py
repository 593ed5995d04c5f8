"""Train resolved runs group by group, each group writing its run directories as it goes."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from optbench.runs import RunWriter
from optbench.train import EpochRecord, RunResult, Trainer, make_groups, make_trainer


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


def execute(cfgs: list[dict], runs_dir: Path, progress: Progress | None = None,
            *, trainer: Callable[..., Trainer] = make_trainer) -> tuple[list[Outcome], bool]:
    """Train every run; returns the outcomes and whether training was interrupted (Ctrl-C / SIGTERM)."""
    outcomes: list[Outcome] = []
    groups = make_groups(cfgs)
    for gi, group in enumerate(groups):
        gid = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        writer = RunWriter(runs_dir, group, group=gid)
        t0 = time.perf_counter()
        try:
            tr = trainer(group, record_activations=True)
            writer.start()
            if progress is not None:
                progress.group_started(gi, len(groups), group)

            def on_epoch(rec, writer=writer):
                writer.on_epoch(rec)
                if progress is not None:
                    progress.epoch(rec)

            results = tr.run(on_epoch=on_epoch)
            seconds = time.perf_counter() - t0
            writer.finish(results, seconds=seconds)
        except KeyboardInterrupt:
            # interrupted outside the loop (set-up or writing): no result to save, say so in the summaries
            writer.fail("interrupted outside the training loop", status="interrupted")
            return outcomes, True
        except BaseException as err:
            writer.fail(f"{err.__class__.__name__}: {err}")
            raise
        if progress is not None:
            progress.group_done(group, results, seconds)
        outcomes.extend(Outcome(c, r, d, seconds) for c, r, d in zip(group, results, writer.dirs))
        if tr.interrupted:
            return outcomes, True
    return outcomes, False
