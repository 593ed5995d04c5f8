"""metrics.csv: its columns, and the text of its rows (each float's shortest exact text, NaN an empty cell)."""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np

COLUMNS = ("epoch", "step", "lr", "train_cost", "val_cost", "train_acc", "val_acc", "grad_norm", "update_ratio", "seconds")
OPTIONAL = ("sharpness",)  # written only by the runs that measure it (train.sharpness_every > 0), before `seconds`
ALL_COLUMNS = COLUMNS[:-1] + OPTIONAL + COLUMNS[-1:]  # what a run read back has: an optional column it lacks is NaN
COL = MappingProxyType({c: i for i, c in enumerate(COLUMNS)})  # column -> its index
# epoch and step as integers, the metrics exact (%r reads back to the same float), seconds to the microsecond
ROW = "%d,%d" + ",%r" * (len(COLUMNS) - 3) + ",%.6f\n"


def columns_of(cfg: dict) -> tuple[str, ...]:
    """metrics.csv's columns for a resolved run config: COLUMNS, with `sharpness` when it is measured; a run
    that does not measure it writes the file it wrote before the option existed."""
    return ALL_COLUMNS if cfg["train"].get("sharpness_every") else COLUMNS


def fmt(x: float) -> str:
    """Shortest round-trip text of a float; NaN (not measured) as an empty cell."""
    x = float(x)
    if math.isnan(x):
        return ""
    if x == int(x) and abs(x) < 1e15:
        return str(int(x)) if x != 0 or math.copysign(1, x) > 0 else "0"
    return repr(x)


def rows_lines(rows: np.ndarray) -> list[str]:
    """metrics.csv lines (newline included) for rows (T, columns), the same text as ROW row by row, a column at a time.

    A float's shortest exact text costs about a microsecond, so each distinct value of a column is
    formatted once: lr, accuracies and empty cells repeat from row to row.
    """
    cols = [list(map(str, rows[:, 0].astype(np.int64).tolist())), list(map(str, rows[:, 1].astype(np.int64).tolist()))]
    for j in range(2, rows.shape[1] - 1):
        # distinct bit patterns, not values: -0.0 and 0.0 are equal but read differently
        uniq, inv = np.unique(np.ascontiguousarray(rows[:, j], dtype=np.float64).view(np.int64), return_inverse=True)
        values = uniq.view(np.float64)
        text = list(map(repr, values.tolist()))
        for i in np.flatnonzero(np.isnan(values)).tolist():
            text[i] = ""
        cols.append(list(map(text.__getitem__, inv.tolist())))
    seconds = rows[:, -1]
    cols.append(list(map("%.6f\n".__mod__, seconds.tolist())))
    for i in np.flatnonzero(np.isnan(seconds)).tolist():
        cols[-1][i] = "\n"
    return list(map(",".join, zip(*cols)))


def rows_text(rows: np.ndarray) -> str:
    """metrics.csv text for rows (T, columns): rows_lines joined."""
    return "".join(rows_lines(rows))


def lines_through(lines: list[str], epoch: int) -> list[str]:
    """The data lines of a metrics.csv or iterations.csv (header left out) whose epoch is at most `epoch`."""
    return [ln for ln in lines[1:] if ln.split(",", 1)[0].isdigit() and int(ln.split(",", 1)[0]) <= epoch]
