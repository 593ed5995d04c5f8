"""CIFAR-10 as distributed: `cifar-10-batches-py/` (pickles), its `.tar.gz`, or `cifar-10-batches-bin/`.

Five training batches then the test batch, 10000 images each: 3072 uint8 values per image (the red,
green and blue 32x32 planes, the file's CHW order, kept as the feature order) and a label 0..9.
The pickles are read by an unpickler that admits only NumPy's array reconstruction, never a general load.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from optbench.datasets.base import Loaded, LoaderError, check_path, class_labels, first
from optbench.registry import PositiveInt

PIXELS = 3072  # 3 x 32 x 32
CLASSES = 10
RECORD = 1 + PIXELS  # the binary version: a label byte, then the pixels
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = "test_batch"
ACCEPTED = ("the cifar-10-batches-py/ or cifar-10-batches-bin/ folder, or cifar-10-python.tar.gz, "
            "from Alex Krizhevsky's CIFAR page")


def _numpy_reconstructors() -> dict[tuple[str, str], object]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    import _codecs

    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # pickles written by NumPy 1 (CIFAR's own)
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # ... and by NumPy 2
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,  # protocol 2 from Python 3 writes bytes as encode(str, 'latin1')
    }


class _Refused(Exception):
    pass


class _ArraysOnly(pickle.Unpickler):
    """Unpickler whose only callables are NumPy's array and dtype reconstruction (and str -> bytes)."""

    def __init__(self, f, allowed):
        super().__init__(f, encoding="bytes")  # CIFAR's pickles come from Python 2: their str are bytes
        self.allowed = allowed

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            raise _Refused(f"{module}.{name}")
        return self.allowed[module, name]

    def persistent_load(self, pid):
        raise _Refused("a persistent id")


def load_batch(data: bytes, source: str, key: str = "path") -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (data (n, 3072) uint8, labels (n,) int64), refusing anything but arrays and lists."""
    try:
        d = _ArraysOnly(io.BytesIO(data), _numpy_reconstructors()).load()
    except _Refused as err:
        raise LoaderError(key, f"{source} is refused: its pickle asks for {err} "
                               "(accepted: a CIFAR batch of NumPy arrays and lists only)") from None
    except Exception as err:  # any malformed pickle: truncated, wrong opcodes, bad array state
        raise LoaderError(key, f"{source} is not a readable CIFAR batch pickle "
                               f"({type(err).__name__}: {str(err)[:80]})") from None
    if not isinstance(d, dict):
        raise LoaderError(key, f"{source} holds a {type(d).__name__} (accepted: a CIFAR batch dict)")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    X, y = d.get("data"), d.get("labels")
    if not isinstance(X, np.ndarray) or X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != PIXELS:
        shown = f"shape {X.shape}, dtype {X.dtype}" if isinstance(X, np.ndarray) else type(X).__name__
        raise LoaderError(key, f"{source}: 'data' is {shown} (accepted: uint8 of shape (n, {PIXELS}))")
    if not isinstance(y, (list, np.ndarray)) or len(y) != len(X) or not all(isinstance(v, (int, np.integer)) for v in y):
        shown = f"{len(y)} labels" if isinstance(y, (list, np.ndarray)) else type(y).__name__
        raise LoaderError(key, f"{source}: 'labels' is {shown} for {len(X)} images (accepted: one integer per image)")
    return X, class_labels(np.asarray(y, dtype=np.int64), CLASSES, key, source)


def _bin_batch(path: str, key: str = "path") -> tuple[np.ndarray, np.ndarray]:
    rec = np.fromfile(path, dtype=np.uint8)
    if len(rec) == 0 or len(rec) % RECORD:
        raise LoaderError(key, f"{path} has {len(rec)} bytes, not a whole number of {RECORD}-byte records "
                               "(a label byte and 3072 pixels): truncated or not a CIFAR-10 binary batch")
    rec = rec.reshape(-1, RECORD)
    return rec[:, 1:], class_labels(rec[:, 0], CLASSES, key, path)


def _folder_batch(folder: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    binary = os.path.exists(os.path.join(folder, TRAIN[0] + ".bin"))
    p = os.path.join(folder, name + (".bin" if binary else ""))
    check_path(p, "path", ACCEPTED, f"the folder {folder} lacks {os.path.basename(p)}: {ACCEPTED}")
    if binary:
        return _bin_batch(p)
    with open(p, "rb") as f:
        return load_batch(f.read(), p)


def _tar_batches(path: str, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The named batches from the members of a .tar.gz, read in one sequential pass (nothing written to disk)."""
    out = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                base, parent = os.path.basename(m.name), os.path.basename(os.path.dirname(m.name))
                name = base.removesuffix(".bin")
                if m.isfile() and name in names and name not in out and parent.startswith("cifar-10-batches"):
                    data = tar.extractfile(m).read()
                    src = f"{path}:{m.name}"
                    if base.endswith(".bin"):
                        raw = np.frombuffer(data, dtype=np.uint8)
                        if len(raw) == 0 or len(raw) % RECORD:
                            raise LoaderError("path", f"{src} has {len(raw)} bytes, not a whole number of "
                                                      f"{RECORD}-byte records: truncated")
                        rec = raw.reshape(-1, RECORD)
                        out[name] = rec[:, 1:], class_labels(rec[:, 0], CLASSES, "path", src)
                    else:
                        out[name] = load_batch(data, src)
                    if len(out) == len(names):
                        break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise LoaderError("path", f"cannot read {path!r} as a CIFAR-10 .tar.gz: truncated or corrupt ({err})") from None
    missing = [n for n in names if n not in out]
    if missing:
        raise LoaderError("path", f"{path} lacks cifar-10-batches-py/{missing[0]} (accepted: {ACCEPTED})")
    return out


def cifar10(*, path: str, n_train: PositiveInt | None = None, dtype: np.dtype = np.dtype(np.float64),
            rng: np.random.Generator) -> Loaded:
    """CIFAR-10 (CS231n's layout): 50000 training images, the 10000 test images as the test split, 3072 features."""
    check_path(path, "path", ACCEPTED)
    if os.path.isdir(path):
        for sub in ("cifar-10-batches-py", "cifar-10-batches-bin"):  # the folder that holds it is fine too
            if os.path.isdir(os.path.join(path, sub)):
                path = os.path.join(path, sub)
                break
        train = []  # only the batches that hold the first n_train examples are read (CS231n's 4000: one)
        for name in TRAIN:
            if n_train is not None and sum(len(b[1]) for b in train) >= n_train:
                break
            train.append(_folder_batch(path, name))
        test = _folder_batch(path, TEST)
    else:  # one sequential pass over the archive's members
        batches = _tar_batches(path, TRAIN + [TEST])
        train, test = [batches[n] for n in TRAIN], batches[TEST]
    n = first(sum(len(b[1]) for b in train), n_train, path)
    X = np.empty((n, PIXELS), dtype=dtype)  # filled batch by batch: the one full-size copy (uint8 fits either dtype)
    y = np.empty(n, dtype=np.int64)
    at = 0
    for Xb, yb in train:
        k = min(len(yb), n - at)
        X[at : at + k], y[at : at + k] = Xb[:k], yb[:k]
        at += k
    Xt, yt = test
    return Loaded(X, y, "multiclass", CLASSES, (Xt.astype(dtype), yt))
