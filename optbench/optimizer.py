"""The first-order rule protocol and the pieces rules are built from, on the flat (R, P) parameter buffer.

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
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

Hyper = float | np.ndarray  # a Python float or a per-replica (R, 1) array
Update = Callable[..., tuple[np.ndarray, tuple]]  # (g, state, theta[, mu=]) -> (direction, state)


class Optimizer(NamedTuple):
    """A first-order rule: state = init(theta); update = bind(theta); direction, state = update(g, state, theta)."""

    init: Callable[[np.ndarray], tuple]
    bind: Callable[[np.ndarray], Update]
    lr: Hyper  # base learning rate, applied by the loop
    # what the update takes from the loop besides (g, state, theta): "lr", this step's (R, 1) learning rate;
    # "regrad", a function that recomputes g in place at theta's current contents on the same batch
    wants: tuple[str, ...] = ()
    # (state, theta, out): writes the point the metrics are taken at into out, when it is not theta (schedule-free's x)
    evaluate_at: Callable[[tuple, np.ndarray, np.ndarray], None] | None = None


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


def _f64(value: Hyper) -> Hyper:
    """A hyperparameter for per-step coefficients computed in float64: a Python float, or a float64 (R, 1) array.

    Python floats where they can be: NumPy's scalar arithmetic costs a microsecond an operation.
    """
    return float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)


def _on(value: Hyper) -> bool:
    """Whether an optional term (weight decay, dampening, momentum) is switched on: a per-replica array always
    (some replicas may use it), a float unless it is 0. Off, a rule runs its plain form's arithmetic unchanged."""
    return np.ndim(value) > 0 or value != 0.0


def _with_decay(g: np.ndarray, theta: np.ndarray, wd: Hyper, buf: np.ndarray) -> np.ndarray:
    """g + wd*theta into buf: torch's coupled weight decay, the gradient of 0.5*wd*|theta|^2 on every parameter.

    Biases and gains included, as torch.optim does for one parameter group; regularization.l2 is the
    cost's own term (weights only) and shows in the cost, this one does not.
    """
    np.multiply(theta, wd, out=buf)
    return np.add(g, buf, out=buf)


def _ema(avg: np.ndarray, x: np.ndarray, rest: Hyper, buf: np.ndarray) -> None:
    """avg = b*avg + (1-b)*x in place, computed as avg += (1-b)*(x - avg) (torch's lerp); rest = 1-b.

    One multiply by the coefficient instead of two: on small arrays a multiply by a scalar or a
    per-replica column costs well over a plain add, and no digits cancel when b is close to 1.
    buf is scratch and may be x itself.
    """
    np.subtract(x, avg, out=buf)
    np.multiply(buf, rest, out=buf)
    np.add(avg, buf, out=avg)

