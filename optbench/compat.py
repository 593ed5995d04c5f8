"""`train.compat: dlai`: the deeplearning.ai "Optimization methods" notebook's own random streams, digit for digit.

The notebook draws from NumPy's global RandomState; these are the same streams from explicit RandomStates:
  data     np.random.seed(3); sklearn.datasets.make_moons(300, noise=0.2)  -> data.random_state (moons)
  weights  np.random.seed(3); W_l = randn(n_l, n_{l-1}) * sqrt(2 / n_{l-1}), layer by layer; b_l = 0
  batches  epoch i (0-based): np.random.seed(11 + i); permutation(m)  (seed = 10, then seed + 1 before each epoch)
  decay    after each epoch (schedule.timing: after), no standardization.
Run seed 0 is the notebook; seed s > 0 draws from RandomState([3, s]) and RandomState([11 + i, s]) instead.
"""

from __future__ import annotations

import numpy as np

COMPAT = ("none", "dlai")
INIT_SEED, FIRST_EPOCH_SEED = 3, 11


def _seed(base: int, seed: int) -> int | list[int]:
    return base if seed == 0 else [base, seed]


def init_rng(seed: int) -> np.random.RandomState:
    """The notebook's initialize_parameters stream: RandomState(3), its randn draws taken layer by layer."""
    return np.random.RandomState(_seed(INIT_SEED, seed))


def epoch_order(e: int, n: int, seed: int, state: np.random.RandomState) -> np.ndarray:
    """Example order (n,) of 0-based epoch e: RandomState(11 + e).permutation(n), as random_mini_batches draws it.

    `state` is reseeded in place: the same stream as a new RandomState, without its ~0.1 ms construction per epoch.
    """
    state.seed(_seed(FIRST_EPOCH_SEED + e, seed))
    return state.permutation(n)


def notebook_defaults(raw: dict) -> dict:
    """A raw run config with the notebook's conventions filled in where it leaves them unset (config.yaml shows them)."""
    out = dict(raw)
    data = out.get("data")
    if isinstance(data, dict) and data.get("name") == "moons":
        data = dict(data)
        data.setdefault("random_state", data.get("seed", 0))  # np.random.seed(3) with data.seed: 3
        data.setdefault("standardize", False)
        out["data"] = data
    sched = out.get("schedule")
    if isinstance(sched, dict) and sched.get("name") == "inverse_time":
        out["schedule"] = {**sched, "timing": sched.get("timing", "after")}
    return out
