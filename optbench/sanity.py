"""`optbench check`: CS231n's sanity checks before a long run (lecture 7, "babysitting the learning process").

1. The loss at initialization, regularization and dropout off, against the loss of an uninformed net:
   ln C for softmax over C classes, ln 2 for binary cross-entropy, the cost of zero outputs for MSE.
   It passes within a factor INIT_FACTOR either way: He-initialized nets start above ln C (their logits are
   of order 1), a net initialized orders of magnitude too large starts at hundreds.
2. Overfitting a tiny subset: the first SUBSET training examples, no regularization, no dropout, the config's
   own optimizer, rate, schedule and batch size, within the config's own number of steps (at most MAX_STEPS):
   100% training accuracy (regression: a cost at most REG_TARGET x the zero-output cost). A label that misses
   it is *slow* while its cost still falls (by STILL or more over the budget's last quarter: a low rate, the
   lesson of GD at the notebook's 0.0007) or once it has fallen by LEARNED (a plateau near the target: SGD's
   noise floor), and *stuck* otherwise (a net that cannot learn, a rate like 1e-9, a divergence): only a
   stuck label fails the check, a slow one is a warning.
3. The gradient check of checks.py (the same as `optbench gradcheck`), on the nets as configured.

The engine does the work (Trainer, checks.gradcheck_runs); this module only builds the configs and judges.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from optbench.groups import make_groups
from optbench.losses import expected_initial_cost
from optbench.problems import PROBLEMS

SUBSET = 20  # CS231n: "take the first 20 examples"
INIT_FACTOR = 4.0  # pass: expected / 4 <= initial cost <= 4 x expected
MAX_STEPS = 10_000  # the overfit run's bound when the config trains longer
REG_TARGET = 0.01  # regression overfits when its cost falls to 1% of the cost of predicting 0
STILL = 1e-3  # still learning: the cost's relative fall over the budget's last quarter (a plateau: ~1e-9)
LEARNED = 0.5  # has learned: the cost's relative fall from its initial value
CHECKS = ("init", "overfit", "gradcheck")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One check's outcome: ok, a one-line summary, and per-label details (plain data for --format json)."""

    check: str
    ok: bool
    line: str
    labels: list[dict]
    warn: bool = False  # passed, with labels that need more steps (the overfit check's slow labels)


def plain(cfg: dict) -> dict:
    """The run config with regularization and dropout off (CS231n: 'turn off regularization')."""
    reg = dict(cfg["regularization"], l2=0.0, early_stopping=None, input_noise=0.0, label_smoothing=0.0,
               mixup=0.0, polyak=None)
    return {**cfg, "regularization": reg, "model": {**cfg["model"], "drop_prob": 0.0}}


def first_seeds(cfgs: list[dict]) -> list[dict]:
    """Each label's first run, in file order."""
    out: dict[str, dict] = {}
    for c in cfgs:
        out.setdefault(c["label"], c)
    return list(out.values())


def is_problem(cfg: dict) -> bool:
    return cfg["data"]["name"] in PROBLEMS


def expected_cost(tr) -> tuple[float, str]:
    """The initial cost of an uninformed net on a Trainer's training data, and how it is named."""
    loss, C = tr.cfgs[0].loss, tr.data.C
    value = expected_initial_cost(loss, C)
    if value is not None:
        return value, "ln 2" if loss == "bce" else f"ln {C}"
    D, N = tr.data.D, tr.data.N
    Y = tr.data.train[None, D + 1 :]
    return float(tr.net.loss.value(np.zeros_like(Y), Y)[0] / N), "zero-output cost"


# ---- 1. the loss at initialization --------------------------------------------------------------------


def _off(ratio: float) -> float:
    """How far a cost / expected ratio is from 1, either way: |ln ratio| (inf when not positive and finite)."""
    return abs(math.log(ratio)) if ratio > 0 and math.isfinite(ratio) else math.inf


def init_loss(cfgs: list[dict]) -> Verdict:
    """Every run's test-mode training cost at its initial weights (metrics.csv's epoch 0, without the L2 term)."""
    from optbench.train import Trainer

    rows = {c["label"]: {"label": c["label"], "costs": [], "seeds": []} for c in cfgs}  # file order
    for group in make_groups([plain(c) for c in cfgs]):
        tr = Trainer(group)
        cost, _ = tr.evaluate(tr.theta, tr.data.train, tr.buffers)
        want, named = expected_cost(tr)
        for c, L0 in zip(group, cost.tolist()):
            row = rows[c["label"]]
            row.update(expected=want, named=named)
            row["costs"].append(L0)
            row["seeds"].append(c["seed"])
    labels = []
    for row in rows.values():
        ratio = [L0 / row["expected"] for L0 in row["costs"]]
        worst = max(ratio, key=_off)
        labels.append({**row, "worst": row["costs"][ratio.index(worst)], "ratio": worst,
                       "ok": _off(worst) <= math.log(INIT_FACTOR)})
    bad = [r for r in labels if not r["ok"]]
    n = sum(len(r["costs"]) for r in labels)
    runs = f"{n} run{'s' if n != 1 else ''}"
    expected = list(dict.fromkeys((r["named"], r["expected"]) for r in labels))
    if len(expected) == 1:
        costs = [c for r in labels for c in r["costs"]]
        span = f"{min(costs):.4g}..{max(costs):.4g} over {runs}"
        rule = f"expected {expected[0][0]} = {expected[0][1]:.4g}, tolerance x{INIT_FACTOR:g}"
    else:  # labels on different data: each against its own expected value
        ratios = [c / r["expected"] for r in labels for c in r["costs"]]
        span = f"{min(ratios):.3g}..{max(ratios):.3g} x expected over {runs}"
        names = ", ".join(dict.fromkeys(name for name, _ in expected))
        rule = _fit_text(f"expected {names} by label", 40) + f", tolerance x{INIT_FACTOR:g}"
    if bad:
        w = max(bad, key=lambda r: _off(r["ratio"]))
        line = _fit(f"{len(bad)}/{len(labels)} labels off ({{}}: {w['worst']:.4g}); {rule}", w["label"])
    else:
        line = f"{span}; {rule}"
    return Verdict("init", not bad, line, labels)


def _fit_text(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- 2. overfitting a tiny subset ---------------------------------------------------------------------


def subset(split, n: int = SUBSET):
    """The first n training examples (standardized with the whole training set's statistics), nothing held out."""
    tr = split.train
    part = dataclasses.replace(tr, X=tr.X[:n], y=tr.y[:n])
    return dataclasses.replace(split, train=part, val=None, test=None)


def _steps_per_epoch(train: dict, n: int) -> int:
    if train["sampling"] == "random":
        B = n if train["batch_size"] == "full" else train["batch_size"]
        return train["iterations_per_epoch"] or math.ceil(n / B)
    return 1 if train["batch_size"] == "full" else math.ceil(n / min(train["batch_size"], n))


def overfit_config(cfg: dict, n_train: int, n: int = SUBSET) -> tuple[dict, int]:
    """The tiny-subset run of a config (regularization off, batch size capped at n) and its step budget:
    the config's own number of steps, at most MAX_STEPS.

    Schedules are functions of the epoch: with one, an epoch of the tiny run keeps the config's number of
    steps (batches drawn at random from the n examples), so that the rate decays at the config's pace per step.
    """
    tr = cfg["train"]
    per_epoch = _steps_per_epoch(tr, n_train)
    budget = min(tr["epochs"] * per_epoch, MAX_STEPS)
    B = tr["batch_size"]
    scheduled = cfg["schedule"]["name"] != "constant" or cfg["momentum_schedule"]["name"] != "constant"
    if scheduled and per_epoch > 1:
        train = {**tr, "batch_size": n if B == "full" else min(B, n), "sampling": "random",
                 "iterations_per_epoch": per_epoch}
    else:
        train = {**tr, "batch_size": "full" if B == "full" or B >= n else B}
    epochs = math.ceil(budget / _steps_per_epoch(train, n))
    return {**plain(cfg), "train": {**train, "epochs": epochs}}, budget


class _Reached(Exception):
    """Raised from on_epoch once every replica has overfit or ended: the rest of the budget is not needed."""


def overfit(cfgs: list[dict], n: int = SUBSET) -> Verdict:
    """Train each label's first seed on the first n training examples; pass when all reach the target in budget."""
    trained = [c for c in first_seeds(cfgs) if c["train"]["epochs"] > 0]  # train.epochs 0 evaluates, trains nothing
    if not trained:
        return Verdict("overfit", True, "no label trains (train.epochs: 0): nothing to overfit", [])
    runs, budgets = _overfit_runs(trained, n)
    # the tiny runs' own groups: a schedule may have changed a run's sampling
    labels = [row for group in make_groups(runs) for row in _overfit_group(group, budgets, n)]
    order = {c["label"]: i for i, c in enumerate(trained)}
    labels.sort(key=lambda r: order[r["label"]])
    stuck = [r for r in labels if not r["ok"] and not r["slow"]]
    short = [r for r in labels if r["slow"]]
    return Verdict("overfit", not stuck, _overfit_line(labels, stuck, short), labels, warn=bool(short))


def _overfit_runs(trained: list[dict], n: int) -> tuple[list[dict], dict[str, int]]:
    """The tiny-subset run of each label (overfit_config) and its step budget by label."""
    from optbench.config import load_data

    runs, budgets = [], {}
    for c in trained:
        N = len(load_data(c["data"]).train.y)
        run, budgets[c["label"]] = overfit_config(c, N, min(n, N))
        runs.append(run)
    return runs, budgets


def _overfit_group(group: list[dict], budgets: dict[str, int], n: int) -> list[dict]:
    """Train one group of tiny runs until every replica has overfit or ended; a row per run."""
    from optbench.config import load_data
    from optbench.train import Trainer

    split = load_data(group[0]["data"])
    k = min(n, len(split.train.y))
    tr = Trainer(group, split=subset(split, k))
    classify = tr.net.loss.correct is not None
    target = 1.0 if classify else REG_TARGET * expected_cost(tr)[0]
    watch = _Watch(len(group), 0.75 * np.array([budgets[c["label"]] for c in group]), classify, target)
    try:
        tr.run(watch.on_epoch)
    except _Reached:
        pass
    return [watch.row(r, c, k, budgets[c["label"]]) for r, c in enumerate(group)]


class _Watch:
    """Per replica, from the epoch records: the step it reached the target (-1: not yet), its best value, and its
    cost at the start, lowest up to `quarter` (3/4 of its budget, in steps) and lowest of all."""

    def __init__(self, R: int, quarter: np.ndarray, classify: bool, target: float):
        self.R, self.quarter, self.classify, self.target = R, quarter, classify, target
        self.reached = np.full(R, -1)
        self.best = np.full(R, np.nan)
        self.cost = np.full((3, R), np.inf)  # the initial cost, the lowest up to 3/4 of the budget, the lowest of all
        self.ended = np.zeros(R, dtype=bool)

    def on_epoch(self, rec) -> None:
        """Trainer.run's on_epoch; raises _Reached once every replica has reached the target or ended."""
        reached, best, cost = self.reached, self.best, self.cost
        c = np.where(rec.alive, rec.metrics["train_cost"], np.inf)
        c[~np.isfinite(c)] = np.inf
        step = np.broadcast_to(rec.metrics["step"], (self.R,))
        np.minimum(cost[2], c, out=cost[2])
        np.minimum(cost[1], c, out=cost[1], where=step <= self.quarter)
        if rec.epoch == 0:
            cost[0] = c
            return
        value = rec.metrics["train_acc" if self.classify else "train_cost"]
        hit = (value >= self.target) if self.classify else (value <= self.target)
        for r in np.flatnonzero(rec.alive):
            best[r] = value[r] if np.isnan(best[r]) else (max if self.classify else min)(best[r], value[r])
            if hit[r] and reached[r] < 0:
                reached[r] = int(step[r])
        for r in rec.ended:
            self.ended[r] = True
        if ((reached >= 0) | self.ended).all():
            raise _Reached

    def row(self, r: int, cfg: dict, k: int, budget: int) -> dict:
        """Replica r's result: reached (ok), or short of the target while still learning (slow), or stuck."""
        cost, reached = self.cost, self.reached
        fall = (1 - cost[2, r] / cost[:2, r]) if np.isfinite(cost[:, r]).all() and cost[2, r] > 0 else np.zeros(2)
        learning = fall[1] >= STILL or fall[0] >= LEARNED
        return {"label": cfg["label"], "seed": cfg["seed"], "examples": k, "ok": bool(reached[r] >= 0),
                "slow": bool(reached[r] < 0 and learning), "fall": float(fall[0]),
                "last_quarter_fall": float(fall[1]),
                "step": int(reached[r]) if reached[r] >= 0 else None, "budget": budget,
                "metric": "train_acc" if self.classify else "train_cost", "best": float(self.best[r]),
                "target": float(self.target)}


def _overfit_line(labels: list[dict], stuck: list[dict], short: list[dict]) -> str:
    """The overfit check's one-line summary: the first stuck label, else the first slow one, else the slowest."""
    k = labels[0]["examples"]
    goal = "100% accuracy" if labels[0]["metric"] == "train_acc" else f"cost <= {labels[0]['target']:.3g}"

    def shown(w):
        return f"{100 * w['best']:.0f}%" if w["metric"] == "train_acc" else f"{w['best']:.3g}"

    if stuck:
        w = stuck[0]
        return _fit(f"{len(stuck)}/{len(labels)} stuck below {goal} on {k} examples; {{}}: best {shown(w)}, "
                    "cost flat", w["label"])
    if short:
        w = short[0]
        return _fit(f"{len(short)}/{len(labels)} slow, short of {goal} on {k} examples in {w['budget']} steps; "
                    f"{{}}: best {shown(w)}", w["label"])
    slowest = max(labels, key=lambda r: r["step"] / r["budget"])
    return _fit(f"{len(labels)}/{len(labels)} labels fit {k} examples ({goal}); slowest {{}}: step "
                f"{slowest['step']}/{slowest['budget']}", slowest["label"])


# ---- 3. the gradient check ----------------------------------------------------------------------------


def gradient(cfgs: list[dict], *, examples: int = 16, samples: int = 20) -> Verdict:
    """checks.gradcheck_runs on the configured nets, judged by checks.verdict."""
    from optbench.checks import by_path, gradcheck_runs, verdict

    rows = gradcheck_runs(cfgs, examples=examples, samples=samples)
    v = verdict(rows)
    nets = f"{v['nets']} net" + ("s" if v["nets"] != 1 else "")
    if v["ok"]:
        line = f"worst rel err {v['worst']:.2e} <= {v['rtol']:g} over {v['checked']} entries of {nets}"
    else:
        label, path, param = v["where"]
        line = _fit(f"{v['failed']}/{v['checked']} entries over {v['rtol']:g}, worst {v['worst']:.2e} at {{}} "
                    f"{path} {param}", label)
    labels = [{k: r[k] for k in ("label", "path", "checked", "kinks", "failed", "worst")} for r in by_path(rows)]
    return Verdict("gradcheck", v["ok"], line, labels)


# ---- all three ----------------------------------------------------------------------------------------


def sanity_checks(cfgs: list[dict], *, only=CHECKS) -> tuple[list[Verdict], list[str]]:
    """The verdicts of the checks in `only` on the labels that have a net, and the labels skipped (2-D problems)."""
    nets = [c for c in cfgs if not is_problem(c)]
    skipped = [c["label"] for c in first_seeds(cfgs) if is_problem(c)]
    if not nets:
        return [], skipped
    run = {"init": init_loss, "overfit": overfit, "gradcheck": gradient}
    return [run[name](nets) for name in CHECKS if name in only], skipped


def _short(label: str, width: int = 24) -> str:
    """A label without its experiment name, cut from the left to `width` characters (lines within 100 columns)."""
    label = label.split("/", 1)[-1]
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def _fit(template: str, label: str, width: int = 100 - 17) -> str:
    """template.format(label), the label shortened so that the verdict line (after 'FAIL  init loss  ') fits."""
    return template.format(_short(label, max(width - len(template) + 2, 8)))


def lines(verdicts: list[Verdict], skipped: list[str]) -> list[str]:
    """What `optbench check` prints: one line per check, then the overall result."""
    out = []
    if skipped and not verdicts:
        return [f"a 2-D problem ({len(skipped)} label{'s' if len(skipped) != 1 else ''}): no net and no data, "
                "the sanity checks do not apply"]
    if skipped:
        out.append(f"skipped {len(skipped)} 2-D problem label(s): no net, the checks do not apply")
    names = {"init": "init loss", "overfit": "overfit", "gradcheck": "gradcheck"}
    for v in verdicts:
        out.append(f"{'FAIL' if not v.ok else 'SLOW' if v.warn else 'PASS'}  {names[v.check]:<9}  {v.line}")
    failed = [names[v.check] for v in verdicts if not v.ok]
    warned = [names[v.check] for v in verdicts if v.ok and v.warn]
    summary = f"{len(verdicts) - len(failed)} of {len(verdicts)} checks passed"
    out.append(summary + (f" ({', '.join(warned)} slow: more steps or a higher rate)" if warned else "")
               + (f"; failed: {', '.join(failed)}" if failed else ""))
    return out


def as_json(verdicts: list[Verdict], skipped: list[str]) -> dict:
    return {"ok": all(v.ok for v in verdicts), "skipped": skipped, "applies": bool(verdicts),
            "checks": [dataclasses.asdict(v) for v in verdicts]}
