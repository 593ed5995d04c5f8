"""Tables within the terminal's width, numbers right-aligned: rich text on a terminal, plain text in pipes."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench import layout
from optbench.layout import console, is_terminal  # looked up here: tests patch them in this module


@dataclass(frozen=True)
class _Column:
    header: str
    cells: list[str]
    align: str
    best: frozenset = frozenset()


def _columns(headers: list[str], rows: list[list[str]]) -> list[_Column]:
    """Columns of a row-wise table; numbers right-aligned."""
    cols = list(zip(*rows)) if rows else [()] * len(headers)
    return [_Column(h, list(cs), "r" if any(_numeric(x) for x in cs) and all(_numeric(x) or x == "-" for x in cs) else "l")
            for h, cs in zip(headers, cols)]


def plain_table(headers: list[str], rows: list[list[str]], width: int | None = None) -> str:
    """Columns aligned with spaces, numbers right-aligned, within `width` (default: term_width())."""
    return layout.plain(layout.fit(_columns(headers, rows), width or layout.term_width()))


def _numeric(s: str) -> bool:
    try:
        float(s.replace("%", ""))
        return True
    except ValueError:
        return False


def show_table(title: str | None, headers: list[str], rows: list[list[str]], *, file=None) -> None:
    """A table within the terminal's width (COLUMNS; 100 in a pipe): rich text on a terminal, plain text otherwise."""
    width = layout.term_width()
    lines = layout.fit(_columns(headers, rows), width)
    if is_terminal() and file is None:
        from rich.text import Text

        con = console(width)
        for t in layout.wrap(title, width) if title else ():
            con.print(Text(t, style="bold"))
        for line in lines:
            con.print(layout.rich_text(line))
    else:
        out = file or sys.stdout
        for t in layout.wrap(title, width) if title else ():
            print(t, file=out)
        print(layout.plain(lines), file=out)


def num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"
