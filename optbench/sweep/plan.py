"""A sweep's plan: trials, one resolved config per run, the id that names them; sweep.json and resume bookkeeping."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optbench.config import expand, read_config
from optbench.datacache import DataCache
from optbench.errors import OptbenchError
from optbench.registry import format_value
from optbench.runs.status import writer_gone
from optbench.runs.writing import RunWriteError
from optbench.sweep.spec import Spec, _fail, parse_spec

FINAL = ("completed", "diverged", "stopped_early")  # a run with one of these statuses is not trained again
DEFAULT_TRIAL = "default"
_NAMED = ("data", "optimizer", "schedule", "momentum_schedule")  # sections that may be written as a bare name


# ---- trials and runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One setting of the searched keys for one variant (`default`: the variant as the config writes it)."""

    variant: str | None
    name: str
    params: dict[str, Any]


def _stream(seed: int, path: str) -> np.random.Generator:
    """Each searched key draws from its own generator: variants searching one range get the same values."""
    return np.random.default_rng([seed, zlib.crc32(path.encode())])


def _names(n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"t{i:0{width}d}" for i in range(n)]


def make_trials(spec: Spec) -> list[Trial]:
    """Every trial, variant by variant: the grid's product in key order, or `trials`/`budget` random draws."""
    out: list[Trial] = []
    for v, ps in spec.params.items():
        if spec.budget is not None:
            out.append(Trial(v, DEFAULT_TRIAL, {}))
        if spec.method == "grid":
            points = [dict(zip(ps, combo)) for combo in itertools.product(*(p.values() for p in ps.values()))]
        else:
            n = spec.n_random()
            draws = {path: p.sample(_stream(spec.seed, path), n) for path, p in ps.items()}
            points = [{path: draws[path][i] for path in ps} for i in range(n)]
        out.extend(Trial(v, name, pt) for name, pt in zip(_names(len(points)), points))
    return out


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a trial, a seed and a fold, with its resolved config."""

    trial: Trial
    seed: int
    fold: int | None
    cfg: dict

    @property
    def key(self) -> str:
        """Identifies the run inside its sweep (kept in summary.json: resuming matches on it)."""
        fold = "" if self.fold is None else f"/f{self.fold}"
        return f"{self.trial.variant or '-'}/{self.trial.name}/s{self.seed}{fold}"


def _put(node: dict, path: str, value: Any) -> None:
    """Set a dotted key path in a nested raw config, creating mappings (and `{name: x}` for `x`) on the way."""
    keys = path.split(".")
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        elif isinstance(nxt, str):
            nxt = node[k] = {"name": nxt}
        elif not isinstance(nxt, dict):
            raise OptbenchError(f"sweep.params.{path}: {k} is {format_value(nxt)}, not a mapping")
        node = nxt
    node[keys[-1]] = copy.deepcopy(value)


def _normalized(raw: dict) -> dict:
    """Sections written as a bare name become `{name: x}` so a variant's partial section merges into them."""
    raw = copy.deepcopy(raw)
    for key in _NAMED:
        if isinstance(raw.get(key), str):
            raw[key] = {"name": raw[key]}
    return raw


def _blame(err: OptbenchError, trial: Trial) -> OptbenchError:
    """An error about a searched key names it as sweep.params.KEY and says which trial drew the value."""
    msg = str(err)
    if trial.variant is not None and msg.startswith(f"variants.{trial.variant}."):
        msg = msg[len(f"variants.{trial.variant}.") :]
    path = msg.split(":", 1)[0]
    for p in trial.params:
        if path == p or path.startswith(p + ".") or p.startswith(path + "."):
            who = f"trial {trial.name}" + (f" of {trial.variant}" if trial.variant else "")
            return OptbenchError(f"sweep.params.{msg} ({who})")
    return err


def make_runs(raw: dict, spec: Spec, trials: list[Trial], *, source: str, base_dir: Path,
              cache: DataCache | None = None) -> list[SweepRun]:
    """Resolve every trial x fold with config.expand (which checks it as `optbench train` would), x seeds; each
    distinct data section (a fold's, say) is loaded once, into `cache`."""
    cache = DataCache() if cache is None else cache
    base = _normalized({k: v for k, v in raw.items() if k != "sweep"})
    variants = base.pop("variants", None)
    if spec.seeds is not None:
        base.pop("seed", None)
        base["seeds"] = list(spec.seeds)
    out = []
    for trial in trials:
        for fold in range(spec.kfold) if spec.kfold else [None]:
            exp = copy.deepcopy(base)
            if trial.variant is None:
                target = exp
                if variants is not None:  # not a mapping of variants: expand says what is wrong with it
                    exp["variants"] = variants
            else:
                target = copy.deepcopy(variants[trial.variant] or {})
                exp["variants"] = {trial.variant: target}
            for path, value in trial.params.items():
                _put(target, path, value)
            if fold is not None:
                _put(target, "data.folds", spec.kfold)
                _put(target, "data.fold", fold)
            try:
                cfgs = expand(exp, source=source, base_dir=base_dir, cache=cache)
            except OptbenchError as err:
                raise _blame(err, trial) from None
            for cfg in cfgs:
                cfg["label"] = f"{cfg['label']}/{trial.name}"
                out.append(SweepRun(trial, cfg["seed"], fold, cfg))
    return out


@dataclass(frozen=True)
class Plan:
    """Everything one sweep will train, and the id that names it."""

    id: str
    name: str
    source: str
    sets: tuple[str, ...]
    spec: Spec
    experiment: dict  # the config after --set, without its sweep block
    trials: tuple[Trial, ...]
    runs: tuple[SweepRun, ...]

    @property
    def dirname(self) -> str:
        from optbench.paths import safe_component

        return safe_component(f"{self.name}-{self.id}")  # the name is data: one safe directory name

    def tag(self, run: SweepRun) -> dict:
        """The `sweep` entry of a run's summary.json: enough for compare to rank trials without sweep.json."""
        s = self.spec
        return {"sweep": {"id": self.id, "name": self.name, "key": run.key, "variant": run.trial.variant,
                          "trial": run.trial.name, "params": run.trial.params, "fold": run.fold, "folds": s.kfold,
                          "method": s.method, "budget": s.budget, "metric": s.metric}}


def sweep_id(spec: Spec, runs: list[SweepRun]) -> str:
    """A hash of the spec and of every run's resolved config: any change to either is another sweep."""
    text = json.dumps({"spec": spec.as_data(), "runs": [[r.key, r.cfg] for r in runs]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def plan_sweep(config: str | Path, *, sets=(), cache: DataCache | None = None) -> Plan:
    """Read a config with a `sweep:` block and resolve every run of the sweep (nothing is written; the data
    loaded into `cache`)."""
    from optbench.config import apply_set

    p = Path(config)
    raw = read_config(p)
    for s in sets:
        apply_set(raw, s)
    if raw.get("sweep") is None:
        raise OptbenchError(f"sweep: required key is missing in {config} (a sweep: block with method, params and "
                            "trials, budget or a grid; see README, Sweeps)")
    variants = raw.get("variants")
    names = list(variants) if isinstance(variants, dict) and variants else [None]
    spec = parse_spec(raw["sweep"], names)
    if spec.kfold is not None:
        data = raw.get("data")
        frac = data.get("val_fraction", 0) if isinstance(data, dict) else 0
        if frac:
            raise _fail("sweep.kfold", spec.kfold, f"the folds are the validation parts, but data.val_fraction is {frac} "
                                                   "(accepted: data.val_fraction: 0 with kfold)")
    trials = make_trials(spec)
    runs = make_runs(raw, spec, trials, source=str(p), base_dir=p.parent, cache=cache)
    experiment = {k: v for k, v in raw.items() if k != "sweep"}
    return Plan(sweep_id(spec, runs), runs[0].cfg["name"], str(p), tuple(sets), spec, experiment, tuple(trials), tuple(runs))


# ---- the sweep directory --------------------------------------------------------------------------


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as err:
        raise RunWriteError(path, err) from None


def sweep_record(plan: Plan, old: dict | None, pass_info: dict) -> dict:
    """sweep.json: the id, the resolved spec, the experiment and the trials; one entry per pass appended."""
    from optbench.runs.summary import versions

    passes = (old or {}).get("passes", [])
    passes = [p for p in passes if p.get("pass") != pass_info["pass"]] + [pass_info]  # this pass's entry, updated
    return {
        "id": plan.id, "name": plan.name, "source": plan.source, "sets": list(plan.sets),
        "created": (old or {}).get("created") or pass_info["started"],
        "spec": plan.spec.as_data(), "experiment": plan.experiment,
        "trials": [{"variant": t.variant, "trial": t.name, "params": t.params} for t in plan.trials],
        "runs": len(plan.runs), "passes": passes, "versions": versions(),
    }


def read_sweep_json(root: Path, plan: Plan) -> dict | None:
    """The sweep.json already in `root` (None when there is none); it must be this sweep's."""
    path = root / "sweep.json"
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OptbenchError(f"{path}: unreadable ({err.__class__.__name__}); move the directory away to start over") from None
    if not isinstance(old, dict) or old.get("id") != plan.id:
        raise OptbenchError(f"{path}: belongs to another sweep ({old.get('id') if isinstance(old, dict) else '?'}), "
                            f"not {plan.id}; move it away")
    return old


def scan(root: Path, plan: Plan, *, only: set[str] | None = None) -> tuple[dict[str, str], list[Path]]:
    """The runs of this sweep already complete in `root` (key -> status), and the directories to set aside.

    Complete: this sweep's id, a key of the plan, a final status, all files there; one per key. Everything
    else (interrupted, failed, killed while running, duplicates, unreadable) is trained again. With `only`,
    just the directories of those keys are looked at (a lost job's, while other jobs still write theirs).
    """
    done: dict[str, str] = {}
    stale: list[Path] = []
    if not root.is_dir():
        return done, stale
    keys = {r.key for r in plan.runs} if only is None else only
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        try:
            s = json.loads((d / "summary.json").read_text())
            tag = s.get("sweep") or {}
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            if only is None:
                stale.append(d)
            continue
        key = tag.get("key")
        if only is not None and (tag.get("id") != plan.id or key not in only):
            continue
        files = all((d / f).is_file() for f in ("config.yaml", "metrics.csv", "params.npz"))
        if tag.get("id") == plan.id and key in keys and key not in done and s.get("status") in FINAL and files:
            done[key] = s["status"]
        else:
            stale.append(d)
    return done, stale


def remove_leftovers(root: Path) -> None:
    """Delete the hidden temporary files of writers that died (`.tmp-*` run directories never renamed, a
    `.sweep.json.tmp`); only while the sweep is locked. A temporary directory whose writer still lives (on
    this host, by PID and start time) is never touched."""
    if not root.is_dir():
        return
    for p in root.iterdir():
        if p.name.startswith(".tmp-") or p.name == ".sweep.json.tmp":
            if p.is_dir() and not p.is_symlink():
                if writer_gone(p):
                    shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def set_aside(root: Path, dirs: list[Path]) -> None:
    """Move superseded run directories to `<sweep>/.superseded/` (hidden from compare and plot, not deleted)."""
    if not dirs:
        return
    dest = root / ".superseded"
    try:
        dest.mkdir(exist_ok=True)
        for d in dirs:
            target = dest / d.name
            n = 1
            while target.exists():
                n += 1
                target = dest / f"{d.name}.{n}"
            os.rename(d, target)
    except OSError as err:
        raise RunWriteError(dest, err) from None
