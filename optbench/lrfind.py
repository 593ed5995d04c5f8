"""`optbench lr-find`: the learning-rate range test (Smith 2017, "Cyclical learning rates", as fastai's lr_find).

One short run per label (its first seed), every label a replica of the engine: the rate grows exponentially,
lr_i = start * (end / start) ** (i / (iters - 1)) at iteration i, through the engine's own exponential
schedule with one mini-batch per "epoch" (train.sampling: random, iterations_per_epoch: 1), so each logged
epoch is one iteration and its train_cost is the loss of the batch the step was taken on. The loss is
smoothed by an exponential moving average with bias correction (fastai: beta 0.98),
    s_i = (beta * a_{i-1} + (1 - beta) * loss_i) / (1 - beta ** (i + 1)),
and a label's test stops at the first iteration where s_i > STOP x min_{j<i} s_j (or the loss is not finite).

The suggestion is the rate of steepest descent of the smoothed loss, argmin d s / d ln lr before its minimum
(fastai's `steep`); the rate at the minimum over 10 (fastai's `minimum`) is reported beside it. The suggested
search range is log-uniform from steep / 10 to the rate at the minimum (at least steep x sqrt 10): from well
inside the descent to where the loss stops falling (Smith's bounds for a cyclical range).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from optbench.errors import OptbenchError
from optbench.groups import make_groups

START, END, ITERS, BETA, STOP = 1e-7, 10.0, 100, 0.98, 4.0
SKIP_START, SKIP_END = 10, 5  # fastai's plot: points left out of the suggestion at either end


@dataclass(frozen=True)
class Curve:
    """One label's range test: rates, raw and smoothed losses per iteration (up to the stop), and the suggestion."""

    label: str
    variant: str | None
    seed: int
    lr: list[float]
    loss: list[float]
    smooth: list[float]
    stopped: int | None  # the iteration at which the smoothed loss exceeded STOP x its best (None: ran to the end)
    steep: float | None  # the suggestion: steepest descent of the smoothed loss
    minimum: float | None  # the rate at the smoothed loss's minimum
    best: float | None  # the smoothed loss there
    low: float | None  # suggested log-uniform range [low, high]
    high: float | None

    @property
    def min10(self) -> float | None:
        return None if self.minimum is None else self.minimum / 10


def check_range(start: float, end: float, iters: int) -> None:
    """Bad options: one line naming the option, its value and what is accepted."""
    for name, v in (("--start", start), ("--end", end)):
        if not (math.isfinite(v) and v > 0):
            raise OptbenchError(f"{name}: {v!r} is invalid (accepted: a learning rate > 0)")
    if end <= start:
        raise OptbenchError(f"--end: {end!r} is invalid: it must be larger than --start {start!r}")
    if iters < 5:
        raise OptbenchError(f"--iters: {iters} is invalid (accepted: at least 5 iterations)")


def range_config(cfg: dict, *, start: float, end: float, iters: int, n_train: int) -> dict:
    """The range-test run of a resolved run config: rate start * gamma ** i, one mini-batch per epoch, no early stop."""
    tr = cfg["train"]
    B = tr["batch_size"]
    if B == "full" or B >= n_train:  # one full-batch step per epoch already
        train = {**tr, "epochs": iters, "batch_size": "full", "sampling": "epoch", "iterations_per_epoch": None}
    else:
        train = {**tr, "epochs": iters, "sampling": "random", "iterations_per_epoch": 1}
    train["diverge_factor"] = None  # this module stops a label itself (STOP x its best smoothed loss)
    gamma = (end / start) ** (1.0 / (iters - 1))
    return {**cfg, "optimizer": {**cfg["optimizer"], "lr": start}, "schedule": {"name": "exponential", "gamma": gamma},
            "momentum_schedule": {"name": "constant"}, "train": train,
            "regularization": {**cfg["regularization"], "early_stopping": None}}


def smoothed(loss: np.ndarray, beta: float = BETA) -> np.ndarray:
    """Bias-corrected EMA: s_i = a_i / (1 - beta ** (i + 1)), a_i = beta a_{i-1} + (1 - beta) loss_i, a_{-1} = 0."""
    out = np.empty(len(loss))
    a = 0.0
    for i, x in enumerate(loss):
        a = beta * a + (1 - beta) * x
        out[i] = a / (1 - beta ** (i + 1))
    return out


def stop_at(smooth: np.ndarray, factor: float = STOP) -> int | None:
    """The first iteration whose smoothed loss is not finite or exceeds factor x the best before it."""
    best = math.inf
    for i, s in enumerate(smooth):
        if not math.isfinite(s) or (i > 0 and s > factor * best):
            return i
        best = min(best, s)
    return None


def suggest(lr: np.ndarray, smooth: np.ndarray, skip_start: int = SKIP_START,
            skip_end: int = SKIP_END) -> tuple[int | None, int | None]:
    """Indices (steepest, minimum): where d s / d ln lr, measured over a decade of rates centred there, is most
    negative up to the smoothed loss's minimum, and that minimum; both in [skip_start, len - skip_end) as in
    fastai (the first points are a few batches' noise, the last the blow-up).

    None, None when the smoothed loss never fell below its value at the window's start (nothing learned).
    """
    a, b = skip_start, len(smooth) - skip_end
    if b - a < 3:
        a, b = 0, len(smooth)
    if b - a < 3:
        return None, None
    x, s = np.log(lr[a:b]), smooth[a:b]
    k = int(np.argmin(s))
    if k == 0 or not s[k] < s[0]:
        return None, None
    h = max(1, round(0.5 * math.log(10) / np.mean(np.diff(x))))  # half a decade of rates each side
    i = np.arange(k + 1)
    lo, hi = np.maximum(i - h, 0), np.minimum(i + h, k)
    slope = (s[hi] - s[lo]) / np.maximum(x[hi] - x[lo], 1e-300)  # over a decade: a few batches' noise averages out
    return a + int(np.argmin(slope)), a + k


class _AllStopped(Exception):
    """Raised from on_epoch once every label's test has stopped: the rest of the range is not needed."""


def lr_find(cfgs: list[dict], *, start: float = START, end: float = END, iters: int = ITERS, beta: float = BETA,
            stop: float = STOP) -> list[Curve]:
    """The range test of each label's first seed; labels that can share a Trainer run as its replicas."""
    from optbench.config import load_data
    from optbench.sanity import first_seeds, is_problem
    from optbench.trainers import make_trainer

    check_range(start, end, iters)
    firsts = first_seeds(cfgs)
    for c in firsts:
        if is_problem(c):
            raise OptbenchError(f"data.name: {c['data']['name']} is a 2-D problem: lr-find needs a net on data "
                                "(its learning rates are tried by a sweep)")
        if c["optimizer"]["name"] == "lbfgs":
            raise OptbenchError(f"optimizer.name: lbfgs in {c['label']} picks its own step by line search "
                                "(lr-find is for first-order optimizers)")
    runs = [range_config(c, start=start, end=end, iters=iters, n_train=len(load_data(c["data"]).train.y))
            for c in firsts]
    back = {id(r): c for r, c in zip(runs, firsts)}
    curves: dict[str, Curve] = {}
    for group in make_groups(runs):
        R = len(group)
        lrs, losses = np.full((R, iters), np.nan), np.full((R, iters), np.nan)
        avg, best, done = np.zeros(R), np.full(R, np.inf), np.zeros(R, dtype=bool)  # the EMA as it runs, per label

        def on_epoch(rec, lrs=lrs, losses=losses, R=R, avg=avg, best=best, done=done):
            if rec.epoch == 0:
                return
            i = rec.epoch - 1
            lrs[rec.alive, i] = np.broadcast_to(rec.metrics["lr"], (R,))[rec.alive]  # a frozen replica's lr reads 0
            losses[rec.alive, i] = np.asarray(rec.metrics["train_cost"])[rec.alive]
            with np.errstate(invalid="ignore", over="ignore"):
                avg[...] = beta * avg + (1 - beta) * np.where(rec.alive, losses[:, i], np.nan)
                s = avg / (1 - beta ** (i + 1))
                done[...] |= ~np.isfinite(s) | ((i > 0) & (s > stop * best))
                np.fmin(best, s, out=best)
            if done.all():
                raise _AllStopped

        try:
            make_trainer(group).run(on_epoch)
        except _AllStopped:
            pass
        for r, run in enumerate(group):
            cfg = back[id(run)]
            curves[cfg["label"]] = _curve(cfg, lrs[r], losses[r], beta, stop)
    return [curves[c["label"]] for c in firsts]


def _curve(cfg: dict, lr: np.ndarray, loss: np.ndarray, beta: float, stop: float) -> Curve:
    """One label's curve, cut at its stop (the stopping iteration itself kept, as fastai records it)."""
    n = int(np.sum(np.isfinite(lr)))
    lr, loss = lr[:n], loss[:n]
    s = smoothed(np.where(np.isfinite(loss), loss, np.inf), beta)
    stopped = stop_at(s, stop)
    end = n if stopped is None else stopped + 1
    keep = slice(0, end)
    finite = np.isfinite(s[keep])
    lr_f, s_f = lr[keep][finite], s[keep][finite]
    i, k = suggest(lr_f, s_f)
    steep, minimum, best = (None, None, None) if i is None else (float(lr_f[i]), float(lr_f[k]), float(s_f[k]))
    low, high = (None, None) if i is None else (steep / 10, min(max(minimum, steep * 10 ** 0.5), float(lr_f[-1])))
    variant = cfg["label"].split("/", 1)[1] if "/" in cfg["label"] else None
    as_list = lambda a: [float(x) if math.isfinite(x) else None for x in a]  # noqa: E731 - JSON has no inf/nan
    return Curve(cfg["label"], variant, cfg["seed"], as_list(lr[keep]), as_list(loss[keep]), as_list(s[keep]), stopped,
                 steep, minimum, best, low, high)


# ---- what the command prints --------------------------------------------------------------------------


def yaml_number(v: float) -> str:
    """Two significant digits in a form YAML 1.1 (PyYAML) reads as a float: a '.' always, a signed exponent."""
    mant, _, exp = f"{v:.2g}".partition("e")  # '0.0031', '3.1e-05', '2', '1.2e+02'
    if "." not in mant:
        mant += ".0"
    return mant + (f"e{int(exp):+d}" if exp else "")


def sweep_block(curves: list[Curve], budget: int = 8) -> str:
    """A `sweep:` block searching each label's suggested range (moons-sweep.yaml's syntax), ready to paste."""
    lines = ["sweep:", "  method: random", f"  budget: {budget}", "  seed: 0"]

    def param(c: Curve, indent: str) -> str:
        return f"{indent}optimizer.lr: {{log_uniform: [{yaml_number(c.low)}, {yaml_number(c.high)}]}}"

    found = [c for c in curves if c.low is not None]
    if len(curves) == 1 and curves[0].variant is None and found:
        lines += ["  params:", param(found[0], "    ")]
    else:
        lines.append("  variants:")
        for c in found:
            lines += [f"    {c.variant}:", "      params:", param(c, "        ")]
    return "\n".join(lines)


def lines(curves: list[Curve], *, source: str, start: float, end: float, iters: int) -> list[str]:
    """The table (one row per label), how the suggestion is made, and the sweep block to paste."""
    names = {c.label.split("/")[0] for c in curves}
    prefix = f"{names.pop()}/" if len(names) == 1 and all("/" in c.label for c in curves) else ""
    name = source.rsplit("/", 1)[-1]
    name = name if len(name) <= 32 else "…" + name[-31:]
    out = [f"lr range test of {name}: {len(curves)} label{'s' if len(curves) != 1 else ''}, lr {start:g}..{end:g} "
           f"in {iters} iterations, seed {curves[0].seed}"]
    head = f"{'label':<28} {'stopped at':>10} {'min loss':>9} {'at lr':>8} {'steepest':>9} {'min/10':>8}  sweep range"
    out += [head, "-" * len(head)]
    for c in curves:
        name = c.label[len(prefix) :]
        name = name if len(name) <= 28 else "…" + name[-27:]
        stopped = "-" if c.stopped is None else f"it {c.stopped}"
        if c.steep is None:
            out.append(f"{name:<28} {stopped:>10}  no descent: the loss never fell in this range")
            continue
        out.append(f"{name:<28} {stopped:>10} {c.best:>9.4g} {c.minimum:>8.2g} {c.steep:>9.2g} {c.min10:>8.2g}  "
                   f"{c.low:.2g}..{c.high:.2g}")
    out.append(f"steepest (the suggested lr): steepest descent of the loss smoothed by an EMA ({BETA:g}, bias-corrected)")
    out.append("min loss at lr: where the smoothed loss is lowest; sweep range: steepest/10 .. that rate")
    out.append(f"stopped at: the first iteration with smoothed loss > {STOP:g} x its best ('-': ran to the end)")
    if any(c.low is not None for c in curves):
        out += ["paste into the config (or merge into its sweep: block):", sweep_block(curves)]
    return out


def as_json(curves: list[Curve], **options) -> dict:
    return {"options": options, "suggestion": "steepest", "range": "steep/10..min",
            "labels": [{**asdict(c), "min10": c.min10} for c in curves], "sweep": sweep_block(curves)}
