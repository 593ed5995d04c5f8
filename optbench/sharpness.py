"""Sharpness: the largest eigenvalue of the training cost's Hessian, per replica, by power iteration on
Hessian-vector products.

Plain nets (no batch/layer norm) take the exact product, Pearlmutter's R-operator: the forward pass pushed
along v (Zdot_l = V_l A_{l-1} + W_l Adot_{l-1}, Adot_l = f'(Z_l) Zdot_l), then the backward pass
differentiated along it (R{dZ} = l''(Z) Zdot at the output; R{dW} = R{dZ} A^T + dZ Adot^T;
R{dZ_{l-1}} = f' (V^T dZ + W^T R{dZ}) + f'' Zdot (W^T dZ)). Its ReLU is the a.e. Hessian (f'' = 0): a unit
exactly at its kink (a zero bias under dead inputs, at initialization) is no trouble. Nets with a norm layer
take central differences of the exact gradient g (MLP.objective):

    Hv ~ (g(theta + eps v) - g(theta - eps v)) / 2 eps,

erring by O(eps^2 |d^3 J|) plus rounding u |g| / eps, at eps = EPS max(1, |theta|) far below the power
iteration's tolerance, except where a ReLU-type unit sits within eps of its kink.

The cost measured is the full-batch training cost (the mean over the training split's first MAX_EXAMPLES
examples, with the L2 term), in float64 whatever the training dtype, without dropout or augmentation,
batch norm on the batch's own statistics.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from optbench.model import build
from optbench.sections import Model

EPS = 1e-5  # the step along v, relative to max(1, |theta|)
TOL = 1e-3  # power iteration stops when every replica's residual is below TOL * |lambda|
MAX_ITERS = 200  # ... or after this many Hessian-vector products per pass
MAX_EXAMPLES = 4096  # the training examples the cost is measured on (its first ones): the cost stays bounded
SPAWN_KEY = 1000  # the start vectors' SeedSequence child, apart from train.STREAMS' children 0, 1, ...


def unit_rows(v: np.ndarray) -> np.ndarray:
    """v (R, P) with each row scaled to norm 1 (a zero row stays zero)."""
    n = np.sqrt((v * v).sum(axis=1, keepdims=True))
    return v / np.where(n > 0, n, 1.0)


def hvp_fd(grad: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, v: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Hv (R, P) ~ (grad(theta + eps v) - grad(theta - eps v)) / 2 eps; eps (R, 1)."""
    return (grad(theta + eps * v) - grad(theta - eps * v)) / (2 * eps)


def power_iteration(hvp: Callable[[np.ndarray], np.ndarray], v0: np.ndarray, *, shift=0.0, tol: float = TOL,
                    max_iters: int = MAX_ITERS) -> tuple[np.ndarray, np.ndarray, int]:
    """(lambda (R,), v (R, P), products used): the eigenvalue of largest magnitude of A = H - shift I per replica,
    by v <- Av / |Av|, lambda = v . Av (the Rayleigh quotient), until every residual |Av - lambda v| <= tol |lambda|.

    For symmetric A a residual r puts an eigenvalue within |r| of lambda (and within |r|^2 / gap of the
    nearest one): the stopping rule bounds the error, where a small change between passes would not."""
    v = unit_rows(v0)
    lam = np.full(v.shape[0], np.nan)
    done = np.zeros(v.shape[0], dtype=bool)
    for k in range(1, max_iters + 1):
        w = hvp(v) - shift * v
        new = (v * w).sum(axis=1)
        res = np.sqrt(((w - new[:, None] * v) ** 2).sum(axis=1))
        # a replica stops at its own pass, whatever its group: its result is the one it gets alone
        lam = np.where(done, lam, new)
        v = np.where(done[:, None], v, unit_rows(w))
        done |= ~(res > tol * np.abs(new))  # NaN (a replica that blew up) compares False: done, it holds no one up
        if done.all():
            return lam, v, k
    return lam, v, max_iters


def top_eigenvalue(hvp: Callable[[np.ndarray], np.ndarray], v0: np.ndarray, *, tol: float = TOL,
                   max_iters: int = MAX_ITERS) -> tuple[np.ndarray, int]:
    """(lambda_max (R,), products used): the largest (not largest in magnitude) eigenvalue of H per replica.

    Power iteration finds the eigenvalue mu of largest magnitude; where it is negative, a second pass on
    H - mu I (whose spectrum is >= 0 there, its largest magnitude lambda_max - mu) gives lambda_max."""
    mu, v, used = power_iteration(hvp, v0, tol=tol, max_iters=max_iters)
    neg = mu < 0
    if not neg.any():
        return mu, used
    shift = np.where(neg, mu, 0.0)[:, None]
    nu, _, more = power_iteration(hvp, v0, shift=shift, tol=tol, max_iters=max_iters)
    return np.where(neg, nu + shift[:, 0], mu), used + more


def start_vectors(seeds: list[int], epoch: int, P: int) -> np.ndarray:
    """(R, P) standard normal start vectors, one generator per replica from (its seed, the epoch): the same
    numbers whichever group or resumed process measures it."""
    out = np.empty((len(seeds), P))
    for r, seed in enumerate(seeds):
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPAWN_KEY, epoch))).standard_normal(out=out[r])
    return out


def _second(activation: dict) -> Callable[[np.ndarray], np.ndarray | float]:
    """f''(z) from the output a = f(z), for the R-op's backward (f' comes from the activation's own backward)."""
    name = activation["name"]
    if name == "tanh":
        return lambda a: -2.0 * a * (1.0 - a * a)
    if name == "sigmoid":
        return lambda a: a * (1.0 - a) * (1.0 - 2.0 * a)
    if name == "elu":
        alpha = activation.get("alpha", 1.0)
        return lambda a: np.where(a > 0, 0.0, a + alpha)
    return lambda a: 0.0  # relu, leaky_relu, identity: piecewise linear


def _loss_second(loss: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """(Z, Zdot) -> R{dZ}: the mean cost's second derivative in the logits Z (R, C, B) applied to Zdot."""
    if loss == "bce":  # dZ = (tanh(Z/2) - T) / 2B
        return lambda Z, Zd: 0.25 * (1.0 - np.tanh(0.5 * Z) ** 2) * Zd / Z.shape[-1]
    if loss == "softmax_ce":  # dZ = (p - y) / B
        def softmax(Z, Zd):
            p = np.exp(Z - Z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            return p * (Zd - (p * Zd).sum(axis=1, keepdims=True)) / Z.shape[-1]
        return softmax
    return lambda Z, Zd: 2.0 * Zd / (Z.shape[1] * Z.shape[-1])  # mse: dZ = 2 (Z - Y) / CB


class Sharpness:
    """A group's sharpness probe: float64 copies of its net (without dropout) and of the examples measured on.

    `probe(theta, epoch)` -> lambda_max (R,) of the Hessian of the full-batch training cost at theta (R, P).
    """

    def __init__(self, model_cfg: Model, loss: str, train: np.ndarray, D: int, C: int, *, l2: np.ndarray,
                 seeds: list[int]):
        """train: the training matrix [X^T; 1; Y^T] (D+1+C, N); l2 (R, 1); seeds: each replica's run seed."""
        R = len(seeds)
        self.net = build(model_cfg.model_copy(update={"drop_prob": 0.0}), loss, D, C, R=R, dtype=np.float64)
        M = np.array(train[:, :MAX_EXAMPLES], dtype=np.float64)
        self.A0, self.Y = M[None, : D + 1], M[None, D + 1 :]
        self.l2 = np.asarray(l2, dtype=np.float64).reshape(R, 1)
        self.seeds = list(seeds)
        self.products = 0  # Hessian-vector products so far (each about two gradients' work)
        self._g = np.empty((R, self.net.layout.P))
        self.exact = model_cfg.norm == "none"
        self._f2 = _second(model_cfg.activation)
        self._l2 = _loss_second(loss)
        self.mask = self.net.layout.weight_mask()

    def grad(self, theta: np.ndarray) -> np.ndarray:
        """dJ/dtheta (R, P) of the full-batch cost (a new array)."""
        self.net.objective(theta, self.A0, self.Y, self._g, l2=self.l2)
        return self._g.copy()

    def hvp(self, theta: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Hv (R, P) exactly, by the R-operator (plain nets: no norm layer, no dropout)."""
        net, lay = self.net, self.net.layout
        dense = [lay.view(theta, b) for b in lay.blocks]
        Vd = [lay.view(V, b) for b in lay.blocks]
        L = net.L
        A, Ad, F1, F2, Zd = [self.A0], [None], [None], [None], [None]
        for l in range(1, L):  # forward, and along V
            W, Vl = dense[l - 1], Vd[l - 1]
            Z = W @ A[-1]
            z_dot = Vl @ A[-1] + (W[:, :, :-1] @ Ad[-1] if l > 1 else 0.0)
            net.act.forward(Z)  # Z <- f(Z) in place
            f1 = np.ones_like(Z)
            net.act.backward(f1, Z)  # f'(z), read from the output as the engine's backward reads it
            A.append(np.concatenate([Z, np.ones_like(Z[:, :1])], axis=1))
            Ad.append(f1 * z_dot)
            F1.append(f1)
            F2.append(self._f2(Z))
            Zd.append(z_dot)
        W, Vl = dense[L - 1], Vd[L - 1]
        Z = W @ A[-1]
        z_dot = Vl @ A[-1] + (W[:, :, :-1] @ Ad[-1] if L > 1 else 0.0)
        dZ = np.empty_like(Z)
        net.loss.grad(Z, self.Y, dZ)
        rdZ = self._l2(Z, z_dot)
        out = np.zeros_like(V)
        Hd = [lay.view(out, b) for b in lay.blocks]
        for l in range(L, 0, -1):  # backward, and along V
            W, Vl = dense[l - 1], Vd[l - 1]
            Hd[l - 1][...] = rdZ @ A[l - 1].swapaxes(-1, -2)
            if l > 1:
                Hd[l - 1][:, :, :-1] += dZ @ Ad[l - 1].swapaxes(-1, -2)  # the ones row does not move
                WT = W[:, :, :-1].swapaxes(-1, -2)
                dA = WT @ dZ
                rdA = Vl[:, :, :-1].swapaxes(-1, -2) @ dZ + WT @ rdZ
                dZ, rdZ = F1[l - 1] * dA, F1[l - 1] * rdA + F2[l - 1] * Zd[l - 1] * dA
        return out + self.l2 * self.mask * V

    def probe(self, theta: np.ndarray, epoch: int) -> np.ndarray:
        th = np.array(theta, dtype=np.float64)
        v0 = start_vectors(self.seeds, epoch, th.shape[1])
        if self.exact:
            hvp = lambda v: self.hvp(th, v)  # noqa: E731
        else:
            eps = EPS * np.maximum(1.0, np.sqrt((th * th).sum(axis=1, keepdims=True)))
            hvp = lambda v: hvp_fd(self.grad, th, v, eps)  # noqa: E731
        lam, used = top_eigenvalue(hvp, v0)
        self.products += used
        return lam
