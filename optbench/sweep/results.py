"""A sweep's results: each variant's best trial (and its defaults) for compare, and 2-D sweeps as heat-map tables."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.errors import OptbenchError
from optbench.metrics import test_counterpart
from optbench.sweep.plan import DEFAULT_TRIAL
from optbench.sweep.spec import METRICS


@dataclass(frozen=True)
class TrialResult:
    """A trial's runs (seeds x folds), its selection metric over them, and the test metric reported beside it."""

    sweep: dict  # the sweep tag of its first run
    variant: str | None
    trial: str
    params: dict
    runs: tuple  # compare.RunFacts
    mean: float
    std: float
    eligible: bool  # every run finished without diverging and measured the metric
    test_metric: str = "final_test_cost"  # the selection metric's kind on the held-out test split
    test_mean: float = math.nan  # NaN: no run of the trial has a test split
    test_std: float = math.nan

    @property
    def has_test(self) -> bool:
        return any(r.has_test for r in self.runs)

    @property
    def diverged(self) -> int:
        return sum(r.status == "diverged" for r in self.runs)


@dataclass(frozen=True)
class Pick:
    """A row of a sweep's summary: a variant's best trial (`tuned`, `best`) or its defaults (`default`)."""

    role: str
    result: TrialResult
    trials: int  # trials of this variant (the budget spent)
    runs: int
    epochs: int  # epochs trained over all runs of this variant's search


@dataclass(frozen=True)
class SweepSummary:
    """One sweep as compare shows it."""

    id: str
    name: str
    method: str
    budget: int | None
    metric: str
    folds: int | None
    seeds: int
    picks: tuple[Pick, ...]
    n_trials: int
    n_runs: int
    diverged: int


def _mean_std(runs: list, metric: str) -> tuple[float, float, bool]:
    """Mean and std over the runs' finite values, and whether every value was finite."""
    v = np.array([r.metric(metric) for r in runs], dtype=float)
    ok = np.isfinite(v)
    mean = float(v[ok].mean()) if ok.any() else math.nan
    std = float(v[ok].std(ddof=1)) if ok.sum() > 1 else math.nan
    return mean, std, bool(ok.all())


def _trial_result(runs: list, metric: str) -> TrialResult:
    """Selection on `metric` (validation split, when it names one); the test split only measured beside it."""
    tag = runs[0].sweep
    mean, std, finite = _mean_std(runs, metric)
    eligible = finite and not any(r.status == "diverged" for r in runs)
    test = test_counterpart(metric)
    t_mean, t_std, _ = _mean_std(runs, test)
    return TrialResult(tag, tag.get("variant"), tag.get("trial"), tag.get("params") or {}, tuple(runs), mean, std, eligible,
                       test, t_mean, t_std)


def best_trial(results: list[TrialResult], metric: str) -> TrialResult | None:
    """The best mean over seeds and folds; trials that diverged on any run only when nothing else is left."""
    sign = METRICS[metric]
    ranked = [r for r in results if not math.isnan(r.mean)]
    pool = [r for r in ranked if r.eligible] or ranked
    return min(pool, key=lambda r: (sign * r.mean, r.trial)) if pool else None


def summarize(facts: list) -> list[SweepSummary]:
    """Per sweep id: each variant's best trial (and its defaults under a budget), with the budget spent."""
    by_sweep: dict[str, list] = {}
    for f in facts:
        by_sweep.setdefault(f.sweep["id"], []).append(f)
    out = []
    for sid, runs in sorted(by_sweep.items(), key=lambda kv: kv[1][0].sweep.get("name") or ""):
        tag = runs[0].sweep
        metric = tag.get("metric") if tag.get("metric") in METRICS else "best_cost"
        trials: dict[tuple, list] = {}
        for f in runs:
            trials.setdefault((f.sweep.get("variant"), f.sweep.get("trial")), []).append(f)
        picks = []
        for variant in dict.fromkeys(k[0] for k in trials):
            results = [_trial_result(rs, metric) for (v, _), rs in trials.items() if v == variant]
            searched = [r for r in results if r.trial != DEFAULT_TRIAL]
            spent = dict(trials=len(searched), runs=sum(len(r.runs) for r in searched),
                         epochs=sum(f.epochs for r in searched for f in r.runs))
            default = next((r for r in results if r.trial == DEFAULT_TRIAL), None)
            if default is not None:
                picks.append(Pick("default", default, **spent))
            best = best_trial(searched, metric)
            if best is not None:
                picks.append(Pick("tuned" if tag.get("budget") else "best", best, **spent))
        seeds = len({f.seed for f in runs})
        out.append(SweepSummary(sid, tag.get("name") or "", tag.get("method") or "?", tag.get("budget"), metric,
                                tag.get("folds"), seeds, tuple(picks), len(trials), len(runs),
                                sum(f.status == "diverged" for f in runs)))
    return out


def _lookup(cfg: dict, path: str) -> Any:
    node: Any = cfg
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def heatmap_table(runs: list, x_key: str, y_key: str, metric: str = "train_cost") -> tuple[list, list, np.ndarray]:
    """A 2-D sweep as a table: sorted x and y values of two config keys, and grid[i, j] the mean final `metric`.

    `runs` are runs.read.Run (read back); the value of a run is the last row of the metrics.csv column `metric`;
    grid has shape (len(ys), len(xs)) (rows are y) and is NaN where no run, or only diverged runs, sit.
    """
    from optbench.runs.columns import COLUMNS

    if metric not in COLUMNS:
        raise OptbenchError(f"--metric: {metric!r} is not a metrics column (accepted: {', '.join(COLUMNS)})")
    cells: dict[tuple, list[float]] = {}
    for r in runs:
        x, y = _lookup(r.config, x_key), _lookup(r.config, y_key)
        if x is None or y is None:
            continue
        col = r.metrics[metric]
        value = float(col[-1]) if len(col) and r.status != "diverged" else math.nan
        cells.setdefault((x, y), []).append(value)
    if not cells:
        raise OptbenchError(f"no run sets both {x_key} and {y_key}")
    xs = sorted({x for x, _ in cells})
    ys = sorted({y for _, y in cells})
    grid = np.full((len(ys), len(xs)), np.nan)
    for (x, y), vals in cells.items():
        finite = [v for v in vals if math.isfinite(v)]
        if finite:
            grid[ys.index(y), xs.index(x)] = float(np.mean(finite))
    return xs, ys, grid
