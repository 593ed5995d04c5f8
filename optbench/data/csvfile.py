"""A dataset from a local CSV file: numeric feature columns and one label column, bounded in size and line length."""

from __future__ import annotations

import csv as csvlib
import io
import itertools
import math
from array import array

import numpy as np

from optbench import budget
from optbench.data.dataset import DataError, Dataset, TaskOption
from optbench.data.labels import from_arrays, listed
from optbench.errors import OptbenchError
from optbench.files import read_bounded

MAX_CSV_BYTES = 256 * 2**20  # beyond, parsing text costs more than the arrays: store large data as .npz
MAX_CSV_LINE = 2**20  # characters per line (a row of numbers); the csv module bounds a field at 128 KiB


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _lines(text: str, path: str):
    """The lines of `text` as the csv module wants them, refusing any over MAX_CSV_LINE characters."""
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        if len(line) > MAX_CSV_LINE:
            raise DataError("path", f"{path} line {number}: {len(line):,} characters long "
                                    f"(accepted: at most {MAX_CSV_LINE:,} per line)")
        yield line


def _read_text(path: str) -> str:
    """The text of a regular CSV file of at most MAX_CSV_BYTES."""
    try:
        data = read_bounded(path, "a CSV file", MAX_CSV_BYTES, "; store large data as .npz")
    except OptbenchError as err:
        raise DataError("path", str(err)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("path", f"cannot read {path!r}: not a UTF-8 text file") from None


def _rows(path: str, text: str):
    """(line number, stripped cells) of every non-blank CSV row, one at a time."""
    reader = csvlib.reader(_lines(text, path))
    try:
        for row in reader:
            cells = [c.strip() for c in row]
            if any(cells):
                yield reader.line_num, cells
    except csvlib.Error as err:
        raise DataError("path", f"cannot read {path!r} as CSV: {err}") from None


def _label_column(label: str | int, names: list[str] | None, width: int, path: str) -> int:
    span = f"an index {-width}..{width - 1}"
    accepted = f"{listed(names)}, or {span}" if names else f"{span} (the file has no header row)"
    if isinstance(label, str) and names and label in names:
        if names.count(label) > 1:
            raise DataError("label", f"{label!r} names {names.count(label)} columns of {path} (accepted: {span})")
        return names.index(label)
    if isinstance(label, str):
        try:
            label = int(label)
        except ValueError:
            raise DataError("label", f"{label!r} is not a column of {path} (accepted: {accepted})") from None
    if not -width <= label < width:
        raise DataError("label", f"{label} is out of range for {path} with {width} columns (accepted: {accepted})")
    return label % width


def csv(
    *, path: str, label: str | int = -1, header: bool | None = None, task: TaskOption = "auto",
    rng: np.random.Generator,
) -> Dataset:
    """Numeric features and one label column (by header name or index) from a local CSV file."""
    text = _read_text(path)
    # a value costs 8 bytes as float64 and a few copies on its way: bound them before parsing
    budget.check(4 * 8 * (text.count(",") + text.count("\n") + 1), f"{path} ({len(text):,} characters of CSV)")
    rows = _rows(path, text)
    first_line, first = next(rows, (0, None))
    if first is None:
        raise DataError("path", f"{path} is empty (accepted: rows of numbers, optionally after a header row)")
    if header is None:
        header = not all(_is_number(c) for c in first)
    names = first if header else None
    width = len(first)
    if width < 2:
        raise DataError("path", f"{path} has 1 column (accepted: feature columns and a label column)")
    col = _label_column(label, names, width, path)
    values, lines = array("d"), array("q")
    for line, cells in (rows if header else itertools.chain([(first_line, first)], rows)):
        if len(cells) != width:
            raise DataError(
                "path", f"{path} line {line}: {len(cells)} columns, expected {width} as on line {first_line}"
            )
        try:
            row = [float(c) for c in cells]
        except ValueError:
            j, c = next((j, c) for j, c in enumerate(cells) if not _is_number(c))
            hint = " (the first row is data because header: false)" if line == first_line else ""
            raise DataError("path", f"{path} line {line}, column {j + 1}: {c!r} is not a number{hint}") from None
        if not all(map(math.isfinite, row)):
            j = next(j for j, v in enumerate(row) if not math.isfinite(v))
            raise DataError("path", f"{path} line {line}, column {j + 1}: {cells[j]!r} is not a finite number")
        values.extend(row)
        lines.append(line)
    if not lines:
        raise DataError("path", f"{path} has a header row but no data rows")
    values = np.frombuffer(values, dtype=np.float64).reshape(len(lines), width)
    kept = [j for j in range(width) if j != col]
    columns = tuple(f"column {j + 1}" + (f" ({names[j]!r})" if names else "") + f" of {path}" for j in kept)
    return from_arrays(values[:, kept], values[:, col], task, path, columns)
