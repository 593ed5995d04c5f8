"""What the runset modules share: the warning callback's type, tests of plain data's kinds, a cut display text."""

from __future__ import annotations

from typing import Any, Callable

Warn = Callable[[str], None]


def short(value: Any, n: int = 60) -> str:
    """value's text (a repr unless it is text), cut to n characters with an ellipsis."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def is_int(v: Any) -> bool:
    """An int, and not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """An int or a float, and not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)
