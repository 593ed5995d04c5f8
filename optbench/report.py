"""Rendering for the CLI: progress while training, result tables, registry listings. Rich on a terminal, plain text in pipes."""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optbench.layout import console, is_terminal  # report.is_terminal: its tables call it, tests patch it
from optbench import layout
from optbench.choices import FAMILIES



@dataclass(frozen=True)
class _Column:
    header: str
    cells: list[str]
    align: str
    best: frozenset = frozenset()


def _columns(headers: list[str], rows: list[list[str]]) -> list[_Column]:
    """Columns of a row-wise table; numbers right-aligned."""
    cols = list(zip(*rows)) if rows else [()] * len(headers)
    return [_Column(h, list(cs), "r" if any(_numeric(x) for x in cs) and all(_numeric(x) or x == "-" for x in cs) else "l")
            for h, cs in zip(headers, cols)]


def plain_table(headers: list[str], rows: list[list[str]], width: int | None = None) -> str:
    """Columns aligned with spaces, numbers right-aligned, within `width` (default: term_width())."""
    return layout.plain(layout.fit(_columns(headers, rows), width or layout.term_width()))


def _numeric(s: str) -> bool:
    try:
        float(s.replace("%", ""))
        return True
    except ValueError:
        return False


def show_table(title: str | None, headers: list[str], rows: list[list[str]], *, file=None) -> None:
    """A table within the terminal's width (COLUMNS; 100 in a pipe): rich text on a terminal, plain text otherwise."""
    width = layout.term_width()
    lines = layout.fit(_columns(headers, rows), width)
    if is_terminal() and file is None:
        from rich.text import Text

        con = console(width)
        for t in layout.wrap(title, width) if title else ():
            con.print(Text(t, style="bold"))
        for line in lines:
            con.print(layout.rich_text(line))
    else:
        out = file or sys.stdout
        for t in layout.wrap(title, width) if title else ():
            print(t, file=out)
        print(layout.plain(lines), file=out)


def num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


# ---- train ----------------------------------------------------------------------------------------


def _clip(text: str, width: int) -> str:
    """One line of at most `width` characters, cut at a word with an ellipsis."""
    if len(text) <= width:
        return text
    cut = text[: max(0, width - 2)].rsplit("  ", 1)[0] if "  " in text[: max(0, width - 2)] else text[: max(0, width - 2)].rsplit(" ", 1)[0]
    return cut + " …"


class _Bar:
    """A rich Progress on a terminal (none when quiet or in a pipe), opened and closed as a context manager.

    The description, bar and counters never shrink; the last text column takes the room left and is cut
    with an ellipsis, so the counter stays whole at any width."""

    COLUMNS: tuple = ()  # text templates after the description, bar and count; the last one is cut to fit
    PERCENT = False  # the count as a percentage (else completed/total)

    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet
        self.rich = is_terminal() and not quiet
        self.width = layout.term_width()
        self._bar = None
        self._task = None

    def __enter__(self):
        if self.rich:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                       TimeElapsedColumn)
            from rich.table import Column

            whole = lambda: Column(no_wrap=True)  # noqa: E731
            cols = [TimeElapsedColumn(table_column=whole()) if c == "elapsed" else TextColumn(c, table_column=whole())
                    for c in self.COLUMNS]
            cols[-1] = TextColumn(self.COLUMNS[-1], table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))
            self._bar = Progress(TextColumn("{task.description}", table_column=whole()), BarColumn(bar_width=20),
                                 (TaskProgressColumn if self.PERCENT else MofNCompleteColumn)(table_column=whole()),
                                 *cols, console=console(self.width),
                                 expand=True)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


class TrainProgress(_Bar):
    """A rich progress bar per group on a terminal (epochs, current cost per label); plain lines otherwise."""

    COLUMNS = ("elapsed", "{task.fields[costs]}")

    def __init__(self, *, quiet: bool = False):
        super().__init__(quiet=quiet)
        self._last = 0.0
        self._next_line = 0
        self.reached = 0

    def group_started(self, index, n_groups, cfgs):
        self.cfgs = cfgs
        self.labels = sorted({c["label"] for c in cfgs}, key=[c["label"] for c in cfgs].index)
        self.by_label = {lab: np.array([c["label"] == lab for c in cfgs]) for lab in self.labels}
        self.epochs = cfgs[0]["train"]["epochs"]
        self.reached = 0
        desc = f"group {index + 1}/{n_groups} ({len(cfgs)} runs)"
        if self.quiet:
            return
        if self.rich:
            # the room the costs have beside the description, bar, count and clock: cut at a label, not in a number
            self._room = self.width - len(desc) - 20 - len(f"{self.epochs}/{self.epochs}") - len("0:00:00") - 4
            self._task = self._bar.add_task(desc, total=self.epochs, costs="")
        else:
            names = ", ".join(lab.split("/")[-1] for lab in self.labels)
            print(_clip(f"{desc}: {names}; {self.epochs} epochs", self.width), flush=True)
            self._next_line = max(1, self.epochs // 10)

    def _costs(self, rec) -> str:
        tc = rec.metrics["train_cost"]
        parts = []
        for lab in self.labels:
            sel = self.by_label[lab] & rec.alive
            if sel.any():
                parts.append(f"{lab.split('/')[-1]} {np.nanmean(tc[sel]):.4g}")
        return "cost: " + "  ".join(parts)

    def epoch(self, rec):
        self.reached = rec.epoch
        if self.quiet or rec.epoch == 0:
            return
        if self.rich:
            now = time.perf_counter()
            if now - self._last > 0.1 or rec.epoch == self.epochs:
                self._last = now
                self._bar.update(self._task, completed=rec.epoch, costs=_clip(self._costs(rec), self._room))
        elif rec.epoch >= self._next_line:
            print(_clip(f"  epoch {rec.epoch}/{self.epochs}  {self._costs(rec)}", self.width), flush=True)
            self._next_line += max(1, self.epochs // 10)

    def group_done(self, cfgs, results, seconds):
        if self.quiet:
            return
        text = _status_counts(results, self.epochs)
        if self.rich:  # the bar stays where training got to: an interrupted group does not read as complete
            reached = max((r.epochs for r in results), default=0)
            done = reached if any(r.status == "interrupted" for r in results) else self.epochs
            self._bar.update(self._task, completed=done, costs=_clip(text, self._room))
        else:
            print(_clip(f"  done in {seconds:.2f} s: {text}", self.width), flush=True)


def _status_counts(results, planned: int) -> str:
    """`15 completed`, `10 interrupted at epoch 140/300, 5 diverged`."""
    counts: dict[str, int] = {}
    for r in results:
        key = f"{r.status} at epoch {r.epochs}/{planned}" if r.status == "interrupted" else r.status
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


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


def _runs_text(cfgs: list[dict], strip: bool = True) -> str:
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
        st = _status_counts([o.result for o in outcomes], outcomes[0].cfg["train"]["epochs"]) if outcomes else "nothing trained"
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
        for line in layout.wrap(f"never started ({len(missing)} runs): {_runs_text(missing, strip=False)}", width):
            print(line)
    if interrupted and outcomes:
        print("interrupted: the epochs column says where each run stopped (reached/planned)")
    if outcomes:
        print(_clip(f"run directories, in {', '.join(roots)}:", width))
        for o in outcomes:
            print(f"  {o.path.name}")


# ---- list -----------------------------------------------------------------------------------------


def registry(family: str):
    import importlib

    mod, attr = FAMILIES[family]
    return getattr(importlib.import_module(mod), attr)


def _annotation(p: inspect.Parameter) -> str:
    a = p.annotation
    if a is inspect.Parameter.empty:
        return ""
    text = a if isinstance(a, str) else getattr(a, "__name__", str(a))
    return str(text).replace("typing.", "")


def print_registry(family: str) -> None:
    from optbench.errors import OptbenchError

    reg = registry(family)
    rows = []
    for name in reg.names() + reg.installed():  # installed plugins are imported here, to show their schema
        try:
            params = reg.params(name)
        except OptbenchError as err:
            rows.append([name, "-", f"plugin that does not load: {str(err).split(' is invalid: ', 1)[-1]}"])
            continue
        opts = ", ".join(
            f"{k}={p.default!r}" if p.default is not inspect.Parameter.empty else f"{k} (required)"
            for k, p in params.items()
        )
        summary = reg.summary(name)
        rows.append([name, opts or "-", f"(plugin {reg.get(name).__module__}) {summary}" if reg.is_plugin(name) else summary])
    show_table(family, ["name", "options (defaults)", "what it is"], rows)
    if not is_terminal():
        print()


def print_entry(family: str, name: str) -> None:
    """One entry in full: its docstring (the formula), its options with defaults and, for an optimizer, the
    reference form (optbench/reference.py) its fast form is tested against, or its own code when that is its formula."""
    reg = registry(family)
    factory = reg.get(name, family)
    alias = f" (another name for {factory.__name__})" if factory.__name__ != name else ""
    lines = [f"{family} {name}{alias}", "", *(inspect.getdoc(factory) or "").splitlines(), "", "options (defaults):"]
    lines += [f"  {k}: {_annotation(p)} = {p.default!r}" for k, p in reg.params(name).items()] or ["  none"]
    if family == "optimizers":
        lines += ["", *_rule_forms(name, factory)]
    print("\n".join(lines))


def _rule_forms(name: str, factory) -> list[str]:
    """The readable forms of optimizer `name`: reference.py's steps for it, or where its code is."""
    from optbench import reference
    from optbench.optim import is_closure_optimizer

    if registry("optimizers").is_plugin(name):
        try:
            source = inspect.getsource(factory).rstrip()
        except (OSError, TypeError):
            source = "(its source is not available)"
        return [f"a rule of your own ({factory.__module__}), its code:", "", source]
    if is_closure_optimizer(name):
        return [f"a closure optimizer ({factory.__module__}): step(theta, closure, state), see its module docstring"]
    own = getattr(factory, "reference_forms", None)  # a rule in its own module names its textbook form
    steps = list(own) if own else reference.forms(factory.__name__)
    if not steps:
        return [f"written as its formula, the fast form is its reference ({factory.__module__}):", "",
                inspect.getsource(factory).rstrip()]
    out = []
    for step in steps:
        how = ("bit for bit" if step.__name__ in reference.BITWISE and not own
               else "to rounding (1e-15 of the trajectory's scale)" if not own else "to rounding")
        where = step.__module__.replace(".", "/") + ".py"
        out += [f"reference form {step.__name__} ({where}; the fast form matches it {how}):", "",
                inspect.getsource(step).rstrip(), ""]
    return out[:-1]


# ---- gradcheck ------------------------------------------------------------------------------------


def print_gradcheck(rows: list[dict], *, params: bool = False) -> bool:
    """One line per (net, path), or per (net, path, parameter) with `params`; then the verdict line. Returns it."""
    from optbench.checks import by_path, verdict

    table = []
    names = {r["label"].split("/")[0] for r in rows}
    prefix = f"{names.pop()}/" if len(names) == 1 and all("/" in r["label"] for r in rows) else ""
    for r in rows if params else by_path(rows):
        net = r["label"][len(prefix) :] + (f" +{len(r['same'])}" if r["same"] else "")
        net = net if len(net) <= 28 else "…" + net[-27:]  # the table stays within 100 columns
        result = f"FAIL ({r['failed']})" if r["failed"] else ("ok" if r["checked"] else ("-" if params else "unchecked"))
        table.append([net, r["path"], r["param"], *(str(r[k]) for k in ("checked", "kinks", "at_floor")), f"{r['worst']:.2e}", result])
    v = verdict(rows)
    headers = ["net", "path", "param" if params else "worst in", "checked", "kinks", "at floor", "rel err", "result"]
    title = f"{prefix[:-1] or 'numeric'} gradient check (five-point, h={v['h']:g}, at the initial weights)"
    show_table(title, headers, table)
    print(f"rel err = |a-n| / max(|a|+|n|, {v['floor']:g}) per entry, pass <= {v['rtol']:g}; at floor: |a|+|n| < {v['floor']:g}")
    print("kinks: not checkable (a ReLU-type unit changes sides within the stencil), left out of the verdict")
    print("fused: the training step of plain nets (compile_step); general: MLP.backward (norm, dropout, L-BFGS)")
    if any(r["same"] for r in rows):
        print("+N: N more labels with the same net and data, checked once")
    nets = f"{v['nets']} net" + ("s" if v["nets"] != 1 else "")
    if v["ok"]:
        line = (f"PASS: worst rel err {v['worst']:.2e} (limit {v['rtol']:g}) over {v['checked']} entries of {nets}; "
                f"{v['kinks']} kinks, 0 failed")
    else:
        unchecked = f", {v['unchecked']} path(s) with nothing checkable" if v["unchecked"] else ""
        label, path, param = v["where"]
        line = (f"FAIL: {v['failed']} of {v['checked']} entries over the limit {v['rtol']:g}{unchecked}; worst rel err "
                f"{v['worst']:.2e} at {{}} {path} {param}")
        room = 100 - len(line) + 2
        line = line.format(label if len(label) <= room else "…" + label[len(label) - room + 1 :])
    print(line)
    return v["ok"]


# ---- sweep ----------------------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class SweepProgress(_Bar):
    """One bar over a sweep's run-epochs (it moves while groups train, in every worker): runs done, running,
    diverged, elapsed and remaining; plain lines in a pipe (at each 10% and when runs finish)."""

    COLUMNS = ("elapsed", "{task.fields[counts]}")
    PERCENT = True

    def __init__(self, *, quiet: bool = False):
        super().__init__(quiet=quiet)
        self._t0 = time.perf_counter()
        self._last = (-1, -1)
        self._start_epochs = 0

    def started(self, start) -> None:
        self._t0 = time.perf_counter()
        plan = start.plan
        trials = len(plan.trials)
        head = (f"sweep {plan.dirname}: {trials} trials, {start.total} runs"
                + (f", {start.resumed} already complete" if start.resumed else "")
                + (f"; training {start.todo} in {start.units} groups on {start.backend}" if start.todo else ""))
        if self.quiet:
            return
        for line in layout.wrap(head, self.width):
            if self.rich:
                console(self.width).print(line, highlight=False)
            else:
                print(line, flush=True)
        if self.rich:
            self._task = self._bar.add_task("epochs", total=1, completed=0, counts="")

    def _remaining(self, t) -> float:
        """From the run-epochs trained in this pass and the time they took."""
        elapsed = time.perf_counter() - self._t0
        trained = t.epochs_done - self._start_epochs
        return elapsed / trained * (t.epochs_total - t.epochs_done) if trained > 0 else float("nan")

    def update(self, t) -> None:
        if self.quiet:
            return
        if self._last == (-1, -1):
            self._start_epochs = t.epochs_done
        counts = (f"runs {t.done}/{t.total} done, {t.running} running, {t.diverged} diverged"
                  + (f", {t.interrupted} interrupted" if t.interrupted else ""))
        timing = f"remaining {_clock(self._remaining(t))}"
        if self.rich:
            self._bar.update(self._task, completed=t.epochs_done, total=max(t.epochs_total, 1),
                             counts=f"{timing}  {counts}")
            return
        tenth = int(10 * t.epochs_done / t.epochs_total) if t.epochs_total else 10
        if (t.done, tenth) != self._last:
            self._last = (t.done, tenth)
            pct = 100 * t.epochs_done / t.epochs_total if t.epochs_total else 100.0
            elapsed = time.perf_counter() - self._t0
            print(_clip(f"  {pct:3.0f}% of epochs, {counts}, elapsed {_clock(elapsed)}, {timing}", self.width), flush=True)


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
            lines.append(f"  never started ({len(missing)} runs): {_runs_text(missing)}")
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
