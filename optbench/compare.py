"""`optbench compare`: one row per label, aggregated over seeds, with paired statistics against the best label.

Data flows one way: read (run directories -> RunFacts) -> aggregate (RunFacts grouped by label and config
-> Row) -> render (Rows -> rich table, plain text, markdown, csv, json or latex). Only `compare_command` prints.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import sys
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from optbench.errors import OptbenchError
from optbench.runs import COLUMNS, CorruptRun, Run, find_run_dirs, read_run

FORMATS = ("table", "markdown", "csv", "json", "latex")
# per-label metric -> +1 when lower is better, -1 when higher is better (label: alphabetical)
SORT_METRICS = {"final_train_cost": 1, "best_cost": 1, "best_acc": -1, "auc": 1, "seconds": 1, "ensemble_acc": -1, "label": 0}
PER_SEED = ("final_train_cost", "best_cost", "best_acc", "auc", "seconds")  # the metrics paired statistics can use
DEFAULT_METRIC = "final_train_cost"
THRESHOLD_METRICS = tuple(c for c in COLUMNS if c != "epoch")
IGNORED_KEYS = ("seed", "label", "name")  # never "what was varied": the label already names the variant
INIT_RATIO = (0.5, 2.0)  # initial cost / expected cost outside this range is flagged
UPDATE_RATIO = (1e-4, 1e-2)  # median update/weight ratio outside this range is flagged (CS231n: about 1e-3)
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # a fixed generator: the same runs always print the same intervals


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


# ---- options ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """`--threshold METRIC=VALUE`: the first epoch at which METRIC <= VALUE (>= for accuracies)."""

    metric: str
    value: float

    @property
    def op(self) -> str:
        return ">=" if self.metric.endswith("acc") else "<="

    @property
    def name(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def first_epoch(self, metrics: dict[str, np.ndarray]) -> float | None:
        """The epoch, NaN when never reached, None when the run did not measure the metric (no validation split)."""
        col = metrics[self.metric]
        if not np.isfinite(col).any():
            return None
        hit = np.flatnonzero(col >= self.value if self.op == ">=" else col <= self.value)
        return float(metrics["epoch"][hit[0]]) if len(hit) else math.nan


def parse_threshold(text: str) -> Threshold:
    """`train_cost=0.3` -> Threshold; anything else is an OptbenchError naming the option."""
    metric, sep, raw = text.partition("=")
    metric = metric.strip()
    if not sep or metric not in THRESHOLD_METRICS:
        raise OptbenchError(f"--threshold: {text!r} is invalid: expected METRIC=VALUE with METRIC one of "
                            f"{', '.join(THRESHOLD_METRICS)} (e.g. train_cost=0.3)")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise OptbenchError(f"--threshold: {text!r} is invalid: {raw.strip()!r} is not a finite number "
                            "(expected METRIC=VALUE, e.g. train_cost=0.3)")
    return Threshold(metric, value)


def check_options(thresholds: Sequence[str], sort: str | None, fmt: str) -> tuple[Threshold, ...]:
    """Validate the option values before any run is read."""
    if fmt not in FORMATS:
        raise OptbenchError(f"--format: {fmt!r} is not a format (accepted: {', '.join(FORMATS)})")
    if sort is not None and sort not in SORT_METRICS:
        raise OptbenchError(f"--sort: {sort!r} is not a metric (accepted: {', '.join(SORT_METRICS)})")
    return tuple(dict.fromkeys(parse_threshold(t) for t in thresholds))


# ---- read ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What compare needs from one run directory, read once."""

    path: Path
    label: str
    seed: int
    status: str
    epochs: int  # the last epoch logged
    config: dict
    created: str
    split: str  # "val", or "train" when the run has no validation split
    final_train_cost: float
    best_cost: float
    best_cost_epoch: float
    best_acc: float  # NaN for regression
    best_acc_epoch: float
    auc: float
    seconds: float
    initial_cost: float
    expected_cost: float | None  # None for regression
    update_ratio: float  # median over epochs
    fingerprints: tuple[str, str] | None  # (init, batches)
    reached: tuple[float | None, ...]  # per threshold: Threshold.first_epoch
    fold: int | None = None  # data.fold of a k-fold run: (seed, fold) is the replicate
    sweep: dict | None = None  # summary.json's sweep entry: the run is a trial of a sweep

    @property
    def replicate(self) -> tuple[int, int]:
        """What a label aggregates over: seeds, and folds under k-fold cross-validation."""
        return self.seed, -1 if self.fold is None else self.fold


def _best(values: np.ndarray, epochs: np.ndarray, sign: int) -> tuple[float, float]:
    """(best value, its epoch); sign +1 for minimum, -1 for maximum; NaN when nothing was measured."""
    if np.isnan(values).all():
        return math.nan, math.nan
    i = int(np.nanargmin(sign * values))
    return float(values[i]), float(epochs[i])


def _auc(cost: np.ndarray, epochs: np.ndarray) -> float:
    """Mean train cost over epochs 0..E: trapezoid area / E (a run logged only at epoch 0 gives its cost)."""
    span = epochs[-1] - epochs[0]
    if span <= 0:
        return float(cost[0])
    if not np.isfinite(cost).all():
        return math.inf
    return float(np.trapezoid(cost, epochs) / span)


def _check_rows(run: Run) -> None:
    """metrics.csv must hold epochs 0..E, E as summary.json says: a file cut at a row boundary parses cleanly."""
    ep = run.metrics["epoch"]
    if ep[0] != 0 or not np.array_equal(ep, np.arange(len(ep))):
        raise CorruptRun(f"{run.path}: metrics.csv epochs are not 0, 1, 2, ...")
    said = run.summary.get("epochs")
    # an interrupt can land after an epoch's row is written but before the loop counts it: no check then
    if isinstance(said, int) and said != int(ep[-1]) and run.status != "interrupted":
        raise CorruptRun(f"{run.path}: metrics.csv ends at epoch {int(ep[-1])} but summary.json says {said} (truncated?)")


def run_facts(run: Run, thresholds: Sequence[Threshold]) -> RunFacts:
    """Per-run numbers, from metrics.csv (status, fingerprints and expectations from summary.json)."""
    s, m = run.summary, run.metrics
    if run.status == "failed":
        raise CorruptRun(f"{run.path}: status failed ({s.get('reason') or 'no reason given'})")
    _check_rows(run)
    ep = m["epoch"]
    cost = np.where(np.isnan(m["train_cost"]), np.inf, m["train_cost"])  # a NaN cost means the run blew up: rank it last
    split = "val" if np.isfinite(m["val_cost"]).any() else "train"
    best_cost, best_cost_epoch = _best(m[f"{split}_cost"], ep, 1)
    best_acc, best_acc_epoch = _best(m[f"{split}_acc"], ep, -1)
    ratio = m["update_ratio"][np.isfinite(m["update_ratio"])]
    fp = s.get("fingerprints")
    fps = (str(fp["init"]), str(fp["batches"])) if isinstance(fp, dict) and fp.get("init") and fp.get("batches") else None
    expected = (s.get("initial") or {}).get("expected_cost")
    return RunFacts(
        path=run.path, label=str(run.label), seed=run.seed, status=run.status, epochs=int(ep[-1]), config=run.config,
        created=str(s.get("created") or ""), split=split, final_train_cost=float(cost[-1]),
        best_cost=best_cost, best_cost_epoch=best_cost_epoch, best_acc=best_acc, best_acc_epoch=best_acc_epoch,
        auc=_auc(cost, ep), seconds=float(m["seconds"][-1]), initial_cost=float(cost[0]),
        expected_cost=float(expected) if isinstance(expected, (int, float)) and expected > 0 else None,
        update_ratio=float(np.median(ratio)) if len(ratio) else math.nan, fingerprints=fps,
        reached=tuple(t.first_epoch(m) for t in thresholds), fold=_fold(run.config),
        sweep=s["sweep"] if isinstance(s.get("sweep"), dict) and s["sweep"].get("id") else None,
    )


def _fold(cfg: dict) -> int | None:
    data = cfg.get("data")
    fold = data.get("fold") if isinstance(data, dict) else None
    return fold if isinstance(fold, int) else None


def _with_sweeps(dirs: list[Path]) -> list[Path]:
    """A sweep directory (it holds sweep.json) found among run directories stands for the runs inside it."""
    out: list[Path] = []
    for d in dirs:
        out.extend(find_run_dirs([d]) if (d / "sweep.json").is_file() and not (d / "summary.json").exists() else [d])
    return out


def read_facts(paths: Sequence[str | Path], thresholds: Sequence[Threshold], warn: Callable[[str], None]) -> list[RunFacts]:
    """Every readable run under `paths`; each unreadable one costs one warning line, never the command."""
    dirs: dict[Path, Path] = {}  # resolved -> as named: read each run once, show paths as the user wrote them
    for p in paths:
        try:
            for d in _with_sweeps(find_run_dirs([p])):
                dirs.setdefault(d.resolve(), d)
        except OptbenchError as err:
            warn(f"warning: {err}")
    out = []
    for d in dirs.values():
        try:
            out.append(run_facts(read_run(d), thresholds))
        except CorruptRun as err:
            warn(f"warning: {err}")
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:  # valid files, unexpected content
            warn(f"warning: {d}: unexpected content ({err.__class__.__name__}: {err})")
    return out


# ---- group and aggregate ------------------------------------------------------------------------


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
        return np.array([getattr(r, metric) for r in self.runs], dtype=float)

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


def config_key(cfg: dict) -> str:
    """A short hash of the config minus the seed (and data.fold): runs of one label with different settings must not merge."""
    cfg = {k: v for k, v in cfg.items() if k != "seed"}
    if isinstance(cfg.get("data"), dict):
        cfg["data"] = {k: v for k, v in cfg["data"].items() if k != "fold"}  # folds aggregate as seeds do
    text = json.dumps(cfg, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _one_per_seed(runs: list[RunFacts], warn: Callable[[str], None]) -> list[RunFacts]:
    """The newest run of each seed (and fold) (a rerun of the same config); the older ones are named in a warning."""
    chosen: dict[tuple[int, int], RunFacts] = {}
    for r in sorted(runs, key=lambda r: (r.created, r.path.name), reverse=True):
        if r.replicate in chosen:
            what = f"seed {r.seed}" + ("" if r.fold is None else f" fold {r.fold}")
            warn(f"warning: {r.path}: {what} of {r.label} also in {chosen[r.replicate].path} "
                 "with the same config; using the newer run")
        else:
            chosen[r.replicate] = r
    return [chosen[s] for s in sorted(chosen)]


def group_runs(facts: list[RunFacts], warn: Callable[[str], None]) -> list[tuple[str, str, list[RunFacts]]]:
    """(row name, config hash, runs) per label and config, labels alphabetical, configs oldest first."""
    by: dict[tuple[str, str], list[RunFacts]] = {}
    for f in facts:
        by.setdefault((f.label, config_key(f.config)), []).append(f)
    out = []
    for label in sorted({lab for lab, _ in by}):
        keys = sorted((k for lab, k in by if lab == label), key=lambda k: min((r.created, r.path.name) for r in by[label, k]))
        if len(keys) > 1:
            names = ", ".join([label] + [f"{label}#{i}" for i in range(2, len(keys) + 1)])
            warn(f"warning: {label}: runs from {len(keys)} different configs; shown as separate rows {names}")
        for i, k in enumerate(keys):
            out.append((label if i == 0 else f"{label}#{i + 1}", k, _one_per_seed(by[label, k], warn)))
    return out


def _reach(runs: Sequence[RunFacts], i: int) -> tuple[float, int, int]:
    got = [r.reached[i] for r in runs if r.reached[i] is not None]
    hit = [e for e in got if not math.isnan(e)]
    return (float(np.mean(hit)) if hit else math.nan, len(hit), len(got))


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    """Share of correct predictions: p (N, 1) sigmoid probabilities (> 0.5 as the engine counts) or (N, C) softmax."""
    pred = (p[:, 0] > 0.5).astype(np.int64) if p.shape[1] == 1 else p.argmax(axis=1)
    return float(np.mean(pred == y))


def ensemble(runs: Sequence[RunFacts], warn: Callable[[str], None]) -> Ensemble | None:
    """Average the seeds' predicted probabilities on the validation split (training set when none); None to skip."""
    from optbench.predict import load_predictor, run_data

    if len(runs) < 2 or runs[0].config.get("loss") not in ("bce", "softmax_ce"):
        return None
    if any(r.fold is not None for r in runs):
        return None  # each fold validates on other examples, and its model trained on the others' validation parts
    # a diverged run's weights are what blew up, and a run without params.npz has nothing to predict with
    members = [r for r in runs if r.status != "diverged" and (r.path / "params.npz").is_file()]
    if len(members) < 2:
        return None
    try:
        data = run_data(members[0].path)  # the seeds of a label share the data: it has its own seed
    except (OptbenchError, OSError, KeyError, ValueError) as err:
        warn(f"warning: {members[0].path}: cannot rebuild the data for the ensemble ({err})")
        return None
    ds = data.val if data.val is not None else data.train
    X = ds.X if data.mean is None else ds.X * data.std + data.mean  # predictors take raw features
    probs = []
    for r in members:
        try:
            p = load_predictor(r.path)(X)
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
    """Flag an initial cost far from ln C, an update/weight ratio far from 1e-3, and divergence."""
    # the median seed: one unlucky draw of initial weights is not a property of the label
    ratios = [r.initial_cost / r.expected_cost for r in runs if r.expected_cost]
    init = float(np.median(ratios)) if ratios else math.nan
    expected = next((r.expected_cost for r in runs if r.expected_cost), None)
    name = "" if expected is None else f"ln {round(math.exp(expected))}"
    per_seed = [r.update_ratio for r in runs if not math.isnan(r.update_ratio)]
    upd = float(np.median(per_seed)) if per_seed else math.nan
    div = [r.epochs for r in runs if r.status == "diverged"]
    flags, notes = [], []
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
    pick = lambda r: np.array([getattr(f, metric) for f in r.runs if not paired or f.replicate in shared], dtype=float)  # noqa: E731
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
    if lo > tol or hi < -tol:
        verdict = "worse" if sign * diff > 0 else "better"
    else:
        verdict = "tie"
    return Versus(metric, diff, lo, hi, win, len(x), pairing, verdict)


def aggregate(groups, thresholds: Sequence[Threshold], warn: Callable[[str], None]) -> list[Row]:
    """One Row per (label, config) group."""
    return [
        Row(name, runs[0].label, key, tuple(runs),
            tuple(_reach(runs, i) for i in range(len(thresholds))), ensemble(runs, warn), health(runs))
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
            warn: Callable[[str], None] = _stderr) -> Comparison:
    """Read runs and aggregate them into a Comparison (no output but warnings)."""
    facts = read_facts(paths, thresholds, warn)
    losses = sorted({str(f.config.get("loss")) for f in facts})
    if len(losses) > 1:
        warn(f"warning: the runs use different losses ({', '.join(losses)}): their costs are not comparable")
    sweeps, shown = _sweeps(facts)
    rows = _order(aggregate(group_runs(shown, warn), thresholds, warn), sort)
    metric = sort if sort in PER_SEED else DEFAULT_METRIC
    sign = SORT_METRICS[metric]
    ranked = [r for r in rows if not math.isnan(r.mean(metric))]
    ref = min(ranked, key=lambda r: sign * r.mean(metric)) if ranked else None
    if ref is not None:
        rows = [replace(r, versus=versus(r, ref, metric)) for r in rows]
    return Comparison(rows, tuple(thresholds), metric, ref.name if ref else None,
                      varied_keys([flatten(r.runs[0].config) for r in rows]), len(facts), sweeps)


# ---- sweeps ---------------------------------------------------------------------------------------


def _sweeps(facts: list[RunFacts]) -> tuple[tuple, list[RunFacts]]:
    """Summaries of the sweeps among the runs, and the runs the tables show: every run not in a sweep, and of
    each sweep only the picked trials (each variant's best, and its defaults under a budget)."""
    from optbench.sweep import summarize

    in_sweeps = [f for f in facts if f.sweep is not None]
    if not in_sweeps:
        return (), facts
    sweeps = tuple(summarize(in_sweeps))
    picked = [f for sw in sweeps for p in sw.picks for f in p.result.runs]
    return sweeps, [f for f in facts if f.sweep is None] + picked


def _pick_of(c: Comparison, row: Row):
    """(sweep summary, pick) a row shows, or (None, None) for runs outside sweeps."""
    tag = row.runs[0].sweep
    for sw in c.sweeps if tag else ():
        for p in sw.picks:
            if sw.id == tag["id"] and (p.result.variant, p.result.trial) == (tag.get("variant"), tag.get("trial")):
                return sw, p
    return None, None


def sweep_title(sw) -> str:
    how = f"random search, budget {sw.budget} trials per variant" if sw.budget else f"{sw.method} search"
    over = f"{sw.seeds} seeds" + (f" x {sw.folds} folds" if sw.folds else "")
    return (f"sweep {sw.name}-{sw.id}: {how}, {sw.n_trials} trials over {over}, {sw.n_runs} runs"
            f" ({sw.diverged} diverged); trials ranked by {_sweep_metric_name(sw)}, mean over {over}")


def _sweep_metric_name(sw) -> str:
    """`best val cost` when every run has a validation split (`best train cost` when none has)."""
    name = METRIC_NAMES.get(sw.metric, sw.metric)
    splits = {f.split for p in sw.picks for f in p.result.runs}
    return name.replace("best ", f"best {splits.pop()} ") if sw.metric.startswith("best_") and len(splits) == 1 else name


def sweep_columns(sw) -> list[Column]:
    """One row per pick: the variant, default or tuned, the trial's hyperparameters, its metric, the budget spent."""
    picks = sw.picks
    keys = list(dict.fromkeys(k for p in picks for k in p.result.params))
    sign = SORT_METRICS[sw.metric]
    fmt = _pct if sw.metric == "best_acc" else _num

    def value(p) -> str:
        r = p.result
        spread = "" if math.isnan(r.std) else f" ± {_pct(r.std) if sw.metric == 'best_acc' else _num(r.std, 2)}"
        return "-" if math.isnan(r.mean) else fmt(r.mean) + spread

    def param(p, k) -> str:
        v = p.result.params.get(k, flatten(p.result.runs[0].config).get(k))
        return _num(v) if isinstance(v, float) else _text(v)

    return [
        Column("variant", [str(p.result.variant or "-") for p in picks], "l"),
        Column("setting", [p.role for p in picks], "l"),
        Column("trial", [p.result.trial for p in picks], "l"),
        *(Column(k, [param(p, k) for p in picks]) for k in keys),
        Column(_sweep_metric_name(sw), [value(p) for p in picks], "r",
               _best_rows([None if math.isnan(p.result.mean) else (sign * p.result.mean,) for p in picks])),
        Column("runs", [str(len(p.result.runs)) for p in picks]),
        Column("diverged", [str(p.result.diverged) for p in picks]),
        Column("budget spent", ["-" if p.role == "default" else f"{p.trials} trials, {p.runs} runs, {p.epochs} epochs"
                                for p in picks], "l"),
    ]


def sweep_notes(c: Comparison) -> list[str]:
    if not c.sweeps:
        return []
    return ["sweep tables: each variant's best trial (tuned, under a budget) and, with a budget, the variant at its "
            "defaults as the config writes them; a trial that diverged on any seed or fold ranks after all that did not; "
            "budget spent: the searched trials (defaults not counted), their runs and the epochs they trained. "
            "The label tables show only these trials of each sweep."]


def _sweep_record(c: Comparison, row: Row) -> dict | None:
    sw, p = _pick_of(c, row)
    if p is None:
        return None
    return {"id": sw.id, "name": sw.name, "variant": p.result.variant, "trial": p.result.trial, "setting": p.role,
            "params": p.result.params, "metric": sw.metric, "metric_mean": _json_number(p.result.mean),
            "metric_std": _json_number(p.result.std), "budget_trials": p.trials, "budget_runs": p.runs,
            "budget_epochs": p.epochs}


# ---- what was varied ----------------------------------------------------------------------------


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"optimizer.lr": 0.01, ...}; seed, label and name left out; null values left out (unset)."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
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


# ---- render -------------------------------------------------------------------------------------


METRIC_NAMES = {"final_train_cost": "final train cost", "best_cost": "best cost", "best_acc": "best accuracy",
                "auc": "AUC", "seconds": "seconds"}


@dataclass(frozen=True)
class Column:
    """One column of a text table: header, cell texts, alignment, and which rows hold its best value."""

    header: str
    cells: list[str]
    align: str = "r"
    best: frozenset[int] = frozenset()


def _best_rows(scores: list[tuple]) -> frozenset[int]:
    """Rows with the smallest score (None: no score); nothing when every row ties or there is one row."""
    valid = [s for s in scores if s is not None]
    if len(valid) < 2 or len(set(valid)) == 1:
        return frozenset()
    top = min(valid)
    return frozenset(i for i, s in enumerate(scores) if s == top)


def _metric_column(header: str, rows: list[Row], text: Callable[[Row], str], value: Callable[[Row], float], sign: int) -> Column:
    scores = [None if math.isnan(value(r)) else (sign * value(r),) for r in rows]
    return Column(header, [text(r) for r in rows], "r", _best_rows(scores))


def _num(x: float, digits: int = 4) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{digits}g}"


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1%}"


def _best_cell(r: Row, kind: str, mixed: bool) -> str:
    value = r.mean(f"best_{kind}")
    if math.isnan(value):
        return "-"
    epoch = float(np.median(r.values(f"best_{kind}_epoch")))
    where = f", {r.split}" if mixed else ""
    return f"{_pct(value) if kind == 'acc' else _num(value)} (ep {epoch:g}{where})"


def results_columns(c: Comparison) -> list[Column]:
    """The main table: what each label reached."""
    rows = c.rows
    splits = {r.split for r in rows}
    mixed = len(splits) > 1
    split = "" if mixed else f"{splits.pop()} " if splits else ""
    cols = [Column("label", [r.name for r in rows], "l")]
    cols += [Column(k, [_text(flatten(r.runs[0].config).get(k)) for r in rows], "l") for k in c.varied]
    cols += [Column("seeds", [_seeds_cell(r) for r in rows]), Column("status", [r.status() for r in rows], "l")]
    cols.append(_metric_column(
        "final train cost", rows, lambda r: _num(r.mean("final_train_cost")) + (f" ± {_num(r.std('final_train_cost'), 2)}"
                                                                                if len(r.runs) > 1 else ""),
        lambda r: r.mean("final_train_cost"), 1))
    cols.append(_metric_column(f"best {split}cost", rows, lambda r: _best_cell(r, "cost", mixed), lambda r: r.mean("best_cost"), 1))
    cols.append(_metric_column(f"best {split}acc", rows, lambda r: _best_cell(r, "acc", mixed), lambda r: r.mean("best_acc"), -1))
    for i, t in enumerate(c.thresholds):
        def text(r, i=i):
            mean, hit, got = r.reached[i]
            return "-" if not got else f"{_num(mean, 3)} ({hit}/{got})"
        scores = [(-r.reached[i][1], r.reached[i][0]) if r.reached[i][1] else None for r in rows]
        cols.append(Column(f"epochs to {t.name}", [text(r) for r in rows], "r", _best_rows(scores)))
    cols.append(_metric_column("AUC", rows, lambda r: _num(r.mean("auc")), lambda r: r.mean("auc"), 1))
    cols.append(_metric_column("seconds", rows, lambda r: _num(r.mean("seconds"), 3), lambda r: r.mean("seconds"), 1))
    return cols


def _seeds_cell(r: Row) -> str:
    return str(len(r.runs)) if r.folds is None else f"{len(r.seeds)} x {r.folds} folds"


def _versus_cells(v: Versus | None) -> tuple[str, str, str, str, str]:
    """(difference, 95% CI, win rate, verdict, pairing) cells."""
    if v is None:
        return "-", "-", "-", "-", "-"
    if v.verdict == "best":
        return "0", "reference", "-", "best", "-"
    if v.verdict == "n/a":
        return "n/a", "n/a", "n/a", "n/a", v.pairing.removeprefix("n/a: ")
    f = (lambda x: f"{x:+.1%}") if v.metric == "best_acc" else (lambda x: f"{x:+.3g}")
    verdict = "tie (CI includes 0)" if v.verdict == "tie" else f"{v.verdict} (CI excludes 0)"
    pairing = f"paired, {v.n} seeds" if v.pairing == "paired" else v.pairing
    return f(v.diff), f"[{f(v.lo)}, {f(v.hi)}]", f"{v.win_rate:.0%}", verdict, pairing


def versus_columns(c: Comparison) -> list[Column]:
    """The second table: each label against the best, ensembles, health."""
    rows = c.rows
    cells = [_versus_cells(r.versus) for r in rows]
    ens_split = {r.ensemble.split for r in rows if r.ensemble}
    ens = f" ({ens_split.pop()})" if len(ens_split) == 1 else ""
    return [
        Column("label", [r.name for r in rows], "l"),
        Column(f"Δ {METRIC_NAMES[c.metric]}", [x[0] for x in cells]),
        Column("95% CI", [x[1] for x in cells]),
        Column("win rate", [x[2] for x in cells]),
        Column("verdict", [x[3] for x in cells], "l"),
        Column("pairing", [x[4] for x in cells], "l"),
        _metric_column(f"ensemble acc{ens}", rows,
                       lambda r: "-" if not r.ensemble else f"{_pct(r.ensemble.acc)} ({r.ensemble.models} models"
                       + ("" if ens else f", {r.ensemble.split}") + ")",
                       lambda r: r.ensemble.acc if r.ensemble else math.nan, -1),
        Column("mean single acc", [_pct(r.ensemble.single_acc) if r.ensemble else "-" for r in rows]),
        Column("health", ["ok" if not r.health.flags else "; ".join(r.health.flags) for r in rows], "l"),
    ]


def titles(c: Comparison) -> tuple[str, str]:
    n = len(c.rows)
    first = f"{c.n_runs} runs, {n} label{'s' if n != 1 else ''}"
    return first, f"vs best: {c.best} on {METRIC_NAMES[c.metric]}"


def footnotes(c: Comparison, marker: str) -> list[str]:
    """What each column means: stated once, under the tables."""
    notes = [
        f"{marker}: best in column.",
        "final train cost: the last epoch's mean training cost, mean ± std over seeds.",
        "best cost/acc: each seed's best value (validation split; training set when none), mean over seeds, "
        "(ep: median epoch it was reached).",
    ]
    if c.thresholds:
        notes.append("epochs to M<=V: first epoch at which M <= V (>= for accuracies), mean over the seeds "
                     "that reached it (reached/seeds that measured it).")
    notes += [
        "AUC: area under the train-cost curve, trapezoid over epochs 0..E divided by E (the mean cost over "
        "training: lower means faster descent), mean over seeds.",
        "seconds: training wall time at each run's last epoch, mean over seeds (runs trained in one group share a clock).",
        f"Δ: the label's {METRIC_NAMES[c.metric]} minus the best label's, paired by seed when the runs share initial "
        f"weights and batches (fingerprints agree), else unpaired; 95% percentile bootstrap CI over seeds "
        f"({RESAMPLES} resamples, fixed seed); win rate: share of seeds on which the label beats the best (ties count half).",
        "ensemble acc: accuracy of the seeds' averaged predicted probabilities (diverged runs left out), "
        "beside the seeds' mean single-model accuracy; classification only.",
        f"health: median initial cost flagged outside {INIT_RATIO[0]:g}x..{INIT_RATIO[1]:g}x the expected ln C (ln 2 for BCE); "
        f"median update/weight ratio flagged outside [{UPDATE_RATIO[0]:g}, {UPDATE_RATIO[1]:g}]; diverged runs counted.",
    ]
    return notes


def health_lines(c: Comparison) -> list[str]:
    """One line per flagged label; nothing when all is well."""
    return [f"health: {r.name}: {'; '.join(r.health.notes)}" for r in c.rows if r.health.notes]


def _plain(columns: list[Column], marker: str = "*") -> str:
    """Aligned text; the best cells end with the marker (others with a space, so digits stay aligned)."""
    cells = [[x + (marker if i in col.best else " " if col.best else "") for i, x in enumerate(col.cells)] for col in columns]
    widths = [max(len(col.header), *(len(x) for x in cs)) if cs else len(col.header) for col, cs in zip(columns, cells)]
    just = lambda s, w, a: s.rjust(w) if a == "r" else s.ljust(w)  # noqa: E731
    lines = ["  ".join(just(col.header, w, col.align) for col, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for i in range(len(columns[0].cells)):
        lines.append("  ".join(just(cs[i], w, col.align) for col, cs, w in zip(columns, cells, widths)).rstrip())
    return "\n".join(lines)


def render_plain(c: Comparison) -> str:
    t1, t2 = titles(c)
    parts = [x for sw in c.sweeps for x in (sweep_title(sw), _plain(sweep_columns(sw)), "")]
    parts += [t1, _plain(results_columns(c)), "", t2, _plain(versus_columns(c)), ""]
    return "\n".join(parts + sweep_notes(c) + footnotes(c, "*") + health_lines(c)) + "\n"


def _md_table(columns: list[Column]) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(col.header) for col in columns) + " |",
             "|" + "|".join("---:" if col.align == "r" else ":---" for col in columns) + "|"]
    for i in range(len(columns[0].cells)):
        lines.append("| " + " | ".join(esc(col.cells[i]) + ("*" if i in col.best else "") for col in columns) + " |")
    return "\n".join(lines)


def render_markdown(c: Comparison) -> str:
    t1, t2 = titles(c)
    parts = [x for sw in c.sweeps for x in (f"**{sweep_title(sw)}**", "", _md_table(sweep_columns(sw)), "")]
    parts += [f"**{t1}**", "", _md_table(results_columns(c)), "", f"**{t2}**", "", _md_table(versus_columns(c)), ""]
    parts += [f"- {n}" for n in sweep_notes(c) + footnotes(c, "\\*")] + [f"- {h}" for h in health_lines(c)]
    return "\n".join(parts) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$"}


def _tex(s: str) -> str:
    out = "".join(_LATEX.get(ch, ch) for ch in s)
    # text-mode < and > print as other glyphs in the default font encoding
    return out.replace("<=", r"$\le$").replace(">=", r"$\ge$").replace("<", "$<$").replace(">", "$>$")


def _tabular(columns: list[Column]) -> str:
    lines = [r"\begin{tabular}{" + "".join(col.align for col in columns) + "}", r"\hline",
             " & ".join(_tex(col.header) for col in columns) + r" \\", r"\hline"]
    for i in range(len(columns[0].cells)):
        cells = [(r"\textbf{%s}" if i in col.best else "%s") % _tex(col.cells[i]) for col in columns]
        lines.append(" & ".join(cells) + r" \\")
    return "\n".join(lines + [r"\hline", r"\end{tabular}"])


def render_latex(c: Comparison) -> str:
    t1, t2 = titles(c)
    notes = [f"% {n}" for n in sweep_notes(c) + footnotes(c, "bold") + health_lines(c)]
    sweeps = [x for sw in c.sweeps for x in (f"% {sweep_title(sw)}", _tabular(sweep_columns(sw)), "")]
    return "\n".join(sweeps + [f"% {t1}", _tabular(results_columns(c)), "", f"% {t2}", _tabular(versus_columns(c)), ""]
                     + notes) + "\n"


def _json_number(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def records(c: Comparison) -> list[dict[str, Any]]:
    """One flat-ish record per row, the same keys for every row; numbers as numbers, null when not available."""
    out = []
    for r in c.rows:
        flat = flatten(r.runs[0].config)
        v, e, h = r.versus, r.ensemble, r.health
        med = lambda k: _json_number(float(np.median(r.values(k))))  # noqa: E731
        out.append({
            "label": r.name, "config_hash": r.config_hash, "varied": {k: flat.get(k) for k in c.varied},
            "seeds": len(r.seeds), "seed_list": list(r.seeds), "folds": r.folds, "status": r.status(),
            "completed": sum(f.status == "completed" for f in r.runs), "diverged": h.diverged,
            "final_train_cost": _json_number(r.mean("final_train_cost")), "final_train_cost_std": _json_number(r.std("final_train_cost")),
            "best_split": r.split, "best_cost": _json_number(r.mean("best_cost")), "best_cost_epoch": med("best_cost_epoch"),
            "best_acc": _json_number(r.mean("best_acc")), "best_acc_epoch": med("best_acc_epoch"),
            "thresholds": [{"metric": t.metric, "op": t.op, "value": t.value, "epochs_mean": _json_number(m), "reached": hit,
                            "measured": got} for t, (m, hit, got) in zip(c.thresholds, r.reached)],
            "auc": _json_number(r.mean("auc")), "seconds": _json_number(r.mean("seconds")),
            "diff_metric": c.metric, "diff_reference": c.best,
            "diff": _json_number(v.diff) if v else None, "diff_ci_low": _json_number(v.lo) if v else None,
            "diff_ci_high": _json_number(v.hi) if v else None, "win_rate": _json_number(v.win_rate) if v else None,
            "verdict": v.verdict if v else None, "pairing": v.pairing if v else None,
            "ensemble_acc": e.acc if e else None, "single_acc": e.single_acc if e else None,
            "ensemble_models": e.models if e else None, "ensemble_split": e.split if e else None,
            "initial_cost_ratio": _json_number(h.initial_ratio), "update_ratio": _json_number(h.update_ratio),
            "health": list(h.flags), "sweep": _sweep_record(c, r),
        })
    return out


def render_json(c: Comparison) -> str:
    return json.dumps(records(c), indent=2) + "\n"


_SWEEP_CSV = ("id", "name", "variant", "trial", "setting", "params", "metric", "metric_mean", "metric_std",
              "budget_trials", "budget_runs", "budget_epochs")


def render_csv(c: Comparison) -> str:
    """records() flattened: varied keys as `config.KEY`, thresholds as `epochs_to[NAME]` and `reached[NAME]`."""
    buf = io.StringIO()
    w = None
    for rec, r in zip(records(c), c.rows):
        row: dict[str, Any] = {}
        for k, val in rec.items():
            if k == "varied":
                row.update({f"config.{key}": x for key, x in val.items()})
            elif k == "sweep":
                if c.sweeps:  # the same columns on every row: empty for runs outside sweeps
                    row.update({f"sweep.{key}": json.dumps(x) if isinstance(x, dict) else x
                                for key, x in (val or dict.fromkeys(_SWEEP_CSV)).items()})
            elif k == "thresholds":
                for t, th in zip(c.thresholds, val):
                    row[f"epochs_to[{t.name}]"] = th["epochs_mean"]
                    row[f"reached[{t.name}]"] = th["reached"]
            elif isinstance(val, list):
                row[k] = " ".join(map(str, val)) if k == "seed_list" else "; ".join(map(str, val))
            else:
                row[k] = val
        if w is None:
            w = csv.DictWriter(buf, fieldnames=list(row), lineterminator="\n")
            w.writeheader()
        w.writerow({k: "" if x is None else x for k, x in row.items()})
    return buf.getvalue()


def render_rich(c: Comparison) -> None:
    """Two rich tables on the terminal, best cells bold green; the notes below."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from optbench.report import console

    con = console()
    tables = [(sweep_title(sw), sweep_columns(sw)) for sw in c.sweeps] + list(zip(titles(c), (results_columns(c), versus_columns(c))))
    for title, cols in tables:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        for j, col in enumerate(cols):
            t.add_column(col.header, justify="right" if col.align == "r" else "left", no_wrap=j == 0)  # labels stay whole
        for i in range(len(cols[0].cells)):
            t.add_row(*(Text(col.cells[i], style="bold green" if i in col.best else "") for col in cols))
        con.print(t)
    for line in sweep_notes(c) + footnotes(c, "bold green") + health_lines(c):
        con.print(Text(line, style="dim" if not line.startswith("health:") else "yellow"))


RENDERERS = {"table": render_plain, "markdown": render_markdown, "csv": render_csv, "json": render_json, "latex": render_latex}


def compare_command(paths: list[str], *, runs_dir: Path = Path("runs"), thresholds: Sequence[str] = (), sort: str | None = None,
                    fmt: str = "table", out: Path | None = None, warn: Callable[[str], None] = _stderr) -> int:
    """Read runs, print (or write to `out`) the comparison in `fmt`; return the exit code (0 if >= 1 run read, 2 if none)."""
    from optbench.report import is_terminal

    ths = check_options(thresholds, sort, fmt)
    where = list(paths) or [runs_dir]
    c = compare(where, thresholds=ths, sort=sort, warn=warn)
    if not c.rows:
        looked = ", ".join(str(Path(p).resolve()) for p in where)
        warn(f"error: no readable runs found (looked in {looked}); train some with `optbench train CONFIG`")
        return 2
    if out is not None:
        Path(out).write_text(RENDERERS[fmt](c))
    elif fmt == "table" and is_terminal():
        render_rich(c)
    else:
        sys.stdout.write(RENDERERS[fmt](c))
    return 0
