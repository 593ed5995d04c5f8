"""The modern rules as their papers write them, one step at a time on a 1-D x: the oracle of muon.py, prodigy.py,
schedulefree.py and wrappers.py (as reference.py is sgd.py's, adaptive.py's and adam.py's).

    x, s = prodigy(x, dx, s, lr=..., ...)      # s: a dict, {} before the first step

New arrays, no buffers; the sequences the papers name (Schedule-Free's x, y, z; Lookahead's slow and fast
weights) kept as they are, not folded into one direction. tests/test_modern_rules.py holds each fast rule to
its form here; `optbench list optimizers NAME` shows it.
"""

from __future__ import annotations

import numpy as np


def muon(x, dx, s, *, lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps, shape):
    """B = mu*B + (1-mu)*G; U = G + mu*(B - G) if nesterov else B; O = NS(U); X -= lr*(wd*X + sqrt(max(1, A/B))*O)

    One weight matrix X of `shape` (A, B), flattened in x; NS: X0 = U/|U|_F, then ns_steps times
    X = a*X + (b*X X' + c*(X X')^2) X on the wide orientation (Jordan et al. 2024).
    """
    G = dx.reshape(shape)
    B = s["B"] = momentum * s.get("B", 0.0) + (1 - momentum) * G
    U = G + momentum * (B - G) if nesterov else B
    a, b, c = ns_coefficients
    T = U.T if shape[0] > shape[1] else U
    X = T / max(np.linalg.norm(T), eps)
    for _ in range(ns_steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    O = X.T if shape[0] > shape[1] else X
    return x - lr * (weight_decay * x + max(1.0, shape[0] / shape[1]) ** 0.5 * O.reshape(-1)), s


def prodigy(x, dx, s, *, lr, beta1, beta2, beta3, eps, weight_decay, d0, d_coef):
    """Mishchenko & Defazio (2024), Algorithm "Prodigy (Adam version)", decoupled weight decay, no bias correction:

    r = b3*r + (d/d0)*d*lr*<g, x0 - x>;  sv = b3*sv + (d/d0)*d*lr*g;  d_new = max(d, d_coef*r/|sv|_1)
    m = b1*m + (1-b1)*d*g;  v = b2*v + (1-b2)*d^2*g^2;  x -= d*lr*(m/(sqrt(v) + d_new*eps) + wd*x)
    """
    b3 = beta2**0.5 if beta3 is None else beta3
    d, x0 = s.setdefault("d", d0), s.setdefault("x0", x.copy())
    r = s["r"] = b3 * s.get("r", 0.0) + (d / d0) * d * lr * float(dx @ (x0 - x))
    sv = s["sv"] = b3 * s.get("sv", 0.0) + (d / d0) * d * lr * dx
    m = s["m"] = beta1 * s.get("m", 0.0) + (1 - beta1) * d * dx
    v = s["v"] = beta2 * s.get("v", 0.0) + (1 - beta2) * d * d * dx**2
    d_new = s["d"] = max(d, d_coef * r / np.abs(sv).sum())
    return x - d * lr * (m / (np.sqrt(v) + d_new * eps) + weight_decay * x), s


def schedule_free(x, dx, s, *, lr, beta, weight_decay, warmup_steps, r, weight_lr_power, beta2=None, eps=None):
    """Defazio et al. (2024), Algorithm 1 (the package's AdamWScheduleFreeReference): x is y, s holds z and x.

    lr_t = lr * min(1, t/warmup); c = w_t/sum(w), w_t = t**r * max(lr_t)**weight_lr_power;
    z = z - lr_t*(g/denom + wd*y); x = (1-c)*x + c*z; y = beta*x + (1-beta)*z; denom = 1 (SGD) or sqrt(v/(1-b2**t)) + eps
    """
    y = x
    t = s["t"] = s.get("t", 0) + 1
    lr_t = lr * (t / warmup_steps if t <= warmup_steps else 1.0)
    lr_max = s["lr_max"] = max(lr_t, s.get("lr_max", -1.0))
    w = t**r * lr_max**weight_lr_power
    ws = s["weight_sum"] = s.get("weight_sum", 0.0) + w
    c = w / ws
    z, xa = s.get("z", y), s.get("x", y)
    if beta2 is None:
        denom = 1.0
    else:
        v = s["v"] = beta2 * s.get("v", 0.0) + (1 - beta2) * dx**2
        denom = np.sqrt(v / (1 - beta2**t)) + eps
    z = s["z"] = z - lr_t * (dx / denom + weight_decay * y)
    xa = s["x"] = (1 - c) * xa + c * z
    return beta * xa + (1 - beta) * z, s


def lookahead(x, dx, s, *, lr, k, alpha, inner, inner_options):
    """Zhang et al. (2019), Algorithm 1: k inner steps on the fast weights, then slow = slow + alpha*(fast - slow); fast = slow."""
    slow = s.setdefault("slow", x.copy())
    x, s["inner"] = inner(x, dx, s.get("inner", {}), lr=lr, **inner_options)
    s["t"] = s.get("t", 0) + 1
    if s["t"] % k == 0:
        x = s["slow"] = slow + alpha * (x - slow)
    return x, s


def sam(x, dx, s, *, lr, rho, grad, inner, inner_options):
    """Foret et al. (2021), Algorithm 1: e = rho*g/|g|; the inner rule steps with g' = grad(x + e)."""
    e = rho * dx / np.linalg.norm(dx)
    x, s["inner"] = inner(x, grad(x + e), s.get("inner", {}), lr=lr, **inner_options)
    return x, s
