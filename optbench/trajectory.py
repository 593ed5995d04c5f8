"""Training on the 2-D test problems: theta (R, 2) is the point; one optimizer step per epoch, the path kept."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from optbench.optim import OPTIMIZERS, is_closure_optimizer
from optbench.problems import PROBLEMS
from optbench.clip import clipper
from optbench.records import EpochRecord, Never, RunResult, Stopped, fingerprint, norms, update_timing
from optbench.rules import make_rules

ESCAPE = 1e8  # |theta| beyond this counts as diverged (a saddle's cost is unbounded below, so no cost rule)


class ProblemTrainer:
    """The Trainer interface (`run(on_epoch)`, `interrupted`) for runs whose data is a 2-D problem."""

    interrupted = False

    def __init__(self, cfgs: list[dict], *, record_activations: bool = False):
        self.cfgs = cfgs
        c0 = cfgs[0]
        self.R = R = len(cfgs)
        self.dtype = dt = np.dtype(c0["train"]["dtype"])
        opts = {k: v for k, v in c0["data"].items() if k != "name"}
        self.problem = PROBLEMS.build(c0["data"]["name"], opts)
        self.epochs = c0["train"]["epochs"]
        self.theta = np.tile(np.asarray(self.problem.start, dtype=dt), (R, 1))
        self.lbfgs = is_closure_optimizer(c0["optimizer"]["name"])
        if self.lbfgs:  # its own group (groups.group_key): one closure optimizer per replica
            self.opts = [OPTIMIZERS.build(c["optimizer"]["name"], {k: v for k, v in c["optimizer"].items() if k != "name"})
                         for c in cfgs]
            self.rules = []
        else:  # one rule per slice of replicas sharing an optimizer and schedules, as in the MLP trainer
            self.rules = make_rules(cfgs, self.epochs, dt)

    def _cost(self, theta):
        return self.problem.f(theta).astype(np.float64)

    def run(self, on_epoch: Callable[[EpochRecord], None] | None = None, *, stop=None) -> list[RunResult]:
        """Train; once `stop` (a threading.Event) is set, the live replicas end interrupted (as Trainer.run)."""
        stopped = (stop or Never).is_set
        R, dt, theta, f = self.R, self.dtype, self.theta, self.problem
        path = [theta.copy()]
        lbfgs = self.lbfgs
        lstates = [o.init(theta[r]) for r, o in enumerate(self.opts)] if lbfgs else None
        grad = np.empty_like(theta)
        for rule in self.rules:
            rule.start(theta[rule.sl])
            if "regrad" in rule.opt.wants:  # SAM's second gradient, at theta's current contents
                rule.kw["regrad"] = lambda sl=rule.sl: grad.__setitem__(sl, f.grad(theta)[sl])
        active = np.ones(R, dtype=bool)
        status, reason, end = ["completed"] * R, [""] * R, np.full(R, self.epochs)
        lr_e = np.empty((R, 1), dtype=dt)
        clip = clipper(self.cfgs, theta.shape[1], dt)  # None when no replica clips
        gpre = None  # the gradient's norm before clipping
        nan = np.full(R, np.nan)
        t0 = time.perf_counter()
        lsec = np.zeros(R)  # L-BFGS: each replica's own step time
        e = done = 0

        def row(e, lr, gnorm, ratio):
            c = self._cost(theta)
            return c, dict(epoch=np.full(R, e), step=np.full(R, e), lr=lr, train_cost=c, val_cost=nan, train_acc=nan,
                           val_acc=nan, grad_norm=gnorm, update_ratio=ratio, seconds=np.full(R, time.perf_counter() - t0))

        with np.errstate(all="ignore"):
            lr0 = np.array([c["optimizer"]["lr"] for c in self.cfgs], dtype=np.float64)
            _, rec = row(0, lr0, nan, nan)
            if on_epoch is not None:
                on_epoch(EpochRecord(0, rec, active.copy(), {}))
            try:
                for e in range(1, self.epochs + 1):
                    if stopped():
                        raise Stopped
                    lr_e[...] = lr0.reshape(R, 1)
                    for rule in self.rules:
                        rule.set_epoch(e, lr_e)
                    lr_e *= active.reshape(R, 1)
                    before = theta.copy()
                    if lbfgs:
                        for r in np.flatnonzero(active):
                            closure = lambda p: (float(f.f(p)), f.grad(p))  # noqa: E731
                            t_u = time.perf_counter()
                            _, lstates[r] = self.opts[r].step(theta[r], closure, lstates[r])
                            lsec[r] += time.perf_counter() - t_u
                        grad[...] = f.grad(theta)
                    else:
                        grad[...] = f.grad(theta)
                        if clip is not None:
                            gpre = clip(grad)
                        for rule in self.rules:
                            t_u = time.perf_counter()
                            direction, rule.state = rule.update(grad[rule.sl], rule.state, theta[rule.sl], **rule.kw)
                            theta[rule.sl] -= lr_e[rule.sl] * direction
                            rule.seconds += time.perf_counter() - t_u
                    path.append(theta.copy())
                    c, rec = row(e, lr_e.reshape(-1).astype(np.float64), norms(grad) if gpre is None else gpre, norms(theta - before) / norms(before))
                    alive, ended = active.copy(), {}
                    for r in np.flatnonzero(active):
                        if not np.all(np.isfinite(theta[r])) or np.abs(theta[r]).max() > ESCAPE or not np.isfinite(c[r]):
                            ended[r] = ("diverged", f"the point left the plane's finite region at epoch {e}")
                            status[r], reason[r], end[r] = "diverged", ended[r][1], e
                            active[r] = False
                    for rule in self.rules:
                        rule.observe(c)
                    if on_epoch is not None:
                        on_epoch(EpochRecord(e, rec, alive, ended))
                    done = e
                    if not active.any():
                        break
            except (Stopped, KeyboardInterrupt):
                for r in np.flatnonzero(active):
                    status[r], reason[r], end[r] = "interrupted", f"interrupted after epoch {done}", done
                self.interrupted = True
        xy = np.stack(path, axis=1)  # (R, steps+1, 2)
        steps = len(path) - 1  # one step per epoch
        timing = [update_timing(lsec[r], steps, 1) for r in range(R)] if lbfgs else [{}] * R
        for rule in self.rules:
            for r in range(rule.sl.start, rule.sl.stop):
                timing[r] = update_timing(rule.seconds, steps, rule.sl.stop - rule.sl.start)
        out = []
        for r in range(R):
            p = xy[r, : end[r] + 1]
            out.append(RunResult(status[r], reason[r], int(end[r]), {"xy": p[-1].copy()}, {}, fingerprint(xy[r, 0]), "none",
                                 extra={"trajectory": {"xy": p}, "params_init": {"xy": p[0].copy()}}, timing=timing[r]))
        return out
