"""The two sides of every comparison, doing the same work: optbench and PyTorch (and scikit-learn) runners.

A `Spec` is one piece of work: data, net, loss, batch size, epochs, replicas R, dtype. Every runner
trains it and returns a `Run`: the seconds of the timed part, and what it did (steps per replica,
replicas, weight shapes, the first epoch's batch sizes), so a test can check that both sides did the
same work. Two kinds of runner:

- loop: the whole training loop as a user runs it (per-epoch shuffles or random batches, steps, the
  epoch's mean cost and accuracy over its batches and the gradient norm); set-up, the epoch-0
  evaluation and the final evaluation are outside the timed part on both sides, and so are the first
  `spec.warmup` epochs (first-step allocations, Adam's state) when set.
- step: the optimizer steps alone on batches gathered once (no shuffles, no metrics).

PyTorch forms: `default` (torch.optim.Adam as constructed by default: the per-tensor loop on CPU),
`foreach`, `fused`, and `bmm`: the R replicas as (R, out, in) weights trained together with
torch.baddbmm and fused Adam, what a user with many seeds would write. The other forms train the R
replicas one after another, as a loop over seeds does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

FORMS = ("default", "foreach", "fused")
ADAM_KW = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


@dataclass(frozen=True)
class Spec:
    """One piece of work; `data` is an optbench data section (standardized by optbench on both sides)."""

    data: dict = field(default_factory=lambda: {"name": "moons", "n_samples": 300, "noise": 0.2, "seed": 3})
    hidden: tuple = (5, 2)
    loss: str = "bce"
    batch: int = 64
    epochs: int = 10
    R: int = 1
    dtype: str = "float64"
    lr: float = 7e-4
    iterations: int | None = None  # random batches (sampling: random) of this many steps per epoch
    warmup: int = 0  # loops: the first epochs run but are not timed (first-step allocations, Adam state, caches)

    def with_(self, **kw) -> "Spec":
        return replace(self, **kw)

    def configs(self) -> list[dict]:
        """The resolved optbench run configs (R seeds of one Adam variant; no early stopping, no divergence stop)."""
        from optbench.config import expand

        train = {"epochs": self.epochs, "batch_size": self.batch, "dtype": self.dtype, "diverge_factor": None}
        if self.iterations:
            train.update(sampling="random", iterations_per_epoch=self.iterations)
        return expand({"name": "bench", "seeds": list(range(self.R)), "data": dict(self.data),
                       "model": {"hidden": list(self.hidden), "activation": "relu", "init": "he"}, "loss": self.loss,
                       "optimizer": {"name": "adam", "lr": self.lr}, "train": train})


@dataclass
class Run:
    """What one runner did: timed seconds, steps per replica, replicas, weight shapes (out, in), first epoch's batch
    sizes, and the steps per replica inside the timed part (all of them unless warm-up epochs were left out)."""

    side: str
    seconds: float
    steps: int
    R: int
    shapes: tuple
    batches: tuple
    timed_steps: int = 0

    def __post_init__(self):
        self.timed_steps = self.timed_steps or self.steps

    @property
    def per_replica_step_us(self) -> float:
        return self.seconds / (self.timed_steps * self.R) * 1e6


def _timed_steps(spec: Spec, steps: int) -> int:
    """Steps per replica in the timed epochs (every epoch has the same number of steps)."""
    return steps * (spec.epochs - spec.warmup) // spec.epochs


def _dims(spec: Spec, D: int, C: int) -> list[tuple[int, int]]:
    d = [D, *spec.hidden, C]
    return [(o, i) for i, o in zip(d[:-1], d[1:])]


# ---------------------------------------------------------------- optbench


def optbench_loop(spec: Spec) -> Run:
    """optbench's Trainer.run (no file I/O): from epoch 0's row to the last epoch's row."""
    from optbench.train import Trainer

    tr = Trainer(spec.configs())
    marks, last = [], {}

    def on_epoch(rec):
        marks.append(time.perf_counter())
        last["step"] = rec.metrics["step"]

    tr.run(on_epoch=on_epoch)
    steps = int(max(last["step"])) if hasattr(last["step"], "__len__") else int(last["step"])
    return Run("optbench", marks[-1] - marks[spec.warmup], steps, tr.R, tuple(_dims(spec, tr.data.D, tr.data.C)),
               tuple(b - a for a, b in tr.loader.bounds), _timed_steps(spec, steps))


def optbench_steps(spec: Spec):
    """(run, the Run it returns): spec.epochs passes over the trainer's compiled steps plus Adam's update, data
    gathered once (no shuffles, no metrics). Uses Trainer internals (steps, loader, rules)."""
    import numpy as np

    from optbench.train import Trainer

    tr = Trainer(spec.configs())
    steps = tr.steps
    tr.loader.gather(1)
    opt = tr.rules[0].opt
    state, update = [opt.init(tr.theta)], opt.bind(tr.theta)
    lr_col = np.full((tr.R, 1), spec.lr, dtype=tr.dtype)
    buf = np.empty_like(tr.theta)
    shapes, batches = tuple(_dims(spec, tr.data.D, tr.data.C)), tuple(b - a for a, b in tr.loader.bounds)

    def run() -> Run:
        n = 0
        t = time.perf_counter()
        for _ in range(spec.epochs):
            for f in steps:
                f()
                d, state[0] = update(tr.grad, state[0], tr.theta)
                np.multiply(d, lr_col, out=buf)
                tr.theta -= buf
                n += 1
        return Run("optbench-step", time.perf_counter() - t, n, tr.R, shapes, batches)

    return run


# ---------------------------------------------------------------- PyTorch


def _torch_data(spec: Spec):
    """The training split optbench builds (same examples, same standardization) as torch tensors."""
    import torch

    from optbench.config import load_data

    split = load_data(spec.configs()[0]["data"])
    dt = getattr(torch, spec.dtype)
    X = torch.as_tensor(split.train.X, dtype=dt)
    if spec.loss == "bce":
        y = torch.as_tensor(split.train.y, dtype=dt).reshape(-1, 1)
        C = 1
    else:
        y = torch.as_tensor(split.train.y, dtype=torch.long)
        C = split.train.n_classes
    return X, y, C


def _lossf(spec: Spec):
    import torch

    return torch.nn.BCEWithLogitsLoss() if spec.loss == "bce" else torch.nn.CrossEntropyLoss()


def _net(spec: Spec, D: int, C: int, seed: int):
    import torch

    torch.manual_seed(seed)
    layers = []
    for o, i in _dims(spec, D, C):
        layers += [torch.nn.Linear(i, o, dtype=getattr(torch, spec.dtype)), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def _batches(spec: Spec, N: int, gen):
    """This epoch's index batches: a shuffle cut into batches, or `iterations` random batches."""
    import torch

    if spec.iterations:
        return [torch.randint(0, N, (spec.batch,), generator=gen) for _ in range(spec.iterations)]
    perm = torch.randperm(N, generator=gen)
    return [perm[s : s + spec.batch] for s in range(0, N, spec.batch)]


def _correct(Z, y, bce: bool):
    return ((Z > 0).to(y.dtype) == y).sum() if bce else (Z.argmax(1) == y).sum()


def torch_loop(spec: Spec, form: str = "default") -> Run:
    """PyTorch's training loop, replica after replica: per epoch a shuffle, the steps, the epoch's mean cost and
    accuracy over its batches (logits kept as seen, as optbench does) and the gradient norm."""
    import torch

    if form == "bmm":
        return torch_bmm_loop(spec)
    X, y, C = _torch_data(spec)
    N, D = X.shape
    bce = spec.loss == "bce"
    lossf = _lossf(spec)
    nets = [_net(spec, D, C, r) for r in range(spec.R)]
    opts = [torch.optim.Adam(n.parameters(), lr=spec.lr, **ADAM_KW[form]) for n in nets]
    gens = [torch.Generator().manual_seed(r) for r in range(spec.R)]
    steps, first, seconds = 0, None, 0.0
    for net, opt, gen in zip(nets, opts, gens):
        for e in range(spec.epochs):
            t = time.perf_counter()
            batches = _batches(spec, N, gen)
            first = first or tuple(len(b) for b in batches)
            cost = torch.zeros((), dtype=X.dtype)
            correct = torch.zeros((), dtype=torch.long)
            n = 0
            for idx in batches:
                opt.zero_grad()
                Z = net(X[idx])
                loss = lossf(Z, y[idx])
                loss.backward()
                opt.step()
                steps += 1
                with torch.no_grad():
                    cost += loss * len(idx)
                    correct += _correct(Z, y[idx], bce)
                    n += len(idx)
            with torch.no_grad():
                _ = (cost / n).item(), (correct / n).item()
                _ = torch.sqrt(sum((p.grad ** 2).sum() for p in net.parameters())).item()
            if e >= spec.warmup:
                seconds += time.perf_counter() - t
    return Run(f"torch-{form}", seconds, steps // spec.R, spec.R, tuple(tuple(m.weight.shape) for m in nets[0][::2]), first,
               _timed_steps(spec, steps // spec.R))


class _Bmm:
    """R replicas of the MLP as (R, out, in) weights: one baddbmm per layer for all of them."""

    def __init__(self, spec: Spec, D: int, C: int):
        import torch

        g = torch.Generator().manual_seed(0)
        dt = getattr(torch, spec.dtype)
        self.W, self.b = [], []
        for o, i in _dims(spec, D, C):
            bound = 1 / math.sqrt(i)  # nn.Linear's default init
            self.W.append((torch.rand(spec.R, o, i, generator=g, dtype=dt) * 2 - 1).mul_(bound).requires_grad_())
            self.b.append((torch.rand(spec.R, 1, o, generator=g, dtype=dt) * 2 - 1).mul_(bound).requires_grad_())

    def params(self):
        return self.W + self.b

    def __call__(self, H):
        import torch

        for l, (W, b) in enumerate(zip(self.W, self.b)):
            H = torch.baddbmm(b, H, W.transpose(1, 2))
            if l < len(self.W) - 1:
                H = torch.relu(H)
        return H


def _bmm_loss(spec: Spec, Z, Yb):
    """Each replica's mean loss, summed over replicas (so each replica gets its own mean-loss gradient): (R,) and sum."""
    import torch.nn.functional as F

    if spec.loss == "bce":
        per = F.binary_cross_entropy_with_logits(Z, Yb, reduction="none").mean(dim=(1, 2))
    else:
        R, B, C = Z.shape
        per = F.cross_entropy(Z.reshape(R * B, C), Yb.reshape(R * B), reduction="none").reshape(R, B).mean(1)
    return per


def _bmm_order(spec: Spec, N: int, gen):
    """(R, N_e) example indices for this epoch: a shuffle per replica, or random batches."""
    import torch

    if spec.iterations:
        return torch.randint(0, N, (spec.R, spec.iterations * spec.batch), generator=gen)
    return torch.argsort(torch.rand(spec.R, N, generator=gen), dim=1)


def torch_bmm_loop(spec: Spec) -> Run:
    """The R replicas trained together: per-replica shuffles, baddbmm layers, fused Adam, per-epoch metrics."""
    import torch

    X, y, C = _torch_data(spec)
    N, D = X.shape
    bce = spec.loss == "bce"
    net = _Bmm(spec, D, C)
    opt = torch.optim.Adam(net.params(), lr=spec.lr, fused=True)
    gen = torch.Generator().manual_seed(0)
    steps, first, seconds = 0, None, 0.0
    for e in range(spec.epochs):
        t = time.perf_counter()
        order = _bmm_order(spec, N, gen)
        n_e = order.shape[1]
        bounds = [(s, min(s + spec.batch, n_e)) for s in range(0, n_e, spec.batch)]
        first = first or tuple(b - a for a, b in bounds)
        cost = torch.zeros(spec.R, dtype=X.dtype)
        correct = torch.zeros(spec.R, dtype=torch.long)
        for a, b in bounds:
            idx = order[:, a:b]
            Xb, Yb = X[idx], y[idx]  # (R, B, D), (R, B, 1) or (R, B)
            opt.zero_grad()
            Z = net(Xb)
            per = _bmm_loss(spec, Z, Yb)
            per.sum().backward()
            opt.step()
            steps += 1
            with torch.no_grad():
                cost += per * (b - a)
                correct += ((Z > 0).to(Yb.dtype) == Yb).sum(dim=(1, 2)) if bce else (Z.argmax(2) == Yb).sum(1)
        with torch.no_grad():
            _ = (cost / n_e).tolist(), (correct / n_e).tolist()
            _ = torch.sqrt(sum((p.grad ** 2).flatten(1).sum(1) for p in net.params())).tolist()
        if e >= spec.warmup:
            seconds += time.perf_counter() - t
    return Run("torch-bmm", seconds, steps, spec.R, tuple(tuple(W.shape[1:]) for W in net.W), first, _timed_steps(spec, steps))


def torch_steps(spec: Spec, form: str = "default"):
    """A function running spec.epochs passes of PyTorch steps on batches gathered once (no shuffles, no metrics)."""
    import torch

    X, y, C = _torch_data(spec)
    N, D = X.shape
    lossf = _lossf(spec)
    gen = torch.Generator().manual_seed(0)
    if form == "bmm":
        net = _Bmm(spec, D, C)
        opt = torch.optim.Adam(net.params(), lr=spec.lr, fused=True)
        order = _bmm_order(spec, N, gen)
        batches = [(X[order[:, a : a + spec.batch]], y[order[:, a : a + spec.batch]]) for a in range(0, order.shape[1], spec.batch)]
        shapes = tuple(tuple(W.shape[1:]) for W in net.W)
        loss_of = lambda Xb, Yb: _bmm_loss(spec, net(Xb), Yb).sum()  # noqa: E731
        sequential = 1
    else:
        nets = [_net(spec, D, C, r) for r in range(spec.R)]
        opts = [torch.optim.Adam(n.parameters(), lr=spec.lr, **ADAM_KW[form]) for n in nets]
        batches = [(X[i], y[i]) for i in _batches(spec, N, gen)]
        shapes = tuple(tuple(m.weight.shape) for m in nets[0][::2])
        sequential = spec.R
    sizes = tuple(len(Yb[0]) if form == "bmm" else len(Yb) for _, Yb in batches)

    def run() -> Run:
        n = 0
        t = time.perf_counter()
        for r in range(sequential):
            if form != "bmm":
                net_r, opt_r = nets[r], opts[r]
            for _ in range(spec.epochs):
                for Xb, Yb in batches:
                    if form == "bmm":
                        opt.zero_grad()
                        loss_of(Xb, Yb).backward()
                        opt.step()
                    else:
                        opt_r.zero_grad()
                        lossf(net_r(Xb), Yb).backward()
                        opt_r.step()
                    n += 1
        return Run(f"torch-{form}-step", time.perf_counter() - t, n // sequential, spec.R, shapes, sizes)

    return run


# ---------------------------------------------------------------- scikit-learn


def sklearn_loop(spec: Spec) -> Run:
    """MLPClassifier(solver=adam).fit, replica after replica; the timed part includes fit's own set-up (input
    checks, initialization), which cannot be separated from its loop."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from optbench.config import load_data

    if spec.iterations or spec.warmup or spec.loss not in ("bce", "softmax_ce"):
        raise ValueError("scikit-learn's fit takes shuffled epochs with a classification loss, timed whole")
    split = load_data(spec.configs()[0]["data"])
    X, y = split.train.X.astype(spec.dtype), split.train.y
    N = len(X)
    steps, clf = 0, None
    t = time.perf_counter()
    for r in range(spec.R):
        clf = MLPClassifier(hidden_layer_sizes=spec.hidden, activation="relu", solver="adam", learning_rate_init=spec.lr,
                            batch_size=spec.batch, max_iter=spec.epochs, tol=0.0, n_iter_no_change=spec.epochs + 1,
                            shuffle=True, random_state=r, alpha=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        assert clf.t_ == clf.n_iter_ * N  # examples seen: whole epochs of N
        steps += clf.n_iter_ * math.ceil(N / spec.batch)
    seconds = time.perf_counter() - t
    sizes = tuple(min(spec.batch, N - s) for s in range(0, N, spec.batch))
    return Run("sklearn", seconds, steps // spec.R, spec.R, tuple(tuple(W.shape[::-1]) for W in clf.coefs_), sizes)
