"""A run directory read back: its resolved config, summary and metrics columns, or CorruptRun saying why not."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optbench.errors import OptbenchError
from optbench.runs.columns import ALL_COLUMNS, COLUMNS
from optbench.runs.status import STATUSES, effective_status
from optbench.yamlio import parse_yaml


@dataclass
class Run:
    """A run directory read back: its resolved config, summary and metrics columns."""

    path: Path
    config: dict
    summary: dict
    metrics: dict[str, np.ndarray]

    @property
    def label(self) -> str:
        return self.summary.get("label") or self.config.get("label", self.path.name)

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def status(self) -> str:
        """The effective status: `crashed` for a run whose writer died while it was `running`."""
        return effective_status(self.summary)


class CorruptRun(Exception):
    """A run directory that cannot be read; the message says why."""


def read_run(path: str | Path, *, allow_running: bool = False) -> Run:
    """The run in directory `path`; CorruptRun when a file is missing or unreadable (or it is `running`)."""
    p = Path(path)
    if not p.is_dir():
        raise CorruptRun(f"{p}: not a directory")
    for f in ("config.yaml", "summary.json", "metrics.csv"):
        if not (p / f).is_file():
            raise CorruptRun(f"{p}: incomplete run directory (no {f})")
    try:
        summary = json.loads((p / "summary.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise CorruptRun(f"{p}: unreadable summary.json ({err.__class__.__name__})") from None
    if not isinstance(summary, dict) or summary.get("status") not in STATUSES:
        raise CorruptRun(f"{p}: summary.json has no valid status")
    if summary["status"] == "running" and not allow_running:
        raise CorruptRun(f"{p}: status running (still training, or killed before it finished)")
    try:
        config = parse_yaml((p / "config.yaml").read_text(), str(p / "config.yaml"))
    except (OptbenchError, OSError, UnicodeDecodeError) as err:
        raise CorruptRun(f"{p}: unreadable config.yaml ({err})") from None
    if not isinstance(config, dict):
        raise CorruptRun(f"{p}: config.yaml is not a mapping")
    metrics = read_metrics(p / "metrics.csv")
    return Run(p, config, summary, metrics)


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as {column: (T,)} for every one of ALL_COLUMNS (NaN for an empty cell or a column it lacks)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise CorruptRun(f"{path}: unreadable ({err.__class__.__name__})") from None
    header = tuple(rows[0]) if rows else ()
    if header not in (COLUMNS, ALL_COLUMNS):
        raise CorruptRun(f"{path}: missing or unexpected header")
    body = rows[1:]
    if not body:
        raise CorruptRun(f"{path}: no rows")
    cols: dict[str, list[float]] = {c: [] for c in header}
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise CorruptRun(f"{path} line {i}: truncated row")
        for c, cell in zip(header, row):
            try:
                cols[c].append(float(cell) if cell else math.nan)
            except ValueError:
                raise CorruptRun(f"{path} line {i}: {cell!r} is not a number") from None
    out = {c: np.array(v) for c, v in cols.items()}
    return {c: out[c] if c in out else np.full(len(body), math.nan) for c in ALL_COLUMNS}

