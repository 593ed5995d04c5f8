"""Checkpoints: a run's training state as one .npz file (no pickle), written atomically, read back exactly.

A state is a tree of dicts (str keys), NamedTuples, tuples, lists, ndarrays, NumPy scalars and plain
Python values (None, bool, int, float, str). `save` packs the bytes of every array and NumPy scalar into
one blob (each at an aligned offset) and writes the shape of the tree as JSON beside it, each array named
there by (offset, dtype, shape); `load` rebuilds it, NumPy types and dtypes unchanged, so a resumed run
computes what the uninterrupted one did. One blob, not one .npz member per array: a zip member costs about
0.1 ms to write, and a group checkpoints hundreds of runs with a dozen arrays each. The optimizer's state is
walked as whatever its rule returns (a NamedTuple per rule, optimizer.py): nothing here knows its fields.

A group trains R replicas at once, and an update rule's state covers a slice of n of them; `rows_of`
cuts replica i's part out of such a state (arrays with a leading axis of n, marked `Rows`), and
`combine` joins the parts of the m replicas of a new group against the state a fresh `init` gives it.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

TREE = "__tree__"
BLOB = "__blob__"
FORMAT = 3  # 2: optimizer states are NamedTuples (one per rule), no longer dicts; 3: the arrays in one blob
ALIGN = 16  # bytes: every array starts at a multiple of this in the blob


class Rows:
    """One replica's rows (1, ...) of an array whose leading axis is the replica axis of its slice."""

    __slots__ = ("a",)

    def __init__(self, a: np.ndarray):
        self.a = a


class _Named:
    """A NamedTuple read back: its field names and values (made its class again by `combine`, from the template)."""

    __slots__ = ("fields", "items")

    def __init__(self, fields: list[str], items: list):
        self.fields, self.items = fields, items


def _is_named(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


# ---- replicas -------------------------------------------------------------------------------------


def rows_of(tree: Any, i: int, n: int) -> Any:
    """Replica i's part of a state over n replicas: arrays (n, ...) become Rows (1, ...), the rest is shared."""
    if isinstance(tree, np.ndarray):
        return Rows(tree[i : i + 1].copy()) if tree.ndim and tree.shape[0] == n else tree.copy()
    if isinstance(tree, dict):
        return {k: rows_of(v, i, n) for k, v in tree.items()}
    if _is_named(tree):
        return type(tree)._make(rows_of(v, i, n) for v in tree)
    if isinstance(tree, (list, tuple)):
        return type(tree)(rows_of(v, i, n) for v in tree)
    return tree


def combine(parts: list, template: Any, m: int) -> Any:
    """The state of m replicas from their parts (as `rows_of` made them), shaped like `template` (a fresh init).

    Rows are stacked where the template keeps one row per replica. Where the template holds one plain
    value (a fresh init's 1.0 that becomes one value per replica once their hyperparameters differ, as
    NAdam's mu_product), the rows stay one value of that type if they all agree, and are stacked if not.
    A plain value saved per slice (a step count) is the first part's; one the template holds per replica
    is broadcast into its rows.
    """
    first = parts[0]
    per_replica = isinstance(template, np.ndarray) and template.ndim > 0 and template.shape[0] == m
    if isinstance(first, Rows):
        if template is not None and not isinstance(template, np.ndarray):
            rows = [p.a for p in parts]
            if all(r.size == 1 and r.tobytes() == rows[0].tobytes() for r in rows):
                return type(template)(rows[0].reshape(()).item()) if type(template) in _PLAIN else rows[0].reshape(())[()]
            return np.concatenate(rows)
        a = np.concatenate([p.a for p in parts])
        return a.astype(template.dtype, copy=False) if isinstance(template, np.ndarray) else a
    if per_replica and not isinstance(first, (np.ndarray, dict, list, tuple, _Named)) and first is not None:
        out = np.empty_like(template)
        for r, p in enumerate(parts):
            out[r] = p
        return out
    if isinstance(first, dict):
        tpl = template if isinstance(template, dict) else {}
        return {k: combine([p[k] for p in parts], tpl.get(k), m) for k in first}
    if isinstance(first, _Named):
        values = [combine([p.items[j] for p in parts], getattr(template, f, None), m) for j, f in enumerate(first.fields)]
        if _is_named(template) and list(template._fields) == first.fields:
            return type(template)._make(values)
        return dict(zip(first.fields, values))
    if isinstance(first, (list, tuple)):
        same = isinstance(template, (list, tuple)) and len(template) == len(first)
        return type(first)(combine([p[j] for p in parts], template[j] if same else None, m) for j in range(len(first)))
    return first


# ---- files ----------------------------------------------------------------------------------------


class _Blob:
    """The arrays of a tree, laid end to end: `put` gives each its [offset, dtype, shape]."""

    def __init__(self):
        self.parts: list[np.ndarray] = []
        self.size = 0

    def put(self, a: np.ndarray) -> list:
        a = a if a.flags.c_contiguous else a.copy(order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        where = [self.size, a.dtype.str, list(a.shape)]
        self.parts.append(a.reshape(-1).view(np.uint8))
        pad = -a.nbytes % ALIGN
        if pad:
            self.parts.append(np.zeros(pad, dtype=np.uint8))
        self.size += a.nbytes + pad
        return where

    def bytes(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.uint8)


def _array(blob: np.ndarray, where: list) -> np.ndarray:
    """The array `_Blob.put` placed at where = [offset, dtype, shape]: an owned copy, aligned."""
    off, dtype, shape = where
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(blob, dtype=dt, count=n, offset=off).reshape(shape).copy()


_PLAIN = (type(None), bool, int, float, str)


def _plain(x: dict) -> bool:
    """Whether a dict holds only str keys and plain values or such dicts (a bit generator's state): JSON as it is."""
    return all(type(k) is str and (type(v) in _PLAIN or (type(v) is dict and _plain(v))) for k, v in x.items())


def _encode(x: Any, arrays: _Blob) -> Any:
    put = arrays.put

    if isinstance(x, Rows):
        return {"rows": put(x.a)}
    if isinstance(x, np.ndarray):
        if x.dtype.hasobject:
            raise TypeError("object arrays are not checkpointed")
        return {"a": put(x)}
    if isinstance(x, np.generic):
        return {"s": put(np.asarray(x))}
    if x is None or isinstance(x, (bool, int, float, str)):
        return {"v": x}
    if type(x) is dict and _plain(x):  # a node per value would cost more than the rest of a run's state
        return {"j": x}
    if isinstance(x, dict):
        if not all(isinstance(k, str) for k in x):
            raise TypeError("checkpointed dicts have str keys")
        return {"d": [[k, _encode(v, arrays)] for k, v in x.items()]}
    if _is_named(x):
        return {"nt": list(x._fields), "items": [_encode(v, arrays) for v in x]}
    if isinstance(x, list):
        return {"l": [_encode(v, arrays) for v in x]}
    if isinstance(x, tuple):
        return {"t": [_encode(v, arrays) for v in x]}
    raise TypeError(f"{type(x).__name__} is not checkpointed")


def _decode(node: dict, arrays: Callable[[list], np.ndarray]) -> Any:
    if "rows" in node:
        return Rows(arrays(node["rows"]))
    if "a" in node:
        return arrays(node["a"])
    if "s" in node:
        return arrays(node["s"])[()]  # a NumPy scalar of the saved dtype
    if "v" in node:
        return node["v"]
    if "j" in node:
        return node["j"]
    if "d" in node:
        return {k: _decode(v, arrays) for k, v in node["d"]}
    if "nt" in node:
        return _Named(list(node["nt"]), [_decode(v, arrays) for v in node["items"]])
    if "l" in node:
        return [_decode(v, arrays) for v in node["l"]]
    if "t" in node:
        return tuple(_decode(v, arrays) for v in node["t"])
    raise ValueError(f"unknown checkpoint node {sorted(node)}")


def dumps(tree: Any) -> bytes:
    """The .npz file of `tree`, as bytes: its JSON shape and its arrays' blob."""
    blob = _Blob()
    meta = json.dumps({"format": FORMAT, "tree": _encode(tree, blob)})
    f = io.BytesIO()
    np.savez(f, **{TREE: np.array(meta), BLOB: blob.bytes()})
    return f.getvalue()


def save(path: Path, tree: Any) -> None:
    """Write `tree` to `path` atomically: a temporary file beside it, then os.replace (a kill leaves the old one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(dumps(tree))
    os.replace(tmp, path)


def load(path: Path) -> Any:
    """The tree `save` wrote (ValueError, OSError or KeyError when the file is not one, or was cut short)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z[TREE][()]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"checkpoint format {meta.get('format')!r}")
            blob = z[BLOB]  # read whole: zipfile checks its CRC, so a torn overwrite fails here
    except (zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: {err}") from None
    return _decode(meta["tree"], lambda where: _array(blob, where))


# ---- two slots, rewritten in place ------------------------------------------------------------------


def overwrite(path: Path, data: bytes) -> None:
    """Write `data` over the file at `path` in place (made the first time), cut to its length.

    Not atomic: a kill may leave a torn file, which `load` rejects; so a run keeps two such slots and
    writes them in turn (`newest` reads the better one). Why not a new file and os.replace each time:
    on ext4 (discard, auto_da_alloc) replacing a file costs 1.5-4 ms in the kernel, rewriting one 0.03 ms,
    and a group rewrites hundreds of checkpoints every interval.
    """
    try:
        f = open(path, "r+b")
    except FileNotFoundError:
        f = open(path, "wb")
    with f:
        f.write(data)
        f.truncate()


def newest(paths: list[Path], accept: Callable[[Any], bool], key: Callable[[Any], Any]) -> Any:
    """The tree with the largest `key` among the slots at `paths` that load and that `accept` takes (None: none)."""
    best = None
    for p in paths:
        try:
            tree = load(p)
            if not accept(tree):
                continue
            if best is None or key(tree) > key(best):
                best = tree
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return best


# ---- generators -----------------------------------------------------------------------------------


def advanced(state: dict, draws: int) -> dict:
    """A bit generator's state `draws` 64-bit outputs later (one per float64 drawn by `random`)."""
    bg = getattr(np.random, state["bit_generator"])()
    bg.state = state
    bg.advance(draws)
    return bg.state
