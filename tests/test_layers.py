"""The dense layer: CS231n's affine_forward/backward on optbench's layout, and a numeric gradient check."""

import numpy as np

from optbench.gradcheck import numeric_grad, rel_error
from optbench.layers import dense_backward, dense_forward

R, N_IN, N_OUT, B = 2, 4, 3, 5


def _layer(seed=0):
    """W (R, n_out, n_in+1) with its bias column, A (R, n_in+1, B) with its ones row, and dZ."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((R, N_OUT, N_IN + 1))
    A = np.concatenate([rng.standard_normal((R, N_IN, B)), np.ones((R, 1, B))], axis=1)
    return W, A, rng.standard_normal((R, N_OUT, B))


def affine_forward(x, w, b):
    """CS231n: out = x w + b, examples as rows."""
    return x @ w + b


def test_dense_is_cs231n_affine_with_examples_as_columns():
    W, A, dout = _layer()
    for r in range(R):
        x, w, b = A[r, :N_IN].T, W[r, :, :N_IN].T, W[r, :, N_IN]
        np.testing.assert_allclose(dense_forward(W, A)[r].T, affine_forward(x, w, b), rtol=1e-13)
    dW, dA = np.empty_like(W), np.empty((R, N_IN, B))
    dense_backward(dout, W, A, dW, dA)
    for r in range(R):  # CS231n's affine_backward: dx = dout w^T, dw = x^T dout, db = sum dout
        x, w, d = A[r, :N_IN].T, W[r, :, :N_IN].T, dout[r].T
        np.testing.assert_allclose(dA[r].T, d @ w.T, rtol=1e-13)
        np.testing.assert_allclose(dW[r, :, :N_IN].T, x.T @ d, rtol=1e-13)
        np.testing.assert_allclose(dW[r, :, N_IN], d.sum(axis=0), rtol=1e-13)


def test_dense_backward_is_the_numeric_gradient():
    W, A, dout = _layer(1)
    dW, dA = np.empty_like(W), np.empty((R, N_IN, B))
    dense_backward(dout, W, A, dW, dA)

    def f_W(w):
        return float((dense_forward(w, A) * dout).sum())

    def f_A(x):
        return float((dense_forward(W, np.concatenate([x, A[:, N_IN:]], axis=1)) * dout).sum())

    assert rel_error(dW, numeric_grad(f_W, W.copy(), 1e-5)) < 1e-8
    assert rel_error(dA, numeric_grad(f_A, A[:, :N_IN].copy(), 1e-5)) < 1e-8
    dW2 = np.empty_like(W)
    dense_backward(dout, W, A, dW2)  # no dA: the first layer's input is data
    np.testing.assert_array_equal(dW2, dW)
