"""Which runs belong together: one reader, one grouping and one default for compare, plot and sweep results.

Reading: paths (run directories, directories holding runs, sweep directories holding sweep.json) -> the
readable runs, each once; a bad run costs one warning line, never the command, whatever its files hold.
A run is (sweep, label, config_key, replicate): the same config and seed twice is one run, the newest
finished one (a rerun). Grouping: one group per label and config, named by the label and the config keys
that differ within the label (`sgd lr=0.1`). Called bare, compare and plot take the newest experiment.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from optbench.errors import OptbenchError
from optbench.files import read_bounded
from optbench.runs import STATUSES, CorruptRun, Run, read_run
from optbench.yamlio import MAX_BYTES, MAX_DEPTH

Warn = Callable[[str], None]
FINISHED = ("completed", "diverged", "stopped_early")  # beat interrupted, which beats failed and running
RUN_FILES = ("summary.json", "config.yaml", "metrics.csv")
NPZ_FILES = ("params.npz", "activations.npz", "trajectory.npz")
NOT_RUNS = ("plots",)  # what lives beside runs in a runs directory
SECTIONS = ("data", "model", "optimizer", "train", "regularization", "schedule", "momentum_schedule")
DIGITS = (4, 6, 10, 17)  # significant digits tried in display names until they are distinct


# ---- finding --------------------------------------------------------------------------------------


def _is_run(p: Path) -> bool:
    return any((p / f).exists() for f in RUN_FILES)


def is_sweep_dir(p: Path) -> bool:
    """A sweep directory holds sweep.json and one run directory per run (and is no run itself)."""
    return (p / "sweep.json").is_file() and not _is_run(p)


def _children(d: Path, warn: Warn) -> list[Path]:
    try:
        return sorted(q for q in d.iterdir() if not q.name.startswith(".") and q.name not in NOT_RUNS and q.is_dir())
    except OSError as err:
        warn(f"warning: {d}: cannot list ({err.strerror or err.__class__.__name__})")
        return []


def find_dirs(paths: Iterable[str | Path], warn: Warn) -> list[Path]:
    """Run directories named directly, one level below a directory holding runs, or inside a sweep directory
    (named, or found in a directory holding runs); each once, as first named. A missing path is a warning."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if _is_run(p):
            found.append(p)
        elif is_sweep_dir(p):
            found.extend(_children(p, warn))
        elif p.is_dir():
            for q in _children(p, warn):
                found.extend(_children(q, warn) if is_sweep_dir(q) else [q])
        elif p.exists():
            found.append(p)  # not a directory: the reader says so
        else:
            warn(f"warning: {raw}: no such run directory")
    seen: dict[Path, Path] = {}
    for d in found:
        try:
            real = d.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            real = d.absolute()
        seen.setdefault(real, d)
    return list(seen.values())


# ---- reading --------------------------------------------------------------------------------------


def read(paths: Iterable[str | Path], warn: Warn) -> list[Run]:
    """Every readable run under `paths`, each once, duplicates resolved; one warning per bad run."""
    runs = []
    for d in find_dirs(paths, warn):
        try:
            runs.append(read_one(d))
        except CorruptRun as err:
            warn(f"warning: {err}")
    return distinct(runs, warn)


MAX_FILE_BYTES = {"summary.json": 16 * 2**20, "config.yaml": MAX_BYTES, "metrics.csv": 256 * 2**20}  # ~1M epochs
MAX_JSON_DEPTH = MAX_DEPTH  # as for YAML; a summary.json is 4 levels deep


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
        raise CorruptRun(f"{path}: unreadable ({err.__class__.__name__}: {_short(err)})") from None
    check(run)
    return run


def _short(value: Any, n: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "text": (lambda v: isinstance(v, str), "a text"),
    "int": (_is_int, "an integer"),
    "number": (_is_number, "a number"),
    "mapping": (lambda v: isinstance(v, dict), "a mapping"),
    "mapping!": (lambda v: isinstance(v, dict), "a mapping"),  # and not null: a resolved config has every section
}
SUMMARY = {"reason": "text", "name": "text", "label": "text", "group": "text", "created": "text", "finished": "text",
           "seed": "int", "epochs": "int", "seconds": "number", "fingerprints": "mapping", "initial": "mapping",
           "final": "mapping", "best": "mapping", "final_eval": "mapping", "versions": "mapping", "sweep": "mapping"}
SWEEP_TAG = {"id": "text", "name": "text", "key": "text", "variant": "text", "trial": "text", "params": "mapping",
             "fold": "int", "folds": "int", "method": "text", "budget": "int", "metric": "text"}
CONFIG = {"name": "text", "label": "text", "seed": "int", "loss": "text", **dict.fromkeys(SECTIONS, "mapping!")}
NESTED = {("data", "name"): "text", ("data", "fold"): "int", ("optimizer", "name"): "text", ("optimizer", "lr"): "number"}


def _check_types(path: Path, file: str, obj: dict, kinds: dict, prefix: str = "") -> None:
    """Each key of `kinds` present in `obj` has its kind (or is null, unless the kind ends in !); else CorruptRun."""
    for key, kind in kinds.items():
        if key not in obj:
            continue
        v = obj[key]
        ok, accepted = _KINDS[kind]
        if (v is not None or kind.endswith("!")) and not ok(v):
            raise CorruptRun(f"{path}: {file} {prefix}{key}: {_short(v)} is not {accepted}")


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
            raise CorruptRun(f"{p}: summary.json sweep.id: {_short(tag.get('id'))} is not a sweep id")
    _check_types(p, "config.yaml", cfg, CONFIG)
    for (section, key), kind in NESTED.items():
        if isinstance(cfg.get(section), dict):
            _check_types(p, "config.yaml", cfg[section], {key: kind}, f"{section}.")
    if not isinstance(run.label, str) or not run.label:
        raise CorruptRun(f"{p}: summary.json label: {_short(run.label)} is not a label")
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
        raise CorruptRun(f"{path.parent}: bad {path.name} ({err.__class__.__name__}: {_short(str(err), 120)})") from None
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


# ---- identity and duplicates ----------------------------------------------------------------------


def config_key(cfg: dict) -> str:
    """A short hash of the config minus the seed (and data.fold): runs of one label with other settings differ."""
    cfg = per_replicate({k: v for k, v in cfg.items() if k != "seed"})
    if isinstance(cfg.get("data"), dict):
        cfg["data"] = {k: v for k, v in cfg["data"].items() if k != "fold"}  # folds aggregate as seeds do
    text = json.dumps(cfg, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]


FROM_A_RUN = "a run"  # model.init_from as compared: each seed fine-tunes from its own source run, like its own init


def per_replicate(cfg: dict) -> dict:
    """cfg with model.init_from's directory (which differs from seed to seed) replaced by FROM_A_RUN."""
    model = cfg.get("model")
    if isinstance(model, dict) and model.get("init_from") is not None:
        cfg = {**cfg, "model": {**model, "init_from": FROM_A_RUN}}
    return cfg


def replicate(cfg: dict) -> tuple[int, int]:
    """What a group aggregates over: the seed, and data.fold under k-fold cross-validation (-1 without)."""
    data = cfg.get("data")
    fold = data.get("fold") if isinstance(data, dict) else None
    seed = cfg.get("seed", 0)
    return (seed if _is_int(seed) else 0), (fold if _is_int(fold) else -1)


def sweep_id(run: Run) -> str:
    tag = run.summary.get("sweep")
    return tag["id"] if isinstance(tag, dict) and isinstance(tag.get("id"), str) else ""


def identity(run: Run) -> tuple:
    """Two runs with the same identity are one run trained twice."""
    return sweep_id(run), run.label, config_key(run.config), replicate(run.config)


def created(run: Any) -> str:
    """When a run was made: `created` (summary.json's, or a RunFacts'), else the directory's mtime in that form."""
    text = getattr(run, "created", None)
    if not isinstance(text, str) or not text:
        text = run.summary.get("created") if isinstance(getattr(run, "summary", None), dict) else None
    return text if isinstance(text, str) and text else _mtime_text(Path(run.path))


def _mtime_text(path: Path) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(path.stat().st_mtime))
    except OSError:
        return ""


def _newest(run: Any) -> tuple:
    """Sort key: finished beats interrupted beats failed and running; then the newer; then the path."""
    rank = 2 if run.status in FINISHED else 1 if run.status == "interrupted" else 0
    return rank, created(run), str(run.path.name)


def duplicates_line(n: int) -> str:
    return (f"warning: {n} duplicate run{'s' if n != 1 else ''} ignored (same label, config and seed); "
            "the newest finished run of each kept")


def distinct(runs: list[Run], warn: Warn) -> list[Run]:
    """One run per identity, the newest finished one (one warning line for all the others); then running and
    failed runs are left out with a warning each."""
    best: dict[tuple, Run] = {}
    for r in runs:
        key = identity(r)
        if key not in best or _newest(r) > _newest(best[key]):
            best[key] = r
    if len(best) < len(runs):
        warn(duplicates_line(len(runs) - len(best)))
    keep = {id(r) for r in best.values()}
    out = []
    for r in runs:
        if id(r) not in keep:
            continue
        if r.status == "running":
            warn(f"warning: {r.path}: status running (still training, or killed before it finished)")
        elif r.status == "crashed":  # runs.effective_status: left running by a process that is gone
            warn(f"warning: {r.path}: status crashed (its training process is gone; `optbench train CONFIG --resume` goes on)")
        elif r.status == "failed":
            warn(f"warning: {r.path}: status failed ({_short(r.summary.get('reason') or 'no reason given')})")
        elif r.status in STATUSES:
            out.append(r)
    return out


# ---- grouping -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunGroup:
    """The runs of one label and config (one per replicate, by seed), and the name both compare and plot show."""

    label: str
    key: str  # config_key of its runs
    name: str  # the label, then the config keys that differ within the label: `sgd lr=0.1`
    varied: dict[str, Any]  # those keys (dotted) and their values in this group
    items: tuple  # runs.Run or compare.RunFacts: anything with .label, .config, .status, .path


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"optimizer.lr": 0.01, ...}, without what a group aggregates over (seed, data.fold) or
    names already (label)."""
    out: dict[str, Any] = {}
    for k, v in (cfg if prefix else per_replicate(cfg)).items():
        if (not prefix and k in ("seed", "label")) or (prefix == "data." and k == "fold"):
            continue
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def differing(flats: list[dict[str, Any]]) -> list[str]:
    """Keys whose values differ between configs, in config order; a key missing where its section's `name`
    differs is not one (adam has no `mu`: optimizer.name already says so)."""
    keys = list(dict.fromkeys(k for f in flats for k in f))
    out = []
    for k in keys:
        named = f"{k.rpartition('.')[0]}.name"
        values = {json.dumps(f.get(k, "\0missing"), sort_keys=True, default=str) for f in flats if k in f or named not in f}
        if len(values) > 1:
            out.append(k)
    return out


def value_text(v: Any, digits: int = DIGITS[0]) -> str:
    """A config value in a display name: numbers to `digits` significant digits, YAML's words otherwise."""
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:.{digits}g}" if digits < 17 else repr(v)
    if isinstance(v, (int, str)):
        return _short(str(v), 40)
    return _short(json.dumps(v, default=str, separators=(",", ":")), 40)


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Dotted key -> its last part (`lr`), or the whole key where two keys share a last part."""
    last = [k.rpartition(".")[2] for k in keys]
    return {k: (t if last.count(t) == 1 else k) for k, t in zip(keys, last)}


def _sort_value(v: Any) -> tuple:
    if _is_number(v) and not math.isnan(v):
        return 0, float(v), ""
    return (1, 0.0, json.dumps(v, sort_keys=True, default=str)) if v is not None else (2, 0.0, "")


def _names(label: str, flats: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Display names of a label's configs (in the given order), distinct, and the keys each shows."""
    if len(flats) == 1:
        return [label], [{}]
    keys = differing(flats)
    short = _short_keys(keys)
    shown = [{k: f.get(k) for k in keys} for f in flats]
    names: list[str] = []
    for digits in DIGITS:
        names = [" ".join([label] + [f"{short[k]}={value_text(f[k], digits) if k in f else '-'}" for k in keys])
                 for f in flats]
        if len(set(names)) == len(names):
            return names, shown
    seen: dict[str, int] = {}
    out = []
    for n in names:  # configs that differ only where a name cannot show it (null vs missing): numbered
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out, shown


def group(items: Sequence[Any], warn: Warn) -> list[RunGroup]:
    """One RunGroup per label and config: labels alphabetical, a label's configs by the values that differ.

    Within a group one run per replicate (seed, fold), the newest finished one: the reader already resolved
    duplicates, this only meets runs of one config trained in two sweeps (one warning line for all).
    """
    by: dict[tuple[str, str], dict[tuple[int, int], Any]] = {}
    dropped = 0
    for it in items:
        reps = by.setdefault((it.label, config_key(it.config)), {})
        rep = replicate(it.config)
        if rep in reps:
            dropped += 1
            if _newest(it) <= _newest(reps[rep]):
                continue
        reps[rep] = it
    if dropped:
        warn(duplicates_line(dropped))
    out = []
    for label in sorted({lab for lab, _ in by}):
        keys = [k for lab, k in by if lab == label]
        flats = [flatten(next(iter(by[label, k].values())).config) for k in keys]
        names, shown = _names(label, flats)
        order = sorted(range(len(keys)), key=lambda i: ([_sort_value(v) for v in shown[i].values()], names[i]))
        for i in order:
            reps = by[label, keys[i]]
            out.append(RunGroup(label, keys[i], names[i], shown[i], tuple(reps[r] for r in sorted(reps))))
    return out


# ---- the default: the newest experiment -----------------------------------------------------------


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
    made = s.get("created") if isinstance(s.get("created"), str) else _mtime_text(d)
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
