"""Muon: momentum orthogonalized by a Newton–Schulz iteration, on each weight matrix of the flat buffer.

    W: B = mu*B + (1-mu)*g;  U = g + mu*(B - g) (nesterov) or B;  O = NS5(U);  direction = wd*W + s(A, B)*O
    the rest (biases, norm gains and shifts): AdamW, at adam_lr (the loop's lr schedule scales both)

torch.optim.Muon (2.13) as its code does it (its momentum is a lerp, not its docstring's B = mu*B + g), with
its Newton–Schulz coefficients, steps and lr adjustment; the parameters that are not matrices go to an
AdamW with the defaults of Keller Jordan's MuonWithAuxAdam, as the reference recipe does. The rule needs
to know where the matrices are: it takes the model's `layout` (params.Layout) from the engine. Without
one (a 2-D problem, a bare test) each replica's row is one 1 x P matrix.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from optbench import modern_reference
from optbench.adam import AdamState, _adam
from optbench.optim import OPTIMIZERS
from optbench.optimizer import Optimizer, _coef, _ema, _rest
from optbench.params import Layout
from optbench.registry import NonNegative, Positive, PositiveInt, Unit

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # torch's (Keller Jordan's): the quintic with the steepest slope at 0


class MuonState(NamedTuple):
    B: np.ndarray  # (R, P) momentum buffer (only the matrices' entries are used)
    adam: AdamState | None  # the fallback's state over the other entries (None when there are none)


def matrices(layout: Layout | None, P: int) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    """([(offset, rows, cols, stride)] of each weight matrix, the flat indices of everything else) in a row of P.

    A dense block is (out, in+1) with the bias as its last column: W is its first `in` columns (stride in+1).
    """
    if layout is None:
        return [(0, 1, P, P)], np.zeros(0, dtype=np.intp)
    mats, rest = [], []
    for blk in layout.blocks:
        idx = np.arange(blk.offset, blk.offset + blk.size)
        if blk.kind == "dense":
            out, cols = blk.shape
            mats.append((blk.offset, out, cols - 1, cols))
            rest.append(idx[cols - 1 :: cols])  # the bias column
        else:
            rest.append(idx)
    return mats, np.concatenate(rest) if rest else np.zeros(0, dtype=np.intp)


def _view(buf: np.ndarray, offset: int, rows: int, cols: int, stride: int) -> np.ndarray:
    """(R, rows, cols) view of matrix (offset, rows, cols, stride) in buf (R, P)."""
    return buf[:, offset : offset + rows * stride].reshape(buf.shape[0], rows, stride)[:, :, :cols]


def newton_schulz(G: np.ndarray, coefficients: tuple[float, float, float], steps, eps) -> np.ndarray:
    """NS_k(G): X = G/max(|G|_F, eps); k times X = a*X + (b*XX' + c*(XX')^2) X; on (R, A, B), wide side last.

    Drives every singular value of G towards about 1 (0.7..1.2 with these coefficients), i.e. G ~ U V'.
    steps: an int, or per replica an (R, 1) array (each replica stops after its own count).
    """
    a, b, c = coefficients
    tall = G.shape[1] > G.shape[2]
    X = G.transpose(0, 2, 1) if tall else G
    norm = np.sqrt((X * X).sum(axis=(1, 2), keepdims=True))
    X = X / np.maximum(norm, eps)
    per_replica = np.ndim(steps) > 0
    for i in range(int(np.max(steps))):
        gram = X @ X.transpose(0, 2, 1)
        X_next = a * X + (b * gram + c * (gram @ gram)) @ X
        X = np.where(np.reshape(steps, (-1, 1, 1)) > i, X_next, X) if per_replica else X_next
    return X.transpose(0, 2, 1) if tall else X


def adjusted_ratio(rows: int, cols: int, adjust_lr_fn: str | None) -> float:
    """torch's lr adjustment of an (A, B) matrix: sqrt(max(1, A/B)) (original) or 0.2*sqrt(max(A, B)) (match_rms_adamw)."""
    if adjust_lr_fn in (None, "original"):
        return max(1.0, rows / cols) ** 0.5
    return 0.2 * max(rows, cols) ** 0.5


def _lerp(g: np.ndarray, B: np.ndarray, mu, out: np.ndarray) -> np.ndarray:
    """U = g + mu*(B - g) into out: torch's g.lerp(B, mu), the Nesterov point between the gradient and the momentum."""
    np.subtract(B, g, out=out)
    np.multiply(out, mu, out=out)
    return np.add(out, g, out=out)


@OPTIMIZERS.register()
def muon(
    *,
    lr: Positive = 1e-3,
    weight_decay: NonNegative = 0.1,
    momentum: Unit = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: Positive = 1e-7,
    ns_steps: PositiveInt = 5,
    adjust_lr_fn: Literal["original", "match_rms_adamw"] | None = None,
    adam_lr: Positive = 3e-4,
    adam_beta1: Unit = 0.9,
    adam_beta2: Unit = 0.95,
    adam_eps: Positive = 1e-10,
    adam_weight_decay: NonNegative = 0.0,
    layout: Layout | None = None,
) -> Optimizer:
    """Muon: B = mu*B + (1-mu)*g; O = NS5(g + mu*(B-g)); direction = wd*W + sqrt(max(1, A/B))*O per weight matrix W.

    Keller Jordan et al. (2024), torch.optim.Muon; mu = momentum, O ~ U V' of the momentum's SVD (5 quintic
    Newton–Schulz steps in float64/float32, where torch computes them in bfloat16). nesterov=false uses B itself.
    Biases and norm parameters: AdamW(adam_lr, adam_beta1, adam_beta2, adam_eps, adam_weight_decay), the
    defaults of Keller Jordan's MuonWithAuxAdam; its step is lr_t * adam_lr/lr, so a schedule scales both.
    """
    fallback = _adam(adam_lr, adam_beta1, adam_beta2, adam_eps, False, adam_weight_decay)

    def init(theta):
        _, rest = matrices(layout, theta.shape[1])
        return MuonState(np.zeros_like(theta), fallback.init(theta[:, rest]) if rest.size else None)

    def bind(theta):
        mats, rest = matrices(layout, theta.shape[1])
        mu, wd, back = _coef(momentum, theta), _coef(weight_decay, theta), _rest(momentum, theta)
        eps_ = _coef(eps, theta)
        eps_ = eps_ if np.ndim(eps_) == 0 else eps_.reshape(-1, 1, 1)  # against each replica's (R, 1, 1) norm
        scale = _coef(np.asarray(adam_lr, dtype=np.float64) / np.asarray(lr, dtype=np.float64), theta)
        ratios = [adjusted_ratio(m[1], m[2], adjust_lr_fn) for m in mats]
        d, buf = np.empty_like(theta), np.empty_like(theta)
        adam_update = fallback.bind(theta[:, rest]) if rest.size else None

        def update(g, state, theta):
            B = state.B
            _ema(B, g, back, buf)
            U = _lerp(g, B, mu, buf) if nesterov else B
            for m, ratio in zip(mats, ratios):
                O = newton_schulz(_view(U, *m), ns_coefficients, ns_steps, eps_)
                Wd = _view(d, *m)
                np.multiply(_view(theta, *m), wd, out=Wd)
                Wd += ratio * O
            adam = state.adam
            if adam_update is not None:
                step, adam = adam_update(g[:, rest], state.adam, theta[:, rest])
                d[:, rest] = step * scale
            return d, MuonState(B, adam)

        return update

    return Optimizer(init, bind, lr)


muon.reference_forms = (modern_reference.muon,)  # what `optbench list optimizers muon` shows
