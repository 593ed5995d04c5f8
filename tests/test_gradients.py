"""Numeric gradient checks (float64, five-point differences) of every backward pass, alone and in whole nets."""

import numpy as np
import pytest

from optbench.gradcheck import check_net, numeric_grad, rel_error
from optbench.layers import ACTIVATIONS, norm_backward, norm_forward
from optbench.losses import LOSSES, l2_penalty
from optbench.model import MLP

SMOOTH = ["tanh", "sigmoid", "identity"]
KINKED = ["relu", "leaky_relu", "elu"]  # elu: a kink in its second derivative


def _targets(loss, C, B, rng):
    if loss == "bce":
        return 2.0 * (rng.random((1, 1, B)) < 0.5) - 1.0  # bce reads signed targets 2y - 1
    if loss == "softmax_ce":
        return np.eye(C)[rng.integers(0, C, B)].T[None]
    return rng.standard_normal((1, C, B))


@pytest.mark.parametrize("name", SMOOTH + KINKED)
def test_activation_backward(name):
    rng = np.random.default_rng(0)
    act = ACTIVATIONS.build(name, {})
    Z = rng.standard_normal((2, 4, 5))
    Z[np.abs(Z) < 1e-2] += 0.1  # keep finite differences off the kinks at 0
    dout = rng.standard_normal(Z.shape)

    def f(z):
        A = z.copy()
        act.forward(A)
        return float((A * dout).sum())

    A = Z.copy()
    act.forward(A)
    dA = dout.copy()
    act.backward(dA, A)
    assert rel_error(dA, numeric_grad(f, Z.copy(), 1e-5 if name in KINKED else 1e-3)) < 1e-7


@pytest.mark.parametrize("loss,C", [("bce", 1), ("softmax_ce", 4), ("mse", 3)])
def test_loss_gradient_and_value(loss, C):
    rng = np.random.default_rng(1)
    L = LOSSES.build(loss, {})
    B = 6
    Z = rng.standard_normal((2, C, B)) * 3
    Y = np.concatenate([_targets(loss, C, B, rng), _targets(loss, C, B, rng)])
    dZ = np.empty_like(Z)
    cost = L.value_grad(Z, Y, dZ)
    num = numeric_grad(lambda z: float(L.value(z, Y).sum() / B), Z.copy())
    assert rel_error(dZ, num) < 1e-7
    dZ2 = np.empty_like(Z)
    L.grad(Z, Y, dZ2)
    np.testing.assert_array_equal(dZ, dZ2)
    np.testing.assert_allclose(cost, L.value(Z, Y), rtol=1e-14)


def test_loss_values_against_formulas():
    """The costs themselves, against the textbook definitions."""
    rng = np.random.default_rng(2)
    z = rng.standard_normal((1, 1, 7))
    y = (rng.random((1, 1, 7)) < 0.5) * 1.0
    p = 1 / (1 + np.exp(-z))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum()
    np.testing.assert_allclose(LOSSES.build("bce", {}).value(z, 2 * y - 1), [bce], rtol=1e-12)
    ys = 0.9 * y + 0.05  # smoothed labels: the cost is still -(y log p + (1 - y) log(1 - p))
    smooth = -(ys * np.log(p) + (1 - ys) * np.log(1 - p)).sum()
    np.testing.assert_allclose(LOSSES.build("bce", {}).value(z, 2 * ys - 1), [smooth], rtol=1e-12)
    Z = rng.standard_normal((1, 3, 7))
    labels = rng.integers(0, 3, 7)
    Y = np.eye(3)[labels].T[None]
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    ce = -np.log(P[0, labels, np.arange(7)]).sum()
    np.testing.assert_allclose(LOSSES.build("softmax_ce", {}).value(Z, Y), [ce], rtol=1e-12)
    T = rng.standard_normal((1, 3, 7))
    np.testing.assert_allclose(LOSSES.build("mse", {}).value(Z, T), [((Z - T) ** 2).mean(axis=1).sum()], rtol=1e-12)


def test_bce_is_stable_for_huge_logits():
    L = LOSSES.build("bce", {})
    Z = np.array([[[800.0, -800.0]]])
    Y = np.array([[[-1.0, 1.0]]])  # signed: y = 0, y = 1
    dZ = np.empty_like(Z)
    cost = L.value_grad(Z, Y, dZ)
    np.testing.assert_allclose(cost, [1600.0])
    np.testing.assert_allclose(dZ, [[[0.5, -0.5]]])


@pytest.mark.parametrize("axis", [-1, -2])
def test_norm_backward(axis):
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((2, 4, 6))
    gamma = rng.standard_normal((2, 4, 1))
    beta = rng.standard_normal((2, 4, 1))
    dout = rng.standard_normal(Z.shape)
    out, cache = norm_forward(Z, gamma, beta, axis)
    dZ, dgamma, dbeta = norm_backward(dout, gamma, cache, axis)
    f = lambda z, g, b: float((norm_forward(z, g, b, axis)[0] * dout).sum())  # noqa: E731
    assert rel_error(dZ, numeric_grad(lambda z: f(z, gamma, beta), Z.copy())) < 1e-7
    assert rel_error(dgamma, numeric_grad(lambda g: f(Z, g, beta), gamma.copy())) < 1e-7
    assert rel_error(dbeta, numeric_grad(lambda b: f(Z, gamma, b), beta.copy())) < 1e-7
    # the output is normalized along the axis
    xhat = (out - beta) / gamma
    np.testing.assert_allclose(xhat.mean(axis=axis), 0, atol=1e-12)


def test_l2_penalty_and_gradient():
    rng = np.random.default_rng(4)
    theta = rng.standard_normal((2, 9))
    mask = (rng.random(9) < 0.6) * 1.0
    l2 = np.array([[0.1], [0.3]])
    np.testing.assert_allclose(l2_penalty(theta, mask, l2), 0.5 * l2[:, 0] * ((theta**2) * mask).sum(axis=1))
    num = numeric_grad(lambda t: float(l2_penalty(t, mask, l2).sum()), theta.copy())
    assert rel_error(l2 * mask * theta, num) < 1e-7


def _net_case(act, loss, C, norm, dropout, seed=0, hidden=(5, 4)):
    rng = np.random.default_rng(seed)
    net = MLP([3, *hidden, C], ACTIVATIONS.build(act, {}), LOSSES.build(loss, {}), norm=norm, dropout=dropout)
    theta = net.init_params([("xavier", {})], [np.random.default_rng(seed + 1)])
    theta += 0.1 * rng.standard_normal(theta.shape)  # gamma/beta/biases away from their exact initial values
    B = 7
    A0 = np.ones((1, 4, B))
    A0[:, :3] = rng.standard_normal((1, 3, B))
    return net, theta, A0, _targets(loss, C, B, rng)


@pytest.mark.parametrize("act", SMOOTH + KINKED)
@pytest.mark.parametrize("loss,C", [("bce", 1), ("softmax_ce", 3), ("mse", 2)])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("dropout", [False, True])
def test_whole_net_gradients(act, loss, C, norm, dropout):
    """Every entry of every parameter, on every path the net trains through (fused and general on plain nets)."""
    net, theta, A0, Y = _net_case(act, loss, C, norm, dropout)
    stats = check_net(net, theta, A0, Y, l2=0.05, keep=np.full((1, 1, 1), 0.7) if dropout else None, kinked=act in KINKED)
    assert {p for p, _ in stats} == ({"general"} if norm != "none" or dropout else {"fused", "general"})
    for key, s in stats.items():
        assert s["failed"] == 0, (key, s)
    for path in {p for p, _ in stats}:  # a unit near its kink can make many coordinates not checkable, never all
        assert sum(s["checked"] for (p, _), s in stats.items() if p == path) > 0


def test_deep_net_without_hidden_layers():
    """hidden: [] is logistic/softmax regression; its gradient checks too."""
    rng = np.random.default_rng(5)
    net = MLP([3, 3], ACTIVATIONS.build("relu", {}), LOSSES.build("softmax_ce", {}))
    theta = net.init_params([("xavier", {})], [rng])
    A0 = np.ones((1, 4, 9))
    A0[:, :3] = rng.standard_normal((1, 3, 9))
    Y = _targets("softmax_ce", 3, 9, rng)
    stats = check_net(net, theta, A0, Y, l2=0.1, kinked=True)
    assert all(s["failed"] == 0 and s["kinks"] == 0 and s["checked"] > 0 for s in stats.values())
    assert max(s["worst"] for s in stats.values()) < 1e-7


def test_replicas_are_independent_in_the_model():
    """Replica r of a batched forward/backward equals a solo pass with replica r's parameters."""
    rng = np.random.default_rng(6)
    R = 4
    net = MLP([3, 6, 2], ACTIVATIONS.build("tanh", {}), LOSSES.build("softmax_ce", {}), R=R, norm="batch")
    theta = rng.standard_normal((R, net.layout.P))
    A0 = np.ones((R, 4, 8))
    A0[:, :3] = rng.standard_normal((R, 3, 8))
    Y = np.eye(2)[rng.integers(0, 2, (R, 8))].transpose(0, 2, 1)
    grad = np.zeros_like(theta)
    cost = net.loss_grad(theta, grad, A0, Y, buffers=net.new_buffers())
    solo = MLP([3, 6, 2], ACTIVATIONS.build("tanh", {}), LOSSES.build("softmax_ce", {}), R=1, norm="batch")
    for r in range(R):
        g1 = np.zeros((1, net.layout.P))
        c1 = solo.loss_grad(theta[r : r + 1].copy(), g1, A0[r : r + 1], Y[r : r + 1], buffers=solo.new_buffers())
        np.testing.assert_allclose(c1, cost[r : r + 1], rtol=1e-13)
        np.testing.assert_allclose(g1[0], grad[r], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dims,act,loss", [([2, 5, 2, 1], "relu", "bce"), ([2, 4, 1, 3], "tanh", "softmax_ce"),
                                            ([3, 1], "relu", "mse")])
def test_fused_step_matches_its_oracle_the_general_loss_grad(dims, act, loss):
    """The training hot path (outer products for single outputs) gives loss_grad's gradient bit for bit."""
    rng = np.random.default_rng(7)
    net = MLP(dims, ACTIVATIONS.build(act, {}), LOSSES.build(loss, {}), R=3)
    theta = rng.standard_normal((3, net.layout.P))
    D, C = dims[0], dims[-1]
    A0 = np.ones((3, D + 1, 16))
    A0[:, :D] = rng.standard_normal((3, D, 16))
    Y = 2.0 * (rng.random((3, C, 16)) < 0.5) - 1.0
    if loss == "softmax_ce":
        Y = np.eye(C)[rng.integers(0, C, (3, 16))].transpose(0, 2, 1).copy()
    g1, g2 = np.zeros_like(theta), np.zeros_like(theta)
    net.loss_grad(theta, g1, A0, Y)
    Z = np.empty((3, C, 16))
    net.compile_step(theta, g2, A0, Y, Z)()
    np.testing.assert_array_equal(g1, g2)
