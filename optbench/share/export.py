"""`optbench export`: the tidy table written as CSV, JSON lines or Parquet (TensorBoard: see `tensorboard`).

CSV: a header, then one line per row; None is an empty cell, floats are written exactly (repr), so
`pandas.read_csv` gives the numbers metrics.csv holds. JSON lines: one object per row; NaN and +-inf, which
JSON has no words for, are null. Parquet through pyarrow (`pip install "optbench[parquet]"`), one typed
column each. The file is written under a temporary name and renamed: never half a file.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from optbench.choices import EXPORT_FORMATS as FORMATS, check, say
from optbench.errors import OptbenchError
from optbench.paths import prepare_out, write_atomic
from optbench.share.table import PER, Table, build

Warn = Callable[[str], None]


def check_options(fmt: str, per: str) -> None:
    check("--format", fmt, FORMATS)
    check("--per", per, PER)
    if fmt == "tensorboard" and per != "epoch":
        raise OptbenchError(f"--per: 'run' applies to {say(f for f in FORMATS if f != 'tensorboard')} (tensorboard gets every epoch)")


def _csv_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def write_csv(table: Table, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(table.columns)
        for row in table.rows():
            w.writerow([_csv_text(v) for v in row])


def _json_value(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_jsonl(table: Table, path: Path) -> None:
    cols = table.columns
    with open(path, "w", encoding="utf-8") as f:
        for row in table.rows():
            f.write(json.dumps({c: _json_value(v) for c, v in zip(cols, row)}, allow_nan=False, ensure_ascii=False))
            f.write("\n")


def pyarrow_or_error():
    """pyarrow, or one line naming the optional extra that brings it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise OptbenchError('--format parquet needs pyarrow: pip install "optbench[parquet]"') from None
    return pyarrow


def _arrow_column(pa, values: list[Any]):
    """One typed column: integers, floats (ints among floats widen), booleans, or text (anything else as text)."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:  # nothing measured (no validation split): a float column of nulls, as metrics.csv's empty cells
        return pa.array(values, type=pa.float64())
    if kinds <= {bool}:
        return pa.array(values, type=pa.bool_())
    if kinds <= {int}:
        return pa.array(values, type=pa.int64())
    if kinds <= {int, float}:
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values], type=pa.string())


def write_parquet(table: Table, path: Path) -> None:
    pa = pyarrow_or_error()
    import pyarrow.parquet as pq

    cols: list[list[Any]] = [[] for _ in table.columns]
    for row in table.rows():
        for c, v in zip(cols, row):
            c.append(v)
    t = pa.table({name: _arrow_column(pa, c) for name, c in zip(table.columns, cols)})
    pq.write_table(t, str(path))  # a str path: pyarrow reads a Path as a URI only in some versions


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}


def export_command(paths: Sequence[str], *, out: Path, fmt: str = "csv", per: str = "epoch",
                   runs_dir: Path = Path("runs"), warn: Warn) -> tuple[Path, int]:
    """Write the runs under `paths` (bare: the newest experiment under `runs_dir`) to `out`; (path, runs written)."""
    from optbench.runset.default import default_paths

    check_options(fmt, per)
    if fmt == "parquet":
        pyarrow_or_error()  # before any run is read
    where = list(paths) or default_paths(runs_dir, "exporting", warn)
    if fmt == "tensorboard":
        from optbench.share.tensorboard import export_runs

        return export_runs(where, Path(out), warn)
    prepare_out(out)
    table = build(where, warn, per)
    if not table.n_runs:
        raise OptbenchError(f"no readable runs found in {', '.join(map(str, where))}")
    write_atomic(out, lambda tmp: WRITERS[fmt](table, Path(tmp)))
    return Path(out), table.n_runs
