"""The training loop, one for every kind of run: batches -> step -> update -> epoch record -> stop decisions.

A *task* is what trains: the MLP engine (train.Trainer) or a point on a 2-D test function
(trajectory.ProblemTrainer). It owns theta (R, P), grad (R, P), `update` (update.Updater) and `closure`
(update.ClosureSteps or None), and answers the loop's questions: `batches(e)` (the epoch's steps, each
filling grad), `closure_of(r)`, `record(e, progress)` (the epoch's metric columns; after a closure step, the gradient too), `decide(e, m, progress)`
(who ends now), `finish(r)` (remember a replica that ends), `state(progress)` (for checkpoints) and `has_val`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from optbench.records import EpochRecord, Stopped


@dataclass
class Progress:
    """Where a group's training stands: the epoch, the steps taken, and each replica's fate so far."""

    R: int
    epochs: int
    epoch: int = 0  # the epoch being trained (then recorded)
    done: int = 0  # the last epoch whose record was handed on
    steps: int = 0
    t0: float = field(default_factory=time.perf_counter)
    active: np.ndarray = field(init=False)  # (R,) bool: still training
    status: list[str] = field(init=False)  # completed | diverged | stopped_early | interrupted
    reason: list[str] = field(init=False)
    end_epoch: np.ndarray = field(init=False)  # (R,) the epoch each replica ended at

    def __post_init__(self):
        self.active = np.ones(self.R, dtype=bool)
        self.status, self.reason = ["completed"] * self.R, [""] * self.R
        self.end_epoch = np.full(self.R, self.epochs)

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def end(self, r: int, status: str, reason: str, e: int) -> None:
        self.status[r], self.reason[r], self.end_epoch[r], self.active[r] = status, reason, e, False

    def restore(self, s: dict, r: int) -> None:
        """Replica r's fate from a checkpointed state (see Trainer.state)."""
        self.active[r], self.status[r], self.reason[r], self.end_epoch[r] = s["active"], s["status"], s["reason"], s["end_epoch"]


def run_epochs(task, prog: Progress, on_epoch: Callable[[EpochRecord], None] | None, stopped: Callable[[], bool]) -> bool:
    """Train epochs prog.epoch+1 .. prog.epochs, handing each epoch's record to on_epoch; True if interrupted."""
    state = (lambda: task.state(prog)) if task.resumable else None
    try:
        for e in range(prog.epoch + 1, prog.epochs + 1 if prog.active.any() else prog.epoch + 1):
            prog.epoch = e
            task.update.set_epoch(e, prog.active)
            if task.closure is not None:  # L-BFGS: one closure-driven step per replica on the full batch
                if stopped():
                    raise Stopped
                task.closure.epoch(task.theta, task.closure_of, prog.active)
                prog.steps += 1
            else:
                n = 0
                for step in task.batches(e):
                    if stopped():
                        raise Stopped
                    step()  # the batch's gradient into task.grad
                    task.update.apply()  # theta -= lr_t * direction
                    n += 1
                prog.steps += n
            m, iter_costs = task.record(e, prog)
            alive = prog.active.copy()
            ended = task.decide(e, m, prog)
            task.update.observe(m["val_cost"] if task.has_val else m["train_cost"])
            for r, (status, why) in ended.items():
                prog.end(r, status, why, e)
                task.finish(r)
            if on_epoch is not None:
                on_epoch(EpochRecord(e, m, alive, ended, iter_costs, state=state))
            prog.done = e
            if not prog.active.any():
                break
    except (Stopped, KeyboardInterrupt):  # KeyboardInterrupt: a second Ctrl-C, mid-step
        for r in np.flatnonzero(prog.active):
            prog.end(r, "interrupted", f"interrupted after epoch {prog.done}", prog.done)  # its last written row
            task.finish(r)
        return True
    return False


__all__ = ["Progress", "run_epochs"]
