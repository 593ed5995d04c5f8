"""Lion (Chen et al. 2023): the sign of an interpolated momentum; written as its formula, its own reference form."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optbench.optim import OPTIMIZERS
from optbench.optimizer import Optimizer, _coef, _rest
from optbench.registry import NonNegative, Positive, Unit


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
