"""The multilayer perceptron over R replicas, features-major: activations (R, D, B), parameters in theta (R, P).

Each dense layer's bias is the last column of its block (out, in+1) and every layer input carries a
row of ones, so a layer is one batched matmul. Per-batch-size workspaces hold every buffer the
forward and backward passes write, so a training step allocates (almost) nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optbench.init import INITIALIZERS
from optbench.layers import ACTIVATIONS, BN_MOMENTUM, Activation, dense_backward, dense_forward, norm_backward, norm_forward
from optbench.losses import LOSSES, Loss, l2_penalty
from optbench.params import Layout
from optbench.sections import Model

NORM_AXIS = {"batch": -1, "layer": -2}  # batch norm: statistics over examples; layer norm: over features


@dataclass
class Workspace:
    """Buffers for one batch size B: layer inputs with their ones row, outputs, gradients, caches."""

    B: int
    inputs: list  # inputs[l] (R, n_in+1, B) for l >= 1; inputs[0] is set per call
    pre: list  # pre[l] (R, n_out, B): the matmul result of layer l
    post: list  # post[l]: the activation output (before dropout) of hidden layer l
    dH: list  # dH[l] (R, n_out, B): gradient wrt hidden layer l's output
    dZ: np.ndarray  # (R, C, B)
    masks: list = field(default_factory=list)
    caches: list = field(default_factory=list)
    U: list = field(default_factory=list)


class MLP:
    """dims = [D, h1, ..., C]; hidden layers: dense -> [norm] -> activation -> [dropout]; output: dense -> loss."""

    def __init__(self, dims, activation: Activation, loss: Loss, *, norm="none", dropout=False, R=1, dtype=np.float64):
        self.dims = list(dims)
        self.L = len(self.dims) - 1
        self.act = activation
        self.loss = loss
        self.norm = norm
        self.dropout = dropout
        self.R = R
        self.dtype = np.dtype(dtype)
        self.layout = Layout.mlp(self.dims, norm != "none")
        self._dense = [b for b in self.layout.blocks if b.kind == "dense"]
        self._norms = {b.layer: b for b in self.layout.blocks if b.kind == "norm"}
        self._ws: dict[tuple[int, bool], Workspace] = {}
        self._views: dict[int, tuple] = {}

    # ---- parameters and buffers -------------------------------------------------------------

    def init_params(self, inits: list[tuple[str, dict]], gens: list[np.random.Generator]) -> np.ndarray:
        """theta (R, P): weights from each replica's initializer and generator, biases 0, gamma 1, beta 0."""
        theta = np.zeros((self.R, self.layout.P), dtype=self.dtype)
        for r, ((name, opts), rng) in enumerate(zip(inits, gens)):
            for blk in self.layout.blocks:
                v = self.layout.view(theta, blk)[r]
                if blk.kind == "dense":
                    v[:, :-1] = INITIALIZERS.build(name, opts, shape=(blk.shape[0], blk.shape[1] - 1), rng=rng)
                else:
                    v[0] = 1.0
        return theta

    def new_buffers(self) -> dict[str, np.ndarray]:
        """Batch-norm running statistics (R, dim, 1): state the optimizer never sees."""
        if self.norm != "batch":
            return {}
        out = {}
        for l in self._norms:
            out[f"running_mean{l}"] = np.zeros((self.R, self.dims[l], 1), dtype=self.dtype)
            out[f"running_var{l}"] = np.ones((self.R, self.dims[l], 1), dtype=self.dtype)
        return out

    def _param_views(self, buf: np.ndarray):
        """Dense blocks (R, out, in+1) and norm (gamma, beta) pairs (R, dim, 1) of a flat buffer, cached by identity."""
        key = id(buf)
        hit = self._views.get(key)
        if hit is not None and hit[0] is buf:
            return hit[1], hit[2]
        dense = [self.layout.view(buf, b) for b in self._dense]
        norms = {}
        for l, b in self._norms.items():
            v = self.layout.view(buf, b)
            norms[l] = (v[:, 0, :, None], v[:, 1, :, None])
        if len(self._views) > 16:
            self._views.clear()
        self._views[key] = (buf, dense, norms)
        return dense, norms

    def workspace(self, B: int, train: bool) -> Workspace:
        """Buffers for batch size B. Storage is (n, R, B), replica axis in the middle, so elementwise work on
        a layer's n x R x B values runs over contiguous memory; the lists hold (R, n, B) views for matmul
        (whose row stride R*B BLAS takes as its leading dimension)."""
        ws = self._ws.get((B, train))
        if ws is None:
            R, dt = self.R, self.dtype
            view = lambda a: a.transpose(1, 0, 2)  # noqa: E731
            inputs, pre, post, dH, pre_c, dH_c = [None], [None], [None], [None], [None], [None]
            for l in range(1, self.L):
                n = self.dims[l]
                inp = np.empty((n + 1, R, B), dtype=dt)
                inp[n] = 1.0  # the bias row
                inputs.append(view(inp))
                # without dropout the activation is the next layer's input; without norm the matmul
                # writes straight into the activation buffer and the activation works in place
                post_l = np.empty((n, R, B), dtype=dt) if (self.dropout and train) else inp[:n]
                pre_l = post_l if self.norm == "none" else np.empty((n, R, B), dtype=dt)
                post.append(view(post_l))
                pre.append(view(pre_l))
                pre_c.append(pre_l)
                dH_c.append(np.empty((n, R, B), dtype=dt))
                dH.append(view(dH_c[-1]))
            C = self.dims[-1]
            dZ = view(np.empty((C, R, B), dtype=dt))
            pre.append(view(np.empty((C, R, B), dtype=dt)))
            ws = Workspace(B, inputs, pre, post, dH, dZ, [None] * self.L, [None] * self.L, [None] * self.L)
            ws.pre_c, ws.dH_c = pre_c, dH_c
            self._ws[(B, train)] = ws
        return ws

    @property
    def fused(self) -> bool:
        """Whether compile_step trains with its own fused backward pass (plain nets) or with forward + backward."""
        return self.norm == "none" and not self.dropout

    # ---- passes -------------------------------------------------------------------------------

    def forward(self, theta, A0, *, train: bool, buffers=None, keep=None, drop_gens=None) -> np.ndarray:
        """Logits (R, C, B) for inputs A0 (R or broadcast, D+1, B) whose last row is ones."""
        B = A0.shape[-1]
        ws = self.workspace(B, train)
        dense, norms = self._param_views(theta)
        ws.inputs[0] = A0
        A = A0
        for l in range(1, self.L):
            Z = dense_forward(dense[l - 1], A, out=ws.pre[l])
            H = ws.post[l]
            if self.norm != "none":
                gamma, beta = norms[l]
                stats = None
                if self.norm == "batch" and not train:
                    stats = (buffers[f"running_mean{l}"], buffers[f"running_var{l}"])
                out, cache = norm_forward(Z, gamma, beta, NORM_AXIS[self.norm], stats)
                if self.norm == "batch" and train and buffers is not None:
                    for key, stat in ((f"running_mean{l}", cache[2]), (f"running_var{l}", cache[3])):
                        run = buffers[key]
                        run *= BN_MOMENTUM
                        run += (1.0 - BN_MOMENTUM) * stat
                ws.caches[l] = cache
                H[...] = out
            self.act.forward(H)
            if self.dropout and train:
                U = ws.U[l]
                if U is None:
                    U = ws.U[l] = np.empty(H.shape, dtype=H.dtype)  # C order: each replica's block contiguous for rng.random(out=)
                for r, g in enumerate(drop_gens):
                    g.random(out=U[r], dtype=U.dtype)  # Generator.random fills only an out= of its own dtype
                mask = ws.masks[l] = (U < keep) / keep
                np.multiply(H, mask, out=ws.inputs[l][:, : self.dims[l], :])
            A = ws.inputs[l]
        return dense_forward(dense[self.L - 1], A, out=ws.pre[self.L])

    def backward(self, theta, grad, ws: Workspace) -> None:
        """Fill grad (R, P) from ws.dZ, the gradient of the mean batch cost wrt the logits."""
        dense, norms = self._param_views(theta)
        gdense, gnorms = self._param_views(grad)
        dZ = ws.dZ
        for l in range(self.L, 0, -1):
            dH = ws.dH[l - 1] if l > 1 else None
            dense_backward(dZ, dense[l - 1], ws.inputs[l - 1], gdense[l - 1], dH)
            if l == 1:
                break
            if self.dropout and ws.masks[l - 1] is not None:
                dH *= ws.masks[l - 1]
            self.act.backward(dH, ws.post[l - 1])
            if self.norm != "none":
                gamma, _ = norms[l - 1]
                dH, dgamma, dbeta = norm_backward(dH, gamma, ws.caches[l - 1], NORM_AXIS[self.norm])
                gnorms[l - 1][0][...] = dgamma
                gnorms[l - 1][1][...] = dbeta
            dZ = dH

    def compile_step(self, theta, grad, A0, Y, Z, *, buffers=None, keep=None, drop_gens=None):
        """A no-argument training pass for fixed buffers: logits into Z (R, C, B), grad <- d(mean cost)/d theta.

        The hot path of training: every view is bound once, so a step is the NumPy calls and
        nothing else. The cost is not computed here; the loop gets it from Z once per epoch.
        """
        grad_fn = self.loss.grad
        if not self.fused:
            ws = self.workspace(A0.shape[-1], True)

            def general_step():
                np.copyto(Z, self.forward(theta, A0, train=True, buffers=buffers, keep=keep, drop_gens=drop_gens))
                grad_fn(Z, Y, ws.dZ)
                self.backward(theta, grad, ws)

            return general_step

        ws = self.workspace(A0.shape[-1], True)
        dense, _ = self._param_views(theta)
        gdense, _ = self._param_views(grad)
        L = self.L
        inputs = [A0] + ws.inputs[1:]
        inputs_T = [a.swapaxes(-1, -2) for a in inputs]
        W_T = [None] + [dense[l][:, :, :-1].swapaxes(-1, -2) for l in range(1, L)]
        pre, dH, dZ = ws.pre, ws.dH, ws.dZ
        pre_c, dH_c = ws.pre_c, ws.dH_c  # the same values, contiguous: activations run faster on them
        fwd, bwd = self.act
        matmul = np.matmul
        layers = list(range(1, L))
        # back through layer l+1 to its input: a product over its n_{l+1} outputs, which for a single
        # output (bce's logit) is an outer product, a broadcast multiply a third faster than R matmuls
        back = [(l, np.multiply if self.dims[l + 1] == 1 else matmul) for l in range(L - 1, 0, -1)]

        def step():
            for l in layers:
                matmul(dense[l - 1], inputs[l - 1], out=pre[l])
                fwd(pre_c[l])
            matmul(dense[L - 1], inputs[L - 1], out=Z)
            grad_fn(Z, Y, dZ)
            d = dZ
            for l, through in back:  # gradient of layer l+1's weights, then back through its input
                matmul(d, inputs_T[l], out=gdense[l])
                through(W_T[l], d, out=dH[l])
                bwd(dH_c[l], pre_c[l])
                d = dH[l]
            matmul(d, inputs_T[0], out=gdense[0])

        return step

    def loss_grad(self, theta, grad, A0, Y, *, buffers=None, keep=None, drop_gens=None) -> np.ndarray:
        """Training pass: (R,) sums of per-example costs over the batch; grad <- d(mean cost)/d theta."""
        Z = self.forward(theta, A0, train=True, buffers=buffers, keep=keep, drop_gens=drop_gens)
        ws = self.workspace(A0.shape[-1], True)
        cost = self.loss.value_grad(Z, Y, ws.dZ)
        self.backward(theta, grad, ws)
        return cost

    def objective(self, theta, A0, Y, grad=None, *, l2=0.0, buffers=None, keep=None, drop_gens=None) -> np.ndarray:
        """J (R,) = mean training-mode cost over the batch + 0.5 l2 sum W^2; with `grad`, grad <- dJ/dtheta.

        The regularized cost L-BFGS minimizes and gradcheck differentiates; the first-order loop adds
        the L2 gradient to the fused step's itself.
        """
        B = A0.shape[-1]
        if grad is None:
            J = self.loss.value(self.forward(theta, A0, train=True, buffers=buffers, keep=keep, drop_gens=drop_gens), Y) / B
        else:
            J = self.loss_grad(theta, grad, A0, Y, buffers=buffers, keep=keep, drop_gens=drop_gens) / B
        if np.any(l2):
            mask = self.layout.weight_mask().astype(self.dtype)
            J += l2_penalty(theta, mask, l2)
            if grad is not None:
                grad += l2 * mask * theta
        return J

    def hidden(self, theta, A0, *, buffers=None) -> list[np.ndarray]:
        """Test-mode hidden activations, one (R, h_l, B) copy per hidden layer (for activation histograms)."""
        self.forward(theta, A0, train=False, buffers=buffers)
        ws = self.workspace(A0.shape[-1], False)
        return [ws.post[l].copy() for l in range(1, self.L)]


def build(model_cfg: Model, loss_name: str, n_in: int, n_out: int, *, R: int, dtype) -> MLP:
    """An MLP from a validated `model` config section."""
    act = model_cfg.activation
    return MLP(
        [n_in, *model_cfg.hidden, n_out],
        ACTIVATIONS.build(act["name"], {k: v for k, v in act.items() if k != "name"}),
        LOSSES.build(loss_name, {}),
        norm=model_cfg.norm,
        dropout=model_cfg.drop_prob > 0,
        R=R,
        dtype=dtype,
    )
