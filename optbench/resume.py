"""`optbench train --resume`: which runs of an experiment are done, which go on from a checkpoint, which start.

A run of the experiment is found under the runs directory by its config.yaml, the same text as the
resolved config. One that finished (completed, diverged, stopped early) is not trained again; one that
crashed, was interrupted or failed goes on in its own directory from its checkpoint (or from the start
when it has none); one that another live process is training is left alone; the rest train as new runs.
Temporary directories of writers that are gone are removed first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from optbench import checkpoint, finetune
from optbench.config import dump_yaml
from optbench.execute import Resume
from optbench.runs.checkpoints import CHECKPOINTS, config_hash
from optbench.runs.status import CRASHED, FINISHED, effective_status, remove_stale_temps

AGAIN = (CRASHED, "interrupted", "failed")


@dataclass
class ResumePlan:
    """The runs to train (with where each one starts) and what was left out."""

    cfgs: list[dict] = field(default_factory=list)
    resume: list[Resume | None] = field(default_factory=list)
    done: int = 0  # finished earlier: not trained again
    busy: list[Path] = field(default_factory=list)  # `running` in a live process: left alone
    restarted: int = 0  # crashed before their first checkpoint (or it was unreadable): from epoch 0 in place

    @property
    def continued(self) -> int:
        return sum(r is not None and r.state is not None for r in self.resume)


def _candidates(runs_dir: Path) -> dict[str, list[tuple[str, Path, dict]]]:
    """config.yaml text -> (created, directory, summary) of every readable run directory right under runs_dir."""
    out: dict[str, list[tuple[str, Path, dict]]] = {}
    if not runs_dir.is_dir():
        return out
    for d in runs_dir.iterdir():
        if d.name.startswith(".") or not d.is_dir() or not (d / "summary.json").is_file():
            continue
        try:
            text = (d / "config.yaml").read_text()
            summary = json.loads((d / "summary.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict):
            out.setdefault(text, []).append((str(summary.get("created") or ""), d, summary))
    return out


def _state(d: Path, cfg: dict) -> tuple[int, dict] | None:
    """(epoch, state) of a run directory's newest checkpoint slot that reads back and belongs to this config."""
    h = config_hash(cfg)
    saved = checkpoint.newest([d / name for name in CHECKPOINTS], lambda t: t["config"] == h,
                              key=lambda t: int(t["state"]["epoch"]))
    return None if saved is None else (int(saved["state"]["epoch"]), saved["state"])


def plan_resume(cfgs: list[dict], runs_dir: Path) -> ResumePlan:
    """What `train --resume` does with each of the experiment's runs (see the module docstring)."""
    remove_stale_temps(Path(runs_dir))  # what killed writers left half made
    found = _candidates(Path(runs_dir))
    plan = ResumePlan()
    used: set[Path] = set()
    finished: dict[tuple[str, int], Path] = {}  # (label, seed) -> its newest finished run: what fine-tuning starts from
    for cfg in cfgs:
        if finetune.source_key(cfg) in finished:
            finetune.resolve_refs([cfg], finished)  # its source is done: the config.yaml it wrote names that run
        runs = sorted((c for c in found.get(dump_yaml(cfg), []) if c[1] not in used), key=lambda c: (c[0], c[1].name))
        status = {d: effective_status(s) for _, d, s in runs}
        if any(status[d] in FINISHED for _, d, _ in runs):
            finished[cfg["label"], cfg["seed"]] = [d for _, d, _ in runs if status[d] in FINISHED][-1]
            plan.done += 1
            used.update(d for _, d, _ in runs if status[d] in FINISHED)
            continue
        live = [d for _, d, _ in runs if status[d] == "running"]
        if live:
            plan.busy.append(live[-1])
            used.add(live[-1])
            continue
        again = [d for _, d, _ in runs if status[d] in AGAIN]
        plan.cfgs.append(cfg)
        if not again:
            plan.resume.append(None)
            continue
        d = again[-1]  # the newest
        used.add(d)
        st = _state(d, cfg)
        if st is None:
            plan.restarted += 1
            plan.resume.append(Resume(d, -1, None))
        else:
            plan.resume.append(Resume(d, st[0], st[1]))
    return plan
