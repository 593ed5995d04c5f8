"""File names built from data, and output files: names and labels from files are data, never paths."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from optbench.errors import OptbenchError

MAX_COMPONENT = 100  # characters of one name built from data; longer names keep a hash of the whole
_KEEP = "-_.+=@,"  # besides letters and digits: what a file name may hold on every platform and in a shell


def safe_component(text: str, fallback: str = "runs") -> str:
    """One safe path component from any text: `moons/adam` -> `moons-adam`, `../../x/evil` -> `x-evil`.

    Letters, digits and -_.+=@, are kept, everything else (/, \\, NUL, controls, spaces, bidi marks) becomes -;
    no leading . or - (hidden files, options); at most MAX_COMPONENT characters (a hash keeps long names distinct).
    """
    text = str(text)
    out = "".join(ch if (ch.isalnum() and ch.isprintable()) or ch in _KEEP else "-" for ch in text)
    out = out.lstrip(".-")
    if len(out) > MAX_COMPONENT:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        out = f"{out[:MAX_COMPONENT - 9].rstrip('.-')}-{digest}"
    return out or fallback


def _why(err: OSError) -> str:
    return err.strerror or err.__class__.__name__


def prepare_out(path: str | Path, option: str = "--out") -> Path:
    """An output file's folder, created when missing; an OptbenchError (one line) when it cannot be written there."""
    out = Path(path)
    if out.is_dir():
        raise OptbenchError(f"{option}: {str(out)!r} is a directory (expected a file name)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OptbenchError(f"{option}: cannot create the folder {str(out.parent)!r} ({_why(err)})") from None
    if not os.access(out.parent, os.W_OK):
        raise OptbenchError(f"{option}: cannot write in {str(out.parent)!r} (permission denied)")
    return out


def write_atomic(path: str | Path, write, option: str = "--out") -> Path:
    """Write a file through `write(tmp_path)` under a temporary name, then rename it into place (no half files).

    The folder is created when missing; any OSError becomes one line naming the option and the file.
    """
    out = prepare_out(path, option)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, out)
    except OSError as err:
        raise OptbenchError(f"{option}: cannot write {str(out)!r} ({_why(err)})") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return out


def write_text(path: str | Path, text: str, option: str = "--out") -> Path:
    """`text` into `path` atomically (see write_atomic)."""
    return write_atomic(path, lambda p: Path(p).write_text(text, encoding="utf-8"), option)
