"""A sweep's `sweep:` block, validated into a Spec: the searched keys (values or distributions) per variant."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.config import RUN_KEYS
from optbench.errors import OptbenchError
from optbench.metrics import METRICS as _METRICS, SELECTABLE
from optbench.registry import format_value

METHODS = ("grid", "random")
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")
SWEEP_KEYS = ("method", "params", "trials", "budget", "seeds", "seed", "kfold", "metric", "variants")
# what picks a variant's best trial (compare's per-run metrics): +1 lower is better, -1 higher is better;
# never a test metric: the test split reports on the selected trials and selects nothing
METRICS = {m: _METRICS[m] for m in ("best_cost", "best_acc", *(m for m in SELECTABLE if m not in ("best_cost", "best_acc")))}
_NOT_SEARCHED = ("name", "label", "seed")


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
    if metric in _METRICS and metric not in METRICS:
        raise _fail("sweep.metric", metric, f"the test split is never selected on; it reports the selected trials "
                                            f"(accepted: {', '.join(METRICS)})")
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
