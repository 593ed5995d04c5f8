"""Reading user files safely: only regular files, opened without blocking, read to a bounded size; .npz
archives read member by member with each .npy header checked against the bytes it owns and the memory budget
before anything is allocated (never pickle).

A FIFO blocks a plain open() until a writer comes, and /dev/zero never ends: so a path is opened O_NONBLOCK
and checked with fstat before any read. A .npy header may promise any shape: a 500-byte member can ask for
745 GiB, so prod(shape)·itemsize must equal the member's uncompressed size, which must fit the budget.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
import zlib
from typing import BinaryIO, Sequence

import numpy as np

from optbench import budget
from optbench.errors import OptbenchError


class BadFile(OptbenchError):
    """A file that cannot be read as asked; the message names the file (the caller adds the key path)."""


class MissingArrays(Exception):
    """Requested arrays an .npz does not hold: `missing` of the asked keys, `present` the keys it has."""

    def __init__(self, missing: list[str], present: list[str]):
        super().__init__(", ".join(missing))
        self.missing, self.present = missing, present


def open_regular(path: str, what: str) -> BinaryIO:
    """A binary file object on `path` if it is a regular file; BadFile otherwise (never blocks on FIFOs)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise BadFile(f"file not found: {path!r}") from None
    except IsADirectoryError:
        raise BadFile(f"{path!r} is a directory, not {what}") from None
    except OSError as err:  # a symlink loop (ELOOP), no permission, a name too long
        raise BadFile(f"cannot read {path!r}: {err.strerror or err.__class__.__name__}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise BadFile(f"{path!r} is a directory, not {what}")
        if not stat.S_ISREG(mode):
            raise BadFile(f"{path!r} is not a regular file (a FIFO, socket or device; accepted: {what})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str, what: str, max_bytes: int, hint: str = "") -> bytes:
    """The bytes of a regular file of at most `max_bytes` (checked before reading, and while reading: it may grow)."""
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(max_bytes + 1) if size <= max_bytes else b""
        if size > max_bytes or len(data) > max_bytes:
            raise BadFile(f"{path!r} is too large: {max(size, len(data)):,} bytes "
                          f"(accepted: at most {max_bytes:,}{hint})")
    return data


def _header(f, name: str, path: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy header, refused unless the dtype is plain numbers."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:  # 3.0 only adds UTF-8 field names of structured dtypes, which are not numbers anyway
        raise BadFile(f"array {name!r} in {path} uses .npy format {version[0]}.{version[1]} (accepted: 1.0, 2.0)")
    if dtype.hasobject:
        raise BadFile(f"array {name!r} in {path} holds Python objects (accepted: numeric arrays)")
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise BadFile(f"array {name!r} in {path} has dtype {dtype} and shape {tuple(shape)} "
                      "(accepted: a non-empty numeric array, one row per example)")
    return tuple(shape), dtype


def _checked_headers(z: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], path: str) -> int:
    """Each member's header agrees with the bytes it holds; returns their total size, checked against the budget."""
    total = 0
    for name, info in infos.items():
        with z.open(info) as f:
            shape, dtype = _header(f, name, path)
            offset = f.tell()
        said = math.prod(shape) * dtype.itemsize
        held = info.file_size - offset
        if said != held:
            raise BadFile(f"array {name!r} in {path}: its header says {dtype} {shape} ({budget.size_text(said)}) "
                          f"but the archive holds {budget.size_text(max(held, 0))} for it (truncated or crafted)")
        total += said
    # loading costs the arrays once, and the float64 copy the data pipeline makes of them
    budget.check(3 * total, f"{path} (arrays {', '.join(map(repr, infos))}, {budget.size_text(total)} as stored)")
    return total


def safe_npz_arrays(path: str, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays `keys` (all when None) of an .npz archive, every header checked before any is loaded.

    BadFile for anything that is not an .npz of numeric arrays whose headers match their sizes and fit the
    memory budget; MissingArrays when a requested key is absent. Never unpickles.
    """
    with open_regular(path, "an .npz archive") as f:
        if f.read(6) == b"\x93NUMPY":
            raise BadFile(f"{path} holds a single .npy array (accepted: an .npz archive written by np.savez)")
        f.seek(0)
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
            raise BadFile(f"cannot read {path!r}: not an .npz archive (accepted: a file written by np.savez)") from None
        with z:
            members = {i.filename[:-4]: i for i in z.infolist() if i.filename.endswith(".npy") and not i.is_dir()}
            wanted = list(members) if keys is None else list(keys)
            missing = [k for k in wanted if k not in members]
            if missing:
                raise MissingArrays(missing, list(members))
            try:
                _checked_headers(z, {k: members[k] for k in wanted}, path)
                out = {}
                for k in wanted:
                    with z.open(members[k]) as member:
                        out[k] = np.lib.format.read_array(member, allow_pickle=False)
            except OptbenchError:  # BadFile, or the budget's line
                raise
            except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
                    zlib.error) as err:  # CRC mismatch, cut archive, encrypted or unknown compression
                raise BadFile(f"cannot read {path!r}: corrupt archive ({err})") from None
    return out
