"""Gradient descent and its momentum forms: sgd (gd), momentum (classic and ema), nesterov."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from optbench.errors import OptbenchError
from optbench.optim import OPTIMIZERS
from optbench.optimizer import Hyper, Optimizer, Update, _coef, _ema, _on, _replica_column, _rest, _with_decay
from optbench.registry import NonNegative, Positive, Unit, format_value


class Nothing(NamedTuple):
    """Gradient descent carries nothing."""


class Velocity(NamedTuple):
    v: np.ndarray  # (R, P) momentum buffer


class DampedVelocity(NamedTuple):
    t: int  # updates so far: torch's first update sets v = g, undamped
    v: np.ndarray  # (R, P) momentum buffer



@OPTIMIZERS.register(aliases=("gd",))
def sgd(*, lr: Positive = 0.01, weight_decay: NonNegative = 0.0) -> Optimizer:
    """Gradient descent: direction = g + weight_decay*theta (full batch or mini-batch, as the data loader decides).

    torch's SGD without momentum; weight_decay is its coupled decay (on every parameter, biases included).
    """

    def bind(theta):
        if not _on(weight_decay):

            def update(g, state, theta):
                return g, state

            return update
        wd, d = _coef(weight_decay, theta), np.empty_like(theta)

        def update_decayed(g, state, theta):
            return _with_decay(g, theta, wd, d), state

        return update_decayed

    return Optimizer(lambda theta: Nothing(), bind, lr)


def _damped(theta: np.ndarray, mu_cfg: np.ndarray, dampening: Hyper, decayed: bool, wd: Hyper,
            g_wd: np.ndarray | None) -> Update:
    """torch's damped momentum: v = g at the first update, then v = mu*v + (1-dampening)*g (undamped where mu = 0)."""
    rest, buf = np.empty_like(mu_cfg), np.empty_like(theta)
    rest_damped = _rest(dampening, theta)
    # torch keeps no buffer where mu = 0: its step is g, undamped, there
    rest_cfg = np.where(mu_cfg == 0, np.ones_like(mu_cfg), rest_damped).astype(theta.dtype)

    def update_damped(g, state, theta, mu=None):
        g = _with_decay(g, theta, wd, g_wd) if decayed else g
        t, v = state
        mu_ = mu_cfg if mu is None else mu
        if t == 0:
            np.copyto(v, g)  # torch's buffer starts at g, undamped
        else:
            if mu is not None:  # a momentum schedule's mu: where it is 0, no dampening, as for rest_cfg
                np.copyto(rest, rest_damped)
                np.copyto(rest, 1.0, where=mu == 0)
            np.multiply(v, mu_, out=v)
            np.add(v, np.multiply(g, rest_cfg if mu is None else rest, out=buf), out=v)
        return v, DampedVelocity(t + 1, v)

    return update_damped


@OPTIMIZERS.register()
def momentum(
    *,
    lr: Positive = 0.01,
    mu: Unit = 0.9,
    form: Literal["classic", "ema"] = "classic",
    dampening: Unit = 0.0,
    weight_decay: NonNegative = 0.0,
) -> Optimizer:
    """Momentum: classic v = mu*v + (1-dampening)*g, ema v = mu*v + (1-mu)*g; direction = v.

    classic is PyTorch's SGD(momentum=mu, dampening, weight_decay), its first v = g undamped (torch starts
    the buffer at g); at constant lr and no dampening it is CS231n's `v = mu*v - lr*dx; x += v` with
    v_cs231n = -lr*v. ema is deeplearning.ai's `v = beta*v + (1-beta)*dx; x -= lr*v` (beta = mu), from
    v = 0, whose steps are (1-mu) times smaller, so at equal lr it moves about as far as plain GD; its
    (1-mu) is its own dampening, so it takes none. weight_decay (both forms): g + weight_decay*theta in
    place of g, torch's coupled decay.
    """
    if form == "ema" and _on(dampening):
        raise OptbenchError(f"optimizer.dampening: {format_value(dampening)} is invalid with form: ema, whose (1-mu) "
                            "is its dampening (accepted: 0, or form: classic)")

    def bind(theta):
        mu_cfg = _replica_column(mu, theta)
        decayed, wd = _on(weight_decay), _coef(weight_decay, theta)
        g_wd = np.empty_like(theta) if decayed else None  # g + wd*theta
        if form == "classic" and _on(dampening):
            return _damped(theta, mu_cfg, dampening, decayed, wd, g_wd)

        def update_classic(g, state, theta, mu=None):
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
            v = state.v
            np.multiply(v, mu_cfg if mu is None else mu, out=v)
            np.add(v, g, out=v)
            return v, state

        rest, buf = np.empty_like(mu_cfg), np.empty_like(theta)

        def update_ema(g, state, theta, mu=None):
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
            np.subtract(1.0, mu_cfg if mu is None else mu, out=rest)  # in theta's dtype, from mu in theta's dtype
            _ema(state.v, g, rest, buf)
            return state.v, state

        return update_ema if form == "ema" else update_classic

    def init(theta):
        return DampedVelocity(0, np.zeros_like(theta)) if form == "classic" and _on(dampening) else Velocity(np.zeros_like(theta))

    return Optimizer(init, bind, lr)


@OPTIMIZERS.register()
def nesterov(*, lr: Positive = 0.01, mu: Unit = 0.9, weight_decay: NonNegative = 0.0) -> Optimizer:
    """Nesterov momentum: v = mu*v + g; direction = g + mu*v.

    PyTorch's SGD(momentum=mu, nesterov=True, weight_decay) (which allows no dampening); weight_decay puts
    g + weight_decay*theta in place of g. At constant lr it is CS231n's look-ahead form
    `v = mu*v - lr*dx(x + mu*v); x += v` tracked at the look-ahead point x + mu*v, i.e. the notes'
    `v_prev = v; v = mu*v - lr*dx; x += -mu*v_prev + (1+mu)*v`.
    """

    def bind(theta):
        mu_cfg, d = _replica_column(mu, theta), np.empty_like(theta)
        decayed, wd = _on(weight_decay), _coef(weight_decay, theta)
        g_wd = np.empty_like(theta) if decayed else None  # g + wd*theta

        def update(g, state, theta, mu=None):
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
            v, mu_ = state.v, mu_cfg if mu is None else mu
            np.multiply(v, mu_, out=v)
            np.add(v, g, out=v)
            np.multiply(v, mu_, out=d)
            np.add(d, g, out=d)
            return d, state

        return update

    return Optimizer(lambda theta: Velocity(np.zeros_like(theta)), bind, lr)
