"""The report's figures: plot's own figures as inline SVG, each label's artists tagged so a page can hide them,
and the line panels' data so a page can read values under the pointer.

Same bytes for the same runs: matplotlib's SVG ids come from svg.hashsalt (plots.style), no date or creator
is written, and every id is prefixed with the figure's number so that several SVGs share one page.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from optbench.errors import OptbenchError

Warn = Callable[[str], None]
KINDS = ("curves", "accuracy", "lr", "heatmap", "boundary", "trajectory", "fit")
TOGGLED = ("curves", "accuracy")
RASTER = ("boundary",)  # decision regions: filled contours of a pixel grid, smaller as an image inside the SVG  # figures whose lines are labels: hidden by the page's label toggles
POINTS_MAX = 800  # values under the pointer per series: a pixel's worth, not every epoch of 5000
BAND_BUCKETS = 400  # a seed band's outline: min and max per bucket of x (about a point wide), not 2 x 5001 vertices
D_ATTR = re.compile(r'\b(d|x|y)="([^"]*)"')
CLIPPED = re.compile(r'(<g clip-path="url\(#([\w-]+)\)">(?:\s*<use [^>]*/>)+)\s*</g>\s*<g clip-path="url\(#\2\)">')
DECIMALS = re.compile(r"(\.\d{2})\d+")
ID = re.compile(r'\bid="([^"]+)"')
REF = re.compile(r'(xlink:href="#|href="#|url\(#)([^")]+)')
TAG = re.compile(r'<g id="(f\d+-)lab(\d+)-(\d+)"')


@dataclass(frozen=True)
class Label:
    """A toggle on the page: the label's display name and colour (as the figures draw it)."""

    name: str
    color: str


@dataclass
class Picture:
    """One figure on the page: its kind, the SVG markup, and per line panel the data behind the pointer readout."""

    kind: str
    svg: str = ""
    panels: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings while drawing, or why the figure is not drawn
    drawn: bool = True


def labels(runs) -> list[Label]:
    """The labels as the curve figures colour them (plots.choose, the default view), in drawing order."""
    from optbench.plots import data
    from optbench.plots.choose import OTHERS_COLOR, choose

    view = choose(data.group_runs(runs), metric="train_cost")
    out = [Label(g.name, g.color) for g in view.groups if g.label not in view.others]
    if view.others:
        out.append(Label(f"{len(view.others)} others", OTHERS_COLOR))
    return out


def _hex(c) -> str:
    from matplotlib.colors import to_hex

    return to_hex(c, keep_alpha=False)


def _tag(fig, colors: dict[str, int]) -> None:
    """gid `lab<i>-<n>` on every line and band whose colour is label i's (legends are left alone)."""
    for ax in fig.axes:
        n = 0
        for art in list(ax.lines) + list(ax.collections):
            try:
                c = art.get_color() if hasattr(art, "get_xdata") else art.get_facecolor()
                c = c[0] if isinstance(c, np.ndarray) and c.ndim == 2 and len(c) else c
                i = colors.get(_hex(c))
            except (ValueError, TypeError, IndexError):
                i = None
            if i is not None:
                art.set_gid(f"lab{i}-{n}")
                n += 1
                if not hasattr(art, "get_xdata") and hasattr(art, "set_verts"):
                    _envelope(art)


def _envelope(coll) -> None:
    """A band with thousands of vertices redrawn as its envelope: per bucket of x the lowest and the highest y
    of any vertex in it (the band never looks narrower than it is). matplotlib simplifies lines, not fills."""
    polys = []
    for path in coll.get_paths():
        v = np.asarray(path.vertices, float)
        v = v[np.isfinite(v).all(axis=1)]
        if len(v) <= 2 * BAND_BUCKETS + 4:
            polys.append(v)
            continue
        x0, x1 = v[:, 0].min(), v[:, 0].max()
        edges = np.linspace(x0, x1, BAND_BUCKETS + 1)
        b = np.clip(np.searchsorted(edges, v[:, 0], side="right") - 1, 0, BAND_BUCKETS - 1)
        used = np.unique(b)
        lo = np.full(BAND_BUCKETS, np.inf)
        hi = np.full(BAND_BUCKETS, -np.inf)
        np.minimum.at(lo, b, v[:, 1])
        np.maximum.at(hi, b, v[:, 1])
        xs = (edges[used] + edges[used + 1]) / 2
        xs[0], xs[-1] = x0, x1
        polys.append(np.concatenate([np.c_[xs, hi[used]], np.c_[xs[::-1], lo[used][::-1]]]))
    coll.set_verts(polys)


def _thin(values: np.ndarray) -> np.ndarray:
    step = max(1, math.ceil(len(values) / POINTS_MAX))
    idx = np.arange(0, len(values), step)
    if idx[-1] != len(values) - 1:
        idx = np.append(idx, len(values) - 1)
    return idx


def _round(v: float) -> float | None:
    return float(f"{v:.5g}") if math.isfinite(v) else None


def _panels(fig, colors: dict[str, int], size: tuple[float, float]) -> list[dict[str, Any]]:
    """Per axes with label lines: its box in SVG units (top-left origin), limits, scales and the series drawn."""
    W, H = size
    out = []
    for ax in fig.axes:
        series = []
        for ln in ax.lines:
            gid = ln.get_gid() or ""
            name = ln.get_label()
            if not gid.startswith("lab") or (name.startswith("_") and name != "_val"):
                continue  # seeds and markers: not what the pointer reads
            x, y = np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)
            if not len(x):
                continue
            idx = _thin(x)
            series.append({"label": int(gid[3:].split("-")[0]), "val": name == "_val",
                           "x": [_round(v) for v in x[idx]], "y": [_round(v) for v in y[idx]]})
        if not series:
            continue
        pos = ax.get_position()
        out.append({"box": [round(pos.x0 * W, 2), round((1 - pos.y1) * H, 2), round(pos.x1 * W, 2), round((1 - pos.y0) * H, 2)],
                    "xlim": [float(v) for v in ax.get_xlim()], "ylim": [float(v) for v in ax.get_ylim()],
                    "xlog": ax.get_xscale() == "log", "ylog": ax.get_yscale() == "log",
                    "xname": ax.get_xlabel(), "percent": ax.get_ylabel().endswith("accuracy"), "series": series})
    return out


def inline_svg(text: str, prefix: str) -> str:
    """matplotlib's SVG file as markup for an HTML page: no XML prolog, ids and references prefixed, the
    label tags as data-label attributes, a width that follows the page."""
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF namespaces, nothing about the runs
    # path data to 1/100 of a point: invisible, and a third of the bytes
    text = D_ATTR.sub(lambda m: f'{m.group(1)}="' + DECIMALS.sub(r"\1", m.group(2)) + '"', text)
    while True:  # matplotlib clips each scatter point in a group of its own: one group per run of points
        merged = CLIPPED.sub(r"\1", text)
        if merged == text:
            break
        text = merged
    text = ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = REF.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", text)
    text = TAG.sub(lambda m: f'<g id="{m.group(1)}lab{m.group(2)}-{m.group(3)}" class="lab" data-label="{m.group(2)}"', text)
    text = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg \1', text, count=1)
    return text.replace("<svg ", '<svg class="fig" role="img" ', 1).strip()


def _applies(kind: str, runs) -> str:
    """Why a figure kind cannot apply to these runs, from their configs alone ("" when it may): choosing the
    labels of a sweep costs a second per figure, so kinds that cannot apply are not tried."""
    from optbench.runset.identity import sweep_id
    from optbench.problems import PROBLEMS

    cfgs = [r.config for r in runs]
    losses = {c.get("loss") for c in cfgs}
    problem = any(isinstance(c.get("data"), dict) and c["data"].get("name") in PROBLEMS.names() for c in cfgs)
    swept = any(sweep_id(r) for r in runs)
    lrs: dict[str, set] = {}
    for c in cfgs:
        opt = c.get("optimizer") if isinstance(c.get("optimizer"), dict) else {}
        lrs.setdefault(str(opt.get("name")), set()).add(repr(opt.get("lr")))
    why = {"trajectory": "" if problem else "no runs on a 2-D test function",
           "fit": "" if "mse" in losses else "no regression runs",
           "accuracy": "" if losses & {"bce", "softmax_ce"} else "no classification runs",
           "boundary": "" if losses & {"bce", "softmax_ce"} else "no classification runs",
           "heatmap": "" if swept else "not a sweep",
           "lr": "" if swept or any(len(v) > 1 for v in lrs.values()) else "one learning rate per optimizer"}
    return why.get(kind, "")


def draw(runs, kinds: tuple[str, ...] = KINDS, *, warn: Warn) -> tuple[list[Label], list[Picture]]:
    """Every figure kind that applies to these runs, as SVG; a kind that does not apply is noted, not drawn."""
    from optbench.plot import METADATA, Options, make_figure
    from optbench.plots.style import style

    toggles = labels(runs)
    colors = {_hex(lab.color): i for i, lab in enumerate(toggles)}
    pics = []
    for n, kind in enumerate(kinds):
        pic = Picture(kind)
        notes: list[str] = []
        why = _applies(kind, runs)
        if why:
            pic.drawn, pic.notes = False, [why]
            pics.append(pic)
            continue
        try:
            with style():
                fig = make_figure(runs, Options(kind=kind), warn=notes.append)
                if kind in TOGGLED:
                    _tag(fig, colors)
                if kind in RASTER:
                    for ax in fig.axes:
                        for coll in ax.collections:
                            if type(coll).__name__ == "QuadContourSet" and coll.filled:
                                coll.set_rasterized(True)
                buf = io.StringIO()
                fig.savefig(buf, format="svg", metadata=METADATA["svg"], dpi=100)
                size = fig.get_size_inches() * 72.0  # SVG user units are points
                pic.panels = _panels(fig, colors, (float(size[0]), float(size[1]))) if kind in TOGGLED else []
        except OptbenchError as err:
            pic.drawn = False
            notes.append(str(err).split(": ", 1)[-1] if str(err).startswith("--") else str(err))
        else:
            pic.svg = inline_svg(buf.getvalue(), f"f{n}-")
        pic.notes = [m.removeprefix("warning: ") for m in notes]
        pics.append(pic)
    return toggles, pics
