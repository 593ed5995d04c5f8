"""What a bare compare or plot reads: the newest experiment (a sweep directory counts as one) under a runs directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from optbench.errors import OptbenchError
from optbench.files import read_bounded
from optbench.runset.finding import find_dirs, is_sweep_dir
from optbench.runset.identity import mtime_text
from optbench.runset.reading import MAX_FILE_BYTES
from optbench.runset.values import Warn


@dataclass(frozen=True)
class Experiment:
    """The runs of one experiment name outside sweeps, or of one sweep (a sweep directory counts as one)."""

    kind: str  # "experiment" or "sweep"
    name: str
    dirs: tuple[Path, ...]  # what to read: run directories, or the sweep directory
    newest: str  # created of its newest run


def _glance(d: Path) -> tuple[str, str, str] | None:
    """(kind, name, created) of a run directory from summary.json alone; None when it says nothing usable."""
    try:  # bounded: a FIFO or /dev/zero as summary.json must not block the choice of the default
        s = json.loads(read_bounded(str(d / "summary.json"), "a summary.json", MAX_FILE_BYTES["summary.json"]))
    except (OptbenchError, OSError, ValueError, RecursionError):
        return None
    if not isinstance(s, dict):
        return None
    made = s.get("created") if isinstance(s.get("created"), str) else mtime_text(d)
    tag = s.get("sweep")
    if is_sweep_dir(d.parent):
        return "sweep", str(d.parent), made
    if isinstance(tag, dict) and isinstance(tag.get("id"), str):
        return "sweep", f"{tag.get('name')}-{tag['id']}", made
    name = s.get("name")
    return "experiment", name if isinstance(name, str) and name else d.name, made


def experiments(runs_dir: Path, warn: Warn) -> list[Experiment]:
    """The experiments under a runs directory, oldest first, from the runs' summary.json files."""
    found: dict[tuple[str, str], list[tuple[Path, str]]] = {}
    for d in find_dirs([runs_dir], warn):
        g = _glance(d)
        if g is not None:
            found.setdefault(g[:2], []).append((d, g[2]))
    out = []
    for (kind, name), members in found.items():
        dirs = (Path(name),) if kind == "sweep" and is_sweep_dir(Path(name)) else tuple(d for d, _ in members)
        out.append(Experiment(kind, name, dirs, max(c for _, c in members)))
    return sorted(out, key=lambda e: (e.newest, e.name))


def default_paths(runs_dir: str | Path, verb: str, warn: Warn) -> list[Path]:
    """What a bare compare or plot reads: the newest experiment under `runs_dir`, said on one line."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise OptbenchError(f"no runs found in {root} (no such directory; train first or name run directories)")
    exps = experiments(root, lambda m: None)  # the reader warns about the chosen experiment's runs
    if not exps:
        raise OptbenchError(f"no runs found in {root} (train first or name run directories)")
    e = exps[-1]
    which = "the only one" if len(exps) == 1 else f"the newest of {len(exps)}"
    warn(f"{verb} {e.kind} {e.name}, {which} in {root}; name directories to choose")
    return list(e.dirs)
