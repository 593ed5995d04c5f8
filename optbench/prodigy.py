"""Prodigy: Adam whose step size d is estimated on the fly from the distance travelled (Mishchenko & Defazio 2024).

As prodigyopt 1.1.2's Prodigy computes it, per replica (one parameter group: the whole row). Its d estimate
uses the step's learning rate, so the update takes `lr=` from the loop (Optimizer.wants). slice_p (> 1 is an
approximation) and the FSDP switch are not offered.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optbench import modern_reference
from optbench.optim import OPTIMIZERS
from optbench.optimizer import Optimizer, _coef, _on, _rest
from optbench.registry import NonNegative, Positive, Unit


class ProdigyState(NamedTuple):
    k: np.ndarray  # (R, 1) steps taken, in theta's dtype (a replica whose gradients were all zero so far takes none)
    d: np.ndarray  # (R, 1) the step-size estimate, from d0
    d_max: np.ndarray  # (R, 1)
    d_numerator: np.ndarray  # (R, 1) sum of beta3-discounted (d/d0) dlr <g, x0 - x>
    x0: np.ndarray  # (R, P) the starting point
    s: np.ndarray  # (R, P) beta3-discounted sum of (d/d0) dlr g
    m: np.ndarray  # (R, P) EMA of d*g
    v: np.ndarray  # (R, P) EMA of d^2 g^2


def _start(theta: np.ndarray, d0: float) -> ProdigyState:
    """k = 0, d = d_max = d0, numerator 0, x0 = theta, s = m = v = 0."""
    col = lambda v: np.full((theta.shape[0], 1), v, dtype=theta.dtype)  # noqa: E731
    z = np.zeros_like
    return ProdigyState(col(0.0), col(d0), col(d0), col(0.0), theta.copy(), z(theta), z(theta), z(theta))


def _estimate_d(state: ProdigyState, delta, b3, d0, coef, growth):
    """d_hat = coef*(b3*num + delta)/|s|_1; d_max = max(d_max, d_hat); d = min(d_max, growth*d), d = max(d, d_hat) first at d0.

    state holds this step's s; delta, this step's (d/d0) dlr <g, x0 - x>. Returns (moved, d, d_max, num), each
    (R, 1): a replica whose s is still 0 (every gradient so far zero) keeps them and does not move (prodigyopt
    returns before stepping then).
    """
    _, d, d_max, num, _, s, _, _ = state
    denom = np.abs(s).sum(axis=1, keepdims=True)
    moved = denom != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        total = num * b3 + delta
        d_hat = coef * total / denom
    new_d = np.where(d == d0, np.maximum(d, d_hat), d)
    new_max = np.maximum(d_max, d_hat)
    new_d = np.minimum(new_max, new_d * growth)
    return moved, np.where(moved, new_d, d), np.where(moved, new_max, d_max), np.where(moved, total, num)


@OPTIMIZERS.register()
def prodigy(
    *,
    lr: Positive = 1.0,
    beta1: Unit = 0.9,
    beta2: Unit = 0.999,
    beta3: Unit | None = None,
    eps: Positive = 1e-8,
    weight_decay: NonNegative = 0.0,
    decouple: bool = True,
    use_bias_correction: bool = False,
    safeguard_warmup: bool = False,
    d0: Positive = 1e-6,
    d_coef: Positive = 1.0,
    growth_rate: Positive | None = None,
) -> Optimizer:
    """Prodigy: d = max(d, d_coef * sum_t (d_t/d0) dlr_t <g_t, x0 - x_t> / |s|_1); direction = d*m/(sqrt(v) + d*eps).

    m = b1*m + (1-b1)*d*g, v = b2*v + (1-b2)*d^2*g^2, s = b3*s + (d/d0)*dlr*g with dlr = d*lr (times Adam's bias
    correction with use_bias_correction), numerator and s discounted by b3 = beta3 (None: sqrt(beta2)); the step
    uses the d before this step's estimate. lr stays 1 unless unstable; growth_rate caps d's growth per step
    (None: unbounded, prodigyopt's inf). weight_decay: decoupled (decouple) or added to g.
    """

    def bind(theta):
        b1, b2, wd, eps_, d0_, coef = (_coef(x, theta) for x in (beta1, beta2, weight_decay, eps, d0, d_coef))
        b3 = _coef(np.sqrt(np.asarray(beta2, dtype=np.float64)) if beta3 is None else beta3, theta)
        growth = np.inf if growth_rate is None else _coef(growth_rate, theta)
        r1, r2 = _rest(beta1, theta), _rest(beta2, theta)  # 1 - beta, computed in float64
        buf, out = np.empty_like(theta), np.empty_like(theta)
        coupled, decoupled = _on(weight_decay) and not decouple, _on(weight_decay) and decouple

        def update(g, state, theta, lr):
            k, d, d_max, num, x0, s, m, v = state
            if coupled:
                g = g + wd * theta
            bc = ((1.0 - b2 ** (k + 1)) ** 0.5 / (1.0 - b1 ** (k + 1))).astype(theta.dtype) if use_bias_correction else 1.0
            dlr = d * lr * bc
            np.subtract(x0, theta, out=buf)
            delta = (d / d0_) * dlr * (g * buf).sum(axis=1, keepdims=True)
            m *= b1
            m += (d * r1) * g
            v *= b2
            np.multiply(g, g, out=buf)
            v += (d * d * r2) * buf
            s *= b3
            s += ((d / d0_) * (d if safeguard_warmup else dlr)) * g
            moved, new_d, new_max, total = _estimate_d(state, delta, b3, d0_, coef, growth)
            np.sqrt(v, out=out)
            np.add(out, new_d * eps_, out=out)
            np.divide(m, out, out=out)
            if decoupled:
                np.add(out, np.multiply(theta, wd, out=buf), out=out)
            np.multiply(out, np.where(moved, d * bc, 0.0), out=out)
            state = ProdigyState(k + moved, new_d, new_max, total, x0, s, m, v)
            return out, state

        return update

    return Optimizer(lambda theta: _start(theta, d0), bind, lr, wants=("lr",))


prodigy.reference_forms = (modern_reference.prodigy,)  # what `optbench list optimizers prodigy` shows
