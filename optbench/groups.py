"""Which runs train together: groups share data, architecture and training shape; rules share an update rule.

A group is one vectorized Trainer over R replicas; inside it, each contiguous slice of replicas with
the same optimizer, schedule and momentum schedule structure (a *rule*) gets its own update. Numbers
(learning rates, betas, L2, ...) may differ per replica: they become (R, 1) arrays.
"""

from __future__ import annotations

from typing import Any

import json

import numpy as np

from optbench.optim import is_closure_optimizer

# Hyperparameters that may differ inside a group (numbers only; their structure must match).
VARYING_SECTIONS = ("optimizer", "schedule", "momentum_schedule")


def _structure(section: dict) -> dict:
    """A registry section with its numbers blanked: what must match for replicas to share one update rule."""
    return {o: ("#" if _is_number(v) else _structure(v) if isinstance(v, dict) else v) for o, v in section.items()}


def rule_key(cfg: dict) -> str:
    """What must be equal for replicas to share one optimizer rule and schedule (their numbers may differ): the
    VARYING_SECTIONS of a resolved config (or a mapping of just them)."""
    return _key({s: _structure(cfg[s]) for s in VARYING_SECTIONS})


def group_key(cfg: dict) -> str:
    """What must be equal for runs to train as one vectorized group.

    The optimizer is not part of it: a group's replicas share the forward and backward passes and
    each contiguous slice of replicas with one rule (gd, momentum, adam, ...) gets its own update.
    """
    k = {s: cfg[s] for s in ("data", "loss")}
    # per replica like init: a run directory to start from and the frozen layers (a flat mask); a run that starts
    # from a variant trained by the same command trains after it, apart from it (execute.py)
    k["model"] = {m: v for m, v in cfg["model"].items() if m not in ("init", "init_from", "freeze")}
    if isinstance(cfg["model"].get("init_from"), dict):
        k["model"]["after"] = cfg["model"]["init_from"]
    k["model"]["drop_prob"] = cfg["model"]["drop_prob"] > 0
    reg = cfg["regularization"]
    k["regularization"] = {
        "polyak": reg["polyak"] is None,
        "early_stopping": None if reg["early_stopping"] is None else reg["early_stopping"]["metric"],
    }
    # per-replica numbers: a clip threshold of inf is no clip (optbench/clip.py)
    k["train"] = {t: v for t, v in cfg["train"].items() if t not in ("diverge_factor", "clip_grad_norm", "clip_grad_value")}
    if is_closure_optimizer(cfg["optimizer"]["name"]):
        k["closure"] = cfg["label"], cfg["seed"]  # L-BFGS runs replica by replica: no gain from grouping
    return _key(k)


def _key(obj: Any) -> str:
    """A canonical text of plain config data, to compare by (JSON: far cheaper than YAML for thousands of runs)."""
    return json.dumps(obj, sort_keys=True, default=str)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def make_groups(runs: list[dict], max_size: int = 256) -> list[list[dict]]:
    """Partition runs into groups of equal group_key, in first-seen order; within a group, runs that
    share a rule_key are made contiguous (a stable sort), so each rule updates one slice of replicas."""
    groups: dict[str, list[dict]] = {}
    for cfg in runs:
        groups.setdefault(group_key(cfg), []).append(cfg)
    out = []
    for g in groups.values():
        order: dict[str, int] = {}
        g = sorted(g, key=lambda c: order.setdefault(rule_key(c), len(order)))
        out.extend(g[i : i + max_size] for i in range(0, len(g), max_size))
    return out


def stack(values: list, dtype=np.float64):
    """One value per replica -> the value itself when all agree, else an (R, 1) array."""
    first = values[0]
    if all(v == first for v in values):
        return first
    if not all(_is_number(v) or v is None for v in values):
        raise ValueError(f"non-numeric hyperparameters differ inside a group: {values}")
    return np.array([np.nan if v is None else v for v in values], dtype=dtype).reshape(-1, 1)


def stack_section(sections: list, dtype, skip: tuple[str, ...] = ()) -> dict:
    """One registry section's options (sections.Section, one per replica, minus `skip`), each stacked over replicas."""
    keys = [k for k in sections[0].options if k not in skip]
    return {k: stack([s.options[k] for s in sections], dtype) for k in keys}


