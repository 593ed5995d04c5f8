"""`optbench gradcheck`: the numeric gradient check of each configured net, on a small training batch."""

from __future__ import annotations

import numpy as np

from optbench.config import load_data
from optbench.gradcheck import numeric_grad, rel_error
from optbench.losses import l2_penalty
from optbench.model import build
from optbench.train import _Data, _gens

KINKED = ("relu", "leaky_relu", "elu")  # kinks (elu: in f''): a finite difference may straddle one
ZERO = 1e-9  # |gradient| below this on both sides is "zero" (e.g. a bias just before batch norm)


def check_config(cfg: dict, *, examples: int = 16, samples: int = 20) -> list[dict]:
    """Relative error per parameter for one resolved run config (float64, its initial weights).

    Each parameter tensor is checked on at most `samples` entries drawn at random (CS231n's sparse
    check): a full check costs four cost evaluations per weight.
    """
    split = load_data(cfg["data"])
    data = _Data(split, cfg["loss"], np.float64)
    net = build(cfg["model"], cfg["loss"], data.D, data.C, R=1, dtype=np.float64)
    gens = _gens(cfg["seed"])
    init = cfg["model"]["init"]
    theta = net.init_params([(init["name"], {k: v for k, v in init.items() if k != "name"})], [gens["init"]])
    M = data.train[:, : min(examples, data.N)]
    A0, Y = M[None, : data.D + 1], M[None, data.D + 1 :]
    B = A0.shape[-1]
    l2 = cfg["regularization"]["l2"]
    keep = np.full((1, 1, 1), 1.0 - cfg["model"]["drop_prob"])
    mask = net.layout.weight_mask()
    kinked = cfg["model"]["activation"]["name"] in KINKED
    h, tol = (1e-6, 1e-5) if kinked else (1e-4, 1e-7)

    def cost_grad(th):
        # dropout masks from a generator re-seeded at each evaluation: the same mask every time
        drop = [np.random.default_rng(cfg["seed"])] if net.dropout else None
        g = np.zeros_like(th)
        c = net.loss_grad(th, g, A0, Y, buffers=net.new_buffers(), keep=keep, drop_gens=drop)[0] / B
        g += l2 * mask * th
        return float(c + l2_penalty(th, mask, l2)[0]), g

    analytic = cost_grad(theta)[1]
    pick = np.random.default_rng(0)
    where = net.layout.named(np.arange(net.layout.P)[None])
    chosen = {k: np.sort(pick.permutation(v.reshape(-1))[:samples]) for k, v in where.items()}
    numeric = numeric_grad(lambda th: cost_grad(th)[0], theta.copy(), h, indices=np.concatenate(list(chosen.values())))
    rows = []
    for name, idx in chosen.items():
        a, n = analytic[0, idx], numeric[0, idx]
        row = {"label": cfg["label"], "param": name, "tolerance": tol}
        if np.abs(a).max() < ZERO and np.abs(n).max() < ZERO:
            row.update(error=0.0, note=f"zero gradient (|numeric| < {ZERO:g})")
        else:
            row.update(error=rel_error(a, n), note="kinked activation: looser tolerance" if kinked else "")
        rows.append(row)
    return rows


def gradcheck_runs(cfgs: list[dict], *, examples: int = 16, samples: int = 20) -> list[dict]:
    """One check per label (its first seed)."""
    from optbench.problems import PROBLEMS
    from optbench.errors import OptbenchError

    seen, rows = set(), []
    for cfg in cfgs:
        if cfg["data"]["name"] in PROBLEMS:
            raise OptbenchError(f"data.name: {cfg['data']['name']} is a 2-D problem with a closed-form gradient; gradcheck checks nets")
        if cfg["label"] not in seen:
            seen.add(cfg["label"])
            rows.extend(check_config(cfg, examples=examples, samples=samples))
    return rows
