"""Compare's first stage: the options, one RunFacts per readable run directory, runs grouped by label and config."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from optbench.errors import OptbenchError
from optbench.metrics import METRICS
from optbench.problems import PROBLEMS
from optbench.runs.columns import COLUMNS
from optbench.runs.read import CorruptRun, Run
from optbench.runset import grouping, reading

from optbench.choices import COMPARE_FORMATS as FORMATS  # defined with the CLI's help (a module without NumPy)
from optbench.choices import SORT_METRICS  # per-label metric -> +1 lower is better, -1 higher (label: alphabetical)
THRESHOLD_METRICS = tuple(c for c in COLUMNS if c != "epoch")


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


def check_options(thresholds: Sequence[str], sort: str | None, fmt: str, metric: str | None = None) -> tuple[Threshold, ...]:
    """Validate the option values before any run is read."""
    if fmt not in FORMATS:
        raise OptbenchError(f"--format: {fmt!r} is not a format (accepted: {', '.join(FORMATS)})")
    if sort is not None and sort not in SORT_METRICS:
        raise OptbenchError(f"--sort: {sort!r} is not a metric (accepted: {', '.join(SORT_METRICS)})")
    if metric is not None and metric not in METRICS:
        hint = " (the test split has no best epoch: use final_test_cost or final_test_acc)" if metric.startswith("best_test") else ""
        raise OptbenchError(f"--metric: {metric!r} is not a per-run metric{hint} (accepted: {', '.join(METRICS)})")
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
    values: dict = field(default_factory=dict)  # every optbench.metrics name (and best_*_epoch) -> float, NaN if unmeasured
    has_test: bool = False  # summary.json's final_eval measured a held-out test split
    problem: bool = False  # a 2-D test function (data: rosenbrock, ...), not a net
    update_us: float = math.nan  # summary.json's update_us_per_step: its update rule's time per step

    @property
    def replicate(self) -> tuple[int, int]:
        """What a label aggregates over: seeds, and folds under k-fold cross-validation."""
        return self.seed, -1 if self.fold is None else self.fold

    def metric(self, name: str) -> float:
        """One per-run metric by name (optbench.metrics.METRICS, or a field such as seconds)."""
        return self.values[name] if name in self.values else float(getattr(self, name))


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
    values = _values(m, s.get("final_eval"), cost)
    fp = s.get("fingerprints")
    fps = (str(fp["init"]), str(fp["batches"])) if isinstance(fp, dict) and fp.get("init") and fp.get("batches") else None
    expected = (s.get("initial") or {}).get("expected_cost")
    if (run.config.get("model") or {}).get("init_from") is not None:
        expected = None  # fine-tuned: it starts from a trained net, not an uninformed one (no init-cost flag)
    return RunFacts(
        path=run.path, label=str(run.label), seed=run.seed, status=run.status, epochs=int(ep[-1]), config=run.config,
        created=str(s.get("created") or ""), split=split, final_train_cost=float(cost[-1]),
        best_cost=best_cost, best_cost_epoch=best_cost_epoch, best_acc=best_acc, best_acc_epoch=best_acc_epoch,
        auc=_auc(cost, ep), seconds=float(m["seconds"][-1]), initial_cost=float(cost[0]),
        expected_cost=float(expected) if isinstance(expected, (int, float)) and expected > 0 else None,
        update_ratio=float(np.median(ratio)) if len(ratio) else math.nan, fingerprints=fps,
        reached=tuple(t.first_epoch(m) for t in thresholds), fold=_fold(run.config),
        sweep=s["sweep"] if isinstance(s.get("sweep"), dict) and s["sweep"].get("id") else None,
        values=values, has_test=not math.isnan(values["final_test_cost"]), problem=_is_problem(run.config),
        update_us=_number(s.get("update_us_per_step")),
    )


def _last(col: np.ndarray, cost: bool) -> float:
    """The last epoch's value; a cost that is NaN there while measured before means the run blew up: +inf."""
    if not np.isfinite(col).any() and not np.isinf(col).any():
        return math.nan
    x = float(col[-1])
    return math.inf if cost and math.isnan(x) else x


def _values(m: dict[str, np.ndarray], final_eval, train_cost: np.ndarray) -> dict[str, float]:
    """final and best of train/val cost/acc from metrics.csv; final test cost/acc from summary.json's final_eval."""
    ep = m["epoch"]
    out: dict[str, float] = {}
    for split in ("train", "val"):
        for kind in ("cost", "acc"):
            col = train_cost if (split, kind) == ("train", "cost") else m[f"{split}_{kind}"]
            out[f"final_{split}_{kind}"] = _last(col, kind == "cost")
            best, epoch = _best(np.where(np.isinf(col), np.nan, col) if kind == "cost" else col, ep, 1 if kind == "cost" else -1)
            out[f"best_{split}_{kind}"], out[f"best_{split}_{kind}_epoch"] = best, epoch
    fe = final_eval if isinstance(final_eval, dict) else {}
    for kind in ("cost", "acc"):
        x = fe.get(f"test_{kind}")
        # the final model's test metrics; a test split whose cost was not finite belongs to a run that blew up
        if kind == "cost" and "test_cost" in fe and not isinstance(x, (int, float)):
            x = math.inf
        out[f"final_test_{kind}"] = float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan
    out["auc"] = _auc(train_cost, ep)
    sharp = m["sharpness"][np.isfinite(m["sharpness"])]  # measured every train.sharpness_every epochs, else NaN
    out["final_sharpness"] = float(sharp[-1]) if len(sharp) else math.nan
    return out


def _is_problem(cfg: dict) -> bool:
    data = cfg.get("data")
    return isinstance(data, dict) and data.get("name") in PROBLEMS.names()


def _number(x) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan


def _fold(cfg: dict) -> int | None:
    data = cfg.get("data")
    fold = data.get("fold") if isinstance(data, dict) else None
    return fold if isinstance(fold, int) else None


def read_facts(paths: Sequence[str | Path], thresholds: Sequence[Threshold], warn: Callable[[str], None]) -> list[RunFacts]:
    """Every readable run under `paths` (through the shared reader, runset.reading.read); each bad one costs one warning."""
    out = []
    for run in reading.read(paths, warn):
        try:
            out.append(run_facts(run, thresholds))
        except CorruptRun as err:
            warn(f"warning: {err}")
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:  # valid files, unexpected content
            warn(f"warning: {run.path}: unexpected content ({err.__class__.__name__}: {err})")
    return out


# ---- group --------------------------------------------------------------------------------------


def group_runs(facts: list[RunFacts], warn: Callable[[str], None]) -> list[tuple[str, str, list[RunFacts]]]:
    """(row name, config hash, runs by seed) per label and config: runset.grouping.group, the same groups plot draws."""
    return [(g.name, g.key, list(g.items)) for g in grouping.group(facts, warn)]
