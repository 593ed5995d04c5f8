"""Writing a run's files: every OSError as one RunWriteError line naming the path; files replaced atomically."""

from __future__ import annotations

import os
from pathlib import Path

from optbench.errors import OptbenchError


class RunWriteError(OptbenchError):
    """A run directory (or a file in it) that cannot be written: one line naming the path and the OS error."""

    def __init__(self, path: Path | str, err: OSError):
        super().__init__(f"{path}: cannot write ({err.__class__.__name__}: {err.strerror or err})")
        self.path = Path(path)


class Writing:
    """`with Writing(path):` turns an OSError into a RunWriteError naming the file it names (else `path`)."""

    def __init__(self, path: Path | str):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if isinstance(err, OSError):
            raise RunWriteError(getattr(err, "filename", None) or self.path, err) from None
        return False


def atomic_write(path: Path, text: str) -> None:
    """path's text replaced in one rename: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
