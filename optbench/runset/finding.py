"""Finding runs: run directories named directly, one level below a directory holding runs, or in a sweep directory."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from optbench.runset.values import Warn

RUN_FILES = ("summary.json", "config.yaml", "metrics.csv")
NOT_RUNS = ("plots",)  # what lives beside runs in a runs directory


def _is_run(p: Path) -> bool:
    return any((p / f).exists() for f in RUN_FILES)


def is_sweep_dir(p: Path) -> bool:
    """A sweep directory holds sweep.json and one run directory per run (and is no run itself)."""
    return (p / "sweep.json").is_file() and not _is_run(p)


def _children(d: Path, warn: Warn) -> list[Path]:
    try:
        return sorted(q for q in d.iterdir() if not q.name.startswith(".") and q.name not in NOT_RUNS and q.is_dir())
    except OSError as err:
        warn(f"warning: {d}: cannot list ({err.strerror or err.__class__.__name__})")
        return []


def find_dirs(paths: Iterable[str | Path], warn: Warn) -> list[Path]:
    """Run directories named directly, one level below a directory holding runs, or inside a sweep directory
    (named, or found in a directory holding runs); each once, as first named. A missing path is a warning."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if _is_run(p):
            found.append(p)
        elif is_sweep_dir(p):
            found.extend(_children(p, warn))
        elif p.is_dir():
            for q in _children(p, warn):
                found.extend(_children(q, warn) if is_sweep_dir(q) else [q])
        elif p.exists():
            found.append(p)  # not a directory: the reader says so
        else:
            warn(f"warning: {raw}: no such run directory")
    seen: dict[Path, Path] = {}
    for d in found:
        try:
            real = d.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            real = d.absolute()
        seen.setdefault(real, d)
    return list(seen.values())
