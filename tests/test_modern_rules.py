"""The modern rules (muon, prodigy, schedule-free, lookahead, SAM) against their reference implementations, stepped
on identical gradients in float64; their textbook forms; the replica axis, float32 and a run through the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from optbench.optim import OPTIMIZERS, build
from optbench.params import Layout

STEPS = 25
LAYOUT = Layout.mlp([3, 4, 2], norm=False)  # W1 (4, 3), b1, W2 (2, 4), b2: P = 26
NORM_LAYOUT = Layout.mlp([3, 5, 4, 2], norm=True)  # with gamma/beta blocks between the dense ones


def _problem(p: int, seed: int = 0):
    """g(x) = A x + 0.3 sin(3x): the gradient of 0.5 x'Ax - 0.1 sum cos(3x), A SPD with condition 1e3."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    a = (q * np.logspace(-2, 1, p)) @ q.T
    return (lambda x: x @ a + 0.3 * np.sin(3 * x)), rng.standard_normal(p)


def run_ours(name, options, x0, grad, steps=STEPS, layout=None):
    """Trajectory (steps, R, P) through the loop's protocol: theta -= lr_t * direction, the wants handed in."""
    opt = build(name, OPTIMIZERS.validate(name, options, "optimizer"), layout=layout)
    theta = np.array(x0, dtype=np.float64, ndmin=2)
    state, update = opt.init(theta), opt.bind(theta)
    lr = np.full((theta.shape[0], 1), opt.lr)
    kw = {"lr": lr} if "lr" in opt.wants else {}
    if "regrad" in opt.wants:
        g = np.empty_like(theta)
        kw["regrad"] = lambda: g.__setitem__(slice(None), grad(theta))
    out, at = [], []
    for _ in range(steps):
        if "regrad" in opt.wants:
            g[...] = grad(theta)
        else:
            g = grad(theta)
        d, state = update(g, state, theta, **kw)
        theta -= lr * d
        out.append(theta.copy())
        if opt.evaluate_at is not None:
            x = np.empty_like(theta)
            opt.evaluate_at(state, theta, x)
            at.append(x)
    return np.array(out), (np.array(at) if at else None)


def _rel(got, ref):
    """Max over steps of the step's max abs difference over the trajectory's scale."""
    return float((np.abs(got - ref).max(axis=-1) / np.abs(ref).max(axis=-1)).max())


def _torch_params(torch, layout, x0):
    """One torch leaf per named view of the layout (W_l as (out, in), b_l, gamma_l, beta_l), from the flat x0."""
    return {k: torch.tensor(v[0], dtype=torch.float64, requires_grad=True)
            for k, v in layout.named(np.array(x0, ndmin=2)).items()}


def _flat(layout, params):
    return layout.from_named({k: p.detach().numpy()[None] for k, p in params.items()})[0]


def run_torch(torch, layout, x0, grad, optimizers, steps=STEPS, closure_step=None):
    """Trajectory (steps, P) of torch optimizers over the layout's named parameters on gradients grad(flat)."""
    params = _torch_params(torch, layout, x0)
    opts = optimizers(params)

    def set_grads():
        g = layout.named(grad(_flat(layout, params))[None])
        for k, p in params.items():
            p.grad = torch.from_numpy(np.ascontiguousarray(g[k][0]))

    out = []
    for _ in range(steps):
        set_grads()
        if closure_step is not None:
            closure_step(opts, set_grads)
        else:
            for o in opts:
                o.step()
        out.append(_flat(layout, params))
    return np.array(out), params, opts


# ---------------------------------------------------------------------------------------------
# Muon against torch.optim.Muon + AdamW on the rest (Keller Jordan's MuonWithAuxAdam split)


@pytest.fixture
def torch_f64(monkeypatch):
    """torch, with Muon's bfloat16 cast lifted (the Newton–Schulz iteration then runs in float64, as ours does)."""
    import torch
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self, *a, **k: self.clone())
    return torch


MUON_CASES = [
    ({"lr": 0.02}, LAYOUT),
    ({"lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "adam_lr": 0.01}, LAYOUT),
    ({"lr": 0.02, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3, "adam_weight_decay": 0.1}, NORM_LAYOUT),
]


@pytest.mark.parametrize("options, layout", MUON_CASES)
def test_muon_matches_torch(torch_f64, options, layout):
    torch = torch_f64
    grad, x0 = _problem(layout.P)
    o = OPTIMIZERS.validate("muon", options, "optimizer")

    def optimizers(params):
        mats = [p for k, p in params.items() if k.startswith("W")]
        rest = [p for k, p in params.items() if not k.startswith("W")]
        return [torch.optim.Muon(mats, lr=o["lr"], weight_decay=o["weight_decay"], momentum=o["momentum"],
                                 nesterov=o["nesterov"], ns_steps=o["ns_steps"], eps=o["eps"],
                                 adjust_lr_fn=o["adjust_lr_fn"]),
                torch.optim.AdamW(rest, lr=o["adam_lr"], betas=(o["adam_beta1"], o["adam_beta2"]),
                                  eps=o["adam_eps"], weight_decay=o["adam_weight_decay"])]

    ref, _, _ = run_torch(torch, layout, x0, grad, optimizers)
    got, _ = run_ours("muon", options, x0, grad, layout=layout)
    assert not np.allclose(got[-1, 0], x0, atol=1e-2)
    assert _rel(got[:, 0], ref) <= 1e-10


def test_muon_orthogonalizes():
    """NS5 leaves every singular value of a matrix within torch's documented band (about 0.7 to 1.2)."""
    from optbench.muon import NS_COEFFICIENTS, newton_schulz

    G = np.random.default_rng(0).standard_normal((3, 6, 4)) * np.array([1e-3, 1.0, 1e3])[:, None, None]
    s = np.linalg.svd(newton_schulz(G, NS_COEFFICIENTS, 5, 1e-7), compute_uv=False)
    assert s.min() > 0.6 and s.max() < 1.25


# ---------------------------------------------------------------------------------------------
# Prodigy against prodigyopt 1.1.2

PRODIGY_CASES = [
    {},
    {"lr": 0.5, "beta1": 0.8, "beta2": 0.99, "d0": 1e-4, "weight_decay": 0.1, "use_bias_correction": True},
    {"beta3": 0.9, "weight_decay": 0.05, "decouple": False, "safeguard_warmup": True, "growth_rate": 1.05,
     "d_coef": 2.0},
]


@pytest.mark.parametrize("options", PRODIGY_CASES)
def test_prodigy_matches_prodigyopt(options):
    import torch
    import prodigyopt
    grad, x0 = _problem(LAYOUT.P)
    o = OPTIMIZERS.validate("prodigy", options, "optimizer")

    def optimizers(params):
        return [prodigyopt.Prodigy(list(params.values()), lr=o["lr"], betas=(o["beta1"], o["beta2"]), beta3=o["beta3"],
                                   eps=o["eps"], weight_decay=o["weight_decay"], decouple=o["decouple"],
                                   use_bias_correction=o["use_bias_correction"], safeguard_warmup=o["safeguard_warmup"],
                                   d0=o["d0"], d_coef=o["d_coef"],
                                   growth_rate=float("inf") if o["growth_rate"] is None else o["growth_rate"])]

    ref, _, (opt,) = run_torch(torch, LAYOUT, x0, grad, optimizers)
    got, _ = run_ours("prodigy", options, x0, grad, layout=LAYOUT)
    assert opt.param_groups[0]["d"] > 5 * o["d0"]  # the estimate grew: the test exercises it
    assert _rel(got[:, 0], ref) <= 1e-10


# ---------------------------------------------------------------------------------------------
# Schedule-Free SGD and AdamW against schedulefree 1.4.1 (y during training, x at evaluation)

SCHEDULE_FREE_CASES = [
    ("schedule_free_sgd", {"lr": 0.05}, "SGDScheduleFree", {"lr": 0.05}),
    ("schedule_free_sgd", {"lr": 0.03, "momentum": 0.7, "weight_decay": 0.1, "warmup_steps": 10, "r": 1.0},
     "SGDScheduleFree", {"lr": 0.03, "momentum": 0.7, "weight_decay": 0.1, "warmup_steps": 10, "r": 1.0}),
    ("schedule_free_adamw", {}, "AdamWScheduleFree", {}),
    ("schedule_free_adamw", {"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.05,
                             "warmup_steps": 8, "weight_lr_power": 1.0},
     "AdamWScheduleFree", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05, "warmup_steps": 8,
                           "weight_lr_power": 1.0}),
]


@pytest.mark.parametrize("name, options, ref_name, ref_options", SCHEDULE_FREE_CASES)
def test_schedule_free_matches_schedulefree(name, options, ref_name, ref_options):
    import torch
    import schedulefree
    grad, x0 = _problem(LAYOUT.P)

    def optimizers(params):
        opt = getattr(schedulefree, ref_name)(list(params.values()), foreach=False, **ref_options)
        opt.train()
        return [opt]

    ref, params, (opt,) = run_torch(torch, LAYOUT, x0, grad, optimizers)
    got, at = run_ours(name, options, x0, grad)
    assert not np.allclose(got[-1, 0], x0, atol=1e-2)
    assert _rel(got[:, 0], ref) <= 1e-10  # y, where the gradients are taken
    opt.eval()
    x = _flat(LAYOUT, params)
    assert not np.allclose(x, got[-1, 0], atol=1e-3)  # the average is not the last iterate
    assert _rel(at[-1, 0], x) <= 1e-10


# ---------------------------------------------------------------------------------------------
# Lookahead and SAM against pytorch_optimizer 4.1.0

LOOKAHEAD_CASES = [
    ({"lr": 0.02, "inner": "adam"}, lambda torch, ps, lr: torch.optim.Adam(ps, lr=lr), {}),
    ({"lr": 0.01, "k": 3, "alpha": 0.3, "pullback_momentum": "pullback", "inner": {"name": "momentum", "mu": 0.8}},
     lambda torch, ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.8), {"k": 3, "alpha": 0.3, "pullback_momentum": "pullback"}),
    ({"lr": 0.01, "k": 4, "alpha": 0.6, "pullback_momentum": "reset", "inner": {"name": "nesterov", "mu": 0.9}},
     lambda torch, ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9, nesterov=True),
     {"k": 4, "alpha": 0.6, "pullback_momentum": "reset"}),
]


@pytest.mark.parametrize("options, inner, la_options", LOOKAHEAD_CASES)
def test_lookahead_matches_pytorch_optimizer(options, inner, la_options):
    import torch
    import pytorch_optimizer as po
    grad, x0 = _problem(LAYOUT.P)
    ref, _, _ = run_torch(torch, LAYOUT, x0, grad,
                          lambda ps: [po.Lookahead(inner(torch, list(ps.values()), options["lr"]), **la_options)])
    got, _ = run_ours("lookahead", options, x0, grad)
    assert not np.allclose(got[-1, 0], x0, atol=1e-2)
    assert _rel(got[:, 0], ref) <= 1e-10


@pytest.fixture
def sam_f64(monkeypatch):
    """pytorch_optimizer's SAM, its gradient norm taken in float64 (it casts the squared norms to float32)."""
    import torch
    from pytorch_optimizer.optimizer import sam as sam_module

    def norm64(param_groups, device=None, *, weight_adaptive=False):
        total = torch.zeros(1, dtype=torch.float64)
        for group in param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad * p.abs() if weight_adaptive and group.get("adaptive", False) else p.grad
                    total += (g * g).sum()
        return total

    monkeypatch.setattr(sam_module, "get_global_gradient_norm", norm64)
    return torch, sam_module.SAM


SAM_CASES = [
    ({"lr": 0.05}, lambda torch: torch.optim.SGD, {}, {}),
    ({"lr": 0.02, "rho": 0.2, "adaptive": True, "inner": {"name": "momentum", "mu": 0.9}},
     lambda torch: torch.optim.SGD, {"rho": 0.2, "adaptive": True}, {"momentum": 0.9}),
    ({"lr": 0.03, "rho": 0.1, "inner": {"name": "adam", "beta2": 0.99}},
     lambda torch: torch.optim.Adam, {"rho": 0.1}, {"betas": (0.9, 0.99)}),
]


@pytest.mark.parametrize("options, base, sam_options, base_options", SAM_CASES)
def test_sam_matches_pytorch_optimizer(sam_f64, options, base, sam_options, base_options):
    torch, SAM = sam_f64
    grad, x0 = _problem(LAYOUT.P)

    def closure_step(opts, set_grads):
        opts[0].step(set_grads)  # the closure recomputes the gradients at the perturbed point

    ref, _, _ = run_torch(torch, LAYOUT, x0, grad, lambda ps: [SAM(list(ps.values()), base(torch), lr=options["lr"],
                                                               **sam_options, **base_options)],
                          closure_step=closure_step)
    got, _ = run_ours("sam", options, x0, grad)
    plain, _ = run_ours(OPTIMIZERS.validate("sam", options, "optimizer")["inner"]["name"],
                        {**{k: v for k, v in OPTIMIZERS.validate("sam", options, "optimizer")["inner"].items()
                            if k != "name"}, "lr": options["lr"]}, x0, grad)
    assert not np.allclose(got[-1, 0], plain[-1, 0], atol=1e-4)  # the second gradient changed the path
    assert _rel(got[:, 0], ref) <= 1e-10


# ---------------------------------------------------------------------------------------------
# the textbook forms (optbench/modern_reference.py)


def _literal(step, x0, gradient, steps=STEPS, **options):
    x, s, out = np.array(x0, dtype=np.float64), {}, []
    for _ in range(steps):
        x, s = step(x, gradient(x), s, **options)
        out.append(x.copy())
    return np.array(out)


def test_muon_is_its_textbook_form():
    from optbench import modern_reference as mr, reference
    from optbench.muon import matrices

    grad, x0 = _problem(LAYOUT.P)
    o = OPTIMIZERS.validate("muon", {"lr": 0.02, "adam_weight_decay": 0.1}, "optimizer")
    mats, rest = matrices(LAYOUT, LAYOUT.P)
    x, states, out = x0.copy(), [{} for _ in mats], []
    adam_state: dict = {}
    for _ in range(STEPS):
        g, new = grad(x), x.copy()
        for (off, rows, cols, stride), s in zip(mats, states):
            idx = (off + np.arange(rows)[:, None] * stride + np.arange(cols)).reshape(-1)
            new[idx], _ = mr.muon(x[idx], g[idx], s, lr=o["lr"], weight_decay=o["weight_decay"], momentum=o["momentum"],
                                  nesterov=o["nesterov"], ns_coefficients=o["ns_coefficients"], eps=o["eps"],
                                  ns_steps=o["ns_steps"], shape=(rows, cols))
        new[rest], adam_state = reference.adamw(x[rest], g[rest], adam_state, lr=o["adam_lr"], beta1=o["adam_beta1"],
                                                beta2=o["adam_beta2"], eps=o["adam_eps"],
                                                weight_decay=o["adam_weight_decay"])
        x = new
        out.append(x.copy())
    got, _ = run_ours("muon", {"lr": 0.02, "adam_weight_decay": 0.1}, x0, grad, layout=LAYOUT)
    assert _rel(got[:, 0], np.array(out)) <= 1e-12


@pytest.mark.parametrize("options", [{}, {"lr": 0.5, "weight_decay": 0.1, "d0": 1e-4, "beta3": 0.95}])
def test_prodigy_is_its_textbook_form(options):
    from optbench import modern_reference as mr

    grad, x0 = _problem(LAYOUT.P)
    o = OPTIMIZERS.validate("prodigy", options, "optimizer")
    ref = _literal(mr.prodigy, x0, grad, **{k: o[k] for k in ("lr", "beta1", "beta2", "beta3", "eps", "weight_decay",
                                                              "d0", "d_coef")})
    got, _ = run_ours("prodigy", options, x0, grad)
    assert _rel(got[:, 0], ref) <= 1e-12


@pytest.mark.parametrize("name, options", [
    ("schedule_free_sgd", {"lr": 0.05, "weight_decay": 0.1, "warmup_steps": 5}),
    ("schedule_free_adamw", {"lr": 0.02, "r": 1.0, "weight_decay": 0.05}),
])
def test_schedule_free_is_its_textbook_form(name, options):
    from optbench import modern_reference as mr

    grad, x0 = _problem(LAYOUT.P)
    o = OPTIMIZERS.validate(name, options, "optimizer")
    extra = {"beta": o["momentum"]} if name == "schedule_free_sgd" else {"beta": o["beta1"], "beta2": o["beta2"],
                                                                        "eps": o["eps"]}
    x, s, ys, xs = x0.copy(), {}, [], []
    for _ in range(STEPS):
        x, s = mr.schedule_free(x, grad(x), s, lr=o["lr"], weight_decay=o["weight_decay"], warmup_steps=o["warmup_steps"],
                                r=o["r"], weight_lr_power=o["weight_lr_power"], **extra)
        ys.append(x.copy())
        xs.append(s["x"].copy())
    got, at = run_ours(name, options, x0, grad)
    assert _rel(got[:, 0], np.array(ys)) <= 1e-12
    assert _rel(at[:, 0], np.array(xs)) <= 1e-12


def test_lookahead_and_sam_are_their_textbook_forms():
    from optbench import modern_reference as mr, reference

    grad, x0 = _problem(LAYOUT.P)
    adam = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    ref = _literal(mr.lookahead, x0, grad, lr=0.02, k=4, alpha=0.5, inner=reference.adam, inner_options=adam)
    got, _ = run_ours("lookahead", {"lr": 0.02, "k": 4}, x0, grad)
    assert _rel(got[:, 0], ref) <= 1e-12
    ref = _literal(mr.sam, x0, grad, lr=0.05, rho=0.05, grad=grad, inner=reference.sgd, inner_options={"weight_decay": 0.0})
    got, _ = run_ours("sam", {"lr": 0.05}, x0, grad)
    assert _rel(got[:, 0], ref) <= 1e-10  # perturb_eps = 1e-12 in the norm, which the paper's form has not


# ---------------------------------------------------------------------------------------------
# in the engine: the replica axis, the hooks (layout, lr, second gradient, evaluation point), the CLI

MODERN_VARIANTS = {
    "muon": [{"name": "muon", "lr": 0.02}, {"name": "muon", "lr": 0.05, "momentum": 0.9, "adam_lr": 0.01}],
    "prodigy": [{"name": "prodigy"}, {"name": "prodigy", "lr": 0.5, "d0": 1e-4}],
    "sf_sgd": [{"name": "schedule_free_sgd", "lr": 0.1}, {"name": "schedule_free_sgd", "lr": 0.3, "momentum": 0.8}],
    "sf_adamw": [{"name": "schedule_free_adamw", "lr": 0.01},
                 {"name": "schedule_free_adamw", "lr": 0.02, "beta1": 0.8, "warmup_steps": 5}],
    "lookahead": [{"name": "lookahead", "lr": 0.01}, {"name": "lookahead", "lr": 0.03, "k": 3, "alpha": 0.7}],
    "sam": [{"name": "sam", "lr": 0.1, "inner": "momentum"}, {"name": "sam", "lr": 0.2, "rho": 0.2, "inner": "momentum"}],
}


def test_solo_and_grouped_runs_agree_for_the_modern_rules():
    """All twelve variants (per-replica numbers within each rule) train as one group; each equals its run alone."""
    from optbench.config import expand
    from test_train import BASE, metrics

    variants = {f"{k}{i}": {"optimizer": o} for k, opts in MODERN_VARIANTS.items() for i, o in enumerate(opts)}
    cfgs = expand({**BASE, "model": {"hidden": [5, 4], "norm": "layer"}, "train": {"epochs": 8, "batch_size": 64},
                   "variants": variants})
    grouped, gres = metrics(cfgs)
    for i, c in enumerate(cfgs):
        solo, sres = metrics([c])
        assert gres[i].status == "completed" and solo[0][-1]["train_cost"] < solo[0][0]["train_cost"], c["label"]
        for a, b in zip(solo[0], grouped[i]):
            for k in ("train_cost", "val_cost", "grad_norm", "update_ratio", "lr"):
                np.testing.assert_allclose(a[k], b[k], rtol=1e-10, err_msg=f"{c['label']} {k}")
        for k, v in sres[0].params.items():
            np.testing.assert_allclose(v, gres[i].params[k], rtol=1e-10, atol=1e-13, err_msg=c["label"])


def test_sam_second_pass_leaves_the_epoch_cost_alone():
    """Full batch: epoch 1's cost is the cost before its step (the initial one), not at SAM's perturbed point."""
    from optbench.config import expand
    from test_train import BASE, metrics

    cfgs = expand({**BASE, "train": {"epochs": 3, "batch_size": "full"}, "variants": {
        "sam": {"optimizer": {"name": "sam", "lr": 0.5, "rho": 0.5}}, "sgd": {"optimizer": {"name": "sgd", "lr": 0.5}}}})
    (sam, sgd), _ = metrics(cfgs)
    assert sam[1]["train_cost"] == pytest.approx(sam[0]["train_cost"], rel=1e-12)
    assert sam[1]["grad_norm"] != pytest.approx(sgd[1]["grad_norm"], rel=1e-3)  # the step took the second gradient
    assert sam[2]["train_cost"] != pytest.approx(sgd[2]["train_cost"], rel=1e-6)


def test_schedule_free_is_evaluated_and_saved_at_the_average():
    from optbench.config import expand
    from optbench.train import Trainer

    cfg = expand({**BASE_SF, "optimizer": {"name": "schedule_free_adamw", "lr": 0.02}})
    tr = Trainer(cfg)
    res = tr.run()
    y, z = tr.theta, tr.rules[0].state.z
    x = y + (1 - 1 / 0.9) * (z - y)
    assert not np.allclose(x, y, atol=1e-3)
    named = tr.net.layout.named(x)
    for k, v in res[0].params.items():
        np.testing.assert_allclose(v, named[k][0], rtol=1e-13, atol=1e-15)
    assert res[0].final_eval["val_cost"] == pytest.approx(float(tr.evaluate(x, tr.data.val, tr.buffers)[0][0]), rel=1e-12)


BASE_SF = {"name": "t", "data": {"name": "moons", "n_samples": 200, "noise": 0.2, "seed": 3, "val_fraction": 0.25},
           "model": {"hidden": [5]}, "loss": "bce", "train": {"epochs": 15, "batch_size": 32}}


def test_modern_rules_train_through_the_cli(cli, tmp_path):
    import csv
    import yaml

    variants = {k: {"optimizer": opts[0]} for k, opts in MODERN_VARIANTS.items()}
    variants["lookahead_muon"] = {"optimizer": {"name": "lookahead", "lr": 0.02, "inner": {"name": "muon"}}}
    cfg = {**BASE_SF, "seeds": [0, 1], "optimizer": {"name": "adam", "lr": 0.01}, "variants": variants}
    cfg["train"] = {**cfg["train"], "dtype": "float32"}
    path = tmp_path / "modern.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = cli("train", path, "-q", "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    dirs = sorted(d for d in (tmp_path / "runs").iterdir() if d.is_dir())
    assert len(dirs) == 2 * len(variants)
    for d in dirs:
        rows = list(csv.DictReader(open(d / "metrics.csv")))
        assert float(rows[-1]["val_cost"]) < float(rows[0]["val_cost"]), d.name
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump({**BASE_SF, "optimizer": {"name": "lookahead", "inner": {"name": "adam", "bta": 1}}}))
    code, out, err = cli("train", one, "-q", "--runs-dir", tmp_path / "bad")
    assert code == 2 and "optimizer.inner.bta: unknown option for adam (accepted: lr, beta1" in err


def test_modern_rules_resume_from_a_checkpoint_to_the_same_bytes(tmp_path):
    """Their states (nested for the wrappers, per-replica columns, the fallback's) save, load and go on exactly."""
    from optbench.checkpoint import load, save
    from optbench.config import expand
    from optbench.train import Trainer

    variants = {f"{k}{i}": {"optimizer": o} for k, opts in MODERN_VARIANTS.items() for i, o in enumerate(opts)}
    variants["lookahead_muon"] = {"optimizer": {"name": "lookahead", "lr": 0.02, "inner": {"name": "muon"}}}
    cfgs = expand({**BASE_SF, "model": {"hidden": [5, 4], "norm": "batch"}, "train": {"epochs": 6, "batch_size": 32},
                   "optimizer": {"name": "adam"}, "variants": variants})
    saved = {}
    full = Trainer(cfgs).run(on_epoch=lambda rec: saved.setdefault(rec.epoch, rec.state()) if rec.epoch == 3 else None)
    assert {s["epoch"] for s in saved[3]} == {3}
    states = []
    for i, s in enumerate(saved[3]):
        save(tmp_path / f"{i}.npz", s)
        states.append(load(tmp_path / f"{i}.npz"))
    again = Trainer(cfgs).run(resume=states)
    for a, b in zip(full, again):
        assert a.status == b.status == "completed"
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])


def test_muon_ns_steps_per_replica():
    """A sweep over ns_steps stacks it into an (R, 1) column: each replica runs its own count."""
    grad, x0 = _problem(LAYOUT.P)
    x0 = np.stack([x0, x0])
    opt = build("muon", {**OPTIMIZERS.defaults("muon"), "lr": 0.02, "ns_steps": np.array([[2.0], [5.0]])}, layout=LAYOUT)
    theta = x0.copy()
    state, update = opt.init(theta), opt.bind(theta)
    for _ in range(5):
        d, state = update(grad(theta), state, theta)
        theta -= 0.02 * d
    for r, k in enumerate((2, 5)):
        solo, _ = run_ours("muon", {"lr": 0.02, "ns_steps": k}, x0[r], grad, steps=5, layout=LAYOUT)
        np.testing.assert_allclose(theta[r], solo[-1, 0], rtol=1e-13, atol=1e-15)
    assert not np.allclose(theta[0], theta[1])
