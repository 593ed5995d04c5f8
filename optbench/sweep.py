"""Hyperparameter sweeps: grid or random search over config keys, per variant, over seeds and folds.

Data flows one way: the `sweep:` block -> Spec -> trials (sampled with the sweep's own seed) -> runs (one
`config.expand` per trial and fold, one resolved config per seed) -> a Plan whose id hashes all of it ->
`<runs-dir>/<name>-<id>/` holding sweep.json and one run directory per run. Running the same sweep again
skips its complete runs; a changed config has another id and so another directory.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from optbench.config import RUN_KEYS, expand, read_config
from optbench.errors import OptbenchError
from optbench.registry import format_value

METHODS = ("grid", "random")
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")
SWEEP_KEYS = ("method", "params", "trials", "budget", "seeds", "seed", "kfold", "metric", "variants")
# what picks a variant's best trial (compare's per-run metrics): +1 lower is better, -1 higher is better
METRICS = {"best_cost": 1, "final_train_cost": 1, "best_acc": -1, "auc": 1}
FINAL = ("completed", "diverged", "stopped_early")  # a run with one of these statuses is not trained again
DEFAULT_TRIAL = "default"
_NAMED = ("data", "optimizer", "schedule", "momentum_schedule")  # sections that may be written as a bare name
_NOT_SEARCHED = ("name", "label", "seed")


# ---- the spec ------------------------------------------------------------------------------------


def _fail(path: str, value: Any, why: str) -> OptbenchError:
    return OptbenchError(f"{path}: {format_value(value)} is invalid: {why}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


@dataclass(frozen=True)
class Param:
    """One searched key: listed values (a grid, or a uniform choice in random search) or a distribution."""

    path: str  # config key path, e.g. optimizer.lr
    kind: str  # "values" or one of DISTRIBUTIONS
    args: tuple  # the values, or (low, high)

    def values(self) -> list:
        """The grid points (values or choice)."""
        return list(self.args)

    def sample(self, rng: np.random.Generator, n: int) -> list:
        """n draws; log_uniform: exp(U(ln low, ln high)); int_uniform: low..high inclusive."""
        if self.kind in ("values", "choice"):
            return [copy.deepcopy(self.args[i]) for i in rng.integers(0, len(self.args), n).tolist()]
        lo, hi = self.args
        if self.kind == "log_uniform":
            return np.exp(rng.uniform(math.log(lo), math.log(hi), n)).tolist()
        if self.kind == "uniform":
            return rng.uniform(lo, hi, n).tolist()
        return rng.integers(lo, hi + 1, n).tolist()

    def as_data(self) -> Any:
        return list(self.args) if self.kind == "values" else {self.kind: list(self.args)}


def _distribution(node: dict, path: str, rel: str) -> Param:
    if len(node) != 1:
        raise _fail(path, node, f"one distribution per key (accepted: {', '.join(DISTRIBUTIONS)})")
    (kind, args), = node.items()
    where = f"{path}.{kind}"
    if kind not in DISTRIBUTIONS:
        raise OptbenchError(f"{where}: unknown distribution (accepted: {', '.join(DISTRIBUTIONS)})")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise _fail(where, args, "expected a non-empty list of values")
        return Param(rel, kind, tuple(args))
    accepted = {"log_uniform": "[low, high] with 0 < low < high", "uniform": "[low, high] with low < high",
                "int_uniform": "[low, high], integers with low < high (both included)"}[kind]
    if not isinstance(args, list) or len(args) != 2 or not all(_is_num(a) for a in args):
        raise _fail(where, args, f"expected two finite numbers (accepted: {accepted})")
    lo, hi = args
    if kind == "int_uniform" and not (_is_int(lo) and _is_int(hi)):
        raise _fail(where, args, f"low and high must be integers (accepted: {accepted})")
    if lo >= hi:
        raise _fail(where, args, f"low must be less than high (accepted: {accepted})")
    if kind == "log_uniform" and lo <= 0:
        raise _fail(where, args, f"low must be > 0 on a log scale (accepted: {accepted})")
    return Param(rel, kind, (lo, hi))


def _check_key(rel: str, path: str) -> None:
    """The first part of a searched path must be a config section a variant may set."""
    first = rel.split(".")[0]
    if first == "seed":
        raise OptbenchError(f"{path}: seeds are not searched (set sweep.seeds: [0, 1, ...])")
    if first not in RUN_KEYS or first in _NOT_SEARCHED:
        accepted = ", ".join(k for k in RUN_KEYS if k not in _NOT_SEARCHED)
        raise OptbenchError(f"{path}: {first!r} is not a config key (accepted: a key path under {accepted})")


def parse_params(node: Any, path: str, rel: str = "") -> dict[str, Param]:
    """`params:` (nested mappings or dotted keys) -> {config path: Param}, in file order."""
    if not isinstance(node, dict) or not node:
        raise _fail(path, node, "expected a mapping of config key paths to a list of values or a distribution, "
                                "e.g. optimizer.lr: {log_uniform: [1.0e-4, 1]}")
    out: dict[str, Param] = {}
    for key, value in node.items():
        sub_rel, sub_path = f"{rel}{key}", f"{path}.{key}"
        _check_key(sub_rel, sub_path)
        if isinstance(value, list):
            if not value:
                raise _fail(sub_path, value, "expected at least one value")
            out[sub_rel] = Param(sub_rel, "values", tuple(value))
        elif isinstance(value, dict) and any(d in value for d in DISTRIBUTIONS):
            out[sub_rel] = _distribution(value, sub_path, sub_rel)
        elif isinstance(value, dict) and value:
            out.update(parse_params(value, sub_path, f"{sub_rel}."))
        else:
            raise _fail(sub_path, value, f"expected a list of values or a distribution ({', '.join(DISTRIBUTIONS)})")
    return out


@dataclass(frozen=True)
class Spec:
    """The validated `sweep:` block."""

    method: str
    params: dict[str | None, dict[str, Param]]  # per variant (None: the experiment has no variants)
    trials: int | None
    budget: int | None
    seeds: tuple[int, ...] | None  # None: the experiment's own seeds
    seed: int
    kfold: int | None
    metric: str

    def n_random(self) -> int:
        return self.budget or self.trials or 0

    def as_data(self) -> dict:
        """Plain data for sweep.json and the sweep id."""
        return {"method": self.method, "seed": self.seed, "trials": self.trials, "budget": self.budget,
                "seeds": None if self.seeds is None else list(self.seeds), "kfold": self.kfold, "metric": self.metric,
                "params": {str(v): {p: par.as_data() for p, par in ps.items()} for v, ps in self.params.items()}}


def _count(block: dict, key: str, low: int) -> int | None:
    v = block.get(key)
    if v is None:
        return None
    if not _is_int(v) or v < low:
        raise _fail(f"sweep.{key}", v, f"expected an integer >= {low}")
    return v


def _seeds(v: Any) -> tuple[int, ...] | None:
    if v is None:
        return None
    if not isinstance(v, list) or not v or not all(_is_int(s) for s in v):
        raise _fail("sweep.seeds", v, "expected a non-empty list of integers")
    if len(set(v)) != len(v):
        raise _fail("sweep.seeds", v, "has duplicates")
    return tuple(v)


def _variant_params(block: dict, variants: list[str | None]) -> dict[str | None, dict[str, Param]]:
    """Common params, with each variant's own (sweep.variants.NAME.params) added or overriding."""
    common = parse_params(block["params"], "sweep.params") if block.get("params") is not None else {}
    own = block.get("variants") or {}
    if not isinstance(own, dict):
        raise _fail("sweep.variants", own, "expected a mapping of variant name: {params: ...}")
    names = [v for v in variants if v is not None]
    out: dict[str | None, dict[str, Param]] = {}
    for vname, extra in own.items():
        if vname not in names:
            raise OptbenchError(f"sweep.variants.{vname}: not a variant of the experiment "
                                f"(accepted: {', '.join(names) or 'none: the config has no variants'})")
        if not isinstance(extra, dict) or set(extra) - {"params"}:
            raise _fail(f"sweep.variants.{vname}", extra, "expected {params: {KEY.PATH: values or distribution}}")
    for v in variants:
        extra = own.get(v, {}).get("params") if v is not None else None
        ps = {**common, **(parse_params(extra, f"sweep.variants.{v}.params") if extra is not None else {})}
        if not ps:
            where = "sweep.params" if v is None or not own else f"sweep.params (or sweep.variants.{v}.params)"
            raise OptbenchError(f"{where}: required: at least one key to search, e.g. optimizer.lr: {{log_uniform: [1.0e-4, 1]}}")
        out[v] = ps
    return out


def parse_spec(block: Any, variants: list[str | None]) -> Spec:
    """Validate a `sweep:` block against the experiment's variants; every error names its key path."""
    if not isinstance(block, dict):
        raise _fail("sweep", block, "expected a mapping (method, params, trials or budget, seeds, ...)")
    for key in block:
        if key not in SWEEP_KEYS:
            raise OptbenchError(f"sweep.{key}: unknown key (accepted: {', '.join(SWEEP_KEYS)})")
    method = block.get("method", "random")
    if method not in METHODS:
        raise _fail("sweep.method", method, f"unknown search method (accepted: {', '.join(METHODS)})")
    trials, budget = _count(block, "trials", 1), _count(block, "budget", 1)
    if method == "grid":
        if budget is not None:
            raise _fail("sweep.budget", budget, "the budget protocol is a random search (accepted: method: random)")
        if trials is not None:
            raise _fail("sweep.trials", trials, "a grid runs every combination (accepted: method: random, or no trials)")
    elif trials is None and budget is None:
        raise OptbenchError("sweep.trials: required for method random (or budget: N, the same N trials for every "
                            "variant, beside each one's defaults)")
    elif trials is not None and budget is not None:
        raise _fail("sweep.budget", budget, "give trials or budget, not both")
    kfold = _count(block, "kfold", 2)
    seed = _count(block, "seed", 0) or 0
    metric = block.get("metric", "best_cost")
    if metric not in METRICS:
        raise _fail("sweep.metric", metric, f"not a metric (accepted: {', '.join(METRICS)})")
    params = _variant_params(block, variants)
    for v, ps in params.items():
        for p in ps.values():
            if method == "grid" and p.kind not in ("values", "choice"):
                raise OptbenchError(f"sweep.params.{p.path}.{p.kind}: a distribution cannot be a grid "
                                    "(accepted: a list of values, or method: random)")
            if kfold is not None and p.path.split(".")[:2] in (["data", "folds"], ["data", "fold"]):
                raise OptbenchError(f"sweep.params.{p.path}: set by sweep.kfold (remove one of them)")
    return Spec(method, params, trials, budget, _seeds(block.get("seeds")), seed, kfold, metric)


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


def make_runs(raw: dict, spec: Spec, trials: list[Trial], *, source: str, base_dir: Path) -> list[SweepRun]:
    """Resolve every trial x fold with config.expand (which checks it as `optbench train` would), x seeds."""
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
                cfgs = expand(exp, source=source, base_dir=base_dir)
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
        return f"{self.name}-{self.id}"

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


def plan_sweep(config: str | Path, *, sets=()) -> Plan:
    """Read a config with a `sweep:` block and resolve every run of the sweep (nothing is written)."""
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
    runs = make_runs(raw, spec, trials, source=str(p), base_dir=p.parent)
    experiment = {k: v for k, v in raw.items() if k != "sweep"}
    return Plan(sweep_id(spec, runs), runs[0].cfg["name"], str(p), tuple(sets), spec, experiment, tuple(trials), tuple(runs))


# ---- the sweep directory --------------------------------------------------------------------------


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def sweep_record(plan: Plan, old: dict | None, pass_info: dict) -> dict:
    """sweep.json: the id, the resolved spec, the experiment and the trials; one entry per pass appended."""
    from optbench.runs import versions

    passes = (old or {}).get("passes", [])
    passes = [p for p in passes if p.get("started") != pass_info["started"]] + [pass_info]
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


def scan(root: Path, plan: Plan) -> tuple[dict[str, str], list[Path]]:
    """The runs of this sweep already complete in `root` (key -> status), and the directories to set aside.

    Complete: this sweep's id, a key of the plan, a final status, all files there; one per key. Everything
    else (interrupted, failed, killed while running, duplicates, unreadable) is trained again.
    """
    done: dict[str, str] = {}
    stale: list[Path] = []
    if not root.is_dir():
        return done, stale
    keys = {r.key for r in plan.runs}
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        try:
            s = json.loads((d / "summary.json").read_text())
            tag = s.get("sweep") or {}
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            stale.append(d)
            continue
        key = tag.get("key")
        files = all((d / f).is_file() for f in ("config.yaml", "metrics.csv", "params.npz"))
        if tag.get("id") == plan.id and key in keys and key not in done and s.get("status") in FINAL and files:
            done[key] = s["status"]
        else:
            stale.append(d)
    return done, stale


def set_aside(root: Path, dirs: list[Path]) -> None:
    """Move superseded run directories to `<sweep>/.superseded/` (hidden from compare and plot, not deleted)."""
    if not dirs:
        return
    dest = root / ".superseded"
    dest.mkdir(exist_ok=True)
    for d in dirs:
        target = dest / d.name
        n = 1
        while target.exists():
            n += 1
            target = dest / f"{d.name}.{n}"
        os.rename(d, target)


# ---- running it -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """What a sweep pass is about to do (for the progress display)."""

    plan: Plan
    root: Path
    total: int  # runs in the sweep
    resumed: int  # already complete from an earlier pass
    todo: int
    units: int
    backend: str


@dataclass(frozen=True)
class Tally:
    """Counts of runs so far; `done` includes the ones resumed from an earlier pass."""

    total: int
    done: int
    running: int
    diverged: int
    interrupted: int
    resumed: int


class SweepProgress(Protocol):
    """What the CLI shows while a sweep trains."""

    def started(self, start: Start) -> None: ...
    def update(self, tally: Tally) -> None: ...


@dataclass
class Outcome:
    """A finished (or interrupted) sweep pass."""

    plan: Plan
    root: Path
    resumed: int
    statuses: Counter = field(default_factory=Counter)  # of the runs trained in this pass
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def left(self) -> int:
        """Runs still to train (a next pass trains them)."""
        return len(self.plan.runs) - self.resumed - sum(n for s, n in self.statuses.items() if s in FINAL)


def make_units(todo: list[SweepRun], workers: int) -> list[list[SweepRun]]:
    """Runs that share structure in one unit (a vectorized group), large groups split so every worker has work."""
    from optbench.config import load_data
    from optbench.problems import PROBLEMS
    from optbench.groups import make_groups
    from optbench.workers import split_units, unit_cost

    by_id = {id(r.cfg): r for r in todo}
    groups = [[by_id[id(c)] for c in g] for g in make_groups([r.cfg for r in todo])]

    def n_train(cfg: dict) -> int:
        return 1 if cfg["data"]["name"] in PROBLEMS else len(load_data(cfg["data"]).train.y)

    return split_units(groups, workers, lambda u: unit_cost([r.cfg for r in u], n_train))


def _open(jobs: int | None, scheduler: str | None, todo: list[SweepRun]):
    """The backend (started first: local workers spawn while the runs are grouped) and the units for its slots."""
    from optbench.workers import open_backend

    backend = open_backend(jobs=jobs, scheduler=scheduler, runs=len(todo))
    try:
        return backend, make_units(todo, backend.slots())
    except BaseException:
        backend.close()
        raise


def run_sweep(config: str | Path, *, sets=(), runs_dir: Path = Path("runs"), jobs: int | None = None,
              scheduler: str | None = None, progress: SweepProgress | None = None) -> Outcome:
    """Plan the sweep, skip its complete runs, train the rest on the chosen backend, write every run directory."""
    from optbench.workers import Job, drive

    plan = plan_sweep(config, sets=sets)
    root = Path(runs_dir) / plan.dirname
    old = read_sweep_json(root, plan)
    done, stale = scan(root, plan)
    todo = [r for r in plan.runs if r.key not in done]
    backend, units = _open(jobs, scheduler, todo) if todo else (None, [])
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    out = Outcome(plan, root, resumed=len(done))
    t0 = time.perf_counter()
    try:
        root.mkdir(parents=True, exist_ok=True)
        set_aside(root, stale)
        info = {"started": started, "backend": backend.name if backend else None, "resumed": len(done), "todo": len(todo)}
        _write_json(root / "sweep.json", sweep_record(plan, old, info))
        earlier = Counter(done.values())
        running = [0]

        def tally() -> Tally:
            st = earlier + out.statuses
            return Tally(len(plan.runs), sum(st[s] for s in FINAL), running[0], st["diverged"], st["interrupted"], len(done))

        def on_start(job):
            running[0] += len(job.cfgs)
            if progress is not None:
                progress.update(tally())

        def on_done(job, written):
            running[0] -= len(job.cfgs)
            out.statuses.update(written.statuses)
            if progress is not None:
                progress.update(tally())

        if progress is not None:
            progress.started(Start(plan, root, len(plan.runs), len(done), len(todo), len(units),
                                   backend.name if backend else "nothing to train"))
            progress.update(tally())
        if backend is not None:
            work = [Job([r.cfg for r in u], root, f"{plan.id}-{unit_id(u)}", [plan.tag(r) for r in u]) for u in units]
            out.interrupted = drive(work, backend, on_start, on_done)
        out.seconds = time.perf_counter() - t0
        info.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S"), seconds=round(out.seconds, 3),
                    trained=dict(out.statuses), interrupted=out.interrupted)
        _write_json(root / "sweep.json", sweep_record(plan, read_sweep_json(root, plan), info))
    finally:
        if backend is not None:
            backend.close()
    return out


def unit_id(unit: list[SweepRun]) -> str:
    """A short, stable name for a unit's group (its first run's key, hashed)."""
    return hashlib.sha256(unit[0].key.encode()).hexdigest()[:6]


# ---- results: best trials, default vs tuned, heat maps ---------------------------------------------


@dataclass(frozen=True)
class TrialResult:
    """A trial's runs (seeds x folds) and its selection metric over them."""

    sweep: dict  # the sweep tag of its first run
    variant: str | None
    trial: str
    params: dict
    runs: tuple  # compare.RunFacts
    mean: float
    std: float
    eligible: bool  # every run finished without diverging and measured the metric

    @property
    def diverged(self) -> int:
        return sum(r.status == "diverged" for r in self.runs)


@dataclass(frozen=True)
class Pick:
    """A row of a sweep's summary: a variant's best trial (`tuned`, `best`) or its defaults (`default`)."""

    role: str
    result: TrialResult
    trials: int  # trials of this variant (the budget spent)
    runs: int
    epochs: int  # epochs trained over all runs of this variant's search


@dataclass(frozen=True)
class SweepSummary:
    """One sweep as compare shows it."""

    id: str
    name: str
    method: str
    budget: int | None
    metric: str
    folds: int | None
    seeds: int
    picks: tuple[Pick, ...]
    n_trials: int
    n_runs: int
    diverged: int


def _trial_result(runs: list, metric: str) -> TrialResult:
    tag = runs[0].sweep
    v = np.array([getattr(r, metric) for r in runs], dtype=float)
    ok = np.isfinite(v)
    mean = float(v[ok].mean()) if ok.any() else math.nan
    std = float(v[ok].std(ddof=1)) if ok.sum() > 1 else math.nan
    eligible = bool(ok.all()) and not any(r.status == "diverged" for r in runs)
    return TrialResult(tag, tag.get("variant"), tag.get("trial"), tag.get("params") or {}, tuple(runs), mean, std, eligible)


def best_trial(results: list[TrialResult], metric: str) -> TrialResult | None:
    """The best mean over seeds and folds; trials that diverged on any run only when nothing else is left."""
    sign = METRICS[metric]
    ranked = [r for r in results if not math.isnan(r.mean)]
    pool = [r for r in ranked if r.eligible] or ranked
    return min(pool, key=lambda r: (sign * r.mean, r.trial)) if pool else None


def summarize(facts: list) -> list[SweepSummary]:
    """Per sweep id: each variant's best trial (and its defaults under a budget), with the budget spent."""
    by_sweep: dict[str, list] = {}
    for f in facts:
        by_sweep.setdefault(f.sweep["id"], []).append(f)
    out = []
    for sid, runs in sorted(by_sweep.items(), key=lambda kv: kv[1][0].sweep.get("name") or ""):
        tag = runs[0].sweep
        metric = tag.get("metric") if tag.get("metric") in METRICS else "best_cost"
        trials: dict[tuple, list] = {}
        for f in runs:
            trials.setdefault((f.sweep.get("variant"), f.sweep.get("trial")), []).append(f)
        picks = []
        for variant in dict.fromkeys(k[0] for k in trials):
            results = [_trial_result(rs, metric) for (v, _), rs in trials.items() if v == variant]
            searched = [r for r in results if r.trial != DEFAULT_TRIAL]
            spent = dict(trials=len(searched), runs=sum(len(r.runs) for r in searched),
                         epochs=sum(f.epochs for r in searched for f in r.runs))
            default = next((r for r in results if r.trial == DEFAULT_TRIAL), None)
            if default is not None:
                picks.append(Pick("default", default, **spent))
            best = best_trial(searched, metric)
            if best is not None:
                picks.append(Pick("tuned" if tag.get("budget") else "best", best, **spent))
        seeds = len({f.seed for f in runs})
        out.append(SweepSummary(sid, tag.get("name") or "", tag.get("method") or "?", tag.get("budget"), metric,
                                tag.get("folds"), seeds, tuple(picks), len(trials), len(runs),
                                sum(f.status == "diverged" for f in runs)))
    return out


def _lookup(cfg: dict, path: str) -> Any:
    node: Any = cfg
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def heatmap_table(runs: list, x_key: str, y_key: str, metric: str = "train_cost") -> tuple[list, list, np.ndarray]:
    """A 2-D sweep as a table: sorted x and y values of two config keys, and grid[i, j] the mean final `metric`.

    `runs` are runs.Run (read back); the value of a run is the last row of the metrics.csv column `metric`;
    grid has shape (len(ys), len(xs)) (rows are y) and is NaN where no run, or only diverged runs, sit.
    """
    from optbench.runs import COLUMNS

    if metric not in COLUMNS:
        raise OptbenchError(f"--metric: {metric!r} is not a metrics column (accepted: {', '.join(COLUMNS)})")
    cells: dict[tuple, list[float]] = {}
    for r in runs:
        x, y = _lookup(r.config, x_key), _lookup(r.config, y_key)
        if x is None or y is None:
            continue
        col = r.metrics[metric]
        value = float(col[-1]) if len(col) and r.status != "diverged" else math.nan
        cells.setdefault((x, y), []).append(value)
    if not cells:
        raise OptbenchError(f"no run sets both {x_key} and {y_key}")
    xs = sorted({x for x, _ in cells})
    ys = sorted({y for _, y in cells})
    grid = np.full((len(ys), len(xs)), np.nan)
    for (x, y), vals in cells.items():
        finite = [v for v in vals if math.isfinite(v)]
        if finite:
            grid[ys.index(y), xs.index(x)] = float(np.mean(finite))
    return xs, ys, grid

