"""Reading runs: every readable run under some paths, each once, each checked; a bad run is one warning line."""

from __future__ import annotations

import csv
import stat
from pathlib import Path
from types import MappingProxyType
from typing import Iterable

from optbench.runs.read import CorruptRun, Run, read_run
from optbench.runset.content import MAX_JSON_DEPTH, check
from optbench.runset.finding import find_dirs
from optbench.runset.identity import distinct
from optbench.runset.values import Warn, short
from optbench.yamlio import MAX_BYTES

MAX_FILE_BYTES = MappingProxyType({"summary.json": 16 * 2**20, "config.yaml": MAX_BYTES,
                                   "metrics.csv": 256 * 2**20})  # ~1M epochs


def read(paths: Iterable[str | Path], warn: Warn) -> list[Run]:
    """Every readable run under `paths`, each once, duplicates resolved; one warning per bad run."""
    runs = []
    for d in find_dirs(paths, warn):
        try:
            runs.append(read_one(d))
        except CorruptRun as err:
            warn(f"warning: {err}")
    return distinct(runs, warn)


def _check_files(path: Path) -> None:
    """Each run file present is a regular file (following links) of bounded size: nothing blocks or floods."""
    for name, cap in MAX_FILE_BYTES.items():
        try:
            st = (path / name).stat()
        except FileNotFoundError:
            continue  # read_run says which is missing
        except OSError as err:  # a symlink loop, no permission
            raise CorruptRun(f"{path}: cannot read {name} ({err.strerror or err.__class__.__name__})") from None
        if not stat.S_ISREG(st.st_mode):
            raise CorruptRun(f"{path}: {name} is not a regular file")
        if st.st_size > cap:
            raise CorruptRun(f"{path}: {name} is too large ({st.st_size:,} bytes; at most {cap:,})")


def read_one(path: Path) -> Run:
    """One run directory, checked so that no reader trips over its content; CorruptRun says why not."""
    _check_files(path)
    try:
        run = read_run(path, allow_running=True)
    except CorruptRun:
        raise
    except csv.Error as err:  # e.g. a field over the csv module's 128 KiB limit
        raise CorruptRun(f"{path}: unreadable metrics.csv ({err})") from None
    except RecursionError:  # json's parser recurses: ~1,000 levels end it before depth() can tell
        raise CorruptRun(f"{path}: summary.json is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except (OSError, ValueError, TypeError, MemoryError, OverflowError) as err:
        raise CorruptRun(f"{path}: unreadable ({err.__class__.__name__}: {short(err)})") from None
    check(run)
    return run
