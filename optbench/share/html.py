"""`optbench report`: one self-contained HTML page of a study, readable offline, the same bytes for the same runs.

The page holds compare's tables (sortable; the ranking metric and the pairing stated), plot's figures as
inline SVG (figures.py) with a toggle per label and the values under the pointer, each label's config
differences, the sweep tables with their budgets, the environment and the commands that reproduce the
study. Templating is the standard library's string.Template over three files beside this module (page.html,
page.css, page.js); a Content-Security-Policy forbids every request the page could make.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import shlex
from pathlib import Path
from string import Template
from typing import Any, Callable, Sequence

from optbench.errors import OptbenchError

Warn = Callable[[str], None]
HERE = Path(__file__).resolve().parent
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
FIGURE_NAMES = {"curves": "Cost curves (mean over seeds, ± std band)", "accuracy": "Training accuracy",
                "lr": "Learning-rate sensitivity", "heatmap": "Sweep heat map", "boundary": "Decision boundaries",
                "trajectory": "Optimizer paths", "fit": "Fitted functions"}


def _read(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def sort_value(text: str) -> str | None:
    """A cell's sort key: its first number (a percentage as its fraction, inf as a large number), None for text."""
    if text.strip().startswith(("inf", "+inf")):
        return "1e308"
    m = NUMBER.search(text)
    if not m or m.start() > 2:  # `5 ok` sorts by 5; `gd lr=0.1` is text
        return None
    v = float(m.group())
    return repr(v / 100 if text[m.end():m.end() + 1] == "%" else v)


def table(columns, *, caption: str = "", cls: str = "sortable") -> str:
    """compare's Columns as an HTML table: best cells marked, each cell's sort key in data-v."""
    if not columns:
        return ""
    n = len(columns[0].cells)
    head = "".join(f'<th scope="col" class="{"l" if c.align == "l" else "r"}" aria-sort="none"><button type="button">'
                   f"{esc(c.header)}</button></th>" for c in columns)
    rows = []
    for i in range(n):
        cells = []
        for c in columns:
            text = c.cells[i]
            v = sort_value(text)
            attrs = f' data-v="{v}"' if v is not None else ""
            klass = ("l" if c.align == "l" else "r") + (" best" if i in c.best else "")
            cells.append(f'<td class="{klass}"{attrs}>{esc(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="wide"><table class="{cls}">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            "</table></div>")


def _notes(lines: Sequence[str]) -> str:
    return "".join(f"<li>{esc(x)}</li>" for x in lines)


def _compare_section(c) -> str:
    from optbench.compare.tables import (footnotes, health_lines, results_columns, sweep_columns, sweep_notes,
                                         sweep_title, titles, versus_columns)

    t1, t2 = titles(c)
    parts = []
    if c.sweeps:
        parts.append("<h2 id=\"sweeps\">Sweeps</h2>")
        for sw in c.sweeps:
            parts.append(table(sweep_columns(sw), caption=sweep_title(sw)))
        parts.append(f"<ul class=\"notes\">{_notes(sweep_notes(c))}</ul>")
    parts.append("<h2 id=\"compare\">Comparison</h2>")
    parts.append(f'<p class="metric">Ranked and paired on <b>{esc(c.metric)}</b>; reference: <b>{esc(c.best)}</b>. '
                 "Click a column header to sort.</p>")
    parts.append(table(results_columns(c), caption=t1))
    parts.append(table(versus_columns(c), caption=t2))
    health = health_lines(c)
    if health:
        parts.append(f'<ul class="health">{_notes(health)}</ul>')
    parts.append(f'<details><summary>What the columns mean</summary><ul class="notes">{_notes(footnotes(c, "bold"))}'
                 "</ul></details>")
    return "\n".join(parts)


def _json_script(id_: str, data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, sort_keys=True)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")  # inert inside <script>
    return f'<script type="application/json" id="{id_}">{text}</script>'


def _figures_section(toggles, pics) -> str:
    boxes = "".join(
        f'<label class="toggle"><input type="checkbox" checked data-label="{i}">'
        f'<span class="swatch" style="background:{esc(t.color)}"></span>{esc(t.name)}</label>'
        for i, t in enumerate(toggles))
    parts = ['<h2 id="figures">Figures</h2>',
             f'<div class="toggles" role="group" aria-label="labels shown in the curves">{boxes}</div>']
    skipped = []
    for n, p in enumerate(pics):
        name = FIGURE_NAMES.get(p.kind, p.kind)
        if not p.drawn:
            skipped.append(f"{name}: {'; '.join(p.notes)}")
            continue
        data = f' data-fig="fig-data-{n}"' if p.panels else ""
        readout = '<output class="readout">move the pointer over the plot to read its values</output>' if p.panels else ""
        notes = f'<ul class="notes">{_notes(p.notes)}</ul>' if p.notes else ""
        parts.append(f'<figure id="fig-{esc(p.kind)}"{data}>{p.svg}<figcaption>{esc(name)}</figcaption>{readout}{notes}'
                     "</figure>")
        if p.panels:
            parts.append(_json_script(f"fig-data-{n}", p.panels))
    parts.append(_json_script("label-names", [t.name for t in toggles]))
    if skipped:
        parts.append(f'<details><summary>Figures that do not apply to these runs</summary><ul class="notes">'
                     f"{_notes(skipped)}</ul></details>")
    return "\n".join(parts)


def _configs_section(c) -> str:
    """Each row's config differences (the keys whose value or presence differs between rows), then its full config."""
    from optbench.runset.grouping import flatten
    from optbench.config import dump_yaml
    from optbench.share.table import cell, varied_columns

    firsts = [r.runs[0] for r in c.rows]
    keys = varied_columns(firsts)
    head = "".join(f'<th scope="col" class="l" aria-sort="none"><button type="button">{esc(k)}</button></th>' for k in keys)
    rows = []
    for r in c.rows:
        flat = flatten(r.runs[0].config)
        cells = "".join(f'<td class="l">{esc(json.dumps(cell(flat[k])) if k in flat else "–")}</td>' for k in keys)
        rows.append(f'<tr><th scope="row" class="l">{esc(r.name)}</th>{cells}</tr>')
    parts = ['<h2 id="configs">Configurations</h2>']
    if keys:
        parts.append(f'<div class="wide"><table class="sortable"><caption>config keys that differ between the rows '
                     f'(– : the key does not apply)</caption><thead><tr><th scope="col" class="l" aria-sort="none">'
                     f'<button type="button">label</button></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    else:
        parts.append("<p>Every row has the same config (the rows differ in label only).</p>")
    for r in c.rows:
        cfg = {k: v for k, v in r.runs[0].config.items() if k != "seed"}
        parts.append(f"<details><summary>{esc(r.name)}: resolved config ({len(r.runs)} seeds)</summary>"
                     f"<pre>{esc(dump_yaml(cfg))}</pre></details>")
    return "\n".join(parts)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> str:
    import numpy as np

    try:
        dep = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{dep.get('name', '?')} {dep.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - numpy's build info is optional and varies between versions
        return "unknown"


def environment(runs) -> list[tuple[str, str]]:
    """What the runs recorded (versions, with how many runs each) and what this report was built with."""
    import matplotlib
    import numpy as np

    from optbench import __version__

    seen: dict[str, int] = {}
    for r in runs:
        v = r.summary.get("versions")
        text = ", ".join(f"{k} {v[k]}" for k in sorted(v)) if isinstance(v, dict) and v else "not recorded"
        seen[text] = seen.get(text, 0) + 1
    out = [("trained with", f"{text} ({n} run{'s' if n != 1 else ''})") for text, n in sorted(seen.items())]
    out += [("report built with", f"optbench {__version__}, numpy {np.__version__}, matplotlib {matplotlib.__version__}, "
             f"python {platform.python_version()}"),
            ("on", f"{platform.system()} {platform.machine()}, CPU {_cpu()}, {os.cpu_count()} cores, BLAS {_blas()}")]
    return out


def commands(runs, paths: Sequence[str], out: str) -> list[str]:
    """Shell commands that reproduce the study: each sweep as sweep.json recorded it, the other runs from their
    config.yaml files, then the comparison and this report."""
    from optbench.runset.finding import is_sweep_dir
    from optbench.runset.identity import sweep_id

    q = shlex.quote
    sweeps: dict[Path, None] = {}
    plain = []
    for r in runs:
        if sweep_id(r) and is_sweep_dir(r.path.parent):
            sweeps.setdefault(r.path.parent)
        else:
            plain.append(r)
    lines = []
    for d in sweeps:
        try:
            info = json.loads((d / "sweep.json").read_text())
        except (OSError, ValueError):
            info = {}
        source = info.get("source") if isinstance(info, dict) else None
        sets = info.get("sets") if isinstance(info, dict) and isinstance(info.get("sets"), list) else []
        if isinstance(source, str) and source:
            lines.append(" ".join(["optbench sweep", q(source), *(f"--set {q(str(s))}" for s in sets)]))
        else:
            lines.append(f"# {d}: sweep.json names no source config")
    if plain:
        lines.append(" ".join(["optbench train", *(q(str(r.path / "config.yaml")) for r in plain)]))
    where = " ".join(q(str(p)) for p in paths)
    lines += [f"optbench compare {where}", f"optbench report {where} -o {q(out)}"]
    return lines


def render(paths: Sequence[str], out: str, warn: Warn) -> str:
    """The page's text for the runs under `paths` (`out`: the report's path, as the reproduce commands name it)."""
    from optbench.runset import reading
    from optbench.compare.stats import compare
    from optbench.plots.data import experiment_title
    from optbench.share.figures import draw

    runs = reading.read(paths, warn)
    if not runs:
        raise OptbenchError(f"no readable runs found in {', '.join(map(str, paths))}")
    c = compare(paths, warn=lambda m: None)  # the reader above already warned once about each bad run
    toggles, pics = draw(runs, warn=warn)
    title = experiment_title(runs)
    env = "".join(f"<tr><th scope=\"row\" class=\"l\">{esc(k)}</th><td class=\"l\">{esc(v)}</td></tr>"
                  for k, v in environment(runs))
    cmds = "\n".join(esc(x) for x in commands(runs, paths, out))
    body = "\n".join([
        _compare_section(c),
        _figures_section(toggles, pics),
        _configs_section(c),
        f'<h2 id="environment">Environment</h2><table class="plain"><tbody>{env}</tbody></table>',
        f'<h2 id="reproduce">Reproduce</h2><pre class="commands">{cmds}</pre>',
    ])
    nav = "".join(f'<a href="#{i}">{n}</a>' for i, n in (("sweeps", "sweeps"), ("compare", "comparison"),
                                                        ("figures", "figures"), ("configs", "configs"),
                                                        ("environment", "environment"), ("reproduce", "reproduce"))
                  if i != "sweeps" or c.sweeps)
    n_labels = len(c.rows)
    return Template(_read("page.html")).substitute(
        title=esc(f"optbench: {title}"), heading=esc(title), css=_read("page.css"), js=_read("page.js"), nav=nav,
        summary=esc(f"{c.n_runs} runs, {n_labels} label{'s' if n_labels != 1 else ''}; metric {c.metric}"),
        body=body)


def report_command(paths: Sequence[str], *, out: Path, runs_dir: Path = Path("runs"), warn: Warn) -> Path:
    """Write the report of the runs under `paths` (bare: the newest experiment under `runs_dir`) to `out`."""
    from optbench.runset.default import default_paths
    from optbench.paths import prepare_out, write_text

    if Path(out).suffix.lower() not in (".html", ".htm"):
        raise OptbenchError(f"--out: {str(out)!r} is not an .html file (accepted: a path ending in .html)")
    prepare_out(out)
    where = [str(p) for p in paths] or [str(p) for p in default_paths(runs_dir, "reporting", warn)]
    return write_text(out, render(where, str(out), warn))
