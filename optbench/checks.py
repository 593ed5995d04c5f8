"""`optbench gradcheck`: the numeric gradient check of each configured net, on a small training batch.

Each distinct net (data, model, loss, regularization and seed) is checked once, at its initial weights
as training builds them, on every path its runs train through: the fused step of plain nets and the
general MLP.backward (norm and dropout nets, L-BFGS). A 2-D problem checks its closed-form gradient.
"""

from __future__ import annotations

import json

import numpy as np

from optbench.gradcheck import FLOOR, H, KINKED, RTOL, Comparison, Objective, compare_paths, numeric_at
from optbench.problems import PROBLEMS

NET_KEYS = ("data", "model", "loss", "regularization", "seed")  # what fixes the checked function and point


def objective(cfg: dict, *, examples: int = 16) -> tuple[Objective, np.ndarray]:
    """The training cost of one run config on its first `examples` training examples, and its initial theta (1, P).

    Built by the Trainer itself (in float64), so net, initial weights, keep probability and L2 are the ones training uses.
    """
    from optbench.train import Trainer

    tr = Trainer([{**cfg, "train": {**cfg["train"], "dtype": "float64"}}])
    D = tr.data.D
    M = tr.data.train[:, : min(examples, tr.data.N)]
    obj = Objective(tr.net, M[None, : D + 1], M[None, D + 1 :], l2=float(tr.l2[0, 0]), keep=tr.keep, drop_seed=cfg["seed"],
                    kinked=cfg["model"]["activation"]["name"] in KINKED)
    return obj, tr.theta.copy()


def check_config(cfg: dict, *, examples: int = 16, samples: int = 20) -> list[dict]:
    """One row per (path, parameter) for one resolved run config (float64, its initial weights).

    Each parameter tensor is checked on at most `samples` entries drawn at random (CS231n's sparse
    check): a full check costs four cost evaluations per weight.
    """
    if cfg["data"]["name"] in PROBLEMS:
        return _check_problem(cfg, samples)
    obj, theta = objective(cfg, examples=examples)
    pick = np.random.default_rng(0)
    where = obj.net.layout.named(np.arange(obj.net.layout.P)[None])
    chosen = {k: np.sort(pick.permutation(v.reshape(-1))[:samples]) for k, v in where.items()}
    indices = np.concatenate(list(chosen.values()))
    rows = []
    for path, cmp in compare_paths(obj, theta, indices).items():
        start = 0
        for name, idx in chosen.items():
            rows.append({"label": cfg["label"], "path": path, "param": name,
                         **cmp.take(slice(start, start + len(idx))).stats()})
            start += len(idx)
    return rows


def _check_problem(cfg: dict, samples: int) -> list[dict]:
    """A 2-D problem's closed-form gradient at its start and at points drawn inside its plotting bounds."""
    problem = PROBLEMS.build(cfg["data"]["name"], {k: v for k, v in cfg["data"].items() if k != "name"})
    x0, x1, y0, y1 = problem.bounds
    pts = np.random.default_rng(0).uniform((x0, y0), (x1, y1), size=(max(samples - 1, 0), 2))
    a, n = [], []
    for p in np.vstack([problem.start, pts]):
        a.append(problem.grad(p))
        n.append(numeric_at(lambda v: (float(problem.f(v)), None), p.copy(), [0, 1])[0])
    cmp = Comparison(np.concatenate(a), np.concatenate(n), np.zeros(2 * len(a), dtype=bool))
    return [{"label": cfg["label"], "path": "closed-form", "param": "xy", **cmp.stats()}]


def gradcheck_runs(cfgs: list[dict], *, examples: int = 16, samples: int = 20) -> list[dict]:
    """Rows for each label's first seed, once per distinct net: `same` lists the other labels with that net."""
    keys: dict[str, list[dict]] = {}
    seen = set()
    for cfg in cfgs:
        if cfg["label"] not in seen:
            seen.add(cfg["label"])
            key = json.dumps({k: cfg.get(k) for k in NET_KEYS}, sort_keys=True, default=str)
            keys.setdefault(key, []).append(cfg)
    rows = []
    for group in keys.values():
        for row in check_config(group[0], examples=examples, samples=samples):
            rows.append({**row, "same": [c["label"] for c in group[1:]]})
    return rows


COUNTS = ("checked", "kinks", "at_floor", "failed")


def by_path(rows: list[dict]) -> list[dict]:
    """One row per (net, path): the counts summed over its parameters, the worst error and where it is."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["label"], r["path"]), []).append(r)
    out = []
    for (label, path), rs in groups.items():
        worst = max(rs, key=lambda r: r["worst"])
        out.append({"label": label, "path": path, "param": worst["param"], "worst": worst["worst"], "same": rs[0]["same"],
                    **{k: sum(r[k] for r in rs) for k in COUNTS}})
    return out


def verdict(rows: list[dict]) -> dict:
    """The overall result: ok, counts over all rows, the worst relative error and where it occurred.

    A path with no checkable entry (every sampled coordinate on a kink) verified nothing: not ok.
    """
    paths = by_path(rows)
    worst = max(paths, key=lambda r: r["worst"], default=None)
    total = {k: sum(r[k] for r in paths) for k in COUNTS}
    unchecked = sum(r["checked"] == 0 for r in paths)
    return {
        **total,
        "ok": bool(paths) and total["failed"] == 0 and not unchecked,
        "unchecked": unchecked,
        "worst": worst["worst"] if worst else 0.0,
        "where": (worst["label"], worst["path"], worst["param"]) if worst else ("", "", ""),
        "nets": len({r["label"] for r in paths}),
        "rtol": RTOL,
        "floor": FLOOR,
        "h": H,
    }
