"""What a trainer reports and returns, and how it is told to stop: the vocabulary both training loops share.

EpochRecord goes to the `on_epoch` callback after every epoch, RunResult is one replica's outcome; `stop` is an
event (threading.Event, or Never) that the loop polls at step boundaries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


class Stopped(Exception):
    """Raised at a step boundary once the `stop` event given to `run` is set (Ctrl-C, SIGTERM: cli.py's handler);
    caught by the loop, which marks the live replicas interrupted. Never leaves the trainer."""


class Never:
    """The stop event of a run that nothing stops."""

    @staticmethod
    def is_set() -> bool:
        return False


def fingerprint(arr: np.ndarray) -> str:
    """Short hash of an array's bytes: equal fingerprints mean equal initial weights or batch orders."""
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


@dataclass
class RunResult:
    """What one replica leaves behind."""

    status: str  # completed | diverged | stopped_early | interrupted
    reason: str
    epochs: int
    params: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray]
    init_fingerprint: str
    batch_fingerprint: str
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # more .npz files: name -> arrays
    final_eval: dict[str, float] = field(default_factory=dict)  # test-mode metrics of the final parameters
    timing: dict[str, float] = field(default_factory=dict)  # update_timing(): what its update rule cost


@dataclass
class EpochRecord:
    """Per-epoch metrics of a group: every column an (R,) array; rows only for replicas in `alive`."""

    epoch: int
    metrics: dict[str, np.ndarray]
    alive: np.ndarray  # replicas whose row this epoch is
    ended: dict[int, tuple[str, str]]  # replica -> (status, reason) decided at this epoch
    iter_costs: np.ndarray | None = None  # (R, steps) per-iteration batch costs, when logged
    state: Callable[[], list[dict]] | None = None  # each replica's training state after this epoch (checkpoint.py)


def norms(a: np.ndarray) -> np.ndarray:
    """Euclidean norm of each replica's row: (R,)."""
    # a plain row sum: einsum's buffering makes long rows' sums depend on R, and vecdot's BLAS dot threads
    return np.sqrt((a * a).sum(axis=1))


def update_timing(seconds: float, steps: int, replicas: int) -> dict[str, float]:
    """summary.json's record of an update rule's cost: seconds spent in it over `steps` steps of a slice of
    `replicas` replicas (the runs in one slice share it), and microseconds per step = 1e6 * seconds / steps."""
    return {"update_seconds": float(seconds), "update_steps": int(steps), "update_replicas": int(replicas),
            "update_us_per_step": 1e6 * seconds / steps if steps else None}
