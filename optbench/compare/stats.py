"""Compare's second stage: Rows per label and config, paired bootstrap against the best, ensembles, health, sweeps."""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from optbench.compare.read import SORT_METRICS, RunFacts, Threshold, _stderr, group_runs, read_facts
from optbench.errors import OptbenchError
from optbench.metrics import METRICS
from optbench.runset.identity import per_replicate

PER_SEED = tuple(METRICS)  # the metrics ranking and paired statistics can use
DEFAULT_METRIC = "final_train_cost"  # without a validation split
DEFAULT_VAL_METRIC = "final_val_cost"  # with one: the delivered model on held-out data, no epoch picked on it
IGNORED_KEYS = ("seed", "label", "name")  # never "what was varied": the label already names the variant
# initial cost / expected cost outside this range is flagged; He init's unit-variance logits give about 2x ln C
INIT_RATIO = (0.5, 3.0)
# median update/weight ratio outside this range is flagged (CS231n: about 1e-3; Adam at lr 7e-4 on a tiny net
# learns well at 5e-5, a 1/t schedule that has decayed to nothing sits near 1e-6)
UPDATE_RATIO = (1e-5, 1e-2)
# a difference whose whole CI lies within this share of the best label's value is a tie: paired, bit-exact seeds
# make a systematic 0.04% gap (EMA momentum behind GD at one lr) "significant", and no user should act on it
NEGLIGIBLE = 0.01
STALLED = 0.9  # not learning: the final training cost is above STALLED x min(initial cost, ln C)
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # a fixed generator: the same runs always print the same intervals


# ---- aggregate ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ensemble:
    """Accuracy of the averaged predicted probabilities of a label's seeds, and their mean single accuracy."""

    acc: float
    single_acc: float
    models: int
    split: str


@dataclass(frozen=True)
class Health:
    """Babysitting checks (CS231n): initial cost vs ln C, update/weight ratio, divergence."""

    initial_ratio: float  # median over seeds of initial cost / expected cost (NaN for regression)
    expected_name: str  # "ln 2", "ln 10", or "" for regression
    update_ratio: float  # median over seeds of each seed's median over epochs
    diverged: int
    flags: tuple[str, ...]  # short, for the table cell
    notes: tuple[str, ...]  # one sentence per flag, for the lines under the table


@dataclass(frozen=True)
class Versus:
    """A label against the best one on one per-seed metric: mean difference, bootstrap CI, win rate."""

    metric: str
    diff: float
    lo: float
    hi: float
    win_rate: float
    n: int  # seeds paired, or seeds of this label when unpaired
    pairing: str  # "paired", "unpaired: ...", "reference", or why there is nothing to say
    verdict: str  # "best", "worse", "better", "tie", "n/a"
    negligible: bool = False  # a tie although the CI excludes 0: all of it within NEGLIGIBLE of the best value


@dataclass(frozen=True)
class Row:
    """One label (and config) aggregated over its seeds."""

    name: str  # the label, with #2, #3 when one label has runs of several configs
    label: str
    config_hash: str
    runs: tuple[RunFacts, ...]  # one per seed, by seed
    reached: tuple[tuple[float, int, int], ...]  # per threshold: (mean epoch over seeds that reached, reached, measured)
    ensemble: Ensemble | None
    health: Health
    versus: Versus | None = None

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(r.seed for r in self.runs))

    @property
    def folds(self) -> int | None:
        """Folds per seed under k-fold cross-validation (None without)."""
        folds = {r.fold for r in self.runs if r.fold is not None}
        return len(folds) if folds else None

    @property
    def split(self) -> str:
        return "/".join(sorted({r.split for r in self.runs}, reverse=True))

    def values(self, metric: str) -> np.ndarray:
        return np.array([r.metric(metric) for r in self.runs], dtype=float)

    def mean(self, metric: str) -> float:
        """The per-label value a column shows and sorting uses: a mean over seeds (or the ensemble accuracy)."""
        if metric == "ensemble_acc":
            return self.ensemble.acc if self.ensemble else math.nan
        v = self.values(metric)
        return math.nan if np.isnan(v).any() else float(v.mean())

    def std(self, metric: str) -> float:
        v = self.values(metric)
        return float(v.std(ddof=1)) if len(v) > 1 and np.isfinite(v).all() else math.nan

    def status(self) -> str:
        """`5 ok`, `3 ok, 2 diverged at epochs 12, 40`."""
        words = {"completed": "ok", "diverged": "diverged", "stopped_early": "stopped early", "interrupted": "interrupted"}
        parts = []
        for st, word in words.items():
            ep = [r.epochs for r in self.runs if r.status == st]
            if ep and st == "completed":
                parts.append(f"{len(ep)} ok")
            elif ep:
                parts.append(f"{len(ep)} {word} at epoch{'s' if len(ep) > 1 else ''} {', '.join(map(str, ep))}")
        return ", ".join(parts)


def _reach(runs: Sequence[RunFacts], i: int) -> tuple[float, int, int]:
    got = [r.reached[i] for r in runs if r.reached[i] is not None]
    hit = [e for e in got if not math.isnan(e)]
    return (float(np.mean(hit)) if hit else math.nan, len(hit), len(got))


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    """Share of correct predictions: p (N, 1) sigmoid probabilities (> 0.5 as the engine counts) or (N, C) softmax."""
    pred = (p[:, 0] > 0.5).astype(np.int64) if p.shape[1] == 1 else p.argmax(axis=1)
    return float(np.mean(pred == y))


def ensemble(runs: Sequence[RunFacts], warn: Callable[[str], None], cache=None) -> Ensemble | None:
    """Average the seeds' predicted probabilities on the validation split (training set when none); None to skip.
    The data is rebuilt through `cache` (a DataCache: once for all the labels that share it)."""
    from optbench.datacache import DataCache
    from optbench.predict import load_predictor, run_data

    cache = DataCache() if cache is None else cache
    if len(runs) < 2 or runs[0].config.get("loss") not in ("bce", "softmax_ce"):
        return None
    if any(r.fold is not None for r in runs):
        return None  # each fold validates on other examples, and its model trained on the others' validation parts
    # a diverged run's weights are what blew up, and a run without params.npz has nothing to predict with
    members = [r for r in runs if r.status != "diverged" and (r.path / "params.npz").is_file()]
    if len(members) < 2:
        return None
    try:
        data = run_data(members[0].path, cache=cache)  # the seeds of a label share the data: it has its own seed
    except (OptbenchError, OSError, KeyError, ValueError) as err:
        warn(f"warning: {members[0].path}: cannot rebuild the data for the ensemble ({err})")
        return None
    ds = data.val if data.val is not None else data.train
    X = ds.X if data.mean is None else ds.X * data.std + data.mean  # predictors take raw features
    probs = []
    for r in members:
        try:
            p = load_predictor(r.path, cache=cache)(X)
        except (OptbenchError, OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
            warn(f"warning: {r.path}: params.npz unusable ({err.__class__.__name__}); left out of the ensemble")
            continue
        if np.isfinite(p).all():
            probs.append(p)
    if len(probs) < 2:
        return None
    single = float(np.mean([_accuracy(p, ds.y) for p in probs]))
    return Ensemble(_accuracy(np.mean(probs, axis=0), ds.y), single, len(probs), "val" if data.val is not None else "train")


def health(runs: Sequence[RunFacts]) -> Health:
    """Flag a cost that never left its start (or ln C), an initial cost far from ln C, an update/weight ratio
    far from 1e-3, and divergence. A 2-D test function is a point, not a net: only the first and the last."""
    # the median seed: one unlucky draw of initial weights is not a property of the label
    problem = any(r.problem for r in runs)
    ratios = [r.initial_cost / r.expected_cost for r in runs if r.expected_cost and not problem]
    init = float(np.median(ratios)) if ratios else math.nan
    expected = next((r.expected_cost for r in runs if r.expected_cost), None)
    name = "" if expected is None else f"ln {round(math.exp(expected))}"
    per_seed = [r.update_ratio for r in runs if not math.isnan(r.update_ratio) and not problem]
    upd = float(np.median(per_seed)) if per_seed else math.nan
    div = [r.epochs for r in runs if r.status == "diverged"]
    flags, notes = [], []
    stalled = [r.final_train_cost / _start(r) for r in runs if r.status != "diverged" and r.epochs > 0 and _start(r) > 0]
    if stalled and float(np.median(stalled)) > STALLED:
        level = "its initial value" + (f" or {name}" if name else "")
        flags.append("not learning")
        notes.append(f"final training cost (median seed) is {float(np.median(stalled)):.3g}x the lower of {level}: "
                     "the net has not learned (dead or collapsed activations, or a learning rate far too small)")
    if not math.isnan(init) and not INIT_RATIO[0] <= init <= INIT_RATIO[1]:
        flags.append(f"init cost {init:.2g}x {name}")
        why = ("weights too large: saturated or overconfident outputs" if init > 1
               else "far below chance: check the labels and the loss")
        notes.append(f"initial cost (median seed) is {init:.2g}x the expected {expected:.3g} = {name}: {why}")
    if not math.isnan(upd) and not UPDATE_RATIO[0] <= upd <= UPDATE_RATIO[1]:
        flags.append(f"update ratio {upd:.1e}")
        lr = "too high" if upd > UPDATE_RATIO[1] else "too low"
        notes.append(f"median update/weight ratio {upd:.1e}, about 1e-3 is healthy: learning rate likely {lr}")
    if div:
        flags.append(f"{len(div)}/{len(runs)} diverged")
        notes.append(f"diverged at epoch{'s' if len(div) > 1 else ''} {', '.join(map(str, div))}: "
                     "the cost exploded (lower the learning rate)")
    return Health(init, name, upd, len(div), tuple(flags), tuple(notes))


def _start(r: RunFacts) -> float:
    """What "not learning" compares the final cost with: the initial cost, or ln C when that is lower."""
    return min(r.initial_cost, r.expected_cost) if r.expected_cost and not r.problem else r.initial_cost


def _bootstrap(x: np.ndarray, ref: np.ndarray, paired: bool) -> tuple[float, float]:
    """95% percentile bootstrap CI of mean(x) - mean(ref), resampling seeds (pairs when paired)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    if paired:
        d = x - ref
        means = d[rng.integers(0, len(d), (RESAMPLES, len(d)))].mean(axis=1)
    else:
        means = (x[rng.integers(0, len(x), (RESAMPLES, len(x)))].mean(axis=1)
                 - ref[rng.integers(0, len(ref), (RESAMPLES, len(ref)))].mean(axis=1))
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _pairs(row: Row, ref: Row) -> tuple[list[int], str]:
    """Shared seeds (and folds), if every one of them started from the same weights and saw the same batches."""
    mine = {r.replicate: r.fingerprints for r in row.runs}
    theirs = {r.replicate: r.fingerprints for r in ref.runs}
    shared = sorted(set(mine) & set(theirs))
    if not shared:
        return [], "unpaired: no shared seeds"
    if any(mine[s] is None or mine[s] != theirs[s] for s in shared):
        return [], "unpaired: fingerprints differ"
    return shared, "paired"


def versus(row: Row, ref: Row, metric: str) -> Versus:
    """`row` against the best row on `metric`: paired over shared seeds when fingerprints agree, else unpaired."""
    if row is ref:
        return Versus(metric, 0.0, 0.0, 0.0, math.nan, len(row.runs), "reference", "best")
    if len(row.runs) < 2 or len(ref.runs) < 2:
        return Versus(metric, math.nan, math.nan, math.nan, math.nan, len(row.runs), "n/a: one seed", "n/a")
    shared, pairing = _pairs(row, ref)
    if len(shared) == 1:
        shared, pairing = [], "unpaired: one shared seed"
    paired = bool(shared)
    pick = lambda r: np.array([f.metric(metric) for f in r.runs if not paired or f.replicate in shared], dtype=float)  # noqa: E731
    x, y = pick(row), pick(ref)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return Versus(metric, math.nan, math.nan, math.nan, math.nan, len(x), pairing + "; non-finite values", "n/a")
    sign = SORT_METRICS[metric]
    # better > 0: this label beats the best on that seed (paired) or on that pair of seeds (unpaired)
    better = sign * (y - x) if paired else sign * (y[None, :] - x[:, None])
    win = float(np.mean((better > 0) + 0.5 * (better == 0)))
    lo, hi = _bootstrap(x, y, paired)
    diff = float(np.mean(x - y)) if paired else float(x.mean() - y.mean())
    tol = 1e-12 * max(float(np.abs(y).max()), 1e-300)  # float noise between batched replicas is not a difference
    negligible = max(abs(lo), abs(hi)) < NEGLIGIBLE * abs(float(y.mean()))
    if (lo > tol or hi < -tol) and not negligible:
        verdict = "worse" if sign * diff > 0 else "better"
    else:
        verdict = "tie"
    return Versus(metric, diff, lo, hi, win, len(x), pairing, verdict, negligible and (lo > tol or hi < -tol))


def aggregate(groups, thresholds: Sequence[Threshold], warn: Callable[[str], None]) -> list[Row]:
    """One Row per (label, config) group."""
    from optbench.datacache import DataCache

    cache = DataCache()  # labels on the same data rebuild it once
    return [
        Row(name, runs[0].label, key, tuple(runs),
            tuple(_reach(runs, i) for i in range(len(thresholds))), ensemble(runs, warn, cache), health(runs))
        for name, key, runs in groups
    ]


def _order(rows: list[Row], sort: str | None) -> list[Row]:
    """Label order, or best first by a metric (rows without a value last)."""
    if sort in (None, "label"):
        return sorted(rows, key=lambda r: r.name)
    sign = SORT_METRICS[sort]
    return sorted(rows, key=lambda r: (math.isnan(r.mean(sort)), sign * r.mean(sort) if not math.isnan(r.mean(sort)) else 0))


@dataclass(frozen=True)
class Comparison:
    """Everything compare shows: rows, the options that shaped them, what was varied."""

    rows: list[Row]
    thresholds: tuple[Threshold, ...]
    metric: str  # of the paired statistics
    best: str | None  # name of the reference row
    varied: list[str]  # dotted config keys whose values differ between rows
    n_runs: int
    sweeps: tuple = ()  # sweep.SweepSummary per sweep among the runs; rows then hold only their picked trials


def compare(paths: Sequence[str | Path], *, thresholds: Sequence[Threshold] = (), sort: str | None = None,
            metric: str | None = None, warn: Callable[[str], None] = _stderr) -> Comparison:
    """Read runs and aggregate them into a Comparison (no output but warnings)."""
    facts = read_facts(paths, thresholds, warn)
    losses = sorted({str(f.config.get("loss")) for f in facts})
    if len(losses) > 1:
        warn(f"warning: the runs use different losses ({', '.join(losses)}): their costs are not comparable")
    sweeps, shown = _sweeps(facts)
    rows = _order(aggregate(group_runs(shown, warn), thresholds, warn), sort)
    metric = metric or (sort if sort in PER_SEED else default_metric(shown, sweeps, warn))
    sign = SORT_METRICS[metric]
    ranked = [r for r in rows if not math.isnan(r.mean(metric))]
    ref = min(ranked, key=lambda r: sign * r.mean(metric)) if ranked else None
    if ref is not None:
        rows = [replace(r, versus=versus(r, ref, metric)) for r in rows]
    return Comparison(rows, tuple(thresholds), metric, ref.name if ref else None,
                      varied_keys([flatten(r.runs[0].config) for r in rows]), len(facts), sweeps)


def default_metric(facts: Sequence[RunFacts], sweeps: tuple = (), warn: Callable[[str], None] = _stderr) -> str:
    """The sweeps' selection metric when they share one; else final_val_cost when every run has a validation
    split, final_train_cost when not.

    final, not best, validation cost: the best over epochs is picked on the validation split itself (an
    optimistic score, and kind to a net that overfits after an early minimum); the final one is the model
    the run delivered (params.npz), measured on data it never trained on.
    """
    chosen = {sw.metric for sw in sweeps}
    if len(chosen) == 1:
        return chosen.pop()
    splits = {f.split for f in facts}
    if splits == {"val"}:
        return DEFAULT_VAL_METRIC
    if "val" in splits:
        warn("warning: some runs have no validation split: ranked on final_train_cost (choose with --metric)")
    return DEFAULT_METRIC


# ---- sweeps ---------------------------------------------------------------------------------------


def _sweeps(facts: list[RunFacts]) -> tuple[tuple, list[RunFacts]]:
    """Summaries of the sweeps among the runs, and the runs the tables show: every run not in a sweep, and of
    each sweep only the picked trials (each variant's best, and its defaults under a budget)."""
    from optbench.sweep.results import summarize

    in_sweeps = [f for f in facts if f.sweep is not None]
    if not in_sweeps:
        return (), facts
    sweeps = tuple(summarize(in_sweeps))
    picked = [f for sw in sweeps for p in sw.picks for f in p.result.runs]
    return sweeps, [f for f in facts if f.sweep is None] + picked


# ---- what was varied ----------------------------------------------------------------------------


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"optimizer.lr": 0.01, ...}; seed, label and name left out; null values left out (unset)."""
    out: dict[str, Any] = {}
    for k, v in (cfg if prefix else per_replicate(cfg)).items():
        if not prefix and k in IGNORED_KEYS:
            continue
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif v is not None:
            out[f"{prefix}{k}"] = v
    return out


def _text(v: Any) -> str:
    """A config value as YAML would write it."""
    if v is None:
        return "-"
    if isinstance(v, (bool, list)):
        return json.dumps(v)
    return repr(v) if isinstance(v, float) else str(v)


def varied_keys(flats: list[dict[str, Any]]) -> list[str]:
    """Keys whose values differ between rows, in config order.

    A key missing from a row counts as a different value, unless it belongs to a named section (optimizer,
    init, ...) in that row: adam has no `mu`, and that difference is already shown by optimizer.name.
    """
    keys = list(dict.fromkeys(k for f in flats for k in f))
    out = []
    for k in keys:
        named = f"{k.rpartition('.')[0]}.name"
        values = {_text(f[k]) if k in f else None for f in flats if k in f or named not in f}
        if len(values) > 1:
            out.append(k)
    return out
