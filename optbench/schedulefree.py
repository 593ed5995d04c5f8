"""Schedule-Free SGD and AdamW (Defazio et al. 2024): gradients at y, the model evaluated at the average x.

    z = z - lr*gn;  x = (1-c)*x + c*z;  y = b*x + (1-b)*z;  c = w_t / sum(w),  w_t = (t**r) * max_lr**weight_lr_power

theta holds y, as in the `schedulefree` package (1.4.1, SGDScheduleFree and AdamWScheduleFree, its default
forms): the state keeps z, x is recovered as lerp(y, z, 1 - 1/b) (its .eval()), and the engine evaluates and
saves the model there (Optimizer.evaluate_at). gn is g (SGD) or g / (sqrt(v/(1-b2**t)) + eps) (AdamW), plus
weight_decay*y. The weights use the step's learning rate, so the update takes `lr=` from the loop.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optbench import modern_reference
from optbench.optim import OPTIMIZERS
from optbench.optimizer import Optimizer, _coef
from optbench.registry import NonNegative, NonNegativeInt, OpenUnit, Positive, Unit


class ScheduleFreeState(NamedTuple):
    k: int  # steps so far
    lr_max: np.ndarray  # (R, 1) the largest (warmed-up) learning rate so far
    weight_sum: np.ndarray  # (R, 1) sum of the averaging weights
    z: np.ndarray  # (R, P) the base (SGD / Adam) sequence
    v: np.ndarray | None  # (R, P) AdamW's EMA of g**2 (None for SGD)


def _schedule_free(lr, b, weight_decay, warmup_steps, r, weight_lr_power, beta2=None, eps=None) -> Optimizer:
    """The shared rule: direction = c*(y - z)/lr_t + sched*(1 - b*(1-c))*gn, so that y - lr_t*direction is the new y."""
    adam = beta2 is not None

    def init(theta):
        col = lambda v: np.full((theta.shape[0], 1), v, dtype=theta.dtype)  # noqa: E731
        return ScheduleFreeState(0, col(-1.0), col(0.0), theta.copy(), np.zeros_like(theta) if adam else None)

    def bind(theta):
        b_, wd, p_, r_, warm = (_coef(x, theta) for x in (b, weight_decay, weight_lr_power, r, warmup_steps))
        if adam:
            b2, eps_ = _coef(beta2, theta), _coef(eps, theta)
            rest2 = _coef(1.0 - np.asarray(beta2, dtype=np.float64), theta)
        decay = np.ndim(weight_decay) > 0 or weight_decay != 0.0
        gn, d = np.empty_like(theta), np.empty_like(theta)

        def update(g, state, theta, lr):
            k, lr_max, weight_sum, z, v = state
            if np.ndim(warm) == 0:
                sched = (k + 1) / warm if k < warm else 1.0
            else:  # per replica: (R, 1)
                sched = np.where(k < warm, (k + 1) / np.maximum(warm, 1.0), 1.0).astype(theta.dtype)
            lr_s = lr * sched
            lr_max = np.maximum(lr_s, lr_max)
            weight = ((k + 1) ** r_) * lr_max**p_
            weight_sum = weight_sum + weight
            c = weight / weight_sum
            if adam:
                v *= b2
                np.multiply(g, g, out=gn)
                np.multiply(gn, rest2, out=gn)
                v += gn
                np.divide(v, 1.0 - b2 ** (k + 1), out=gn)
                np.sqrt(gn, out=gn)
                np.add(gn, eps_, out=gn)
                np.divide(g, gn, out=gn)
            else:
                gn[...] = g
            if decay:
                np.add(gn, np.multiply(theta, wd, out=d), out=gn)
            np.subtract(theta, z, out=d)
            np.multiply(d, c / lr, out=d)
            np.add(d, (sched * (1.0 - b_ * (1.0 - c))) * gn, out=d)
            z -= lr_s * gn
            return d, ScheduleFreeState(k + 1, lr_max, weight_sum, z, v)

        return update

    def evaluate_at(state, theta, out):
        """x = y + (1 - 1/b)*(z - y): the averaged point (the package's .eval())."""
        np.subtract(state.z, theta, out=out)
        out *= _coef(1.0 - 1.0 / np.asarray(b, dtype=np.float64), theta)
        out += theta

    return Optimizer(init, bind, lr, wants=("lr",), evaluate_at=evaluate_at)


@OPTIMIZERS.register()
def schedule_free_sgd(
    *,
    lr: Positive = 1.0,
    momentum: OpenUnit = 0.9,
    weight_decay: NonNegative = 0.0,
    warmup_steps: NonNegativeInt = 0,
    r: NonNegative = 0.0,
    weight_lr_power: NonNegative = 2.0,
) -> Optimizer:
    """Schedule-Free SGD: z = z - lr*g; x = (1-c)*x + c*z; y = b*x + (1-b)*z; g taken at y, the model is x (b = momentum).

    c = w_t/sum(w), w_t = t**r * max_lr**weight_lr_power (a uniform average at constant lr), lr warmed up
    linearly over warmup_steps steps; no lr schedule needed (that is the point: leave schedule constant).
    """
    return _schedule_free(lr, momentum, weight_decay, warmup_steps, r, weight_lr_power)


@OPTIMIZERS.register()
def schedule_free_adamw(
    *,
    lr: Positive = 0.0025,
    beta1: OpenUnit = 0.9,
    beta2: Unit = 0.999,
    eps: Positive = 1e-8,
    weight_decay: NonNegative = 0.0,
    warmup_steps: NonNegativeInt = 0,
    r: NonNegative = 0.0,
    weight_lr_power: NonNegative = 2.0,
) -> Optimizer:
    """Schedule-Free AdamW: as schedule_free_sgd with z = z - lr*(g/(sqrt(v/(1-b2**t)) + eps) + wd*y), b = beta1.

    v = b2*v + (1-b2)*g**2 (no first moment: the x/y interpolation is the momentum).
    """
    return _schedule_free(lr, beta1, weight_decay, warmup_steps, r, weight_lr_power, beta2, eps)


schedule_free_sgd.reference_forms = (modern_reference.schedule_free,)  # what `optbench list optimizers schedule_free_sgd` shows
schedule_free_adamw.reference_forms = (modern_reference.schedule_free,)  # what `optbench list optimizers schedule_free_adamw` shows
