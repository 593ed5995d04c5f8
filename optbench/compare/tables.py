"""What compare's tables say: one Column of cell texts per header, for the labels, the paired statistics, each sweep."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from optbench.compare.read import SORT_METRICS
from optbench.compare.stats import (INIT_RATIO, NEGLIGIBLE, RESAMPLES, STALLED, UPDATE_RATIO, Comparison, Row, Versus, _text,
                                    default_metric, flatten)
from optbench.metrics import kind_of, metric_name


@dataclass(frozen=True)
class Column:
    """One column of a text table: header, cell texts, alignment, and which rows hold its best value."""

    header: str
    cells: list[str]
    align: str = "r"
    best: frozenset[int] = frozenset()
    wide: bool = False  # low-value on a terminal: shown by `compare --wide` (and in files and machine formats)


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


def _name(c: Comparison, metric: str | None = None) -> str:
    """The header words of a metric; best_cost / best_acc name their split when every row has the same one."""
    splits = {r.split for r in c.rows}
    return metric_name(metric or c.metric, splits.pop() if len(splits) == 1 else None)


def _mean_cell(r: Row, metric: str) -> str:
    """mean ± std over seeds, as % for accuracies."""
    f = _pct if kind_of(metric) == "acc" else _num
    spread = f" ± {f(r.std(metric)) if kind_of(metric) == 'acc' else _num(r.std(metric), 2)}" \
        if len(r.runs) > 1 and not math.isnan(r.std(metric)) else ""
    return "-" if math.isnan(r.mean(metric)) else f(r.mean(metric)) + spread


def _shown(rows: list[Row]) -> list[str]:
    """Final-epoch metrics beyond the fixed columns: validation cost with a validation split, test with a test split."""
    out = ["final_val_cost"] if any(r.split == "val" for r in rows) else []
    if any(f.has_test for r in rows for f in r.runs):
        out += ["final_test_cost"] + (["final_test_acc"] if any(f.config.get("loss") != "mse" for r in rows for f in r.runs)
                                      else [])
    if any(not math.isnan(f.metric("final_sharpness")) for r in rows for f in r.runs):
        out.append("final_sharpness")  # the Hessian's top eigenvalue at the last measured epoch (train.sharpness_every)
    return out


def results_columns(c: Comparison) -> list[Column]:
    """The main table: what each label reached; the ranking metric always among the columns."""
    rows = c.rows
    splits = {r.split for r in rows}
    mixed = len(splits) > 1
    split = "" if mixed else f"{splits.pop()} " if splits else ""
    cols = [Column("label", [r.name for r in rows], "l")]
    cols += [Column(k, [_value(flatten(r.runs[0].config).get(k)) for r in rows], "l") for k in c.varied]
    cols += [Column("seeds", [_seeds_cell(r) for r in rows], wide=all(r.folds is None for r in rows)),  # status counts them
             Column("status", [r.status() for r in rows], "l")]
    cols.append(_metric_column(
        "final train cost", rows, lambda r: _num(r.mean("final_train_cost")) + (f" ± {_num(r.std('final_train_cost'), 2)}"
                                                                                if len(r.runs) > 1 else ""),
        lambda r: r.mean("final_train_cost"), 1))
    extra = _shown(rows)
    if c.metric not in ("final_train_cost", "best_cost", "best_acc", "auc", *extra) and c.metric in SORT_METRICS:
        extra.insert(0, c.metric)
    for m in extra:
        cols.append(_metric_column(metric_name(m), rows, lambda r, m=m: _mean_cell(r, m), lambda r, m=m: r.mean(m), SORT_METRICS[m]))
    cols.append(_metric_column(f"best {split}cost", rows, lambda r: _best_cell(r, "cost", mixed), lambda r: r.mean("best_cost"), 1))
    cols.append(_metric_column(f"best {split}acc", rows, lambda r: _best_cell(r, "acc", mixed), lambda r: r.mean("best_acc"), -1))
    for i, t in enumerate(c.thresholds):
        def text(r, i=i):
            mean, hit, got = r.reached[i]
            return "-" if not got else f"{_num(mean, 3)} ({hit}/{got})"
        scores = [(-r.reached[i][1], r.reached[i][0]) if r.reached[i][1] else None for r in rows]
        cols.append(Column(f"epochs to {t.name}", [text(r) for r in rows], "r", _best_rows(scores)))
    auc = _metric_column("AUC", rows, lambda r: _num(r.mean("auc")), lambda r: r.mean("auc"), 1)
    cols.append(Column(auc.header, auc.cells, auc.align, auc.best, wide=True))
    # a group's wall time, shared by its runs: nothing to rank (a run that diverged early would look fastest)
    cols.append(Column("group s", [_num(r.mean("seconds"), 3) for r in rows], wide=True))
    cols.append(Column("update µs/step", [_num(r.mean("update_us")) for r in rows]))
    return cols


def _value(v) -> str:
    """A config value as a cell: floats to 4 significant digits."""
    return _num(v) if isinstance(v, float) else _text(v)


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
    f = (lambda x: f"{x:+.1%}") if kind_of(v.metric) == "acc" else (lambda x: f"{x:+.3g}")
    verdict = (f"tie (|Δ| < {NEGLIGIBLE:.0%})" if v.negligible else "tie (CI includes 0)" if v.verdict == "tie"
               else f"{v.verdict} (CI excludes 0)")
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
        Column(f"Δ {_name(c)}", [x[0] for x in cells]),
        Column("95% CI", [x[1] for x in cells]),
        Column("win rate", [x[2] for x in cells]),
        Column("verdict", [x[3] for x in cells], "l"),
        Column("pairing", [x[4] for x in cells], "l"),
        _metric_column(f"ensemble acc{ens}", rows,
                       lambda r: "-" if not r.ensemble else f"{_pct(r.ensemble.acc)} ({r.ensemble.models} models"
                       + ("" if ens else f", {r.ensemble.split}") + ")",
                       lambda r: r.ensemble.acc if r.ensemble else math.nan, -1),
        Column("mean single acc", [_pct(r.ensemble.single_acc) if r.ensemble else "-" for r in rows], wide=True),
        Column("health", ["ok" if not r.health.flags else "; ".join(r.health.flags) for r in rows], "l"),
    ]


def titles(c: Comparison) -> tuple[str, str]:
    n = len(c.rows)
    first = f"{c.n_runs} runs, {n} label{'s' if n != 1 else ''}"
    return f"{first}; ranked on {_name(c)}", f"vs best: {c.best} on {_name(c)}"


def footnotes(c: Comparison, marker: str) -> list[str]:
    """What each column means: stated once, under the tables."""
    notes = [
        f"{marker}: best in column.",
        f"ranked and paired on {_name(c)} ({c.metric}): {_why(c)}.",
        "final train cost: the last epoch's mean training cost, mean ± std over seeds.",
        "best cost/acc: each seed's best value (validation split; training set when none), mean over seeds, "
        "(ep: median epoch it was reached).",
    ]
    if "final_val_cost" in _shown(c.rows):
        notes.append("final val cost: the last epoch's validation cost (the delivered model), mean ± std over seeds.")
    if "final_sharpness" in _shown(c.rows):
        notes.append("final sharpness: the top eigenvalue of the training cost's Hessian at the last measured epoch "
                     "(train.sharpness_every; lower is flatter; plot --kind sharpness draws it against 2/lr), mean ± std over seeds.")
    if "final_test_cost" in _shown(c.rows):
        notes.append("final test cost/acc: the final model on the held-out test split (data.test_fraction), measured "
                     "once after training; nothing selects on it.")
    if c.thresholds:
        notes.append("epochs to M<=V: first epoch at which M <= V (>= for accuracies), mean over the seeds "
                     "that reached it (reached/seeds that measured it).")
    notes += [
        "AUC: area under the train-cost curve, trapezoid over epochs 0..E divided by E (the mean cost over "
        "training: lower means faster descent), mean over seeds.",
        "group s: the wall time of the group each run trained in (runs trained together share it; not a per-run "
        "cost, so nothing is ranked on it), mean over seeds.",
        "update µs/step: the time the run's own update rule took per step, measured around the optimizer update "
        "of its slice of the group's replicas (runs in one slice share it), mean over seeds.",
        f"Δ: the label's {_name(c)} minus the best label's, paired by seed when the runs share initial "
        f"weights and batches (fingerprints agree), else unpaired; 95% percentile bootstrap CI over seeds "
        f"({RESAMPLES} resamples, fixed seed); win rate: share of seeds on which the label beats the best (ties count half); "
        f"verdict: worse or better when the CI excludes 0, a tie when it includes 0 or lies within ±{NEGLIGIBLE:.0%} of "
        "the best label's value (too small a difference to act on).",
        "ensemble acc: accuracy of the seeds' averaged predicted probabilities (diverged runs left out), "
        "beside the seeds' mean single-model accuracy; classification only.",
        f"health: not learning when the median seed's final training cost is above {STALLED:g}x the lower of its "
        f"initial cost and ln C; median initial cost flagged outside {INIT_RATIO[0]:g}x..{INIT_RATIO[1]:g}x the expected "
        f"ln C (ln 2 for BCE); median update/weight ratio flagged outside [{UPDATE_RATIO[0]:g}, {UPDATE_RATIO[1]:g}]; "
        "diverged runs counted. 2-D test functions: only not learning and divergence.",
    ]
    return notes


def _default(c: Comparison) -> str:
    return default_metric([f for r in c.rows for f in r.runs], c.sweeps, lambda _: None)


def _why(c: Comparison) -> str:
    """Why the table ranks on its metric."""
    if c.metric != _default(c):
        return "chosen with --metric (or --sort)"
    if c.sweeps:
        return "the sweeps' selection metric"
    if c.metric == "final_val_cost":
        return "the default with a validation split: the delivered model on held-out data (a best epoch would be picked on that split itself)"
    return "the default without a validation split"


def health_lines(c: Comparison) -> list[str]:
    """One line per flagged label; nothing when all is well."""
    return [f"health: {r.name}: {'; '.join(r.health.notes)}" for r in c.rows if r.health.notes]


# ---- sweeps -------------------------------------------------------------------------------------


def sweep_title(sw) -> str:
    how = f"random search, budget {sw.budget} trials per variant" if sw.budget else f"{sw.method} search"
    over = f"{sw.seeds} seeds" + (f" x {sw.folds} folds" if sw.folds else "")
    return (f"sweep {sw.name}-{sw.id}: {how}, {sw.n_trials} trials over {over}, {sw.n_runs} runs"
            f" ({sw.diverged} diverged); trials ranked by {_sweep_metric_name(sw)}, mean over {over}")


def _sweep_metric_name(sw) -> str:
    """`best val cost` when every run has a validation split (`best train cost` when none has)."""
    splits = {f.split for p in sw.picks for f in p.result.runs}
    return metric_name(sw.metric, splits.pop() if len(splits) == 1 else None)


def sweep_columns(sw) -> list[Column]:
    """One row per pick: the variant, default or tuned, the trial's hyperparameters, its metric, the budget spent."""
    picks = sw.picks
    keys = list(dict.fromkeys(k for p in picks for k in p.result.params))
    sign = SORT_METRICS[sw.metric]
    acc = kind_of(sw.metric) == "acc"
    fmt = _pct if acc else _num

    def cell(mean: float, std: float) -> str:
        spread = "" if math.isnan(std) else f" ± {_pct(std) if acc else _num(std, 2)}"
        return "-" if math.isnan(mean) else fmt(mean) + spread

    def value(p) -> str:
        return cell(p.result.mean, p.result.std)

    def test(p) -> str:
        return cell(p.result.test_mean, p.result.test_std) if p.result.has_test else "no test split"

    def param(p, k) -> str:
        v = p.result.params.get(k, flatten(p.result.runs[0].config).get(k))
        return _num(v) if isinstance(v, float) else _text(v)

    return [
        Column("variant", [str(p.result.variant or "-") for p in picks], "l"),
        Column("setting", [p.role for p in picks], "l"),
        Column("trial", [p.result.trial for p in picks], "l"),
        *(Column(k, [param(p, k) for p in picks]) for k in keys),
        Column(f"{_sweep_metric_name(sw)} (selects)", [value(p) for p in picks], "r",
               _best_rows([None if math.isnan(p.result.mean) else (sign * p.result.mean,) for p in picks])),
        Column(metric_name(picks[0].result.test_metric) if picks else "final test cost", [test(p) for p in picks], "r",
               _best_rows([None if math.isnan(p.result.test_mean) else (sign * p.result.test_mean,) for p in picks])),
        Column("runs", [str(len(p.result.runs)) for p in picks], wide=True),
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
            "Trials are selected on the sweep metric (validation split when the runs have one); the test column "
            "measures the selected trials on the held-out test split (data.test_fraction), which selects nothing. "
            "The label tables show only these trials of each sweep."]
