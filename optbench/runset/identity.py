"""Which runs are one run: the same sweep, label, config (minus seed, fold) and replicate; the newest finished kept."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from optbench.runs.read import Run
from optbench.runs.status import FINISHED, STATUSES
from optbench.runset.values import Warn, is_int, short


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
    return (seed if is_int(seed) else 0), (fold if is_int(fold) else -1)


def sweep_id(run: Run) -> str:
    """The id of the sweep a run belongs to (summary.json's sweep.id), "" outside sweeps."""
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
    return text if isinstance(text, str) and text else mtime_text(Path(run.path))


def mtime_text(path: Path) -> str:
    """A directory's mtime as summary.json's `created` would say it (to the second); "" when it cannot be read."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(path.stat().st_mtime))
    except OSError:
        return ""


def newest_key(run: Any) -> tuple:
    """Sort key: finished beats interrupted beats failed and running; then the newer; then the path."""
    rank = 2 if run.status in FINISHED else 1 if run.status == "interrupted" else 0
    return rank, created(run), str(run.path.name)


def duplicates_line(n: int) -> str:
    """The one warning line for n duplicates left out."""
    return (f"warning: {n} duplicate run{'s' if n != 1 else ''} ignored (same label, config and seed); "
            "the newest finished run of each kept")


def distinct(runs: list[Run], warn: Warn) -> list[Run]:
    """One run per identity, the newest finished one (one warning line for all the others); then running and
    failed runs are left out with a warning each."""
    best: dict[tuple, Run] = {}
    for r in runs:
        key = identity(r)
        if key not in best or newest_key(r) > newest_key(best[key]):
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
        elif r.status == "crashed":  # runs.status.effective_status: left running by a process that is gone
            warn(f"warning: {r.path}: status crashed (its training process is gone; `optbench train CONFIG --resume` goes on)")
        elif r.status == "failed":
            warn(f"warning: {r.path}: status failed ({short(r.summary.get('reason') or 'no reason given')})")
        elif r.status in STATUSES:
            out.append(r)
    return out
