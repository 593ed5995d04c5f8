"""Rules that wrap another rule: Lookahead (Zhang et al. 2019) and SAM (Foret et al. 2021).

    optimizer: {name: lookahead, lr: 0.001, k: 5, alpha: 0.5, inner: {name: adam, beta2: 0.99}}

The inner rule is a section of the optimizer registry (validated at optimizer.inner.*, a name or a mapping);
its learning rate is the wrapper's lr, so an lr schedule or a sweep over optimizer.lr reaches it. A wrapper
takes from the loop what it needs and what its inner rule wants (Optimizer.wants), and evaluates where its
inner rule does. As pytorch_optimizer 4.1.0's Lookahead and SAM compute them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

import numpy as np

from optbench import modern_reference
from optbench.optim import OPTIMIZERS, build, is_closure_optimizer
from optbench.optimizer import Optimizer, _coef
from optbench.params import Layout
from optbench.registry import NonNegative, Nested, Positive, PositiveInt, Unit


def _refuse(name: str) -> str | None:
    return "re-evaluates the function itself (a closure optimizer); wrap a first-order rule" if is_closure_optimizer(name) else None


Inner = Annotated[dict[str, Any] | str, Nested(owned=("lr",), refuse=_refuse)]


def _inner(section: dict | str, lr, layout) -> Optimizer:
    """The inner rule of a wrapper (a name or a section, validated or not), built with the wrapper's lr and the layout."""
    sec = {"name": section} if isinstance(section, str) else dict(section)
    name = sec.pop("name")
    options = {k: v for k, v in OPTIMIZERS.validate(name, sec, "optimizer.inner").items() if k != "lr"}
    return build(name, {**options, "lr": lr}, layout=layout)


def _pick(kw: dict, wants: tuple[str, ...]) -> dict:
    return {k: kw[k] for k in wants if k in kw}


class LookaheadState(NamedTuple):
    t: int  # inner steps so far: a replica synchronizes when t % k == 0 (pytorch_optimizer's counter, reset at k)
    slow: np.ndarray  # (R, P) the slow weights
    slow_v: np.ndarray | None  # (R, P) the slow momentum (pullback_momentum: pullback, on a rule with a velocity v)
    inner: tuple  # the inner rule's state


@OPTIMIZERS.register()
def lookahead(
    *,
    lr: Positive = 1e-3,
    k: PositiveInt = 5,
    alpha: Unit = 0.5,
    pullback_momentum: Literal["none", "reset", "pullback"] = "none",
    inner: Inner = "adam",
    layout: Layout | None = None,
) -> Optimizer:
    """Lookahead: k steps of the inner rule (fast weights), then theta = slow = slow + alpha*(theta - slow).

    The synchronizing step's direction is (theta - theta_new)/lr_t, so the loop's theta -= lr_t*direction lands
    there. pullback_momentum acts on an inner velocity v (momentum, nesterov): reset zeroes it at each
    synchronization, pullback interpolates it as the weights; on other rules it does nothing, as in pytorch_optimizer.
    """
    base = _inner(inner, lr, layout)
    pull = pullback_momentum

    def init(theta):
        s = base.init(theta)
        has_v = "v" in getattr(s, "_fields", ())
        return LookaheadState(0, theta.copy(),
                              np.zeros_like(theta) if pull == "pullback" and has_v else None, s)

    def bind(theta):
        k_, alpha_ = _coef(k, theta), _coef(alpha, theta)
        inner_update = base.bind(theta)
        d, buf = np.empty_like(theta), np.empty_like(theta)

        def update(g, state, theta, lr, **kw):
            t, slow, slow_v, s = state
            step, s = inner_update(g, s, theta, **_pick(dict(kw, lr=lr), base.wants))
            t += 1
            sync = np.broadcast_to(t % k_ == 0, (theta.shape[0], 1))
            if not sync.any():
                return step, LookaheadState(t, slow, slow_v, s)
            # theta_new = lerp(fast, slow, 1 - alpha) with fast = theta - lr*step, as pytorch_optimizer's update
            np.multiply(step, lr, out=buf)
            np.subtract(theta, buf, out=buf)  # the fast weights after this step
            np.subtract(slow, buf, out=d)
            np.multiply(d, 1.0 - alpha_, out=d)
            np.add(buf, d, out=buf)  # theta_new
            np.copyto(slow, buf, where=sync)
            np.subtract(theta, buf, out=d)
            np.divide(d, lr, out=d)
            np.copyto(d, step, where=~sync)
            if "v" in getattr(s, "_fields", ()):
                if pull == "reset":
                    np.copyto(s.v, 0.0, where=sync)
                elif pull == "pullback":
                    new_v = s.v + (1.0 - alpha_) * (slow_v - s.v)
                    np.copyto(s.v, new_v, where=sync)
                    np.copyto(slow_v, new_v, where=sync)
            return d, LookaheadState(t, slow, slow_v, s)

        return update

    return Optimizer(init, bind, lr, wants=tuple(dict.fromkeys(("lr", *base.wants))), evaluate_at=base.evaluate_at and (
        lambda state, theta, out: base.evaluate_at(state.inner, theta, out)))


class SAMState(NamedTuple):
    inner: tuple  # the inner rule's state


@OPTIMIZERS.register()
def sam(
    *,
    lr: Positive = 0.01,
    rho: NonNegative = 0.05,
    adaptive: bool = False,
    perturb_eps: NonNegative = 1e-12,
    inner: Inner = "sgd",
    layout: Layout | None = None,
) -> Optimizer:
    """SAM: e = rho*T^2 g/(|T g| + perturb_eps); g' = grad f(theta + e) on the same batch; the inner rule steps with g'.

    T = |theta| with adaptive (ASAM, Kwon et al. 2021), else 1; |.| is the norm over all of a replica's
    parameters. The second gradient comes from the loop (Optimizer.wants "regrad"); theta is restored exactly.
    """
    base = _inner(inner, lr, layout)

    def bind(theta):
        rho_, eps_ = _coef(rho, theta), _coef(perturb_eps, theta)
        inner_update = base.bind(theta)
        e, old = np.empty_like(theta), np.empty_like(theta)

        def update(g, state, theta, regrad, **kw):
            if adaptive:
                np.abs(theta, out=e)
                np.multiply(e, g, out=e)
            else:
                e[...] = g
            norm = np.sqrt((e * e).sum(axis=1, keepdims=True)) + eps_
            if adaptive:
                np.multiply(e, np.abs(theta), out=e)  # T^2 g = |theta| * (|theta| g)
            np.multiply(e, rho_ / norm, out=e)
            np.copyto(old, theta)
            np.add(theta, e, out=theta)
            regrad()  # g is now the gradient at theta + e
            np.copyto(theta, old)
            step, s = inner_update(g, state.inner, theta, **_pick(kw, base.wants))
            return step, SAMState(s)

        return update

    return Optimizer(lambda theta: SAMState(base.init(theta)), bind, lr, wants=tuple(dict.fromkeys(("regrad", *base.wants))),
                     evaluate_at=base.evaluate_at and (lambda state, theta, out: base.evaluate_at(state.inner, theta, out)))


lookahead.reference_forms = (modern_reference.lookahead,)  # what `optbench list optimizers lookahead` shows
sam.reference_forms = (modern_reference.sam,)  # what `optbench list optimizers sam` shows
