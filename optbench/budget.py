"""Memory budget: the bytes a group of runs will need, estimated from its config before anything is allocated.

    bytes ≈ N·(D + 1 + K)·(16 + 2s)            data: the float64 dataset and its standardized split, and the
                                               engine's copy (and transpose) in the run dtype of s bytes
          + R·P·s·(4 + m)                      parameters, gradients, best and scratch copies, and m optimizer
                                               state slots per parameter (state_slots; lbfgs: 2·history_size + 2)
          + R·B·(Σ_l d_l)·4s                   activations, their gradients and pre-activations for a batch of
                                               B = max(batch_size, min(N, EVAL_CHUNK)) over layers of width d_l
with N examples of D features and K outputs, R replicas and P = Σ_l (d_{l-1} + 1)·d_l (+ 2 per normalized unit).
The limit is OPTBENCH_MEMORY_LIMIT (bytes; suffix K, M, G or T for powers of 1024), else LIMIT_FRACTION of
the physical memory (os.sysconf). The estimate is an upper bound within a small factor, not an exact count.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from optbench.errors import OptbenchError

ENV = "OPTBENCH_MEMORY_LIMIT"
LIMIT_FRACTION = 0.5  # of physical memory: leaves room for the interpreter, other runs and the system
FALLBACK = 8 * 2**30  # where os.sysconf cannot tell the physical memory
EVAL_CHUNK = 4096  # examples evaluated at once: the training loop's evaluation chunks, and landscape's
UNBUILT_SLOTS = 3  # optimizer state arrays of a rule the estimate does not build (a plugin's) or cannot (refused options)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def size_text(n: float) -> str:
    """Bytes in binary units with three significant digits: 1536 -> '1.50 KiB'."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


def limit() -> tuple[int, str]:
    """(bytes, where the number comes from): OPTBENCH_MEMORY_LIMIT, else LIMIT_FRACTION of physical memory."""
    text = os.environ.get(ENV, "").strip()
    if text:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", text, re.I)
        if not m or float(m.group(1)) <= 0:
            raise OptbenchError(f"{ENV}: {text!r} is invalid (accepted: a number of bytes > 0, optionally with "
                                "K, M, G or T, e.g. 8G)")
        return int(float(m.group(1)) * _UNITS[m.group(2).upper()]), f"set by {ENV}"
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        physical = 0
    if physical <= 0:
        return FALLBACK, f"the default without a known physical memory; set {ENV} to change it"
    return int(LIMIT_FRACTION * physical), f"{LIMIT_FRACTION:g} of the physical memory; set {ENV} to change it"


def check(need: float, what: str) -> None:
    """Refuse `need` bytes over the limit: one line naming `what` needs them, the estimate and the limit."""
    cap, source = limit()
    if need > cap:
        raise OptbenchError(f"{what} needs about {size_text(need)} of memory, over the limit of {size_text(cap)} "
                            f"({source})")


@dataclass(frozen=True)
class Estimate:
    """The three parts of the formula above, in bytes."""

    data: float
    params: float
    activations: float

    @property
    def total(self) -> float:
        return self.data + self.params + self.activations


def data_bytes(n: float, d: float, k: float, itemsize: int = 8) -> float:
    """N·(D + 1 + K)·(16 + 2s): the dataset, its split and the engine's copies."""
    return n * (d + 1 + k) * (16 + 2 * itemsize)


def state_slots(opt: dict) -> int:
    """Optimizer state arrays of P numbers per replica for a resolved optimizer section: the (R, P) arrays its rule's
    init holds on a probe row (the arrays an option switches on and a wrapper's inner rule's included); L-BFGS
    2*history_size + 2; a plugin's rule, or options its factory refuses (it says so when the engine builds it),
    UNBUILT_SLOTS. tests/test_optim.py holds the count to each rule's state."""
    import numpy as np

    from optbench.lrmult import KEY
    from optbench.optim import OPTIMIZERS, build, is_closure_optimizer

    name = opt["name"]
    if is_closure_optimizer(name):
        return 2 * opt.get("history_size", 100) + 2
    if OPTIMIZERS.is_plugin(name):
        return UNBUILT_SLOTS
    probe = np.zeros((1, 2))  # P = 2: a per-replica (R, 1) number (prodigy's d) is not an array of P
    try:
        state = build(name, {k: v for k, v in opt.items() if k not in ("name", KEY)}).init(probe)
    except OptbenchError:
        return UNBUILT_SLOTS

    def arrays(s) -> int:  # inside a wrapper's or a fallback's state too
        return int(s.shape == probe.shape) if isinstance(s, np.ndarray) else \
            sum(arrays(a) for a in s) if isinstance(s, tuple) else 0

    return arrays(state)


def estimate(cfgs: list[dict], n: int, d: int, k: int) -> Estimate:
    """Bytes a group of R = len(cfgs) resolved run configs needs on N examples of D features and K outputs."""
    c0 = cfgs[0]
    s = 4 if c0["train"]["dtype"] == "float32" else 8
    widths = [d, *c0["model"]["hidden"], k]
    P = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    if c0["model"]["norm"] != "none":
        P += 2 * sum(c0["model"]["hidden"])
    slots = sum(state_slots(c["optimizer"]) for c in cfgs)  # replicas of one group may use different rules: each its own
    bs = c0["train"]["batch_size"]
    B = max(n if bs == "full" else min(bs, n), min(n, EVAL_CHUNK))
    R = len(cfgs)
    return Estimate(data=data_bytes(n, d, k, s), params=float(P) * s * (4 * R + slots),
                    activations=float(R) * B * sum(widths[1:]) * 4 * s)


def check_group(cfgs: list[dict], n: int, d: int, k: int) -> None:
    """check() on estimate(): the message names the key that drives the largest part."""
    e = estimate(cfgs, n, d, k)
    cap, source = limit()
    if e.total <= cap:
        return
    key = "data" if e.data >= max(e.params, e.activations) else "model.hidden"
    R = len(cfgs)
    raise OptbenchError(
        f"{key}: {'1 run needs' if R == 1 else f'{R} runs training together need'} about {size_text(e.total)} of memory "
        f"(data {size_text(e.data)}, parameters and optimizer state {size_text(e.params)}, activations "
        f"{size_text(e.activations)}), over the limit of {size_text(cap)} ({source})")
