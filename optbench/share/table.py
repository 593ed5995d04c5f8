"""Runs as one tidy table: a row per run x epoch (or per run), the run's identity, every varied config key flat.

Rows come from runset.reading.read (the reader compare and plot use: bad runs warned about, duplicates resolved). A
config key is a column when its value differs between the runs or some runs lack it (momentum's `mu`), so
pandas, R or DuckDB see what was varied and nothing else. Values are numbers, text, booleans or None; a list
or mapping (`model.hidden: [5, 2]`) is its compact JSON text, so every column holds one kind of value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from optbench.choices import EXPORT_PER as PER
from optbench.runs.columns import COLUMNS
from optbench.runs.read import CorruptRun, Run
from optbench.runset import grouping, reading
from optbench.runset.identity import replicate

Warn = Callable[[str], None]
MISSING = object()


@dataclass(frozen=True)
class Table:
    """Column names and a row iterator factory (rows are lists in column order)."""

    columns: list[str]
    rows: Callable[[], Iterator[list[Any]]]
    n_runs: int


def cell(v: Any) -> Any:
    """A config value as one flat cell: scalars as they are, lists and mappings as compact JSON text."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)


def varied_columns(runs: Sequence[Run]) -> list[str]:
    """Dotted config keys (seed, fold and label aside) whose value or presence differs between runs, in config order."""
    return varied_keys([r.config for r in runs])


def varied_keys(cfgs: Sequence[dict]) -> list[str]:
    """varied_columns of resolved configs."""
    flats = [grouping.flatten(c) for c in cfgs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    out = []
    for k in keys:
        seen = {json.dumps(cell(f.get(k, MISSING)) if k in f else "\0missing", default=str) for f in flats}
        if len(seen) > 1:
            out.append(k)
    return out


def _sweep(run: Run) -> dict:
    tag = run.summary.get("sweep")
    return tag if isinstance(tag, dict) else {}


def identity_columns(runs: Sequence[Run]) -> list[str]:
    """What names a run: its experiment, label, group name (label and differing keys), directory, seed, status;
    fold and sweep columns only when some run has them."""
    cols = ["experiment", "label", "name", "run", "seed", "status"]
    if any(replicate(r.config)[1] >= 0 for r in runs):
        cols.insert(5, "fold")
    if any(_sweep(r) for r in runs):
        cols += ["sweep", "variant", "trial"]
    return cols


def _identity(run: Run, name: str, cols: list[str]) -> list[Any]:
    tag = _sweep(run)
    fold = replicate(run.config)[1]
    known = {"experiment": run.summary.get("name") or run.config.get("name"), "label": run.label, "name": name,
             "run": run.path.name, "seed": run.seed, "fold": fold if fold >= 0 else None, "status": run.status,
             "sweep": tag.get("id"), "variant": tag.get("variant"), "trial": tag.get("trial")}
    return [known[c] for c in cols]


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _named(runs: list[Run], warn: Warn) -> list[tuple[Run, str]]:
    """Each run with its group's display name (compare's row name), in group order, seeds ascending."""
    return [(r, g.name) for g in grouping.group(runs, warn) for r in g.items]


def build(paths: Sequence[str], warn: Warn, per: str = "epoch") -> Table:
    """The tidy table of the runs under `paths`: a row per run x epoch (`per="epoch"`) or per run (`per="run"`)."""
    from optbench.compare.read import run_facts

    runs = reading.read(paths, warn)
    named = _named(runs, warn)
    ident = identity_columns(runs)
    keys = varied_columns(runs)

    def head(run: Run, name: str) -> list[Any]:
        flat = grouping.flatten(run.config)
        return _identity(run, name, ident) + [cell(flat.get(k)) for k in keys]

    if per == "epoch":
        metrics = list(COLUMNS)

        def rows() -> Iterator[list[Any]]:
            for run, name in named:
                first = head(run, name)
                cols = [run.metrics[c].tolist() for c in metrics]
                for values in zip(*cols):
                    yield first + [_metric(c, v) for c, v in zip(metrics, values)]

        return Table(ident + keys + metrics, rows, len(named))

    facts = []
    for run, name in named:
        try:
            facts.append((run, name, run_facts(run, ())))
        except CorruptRun as err:
            warn(f"warning: {err}")
    values = list(dict.fromkeys(k for _, _, f in facts for k in f.values))
    tail = ["epochs", "seconds", "initial_cost", "expected_cost", "update_ratio"]

    def per_run() -> Iterator[list[Any]]:
        for run, name, f in facts:
            extra = [f.epochs, _number(run.summary.get("seconds")), f.initial_cost, f.expected_cost, f.update_ratio]
            yield head(run, name) + [_finite(f.values.get(k)) for k in values] + [_finite(x) for x in extra]

    return Table(ident + keys + values + tail, per_run, len(facts))


def _metric(column: str, v: float) -> Any:
    """metrics.csv's epoch and step as integers, an unmeasured metric (NaN, an empty cell) as None."""
    if column in ("epoch", "step"):
        return int(v)
    return None if math.isnan(v) else v


def _finite(x: Any) -> Any:
    """A number kept as is, NaN (not measured) as None; +inf (a cost that blew up, compare's convention) stays."""
    if isinstance(x, float) and math.isnan(x):
        return None
    return x
