"""A group's update rules: one optimizer with its lr and momentum schedules per slice of replicas that share them."""

from __future__ import annotations

import numpy as np

from optbench import lrmult
from optbench.groups import VARYING_SECTIONS, rule_key, stack_section
from optbench.optim import build as build_optimizer
from optbench.schedules import MOMENTUM_SCHEDULES, SCHEDULES
from optbench.sections import RunConfig


class Rule:
    """One update rule (optimizer, lr schedule, momentum schedule) over a contiguous slice of a group's replicas."""

    def __init__(self, cfgs: list[RunConfig], sl: slice, epochs: int, dtype, layout=None):
        c0 = cfgs[0]
        self.sl = sl
        self.name = c0.optimizer.name
        self.opt = build_optimizer(self.name, stack_section([c.optimizer for c in cfgs], dtype, skip=(lrmult.KEY,)), layout=layout)
        self.lr = self.opt.lr
        self.sched = SCHEDULES.build(c0.schedule.name, stack_section([c.schedule for c in cfgs], dtype), epochs=epochs)
        self.msched = MOMENTUM_SCHEDULES.build(
            c0.momentum_schedule.name, stack_section([c.momentum_schedule for c in cfgs], dtype), epochs=epochs
        )
        n = sl.stop - sl.start
        self.sstate, self.mstate = self.sched.init(n), self.msched.init(n)
        self.seconds = 0.0  # time in this slice's optimizer update (the direction and its lr scaling)
        self.state = self.update = None  # set by start()
        # the update's keyword arguments: mu (n, 1) under a momentum schedule, lr (n, 1) for a rule that wants it
        self._mu, self._lr = np.empty((n, 1), dtype=dtype), np.empty((n, 1), dtype=dtype)
        self.kw: dict = {"lr": self._lr} if "lr" in self.opt.wants else {}

    def start(self, theta: np.ndarray) -> None:
        """The optimizer's state and bound update for this slice's rows of theta."""
        self.state, self.update = self.opt.init(theta), self.opt.bind(theta)

    def set_epoch(self, e: int, lr_e: np.ndarray) -> None:
        """Before epoch e (1-based): this slice's learning rates into lr_e, and the momentum coefficient its update takes."""
        mult, self.sstate = self.sched.multiplier(e - 1, self.sstate)
        lr_e[self.sl] = self.lr * np.asarray(mult, dtype=lr_e.dtype)
        self._lr[...] = lr_e[self.sl]  # before frozen replicas' rates are zeroed: a rule may divide by it
        mu, self.mstate = self.msched.multiplier(e - 1, self.mstate)
        if mu is not None:
            self._mu[...] = mu  # cast to the training dtype, as the rule's own mu is
            self.kw["mu"] = self._mu

    def observe(self, metric: np.ndarray) -> None:
        self.sstate = self.sched.observe(metric[self.sl], self.sstate)


def make_rules(cfgs: list[RunConfig], epochs: int, dtype, layout=None) -> list[Rule]:
    """One rule per run of consecutive replicas with the same rule_key; `layout`: the blocks of theta's row."""
    rules, start = [], 0
    keys = [rule_key({s: getattr(c, s).plain() for s in VARYING_SECTIONS}) for c in cfgs]
    for i in range(1, len(cfgs) + 1):
        if i == len(cfgs) or keys[i] != keys[start]:
            rules.append(Rule(cfgs[start:i], slice(start, i), epochs, dtype, layout))
            start = i
    return rules
