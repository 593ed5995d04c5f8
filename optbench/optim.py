"""Optimizers on the flat (R, P) parameter buffer, ordered by increasing complexity; one registry.

    state = opt.init(theta)                           # theta: (R, P), float64 or float32; a NamedTuple per rule
    update = opt.bind(theta)                          # this theta's scratch buffers and coefficients
    direction, state = update(g, state, theta)        # the loop then does theta -= lr_t * direction

An update never applies the learning rate: the loop does, with `lr_t = opt.lr * schedule(step)`.
Every numeric hyperparameter is a Python float or a per-replica array of shape (R, 1). The state holds
only what a rule carries from step to step (and a checkpoint saves); `bind` keeps the rest apart: the
hyperparameters cast to theta's dtype and the preallocated buffers updates overwrite with `out=`.
The state's arrays are updated in place and the state returned; the direction may be a scratch buffer
or the gradient itself, so callers must not write to it. Rules with a momentum coefficient (a `mu`
parameter) take `mu=` per update: a momentum schedule hands it in, else the configured one is used.

These are the fast forms. optbench/reference.py writes each rule as the literature does (SEEDS.md §1),
and tests/test_optim.py holds the two together; `optbench list optimizers NAME` shows both.
L-BFGS re-evaluates the function, so it lives in optbench/lbfgs.py with another protocol
(`is_closure_optimizer`).
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple

import numpy as np

from optbench import lbfgs as _lbfgs
from optbench.registry import NonNegative, Positive, Registry, Unit

OPTIMIZERS = Registry("optimizer", plugins="optbench.optimizers", required=("lr",))  # plugins: optbench/plugins.py

Hyper = float | np.ndarray  # a Python float or a per-replica (R, 1) array
Update = Callable[..., tuple[np.ndarray, tuple]]  # (g, state, theta[, mu=]) -> (direction, state)


class Optimizer(NamedTuple):
    """A first-order rule: state = init(theta); update = bind(theta); direction, state = update(g, state, theta)."""

    init: Callable[[np.ndarray], tuple]
    bind: Callable[[np.ndarray], Update]
    lr: Hyper  # base learning rate, applied by the loop


# ---- states: what each rule carries from step to step --------------------------------------------


class Nothing(NamedTuple):
    """Gradient descent carries nothing."""


class Velocity(NamedTuple):
    v: np.ndarray  # (R, P) momentum buffer


class Cache(NamedTuple):
    cache: np.ndarray  # (R, P) sum (AdaGrad) or moving average (RMSProp) of g**2


class AdadeltaState(NamedTuple):
    v: np.ndarray  # moving average of g**2
    u: np.ndarray  # moving average of the squared directions


class AdamState(NamedTuple):
    t: int  # updates so far
    M: np.ndarray  # b1*M + g: the first moment without its (1-b1) factor, m = (1-b1)*M
    V: np.ndarray  # b2*V + g**2: the second moment without its (1-b2) factor, v = (1-b2)*V
    V_max: np.ndarray | None  # AMSGrad's running maximum of V (None without amsgrad)


class NAdamState(NamedTuple):
    t: int
    mu_product: Hyper  # mu_1 * ... * mu_t
    M: np.ndarray  # as in AdamState
    V: np.ndarray


# ---- shared pieces -------------------------------------------------------------------------------


def _coef(value: Hyper, theta: np.ndarray) -> Hyper:
    """A hyperparameter as updates use it: a Python float, or an (R, 1) array of theta's dtype.

    Python floats are "weak" in NumPy's promotion, so float32 buffers stay float32 in every ufunc.
    """
    if np.ndim(value) == 0:
        return float(value)
    arr = np.array(value, dtype=theta.dtype)  # a copy: the caller's array stays the caller's
    if arr.ndim != 2 or arr.shape[1] != 1 or arr.shape[0] not in (1, theta.shape[0]):
        raise ValueError(f"per-replica hyperparameters have shape (R, 1) = ({theta.shape[0]}, 1), got {arr.shape}")
    return arr


def _rest(value: Hyper, theta: np.ndarray) -> Hyper:
    """1 - value, computed in float64 and then cast like _coef (the (1-b) factor of a moving average)."""
    return _coef(1.0 - np.asarray(value, dtype=np.float64), theta)


def _replica_column(value: Hyper, theta: np.ndarray) -> np.ndarray:
    """An (R, 1) array of theta's dtype holding `value`: a momentum coefficient in the dtype a schedule's has."""
    col = np.empty((theta.shape[0], 1), dtype=theta.dtype)
    col[...] = _coef(value, theta)
    return col


def _ema(avg: np.ndarray, x: np.ndarray, rest: Hyper, buf: np.ndarray) -> None:
    """avg = b*avg + (1-b)*x in place, computed as avg += (1-b)*(x - avg) (torch's lerp); rest = 1-b.

    One multiply by the coefficient instead of two: on small arrays a multiply by a scalar or a
    per-replica column costs well over a plain add, and no digits cancel when b is close to 1.
    buf is scratch and may be x itself.
    """
    np.subtract(x, avg, out=buf)
    np.multiply(buf, rest, out=buf)
    np.add(avg, buf, out=avg)


# ---- the rules -----------------------------------------------------------------------------------


@OPTIMIZERS.register(aliases=("gd",))
def sgd(*, lr: Positive = 0.01) -> Optimizer:
    """Gradient descent: direction = g (full batch or mini-batch, as the data loader decides)."""

    def bind(theta):
        def update(g, state, theta):
            return g, state

        return update

    return Optimizer(lambda theta: Nothing(), bind, lr)


@OPTIMIZERS.register()
def momentum(*, lr: Positive = 0.01, mu: Unit = 0.9, form: Literal["classic", "ema"] = "classic") -> Optimizer:
    """Momentum: classic v = mu*v + g, ema v = mu*v + (1-mu)*g; direction = v.

    classic is PyTorch's SGD(momentum=mu); at constant lr it is CS231n's `v = mu*v - lr*dx; x += v`
    with v_cs231n = -lr*v. ema is deeplearning.ai's `v = beta*v + (1-beta)*dx; x -= lr*v` (beta = mu),
    whose steps are (1-mu) times smaller, so at equal lr it moves about as far as plain GD.
    """

    def bind(theta):
        mu_cfg = _replica_column(mu, theta)

        def update_classic(g, state, theta, mu=None):
            v = state.v
            np.multiply(v, mu_cfg if mu is None else mu, out=v)
            np.add(v, g, out=v)
            return v, state

        rest, buf = np.empty_like(mu_cfg), np.empty_like(theta)

        def update_ema(g, state, theta, mu=None):
            np.subtract(1.0, mu_cfg if mu is None else mu, out=rest)  # in theta's dtype, from mu in theta's dtype
            _ema(state.v, g, rest, buf)
            return state.v, state

        return update_classic if form == "classic" else update_ema

    return Optimizer(lambda theta: Velocity(np.zeros_like(theta)), bind, lr)


@OPTIMIZERS.register()
def nesterov(*, lr: Positive = 0.01, mu: Unit = 0.9) -> Optimizer:
    """Nesterov momentum: v = mu*v + g; direction = g + mu*v.

    PyTorch's SGD(nesterov=True). At constant lr it is CS231n's look-ahead form
    `v = mu*v - lr*dx(x + mu*v); x += v` tracked at the look-ahead point x + mu*v, i.e. the notes'
    `v_prev = v; v = mu*v - lr*dx; x += -mu*v_prev + (1+mu)*v`.
    """

    def bind(theta):
        mu_cfg, d = _replica_column(mu, theta), np.empty_like(theta)

        def update(g, state, theta, mu=None):
            v, mu_ = state.v, mu_cfg if mu is None else mu
            np.multiply(v, mu_, out=v)
            np.add(v, g, out=v)
            np.multiply(v, mu_, out=d)
            np.add(d, g, out=d)
            return d, state

        return update

    return Optimizer(lambda theta: Velocity(np.zeros_like(theta)), bind, lr)


def _over_root(g: np.ndarray, cache: np.ndarray, eps: Hyper, d: np.ndarray) -> np.ndarray:
    """d = g / (sqrt(cache) + eps), into d: the AdaGrad / RMSProp step."""
    np.sqrt(cache, out=d)
    np.add(d, eps, out=d)
    return np.divide(g, d, out=d)


@OPTIMIZERS.register()
def adagrad(*, lr: Positive = 0.01, eps: Positive = 1e-7, initial_accumulator_value: NonNegative = 0.0) -> Optimizer:
    """AdaGrad: cache += g**2; direction = g / (sqrt(cache) + eps)."""

    def init(theta):
        cache = np.empty_like(theta)
        cache[...] = _coef(initial_accumulator_value, theta)
        return Cache(cache)

    def bind(theta):
        eps_, d = _coef(eps, theta), np.empty_like(theta)

        def update(g, state, theta):
            np.multiply(g, g, out=d)
            np.add(state.cache, d, out=state.cache)
            return _over_root(g, state.cache, eps_, d), state

        return update

    return Optimizer(init, bind, lr)


@OPTIMIZERS.register()
def rmsprop(*, lr: Positive = 0.01, decay_rate: Unit = 0.99, eps: Positive = 1e-8) -> Optimizer:
    """RMSProp: cache = d*cache + (1-d)*g**2; direction = g / (sqrt(cache) + eps) (torch's alpha = d)."""

    def bind(theta):
        rest, eps_, d = _rest(decay_rate, theta), _coef(eps, theta), np.empty_like(theta)

        def update(g, state, theta):
            _ema(state.cache, np.multiply(g, g, out=d), rest, d)
            return _over_root(g, state.cache, eps_, d), state

        return update

    return Optimizer(lambda theta: Cache(np.zeros_like(theta)), bind, lr)


@OPTIMIZERS.register()
def adadelta(*, lr: Positive = 1.0, rho: Unit = 0.95, eps: Positive = 1e-6) -> Optimizer:
    """Adadelta: v = rho*v + (1-rho)*g**2; d = sqrt((u + eps)/(v + eps))*g; u = rho*u + (1-rho)*d**2; direction = d.

    Zeiler (2012) as torch.optim.Adadelta does it: u, the running mean of squared updates, gives
    the step its units, so lr = 1 is the paper's rule and lr only scales it.
    """

    def bind(theta):
        rest, eps_ = _rest(rho, theta), _coef(eps, theta)
        d, buf = np.empty_like(theta), np.empty_like(theta)

        def update(g, state, theta):
            v, u = state
            _ema(v, np.multiply(g, g, out=buf), rest, buf)
            # one sqrt of the ratio instead of a ratio of two sqrts: same value, one call fewer
            np.add(v, eps_, out=buf)
            np.add(u, eps_, out=d)
            np.divide(d, buf, out=d)
            np.sqrt(d, out=d)
            np.multiply(d, g, out=d)
            _ema(u, np.multiply(d, d, out=buf), rest, buf)
            return d, state

        return update

    return Optimizer(lambda theta: AdadeltaState(np.zeros_like(theta), np.zeros_like(theta)), bind, lr)


def _update_moments(g: np.ndarray, M: np.ndarray, V: np.ndarray, b1: Hyper, b2: Hyper, buf: np.ndarray) -> None:
    """M = b1*M + g; V = b2*V + g**2 in place: the moving averages without their (1-b) factors.

    m = (1-b1) M and v = (1-b2) V exactly, so the factors join the bias corrections as per-replica
    scalars and each moment costs one pass fewer.
    """
    np.multiply(M, b1, out=M)
    np.add(M, g, out=M)
    np.multiply(g, g, out=buf)
    np.multiply(V, b2, out=V)
    np.add(V, buf, out=V)


def _adam(lr: Hyper, beta1: Hyper, beta2: Hyper, eps: Hyper, amsgrad: bool, weight_decay: Hyper) -> Optimizer:
    """Adam, AMSGrad and AdamW: one rule, the variants switched by amsgrad and weight_decay."""
    decoupled = np.ndim(weight_decay) > 0 or weight_decay != 0.0

    def init(theta):
        return AdamState(0, np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta) if amsgrad else None)

    def bind(theta):
        b1, b2, eps_, wd = (_coef(x, theta) for x in (beta1, beta2, eps, weight_decay))
        d, buf = np.empty_like(theta), np.empty_like(theta)

        def update(g, state, theta):
            t, M, V, V_max = state
            t += 1
            _update_moments(g, M, V, b1, b2, buf)
            if amsgrad:
                # torch's AMSGrad: the running max of the raw v (a constant multiple of V), bias-corrected afterwards
                np.maximum(V_max, V, out=V_max)
                V = V_max
            # mhat / (sqrt(vhat) + eps) with mhat = M (1-b1)/(1-b1**t), vhat = V (1-b2)/(1-b2**t)
            #   = M / (sqrt(V) * k + eps / c),  c = (1-b1)/(1-b1**t),  k = sqrt((1-b2)/(1-b2**t)) / c
            c = (1.0 - b1) / (1.0 - b1**t)
            k = ((1.0 - b2) / (1.0 - b2**t)) ** 0.5 / c
            np.sqrt(V, out=d)
            np.multiply(d, k, out=d)
            np.add(d, eps_ / c, out=d)
            np.divide(M, d, out=d)
            if decoupled:
                # decoupled decay: theta -= lr*(adam + wd*theta) is torch's theta *= 1 - lr*wd; theta -= lr*adam
                np.multiply(theta, wd, out=buf)
                np.add(d, buf, out=d)
            return d, AdamState(t, state.M, state.V, state.V_max)

        return update

    return Optimizer(init, bind, lr)


@OPTIMIZERS.register()
def adam(
    *, lr: Positive = 1e-3, beta1: Unit = 0.9, beta2: Unit = 0.999, eps: Positive = 1e-8, amsgrad: bool = False
) -> Optimizer:
    """Adam: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g**2; direction = (m/(1-b1**t)) / (sqrt(v/(1-b2**t)) + eps).

    t counts updates from 1. amsgrad: v in the denominator is replaced by its running maximum
    (taken before bias correction, as torch does).
    """
    return _adam(lr, beta1, beta2, eps, amsgrad, 0.0)


@OPTIMIZERS.register()
def adamw(
    *,
    lr: Positive = 1e-3,
    beta1: Unit = 0.9,
    beta2: Unit = 0.999,
    eps: Positive = 1e-8,
    weight_decay: NonNegative = 0.01,
    amsgrad: bool = False,
) -> Optimizer:
    """AdamW: direction = adam_direction + weight_decay*theta (decoupled weight decay, Loshchilov & Hutter)."""
    return _adam(lr, beta1, beta2, eps, amsgrad, weight_decay)


@OPTIMIZERS.register()
def nadam(
    *,
    lr: Positive = 2e-3,
    beta1: Unit = 0.9,
    beta2: Unit = 0.999,
    eps: Positive = 1e-8,
    momentum_decay: NonNegative = 4e-3,
) -> Optimizer:
    """NAdam: Adam with Nesterov momentum, direction = (cg*g + cm*m) / (sqrt(v/(1-b2**t)) + eps).

    Dozat's rule as torch.optim.NAdam does it: m and v as in Adam; the momentum coefficient warms up,
    mu_t = b1*(1 - 0.5*0.96**(t*psi)) with psi = momentum_decay; with P_t = mu_1*...*mu_t,
    cg = (1-mu_t)/(1-P_t) weighs the current gradient and cm = mu_{t+1}/(1-P_t*mu_{t+1}) the momentum.
    """

    def init(theta):
        return NAdamState(0, 1.0, np.zeros_like(theta), np.zeros_like(theta))

    def bind(theta):
        b1, b2, eps_, psi = (_coef(x, theta) for x in (beta1, beta2, eps, momentum_decay))
        d, buf, buf2 = np.empty_like(theta), np.empty_like(theta), np.empty_like(theta)

        def update(g, state, theta):
            t, mu_product, M, V = state
            t += 1
            mu_t = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
            mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
            mu_product = mu_product * mu_t
            _update_moments(g, M, V, b1, b2, buf)
            # with m = (1-b1) M, v = (1-b2) V and s = sqrt(1-b2): sqrt(v/c2) + eps = (s sqrt(V) + eps sqrt(c2)) / sqrt(c2);
            # dividing numerator and denominator by s leaves one pass per array, as in adam
            sqrt_c2 = (1.0 - b2**t) ** 0.5
            s = (1.0 - b2) ** 0.5
            np.sqrt(V, out=buf)
            np.add(buf, eps_ * sqrt_c2 / s, out=buf)
            np.multiply(g, sqrt_c2 * (1.0 - mu_t) / (1.0 - mu_product) / s, out=d)
            np.multiply(M, sqrt_c2 * (1.0 - b1) * mu_next / (1.0 - mu_product * mu_next) / s, out=buf2)
            np.add(d, buf2, out=d)
            np.divide(d, buf, out=d)
            return d, NAdamState(t, mu_product, M, V)

        return update

    return Optimizer(init, bind, lr)


class LionState(NamedTuple):
    m: np.ndarray  # (R, P) moving average of g, decay beta2


@OPTIMIZERS.register()
def lion(*, lr: Positive = 1e-4, beta1: Unit = 0.9, beta2: Unit = 0.99, weight_decay: NonNegative = 0.0) -> Optimizer:
    """Lion: c = b1*m + (1-b1)*g; direction = sign(c) + wd*theta; m = b2*m + (1-b2)*g   (Chen et al. 2023).

    Every coordinate steps by lr (plus the decoupled decay): the paper's lr is 3-10x smaller than AdamW's.
    Written as its formula, in that order, so it is its own reference form.
    """

    def bind(theta):
        b1, b2, wd = (_coef(x, theta) for x in (beta1, beta2, weight_decay))
        rest1, rest2 = _rest(beta1, theta), _rest(beta2, theta)
        c, buf = np.empty_like(theta), np.empty_like(theta)

        def update(g, state, theta):
            m = state.m
            np.add(np.multiply(m, b1, out=c), np.multiply(g, rest1, out=buf), out=c)  # c = b1*m + (1-b1)*g
            np.sign(c, out=c)
            np.add(c, np.multiply(theta, wd, out=buf), out=c)  # direction = sign(c) + wd*theta
            np.add(np.multiply(m, b2, out=m), np.multiply(g, rest2, out=buf), out=m)  # m = b2*m + (1-b2)*g
            return c, state

        return update

    return Optimizer(lambda theta: LionState(np.zeros_like(theta)), bind, lr)


# ---- L-BFGS (optbench/lbfgs.py) and the registry's protocols -------------------------------------

LBFGS = _lbfgs.LBFGS
OPTIMIZERS.register()(_lbfgs.lbfgs)


def is_closure_optimizer(name: str) -> bool:
    """True when `name` builds a closure optimizer (lbfgs.LBFGS: step(theta, closure, state)) rather than an Optimizer.

    It re-evaluates the cost inside a step: full batches only, no lr schedule, no dropout, one replica at a time.
    """
    return getattr(OPTIMIZERS.get(name), "needs_closure", False)


def takes_mu(name: str) -> bool:
    """True when `name`'s update takes `mu=` (its factory has a momentum coefficient mu): a momentum schedule applies."""
    return "mu" in OPTIMIZERS.params(name) and not is_closure_optimizer(name)
