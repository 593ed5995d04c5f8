"""Rendering for the CLI: progress while training, result tables, registry listings. Rich on a terminal, plain text in pipes."""

from __future__ import annotations

import inspect
import json
import sys
import time
from typing import Any

import numpy as np

FAMILIES = {
    "optimizers": ("optbench.optim", "OPTIMIZERS"),
    "schedules": ("optbench.schedules", "SCHEDULES"),
    "momentum_schedules": ("optbench.schedules", "MOMENTUM_SCHEDULES"),
    "datasets": ("optbench.data", "DATASETS"),
    "problems": ("optbench.problems", "PROBLEMS"),
    "initializers": ("optbench.init", "INITIALIZERS"),
    "activations": ("optbench.layers", "ACTIVATIONS"),
    "losses": ("optbench.losses", "LOSSES"),
}


def is_terminal() -> bool:
    return sys.stdout.isatty()


def console():
    from rich.console import Console

    return Console()


def plain_table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns aligned with spaces; numbers right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def fmt(cells):
        out = []
        for c, w in zip(cells, widths):
            out.append(c.rjust(w) if _numeric(c) else c.ljust(w))
        return "  ".join(out).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def _numeric(s: str) -> bool:
    try:
        float(s.replace("%", ""))
        return True
    except ValueError:
        return False


def show_table(title: str | None, headers: list[str], rows: list[list[str]], *, file=None) -> None:
    """A rich table on a terminal, plain aligned text otherwise."""
    if is_terminal() and file is None:
        from rich.table import Table

        t = Table(title=title, title_justify="left")
        for h in headers:
            t.add_column(h, justify="left")
        for r in rows:
            t.add_row(*r)
        console().print(t)
    else:
        out = file or sys.stdout
        if title:
            print(title, file=out)
        print(plain_table(headers, rows), file=out)


def num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


# ---- train ----------------------------------------------------------------------------------------


class _Bar:
    """A rich Progress on a terminal (none when quiet or in a pipe), opened and closed as a context manager."""

    COLUMNS: tuple = ()  # text templates after the description, bar and count

    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet
        self.rich = is_terminal() and not quiet
        self._bar = None
        self._task = None

    def __enter__(self):
        if self.rich:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            cols = [TimeElapsedColumn() if c == "elapsed" else TextColumn(c) for c in self.COLUMNS]
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *cols)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


class TrainProgress(_Bar):
    """A rich progress bar per group on a terminal (epoch, current cost per label); plain lines otherwise."""

    COLUMNS = ("elapsed", "{task.fields[costs]}")

    def __init__(self, *, quiet: bool = False):
        super().__init__(quiet=quiet)
        self._last = 0.0
        self._next_line = 0

    def group_started(self, index, n_groups, cfgs):
        self.cfgs = cfgs
        self.labels = sorted({c["label"] for c in cfgs}, key=[c["label"] for c in cfgs].index)
        self.by_label = {lab: np.array([c["label"] == lab for c in cfgs]) for lab in self.labels}
        self.epochs = cfgs[0]["train"]["epochs"]
        names = ", ".join(lab.split("/")[-1] for lab in self.labels)
        desc = f"group {index + 1}/{n_groups}: {names} ({len(cfgs)} runs)"
        if self.quiet:
            return
        if self.rich:
            self._task = self._bar.add_task(desc, total=self.epochs, costs="")
        else:
            print(f"{desc}, {self.epochs} epochs", flush=True)
            self._next_line = max(1, self.epochs // 10)

    def _costs(self, rec) -> str:
        tc = rec.metrics["train_cost"]
        parts = []
        for lab in self.labels:
            sel = self.by_label[lab] & rec.alive
            if sel.any():
                parts.append(f"{lab.split('/')[-1]} {np.nanmean(tc[sel]):.4g}")
        return "  ".join(parts)

    def epoch(self, rec):
        if self.quiet or rec.epoch == 0:
            return
        if self.rich:
            now = time.perf_counter()
            if now - self._last > 0.1 or rec.epoch == self.epochs:
                self._last = now
                self._bar.update(self._task, completed=rec.epoch, costs=self._costs(rec))
        elif rec.epoch >= self._next_line:
            print(f"  epoch {rec.epoch}/{self.epochs}  cost: {self._costs(rec)}", flush=True)
            self._next_line += max(1, self.epochs // 10)

    def group_done(self, cfgs, results, seconds):
        if self.quiet:
            return
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        text = ", ".join(f"{n} {s}" for s, n in counts.items())
        if self.rich:
            self._bar.update(self._task, completed=self.epochs, description=self._bar.tasks[self._task].description + f" [{text}]")
        else:
            print(f"  done in {seconds:.2f}s: {text}", flush=True)


def print_train_table(outcomes) -> None:
    """One row per run (label, seed, status, final cost and accuracy, seconds), then where the runs are."""
    if not outcomes:
        return
    names = {o.cfg["name"] for o in outcomes}
    strip = (lambda lab: lab.split("/", 1)[-1]) if len(names) == 1 else (lambda lab: lab)  # noqa: E731
    has_val = any(o.cfg["data"].get("val_fraction", 0) for o in outcomes)
    rows = []
    for o in outcomes:
        try:
            final = json.loads((o.path / "summary.json").read_text()).get("final", {})
        except (OSError, json.JSONDecodeError):
            final = {}
        acc = final.get("val_acc" if has_val else "train_acc")
        rows.append([strip(o.cfg["label"]), str(o.cfg["seed"]), o.result.status, str(o.result.epochs),
                     num(final.get("train_cost")), "-" if acc is None else f"{acc:.1%}", f"{o.seconds:.2f}"])
    acc_head = "final val acc" if has_val else "final train acc"
    title = f"{', '.join(sorted(names))}: {len(outcomes)} runs"
    show_table(title, ["label", "seed", "status", "epochs", "final train cost", acc_head, "seconds"], rows)
    roots = sorted({str(o.path.parent) for o in outcomes})
    print(f"run directories, in {', '.join(roots)}:")
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
    reg = registry(family)
    rows = []
    for name in reg.names():
        params = reg.params(name)
        opts = ", ".join(
            f"{k}={p.default!r}" if p.default is not inspect.Parameter.empty else f"{k} (required)"
            for k, p in params.items()
        )
        rows.append([name, opts or "-", reg.summary(name)])
    show_table(family, ["name", "options (defaults)", "what it is"], rows)
    if not is_terminal():
        print()


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
    """One bar over the runs of a sweep: done, running, diverged, elapsed and remaining; plain lines in a pipe."""

    COLUMNS = ("{task.fields[counts]}", "elapsed", "remaining {task.fields[remaining]}")

    def __init__(self, *, quiet: bool = False):
        super().__init__(quiet=quiet)
        self._t0 = time.perf_counter()
        self._last_done = -1

    def started(self, start) -> None:
        self._t0 = time.perf_counter()
        plan = start.plan
        trials = len(plan.trials)
        head = (f"sweep {plan.dirname}: {trials} trials, {start.total} runs"
                + (f", {start.resumed} already complete" if start.resumed else "")
                + (f"; training {start.todo} in {start.units} groups on {start.backend}" if start.todo else ""))
        if self.quiet:
            return
        if self.rich:
            console().print(head)
            self._task = self._bar.add_task("runs", total=start.total, completed=start.resumed, counts="", remaining="?")
        else:
            print(head, flush=True)

    def _remaining(self, t) -> float:
        elapsed = time.perf_counter() - self._t0
        trained = t.done - t.resumed
        return elapsed / trained * (t.total - t.done) if trained > 0 else float("nan")

    def update(self, t) -> None:
        if self.quiet:
            return
        counts = f"running {t.running}  diverged {t.diverged}" + (f"  interrupted {t.interrupted}" if t.interrupted else "")
        if self.rich:
            self._bar.update(self._task, completed=t.done, counts=counts, remaining=_clock(self._remaining(t)))
        elif t.done != self._last_done:
            self._last_done = t.done
            elapsed = time.perf_counter() - self._t0
            print(f"  {t.done}/{t.total} runs done, {counts.replace('  ', ', ')}, elapsed {_clock(elapsed)}, "
                  f"remaining {_clock(self._remaining(t))}", flush=True)


def print_sweep_outcome(out) -> None:
    """Where the sweep is, what this pass trained, and how to look at it."""
    st = ", ".join(f"{n} {s}" for s, n in sorted(out.statuses.items()))
    done = f"{st} in {out.seconds:.1f} s" if st else "nothing to train"
    lines = [f"sweep {out.plan.id}: {len(out.plan.runs)} runs in {out.root}",
             f"  this pass: {done}" + (f"; {out.resumed} were already complete" if out.resumed else "")]
    if out.interrupted:
        lines.append(f"  interrupted: run the same command again to train the {out.left} runs left")
    else:
        lines.append(f"  compare: optbench compare {out.root}")
    print("\n".join(lines), flush=True)
