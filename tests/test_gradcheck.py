"""`optbench gradcheck`: every shipped config passes, a wrong gradient in either path fails, kinks are set aside,
and the analytic gradients equal torch autograd's."""

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import CONFIGS
from optbench import model
from optbench.checks import gradcheck_runs, objective, verdict
from optbench.cli import app
from optbench.config import load_experiment
from optbench.gradcheck import check_net
from optbench.layers import ACTIVATIONS, NORM_EPS
from optbench.losses import LOSSES
from optbench.model import MLP
from optbench.problems import PROBLEMS
from optbench.report.gradcheck import print_gradcheck

SHIPPED = sorted(p.name for p in CONFIGS.glob("*.yaml"))
FAST = dict(examples=8, samples=4)


def _rows(name, **kw):
    return gradcheck_runs(load_experiment(CONFIGS / name), **{**FAST, **kw})


def _expected_paths(cfg):
    if cfg["data"]["name"] in PROBLEMS:
        return {"closed-form"}
    plain = cfg["model"]["norm"] == "none" and cfg["model"]["drop_prob"] == 0
    return {"fused", "general"} if plain else {"general"}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_passes(name, capsys):
    cfgs = load_experiment(CONFIGS / name)
    rows = gradcheck_runs(cfgs, **FAST)
    v = verdict(rows)
    assert v["ok"] and v["failed"] == 0 and v["checked"] > 0, v
    by_label = {c["label"]: c for c in cfgs}
    for label in {r["label"] for r in rows}:  # each checked net on every path its runs train through
        assert {r["path"] for r in rows if r["label"] == label} == _expected_paths(by_label[label])
    checked_or_same = {r["label"] for r in rows} | {s for r in rows for s in r["same"]}
    assert checked_or_same == set(by_label)  # every label is checked, or shares its net with a checked one
    assert print_gradcheck(rows) is True
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("PASS: worst rel err ")
    assert max(map(len, lines)) <= 100


def test_small_init_deep_net_passes_at_the_floor():
    """The 5-layer small-init net: its weight gradients are at rounding level (judged by the floor) and its
    hidden biases push units, whose pre-activations are tinier than h, across their kinks (not checkable)."""
    rows = {(r["path"], r["param"]): r for r in _rows("init-depth.yaml", samples=6) if r["label"] == "init-depth/5layer-small"}
    assert verdict(list(rows.values()))["ok"]
    for path in ("fused", "general"):
        for l in range(1, 6):
            assert rows[path, f"W{l}"]["at_floor"] == rows[path, f"W{l}"]["checked"]
        assert all(rows[path, f"b{l}"]["kinks"] == 6 for l in range(1, 5))
        assert rows[path, "b5"]["checked"] == 3 and rows[path, "b5"]["at_floor"] == 0  # the output bias: a real check


def _invoke(*args):
    res = CliRunner().invoke(app, ["gradcheck", *map(str, args), "--examples", "8", "--samples", "4"])
    return res.exit_code, res.output


def test_cli_exit_code_and_verdict_line():
    code, out = _invoke(CONFIGS / "moons-optimizers.yaml")
    assert code == 0, out
    assert out.splitlines()[-1].startswith("PASS")
    assert "fused" in out and "general" in out


def _scale_dense(net, grad, layer, factor):
    """Scale the weight part of dense layer `layer`'s gradient (one term of the backward pass)."""
    gdense, _ = net._param_views(grad)
    gdense[layer - 1][:, :, :-1] *= factor


def test_broken_fused_backward_fails(monkeypatch):
    original = MLP.compile_step

    def broken(self, theta, grad, *args, **kw):
        step = original(self, theta, grad, *args, **kw)

        def wrong():
            step()
            _scale_dense(self, grad, 1, 1.001)  # dW1 off by 0.1%

        return wrong

    monkeypatch.setattr(MLP, "compile_step", broken)
    rows = _rows("moons-optimizers.yaml")
    assert not verdict(rows)["ok"]
    assert [r["param"] for r in rows if r["failed"]] == ["W1"]
    assert {r["path"] for r in rows if r["failed"]} == {"fused"}  # the general path is untouched and passes
    code, out = _invoke(CONFIGS / "moons-optimizers.yaml")
    assert code == 1 and out.splitlines()[-1].startswith("FAIL")


def test_broken_general_backward_fails(monkeypatch):
    original = MLP.backward

    def broken(self, theta, grad, ws):
        original(self, theta, grad, ws)
        _scale_dense(self, grad, self.L, 0.999)

    monkeypatch.setattr(MLP, "backward", broken)
    rows = _rows("moons-optimizers.yaml")
    assert {(r["path"], r["param"]) for r in rows if r["failed"]} == {("general", "W3")}
    code, out = _invoke(CONFIGS / "moons-optimizers.yaml")
    assert code == 1 and out.splitlines()[-1].startswith("FAIL")


def test_broken_norm_backward_fails(monkeypatch):
    """A layer's backward in the general path (batch norm's dgamma), which batch-norm nets train with."""
    original = model.norm_backward

    def broken(dout, gamma, cache, axis):
        dZ, dgamma, dbeta = original(dout, gamma, cache, axis)
        return dZ, dgamma * 1.001, dbeta

    monkeypatch.setattr(model, "norm_backward", broken)
    cfgs = [c for c in load_experiment(CONFIGS / "spiral-regularization.yaml") if c["label"].endswith("batchnorm")]
    rows = gradcheck_runs(cfgs, **FAST)
    assert {r["param"] for r in rows if r["failed"]} == {"gamma1", "gamma2"}
    assert not verdict(rows)["ok"]


def _kinked_case():
    """A ReLU net whose hidden unit 0 sits exactly on its kink for every example (zero weights and bias)."""
    rng = np.random.default_rng(0)
    net = MLP([2, 3, 1], ACTIVATIONS.build("relu", {}), LOSSES.build("bce", {}))
    theta = net.init_params([("xavier", {})], [rng])
    named = net.layout.named(theta)
    named["W1"][0, 0] = 0.0
    named["b1"][0] = 0.0
    named["W2"][0, 0] = 1.5  # the unit matters for the cost
    named["b1"][0, 1:] = 0.1
    B = 6
    A0 = np.ones((1, 3, B))
    A0[0, :2] = rng.standard_normal((2, B))
    Y = 2.0 * (rng.random((1, 1, B)) < 0.5) - 1.0
    return net, theta, A0, Y


def test_a_kink_is_not_checkable_instead_of_failing(capsys):
    net, theta, A0, Y = _kinked_case()
    blind = check_net(net, theta, A0, Y, kinked=False)  # without detection the kink fails the check ...
    assert blind["fused", "b1"]["failed"] == 1
    stats = check_net(net, theta, A0, Y, kinked=True)  # ... with it, that coordinate is set aside
    assert stats["fused", "b1"]["kinks"] == 1 and stats["fused", "W1"]["kinks"] == 2
    assert all(s["failed"] == 0 for s in stats.values())
    rows = [{"label": "kinked", "path": p, "param": n, "same": [], **s} for (p, n), s in stats.items()]
    assert print_gradcheck(rows) is True
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("PASS") and "; 6 kinks, 0 failed" in last  # 3 coordinates on each of the 2 paths


# ---- torch autograd as the reference --------------------------------------------------------------


def _torch_grad(torch, obj, theta, act: str, loss: str):
    """dJ/dtheta (P,) by torch autograd for the same net, batch, dropout masks and L2."""
    import torch.nn.functional as F

    net = obj.net
    B = obj.A0.shape[-1]
    obj.probe(theta.copy())  # leaves this objective's dropout masks in the workspace
    masks = [None if m is None else torch.tensor(m[0]) for m in net.workspace(B, True).masks]
    t = torch.tensor(theta[0], requires_grad=True)
    blocks = {(b.kind, b.layer): t[b.offset : b.offset + b.size].reshape(b.shape) for b in net.layout.blocks}
    H = torch.tensor(obj.A0[0, :-1]).T  # (B, D), examples as rows as torch has them
    f = {"relu": F.relu, "tanh": torch.tanh}[act]
    l2 = 0.0
    for l in range(1, net.L + 1):
        Wb = blocks["dense", l]
        Z = F.linear(H, Wb[:, :-1], Wb[:, -1])
        l2 = l2 + (Wb[:, :-1] ** 2).sum()
        if l == net.L:
            break
        if net.norm == "batch":
            g = blocks["norm", l]
            Z = F.batch_norm(Z, None, None, g[0], g[1], training=True, eps=NORM_EPS)
        H = f(Z)
        if masks[l] is not None:
            H = H * masks[l].T
    Y = torch.tensor(obj.Y[0]).T
    if loss == "bce":
        data = F.binary_cross_entropy_with_logits(Z, (Y + 1) / 2)  # bce's targets are stored signed
    elif loss == "softmax_ce":
        data = F.cross_entropy(Z, Y)
    else:
        data = F.mse_loss(Z, Y)
    J = data + 0.5 * obj.l2 * l2
    J.backward()
    return J.item(), t.grad.numpy()


TORCH_CASES = [
    ("moons-optimizers.yaml", "moons-optimizers/adam"),  # ReLU, bce, the fused step
    ("init-depth.yaml", "init-depth/5layer-he"),  # 5 layers, softmax cross-entropy
    ("sine-regression.yaml", "sine-regression/adam"),  # tanh, mse
    ("spiral-regularization.yaml", "spiral-regularization/l2"),  # L2 on the weights
    ("spiral-regularization.yaml", "spiral-regularization/batchnorm"),
    ("spiral-regularization.yaml", "spiral-regularization/dropout"),  # with the mask the objective draws
]


@pytest.mark.parametrize("name,label", TORCH_CASES)
def test_analytic_gradient_equals_torch_autograd(name, label):
    import torch
    cfg = next(c for c in load_experiment(CONFIGS / name) if c["label"] == label)
    obj, theta = objective(cfg, examples=32)
    J, ref = _torch_grad(torch, obj, theta, cfg["model"]["activation"]["name"], cfg["loss"])
    assert obj.probe(theta.copy())[0] == pytest.approx(J, rel=1e-14)  # the cost itself, L2 included
    scale = np.abs(ref).max()
    assert scale > 1e-3
    for path, grad in obj.paths().items():
        err = np.abs(grad(theta.copy()) - ref).max() / scale
        assert err < 1e-12, (path, err)
    if cfg["model"]["norm"] == "none" and cfg["model"]["drop_prob"] == 0:
        assert set(obj.paths()) == {"fused", "general"}
    if cfg["model"]["drop_prob"] > 0:  # the mask torch was given really drops units
        assert any(m is not None and (m == 0).any() for m in obj.net.workspace(32, True).masks)
