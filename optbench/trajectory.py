"""Training on the 2-D test problems: theta (R, 2) is the point; one optimizer step per epoch, the path kept."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from optbench.optim import MOMENTUM_KEY, OPTIMIZERS
from optbench.problems import PROBLEMS
from optbench.schedules import MOMENTUM_SCHEDULES, SCHEDULES
from optbench.train import STOP, EpochRecord, RunResult, fingerprint, norms, stack_section

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
        self.opt_name = c0["optimizer"]["name"]
        if self.opt_name == "lbfgs":
            self.opts = [OPTIMIZERS.build("lbfgs", {k: v for k, v in c["optimizer"].items() if k != "name"}) for c in cfgs]
            self.lr = 1.0
        else:
            self.opt = OPTIMIZERS.build(self.opt_name, stack_section(cfgs, "optimizer", dt))
            self.lr = self.opt.lr
        self.sched = SCHEDULES.build(c0["schedule"]["name"], stack_section(cfgs, "schedule", dt), epochs=self.epochs)
        self.msched = MOMENTUM_SCHEDULES.build(
            c0["momentum_schedule"]["name"], stack_section(cfgs, "momentum_schedule", dt), epochs=self.epochs
        )

    def _cost(self, theta):
        return self.problem.f(theta).astype(np.float64)

    def run(self, on_epoch: Callable[[EpochRecord], None] | None = None) -> list[RunResult]:
        R, dt, theta, f = self.R, self.dtype, self.theta, self.problem
        path = [theta.copy()]
        lbfgs = self.opt_name == "lbfgs"
        state = None if lbfgs else self.opt.init(theta)
        lstates = [o.init(theta[r]) for r, o in enumerate(self.opts)] if lbfgs else None
        sstate, mstate = self.sched.init(R), self.msched.init(R)
        active = np.ones(R, dtype=bool)
        status, reason, end = ["completed"] * R, [""] * R, np.full(R, self.epochs)
        lr_e = np.empty((R, 1), dtype=dt)
        grad = np.empty_like(theta)
        nan = np.full(R, np.nan)
        t0 = time.perf_counter()
        e = done = 0

        def row(e, lr, gnorm, ratio):
            c = self._cost(theta)
            return c, dict(epoch=np.full(R, e), step=np.full(R, e), lr=lr, train_cost=c, val_cost=nan, train_acc=nan,
                           val_acc=nan, grad_norm=gnorm, update_ratio=ratio, seconds=np.full(R, time.perf_counter() - t0))

        with np.errstate(all="ignore"):
            m0, _ = self.sched.multiplier(0, sstate)
            _, rec = row(0, np.broadcast_to(np.asarray(self.lr * m0, dtype=np.float64).reshape(-1), (R,)), nan, nan)
            if on_epoch is not None:
                on_epoch(EpochRecord(0, rec, active.copy(), {}))
            try:
                for e in range(1, self.epochs + 1):
                    if STOP.requested:
                        raise KeyboardInterrupt
                    mult, sstate = self.sched.multiplier(e - 1, sstate)
                    np.multiply(self.lr * np.asarray(mult, dtype=dt), active.reshape(R, 1), out=lr_e)
                    mu, mstate = self.msched.multiplier(e - 1, mstate)
                    if mu is not None:
                        state[MOMENTUM_KEY[self.opt_name]][...] = mu
                    before = theta.copy()
                    if lbfgs:
                        for r in np.flatnonzero(active):
                            closure = lambda p: (float(f.f(p)), f.grad(p))  # noqa: E731
                            _, lstates[r] = self.opts[r].step(theta[r], closure, lstates[r])
                        grad[...] = f.grad(theta)
                    else:
                        grad[...] = f.grad(theta)
                        direction, state = self.opt.update(grad, state, theta)
                        theta -= lr_e * direction
                    path.append(theta.copy())
                    c, rec = row(e, lr_e.reshape(-1).astype(np.float64), norms(grad), norms(theta - before) / norms(before))
                    alive, ended = active.copy(), {}
                    for r in np.flatnonzero(active):
                        if not np.all(np.isfinite(theta[r])) or np.abs(theta[r]).max() > ESCAPE or not np.isfinite(c[r]):
                            ended[r] = ("diverged", f"the point left the plane's finite region at epoch {e}")
                            status[r], reason[r], end[r] = "diverged", ended[r][1], e
                            active[r] = False
                    sstate = self.sched.observe(c, sstate)
                    if on_epoch is not None:
                        on_epoch(EpochRecord(e, rec, alive, ended))
                    done = e
                    if not active.any():
                        break
            except KeyboardInterrupt:
                for r in np.flatnonzero(active):
                    status[r], reason[r], end[r] = "interrupted", f"interrupted after epoch {done}", done
                self.interrupted = True
        xy = np.stack(path, axis=1)  # (R, steps+1, 2)
        out = []
        for r in range(R):
            p = xy[r, : end[r] + 1]
            out.append(RunResult(status[r], reason[r], int(end[r]), {"xy": p[-1].copy()}, {}, fingerprint(xy[r, 0]), "none",
                                 extra={"trajectory": {"xy": p}}))
        return out
