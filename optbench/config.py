"""Experiment configs: YAML loading, `--set` overrides, validation, and expansion of variants x seeds into runs.

Every run gets one fully resolved config (all defaults filled in, the loss inferred, data paths made
absolute); written to its run directory, that config reruns the run exactly.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic

from optbench import budget, crosschecks, lrmult
from optbench.compat import notebook_defaults
from optbench.datacache import DataCache
from optbench.datasets import PATH_KEYS
from optbench.errors import OptbenchError
from optbench.names import check_label, check_name, is_seed
from optbench.registry import format_value, pydantic_message
from optbench.sections import _Sections
# parse_yaml and dump_yaml are part of this module's interface
from optbench.yamlio import dump_yaml, parse_yaml, read_yaml  # noqa: F401


RUN_KEYS = list(_Sections.model_fields)
EXPERIMENT_KEYS = [k for k in RUN_KEYS if k != "seed"] + ["seed", "seeds", "variants", "sweep"]


def deep_merge(base: dict, over: dict) -> dict:
    """A new dict: `over` merged into `base`, mappings recursively, everything else replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and "name" not in v:
            out[k] = deep_merge(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict) and v.get("name") == out[k].get("name"):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_set(raw: dict, assignment: str) -> None:
    """`a.b.c=value` (value parsed as YAML) into the nested mapping `raw`, creating mappings on the way."""
    if "=" not in assignment:
        raise OptbenchError(f"--set {assignment!r}: expected KEY.PATH=VALUE, e.g. --set optimizer.lr=0.01")
    path, text = assignment.split("=", 1)
    keys = [k for k in path.strip().split(".")]
    if not all(keys):
        raise OptbenchError(f"--set {assignment!r}: empty key in {path!r}")
    value = parse_yaml(text, f"--set {path}") if text.strip() else None
    node = raw
    for i, k in enumerate(keys[:-1]):
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        elif isinstance(nxt, str) and k in ("optimizer", "schedule", "activation", "init", "momentum_schedule"):
            nxt = node[k] = {"name": nxt}
        elif not isinstance(nxt, dict):
            raise OptbenchError(f"--set {path}: {'.'.join(keys[: i + 1])} is {format_value(nxt)}, not a mapping")
        node = nxt
    node[keys[-1]] = value


def _named(section: Any, path: str, default: str | None = None) -> dict:
    """A registry section given as `adam` or `{name: adam, ...}` -> a new dict with `name`."""
    if section is None and default is not None:
        return {"name": default}
    if isinstance(section, str):
        return {"name": section}
    if isinstance(section, dict):
        if "name" not in section:
            if default is None:
                raise OptbenchError(f"{path}.name: required key is missing")
            return {"name": default, **section}
        if not isinstance(section["name"], str):
            raise OptbenchError(f"{path}.name: {format_value(section['name'])} is invalid: expected a string (a name)")
        return dict(section)
    raise OptbenchError(f"{path}: {format_value(section)} is invalid: expected a name or a mapping with `name`")


def _validate_named(registry, section: Any, path: str, default: str | None = None, **engine) -> dict:
    sec = _named(section, path, default)
    name = sec.pop("name")
    if not isinstance(name, str):
        raise OptbenchError(f"{path}.name: {format_value(name)} is invalid: expected a string")
    return {"name": name, **registry.validate(name, sec, path)}


def resolve_run(raw: dict, *, base_dir: Path, cache: DataCache | None = None) -> dict:
    """Validate one run's raw config and return it fully resolved (plain data, ready for YAML)."""
    return _resolve(raw, base_dir=base_dir, cache=DataCache() if cache is None else cache)[0]


def _resolve(raw: dict, *, base_dir: Path, cache: DataCache) -> tuple[dict, tuple[int, int, int] | None]:
    """resolve_run, and the data's (examples, features, outputs) for the memory budget (None for a 2-D problem).

    The data is loaded through `cache` in the training dtype: the trainer reads the same entry."""
    from optbench import data as data_mod

    if not isinstance(raw, dict):
        raise OptbenchError(f"config: expected a mapping of keys, got {format_value(raw)}")
    for key in raw:
        if key not in RUN_KEYS:
            raise OptbenchError(f"{key}: unknown key (accepted: {', '.join(EXPERIMENT_KEYS)})")
    for key in ("data", "optimizer"):
        if raw.get(key) is None:
            raise OptbenchError(f"{key}: required key is missing")
    raw, lr_mult = _named_sections(raw, base_dir)
    try:
        sec = _Sections.model_validate(raw)
    except pydantic.ValidationError as err:
        raise OptbenchError(pydantic_message(err, "")) from None
    out = sec.model_dump()
    out["label"] = out["label"] or out["name"]
    crosschecks.check_clips(out)
    if lr_mult is not None:
        crosschecks.set_lr_mult(out, lr_mult)

    if out["data"]["name"] in _problems().PROBLEMS:
        return _resolve_problem(out), None
    split = cache.get(out["data"], out["train"]["dtype"])
    data_mod.check_dtype(split, out["train"]["dtype"])
    out["data"] = resolved_data(out["data"])
    loss = out["loss"] or data_mod.expected_loss(split.train.task)
    data_mod.check_labels(split.train, loss, "loss")
    out["loss"] = loss
    crosschecks.check_combination(out, n_train=len(split.train.X), has_val=split.val is not None)
    n = sum(len(p.y) for p in (split.train, split.val, split.test) if p is not None)
    k = split.train.y.shape[1] if split.train.y.ndim == 2 else split.train.n_classes if loss == "softmax_ce" else 1
    budget.check_group([out], n, split.train.X.shape[1], k)
    crosschecks.check_finetuning(out["model"], [split.train.X.shape[1], *out["model"]["hidden"], k])
    return out, (n, split.train.X.shape[1], k)


def _named_sections(raw: dict, base_dir: Path) -> tuple[dict, Any]:
    """raw with its registry sections validated by their factories (model.activation/init, optimizer, schedules)
    and its data paths made absolute; and the optimizer's lr_mult, taken out (checked against the model later)."""
    from optbench.init import INITIALIZERS
    from optbench.layers import ACTIVATIONS
    from optbench.optim import OPTIMIZERS
    from optbench.schedules import MOMENTUM_SCHEDULES, SCHEDULES

    raw = dict(raw)
    if isinstance(raw.get("train"), dict) and raw["train"].get("compat") == "dlai":
        raw = notebook_defaults(raw)
    model = raw.get("model") or {}
    if not isinstance(model, dict):
        raise OptbenchError(f"model: {format_value(model)} is invalid: expected a mapping")
    model = dict(model)
    model["activation"] = _validate_named(ACTIVATIONS, model.get("activation"), "model.activation", "relu")
    model["init"] = _validate_named(INITIALIZERS, model.get("init"), "model.init", "he")
    raw["model"] = model
    opt_sec = _named(raw["optimizer"], "optimizer")
    lr_mult = opt_sec.pop(lrmult.KEY, None)  # the loop's, not the factory's: checked against the model below
    raw["optimizer"] = _validate_named(OPTIMIZERS, opt_sec, "optimizer")
    if OPTIMIZERS.is_plugin(raw["optimizer"]["name"]):
        crosschecks.check_plugin_rule(raw["optimizer"])
    raw["schedule"] = _validate_named(SCHEDULES, raw.get("schedule"), "schedule", "constant")
    raw["momentum_schedule"] = _validate_named(MOMENTUM_SCHEDULES, raw.get("momentum_schedule"), "momentum_schedule", "constant")
    data_sec = _named(raw["data"], "data")
    for key in PATH_KEYS:  # file paths are relative to the config's folder
        if isinstance(data_sec.get(key), str) and not Path(data_sec[key]).is_absolute():
            try:
                data_sec[key] = str((base_dir / data_sec[key]).resolve())
            except (RuntimeError, OSError):  # a symlink loop: kept as written, the data reader says so in one line
                data_sec[key] = str((base_dir / data_sec[key]).absolute())
    raw["data"] = data_sec
    return raw, lr_mult


def _optim():
    from optbench import optim

    return optim


def _problems():
    from optbench import problems

    return problems


def _resolve_problem(out: dict) -> dict:
    """A 2-D test function instead of data: the model is the point itself; no loss, no batches."""
    sec = dict(out["data"])
    name = sec.pop("name")
    out["data"] = {"name": name, **_problems().PROBLEMS.validate(name, sec, "data")}
    if out["loss"] is not None:
        raise OptbenchError(f"loss: {out['loss']} is invalid for the 2-D problem {name}: it is its own cost (omit loss)")
    m = out["model"]
    if m["hidden"] or m["norm"] != "none" or m["drop_prob"] > 0 or "init_from" in m or "freeze" in m:
        raise OptbenchError(f"model: a 2-D problem ({name}) has no net; its model is the point data.start (omit model)")
    if out["train"].get("sharpness_every"):
        raise OptbenchError(f"train.sharpness_every: {out['train']['sharpness_every']} is invalid for the 2-D problem {name}: "
                            "sharpness is measured on nets (accepted: 0)")
    opt = out["optimizer"]["name"]
    if _optim().is_closure_optimizer(opt) and out["schedule"]["name"] != "constant":
        raise OptbenchError(f"schedule: {opt} takes no learning-rate schedule (accepted: constant)")
    return out


def load_data(section: dict, dtype="float64", *, cache: DataCache | None = None):
    """The Split of a data section in `dtype`, through `cache` (loaded afresh without one)."""
    return (DataCache() if cache is None else cache).get(section, dtype)


def resolved_data(section: dict) -> dict:
    """The data section with the generator's and the common defaults filled in (config.yaml says what was made)."""
    from optbench import data as data_mod

    return data_mod.resolved_section(section)


def read_config(path: str | Path) -> dict:
    """A YAML experiment file, read through the bounded reader (a regular file; aliases and depth bounded)."""
    raw = read_yaml(path, "config file")
    if raw is None:
        raise OptbenchError(f"{path}: config file is empty")
    if not isinstance(raw, dict):
        raise OptbenchError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return raw


def _error_in_variant(err: OptbenchError, variant: dict, vname: str) -> OptbenchError:
    """Point an error at `variants.<name>.` when the key it names was written in that variant."""
    msg = str(err)
    path = msg.split(":", 1)[0]
    node: Any = variant
    for k in path.split("."):
        if isinstance(node, dict) and k in node:
            node = node[k]
        else:
            return err
    return OptbenchError(f"variants.{vname}.{msg}")


def expand(raw: dict, *, source: str = "config", base_dir: Path = Path("."), sets=(), seed: int | None = None,
           cache: DataCache | None = None) -> list[dict]:
    """All runs an experiment describes: one resolved config per variant x seed, in file order; their data
    loaded once per distinct section into `cache` (pass the trainer's to load it once in all)."""
    cache = DataCache() if cache is None else cache
    raw = copy.deepcopy(raw)
    for s in sets:
        apply_set(raw, s)
    for key in raw:
        if key not in EXPERIMENT_KEYS:
            raise OptbenchError(f"{key}: unknown key (accepted: {', '.join(EXPERIMENT_KEYS)})")
    named = "name" in raw
    raw.setdefault("name", Path(source).stem)
    check_name(raw["name"], "name", "" if named else f" (the name comes from the file name: set name: in {source})")
    seeds = _seeds(raw, seed)
    raw.pop("sweep", None)  # read by optbench.sweep, which calls expand once per trial; train runs the config as written
    variants = raw.pop("variants", None)
    plain = variants is None  # no variants: one run per seed, labelled as the experiment
    if plain:
        variants = {None: {}}
    elif not isinstance(variants, dict) or not variants:
        raise OptbenchError(f"variants: {format_value(variants)} is invalid: expected a mapping of label: partial config")
    label = raw.pop("label", None)
    if label is not None:
        check_label(label, "label", single=not plain)
    label = label or raw["name"]
    runs: list[dict] = []
    shapes: dict[int, tuple[int, int, int] | None] = {}
    for vname, vdict in variants.items():
        vdict = _variant(vname, vdict, plain)
        merged = deep_merge(raw, vdict)
        merged["label"] = label if plain else f"{label}/{vname}"
        for s in seeds:
            try:
                cfg, shape = _resolve({**merged, "seed": s}, base_dir=base_dir, cache=cache)
            except OptbenchError as err:
                raise (err if plain else _error_in_variant(err, vdict, vname)) from None
            runs.append(cfg)
            shapes[id(cfg)] = shape
    crosschecks.check_refs(runs, shapes, list(variants) if not plain else [])
    crosschecks.check_memory(runs, shapes)
    return runs


def _seeds(raw: dict, seed: int | None) -> list[int]:
    """The seeds to run (--seed, else seeds:, else seed:), checked; pops seeds and seed from raw."""
    seeds, where = raw.pop("seeds", None), "seeds"
    if seed is not None:
        seeds, where = [seed], "--seed"
    elif seeds is None:
        seeds, where = [raw.get("seed", 0)], "seed"
    if not isinstance(seeds, list) or not seeds or not all(is_seed(s) for s in seeds):
        shown = seeds[0] if where != "seeds" else seeds
        raise OptbenchError(f"{where}: {format_value(shown)} is invalid: expected "
                            f"{'a non-empty list of integers' if where == 'seeds' else 'an integer'} "
                            f"0 <= seed < 2**63")
    if len(set(seeds)) != len(seeds):
        raise OptbenchError(f"seeds: {format_value(seeds)} has duplicates")
    raw.pop("seed", None)
    return seeds


def _variant(vname: Any, vdict: Any, plain: bool) -> dict:
    """One variant's partial config, checked: a safe name, a mapping of run keys other than name, seed, label."""
    if not plain:
        check_name(vname, "variants", what="a variant name")
    if vdict is None:
        vdict = {}
    if not isinstance(vdict, dict):
        raise OptbenchError(f"variants.{vname}: {format_value(vdict)} is invalid: expected a mapping")
    for key in vdict:
        if key not in RUN_KEYS or key in ("name", "seed", "label"):
            raise OptbenchError(f"variants.{vname}.{key}: unknown key for a variant")
    return vdict


def load_experiment(path: str | Path, *, sets=(), seed: int | None = None, cache: DataCache | None = None) -> list[dict]:
    """Read a YAML experiment file and expand it into resolved run configs (data loaded into `cache`)."""
    p = Path(path)
    return expand(read_config(p), source=str(p), base_dir=p.parent, sets=sets, seed=seed, cache=cache)
