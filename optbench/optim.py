"""Optimizers as init/update pairs on the flat (R, P) parameter buffer, ordered by increasing complexity.

    state = opt.init(theta)                             # theta: (R, P), float64 or float32
    direction, state = opt.update(grad, state, theta)   # the loop then does theta -= lr_t * direction

An update never applies the learning rate: the loop does, with `lr_t = opt.lr * schedule(step)`.
Every numeric hyperparameter is a Python float or a per-replica array of shape (R, 1); `init`
stores the ones an update needs in the state, cast to theta's dtype, next to preallocated
buffers that updates overwrite with `out=` (the state dict is mutated in place and returned).
The returned direction may be a state buffer or the gradient itself; callers must not write to it.

L-BFGS re-evaluates the function, so `lbfgs` builds an `LBFGS` (init/step with a closure on one
replica's 1-D vector) instead; `is_closure_optimizer(name)` tells the engine which kind it gets.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, NamedTuple

import numpy as np

from optbench.registry import NonNegative, Positive, PositiveInt, Registry, Unit

OPTIMIZERS = Registry("optimizer")

# The state key a momentum schedule overwrites in place (`state[key][...] = value`) between epochs.
MOMENTUM_KEY = {"momentum": "mu", "nesterov": "mu"}

Hyper = float | np.ndarray  # a Python float or a per-replica (R, 1) array


class Optimizer(NamedTuple):
    """An update rule: state = init(theta); direction, state = update(grad, state, theta)."""

    init: Callable[[np.ndarray], dict]
    update: Callable[[np.ndarray, dict, np.ndarray], tuple[np.ndarray, dict]]
    lr: Hyper  # base learning rate, applied by the loop


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


def _replica_column(value: Hyper, theta: np.ndarray) -> np.ndarray:
    """A writable (R, 1) array of theta's dtype holding `value`, for coefficients a schedule overwrites."""
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


@OPTIMIZERS.register(aliases=("gd",))
def sgd(*, lr: Positive = 0.01) -> Optimizer:
    """Gradient descent: direction = g (full batch or mini-batch, as the data loader decides)."""

    def init(theta):
        return {}

    def update(g, state, theta):
        return g, state

    return Optimizer(init, update, lr)


@OPTIMIZERS.register()
def momentum(*, lr: Positive = 0.01, mu: Unit = 0.9, form: Literal["classic", "ema"] = "classic") -> Optimizer:
    """Momentum: classic v = mu*v + g, ema v = mu*v + (1-mu)*g; direction = v.

    classic is PyTorch's SGD(momentum=mu); at constant lr it is CS231n's `v = mu*v - lr*dx; x += v`
    with v_cs231n = -lr*v. ema is deeplearning.ai's `v = beta*v + (1-beta)*dx; x -= lr*v` (beta = mu),
    whose steps are (1-mu) times smaller, so at equal lr it moves about as far as plain GD.
    `state["mu"]` (R, 1) is read at every update: a momentum schedule may overwrite it in place.
    """

    def init(theta):
        state = {"v": np.zeros_like(theta), "mu": _replica_column(mu, theta)}
        if form == "ema":
            state["1-mu"] = np.empty_like(state["mu"])
            state["buf"] = np.empty_like(theta)
        return state

    def update_classic(g, state, theta):
        v = state["v"]
        np.multiply(v, state["mu"], out=v)
        np.add(v, g, out=v)
        return v, state

    def update_ema(g, state, theta):
        v, rest = state["v"], state["1-mu"]
        np.subtract(1.0, state["mu"], out=rest)  # every time: a schedule may have changed mu
        _ema(v, g, rest, state["buf"])
        return v, state

    return Optimizer(init, update_classic if form == "classic" else update_ema, lr)


@OPTIMIZERS.register()
def nesterov(*, lr: Positive = 0.01, mu: Unit = 0.9) -> Optimizer:
    """Nesterov momentum: v = mu*v + g; direction = g + mu*v.

    PyTorch's SGD(nesterov=True). At constant lr it is CS231n's look-ahead form
    `v = mu*v - lr*dx(x + mu*v); x += v` tracked at the look-ahead point x + mu*v, i.e. the notes'
    `v_prev = v; v = mu*v - lr*dx; x += -mu*v_prev + (1+mu)*v`. `state["mu"]` as in momentum.
    """

    def init(theta):
        return {"v": np.zeros_like(theta), "d": np.empty_like(theta), "mu": _replica_column(mu, theta)}

    def update(g, state, theta):
        v, d, mu_ = state["v"], state["d"], state["mu"]
        np.multiply(v, mu_, out=v)
        np.add(v, g, out=v)
        np.multiply(v, mu_, out=d)
        np.add(d, g, out=d)
        return d, state

    return Optimizer(init, update, lr)


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
        return {"cache": cache, "d": np.empty_like(theta), "eps": _coef(eps, theta)}

    def update(g, state, theta):
        cache, d = state["cache"], state["d"]
        np.multiply(g, g, out=d)
        np.add(cache, d, out=cache)
        return _over_root(g, cache, state["eps"], d), state

    return Optimizer(init, update, lr)


@OPTIMIZERS.register()
def rmsprop(*, lr: Positive = 0.01, decay_rate: Unit = 0.99, eps: Positive = 1e-8) -> Optimizer:
    """RMSProp: cache = d*cache + (1-d)*g**2; direction = g / (sqrt(cache) + eps) (torch's alpha = d)."""

    def init(theta):
        return {
            "cache": np.zeros_like(theta),
            "d": np.empty_like(theta),
            "1-decay_rate": _coef(1.0 - np.asarray(decay_rate, dtype=np.float64), theta),
            "eps": _coef(eps, theta),
        }

    def update(g, state, theta):
        cache, d = state["cache"], state["d"]
        _ema(cache, np.multiply(g, g, out=d), state["1-decay_rate"], d)
        return _over_root(g, cache, state["eps"], d), state

    return Optimizer(init, update, lr)


@OPTIMIZERS.register()
def adadelta(*, lr: Positive = 1.0, rho: Unit = 0.95, eps: Positive = 1e-6) -> Optimizer:
    """Adadelta: v = rho*v + (1-rho)*g**2; d = sqrt((u + eps)/(v + eps))*g; u = rho*u + (1-rho)*d**2; direction = d.

    Zeiler (2012) as torch.optim.Adadelta does it: u, the running mean of squared updates, gives
    the step its units, so lr = 1 is the paper's rule and lr only scales it.
    """

    def init(theta):
        return {
            "v": np.zeros_like(theta),
            "u": np.zeros_like(theta),
            "d": np.empty_like(theta),
            "buf": np.empty_like(theta),
            "1-rho": _coef(1.0 - np.asarray(rho, dtype=np.float64), theta),
            "eps": _coef(eps, theta),
        }

    def update(g, state, theta):
        v, u, d, buf = state["v"], state["u"], state["d"], state["buf"]
        rest, eps_ = state["1-rho"], state["eps"]
        _ema(v, np.multiply(g, g, out=buf), rest, buf)
        # one sqrt of the ratio instead of a ratio of two sqrts: same value, one call fewer
        np.add(v, eps_, out=buf)
        np.add(u, eps_, out=d)
        np.divide(d, buf, out=d)
        np.sqrt(d, out=d)
        np.multiply(d, g, out=d)
        _ema(u, np.multiply(d, d, out=buf), rest, buf)
        return d, state

    return Optimizer(init, update, lr)


def _moments_state(theta: np.ndarray, beta1: Hyper, beta2: Hyper, eps: Hyper) -> dict:
    """State shared by the Adam family: step count, first/second moment sums, buffers and coefficients."""
    return {
        "t": 0,
        "M": np.zeros_like(theta),
        "V": np.zeros_like(theta),
        "d": np.empty_like(theta),
        "buf": np.empty_like(theta),
        "b1": _coef(beta1, theta),
        "b2": _coef(beta2, theta),
        "eps": _coef(eps, theta),
    }


def _update_moments(g: np.ndarray, state: dict) -> None:
    """M = b1*M + g; V = b2*V + g**2 in place: the moving averages without their (1-b) factors.

    m = (1-b1) M and v = (1-b2) V exactly, so the factors join the bias corrections as per-replica
    scalars and each moment costs one pass fewer.
    """
    M, V, buf = state["M"], state["V"], state["buf"]
    np.multiply(M, state["b1"], out=M)
    np.add(M, g, out=M)
    np.multiply(g, g, out=buf)
    np.multiply(V, state["b2"], out=V)
    np.add(V, buf, out=V)


def _adam(lr: Hyper, beta1: Hyper, beta2: Hyper, eps: Hyper, amsgrad: bool, weight_decay: Hyper) -> Optimizer:
    """Adam, AMSGrad and AdamW: one rule, the variants switched by amsgrad and weight_decay."""
    decoupled = np.ndim(weight_decay) > 0 or weight_decay != 0.0

    def init(theta):
        state = _moments_state(theta, beta1, beta2, eps)
        if amsgrad:
            state["V_max"] = np.zeros_like(theta)
        if decoupled:
            state["weight_decay"] = _coef(weight_decay, theta)
        return state

    def update(g, state, theta):
        t = state["t"] = state["t"] + 1
        _update_moments(g, state)
        V, d = state["V"], state["d"]
        if amsgrad:
            # torch's AMSGrad: the running max of the raw v (a constant multiple of V), bias-corrected afterwards
            np.maximum(state["V_max"], V, out=state["V_max"])
            V = state["V_max"]
        b1, b2 = state["b1"], state["b2"]
        # mhat / (sqrt(vhat) + eps) with mhat = M (1-b1)/(1-b1**t), vhat = V (1-b2)/(1-b2**t)
        #   = M / (sqrt(V) * k + eps / c),  c = (1-b1)/(1-b1**t),  k = sqrt((1-b2)/(1-b2**t)) / c
        c = (1.0 - b1) / (1.0 - b1**t)
        k = ((1.0 - b2) / (1.0 - b2**t)) ** 0.5 / c
        np.sqrt(V, out=d)
        np.multiply(d, k, out=d)
        np.add(d, state["eps"] / c, out=d)
        np.divide(state["M"], d, out=d)
        if decoupled:
            # decoupled decay: theta -= lr*(adam + wd*theta) is torch's theta *= 1 - lr*wd; theta -= lr*adam
            buf = state["buf"]
            np.multiply(theta, state["weight_decay"], out=buf)
            np.add(d, buf, out=d)
        return d, state

    return Optimizer(init, update, lr)


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
        state = _moments_state(theta, beta1, beta2, eps)
        state["psi"] = _coef(momentum_decay, theta)
        state["mu_product"] = 1.0
        state["buf2"] = np.empty_like(theta)
        return state

    def update(g, state, theta):
        t = state["t"] = state["t"] + 1
        b1, psi = state["b1"], state["psi"]
        mu_t = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product = state["mu_product"] = state["mu_product"] * mu_t
        _update_moments(g, state)
        d, buf, buf2 = state["d"], state["buf"], state["buf2"]
        # with m = (1-b1) M, v = (1-b2) V and s = sqrt(1-b2): sqrt(v/c2) + eps = (s sqrt(V) + eps sqrt(c2)) / sqrt(c2);
        # dividing numerator and denominator by s leaves one pass per array, as in adam
        sqrt_c2 = (1.0 - state["b2"] ** t) ** 0.5
        s = (1.0 - state["b2"]) ** 0.5
        np.sqrt(state["V"], out=buf)
        np.add(buf, state["eps"] * sqrt_c2 / s, out=buf)
        np.multiply(g, sqrt_c2 * (1.0 - mu_t) / (1.0 - mu_product) / s, out=d)
        np.multiply(state["M"], sqrt_c2 * (1.0 - b1) * mu_next / (1.0 - mu_product * mu_next) / s, out=buf2)
        np.add(d, buf2, out=d)
        np.divide(d, buf, out=d)
        return d, state

    return Optimizer(init, update, lr)


# ---------------------------------------------------------------------------------------------
# L-BFGS: a closure optimizer on one replica's 1-D parameter vector


Closure = Callable[[np.ndarray], tuple[float, np.ndarray]]


class LBFGS(NamedTuple):
    """A closure optimizer on one replica: state = init(theta); loss, state = step(theta, closure, state).

    theta is 1-D and updated in place; closure(theta) -> (loss, grad) evaluates the function at the
    current contents of theta (it is always called with that same array, so views into it stay valid).
    step returns the loss at theta as it was on entry, like torch.optim.LBFGS.step.
    """

    init: Callable[[np.ndarray], dict]
    step: Callable[[np.ndarray, Closure, dict], tuple[float, dict]]
    lr: float


def _cubic_min(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float, bounds=None) -> float:
    """Minimizer of the cubic through (x1, f1, slope g1) and (x2, f2, slope g2), clipped to bounds.

    Falls back to the middle of the bounds when the cubic has no minimum (minFunc's polyinterp).
    """
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    if x1 == x2:  # degenerate interval: nothing to interpolate
        return min(max(x1, lo), hi)
    d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2)
    d2_sq = d1 * d1 - g1 * g2
    if not d2_sq >= 0.0:  # also catches nan
        return (lo + hi) / 2.0
    d2 = math.sqrt(d2_sq)
    # written from the point farther right, so the formula is the same whichever order we got
    if x1 <= x2:
        den = g2 - g1 + 2.0 * d2
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / den) if den != 0.0 else (lo + hi) / 2.0
    else:
        den = g1 - g2 + 2.0 * d2
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / den) if den != 0.0 else (lo + hi) / 2.0
    return min(max(x, lo), hi)


def _strong_wolfe(phi, t, d, f, g, gtd, max_ls, c1=1e-4, c2=0.9, tolerance_change=1e-9):
    """A step t along d meeting the strong Wolfe conditions; returns (f, g, t, evaluations).

    phi(t) -> (f, g) at x0 + t*d. First extrapolate (cubic steps, at most x10) until an interval
    brackets an acceptable t, then zoom into it by cubic interpolation, as torch.optim.LBFGS
    (after minFunc) does, within max_ls evaluations.
      sufficient decrease: f(t) <= f + c1*t*gtd;   curvature: |g(t).d| <= c2*|gtd|
    """
    d_norm = float(np.abs(d).max())
    f_new, g_new = phi(t)
    gtd_new = float(g_new @ d)
    evals, ls_iter = 1, 0
    # a point is [t, f, g, g.d]; points are replaced, never mutated, so two slots may share one
    prev = [0.0, f, g, gtd]
    done = False
    bracket = None
    while ls_iter < max_ls:
        new = [t, f_new, g_new, gtd_new]
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= prev[1]):
            bracket = [prev, new]  # too far: the acceptable step lies between
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, done = [new], True
            break
        if gtd_new >= 0:
            bracket = [prev, new]  # went past a minimum along d
            break
        # still descending: extrapolate, at least 1% beyond t and at most 10 t
        t = _cubic_min(prev[0], prev[1], prev[3], t, f_new, gtd_new, bounds=(t + 0.01 * (t - prev[0]), 10.0 * t))
        prev = new
        f_new, g_new = phi(t)
        gtd_new = float(g_new @ d)
        evals += 1
        ls_iter += 1
    if ls_iter == max_ls:  # out of evaluations while extrapolating
        bracket = [[0.0, f, g, None], [t, f_new, g_new, None]]

    lo, hi = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    insufficient = False
    while not done and ls_iter < max_ls:
        a, b = bracket
        if abs(b[0] - a[0]) * d_norm < tolerance_change:
            break
        t = _cubic_min(a[0], a[1], a[3], b[0], b[1], b[3])
        left, right = min(a[0], b[0]), max(a[0], b[0])
        margin = 0.1 * (right - left)
        if min(right - t, t - left) < margin:
            # t hugs an end of the bracket: allowed once, but a second time in a row (or t on or
            # beyond an end) moves it 10% inside, so the bracket keeps shrinking
            if insufficient or t >= right or t <= left:
                t = right - margin if abs(t - right) < abs(t - left) else left + margin
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = phi(t)
        gtd_new = float(g_new @ d)
        evals += 1
        ls_iter += 1
        new = [t, f_new, g_new, gtd_new]
        if f_new > f + c1 * t * gtd or f_new >= bracket[lo][1]:
            bracket[hi] = new  # not low enough: new upper end
            lo, hi = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[hi][0] - bracket[lo][0]) >= 0:
                bracket[hi] = bracket[lo]  # the minimum lies on the other side of the new point
            bracket[lo] = new
    t, f_new, g_new, _ = bracket[lo]
    return f_new, g_new, t, evals


def _two_loop(g: np.ndarray, s_hist: list, y_hist: list, rho: list, h_diag: float) -> np.ndarray:
    """d = -H g, H the L-BFGS inverse-Hessian estimate from the (s, y) pairs and the scale h_diag."""
    q = np.negative(g)
    alpha = [0.0] * len(s_hist)
    for i in range(len(s_hist) - 1, -1, -1):  # newest pair first
        alpha[i] = float(s_hist[i] @ q) * rho[i]
        q -= alpha[i] * y_hist[i]
    q *= h_diag
    for i in range(len(s_hist)):  # oldest pair first
        beta = float(y_hist[i] @ q) * rho[i]
        q += (alpha[i] - beta) * s_hist[i]
    return q


@OPTIMIZERS.register()
def lbfgs(
    *,
    lr: Positive = 1.0,
    max_iter: PositiveInt = 20,
    max_eval: PositiveInt | None = None,
    history_size: PositiveInt = 100,
    tolerance_grad: NonNegative = 1e-7,
    tolerance_change: NonNegative = 1e-9,
    line_search: Literal["strong_wolfe", "none"] = "strong_wolfe",
) -> LBFGS:
    """L-BFGS: d = -H g (two-loop recursion over the last history_size steps); theta += t*d, t by line search.

    t comes from a strong-Wolfe line search, or is lr with line_search="none".
    One `step` is one torch.optim.LBFGS.step(closure): up to max_iter iterations and max_eval
    (default max_iter*5//4) function evaluations, stopping early when max|g| <= tolerance_grad or
    the step or the change in loss falls below tolerance_change; the history carries over steps.
    The first iteration ever scales its step by min(1, 1/sum|g|).
    """
    max_evals = max_iter * 5 // 4 if max_eval is None else max_eval
    wolfe = line_search == "strong_wolfe"

    def init(theta):
        return {
            "func_evals": 0,  # over all steps
            "n_iter": 0,  # over all steps
            "d": None,  # last search direction
            "t": None,  # last step size along d
            "s": [],  # parameter changes, oldest first
            "y": [],  # gradient changes, oldest first
            "rho": [],  # 1 / (y . s)
            "h_diag": 1.0,  # scale of the initial inverse Hessian, (y . s) / (y . y)
            "prev_grad": None,
            "prev_loss": None,
            "x0": np.empty_like(theta),  # the line search's starting point
        }

    def step(theta, closure, state):
        def evaluate():
            loss, grad = closure(theta)
            # a copy: the closure may hand back a buffer it overwrites at the next call
            return float(loss), np.array(grad, dtype=theta.dtype).reshape(theta.shape)

        loss, g = evaluate()
        entry_loss = loss
        evals = 1
        state["func_evals"] += 1
        if np.abs(g).max() <= tolerance_grad:
            return entry_loss, state

        d, t, h_diag = state["d"], state["t"], state["h_diag"]
        s_hist, y_hist, rho = state["s"], state["y"], state["rho"]
        prev_grad, prev_loss, x0 = state["prev_grad"], state["prev_loss"], state["x0"]

        def phi(t_trial):
            np.multiply(d, t_trial, out=theta)
            np.add(theta, x0, out=theta)
            return evaluate()

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = np.negative(g)
                s_hist.clear()
                y_hist.clear()
                rho.clear()
                h_diag = 1.0
            else:
                y = g - prev_grad
                s = d * t
                ys = float(y @ s)
                if ys > 1e-10:  # keep only pairs with positive curvature: H stays positive definite
                    if len(s_hist) == history_size:
                        del s_hist[0], y_hist[0], rho[0]
                    s_hist.append(s)
                    y_hist.append(y)
                    rho.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                d = _two_loop(g, s_hist, y_hist, rho, h_diag)
            if prev_grad is None:
                prev_grad = g.copy()
            else:
                prev_grad[...] = g
            prev_loss = loss

            # the very first step is cautious: the scale of g says nothing about the curvature yet
            t = min(1.0, 1.0 / float(np.abs(g).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = float(g @ d)
            if gtd > -tolerance_change:  # not a descent direction (any more)
                break

            if wolfe:
                x0[...] = theta
                # the search's own bracket tolerance stays at 1e-9 whatever tolerance_change is, as in torch
                loss, g, t, ls_evals = _strong_wolfe(phi, t, d, loss, g, gtd, max_evals - evals)
                np.multiply(d, t, out=theta)
                np.add(theta, x0, out=theta)
                opt_cond = np.abs(g).max() <= tolerance_grad
            else:
                theta += t * d
                ls_evals = 0
                if n_iter != max_iter:  # the last iteration's loss is evaluated by the next step
                    loss, g = evaluate()
                    ls_evals = 1
                    opt_cond = np.abs(g).max() <= tolerance_grad
            evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == max_iter or evals >= max_evals or opt_cond:
                break
            if abs(t) * float(np.abs(d).max()) <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break  # no progress

        state.update(d=d, t=t, h_diag=h_diag, prev_grad=prev_grad, prev_loss=prev_loss)
        return entry_loss, state

    return LBFGS(init, step, lr)


def is_closure_optimizer(name: str) -> bool:
    """True when the optimizer `name` builds an LBFGS (step with a closure) rather than an Optimizer."""
    return OPTIMIZERS.get(name) is lbfgs
