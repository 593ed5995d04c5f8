"""The update: theta -= lr_t * direction(g), the one place a group's parameters change.

`Updater` applies a group's first-order rules (one per slice of replicas, see rules.py) after each batch's
gradient: frozen layers get no gradient, the gradient is clipped, each rule turns its rows of g into a
direction, and theta takes the step; Polyak's average follows theta. `ClosureSteps` is the other kind:
L-BFGS's closure-driven inner loop, one optimizer per replica, one step per epoch on the full batch.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from optbench.records import norms, update_timing


class Updater:
    """theta -= lr_t * direction for each rule's rows of theta (R, P); `apply()` after every batch's gradient."""

    def __init__(self, rules: list, theta: np.ndarray, grad: np.ndarray, lr0: np.ndarray, *, mults=None, clip=None,
                 frozen=None, polyak: np.ndarray | None = None):
        """grad (R, P): where each batch's gradient is; lr0 (R,): the configured rates; mults: per rule, lr_mult's (n, P)
        factors or None; clip: clip.clipper's; frozen: (R, P) mask of parameters that never move; polyak: (R, 1)
        decays of the parameter average."""
        R, dt = theta.shape[0], theta.dtype
        self.rules, self.theta, self.grad, self.lr0, self.clip, self.frozen = rules, theta, grad, lr0, clip, frozen
        self.lr_e = np.empty((R, 1), dtype=dt)  # this epoch's lr_t; 0 for replicas that have ended
        self.step = np.empty_like(theta)  # the last step, lr_t * direction
        self.avg = None if polyak is None else theta.copy()  # Polyak's average: avg += (1-decay) * (theta - avg)
        self.polyak = None if polyak is None else 1.0 - polyak
        self.gnorm = None  # the last batch's gradient norm before clipping (R,), when clipping
        self._averaged = [rule for rule in rules if rule.opt.evaluate_at is not None]
        self._at = np.empty_like(theta) if self._averaged and self.avg is None else None
        # each rule updates its own rows of theta: contiguous row slices, views bound once; with per-parameter
        # multipliers (optimizer.lr_mult) its step size is lr_e * mult, an (n, P) array set each epoch
        self._slices, self._scaled = [], []
        for rule, mult in zip(rules, mults or [None] * len(rules)):
            rule.start(theta[rule.sl])
            lr_r = lr_e = self.lr_e[rule.sl]
            if mult is not None:
                lr_r = np.empty((rule.sl.stop - rule.sl.start, theta.shape[1]), dtype=dt)
                self._scaled.append((lr_e, mult, lr_r))
            self._slices.append((rule, grad[rule.sl], theta[rule.sl], self.step[rule.sl], lr_r))

    def set_epoch(self, e: int, active: np.ndarray) -> None:
        """lr_t of epoch e (1-based) for every replica, 0 for the ones that have ended (they take no steps)."""
        self.lr_e[...] = self.lr0.reshape(-1, 1)  # a closure optimizer's own lr; the rules overwrite their slices
        for rule in self.rules:
            rule.set_epoch(e, self.lr_e)
        self.lr_e *= active.reshape(-1, 1)
        for lr_e, mult, lr_r in self._scaled:
            np.multiply(lr_e, mult, out=lr_r)

    def apply(self) -> None:
        """theta -= lr_t * direction(grad), grad (R, P) the batch's gradient (the cost's, L2 included)."""
        theta, grad, frozen = self.theta, self.grad, self.frozen
        if frozen is not None:  # frozen layers: no gradient in the optimizers' states (nor in the norm)
            np.copyto(grad, 0.0, where=frozen)
        if self.clip is not None:  # on the cost's gradient, L2 included (torch: after backward)
            self.gnorm = self.clip(grad)
        for rule, g_r, th_r, step_r, lr_r in self._slices:
            t = time.perf_counter()
            direction, rule.state = rule.update(g_r, rule.state, th_r, **rule.kw)
            np.multiply(direction, lr_r, out=step_r)
            rule.seconds += time.perf_counter() - t
        if frozen is not None:  # and no step, whatever the rule adds (decoupled weight decay, ...)
            np.copyto(self.step, 0.0, where=frozen)
        theta -= self.step
        if self.polyak is not None:
            self.avg += self.polyak * (theta - self.avg)

    def grad_norm(self) -> np.ndarray:
        """The epoch's gradient-norm column: the last batch's before clipping (as clip_grad_norm_ returns it), else |g|."""
        return norms(self.grad) if self.gnorm is None else self.gnorm

    def point(self) -> np.ndarray:
        """Where metrics are taken: Polyak's average, else each rule's evaluation point (schedule-free's x), else theta."""
        if self.avg is not None:
            return self.avg
        if self._at is None:
            return self.theta
        self._at[...] = self.theta
        for rule in self._averaged:
            rule.opt.evaluate_at(rule.state, self.theta[rule.sl], self._at[rule.sl])
        return self._at

    def observe(self, metric: np.ndarray) -> None:
        """The epoch's monitored metric (R,), for schedules that react to it (plateau)."""
        for rule in self.rules:
            rule.observe(metric)

    def timing(self, steps: int) -> list[dict]:
        """Each replica's summary.json record of its rule's cost (records.update_timing)."""
        out = [{} for _ in range(self.theta.shape[0])]
        for rule in self.rules:
            for r in range(rule.sl.start, rule.sl.stop):
                out[r] = update_timing(rule.seconds, steps, rule.sl.stop - rule.sl.start)
        return out


class ClosureSteps:
    """A closure optimizer (L-BFGS) per replica: each epoch one `opt.step(theta_r, closure, state)` on the full batch."""

    def __init__(self, opts: list, theta: np.ndarray, frozen: np.ndarray | None = None):
        self.opts, self.frozen = opts, frozen
        self.states = [o.init(theta[r]) for r, o in enumerate(opts)]
        self.seconds = np.zeros(len(opts))  # each replica's own time in its steps, line search included

    def epoch(self, theta: np.ndarray, closure_of: Callable[[int], Callable], active: np.ndarray) -> None:
        """One step of every active replica r, closure_of(r): theta_r (P,) -> (cost, gradient (P,))."""
        for r in np.flatnonzero(active):
            closure = closure_of(r)
            t = time.perf_counter()
            frozen = None if self.frozen is None else self.frozen[r]
            fixed = None if frozen is None else theta[r][frozen].copy()
            _, self.states[r] = self.opts[r].step(theta[r], closure, self.states[r])
            if fixed is not None:  # its direction is 0 there already; kept bit for bit (a -0.0 + 0.0 is 0.0)
                theta[r][frozen] = fixed
            self.seconds[r] += time.perf_counter() - t

    def timing(self, steps: int) -> list[dict]:
        return [update_timing(s, steps, 1) for s in self.seconds]


__all__ = ["ClosureSteps", "Updater"]
