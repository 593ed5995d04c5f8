"""The update rules as the literature writes them (SEEDS.md §1, CS231n's optim.py): the oracle of the fast
forms in sgd.py, adaptive.py and adam.py.

    x, s = adam(x, dx, s, lr=..., beta1=..., beta2=..., eps=...)     # s: a dict, {} before the first step

Each function takes one step on its own: new arrays, no buffers, the moments as the papers define them
(Adam's m and v are true moving averages). The fast forms compute the same rules in place, some of them
rewritten for speed (Adam without the (1-b) factors, moving averages as lerps); tests/test_optim.py
holds each fast rule to its form here, bit for bit where the fast form does the same arithmetic (sgd,
momentum, nesterov, adagrad) and to rounding elsewhere. `lr * (...)` is grouped as the engine applies
it (theta -= lr * direction), which is what makes the bitwise cases bitwise. The hyperparameters are
the factories' options, with no defaults here: the factories' signatures hold them once.
A rule whose fast form is already its formula (lion) has no entry: its code is its reference.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def sgd(x, dx, s, *, lr, weight_decay):
    """x -= lr * (dx + weight_decay*x)   (torch's SGD: weight decay coupled, added to the gradient)"""
    return x - lr * (dx + weight_decay * x), s


def momentum(x, dx, s, *, lr, mu, dampening, weight_decay):
    """v = mu*v + (1-dampening)*dx; x -= lr*v   (PyTorch's SGD(momentum=mu, dampening, weight_decay))

    dx includes weight_decay*x; torch's first v is dx, undamped, and it keeps no buffer at mu = 0 (so
    no dampening there). CS231n's v = mu*v - lr*dx; x += v is -lr times this v (no dampening).
    """
    dx = dx + weight_decay * x
    v = s["v"] = dx if "v" not in s else mu * s["v"] + (1 - dampening * (mu != 0)) * dx
    return x - lr * v, s


def momentum_ema(x, dx, s, *, lr, mu, weight_decay):
    """v = beta*v + (1-beta)*dx; x -= lr*v   (deeplearning.ai, beta = mu, from v = 0; dx includes weight_decay*x)"""
    beta = mu
    dx = dx + weight_decay * x
    v = s["v"] = beta * s.get("v", 0.0) + (1 - beta) * dx
    return x - lr * v, s


def nesterov(x, dx, s, *, lr, mu, weight_decay):
    """v = mu*v + dx; x -= lr*(dx + mu*v)   (the look-ahead step, written at the look-ahead point; dx includes weight_decay*x)"""
    dx = dx + weight_decay * x
    v = s["v"] = mu * s.get("v", 0.0) + dx
    return x - lr * (dx + mu * v), s


def adagrad(x, dx, s, *, lr, eps, initial_accumulator_value):
    """cache += dx**2; x -= lr*dx/(sqrt(cache)+eps)"""
    cache = s["cache"] = s.get("cache", initial_accumulator_value) + dx**2
    return x - lr * (dx / (np.sqrt(cache) + eps)), s


def rmsprop(x, dx, s, *, lr, decay_rate, eps, momentum, centered, weight_decay):
    """cache = d*cache + (1-d)*dx**2; x -= lr*dx/(sqrt(cache)+eps)

    torch.optim.RMSprop's options: dx includes weight_decay*x; centered: g_avg = d*g_avg + (1-d)*dx and the
    denominator is sqrt(cache - g_avg**2) + eps (Graves 2013); momentum: v = momentum*v + dx/denominator,
    x -= lr*v (at momentum 0, v is the plain step).
    """
    d = decay_rate
    dx = dx + weight_decay * x
    cache = s["cache"] = d * s.get("cache", 0.0) + (1 - d) * dx**2
    if centered:
        g_avg = s["g_avg"] = d * s.get("g_avg", 0.0) + (1 - d) * dx
        cache = cache - g_avg**2
    v = s["v"] = momentum * s.get("v", 0.0) + dx / (np.sqrt(cache) + eps)
    return x - lr * v, s


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


def adamax(x, dx, s, *, lr, beta1, beta2, eps, weight_decay):
    """m = b1*m + (1-b1)*dx; u = max(b2*u, |dx| + eps); x -= lr/(1-b1**t) * m/u

    Kingma & Ba (2015), section 7.1, with torch.optim.Adamax's eps inside the max; dx includes weight_decay*x.
    """
    b1, b2 = beta1, beta2
    dx = dx + weight_decay * x
    t = s["t"] = s.get("t", 0) + 1
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * dx
    u = s["u"] = np.maximum(b2 * s.get("u", 0.0), np.abs(dx) + eps)
    return x - lr / (1 - b1**t) * (m / u), s


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


def radam(x, dx, s, *, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay):
    """m, v, mb as Adam; rho_t = rho_inf - 2t*b2**t/(1-b2**t); x -= lr*(mb*r*sqrt(1-b2**t)/(sqrt(v)+eps) if rho_t > 5 else mb)

    Liu et al. (2020), Algorithm 2, as torch.optim.RAdam: rho_inf = 2/(1-b2) - 1, the rectifier
    r = sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t)), eps added to sqrt(v) before the
    bias correction. Weight decay: dx includes weight_decay*x, or (decoupled) x -= lr*weight_decay*x.
    Scalar hyperparameters (the branch on rho_t).
    """
    b1, b2, wd = beta1, beta2, weight_decay
    if not decoupled_weight_decay:
        dx = dx + wd * x
    t = s["t"] = s.get("t", 0) + 1
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * dx
    v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * dx**2
    mb = m / (1 - b1**t)
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
    if rho_t > 5:
        r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        step = mb * r * np.sqrt(1 - b2**t) / (np.sqrt(v) + eps)
    else:
        step = mb
    return x - lr * (step + (wd * x if decoupled_weight_decay else 0.0)), s


def adabelief(x, dx, s, *, lr, beta1, beta2, eps, weight_decay):
    """m = b1*m + (1-b1)*dx; s = b2*s + (1-b2)*(dx-m)**2 + eps; mb = m/(1-b1**t); sb = s/(1-b2**t); x -= lr*(mb/(sqrt(sb)+eps) + weight_decay*x)

    Zhuang et al. (2020), Algorithm 2 (eps added to s every step, as there), with decoupled weight decay.
    """
    b1, b2 = beta1, beta2
    t = s["t"] = s.get("t", 0) + 1
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * dx
    belief = s["s"] = b2 * s.get("s", 0.0) + (1 - b2) * (dx - m) ** 2 + eps
    mb = m / (1 - b1**t)
    sb = belief / (1 - b2**t)
    return x - lr * (mb / (np.sqrt(sb) + eps) + weight_decay * x), s


Step = Callable[..., tuple[np.ndarray, dict]]


def forms(rule: str) -> list[Step]:
    """Every reference step the factory `rule` may select, the default first ([] when it has none)."""
    singles = (sgd, nesterov, adagrad, rmsprop, adadelta, adamax, nadam, radam, adabelief)
    return {"momentum": [momentum, momentum_ema], "adam": [adam, amsgrad], "adamw": [adamw, adam, amsgrad]}.get(
        rule, [f for f in singles if f.__name__ == rule])


def form(rule: str, options: dict) -> tuple[Step, dict] | None:
    """The reference step of the factory `rule` (its function name) with these validated options, and the
    keyword arguments it takes; None for a rule that has no separate reference form."""
    opts = dict(options)
    if rule == "momentum":
        if opts.pop("form") == "ema":
            opts.pop("dampening")  # 0: the ema form's (1-mu) is its dampening
            return momentum_ema, opts
        return momentum, opts
    if rule == "adam":
        return (amsgrad if opts.pop("amsgrad") else adam), opts
    if rule == "adamw":
        opts["amsgrad_"] = opts.pop("amsgrad")
        return adamw, opts
    steps = forms(rule)
    return (steps[0], opts) if steps else None


# the reference steps the fast forms match bit for bit: the same operations in the same order
# (the others differ in rounding only; tests/test_optim.py asserts both)
BITWISE = frozenset({"sgd", "momentum", "nesterov", "adagrad"})
