"""Compare's last stage: the tables as plain text, markdown, latex, json, csv or rich; `compare_command` prints."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from optbench import layout
from optbench.layout import term_width, wrap

from optbench.compare.read import _stderr, check_options
from optbench.runset.default import default_paths
from optbench.errors import OptbenchError
from optbench.paths import prepare_out, write_text
from optbench.compare.stats import Comparison, Row, compare, flatten
from optbench.metrics import METRICS
from optbench.compare.tables import (Column, footnotes, health_lines, results_columns, sweep_columns, sweep_notes,
                                     sweep_title, titles, versus_columns)


def _plain(columns: list[Column], marker: str = "*") -> str:
    """Aligned text; the best cells end with the marker (others with a space, so digits stay aligned)."""
    cells = [[x + (marker if i in col.best else " " if col.best else "") for i, x in enumerate(col.cells)] for col in columns]
    widths = [max(len(col.header), *(len(x) for x in cs)) if cs else len(col.header) for col, cs in zip(columns, cells)]
    just = lambda s, w, a: s.rjust(w) if a == "r" else s.ljust(w)  # noqa: E731
    lines = ["  ".join(just(col.header, w, col.align) for col, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for i in range(len(columns[0].cells)):
        lines.append("  ".join(just(cs[i], w, col.align) for col, cs, w in zip(columns, cells, widths)).rstrip())
    return "\n".join(lines)


def render_plain(c: Comparison, *, width: int | None = None, wide: bool = True) -> str:
    """Aligned text; with a `width` (the terminal's) fitted to it: see `terminal_tables`."""
    if width is None:
        t1, t2 = titles(c)
        parts = [x for sw in c.sweeps for x in (sweep_title(sw), _plain(sweep_columns(sw)), "")]
        parts += [t1, _plain(results_columns(c)), "", t2, _plain(versus_columns(c)), ""]
        return "\n".join(parts + sweep_notes(c) + footnotes(c, "*") + health_lines(c)) + "\n"
    lines = []
    for title, cols in terminal_tables(c, wide):
        lines += [*wrap(title, width), layout.plain(layout.fit(cols, width)), ""]
    lines += [x for n in terminal_notes(c, "*", wide) for x in wrap(n, width)]
    return "\n".join(lines) + "\n"


def _short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest suffix that no other key ends with (`optimizer.lr` -> `lr`)."""
    out = {}
    for k in keys:
        parts = k.split(".")
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if not any(o != k and (o == cand or o.endswith("." + cand)) for o in keys):
                out[k] = cand
                break
        else:
            out[k] = k
    return out


def _label_prefix(c: Comparison) -> str:
    """The `<experiment>/` prefix every label shares (left out of terminal tables), or ''."""
    names = [r.name for r in c.rows]
    prefix = os.path.commonprefix(names)
    prefix = prefix[: prefix.rfind("/") + 1]
    return prefix if prefix and all(len(n) > len(prefix) for n in names) else ""


TERSE = {  # cells a terminal shows shorter; the footnotes say what the long forms said
    "verdict": lambda x: x.split(" (CI ")[0],
    "pairing": lambda x: x.split(",")[0].split(":")[0] if x.startswith(("paired,", "unpaired:")) else x,
}


def terminal_tables(c: Comparison, wide: bool) -> list[tuple[str, list[Column]]]:
    """The tables as a terminal shows them: without `wide` columns (unless asked for), labels without their
    common prefix, varied config keys by their short names (terminal_notes gives the legend)."""
    prefix = _label_prefix(c)
    short = _short_names(list(c.varied))

    def show(cols: list[Column]) -> list[Column]:
        out = []
        for col in cols:
            if col.wide and not wide:
                continue
            if col.header == "label" and prefix:
                col = replace(col, cells=[x[len(prefix):] for x in col.cells])
            elif col.header in short:
                col = replace(col, header=short[col.header])
            elif col.header in TERSE:
                col = replace(col, cells=[TERSE[col.header](x) for x in col.cells])
            out.append(col)
        return out

    t1, t2 = titles(c)
    return ([(sweep_title(sw), show(sweep_columns(sw))) for sw in c.sweeps]
            + [(t1, show(results_columns(c))), (t2, show(versus_columns(c)))])


def terminal_notes(c: Comparison, marker: str, wide: bool) -> list[str]:
    """The notes under the terminal tables: the legend of shortened names, then the footnotes."""
    legend = []
    prefix = _label_prefix(c)
    if prefix:
        legend.append(f"labels: {prefix}<label> (the common prefix left out).")
    short = {k: v for k, v in _short_names(list(c.varied)).items() if k != v}
    if short:
        legend.append("columns: " + ", ".join(f"{v} = {k}" for k, v in short.items()) + ".")
    hidden = sorted({col.header for _, cols in _all_tables(c) for col in cols if col.wide})
    if hidden and not wide:
        legend.append(f"more columns with --wide: {', '.join(hidden)}.")
    if c.rows:
        legend.append("verdict: better or worse when the 95% CI of Δ excludes 0, tie when it includes 0; "
                      "pairing: paired by seed, or unpaired (fingerprints differ).")
    return legend + sweep_notes(c) + footnotes(c, marker) + health_lines(c)


def _all_tables(c: Comparison) -> list[tuple[str, list[Column]]]:
    t1, t2 = titles(c)
    return [(sweep_title(sw), sweep_columns(sw)) for sw in c.sweeps] + [(t1, results_columns(c)), (t2, versus_columns(c))]


def _md_table(columns: list[Column]) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(col.header) for col in columns) + " |",
             "|" + "|".join("---:" if col.align == "r" else ":---" for col in columns) + "|"]
    for i in range(len(columns[0].cells)):
        lines.append("| " + " | ".join(esc(col.cells[i]) + ("*" if i in col.best else "") for col in columns) + " |")
    return "\n".join(lines)


def render_markdown(c: Comparison) -> str:
    t1, t2 = titles(c)
    parts = [x for sw in c.sweeps for x in (f"**{sweep_title(sw)}**", "", _md_table(sweep_columns(sw)), "")]
    parts += [f"**{t1}**", "", _md_table(results_columns(c)), "", f"**{t2}**", "", _md_table(versus_columns(c)), ""]
    parts += [f"- {n}" for n in sweep_notes(c) + footnotes(c, "\\*")] + [f"- {h}" for h in health_lines(c)]
    return "\n".join(parts) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$"}


def _tex(s: str) -> str:
    out = "".join(_LATEX.get(ch, ch) for ch in s)
    # text-mode < and > print as other glyphs in the default font encoding
    return out.replace("<=", r"$\le$").replace(">=", r"$\ge$").replace("<", "$<$").replace(">", "$>$")


def _tabular(columns: list[Column]) -> str:
    lines = [r"\begin{tabular}{" + "".join(col.align for col in columns) + "}", r"\hline",
             " & ".join(_tex(col.header) for col in columns) + r" \\", r"\hline"]
    for i in range(len(columns[0].cells)):
        cells = [(r"\textbf{%s}" if i in col.best else "%s") % _tex(col.cells[i]) for col in columns]
        lines.append(" & ".join(cells) + r" \\")
    return "\n".join(lines + [r"\hline", r"\end{tabular}"])


def render_latex(c: Comparison) -> str:
    t1, t2 = titles(c)
    notes = [f"% {n}" for n in sweep_notes(c) + footnotes(c, "bold") + health_lines(c)]
    sweeps = [x for sw in c.sweeps for x in (f"% {sweep_title(sw)}", _tabular(sweep_columns(sw)), "")]
    return "\n".join(sweeps + [f"% {t1}", _tabular(results_columns(c)), "", f"% {t2}", _tabular(versus_columns(c)), ""]
                     + notes) + "\n"


def _json_number(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _pick_of(c: Comparison, row: Row):
    """(sweep summary, pick) a row shows, or (None, None) for runs outside sweeps."""
    tag = row.runs[0].sweep
    for sw in c.sweeps if tag else ():
        for p in sw.picks:
            if sw.id == tag["id"] and (p.result.variant, p.result.trial) == (tag.get("variant"), tag.get("trial")):
                return sw, p
    return None, None


def _sweep_record(c: Comparison, row: Row) -> dict | None:
    sw, p = _pick_of(c, row)
    if p is None:
        return None
    return {"id": sw.id, "name": sw.name, "variant": p.result.variant, "trial": p.result.trial, "setting": p.role,
            "params": p.result.params, "metric": sw.metric, "metric_mean": _json_number(p.result.mean),
            "metric_std": _json_number(p.result.std), "test_metric": p.result.test_metric,
            "test_mean": _json_number(p.result.test_mean), "test_std": _json_number(p.result.test_std),
            "budget_trials": p.trials, "budget_runs": p.runs,
            "budget_epochs": p.epochs}


def records(c: Comparison) -> list[dict[str, Any]]:
    """One flat-ish record per row, the same keys for every row; numbers as numbers, null when not available."""
    out = []
    for r in c.rows:
        flat = flatten(r.runs[0].config)
        v, e, h = r.versus, r.ensemble, r.health
        med = lambda k: _json_number(float(np.median(r.values(k))))  # noqa: E731
        out.append({
            "label": r.name, "config_hash": r.config_hash, "varied": {k: flat.get(k) for k in c.varied},
            "seeds": len(r.seeds), "seed_list": list(r.seeds), "folds": r.folds, "status": r.status(),
            "completed": sum(f.status == "completed" for f in r.runs), "diverged": h.diverged,
            "final_train_cost": _json_number(r.mean("final_train_cost")), "final_train_cost_std": _json_number(r.std("final_train_cost")),
            "best_split": r.split, "best_cost": _json_number(r.mean("best_cost")), "best_cost_epoch": med("best_cost_epoch"),
            "best_acc": _json_number(r.mean("best_acc")), "best_acc_epoch": med("best_acc_epoch"),
            "thresholds": [{"metric": t.metric, "op": t.op, "value": t.value, "epochs_mean": _json_number(m), "reached": hit,
                            "measured": got} for t, (m, hit, got) in zip(c.thresholds, r.reached)],
            "auc": _json_number(r.mean("auc")), "seconds": _json_number(r.mean("seconds")),
            **{m: _json_number(r.mean(m)) for m in METRICS if m not in ("final_train_cost", "best_cost", "best_acc", "auc")},
            "metric": c.metric, "metric_mean": _json_number(r.mean(c.metric)), "metric_std": _json_number(r.std(c.metric)),
            "update_us_per_step": _json_number(r.mean("update_us")),
            "final_sharpness": _json_number(r.mean("final_sharpness")), "final_sharpness_std": _json_number(r.std("final_sharpness")),
            "diff_metric": c.metric, "diff_reference": c.best,
            "diff": _json_number(v.diff) if v else None, "diff_ci_low": _json_number(v.lo) if v else None,
            "diff_ci_high": _json_number(v.hi) if v else None, "win_rate": _json_number(v.win_rate) if v else None,
            "verdict": v.verdict if v else None, "pairing": v.pairing if v else None,
            "ensemble_acc": e.acc if e else None, "single_acc": e.single_acc if e else None,
            "ensemble_models": e.models if e else None, "ensemble_split": e.split if e else None,
            "initial_cost_ratio": _json_number(h.initial_ratio), "update_ratio": _json_number(h.update_ratio),
            "health": list(h.flags), "sweep": _sweep_record(c, r),
        })
    return out


def render_json(c: Comparison) -> str:
    return json.dumps(records(c), indent=2) + "\n"


_SWEEP_CSV = ("id", "name", "variant", "trial", "setting", "params", "metric", "metric_mean", "metric_std",
              "test_metric", "test_mean", "test_std", "budget_trials", "budget_runs", "budget_epochs")


def render_csv(c: Comparison) -> str:
    """records() flattened: varied keys as `config.KEY`, thresholds as `epochs_to[NAME]` and `reached[NAME]`."""
    buf = io.StringIO()
    w = None
    for rec, r in zip(records(c), c.rows):
        row: dict[str, Any] = {}
        for k, val in rec.items():
            if k == "varied":
                row.update({f"config.{key}": x for key, x in val.items()})
            elif k == "sweep":
                if c.sweeps:  # the same columns on every row: empty for runs outside sweeps
                    row.update({f"sweep.{key}": json.dumps(x) if isinstance(x, dict) else x
                                for key, x in (val or dict.fromkeys(_SWEEP_CSV)).items()})
            elif k == "thresholds":
                for t, th in zip(c.thresholds, val):
                    row[f"epochs_to[{t.name}]"] = th["epochs_mean"]
                    row[f"reached[{t.name}]"] = th["reached"]
            elif isinstance(val, list):
                row[k] = " ".join(map(str, val)) if k == "seed_list" else "; ".join(map(str, val))
            else:
                row[k] = val
        if w is None:
            w = csv.DictWriter(buf, fieldnames=list(row), lineterminator="\n")
            w.writeheader()
        w.writerow({k: "" if x is None else x for k, x in row.items()})
    return buf.getvalue()


def render_rich(c: Comparison, *, width: int, wide: bool) -> None:
    """The terminal tables laid out as in plain text, best cells bold green instead of starred; the notes below."""
    from rich.text import Text

    con = layout.console(width)
    for title, cols in terminal_tables(c, wide):
        for line in wrap(title, width):
            con.print(Text(line, style="bold"))
        for line in layout.fit(cols, width, marker=""):
            con.print(layout.rich_text(line))
        con.print()
    for note in terminal_notes(c, "bold green", wide):
        for line in wrap(note, width):
            con.print(Text(line, style="yellow" if note.startswith("health:") else "dim"))


RENDERERS = {"table": render_plain, "markdown": render_markdown, "csv": render_csv, "json": render_json, "latex": render_latex}


def compare_command(paths: list[str], *, runs_dir: Path = Path("runs"), thresholds: Sequence[str] = (), sort: str | None = None,
                    fmt: str = "table", out: Path | None = None, warn: Callable[[str], None] = _stderr,
                    metric: str | None = None, wide: bool = False) -> int:
    """Read runs, print (or write to `out`) the comparison in `fmt`; return the exit code (0 if >= 1 run read, 2 if none).

    The table on stdout fits the terminal (COLUMNS, 100 in a pipe) and leaves out `wide` columns unless `wide`;
    written to a file, it has every column at full width."""
    ths = check_options(thresholds, sort, fmt, metric)
    try:
        if out is not None:
            prepare_out(out)  # a folder that cannot be made fails before any run is read
        where = list(paths) or default_paths(runs_dir, "comparing", warn)  # as plot: the newest experiment
    except OptbenchError as err:
        warn(f"error: {err}")
        return 2
    c = compare(where, thresholds=ths, sort=sort, metric=metric, warn=warn)
    if not c.rows:
        looked = ", ".join(str(Path(p).resolve()) for p in where)
        warn(f"error: no readable runs found (looked in {looked}); train some with `optbench train CONFIG`")
        return 2
    if out is not None:
        try:
            write_text(out, RENDERERS[fmt](c))  # a missing folder is made; an unwritable file is one line, exit 2
        except OptbenchError as err:
            warn(f"error: {err}")
            return 2
    elif fmt == "table" and layout.is_terminal():
        render_rich(c, width=term_width(), wide=wide)
    elif fmt == "table":
        sys.stdout.write(render_plain(c, width=term_width(), wide=wide))
    else:
        sys.stdout.write(RENDERERS[fmt](c))
    return 0
