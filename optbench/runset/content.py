"""What compare and plot rely on in a run read back: types in summary.json and config.yaml, epochs 0..E, sane npz."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from optbench.runs.read import CorruptRun, Run
from optbench.runset.values import is_int, is_number, short
from optbench.yamlio import MAX_DEPTH

NPZ_FILES = ("params.npz", "activations.npz", "trajectory.npz")
SECTIONS = ("data", "model", "optimizer", "train", "regularization", "schedule", "momentum_schedule")
MAX_JSON_DEPTH = MAX_DEPTH  # as for YAML; a summary.json is 4 levels deep


def depth(obj: Any) -> int:
    """Nesting levels of plain JSON/YAML data (a scalar is 0), without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        children = o.values() if isinstance(o, dict) else o if isinstance(o, list) else None
        if children is not None:
            deepest = max(deepest, d)
            if d <= MAX_JSON_DEPTH:  # past the bound the answer is known: stop walking
                stack.extend((c, d + 1) for c in children)
    return deepest


_KINDS: Mapping[str, tuple[Callable[[Any], bool], str]] = MappingProxyType({
    "text": (lambda v: isinstance(v, str), "a text"),
    "int": (is_int, "an integer"),
    "number": (is_number, "a number"),
    "mapping": (lambda v: isinstance(v, dict), "a mapping"),
    "mapping!": (lambda v: isinstance(v, dict), "a mapping"),  # and not null: a resolved config has every section
})
SUMMARY = MappingProxyType({  # summary.json key -> its kind
    "reason": "text", "name": "text", "label": "text", "group": "text", "created": "text", "finished": "text",
    "seed": "int", "epochs": "int", "seconds": "number", "fingerprints": "mapping", "initial": "mapping",
    "final": "mapping", "best": "mapping", "final_eval": "mapping", "versions": "mapping", "sweep": "mapping"})
SWEEP_TAG = MappingProxyType({  # summary.json's sweep.* key -> its kind
    "id": "text", "name": "text", "key": "text", "variant": "text", "trial": "text", "params": "mapping",
    "fold": "int", "folds": "int", "method": "text", "budget": "int", "metric": "text"})
CONFIG = MappingProxyType({"name": "text", "label": "text", "seed": "int", "loss": "text",
                           **dict.fromkeys(SECTIONS, "mapping!")})
NESTED = MappingProxyType({("data", "name"): "text", ("data", "fold"): "int", ("optimizer", "name"): "text",
                           ("optimizer", "lr"): "number"})


def _check_types(path: Path, file: str, obj: dict, kinds: Mapping[str, str], prefix: str = "") -> None:
    """Each key of `kinds` present in `obj` has its kind (or is null, unless the kind ends in !); else CorruptRun."""
    for key, kind in kinds.items():
        if key not in obj:
            continue
        v = obj[key]
        ok, accepted = _KINDS[kind]
        if (v is not None or kind.endswith("!")) and not ok(v):
            raise CorruptRun(f"{path}: {file} {prefix}{key}: {short(v)} is not {accepted}")


def check(run: Run) -> None:
    """What compare and plot rely on: types in summary.json and config.yaml, epochs 0..E, sane npz files."""
    p, s, cfg = run.path, run.summary, run.config
    if depth(s) > MAX_JSON_DEPTH:  # every later walk over it (json.dumps, flatten) would recurse as deep
        raise CorruptRun(f"{p}: summary.json is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    _check_types(p, "summary.json", s, SUMMARY)
    tag = s.get("sweep")
    if tag is not None:
        _check_types(p, "summary.json", tag, SWEEP_TAG, "sweep.")
        if not tag.get("id"):
            raise CorruptRun(f"{p}: summary.json sweep.id: {short(tag.get('id'))} is not a sweep id")
    _check_types(p, "config.yaml", cfg, CONFIG)
    for (section, key), kind in NESTED.items():
        if isinstance(cfg.get(section), dict):
            _check_types(p, "config.yaml", cfg[section], {key: kind}, f"{section}.")
    if not isinstance(run.label, str) or not run.label:
        raise CorruptRun(f"{p}: summary.json label: {short(run.label)} is not a label")
    _check_epochs(run)
    for name in NPZ_FILES:
        if (p / name).exists():
            _check_npz(p / name, cfg if name == "params.npz" else None)


def _check_epochs(run: Run) -> None:
    """metrics.csv must hold epochs 0..E, E as summary.json says: a file cut at a row boundary parses cleanly."""
    ep = run.metrics["epoch"]
    if not len(ep) or ep[0] != 0 or not np.array_equal(ep, np.arange(len(ep))):
        raise CorruptRun(f"{run.path}: metrics.csv epochs are not 0, 1, 2, ...")
    said = run.summary.get("epochs")
    # an interrupt can land after an epoch's row is written but before the loop counts it: no check then
    if said is not None and said != int(ep[-1]) and run.status not in ("interrupted", "running"):
        raise CorruptRun(f"{run.path}: metrics.csv ends at epoch {int(ep[-1])} but summary.json says {said} (truncated?)")


def _npz_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Array name -> shape from the .npy headers only (nothing is loaded); ValueError when anything is off."""
    shapes = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"{info.filename!r} is not an array")
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"npy format {version}")
                if dtype.hasobject or dtype.kind not in "biuf":
                    raise ValueError(f"{info.filename[:-4]} holds {dtype}, not numbers")
                if math.prod(shape) * dtype.itemsize != info.file_size - f.tell():
                    raise ValueError(f"{info.filename[:-4]}: its header says {dtype} {tuple(shape)}, but "
                                     f"{info.file_size - f.tell()} bytes follow")
            shapes[info.filename[:-4]] = tuple(shape)
    return shapes


def _check_npz(path: Path, cfg: dict | None) -> None:
    """An npz is arrays of numbers whose headers match their data; params.npz's W_i, b_i also chain as the net."""
    try:
        shapes = _npz_shapes(path)
    except Exception as err:  # noqa: BLE001 - whatever a hostile file makes zipfile or numpy raise, it is corrupt
        raise CorruptRun(f"{path.parent}: bad {path.name} ({err.__class__.__name__}: {short(str(err), 120)})") from None
    if cfg is None or "W1" not in shapes:
        return
    hidden = (cfg.get("model") or {}).get("hidden")
    n = 1
    while f"W{n + 1}" in shapes:
        n += 1
    why = None
    if isinstance(hidden, list) and n != len(hidden) + 1:
        why = f"{n} weight matrices for model.hidden {hidden}"
    for i in range(1, n + 1):
        W, b = shapes[f"W{i}"], shapes.get(f"b{i}")
        if len(W) != 2 or (b is not None and b != W[:1]) or (i > 1 and W[1] != shapes[f"W{i - 1}"][0]):
            why = why or f"W{i} {W} and b{i} {b} do not fit the layers around them"
    if why:
        raise CorruptRun(f"{path.parent}: bad params.npz ({why})")
