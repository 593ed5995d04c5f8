"""Names that become file names: an experiment's name, variant names and labels, checked to be safe path components."""

from __future__ import annotations

import re
from typing import Any

from optbench.errors import OptbenchError
from optbench.registry import format_value

MAX_COMPONENT = 64  # a name or a variant name; with a seed and a time stamp a run directory name stays < 255 bytes
MAX_LABEL = 200  # label/variant (/trial in a sweep)
_COMPONENT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
_ACCEPTED = f"accepted: 1 to {MAX_COMPONENT} letters, digits, '.', '_' or '-', not starting with '.'"


def is_seed(s: Any) -> bool:
    return isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63


def _component_problem(text: str) -> str | None:
    """Why `text` is not one safe path component (no separators, control or bidi characters, no leading '.')."""
    if not text:
        return "it is empty"
    if text.startswith("."):
        return "it must not start with '.' (the run directories would be hidden)"
    if len(text) > MAX_COMPONENT:
        return f"it is {len(text)} characters long (at most {MAX_COMPONENT})"
    if not _COMPONENT.fullmatch(text):
        bad = next(c for c in text if not re.fullmatch(r"[A-Za-z0-9_.\-]", c))
        return f"it contains {bad!r}"
    return None


def check_name(value: Any, path: str, hint: str = "", *, what: str = "a name") -> None:
    """`name` and variant names become file names: one safe path component each."""
    why = f"{what} is a string" if not isinstance(value, str) else _component_problem(value)
    if why is not None:
        raise OptbenchError(f"{path}: {format_value(value)} is invalid: {why} ({_ACCEPTED}){hint}")


def check_label(value: Any, path: str, *, single: bool) -> None:
    """A written label: safe components joined by '/' (the form a resolved run's label has); one component when
    variants are appended to it."""
    if not isinstance(value, str):
        raise OptbenchError(f"{path}: {format_value(value)} is invalid: a label is a string ({_ACCEPTED})")
    if single and "/" in value:
        raise OptbenchError(f"{path}: {format_value(value)} is invalid: with variants the label is one name, "
                            f"each run's label is label/variant ({_ACCEPTED})")
    if len(value) > MAX_LABEL:
        raise OptbenchError(f"{path}: {format_value(value)} is invalid: it is {len(value)} characters long "
                            f"(at most {MAX_LABEL})")
    for part in value.split("/"):
        why = _component_problem(part)
        if why is not None:
            raise OptbenchError(f"{path}: {format_value(value)} is invalid: {why} "
                                f"({_ACCEPTED}, parts joined by '/')")
