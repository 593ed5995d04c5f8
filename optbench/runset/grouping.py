"""Which runs belong together: one group per label and config, named by the label and the config keys that differ."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

from optbench.runset.identity import config_key, duplicates_line, newest_key, per_replicate, replicate
from optbench.runset.values import Warn, is_number, short

DIGITS = (4, 6, 10, 17)  # significant digits tried in display names until they are distinct


@dataclass(frozen=True)
class RunGroup:
    """The runs of one label and config (one per replicate, by seed), and the name both compare and plot show."""

    label: str
    key: str  # config_key of its runs
    name: str  # the label, then the config keys that differ within the label: `sgd lr=0.1`
    varied: dict[str, Any]  # those keys (dotted) and their values in this group
    items: tuple  # runs.read.Run or compare.RunFacts: anything with .label, .config, .status, .path


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
        return short(str(v), 40)
    return short(json.dumps(v, default=str, separators=(",", ":")), 40)


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Dotted key -> its last part (`lr`), or the whole key where two keys share a last part."""
    last = [k.rpartition(".")[2] for k in keys]
    return {k: (t if last.count(t) == 1 else k) for k, t in zip(keys, last)}


def _sort_value(v: Any) -> tuple:
    if is_number(v) and not math.isnan(v):
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
            if newest_key(it) <= newest_key(reps[rep]):
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
