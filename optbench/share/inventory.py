"""`optbench runs`: the experiments and runs under a runs directory, with status, duplicates and sizes, and
what `--prune` would remove.

A run's kind is runset's identity (sweep, label, config minus seed, seed and fold): two runs of one kind are
one run trained twice, and the one compare and plot read (the newest finished) is kept. Prunable: the
superseded duplicates (also those a sweep set aside in `.superseded/`), and runs that failed or crashed.
Never pruned: a run compare would read, a `running` run (it may still be training), a run directory that
cannot be read (it may not be a run at all), a completed run unless a finished run of its kind stays.
Reading is light: summary.json and config.yaml only, never metrics or arrays.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from optbench.errors import OptbenchError
from optbench.runs.status import FINISHED, effective_status
from optbench.runset.finding import find_dirs, is_sweep_dir
from optbench.runset.identity import created, identity

Warn = Callable[[str], None]
FAILED = ("failed", "crashed")
CORRUPT = "unreadable"


@dataclass
class Entry:
    """One run directory: what it is, how big, and whether it is the one of its kind that compare reads."""

    path: Path
    status: str
    label: str
    seed: int | None
    created: str
    size: int
    experiment: str  # its experiment's name, or the sweep directory's
    key: tuple | None = None  # runset.identity.identity; None when unreadable
    set_aside: bool = False  # in a sweep's .superseded/
    kept: bool = True  # the run of its kind compare and plot read
    why: str = ""  # why --prune would remove it ("" : it stays)


@dataclass
class Inventory:
    root: Path
    entries: list[Entry] = field(default_factory=list)

    def experiments(self) -> dict[str, list[Entry]]:
        out: dict[str, list[Entry]] = {}
        for e in self.entries:
            out.setdefault(e.experiment, []).append(e)
        return out

    def prunable(self) -> list[Entry]:
        return [e for e in self.entries if e.why]


def size_of(path: Path) -> int:
    """Bytes of the files below `path` (symlinks not followed)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _entry(d: Path, experiment: str, set_aside: bool) -> Entry:
    from optbench.yamlio import parse_yaml

    size = size_of(d)
    try:
        summary = json.loads((d / "summary.json").read_text())
        config = parse_yaml((d / "config.yaml").read_text(), str(d / "config.yaml"))
        if not isinstance(summary, dict) or not isinstance(config, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError, RecursionError, OptbenchError, UnicodeDecodeError):
        return Entry(d, CORRUPT, "?", None, created(SimpleNamespace(path=d)), size, experiment, set_aside=set_aside)
    label = str(summary.get("label") or config.get("label") or d.name)
    seed = config.get("seed") if isinstance(config.get("seed"), int) else None
    run = SimpleNamespace(path=d, summary=summary, config=config, label=label)  # what runset.identity.identity reads
    return Entry(d, effective_status(summary), label, seed, created(run), size, experiment, identity(run),
                 set_aside)


def _experiment_of(d: Path) -> str:
    if is_sweep_dir(d.parent):
        return d.parent.name
    try:
        s = json.loads((d / "summary.json").read_text())
        name = s.get("name") if isinstance(s, dict) else None
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        name = None
    return name if isinstance(name, str) and name else "(no experiment name)"


def take(root: Path, warn: Warn) -> Inventory:
    """Every run directory under `root` (as compare finds them, plus the sweeps' .superseded/), marked."""
    root = Path(root)
    if not root.is_dir():
        raise OptbenchError(f"{root}: no such runs directory (accepted: a directory holding runs or sweeps)")
    inv = Inventory(root)
    for d in find_dirs([root], warn):
        inv.entries.append(_entry(d, _experiment_of(d), False))
    for sweep in sorted(p for p in root.iterdir() if is_sweep_dir(p)) if root.is_dir() else []:
        aside = sweep / ".superseded"
        if aside.is_dir():
            for d in sorted(q for q in aside.iterdir() if q.is_dir()):
                inv.entries.append(_entry(d, sweep.name, True))
    if is_sweep_dir(root) and (root / ".superseded").is_dir():
        for d in sorted(q for q in (root / ".superseded").iterdir() if q.is_dir()):
            inv.entries.append(_entry(d, root.name, True))
    _mark(inv.entries)
    return inv


def _rank(e: Entry) -> tuple:
    """runset's order: finished beats interrupted beats the rest; then the newer; then the name."""
    rank = 2 if e.status in FINISHED else 1 if e.status == "interrupted" else 0
    return rank, e.created, e.path.name


def _mark(entries: list[Entry]) -> None:
    """Which run of each kind is kept (as runset.identity.distinct picks it) and why each other one could go."""
    best: dict[tuple, Entry] = {}
    for e in entries:
        if e.key is None or e.set_aside:
            continue
        if e.key not in best or _rank(e) > _rank(best[e.key]):
            best[e.key] = e
    for e in entries:
        if e.key is None:
            e.kept = False  # unreadable: listed, never removed
            continue
        keeper = best.get(e.key)
        e.kept = keeper is e
        if e.status == "running":
            continue  # it may be training right now
        if not e.kept and keeper is not None and (e.status not in FINISHED or keeper.status in FINISHED):
            e.why = f"superseded by {keeper.path.name}" if not e.set_aside else "set aside by a later sweep pass"
        elif e.kept and e.status in FAILED:
            e.why = e.status
        elif e.set_aside and keeper is None and e.status in FAILED:
            e.why = f"{e.status}, set aside"


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _counts(entries: list[Entry]) -> str:
    seen: dict[str, int] = {}
    for e in entries:
        seen[e.status] = seen.get(e.status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])))


def lines(inv: Inventory, *, every: bool = False) -> list[str]:
    """The listing: per experiment its runs by status, duplicates and size; per label one line; each run whose
    status or duplication needs attention (every run with `every`)."""
    out = []
    for name, entries in sorted(inv.experiments().items(), key=lambda kv: max(e.created for e in kv[1])):
        dups = sum(1 for e in entries if not e.kept and e.key is not None)
        newest = max(e.created for e in entries)
        out.append(f"{name}: {len(entries)} runs ({_counts(entries)}), "
                   + (f"{dups} duplicate{'s' if dups != 1 else ''}, " if dups else "")
                   + f"{human(sum(e.size for e in entries))}, newest {newest}")
        labels: dict[str, list[Entry]] = {}
        for e in entries:
            labels.setdefault(e.label, []).append(e)
        for label, members in sorted(labels.items()):
            if all(e.key is None for e in members):
                continue  # unreadable directories: no label to speak of, listed one by one below
            seeds = sorted({e.seed for e in members if e.seed is not None})
            out.append(f"  {label}: {len(members)} runs ({_counts(members)}), seeds {_seeds(seeds)}, "
                       f"{human(sum(e.size for e in members))}")
        for e in sorted(entries, key=lambda e: e.path.name):
            notable = e.why or e.status not in FINISHED or not e.kept
            if every or notable:
                note = (f"  <- {e.why}" if e.why else "  (still training, or killed before it finished)"
                        if e.status == "running" else "  (kept: the run compare reads)" if e.kept and every else "")
                out.append(f"    {_rel(e.path, inv.root)}  {e.status}  {human(e.size)}{note}")
    if not inv.entries:
        out.append(f"no runs under {inv.root}")
    return out


def _seeds(seeds: list[int]) -> str:
    if not seeds:
        return "-"
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def prune(inv: Inventory, warn: Warn) -> tuple[int, int]:
    """Remove the prunable run directories: (removed, bytes freed). A sweep a client is training is left alone
    (its lock is held while its runs go), and each directory disappears at once (renamed, then deleted)."""
    from optbench.sweep.lock import lock_sweep

    by_sweep: dict[Path | None, list[Entry]] = {}
    for e in inv.prunable():
        sweep = e.path.parent.parent if e.set_aside else e.path.parent if is_sweep_dir(e.path.parent) else None
        by_sweep.setdefault(sweep, []).append(e)
    removed = freed = 0
    for sweep, entries in by_sweep.items():
        lock = None
        if sweep is not None:
            try:
                lock = lock_sweep(sweep, wait=0)
            except OptbenchError as err:
                warn(f"warning: {err}: its {len(entries)} prunable runs left alone")
                continue
        try:
            for e in entries:
                _check_safe(e, inv)
                gone = e.path.with_name(f".pruned-{e.path.name}")
                try:
                    os.rename(e.path, gone)
                    shutil.rmtree(gone)
                except OSError as err:
                    warn(f"warning: {e.path}: not removed ({err.strerror or err.__class__.__name__})")
                    continue
                removed += 1
                freed += e.size
        finally:
            if lock is not None:
                lock.release()
    return removed, freed


def _check_safe(e: Entry, inv: Inventory) -> None:
    """The rule, checked once more before anything is deleted: a completed run goes only with a finished twin
    that stays; a running, unreadable or kept-and-finished run never goes."""
    stays = [o for o in inv.entries if o.key == e.key and not o.why and o is not e]
    if e.status == "running" or e.key is None or (e.kept and e.status in FINISHED):
        raise AssertionError(f"{e.path}: would remove a run that must stay")
    if e.status in FINISHED and not any(o.status in FINISHED for o in stays):
        raise AssertionError(f"{e.path}: would remove the only finished run of its kind")
