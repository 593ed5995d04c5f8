"""Text tables and notes that fit a terminal width: headers wrapped, long text cells wrapped, the rest continued below.

A table is a list of columns (anything with `header`, `cells`, `align` "l" or "r" and `best`, a set of row
indices). `fit` lays it out as lines of segments `(text, best)`, so plain text and rich print the same layout.
"""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from typing import Sequence

DEFAULT_WIDTH = 100  # in a pipe without COLUMNS
MIN_WIDTH = 40
GAP = 2  # spaces between columns
HEADER_LINES = 3  # a header wraps onto at most this many lines
MIN_WRAP = 10  # a wrapped text column keeps at least this many characters per line
COMFORTABLE = 24  # ... and this many before the gaps between columns narrow to one space


def term_width() -> int:
    """COLUMNS when set (piped or not), else the terminal's width, else 100; never below 40."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return max(MIN_WIDTH, int(env))
    try:
        if sys.stdout.isatty():
            return max(MIN_WIDTH, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError):
        pass
    return DEFAULT_WIDTH


def is_terminal() -> bool:
    return sys.stdout.isatty()


def console(width: int | None = None):
    """A rich console as wide as `width` (default: term_width(), so COLUMNS rules here too)."""
    from rich.console import Console

    return Console(width=width or term_width())


def wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    """A note as lines of at most `width` characters, continuation lines indented."""
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]


@dataclass
class _Col:
    header: str
    cells: list[str]  # with the best marker appended where it applies
    align: str
    best: frozenset
    wrappable: bool
    width: int = 0
    head: tuple[str, ...] = ()


def _words_max(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def _lines(text: str, width: int, hard: bool = False) -> list[str]:
    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_long_words=hard, break_on_hyphens=False) or [""]


def _header_width(c: _Col) -> int:
    """The narrowest width (not below the cells) at which the header takes at most HEADER_LINES lines."""
    cells = max((len(x) for x in c.cells), default=0)
    w = max(cells, _words_max(c.header), 1)
    while len(_lines(c.header, w)) > HEADER_LINES and w < len(c.header):
        w += 1
    return max(w, max(len(h) for h in _lines(c.header, w)))


def _total(cols: Sequence[_Col], gap: int) -> int:
    return sum(c.width for c in cols) + gap * (len(cols) - 1)


def _cell_min(c: _Col) -> int:
    """How narrow a wrapped text column may get: its longest word, its header's, and MIN_WRAP."""
    return max(MIN_WRAP, _words_max(c.header), *(_words_max(x) for x in c.cells))


def fit(columns: Sequence, width: int, *, marker: str = "*") -> list[list[tuple[str, bool]]]:
    """Lines of (text, best) segments: the table within `width`, continued below (first column repeated) if need be.

    Each step only while the table is too wide: wrap the headers that gain most (at most 3 lines each),
    wrap the widest left-aligned text column at spaces (never cutting a word) down to 24 characters,
    narrow the gaps to one space, wrap text further, and last move the columns that still do not fit
    into a continuation table (the first column repeated).
    """
    cols = []
    for col in columns:
        mark = [x + (marker if i in col.best else " " if col.best and marker else "") for i, x in enumerate(col.cells)]
        cols.append(_Col(col.header, mark, col.align, frozenset(col.best), col.align == "l"))
    for c in cols:
        c.width = max(len(c.header), *(len(x) for x in c.cells)) if c.cells else len(c.header)
    gap = GAP
    while _total(cols, gap) > width:
        gains = [(c.width - _header_width(c), j) for j, c in enumerate(cols)]
        gain, j = max(gains)
        if gain <= 0:
            break
        cols[j].width -= gain
    for floor in (COMFORTABLE, 0):  # wrap text to a comfortable width first; only then narrow the gaps
        while _total(cols, gap) > width:
            text = [c for c in cols if c.wrappable and c.width > max(floor, _cell_min(c))]
            if not text:
                break
            max(text, key=lambda c: c.width).width -= 1
        if _total(cols, gap) > width:
            gap = 1
    out: list[list[tuple[str, bool]]] = []
    for b, block in enumerate(_split(cols, width, gap)):
        if b:
            out += [[("", False)], [("(continued)", False)]]
        out.extend(_render(block, gap))
    return out


def _split(cols: list[_Col], width: int, gap: int) -> list[list[_Col]]:
    """Columns into tables that fit, each beginning with the first column; a column wider than the rest
    of the line is narrowed (its words broken)."""
    first, rest = cols[0], cols[1:]
    if _total(cols, gap) > width:
        first.width = min(first.width, max(MIN_WRAP, width // 3))
    blocks, cur = [], [first]
    for c in rest:
        if c.width > width - _total(cur, gap) - gap and len(cur) > 1:
            blocks.append(cur)
            cur = [first]
        c.width = max(1, min(c.width, width - _total(cur, gap) - gap))
        cur.append(c)
    blocks.append(cur)
    return blocks


def _render(cols: list[_Col], gap: int) -> list[list[tuple[str, bool]]]:
    for c in cols:
        c.head = tuple(_lines(c.header, c.width, hard=True))
    n_head = max(len(c.head) for c in cols)
    just = lambda s, c: s.rjust(c.width) if c.align == "r" else s.ljust(c.width)  # noqa: E731
    lines = []
    for k in range(n_head):  # headers bottom-aligned, as in most tables
        parts = [c.head[k - (n_head - len(c.head))] if k >= n_head - len(c.head) else "" for c in cols]
        lines.append(_join([(just(p, c), False) for p, c in zip(parts, cols)], gap))
    lines.append(_join([("-" * c.width, False) for c in cols], gap))
    for i in range(len(cols[0].cells)):
        cell_lines = [_lines(c.cells[i], c.width, hard=True) for c in cols]
        for k in range(max(len(x) for x in cell_lines)):
            lines.append(_join([(just(x[k] if k < len(x) else "", c), i in c.best and k < len(x))
                                for x, c in zip(cell_lines, cols)], gap))
    return lines


def _join(parts: list[tuple[str, bool]], gap: int) -> list[tuple[str, bool]]:
    """Segments with the gaps between them, trailing blanks removed."""
    out: list[tuple[str, bool]] = []
    for j, p in enumerate(parts):
        if j:
            out.append((" " * gap, False))
        out.append(p)
    while out and not out[-1][0].strip():
        out.pop()
    if out:
        out[-1] = (out[-1][0].rstrip(), out[-1][1])
    return out


def plain(lines: list[list[tuple[str, bool]]]) -> str:
    return "\n".join("".join(t for t, _ in line) for line in lines)


def rich_text(line: list[tuple[str, bool]], style: str = "bold green"):
    """One laid-out line as rich Text, best cells styled."""
    from rich.text import Text

    t = Text(no_wrap=True, overflow="ignore")
    for s, best in line:
        t.append(s, style=style if best else "")
    return t
