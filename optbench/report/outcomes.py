"""What a train or sweep command did: a row per run (or one line), the runs never started, where the runs are."""

from __future__ import annotations

import json
import os
from pathlib import Path

from optbench import layout
from optbench.report.progress import clip, status_counts
from optbench.report.table import num, show_table


def _seeds(seeds: list[int]) -> str:
    """`s0-4`, `s0, s2, s5-6`."""
    v = sorted(set(seeds))
    parts, i = [], 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[j + 1] == v[j] + 1:
            j += 1
        parts.append(f"s{v[i]}" if i == j else f"s{v[i]}-{v[j]}")
        i = j + 1
    return ", ".join(parts)


def _by_label(items: list[tuple[str, int]], strip: bool = True) -> str:
    """(label, seed) pairs as `adam (s0-4), gd (s1)`, the labels' common `<name>/` prefix left out if `strip`."""
    by: dict[str, list] = {}
    for lab, seed in items:
        by.setdefault(lab, []).append(seed)
    prefix = os.path.commonprefix(list(by))
    prefix = prefix[: prefix.rfind("/") + 1] if strip and len(by) > 1 else ""
    return ", ".join(f"{lab[len(prefix):]} ({_seeds(v)})" for lab, v in by.items())


def runs_text(cfgs: list[dict], strip: bool = True) -> str:
    return _by_label([(c["label"], c["seed"]) for c in cfgs], strip)


def print_train_table(outcomes, *, cfgs: list[dict] | None = None, interrupted: bool = False, quiet: bool = False,
                      seconds: float = 0.0) -> None:
    """One row per run (label, seed, status, epochs reached/planned, final cost and accuracy, update µs/step),
    the runs that never started, and where the runs are; with `quiet`, one line."""
    width = layout.term_width()
    names = sorted({c["name"] for c in (cfgs or [o.cfg for o in outcomes])})
    started = {id(o.cfg) for o in outcomes}
    missing = [c for c in cfgs or () if id(c) not in started]
    roots = sorted({str(o.path.parent) for o in outcomes})
    if quiet:
        st = status_counts([o.result for o in outcomes], outcomes[0].cfg["train"]["epochs"]) if outcomes else "nothing trained"
        line = (f"{', '.join(names)}: {len(outcomes)} runs, {st} in {seconds:.2f} s"
                + (f"; {len(missing)} never started" if missing else "")
                + (f"; in {', '.join(roots)}" if roots else ""))
        print(line, flush=True)
        return
    if outcomes:
        strip = (lambda lab: lab.split("/", 1)[-1]) if len(names) == 1 else (lambda lab: lab)  # noqa: E731
        has_val = any(o.cfg["data"].get("val_fraction", 0) for o in outcomes)
        rows = []
        for o in outcomes:
            try:
                final = json.loads((o.path / "summary.json").read_text()).get("final", {})
            except (OSError, json.JSONDecodeError):
                final = {}
            acc = final.get("val_acc" if has_val else "train_acc")
            us = (getattr(o.result, "timing", None) or {}).get("update_us_per_step")
            rows.append([strip(o.cfg["label"]), str(o.cfg["seed"]), o.result.status,
                         f"{o.result.epochs}/{o.cfg['train']['epochs']}", num(final.get("train_cost")),
                         "-" if acc is None else f"{acc:.1%}", num(us), f"{o.seconds:.3g}"])
        acc_head = "final val acc" if has_val else "final train acc"
        show_table(f"{', '.join(names)}: {len(outcomes)} runs",
                   ["label", "seed", "status", "epochs", "final train cost", acc_head, "update µs/step", "group s"], rows)
    if missing:
        for line in layout.wrap(f"never started ({len(missing)} runs): {runs_text(missing, strip=False)}", width):
            print(line)
    if interrupted and outcomes:
        print("interrupted: the epochs column says where each run stopped (reached/planned)")
    if outcomes:
        print(clip(f"run directories, in {', '.join(roots)}:", width))
        for o in outcomes:
            print(f"  {o.path.name}")


def print_sweep_outcome(out, *, quiet: bool = False) -> None:
    """Where the sweep is, what this pass trained, and how to look at it; after an interrupt, where the
    interrupted runs stopped and which never started. With `quiet`, one line."""
    width = layout.term_width()
    st = ", ".join(f"{n} {s}" for s, n in sorted(out.statuses.items()))
    done = f"{st} in {out.seconds:.1f} s" if st else "nothing to train"
    if quiet:
        tail = f"interrupted, {out.left} runs left" if out.interrupted else f"optbench compare {out.root}"
        print(f"sweep {out.plan.id}: {len(out.plan.runs)} runs, this pass {done}; {tail}", flush=True)
        return
    lines = [f"sweep {out.plan.id}: {len(out.plan.runs)} runs in {out.root}",
             f"  this pass: {done}" + (f"; {out.resumed} were already complete" if out.resumed else "")]
    if out.interrupted:
        stopped = getattr(out, "stopped", [])
        if stopped:
            lines.append(f"  stopped ({len(stopped)} runs) {_stopped_text(stopped)}")
        missing = getattr(out, "not_started", [])
        if missing:
            lines.append(f"  never started ({len(missing)} runs): {runs_text(missing)}")
        lines.append(f"  interrupted: run the same command again to train the {out.left} runs left")
    else:
        lines.append(f"  compare: optbench compare {out.root}")
    print("\n".join(x for line in lines for x in layout.wrap(line, width, indent="    ")), flush=True)


def _stopped_text(stopped: list) -> str:
    """Interrupted runs by the epoch their summary.json says they reached: `at epoch 140/300: gd (s0-4), ...`."""
    by: dict[tuple, list] = {}
    for cfg, d in stopped:
        try:
            reached = json.loads((Path(d) / "summary.json").read_text()).get("epochs", "?")
        except (OSError, json.JSONDecodeError):
            reached = "?"
        by.setdefault((reached, cfg["train"]["epochs"]), []).append((cfg["label"], cfg["seed"]))
    return "; ".join(f"at epoch {e}/{E}: {_by_label(v)}" for (e, E), v in by.items())
