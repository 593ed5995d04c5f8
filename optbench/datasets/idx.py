"""IDX files, raw or gzipped (MNIST, Fashion-MNIST, EMNIST): images and labels, the test files as the test split.

Format (LeCun's): bytes 0, 0, a type code, the number of dimensions d; then d big-endian uint32 sizes;
then the values, big-endian, row-major. Images (N, h, w) are flattened to (N, h*w) in the training dtype
(base.read_dtype: float32 for uint8 or float32 files trained in float32, else float64).
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from typing import Annotated, BinaryIO

import numpy as np
from pydantic import Field

from optbench.datasets.base import CHUNK_BYTES, Loaded, LoaderError, check_path, class_labels, first, read_dtype
from optbench.registry import PositiveInt

Classes = Annotated[int, Field(ge=2)]

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# the standard names in a folder (MNIST's, Fashion-MNIST's; EMNIST's carry a prefix such as emnist-digits-)
_STANDARD = {
    "images": r"train-images[.-]idx3-ubyte",
    "labels": r"train-labels[.-]idx1-ubyte",
    "test_images": r"(t10k|test)-images[.-]idx3-ubyte",
    "test_labels": r"(t10k|test)-labels[.-]idx1-ubyte",
}

ACCEPTED = ("a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
            "t10k-labels-idx1-ubyte (each may end in .gz), or images: and labels: files")


def _open(path: str, key: str) -> BinaryIO:
    check_path(path, key, "an IDX file, raw or .gz")
    if os.path.isdir(path):
        raise LoaderError(key, f"{path!r} is a directory, not an IDX file")
    try:
        f = open(path, "rb")
        gz = f.read(2) == b"\x1f\x8b"
        f.seek(0)
    except OSError as err:
        raise LoaderError(key, f"cannot read {path!r}: {err.strerror or err}") from None
    return gzip.GzipFile(fileobj=f, mode="rb") if gz else f


def _read(f: BinaryIO, n: int, path: str, key: str, what: str) -> bytes:
    try:
        b = f.read(n)
    except (EOFError, OSError, zlib.error) as err:  # a cut or corrupt .gz stream
        raise LoaderError(key, f"{path} is truncated or corrupt while reading {what} ({err})") from None
    if len(b) < n:
        raise LoaderError(key, f"{path} is truncated: {what} needs {n} bytes, the file has {len(b)} left")
    return b


def _header(f: BinaryIO, path: str, key: str) -> tuple[np.dtype, tuple[int, ...]]:
    head = _read(f, 4, path, key, "the header")
    if head[:2] != b"\0\0" or head[2] not in _TYPES or head[3] == 0:
        raise LoaderError(key, f"{path} is not an IDX file: magic number 0x{head.hex()} "
                               "(accepted: 0x0000TTDD with type TT in 08, 09, 0b, 0c, 0d, 0e and DD dimensions)")
    dims = struct.unpack(f">{head[3]}I", _read(f, 4 * head[3], path, key, "the dimensions"))
    return np.dtype(_TYPES[head[2]]), dims


def read_idx(path: str, key: str, limit: int | None = None, *, flat: bool = True, dtype=np.float64) -> np.ndarray:
    """The first `limit` (default all) records of an IDX file: (n, prod(dims[1:])) in read_dtype(stored, dtype) if
    flat, else as stored.

    The values are read into the output chunk by chunk, so the output is the one full-size copy.
    """
    with _open(path, key) as f:
        stored, dims = _header(f, path, key)
        n = dims[0] if limit is None else min(limit, dims[0])
        width = int(np.prod(dims[1:], dtype=np.int64))
        out = np.empty((n, width), dtype=read_dtype(stored, dtype) if flat else stored.newbyteorder("="))
        rows = max(1, CHUNK_BYTES // max(1, width * stored.itemsize))
        for a in range(0, n, rows):
            b = min(n, a + rows)
            raw = _read(f, (b - a) * width * stored.itemsize, path, key,
                        f"{dims[0]} records of shape {tuple(dims[1:])} as its header says")
            out[a:b] = np.frombuffer(raw, dtype=stored).reshape(b - a, width)
        if n == dims[0]:
            try:
                extra = f.read(1)
            except (EOFError, OSError, zlib.error) as err:
                raise LoaderError(key, f"{path} is corrupt after its data ({err})") from None
            if extra:
                raise LoaderError(key, f"{path} holds more data than its header's {dims[0]} records of "
                                       f"shape {tuple(dims[1:])}")
    return out if flat else out.reshape(n, *dims[1:])


def _labels(path: str, key: str, limit: int | None, n_images: int, images: str) -> np.ndarray:
    """The first `limit` labels of an IDX labels file whose header must count `n_images`, as stored."""
    with _open(path, key) as f:
        dims = _header(f, path, key)[1]
    if len(dims) != 1:
        raise LoaderError(key, f"{path} has shape {dims} (accepted: labels, one value per example: 1 dimension)")
    if dims[0] != n_images:
        raise LoaderError(key, f"{path} has {dims[0]} labels but {images} has {n_images} images "
                               "(accepted: one label per image)")
    return read_idx(path, key, limit, flat=False)


def _in_folder(folder: str) -> dict[str, str]:
    names = sorted(os.listdir(folder))
    out = {}
    for key, stem in _STANDARD.items():
        hits = [n for n in names if re.fullmatch(rf"(.*-)?{stem}(\.gz)?", n)]
        if len(hits) != 1:
            found = "none" if not hits else ", ".join(hits)
            raise LoaderError("path", f"{folder} holds {len(hits)} files named like {stem}[.gz] ({found}) "
                                      f"(accepted: {ACCEPTED})")
        out[key] = os.path.join(folder, hits[0])
    return out


def idx(
    *, path: str | None = None, images: str | None = None, labels: str | None = None,
    test_images: str | None = None, test_labels: str | None = None, n_train: PositiveInt | None = None,
    classes: Classes | None = None, dtype: np.dtype = np.dtype(np.float64), rng: np.random.Generator,
) -> Loaded:
    """IDX images and labels (MNIST, Fashion-MNIST, EMNIST; raw or .gz): a folder of the four files, or the files."""
    if path is not None:
        if images or labels or test_images or test_labels:
            raise LoaderError("path", f"{path!r} is a folder of the four files: give path or images/labels, not both")
        check_path(path, "path", ACCEPTED)
        if not os.path.isdir(path):
            raise LoaderError("path", f"{path!r} is not a folder (accepted: {ACCEPTED})")
        files = _in_folder(path)
    else:
        if not images or not labels:
            raise LoaderError("images" if not images else "labels", f"required (accepted: {ACCEPTED})")
        if bool(test_images) != bool(test_labels):
            missing = "test_labels" if test_images else "test_images"
            raise LoaderError(missing, "required with " + ("test_images" if test_images else "test_labels"))
        files = {"images": images, "labels": labels, "test_images": test_images, "test_labels": test_labels}
    with _open(files["images"], "images" if path is None else "path") as f:
        n_all = _header(f, files["images"], "images")[1][0]
    n = first(n_all, n_train, files["images"])
    parts = []
    for xk, yk, limit in (("images", "labels", n), ("test_images", "test_labels", None)):
        if files[xk] is None:
            parts.append(None)
            continue
        kx, ky = (xk, yk) if path is None else ("path", "path")
        X = read_idx(files[xk], kx, limit, dtype=dtype)
        if X.shape[1] == 0 or len(X) == 0:
            raise LoaderError(kx, f"{files[xk]} has no values (accepted: N >= 1 images of >= 1 value)")
        n_images = n_all if xk == "images" else len(X)
        parts.append((X, _labels(files[yk], ky, limit, n_images, files[xk]), ky, files[yk]))
    train, test = parts
    if test is not None and test[0].shape[1] != train[0].shape[1]:
        raise LoaderError("test_images" if path is None else "path",
                          f"{files['test_images']} has {test[0].shape[1]} values per image but {files['images']} "
                          f"has {train[0].shape[1]} (accepted: the same image size)")
    K = classes or int(max(p[1].max() for p in parts if p is not None)) + 1
    if K < 2:
        raise LoaderError(train[2], f"{train[3]} holds a single class, label {K - 1} (accepted: 2 or more classes)")
    y, yt = (None if p is None else class_labels(p[1], K, p[2], p[3]) for p in parts)
    task = "binary" if K == 2 else "multiclass"
    return Loaded(train[0], y, task, K, None if test is None else (test[0], yt))
