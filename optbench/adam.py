"""Adam and its relatives: adam (AMSGrad), adamw, adamax, nadam, radam, adabelief."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optbench.optim import OPTIMIZERS
from optbench.optimizer import Hyper, Optimizer, _coef, _ema, _f64, _on, _rest, _with_decay
from optbench.registry import NonNegative, Positive, Unit


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
    decoupled = _on(weight_decay)

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


class AdamaxState(NamedTuple):
    t: int  # updates so far
    m: np.ndarray  # (R, P) moving average of g
    u: np.ndarray  # (R, P) exponentially weighted infinity norm, max(b2*u, |g| + eps)


@OPTIMIZERS.register()
def adamax(
    *, lr: Positive = 2e-3, beta1: Unit = 0.9, beta2: Unit = 0.999, eps: Positive = 1e-8, weight_decay: NonNegative = 0.0
) -> Optimizer:
    """Adamax: m = b1*m + (1-b1)*g; u = max(b2*u, |g| + eps); direction = m / ((1-b1**t) * u).

    Kingma & Ba (2015, sec. 7.1), Adam with the infinity norm, as torch.optim.Adamax does it (eps inside
    the max); weight_decay puts g + weight_decay*theta in place of g (coupled, as torch).
    """

    def init(theta):
        return AdamaxState(0, np.zeros_like(theta), np.zeros_like(theta))

    def bind(theta):
        b1, b2, eps_, wd = (_coef(x, theta) for x in (beta1, beta2, eps, weight_decay))
        rest1, decayed = _rest(beta1, theta), _on(weight_decay)
        d, buf = np.empty_like(theta), np.empty_like(theta)
        g_wd = np.empty_like(theta) if decayed else None

        def update(g, state, theta):
            t, m, u = state
            t += 1
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
            _ema(m, g, rest1, buf)
            np.abs(g, out=buf)
            np.add(buf, eps_, out=buf)
            np.multiply(u, b2, out=u)
            np.maximum(u, buf, out=u)
            np.multiply(u, 1.0 - b1**t, out=d)
            np.divide(m, d, out=d)
            return d, AdamaxState(t, m, u)

        return update

    return Optimizer(init, bind, lr)


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


class RAdamState(NamedTuple):
    t: int  # updates so far
    M: np.ndarray  # b1*M + g: Adam's first moment without its (1-b1) factor
    V: np.ndarray  # b2*V + g**2: the second moment without its (1-b2) factor


def _radam_coefficients(t: int, b1: Hyper, b2: Hyper, eps: Hyper) -> tuple[Hyper, Hyper]:
    """(k, e) with RAdam's direction = M / (sqrt(V)*k + e), per replica, in float64 (b1, b2, eps as _f64 gives them).

    Rectified (rho_t > 5): mhat*sqrt(1-b2**t)/(sqrt(v)+eps)*r with mhat = c*M, c = (1-b1)/(1-b1**t), v = (1-b2)*V,
    i.e. k = sqrt(1-b2)/a, e = eps/a for a = c*sqrt(1-b2**t)*r. Not yet (rho_t <= 5): mhat, i.e. k = 0, e = 1/c.
    """
    c = (1.0 - b1) / (1.0 - b1**t)
    bc2 = 1.0 - b2**t
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    rho_t = rho_inf - 2.0 * t * b2**t / bc2
    on = rho_t > 5.0

    def rectified():
        r = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)) ** 0.5
        a = c * bc2**0.5 * r
        return (1.0 - b2) ** 0.5 / a, eps / a

    if isinstance(on, bool):  # Python floats, the common case: no array calls (the rectifier is undefined until on)
        return rectified() if on else (0.0, 1.0 / c)
    with np.errstate(divide="ignore", invalid="ignore"):  # the rectifier of the replicas not yet rectified is unused
        k, e = rectified()
    return np.where(on, k, 0.0), np.where(on, e, 1.0 / c)


@OPTIMIZERS.register()
def radam(
    *,
    lr: Positive = 1e-3,
    beta1: Unit = 0.9,
    beta2: Unit = 0.999,
    eps: Positive = 1e-8,
    weight_decay: NonNegative = 0.0,
    decoupled_weight_decay: bool = False,
) -> Optimizer:
    """RAdam: m, v as Adam; rho_t = rho_inf - 2t*b2**t/(1-b2**t); direction = mhat*r*sqrt(1-b2**t)/(sqrt(v) + eps) once rho_t > 5, else mhat.

    Liu et al. (2020) as torch.optim.RAdam does it: mhat = m/(1-b1**t), rho_inf = 2/(1-b2) - 1,
    r = sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t)); until the variance of the adaptive
    step is tractable (the first 5 updates at b2 = 0.999) it is momentum SGD with bias correction.
    weight_decay is coupled (g + weight_decay*theta in place of g) unless decoupled_weight_decay (AdamW's
    direction + weight_decay*theta), torch's two options.
    """

    def init(theta):
        return RAdamState(0, np.zeros_like(theta), np.zeros_like(theta))

    def bind(theta):
        b1, b2, wd = (_coef(x, theta) for x in (beta1, beta2, weight_decay))
        decayed = _on(weight_decay)
        d, buf = np.empty_like(theta), np.empty_like(theta)
        g_wd = np.empty_like(theta) if decayed and not decoupled_weight_decay else None
        b1_64, b2_64, eps_64 = _f64(beta1), _f64(beta2), _f64(eps)
        cast = (lambda x: x) if all(isinstance(x, float) for x in (b1_64, b2_64, eps_64)) else (lambda x: _coef(x, theta))

        def update(g, state, theta):
            t, M, V = state
            t += 1
            if decayed and not decoupled_weight_decay:
                g = _with_decay(g, theta, wd, g_wd)
            _update_moments(g, M, V, b1, b2, buf)
            k, e = map(cast, _radam_coefficients(t, b1_64, b2_64, eps_64))
            np.sqrt(V, out=d)
            np.multiply(d, k, out=d)
            np.add(d, e, out=d)
            np.divide(M, d, out=d)
            if decayed and decoupled_weight_decay:
                np.add(d, np.multiply(theta, wd, out=buf), out=d)
            return d, RAdamState(t, M, V)

        return update

    return Optimizer(init, bind, lr)


class AdaBeliefState(NamedTuple):
    t: int  # updates so far
    m: np.ndarray  # (R, P) moving average of g
    s: np.ndarray  # (R, P) moving average of (g - m)**2, plus eps each update


@OPTIMIZERS.register()
def adabelief(
    *, lr: Positive = 1e-3, beta1: Unit = 0.9, beta2: Unit = 0.999, eps: Positive = 1e-16, weight_decay: NonNegative = 0.0
) -> Optimizer:
    """AdaBelief: m = b1*m + (1-b1)*g; s = b2*s + (1-b2)*(g-m)**2 + eps; direction = (m/(1-b1**t)) / (sqrt(s/(1-b2**t)) + eps).

    Zhuang et al. (2020), Algorithm 2: Adam with the variance of g around its prediction m in place of
    g**2, eps added to s every update as the paper does. pytorch_optimizer.AdaBelief's plain form
    (rectify=False, ams_bound=False, its defaults; eps = 1e-16 as there); weight_decay is decoupled
    (direction + weight_decay*theta), its default weight_decouple=True with fixed_decay=False.
    """

    def init(theta):
        return AdaBeliefState(0, np.zeros_like(theta), np.zeros_like(theta))

    def bind(theta):
        b2, eps_, wd = (_coef(x, theta) for x in (beta2, eps, weight_decay))
        rest1, rest2, decayed = _rest(beta1, theta), _rest(beta2, theta), _on(weight_decay)
        d, buf = np.empty_like(theta), np.empty_like(theta)
        b1_64, b2_64, eps_64 = _f64(beta1), _f64(beta2), _f64(eps)

        def update(g, state, theta):
            t, m, s = state
            t += 1
            _ema(m, g, rest1, buf)
            np.subtract(g, m, out=buf)
            np.multiply(buf, buf, out=buf)
            np.multiply(buf, rest2, out=buf)
            np.multiply(s, b2, out=s)
            np.add(s, buf, out=s)
            np.add(s, eps_, out=s)
            # mhat / (sqrt(shat) + eps) = m / (sqrt(s)*k + eps*bc1) with bc1 = 1-b1**t, k = bc1/sqrt(1-b2**t)
            bc1 = 1.0 - b1_64**t
            k, e = _coef(bc1 / (1.0 - b2_64**t) ** 0.5, theta), _coef(eps_64 * bc1, theta)
            np.sqrt(s, out=d)
            np.multiply(d, k, out=d)
            np.add(d, e, out=d)
            np.divide(m, d, out=d)
            if decayed:
                np.add(d, np.multiply(theta, wd, out=buf), out=d)
            return d, AdaBeliefState(t, m, s)

        return update

    return Optimizer(init, bind, lr)
