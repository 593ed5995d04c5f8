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

import inspect
from typing import Callable, Literal, NamedTuple

import numpy as np

from optbench import lbfgs as _lbfgs
from optbench.errors import OptbenchError
from optbench.registry import NonNegative, Positive, Registry, Unit, format_value

# the modern rules live in their own modules, which use the pieces below: they register at the first lookup;
# plugins (optbench/plugins.py): a user's `package.module:factory` or an installed entry point
OPTIMIZERS = Registry("optimizer", providers=("optbench.muon", "optbench.prodigy", "optbench.schedulefree",
                                              "optbench.wrappers"), plugins="optbench.optimizers", required=("lr",))

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


# ---- states: what each rule carries from step to step --------------------------------------------


class Nothing(NamedTuple):
    """Gradient descent carries nothing."""


class Velocity(NamedTuple):
    v: np.ndarray  # (R, P) momentum buffer


class DampedVelocity(NamedTuple):
    t: int  # updates so far: torch's first update sets v = g, undamped
    v: np.ndarray  # (R, P) momentum buffer


class Cache(NamedTuple):
    cache: np.ndarray  # (R, P) sum (AdaGrad) or moving average (RMSProp) of g**2


class RMSPropState(NamedTuple):
    cache: np.ndarray  # moving average of g**2
    g_avg: np.ndarray | None  # centered: moving average of g (None otherwise)
    v: np.ndarray | None  # momentum: buffer of the steps, v = momentum*v + g/denominator (None otherwise)


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


# ---- the rules -----------------------------------------------------------------------------------


@OPTIMIZERS.register(aliases=("gd",))
def sgd(*, lr: Positive = 0.01, weight_decay: NonNegative = 0.0) -> Optimizer:
    """Gradient descent: direction = g + weight_decay*theta (full batch or mini-batch, as the data loader decides).

    torch's SGD without momentum; weight_decay is its coupled decay (on every parameter, biases included).
    """

    def bind(theta):
        if not _on(weight_decay):

            def update(g, state, theta):
                return g, state

            return update
        wd, d = _coef(weight_decay, theta), np.empty_like(theta)

        def update_decayed(g, state, theta):
            return _with_decay(g, theta, wd, d), state

        return update_decayed

    return Optimizer(lambda theta: Nothing(), bind, lr)


@OPTIMIZERS.register()
def momentum(
    *,
    lr: Positive = 0.01,
    mu: Unit = 0.9,
    form: Literal["classic", "ema"] = "classic",
    dampening: Unit = 0.0,
    weight_decay: NonNegative = 0.0,
) -> Optimizer:
    """Momentum: classic v = mu*v + (1-dampening)*g, ema v = mu*v + (1-mu)*g; direction = v.

    classic is PyTorch's SGD(momentum=mu, dampening, weight_decay), its first v = g undamped (torch starts
    the buffer at g); at constant lr and no dampening it is CS231n's `v = mu*v - lr*dx; x += v` with
    v_cs231n = -lr*v. ema is deeplearning.ai's `v = beta*v + (1-beta)*dx; x -= lr*v` (beta = mu), from
    v = 0, whose steps are (1-mu) times smaller, so at equal lr it moves about as far as plain GD; its
    (1-mu) is its own dampening, so it takes none. weight_decay (both forms): g + weight_decay*theta in
    place of g, torch's coupled decay.
    """
    if form == "ema" and _on(dampening):
        raise OptbenchError(f"optimizer.dampening: {format_value(dampening)} is invalid with form: ema, whose (1-mu) "
                            "is its dampening (accepted: 0, or form: classic)")

    def bind(theta):
        mu_cfg = _replica_column(mu, theta)
        decayed, wd = _on(weight_decay), _coef(weight_decay, theta)
        g_wd = np.empty_like(theta) if decayed else None  # g + wd*theta

        def update_classic(g, state, theta, mu=None):
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
            v = state.v
            np.multiply(v, mu_cfg if mu is None else mu, out=v)
            np.add(v, g, out=v)
            return v, state

        rest, buf = np.empty_like(mu_cfg), np.empty_like(theta)
        rest_damped = _rest(dampening, theta)
        # torch keeps no buffer where mu = 0: its step is g, undamped, there
        rest_cfg = np.where(mu_cfg == 0, np.ones_like(mu_cfg), rest_damped).astype(theta.dtype)

        def update_damped(g, state, theta, mu=None):
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
            t, v = state
            mu_ = mu_cfg if mu is None else mu
            if t == 0:
                np.copyto(v, g)  # torch's buffer starts at g, undamped
            else:
                if mu is not None:  # a momentum schedule's mu: where it is 0, no dampening, as for rest_cfg
                    np.copyto(rest, rest_damped)
                    np.copyto(rest, 1.0, where=mu == 0)
                np.multiply(v, mu_, out=v)
                np.add(v, np.multiply(g, rest_cfg if mu is None else rest, out=buf), out=v)
            return v, DampedVelocity(t + 1, v)

        def update_ema(g, state, theta, mu=None):
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
            np.subtract(1.0, mu_cfg if mu is None else mu, out=rest)  # in theta's dtype, from mu in theta's dtype
            _ema(state.v, g, rest, buf)
            return state.v, state

        if form == "ema":
            return update_ema
        return update_damped if _on(dampening) else update_classic

    def init(theta):
        return DampedVelocity(0, np.zeros_like(theta)) if form == "classic" and _on(dampening) else Velocity(np.zeros_like(theta))

    return Optimizer(init, bind, lr)


@OPTIMIZERS.register()
def nesterov(*, lr: Positive = 0.01, mu: Unit = 0.9, weight_decay: NonNegative = 0.0) -> Optimizer:
    """Nesterov momentum: v = mu*v + g; direction = g + mu*v.

    PyTorch's SGD(momentum=mu, nesterov=True, weight_decay) (which allows no dampening); weight_decay puts
    g + weight_decay*theta in place of g. At constant lr it is CS231n's look-ahead form
    `v = mu*v - lr*dx(x + mu*v); x += v` tracked at the look-ahead point x + mu*v, i.e. the notes'
    `v_prev = v; v = mu*v - lr*dx; x += -mu*v_prev + (1+mu)*v`.
    """

    def bind(theta):
        mu_cfg, d = _replica_column(mu, theta), np.empty_like(theta)
        decayed, wd = _on(weight_decay), _coef(weight_decay, theta)
        g_wd = np.empty_like(theta) if decayed else None  # g + wd*theta

        def update(g, state, theta, mu=None):
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
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
def rmsprop(
    *,
    lr: Positive = 0.01,
    decay_rate: Unit = 0.99,
    eps: Positive = 1e-8,
    momentum: Unit = 0.0,
    centered: bool = False,
    weight_decay: NonNegative = 0.0,
) -> Optimizer:
    """RMSProp: cache = d*cache + (1-d)*g**2; direction = g / (sqrt(cache) + eps) (torch's alpha = d).

    torch.optim.RMSprop's options: centered keeps g_avg = d*g_avg + (1-d)*g and divides by
    sqrt(cache - g_avg**2) + eps instead (Graves 2013); momentum > 0 keeps v = momentum*v + g/(...) and
    steps along v; weight_decay puts g + weight_decay*theta in place of g (coupled, as torch).
    """
    plain = not (centered or _on(momentum) or _on(weight_decay))

    def init(theta):
        z = lambda on: np.zeros_like(theta) if on else None  # noqa: E731
        return Cache(np.zeros_like(theta)) if plain else RMSPropState(z(True), z(centered), z(_on(momentum)))

    def bind(theta):
        rest, eps_, d = _rest(decay_rate, theta), _coef(eps, theta), np.empty_like(theta)

        def update(g, state, theta):
            _ema(state.cache, np.multiply(g, g, out=d), rest, d)
            return _over_root(g, state.cache, eps_, d), state

        if plain:
            return update
        decayed, wd, mom, buf = _on(weight_decay), _coef(weight_decay, theta), _coef(momentum, theta), np.empty_like(theta)
        g_wd = np.empty_like(theta) if decayed else None

        def update_full(g, state, theta):
            g = _with_decay(g, theta, wd, g_wd) if decayed else g
            cache, g_avg, v = state
            _ema(cache, np.multiply(g, g, out=d), rest, d)
            if centered:
                _ema(g_avg, g, rest, buf)
                np.multiply(g_avg, g_avg, out=buf)
                np.subtract(cache, buf, out=buf)
                _over_root(g, buf, eps_, d)
            else:
                _over_root(g, cache, eps_, d)
            if v is None:
                return d, state
            np.multiply(v, mom, out=v)
            np.add(v, d, out=v)
            return v, state

        return update_full

    return Optimizer(init, bind, lr)


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


def build(name: str, options: dict, *, layout=None):
    """OPTIMIZERS.build, handing `layout` (params.Layout: the blocks of theta's row) to the factories that take it."""
    takes = "layout" in inspect.signature(OPTIMIZERS.get(name)).parameters
    return OPTIMIZERS.build(name, options, **({"layout": layout} if takes else {}))


def takes_mu(name: str) -> bool:
    """True when `name`'s update takes `mu=` (its factory has a momentum coefficient mu): a momentum schedule applies."""
    return "mu" in OPTIMIZERS.params(name) and not is_closure_optimizer(name)
