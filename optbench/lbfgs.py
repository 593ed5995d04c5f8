"""L-BFGS: a closure optimizer on one replica's 1-D parameter vector, as torch.optim.LBFGS does it.

    state = opt.init(theta)                       # theta: (P,), updated in place
    loss, state = opt.step(theta, closure, state) # closure(theta) -> (loss, grad), called with theta itself

It re-evaluates the function inside a step, so it takes another protocol than the first-order rules
(optimizer.py): the registry entry says so (`needs_closure = True` on the factory, read by
optim.is_closure_optimizer), and the engine, the config checks and the grouping ask that, never the name.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, NamedTuple

import numpy as np

from optbench.optim import OPTIMIZERS
from optbench.registry import NonNegative, Positive, PositiveInt


Closure = Callable[[np.ndarray], tuple[float, np.ndarray]]


class LBFGSState(NamedTuple):
    """What one replica's L-BFGS carries from step to step (the history lists grow and shrink in place)."""

    func_evals: int  # over all steps
    n_iter: int  # over all steps
    d: np.ndarray | None  # last search direction
    t: float | None  # last step size along d
    s: list  # parameter changes, oldest first
    y: list  # gradient changes, oldest first
    rho: list  # 1 / (y . s)
    h_diag: float  # scale of the initial inverse Hessian, (y . s) / (y . y)
    prev_grad: np.ndarray | None
    prev_loss: float | None


class LBFGS(NamedTuple):
    """A closure optimizer on one replica: state = init(theta); loss, state = step(theta, closure, state).

    theta is 1-D and updated in place; closure(theta) -> (loss, grad) evaluates the function at the
    current contents of theta (it is always called with that same array, so views into it stay valid).
    step returns the loss at theta as it was on entry, like torch.optim.LBFGS.step.
    """

    init: Callable[[np.ndarray], LBFGSState]
    step: Callable[[np.ndarray, Closure, LBFGSState], tuple[float, LBFGSState]]
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
    bracket, done, ls_iter = _bracket(phi, t, d, f, g, gtd, max_ls, c1, c2)
    lo, ls_iter = (0, ls_iter) if done else _zoom(phi, bracket, ls_iter, d, f, gtd, max_ls, c1, c2, tolerance_change)
    t, f_new, g_new, _ = bracket[lo]
    return f_new, g_new, t, ls_iter + 1  # one evaluation before the first iteration, one in each


def _bracket(phi, t, d, f, g, gtd, max_ls, c1, c2):
    """Extrapolate t until [t_prev, t] brackets a strong-Wolfe step; returns (bracket, done, iterations).

    A point is [t, f, g, g.d]; done: the bracket is the one acceptable point found. Out of evaluations: the
    bracket from 0 to the last trial, without slopes.
    """
    f_new, g_new = phi(t)
    gtd_new = float(g_new @ d)
    ls_iter = 0
    # points are replaced, never mutated, so two slots may share one
    prev = [0.0, f, g, gtd]
    while ls_iter < max_ls:
        new = [t, f_new, g_new, gtd_new]
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= prev[1]):
            return [prev, new], False, ls_iter  # too far: the acceptable step lies between
        if abs(gtd_new) <= -c2 * gtd:
            return [new], True, ls_iter
        if gtd_new >= 0:
            return [prev, new], False, ls_iter  # went past a minimum along d
        # still descending: extrapolate, at least 1% beyond t and at most 10 t
        t = _cubic_min(prev[0], prev[1], prev[3], t, f_new, gtd_new, bounds=(t + 0.01 * (t - prev[0]), 10.0 * t))
        prev = new
        f_new, g_new = phi(t)
        gtd_new = float(g_new @ d)
        ls_iter += 1
    return [[0.0, f, g, None], [t, f_new, g_new, None]], False, ls_iter  # out of evaluations while extrapolating


def _zoom(phi, bracket, ls_iter, d, f, gtd, max_ls, c1, c2, tolerance_change):
    """Shrink the bracket [a, b] by cubic interpolation until a point meets the strong Wolfe conditions; (lo, iterations).

    bracket (two points) is updated in place; bracket[lo] is its lower end, the step the search returns.
    """
    d_norm = float(np.abs(d).max())
    lo, hi = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    insufficient = done = False
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
    return lo, ls_iter


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


def _direction(g, prev_grad, d, t, state: LBFGSState, h_diag: float, history_size: int, first: bool):
    """d = -H g after keeping the pair (s, y) = (t*d, g - prev_grad) when y.s > 1e-10; returns (d, h_diag = y.s / y.y).

    The first iteration ever starts the history afresh: d = -g. state's history lists change in place.
    """
    s_hist, y_hist, rho = state.s, state.y, state.rho
    if first:
        s_hist.clear()
        y_hist.clear()
        rho.clear()
        return np.negative(g), 1.0
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
    return _two_loop(g, s_hist, y_hist, rho, h_diag), h_diag


class _Settings(NamedTuple):
    """The factory's options as a step uses them."""

    lr: float
    max_iter: int
    max_evals: int
    history_size: int
    tolerance_grad: float
    tolerance_change: float
    wolfe: bool  # strong-Wolfe line search, else the fixed step lr


def _step(o: _Settings, theta: np.ndarray, closure: Closure, state: LBFGSState) -> tuple[float, LBFGSState]:
    """One torch.optim.LBFGS.step(closure): iterations of d = -H g; theta += t*d, until a stopping test holds."""

    def evaluate():
        loss, grad = closure(theta)
        # a copy: the closure may hand back a buffer it overwrites at the next call
        return float(loss), np.array(grad, dtype=theta.dtype).reshape(theta.shape)

    loss, g = evaluate()
    entry_loss, evals, func_evals = loss, 1, state.func_evals + 1
    if np.abs(g).max() <= o.tolerance_grad:
        return entry_loss, state._replace(func_evals=func_evals)
    d, t, h_diag, total_iter = state.d, state.t, state.h_diag, state.n_iter
    prev_grad, prev_loss = state.prev_grad, state.prev_loss
    x0 = np.empty_like(theta)  # scratch: the line search's starting point

    def phi(t_trial):
        np.multiply(d, t_trial, out=theta)
        np.add(theta, x0, out=theta)
        return evaluate()

    n_iter = 0
    while n_iter < o.max_iter:
        n_iter += 1
        total_iter += 1
        d, h_diag = _direction(g, prev_grad, d, t, state, h_diag, o.history_size, total_iter == 1)
        if prev_grad is None:
            prev_grad = np.empty_like(g)
        prev_grad[...] = g
        prev_loss = loss
        # the very first step is cautious: the scale of g says nothing about the curvature yet
        t = min(1.0, 1.0 / float(np.abs(g).sum())) * o.lr if total_iter == 1 else o.lr
        gtd = float(g @ d)
        if gtd > -o.tolerance_change:  # not a descent direction (any more)
            break
        if o.wolfe:
            x0[...] = theta
            # the search's own bracket tolerance stays at 1e-9 whatever tolerance_change is, as in torch
            loss, g, t, ls_evals = _strong_wolfe(phi, t, d, loss, g, gtd, o.max_evals - evals)
            np.multiply(d, t, out=theta)
            np.add(theta, x0, out=theta)
        else:
            theta += t * d
            ls_evals = 0
            if n_iter != o.max_iter:  # the last iteration's loss is evaluated by the next step
                loss, g = evaluate()
                ls_evals = 1
        evals += ls_evals
        func_evals += ls_evals
        if n_iter == o.max_iter or evals >= o.max_evals or np.abs(g).max() <= o.tolerance_grad:
            break
        if abs(t) * float(np.abs(d).max()) <= o.tolerance_change or abs(loss - prev_loss) < o.tolerance_change:
            break  # no progress
    return entry_loss, LBFGSState(func_evals, total_iter, d, t, state.s, state.y, state.rho, h_diag, prev_grad, prev_loss)


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
    o = _Settings(lr, max_iter, max_evals, history_size, tolerance_grad, tolerance_change, line_search == "strong_wolfe")

    def init(theta):
        return LBFGSState(func_evals=0, n_iter=0, d=None, t=None, s=[], y=[], rho=[], h_diag=1.0, prev_grad=None,
                          prev_loss=None)

    return LBFGS(init, lambda theta, closure, state: _step(o, theta, closure, state), lr)


lbfgs.needs_closure = True  # the registry protocol: step(theta, closure, state) instead of update(g, state, theta)
