"""The update rules as the literature writes them (SEEDS.md §1, CS231n's optim.py): the oracle of optim.py.

    x, s = adam(x, dx, s, lr=..., beta1=..., beta2=..., eps=...)     # s: a dict, {} before the first step

Each function takes one step on its own: new arrays, no buffers, the moments as the papers define them
(Adam's m and v are true moving averages). optim.py computes the same rules in place, some of them
rewritten for speed (Adam without the (1-b) factors, moving averages as lerps); tests/test_optim.py
holds each fast rule to its form here, bit for bit where the fast form does the same arithmetic (sgd,
momentum, nesterov, adagrad) and to rounding elsewhere. `lr * (...)` is grouped as the engine applies
it (theta -= lr * direction), which is what makes the bitwise cases bitwise. The hyperparameters are
the factories' options, with no defaults here: optim.py's signatures hold them once.
A rule whose fast form is already its formula (lion) has no entry: its code is its reference.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def sgd(x, dx, s, *, lr):
    """x -= lr * dx"""
    return x - lr * dx, s


def momentum(x, dx, s, *, lr, mu):
    """v = mu*v + dx; x -= lr*v   (PyTorch's form; CS231n's v = mu*v - lr*dx; x += v is -lr times this v)"""
    v = s["v"] = mu * s.get("v", 0.0) + dx
    return x - lr * v, s


def momentum_ema(x, dx, s, *, lr, mu):
    """v = beta*v + (1-beta)*dx; x -= lr*v   (deeplearning.ai, beta = mu)"""
    beta = mu
    v = s["v"] = beta * s.get("v", 0.0) + (1 - beta) * dx
    return x - lr * v, s


def nesterov(x, dx, s, *, lr, mu):
    """v = mu*v + dx; x -= lr*(dx + mu*v)   (the look-ahead step, written at the look-ahead point)"""
    v = s["v"] = mu * s.get("v", 0.0) + dx
    return x - lr * (dx + mu * v), s


def adagrad(x, dx, s, *, lr, eps, initial_accumulator_value):
    """cache += dx**2; x -= lr*dx/(sqrt(cache)+eps)"""
    cache = s["cache"] = s.get("cache", initial_accumulator_value) + dx**2
    return x - lr * (dx / (np.sqrt(cache) + eps)), s


def rmsprop(x, dx, s, *, lr, decay_rate, eps):
    """cache = d*cache + (1-d)*dx**2; x -= lr*dx/(sqrt(cache)+eps)"""
    d = decay_rate
    cache = s["cache"] = d * s.get("cache", 0.0) + (1 - d) * dx**2
    return x - lr * (dx / (np.sqrt(cache) + eps)), s


def adadelta(x, dx, s, *, lr, rho, eps):
    """v = rho*v + (1-rho)*dx**2; d = sqrt(u+eps)/sqrt(v+eps)*dx; u = rho*u + (1-rho)*d**2; x -= lr*d   (Zeiler 2012)"""
    v = s["v"] = rho * s.get("v", 0.0) + (1 - rho) * dx**2
    d = np.sqrt(s.get("u", 0.0) + eps) / np.sqrt(v + eps) * dx
    s["u"] = rho * s.get("u", 0.0) + (1 - rho) * d**2
    return x - lr * d, s


def adam(x, dx, s, *, lr, beta1, beta2, eps):
    """m = b1*m + (1-b1)*dx; v = b2*v + (1-b2)*dx**2; mb = m/(1-b1**t); vb = v/(1-b2**t); x -= lr*mb/(sqrt(vb)+eps)

    Kingma & Ba (2015), t counting steps from 1 (incremented before use).
    """
    b1, b2 = beta1, beta2
    t = s["t"] = s.get("t", 0) + 1
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * dx
    v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * dx**2
    mb = m / (1 - b1**t)
    vb = v / (1 - b2**t)
    return x - lr * (mb / (np.sqrt(vb) + eps)), s


def amsgrad(x, dx, s, *, lr, beta1, beta2, eps):
    """Adam with v_max = max(v_max, v) in place of v: vb = v_max/(1-b2**t)   (Reddi et al. 2018, as torch does it)"""
    b1, b2 = beta1, beta2
    t = s["t"] = s.get("t", 0) + 1
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * dx
    v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * dx**2
    v_max = s["v_max"] = np.maximum(s.get("v_max", 0.0), v)
    mb = m / (1 - b1**t)
    vb = v_max / (1 - b2**t)
    return x - lr * (mb / (np.sqrt(vb) + eps)), s


def adamw(x, dx, s, *, lr, weight_decay, amsgrad_=False, **adam_options):
    """x -= lr*(adam_step + weight_decay*x): Adam's step and decoupled weight decay (Loshchilov & Hutter 2019)"""
    x_new, s = (amsgrad if amsgrad_ else adam)(x, dx, s, lr=lr, **adam_options)
    return x_new - lr * weight_decay * x, s


def nadam(x, dx, s, *, lr, beta1, beta2, eps, momentum_decay):
    """mu_t = b1*(1 - 0.5*0.96**(t*psi)); P = mu_1...mu_t; x -= lr*((1-mu_t)/(1-P)*dx + mu_next/(1-P*mu_next)*m)/(sqrt(vb)+eps)

    Dozat (2016) with the momentum warm-up of torch.optim.NAdam: m, v and vb = v/(1-b2**t) as in Adam,
    psi = momentum_decay, mu_next = mu_{t+1}.
    """
    b1, b2, psi = beta1, beta2, momentum_decay
    t = s["t"] = s.get("t", 0) + 1
    mu_t = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    P = s["mu_product"] = s.get("mu_product", 1.0) * mu_t
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * dx
    v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * dx**2
    vb = v / (1 - b2**t)
    return x - lr * (((1 - mu_t) / (1 - P) * dx + mu_next / (1 - P * mu_next) * m) / (np.sqrt(vb) + eps)), s


Step = Callable[..., tuple[np.ndarray, dict]]


def forms(rule: str) -> list[Step]:
    """Every reference step optim.py's factory `rule` may select, the default first ([] when it has none)."""
    return {"momentum": [momentum, momentum_ema], "adam": [adam, amsgrad], "adamw": [adamw, adam, amsgrad]}.get(
        rule, [f for f in (sgd, nesterov, adagrad, rmsprop, adadelta, nadam) if f.__name__ == rule])


def form(rule: str, options: dict) -> tuple[Step, dict] | None:
    """The reference step of optim.py's factory `rule` (its function name) with these validated options, and the
    keyword arguments it takes; None for a rule that has no separate reference form."""
    opts = dict(options)
    if rule == "momentum":
        return (momentum_ema if opts.pop("form") == "ema" else momentum), opts
    if rule == "adam":
        return (amsgrad if opts.pop("amsgrad") else adam), opts
    if rule == "adamw":
        opts["amsgrad_"] = opts.pop("amsgrad")
        return adamw, opts
    steps = forms(rule)
    return (steps[0], opts) if steps else None


# the reference steps optim.py's fast forms match bit for bit: the same operations in the same order
# (the others differ in rounding only; tests/test_optim.py asserts both)
BITWISE = frozenset({"sgd", "momentum", "nesterov", "adagrad"})
