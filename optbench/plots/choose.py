"""Which labels a figure draws and how they look: a sweep's default and tuned trials, `--top K`, `--labels PATTERN`,
a score per label (what "best" means), and the legend cap (the best few named, the rest grey "others")."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, replace

import numpy as np
from matplotlib.colors import to_rgb

from optbench.errors import OptbenchError
from optbench.plots import data

LEGEND_MAX = 8  # more labels than this: the best LEGEND_MAX - 1 in colour, the others thin and grey
OTHERS_COLOR = "0.62"
PANELS_MAX = 12  # picture figures (boundary, activations, fit): at most this many labels, the best ones


@dataclass(frozen=True)
class View:
    """The groups to draw (best first when ranked), which of them are the grey "others", and each label's score.

    score: lower is better (a metric where higher is better is negated); inf when unknown or diverged.
    role: a sweep label's role, "default" or "tuned" ("best" without a budget); "" otherwise.
    """

    groups: list[data.Group]
    others: frozenset[str]
    score: dict[str, float]
    role: dict[str, str]
    metric: str  # what the score measures, for legends and warnings
    pool: list[data.Group]  # every label that --labels kept, before the sweep/--top choice (heatmap, lr)

    def named(self) -> list[data.Group]:
        return [g for g in self.groups if g.label not in self.others]


def sweep_tag(group: data.Group) -> dict | None:
    tag = group.runs[0].summary.get("sweep")
    return tag if isinstance(tag, dict) and tag.get("id") else None


def _facts(runs) -> list:
    from optbench.compare.read import run_facts
    from optbench.runs.read import CorruptRun

    out = []
    for r in runs:
        try:
            out.append(run_facts(r, ()))
        except (CorruptRun, KeyError, TypeError, ValueError, IndexError):
            pass  # select_runs already warned about unreadable runs; a failed run has no score
    return out


def sweep_scores(groups: list[data.Group]) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """Per sweep label: its trial's selection score (sweep.results, lower is better), its role, the sweep's metric."""
    from optbench.sweep.results import summarize
    from optbench.sweep.spec import METRICS

    score, role, metric = {}, {}, {}
    by_sweep: dict[str, list[data.Group]] = {}
    for g in groups:
        if (tag := sweep_tag(g)) is not None:
            by_sweep.setdefault(tag["id"], []).append(g)
    for members in by_sweep.values():
        for summary in summarize(_facts([r for g in members for r in g.runs])):
            for pick in summary.picks:
                for lab in {f.label for f in pick.result.runs}:
                    role[lab] = pick.role
        for g in members:
            for summary in summarize(_facts(g.runs)):
                sign = METRICS.get(summary.metric, 1)
                for pick in summary.picks:
                    res = pick.result
                    ok = res.eligible and math.isfinite(res.mean)
                    score[g.label] = sign * res.mean if ok else math.inf
                    metric[g.label] = summary.metric
    return score, role, metric


def final_score(group: data.Group, metric: str) -> float:
    """Mean over seeds of the metric's last value, negated when higher is better; inf when a seed diverged."""
    if any(r.status == "diverged" for r in group.runs):
        return math.inf
    values = [v for r in group.runs if (v := data.final_value(r, metric)) is not None]
    if not values:
        return math.inf
    return float(-np.mean(values) if metric.endswith("_acc") else np.mean(values))


def _tint(color: str, amount: float = 0.5) -> str:
    """The colour mixed with white: a variant's default beside its tuned trial."""
    r, g, b = (c + (1 - c) * amount for c in to_rgb(color))
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _match(groups: list[data.Group], pattern: str) -> list[data.Group]:
    pats = [p for p in pattern.split(",") if p]
    keep = [g for g in groups if any(fnmatch.fnmatchcase(g.label, p) or fnmatch.fnmatchcase(g.name, p) for p in pats)]
    if not keep:
        shown = ", ".join(g.name for g in groups[:8]) + (", ..." if len(groups) > 8 else "")
        raise OptbenchError(f"--labels: {pattern!r} matches no label (labels: {shown})")
    return keep


def choose(groups: list[data.Group], *, metric: str, top: int | None = None, labels: str = "") -> View:
    """The labels to draw and their scores.

    A sweep draws, per variant, its default and its selected trial; `--top K` the K best trials per variant
    (and its default); `--labels` keeps the matching labels (a glob on the label or its short name; commas
    separate patterns). Other runs: every label, or the K best with --top. Best: the sweep's selection metric
    for sweep trials, else the final value of `metric`.
    """
    s_score, s_role, s_metric = sweep_scores(groups)
    score = {g.label: s_score.get(g.label, final_score(g, metric)) for g in groups}
    if top is not None and top < 1:
        raise OptbenchError(f"--top: {top} is invalid (accepted: a whole number >= 1)")
    if labels:
        groups = _match(groups, labels)
    pool = list(groups)
    swept = [g for g in groups if sweep_tag(g) is not None]
    if swept and (top is not None or not labels):
        keep = {g.label for g in groups if sweep_tag(g) is None}
        by_variant: dict[str, list[data.Group]] = {}
        for g in swept:
            by_variant.setdefault(str(sweep_tag(g).get("variant") or ""), []).append(g)
        for members in by_variant.values():
            keep |= {g.label for g in members if s_role.get(g.label) == "default"}
            trials = [g for g in members if sweep_tag(g).get("trial") != "default"]
            if top is None:
                keep |= {g.label for g in trials if s_role.get(g.label) in ("tuned", "best")}
            else:
                keep |= {g.label for g in sorted(trials, key=lambda g: (score[g.label], g.label))[:top]}
        groups = [g for g in groups if g.label in keep]
    elif top is not None:
        groups = sorted(groups, key=lambda g: (score[g.label], g.label))[:top]
        groups = sorted(groups, key=lambda g: g.label)
    metric_name = next(iter(s_metric.values()), None) if s_metric else None
    view = View(list(groups), frozenset(), score, s_role, metric_name or f"final {metric}", pool)
    return _restyle(view)


def _restyle(view: View) -> View:
    """Sweep labels: one colour per variant, its default a light tint, names `variant default|tuned (params)`.
    More than LEGEND_MAX labels: the best LEGEND_MAX - 1 keep colours (by rank), the rest become grey others."""
    groups = view.groups
    swept = [g for g in groups if sweep_tag(g) is not None]
    trials = [str(sweep_tag(g).get("variant")) for g in swept if sweep_tag(g).get("trial") != "default"]
    by_variant = swept and len(trials) == len(set(trials))  # one searched trial per variant: colour by variant
    if by_variant:
        variants = sorted({str(sweep_tag(g).get("variant") or "") for g in swept})
        colors = data.color_map(variants)
        out = []
        for g in groups:
            tag = sweep_tag(g)
            if tag is None:
                out.append(g)
                continue
            variant, trial = str(tag.get("variant") or ""), str(tag.get("trial") or "")
            name = _sweep_name(g, view.role)
            color = colors[variant]
            out.append(replace(g, name=name, color=_tint(color) if trial == "default" else color))
        groups = out
    elif swept:
        groups = [replace(g, name=_sweep_name(g, view.role)) if sweep_tag(g) else g for g in groups]
    if len(groups) <= LEGEND_MAX:
        return replace(view, groups=groups)
    ranked = sorted(groups, key=lambda g: (view.score.get(g.label, math.inf), g.label))
    best = ranked[: LEGEND_MAX - 1]
    if not by_variant:  # sorted labels had colours 0..N-1 cycling; the named few get the first distinct ones
        best = [replace(g, color=data.PALETTE[i % len(data.PALETTE)]) for i, g in enumerate(best)]
    rest = [replace(g, color=OTHERS_COLOR) for g in ranked[LEGEND_MAX - 1:]]
    return replace(view, groups=best + rest, others=frozenset(g.label for g in rest))


def _sweep_name(g: data.Group, roles: dict[str, str]) -> str:
    """`adam tuned t003 (lr 0.0123)`, `adam default`, `adam t005 (lr 0.31)`."""
    tag = sweep_tag(g)
    variant, trial, role = str(tag.get("variant") or ""), str(tag.get("trial") or ""), roles.get(g.label, "")
    what = "default" if trial == "default" else (f"{role} {trial}" if role in ("tuned", "best") else trial)
    params = ", ".join(f"{k.split('.')[-1]} {_short(v)}" for k, v in (tag.get("params") or {}).items())
    if trial == "default" and not params:
        params = f"lr {data.group_lr(g)}"  # what a search over lr moves away from
    return (f"{variant} {what}" + (f" ({params})" if params else "")).strip()


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def best_panels(view: View, warn, what: str, limit: int = PANELS_MAX) -> list[data.Group]:
    """At most `limit` groups for picture figures (one panel or row each), the best first, none grey;
    a warning when some are left out."""
    if len(view.groups) <= limit and not view.others:
        return view.groups
    ranked = sorted(view.groups, key=lambda g: (view.score.get(g.label, math.inf), g.label))
    if len(ranked) > limit:
        warn(f"warning: {what}: {len(ranked)} labels; drawing the best {limit} by {view.metric} "
             "(choose others with --top K or --labels PATTERN)")
    shown = ranked[:limit]
    return [replace(g, color=data.PALETTE[i % len(data.PALETTE)]) if g.label in view.others else g
            for i, g in enumerate(shown)]
