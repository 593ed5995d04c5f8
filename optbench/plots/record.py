"""`plot --data FILE`: the exact series a figure draws, as one tidy CSV (no matplotlib here).

One row per drawn point: kind, panel, label, series, x, y, lo, hi, z. `series` names what the row belongs to
(train_cost, val_cost, band, fit, points, cell, ...); lo/hi are a band's or error bar's bounds, z a third
value (a heat-map cell's metric, a point's class). Empty where a column does not apply. Rows keep drawing
order and floats are written with repr, so the same runs give the same bytes.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

HEADER = ("kind", "panel", "label", "series", "x", "y", "lo", "hi", "z")


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "" if math.isnan(v) else repr(v)
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


class Record:
    """Rows of drawn series for one figure; figure functions append, `plot_command` writes them."""

    def __init__(self, kind: str):
        self.kind = kind
        self.rows: list[tuple[str, ...]] = []

    def add(self, panel: str, label: str, series: str, x, y, lo=None, hi=None, z=None) -> None:
        """One series: x and y arrays of equal length (lo, hi, z arrays of that length or None)."""
        x, y = np.atleast_1d(np.asarray(x)), np.atleast_1d(np.asarray(y))
        cols = [np.atleast_1d(np.asarray(c)) if c is not None else None for c in (lo, hi, z)]
        for i in range(len(x)):
            extra = [_text(c[i]) if c is not None else "" for c in cols]
            self.rows.append((self.kind, panel, label, series, _text(x[i]), _text(y[i]), *extra))

    def series(self) -> list[tuple[str, str, str]]:
        """The distinct (panel, label, series) triples, in drawing order: what a test counts."""
        return list(dict.fromkeys(r[1:4] for r in self.rows))

    def text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(HEADER)
        w.writerows(self.rows)
        return buf.getvalue()

    def write(self, path: Path) -> None:
        """Write atomically; the parent folder is created as for the figure."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(self.text())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
