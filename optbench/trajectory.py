"""Training on the 2-D test problems, for loop.run_epochs: theta (R, 2) is the point; one step per epoch, the path kept."""

from __future__ import annotations

from typing import Callable

import numpy as np

from optbench.clip import clipper
from optbench.loop import Progress, run_epochs
from optbench.optim import OPTIMIZERS, is_closure_optimizer
from optbench.problems import PROBLEMS
from optbench.records import EpochRecord, Never, RunResult, fingerprint, norms
from optbench.rules import make_rules
from optbench.sections import RunConfig
from optbench.update import ClosureSteps, Updater

ESCAPE = 1e8  # |theta| beyond this counts as diverged (a saddle's cost is unbounded below, so no cost rule)


class ProblemTrainer:
    """The Trainer interface (`run(on_epoch)`, `interrupted`) for runs whose data is a 2-D problem."""

    resumable = False  # a path of a few hundred points: rerun, not checkpointed
    has_val = False

    def __init__(self, cfgs: list[dict | RunConfig], *, record_activations: bool = False):
        self.cfgs = cfgs = [RunConfig.of(c) for c in cfgs]
        c0 = cfgs[0]
        self.R = R = len(cfgs)
        self.dtype = dt = np.dtype(c0.train.dtype)
        self.problem = PROBLEMS.build(c0.data.name, c0.data.options)
        self.epochs = c0.train.epochs
        self.theta = np.tile(np.asarray(self.problem.start, dtype=dt), (R, 1))
        self.grad = np.empty_like(self.theta)
        self.closure = None
        if is_closure_optimizer(c0.optimizer.name):  # its own group (groups.group_key): one per replica
            self.rules = []
            opts = [OPTIMIZERS.build(c.optimizer.name, c.optimizer.options) for c in cfgs]
            self.closure = ClosureSteps(opts, self.theta)
        else:  # one rule per slice of replicas sharing an optimizer and schedules, as in the MLP trainer
            self.rules = make_rules(cfgs, self.epochs, dt)
        self.lr0 = np.array([c.optimizer.options["lr"] for c in cfgs], dtype=np.float64)
        self.update = Updater(self.rules, self.theta, self.grad, self.lr0, clip=clipper([c.train for c in cfgs], 2, dt))
        for rule in self.rules:
            if "regrad" in rule.opt.wants:  # SAM's second gradient, at theta's current contents
                rule.kw["regrad"] = lambda sl=rule.sl: self.grad.__setitem__(sl, self.problem.grad(self.theta)[sl])
        self.path = [self.theta.copy()]  # theta after each epoch, the start first
        self.interrupted = False

    def batches(self, e: int):
        """One step per epoch: the gradient of f at the point."""
        yield self._gradient

    def _gradient(self) -> None:
        self.grad[...] = self.problem.grad(self.theta)

    def closure_of(self, r: int) -> Callable:
        f = self.problem
        return lambda p: (float(f.f(p)), f.grad(p))

    def _row(self, e: int, lr, gnorm, ratio, seconds: float) -> dict:
        R, nan = self.R, np.full(self.R, np.nan)
        return dict(epoch=np.full(R, e), step=np.full(R, e), lr=lr, train_cost=self.problem.f(self.theta).astype(np.float64),
                    val_cost=nan, train_acc=nan, val_acc=nan, grad_norm=gnorm, update_ratio=ratio, seconds=np.full(R, seconds))

    def record(self, e: int, prog: Progress) -> tuple[dict, None]:
        """Epoch e's columns: f at the point, |step| / |theta before it|."""
        before = self.path[-1]
        if self.closure is not None:  # the gradient at the point it stepped to
            self._gradient()
        self.path.append(self.theta.copy())
        up = self.update
        ratio = norms(self.theta - before) / norms(before)
        return self._row(e, up.lr_e.reshape(-1).astype(np.float64), up.grad_norm(), ratio, prog.seconds()), None

    def decide(self, e: int, m: dict, prog: Progress) -> dict[int, tuple[str, str]]:
        """The replicas whose point left the finite region (or whose cost did)."""
        theta, c = self.theta, m["train_cost"]
        return {r: ("diverged", f"the point left the plane's finite region at epoch {e}") for r in np.flatnonzero(prog.active)
                if not np.all(np.isfinite(theta[r])) or np.abs(theta[r]).max() > ESCAPE or not np.isfinite(c[r])}

    def finish(self, r: int) -> None:
        """Nothing to keep: the path has every point."""

    def run(self, on_epoch: Callable[[EpochRecord], None] | None = None, *, stop=None) -> list[RunResult]:
        """Train; once `stop` (a threading.Event) is set, the live replicas end interrupted (as Trainer.run)."""
        prog = Progress(self.R, self.epochs)
        nan = np.full(self.R, np.nan)
        with np.errstate(all="ignore"):
            if on_epoch is not None:
                on_epoch(EpochRecord(0, self._row(0, self.lr0, nan, nan, prog.seconds()), prog.active.copy(), {}))
            self.interrupted = run_epochs(self, prog, on_epoch, (stop or Never).is_set)
        xy = np.stack(self.path, axis=1)  # (R, steps+1, 2)
        timing = (self.closure or self.update).timing(len(self.path) - 1)  # one step per epoch
        out = []
        for r in range(self.R):
            p = xy[r, : prog.end_epoch[r] + 1]
            out.append(RunResult(prog.status[r], prog.reason[r], int(prog.end_epoch[r]), {"xy": p[-1].copy()}, {},
                                 fingerprint(xy[r, 0]), "none", extra={"trajectory": {"xy": p}, "params_init": {"xy": p[0].copy()}},
                                 timing=timing[r]))
        return out


__all__ = ["ProblemTrainer"]
