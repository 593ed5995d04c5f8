"""The training loop: the only place parameters change.

Runs that share data, architecture, loss, optimizer kind and training shape form a *group* and train
as one vectorized pass over a replica axis; the hyperparameters that differ between them become
(R, 1) arrays. A replica that diverges or stops early is frozen and the others go on. Randomness comes
from per-run generators spawned from each run's seed, so a run's numbers do not depend on its group.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np

from optbench.checkpoint import advanced, combine, rows_of
from optbench import compat, finetune, lrmult
from optbench.budget import EVAL_CHUNK
from optbench.clip import clipper
from optbench.datacache import DataCache
from optbench.losses import encode_targets, l2_penalty
from optbench.model import MLP, build
from optbench.optim import OPTIMIZERS, is_closure_optimizer
from optbench.records import EpochRecord, Never, RunResult, Stopped, fingerprint, norms, update_timing
from optbench.rules import make_rules
from optbench.snapshots import Recorder
from optbench.sharpness import Sharpness


STREAMS = ("init", "shuffle", "dropout", "noise", "mixup")  # one generator per purpose, in this order


class _Data:
    """The training and validation parts as matrices [X^T; 1; Y^T] of shape (D+1+C, N).

    Small data is stored features-major, so gathering an epoch's columns stays in cache. Large
    data (over ROWS_MAJOR_BYTES) is stored examples-major, (N, D+1+C), and `train` is its transposed
    view: a batch is then a gather of whole rows, ten times faster than of scattered columns.
    """

    ROWS_MAJOR_BYTES = 16 * 2**20

    def __init__(self, split, loss: str, dtype):
        self.D = split.train.X.shape[1]
        N, D = split.train.X.shape
        C = _targets(split.train, loss).shape[1]
        self.rows = None
        if N * (D + 1 + C) * np.dtype(dtype).itemsize > self.ROWS_MAJOR_BYTES:
            self.rows = self._matrix(split.train, loss, dtype)
            self.train = self.rows.T
        else:
            self.train = np.ascontiguousarray(self._matrix(split.train, loss, dtype).T)
        self.val = None if split.val is None else self._matrix(split.val, loss, dtype).T
        self.test = None if split.test is None else self._matrix(split.test, loss, dtype).T
        self.C = C
        self.N = N

    @classmethod
    def shared(cls, split, loss: str, dtype):
        """(layout, split with its features as read-only views of the layout's matrices): one copy of the data,
        shared by every group that trains on it (DataCache.derived), which none of them may write."""
        data = cls(split, loss, dtype)
        parts = {}
        for name in ("train", "val", "test"):
            m = getattr(data, name)
            if m is not None:
                m.flags.writeable = False
                parts[name] = dataclasses.replace(getattr(split, name), X=m[: data.D].T)
        if data.rows is not None:
            data.rows.flags.writeable = False
        return data, dataclasses.replace(split, **parts)

    @staticmethod
    def _matrix(ds, loss, dtype):
        """(N, D+1+C) rows [x, 1, y], built in place in the target dtype (no float64 detour for float32)."""
        N, D = ds.X.shape
        Y = _targets(ds, loss)
        M = np.empty((N, D + 1 + Y.shape[1]), dtype=dtype)
        M[:, :D] = ds.X
        M[:, D] = 1.0
        M[:, D + 1 :] = Y
        return M


def _targets(ds, loss: str) -> np.ndarray:
    return encode_targets(loss, ds.y, ds.n_classes)


def _gens(seed: int) -> dict[str, np.random.Generator]:
    seqs = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(s) for name, s in zip(STREAMS, seqs)}


def _take(a: np.ndarray, idx: np.ndarray, axis: int, out: np.ndarray) -> None:
    """out <- a indexed by idx along axis. The indices are valid by construction, and mode="clip" spares
    the temporary that NumPy's default mode makes for out= (1.6x faster on moons, 2.7x on MNIST-sized rows)."""
    np.take(a, idx, axis=axis, out=out, mode="clip")


class Trainer:
    """One group's training: set up from resolved configs, then `run(on_epoch)` returns one RunResult per replica."""

    def __init__(self, cfgs: list[dict], *, record_activations: bool = False, cache: DataCache | None = None,
                 split=None):
        """`split` (a data.Split): train on these parts instead of loading cfgs[0]["data"] (sanity.py's tiny subset)."""
        self.cfgs = cfgs
        c0 = cfgs[0]
        self.R = R = len(cfgs)
        tr = c0["train"]
        self.dtype = dt = np.dtype(tr["dtype"])
        if split is None:
            cache = DataCache() if cache is None else cache  # validation's entry: loaded once, in dt
            self.data = cache.derived(c0["data"], dt, ("layout", c0["loss"]), lambda s: _Data.shared(s, c0["loss"], dt))
            self.split = cache.get(c0["data"], dt)  # its features are views of self.data's matrices
        else:
            self.split, self.data = split, _Data(split, c0["loss"], dt)
        self.net: MLP = build(c0["model"], c0["loss"], self.data.D, self.data.C, R=R, dtype=dt)
        self.gens = [_gens(c["seed"]) for c in cfgs]
        # runs with equal seeds see equal batches (a sweep's learning rates, say): their order is drawn once
        first: dict[int, int] = {}
        src = [first.setdefault(c["seed"], r) for r, c in enumerate(cfgs)]
        self._owners = sorted(first.values())  # the replicas whose shuffle streams are drawn
        self._inv = np.array([self._owners.index(s) for s in src])  # replica -> its owner's row
        inits = [(c["model"]["init"]["name"], {k: v for k, v in c["model"]["init"].items() if k != "name"}) for c in cfgs]
        self.compat = tr.get("compat", "none")
        init_rngs = [compat.init_rng(c["seed"]) if self.compat == "dlai" else g["init"] for c, g in zip(cfgs, self.gens)]
        self.theta = self.net.init_params(inits, init_rngs)
        self.grad = np.zeros_like(self.theta)
        self.buffers = self.net.new_buffers()
        finetune.start_from(self.net, self.theta, self.buffers, [c["model"] for c in cfgs])  # model.init_from
        self.frozen = finetune.frozen_rows(self.net.layout, [c["model"] for c in cfgs])  # (R, P) or None: model.freeze
        self.record_activations = record_activations
        self.epochs = tr["epochs"]
        self.lbfgs = is_closure_optimizer(c0["optimizer"]["name"])
        if self.lbfgs:  # one closure optimizer per replica (groups.group_key gives each its own group)
            self.opts = [OPTIMIZERS.build(c["optimizer"]["name"], {k: v for k, v in c["optimizer"].items() if k != "name"})
                         for c in cfgs]
            self.rules = []
            self._lbfgs_seconds = np.zeros(R)
        else:
            self.rules = make_rules(cfgs, max(self.epochs, 1), dt, layout=self.net.layout)  # epochs 0: epoch 0's lr is a 1-epoch run's first
        reg = [c["regularization"] for c in cfgs]
        col = lambda key: np.array([r[key] or 0.0 for r in reg], dtype=dt).reshape(R, 1)  # noqa: E731
        self.l2, self.noise, self.smooth, self.mixup = col("l2"), col("input_noise"), col("label_smoothing"), col("mixup")
        self.polyak = None if reg[0]["polyak"] is None else col("polyak")
        self.es = [r["early_stopping"] for r in reg]
        self.has_es = any(es is not None for es in self.es)
        self.keep = (1.0 - np.array([c["model"]["drop_prob"] for c in cfgs], dtype=dt)).reshape(R, 1, 1)
        self.diverge = np.array([c["train"]["diverge_factor"] or np.inf for c in cfgs], dtype=np.float64)
        self.mask = self.net.layout.weight_mask().astype(dt)
        self.batch_size = self.data.N if tr["batch_size"] == "full" else tr["batch_size"]
        self.augment = bool(self.noise.any() or self.mixup.any() or self.smooth.any())
        self.clip = clipper(cfgs, self.theta.shape[1], dt)  # None when no replica clips
        self.sharp_every = tr.get("sharpness_every", 0)
        self.sharp = None if not self.sharp_every else Sharpness(
            c0["model"], c0["loss"], self.data.train, self.data.D, self.data.C, l2=self.l2, seeds=[c["seed"] for c in cfgs])
        self.sharp_seconds = 0.0

    # ---- batches ------------------------------------------------------------------------------

    EPOCH_GATHER_BYTES = 64 * 2**20  # above this, gather batch by batch rather than a whole epoch at once

    def _plan(self):
        """Persistent buffers and one compiled step per batch.

        Each epoch gathers every replica's shuffled copy of the data into G (D+1+C, R, N_e) with one
        `take`; batch b reads the fixed slice b of G and writes its logits into slice b of Zall
        (C, R, N_e), from which the epoch's cost is computed once. So a step is only the model's
        NumPy calls and the optimizer's. For data too large to copy per epoch, each step gathers its
        own batch into a batch-sized G instead.
        """
        D, C, N, R = self.data.D, self.data.C, self.data.N, self.R
        tr = self.cfgs[0]["train"]
        B = self.batch_size
        M = self.data.train
        if tr["sampling"] == "random":
            n_e = (tr["iterations_per_epoch"] or math.ceil(N / B)) * B
        else:
            n_e = N
        self.n_epoch = n_e
        Zv = np.empty((C, R, n_e), dtype=self.dtype).transpose(1, 0, 2)
        self.Zall = Zv
        self.bounds = [(s, min(s + B, n_e)) for s in range(0, n_e, B)]
        common = dict(buffers=self.buffers, keep=self.keep,
                      drop_gens=[g["dropout"] for g in self.gens] if self.net.dropout else None)
        self.G = self.Gb = None
        if B >= N and tr["sampling"] == "epoch" and not self.augment:
            # full batch: the order of examples does not change the gradient, nothing to gather
            self.Yall = M[None, D + 1 :]
            return [self.net.compile_step(self.theta, self.grad, M[None, : D + 1], self.Yall, Zv, **common)]
        rows = D + 1 + C
        if self.data.rows is None and rows * R * n_e * self.dtype.itemsize <= self.EPOCH_GATHER_BYTES:
            self.G = np.empty((rows, R, n_e), dtype=self.dtype)
            self.G[D] = 1.0  # the bias input
            Gt = self.G.transpose(1, 0, 2)
            self.Yall = Gt[:, D + 1 :]
            return [self.net.compile_step(self.theta, self.grad, Gt[:, : D + 1, a:b], Gt[:, D + 1 :, a:b], Zv[:, :, a:b], **common)
                    for a, b in self.bounds]
        # large data: a batch buffer per batch size, filled just before each step (one buffer, warm in cache)
        self.Yall = np.empty((C, R, n_e), dtype=self.dtype).transpose(1, 0, 2)
        Mrows = self.data.rows
        steps = []
        bufs: dict[int, np.ndarray] = {}
        for a, b in self.bounds:
            if b - a not in bufs:
                shape = (R, b - a, rows) if Mrows is not None else (rows, R, b - a)
                bufs[b - a] = np.empty(shape, dtype=self.dtype)
            Gb = bufs[b - a]
            if Mrows is not None:  # gather whole rows (examples) into (R, B, rows); use it transposed
                Gv = Gb.transpose(2, 0, 1)  # (rows, R, B) view, the layout _augment expects
                take = lambda idx, Gb=Gb: _take(Mrows, idx, 0, Gb)  # noqa: E731
            else:
                Gv = Gb
                take = lambda idx, Gb=Gb: _take(M, idx, 1, Gb)  # noqa: E731
            Gt = Gv.transpose(1, 0, 2)
            inner = self.net.compile_step(self.theta, self.grad, Gt[:, : D + 1], Gt[:, D + 1 :], Zv[:, :, a:b], **common)

            def step(a=a, b=b, Gv=Gv, take=take, inner=inner):
                take(self._order[:, a:b])
                if self.augment:
                    self._augment(Gv)
                self.Yall[:, :, a:b] = Gv[D + 1 :].transpose(1, 0, 2)
                inner()

            steps.append(step)
        self.Gb = True
        return steps

    def _gather(self, e: int) -> np.ndarray | None:
        """Epoch e's example order (R, N_e), from each replica's seed (equal seeds, equal orders); fills G with
        the examples (in small-data mode)."""
        if self.G is None and self.Gb is None:
            return None
        N, R = self.data.N, self.R
        tr = self.cfgs[0]["train"]
        if tr["sampling"] == "random":
            uorder = np.stack([self.gens[o]["shuffle"].integers(0, N, size=self.n_epoch) for o in self._owners])
        elif self.batch_size >= N:
            uorder = np.broadcast_to(np.arange(N), (len(self._owners), N))
        elif self.compat == "dlai":
            state = self.__dict__.setdefault("_compat_state", np.random.RandomState())
            uorder = np.stack([compat.epoch_order(e - 1, N, self.cfgs[o]["seed"], state) for o in self._owners])
        else:
            uorder = self._permutation()
        shared = len(uorder) < R
        order = self._order = uorder[self._inv] if shared else uorder
        if self.G is not None:
            M, D = self.data.train, self.data.D
            G = self.G
            if shared:  # gather each distinct order once, then copy whole rows to the replicas sharing it
                if getattr(self, "_Gu", None) is None:
                    self._Gu = np.empty((G.shape[0], len(uorder), G.shape[2]), dtype=G.dtype)
                    self._Gu[D] = 1.0
                G = self._Gu
            if self.augment:  # mixup blends every row, the ones too: gather them afresh
                _take(M, uorder, 1, G)
            else:  # the features and the targets; the ones row stays as _plan set it (a quarter less on moons)
                _take(M[:D], uorder, 1, G[:D])
                _take(M[D + 1 :], uorder, 1, G[D + 1 :])
            if shared:
                _take(G, self._inv, 1, self.G)
            if self.augment:
                for a, b in self.bounds:
                    self._augment(self.G[:, :, a:b])
        return order

    PERM_KEY_BYTES = 16 * 2**20  # shuffle keys drawn ahead, at most 32 epochs' worth
    PACK_MAX_N = 2**16  # up to this many examples the index rides in the keys' low bits (see _permutation)

    def _permutation(self) -> np.ndarray:
        """This epoch's order (U, N) for the U distinct seeds: uniform permutations, several epochs drawn at a time.

        Each distinct seed's first replica fills its rows of keys from its own shuffle generator (drawing
        k epochs at once gives the same numbers as k draws of one), and sorting a row of iid uniform keys gives a uniform
        permutation. Positive doubles order as their bit patterns, so for N <= PACK_MAX_N each key's
        lowest bits are replaced by its position: a plain float sort (2.5x faster than argsort) then
        carries the positions along, and they are unique, so the order is the same for any sort
        algorithm, i.e. for any group. Keys equal in their remaining 36+ bits (probability N^2 / 2^37
        per row at most) keep their positions' order.
        """
        if getattr(self, "_perms", None) is None or self._perm_at == self._perms.shape[1]:
            U, N = len(self._owners), self.data.N
            keys = getattr(self, "_keys", None)
            if keys is None:
                k = max(1, min(32, self.PERM_KEY_BYTES // (8 * U * N)))
                keys = self._keys = np.empty((U, k, N))
            # where each stream stood before drawing ahead: a checkpoint's state is this one, advanced by the epochs used
            self._refill = [self.gens[r]["shuffle"].bit_generator.state for r in self._owners]
            for u, r in enumerate(self._owners):
                self.gens[r]["shuffle"].random(out=keys[u])
            if N <= self.PACK_MAX_N:
                bits = keys.view(np.uint64)
                low = np.uint64((1 << max(1, (N - 1).bit_length())) - 1)
                bits &= ~low
                bits |= np.arange(N, dtype=np.uint64)
                keys.sort(axis=2)
                bits &= low
                self._perms = bits.view(np.int64)
            else:
                self._perms = keys.argsort(axis=2)
            self._perm_at = 0
        self._perm_at += 1
        return np.ascontiguousarray(self._perms[:, self._perm_at - 1])  # take() is a third faster with it

    def _augment(self, G: np.ndarray) -> None:
        """Label smoothing, mixup and input noise on one gathered batch G (D+1+C, R, B), per replica."""
        D, C = self.data.D, self.data.C
        if self.smooth.any():
            eps = self.smooth.reshape(1, -1, 1)
            G[D + 1 :] *= 1.0 - eps
            if self.cfgs[0]["loss"] != "bce":  # bce's signed targets smooth towards 0, i.e. y towards 1/2
                G[D + 1 :] += eps / C
        if self.mixup.any():
            for r, g in enumerate(self.gens):
                a = self.mixup[r, 0]
                if a > 0:
                    lam = g["mixup"].beta(a, a)
                    perm = g["mixup"].permutation(G.shape[2])
                    G[:, r, :] = lam * G[:, r, :] + (1.0 - lam) * G[:, r, perm]
        if self.noise.any():
            for r, g in enumerate(self.gens):
                s = self.noise[r, 0]
                if s > 0:
                    G[:D, r, :] += s * g["noise"].standard_normal((D, G.shape[2]))

    # ---- evaluation ---------------------------------------------------------------------------

    def evaluate(self, theta: np.ndarray, M: np.ndarray, buffers) -> tuple[np.ndarray, np.ndarray]:
        """Test-mode mean cost (R,) and accuracy (R,) (NaN for regression) on a data matrix (D+1+C, N)."""
        D, N = self.data.D, M.shape[1]
        cost = np.zeros(self.R)
        correct = np.zeros(self.R)
        loss = self.net.loss
        for a in range(0, N, EVAL_CHUNK):
            part = M[:, a : a + EVAL_CHUNK]
            Z = self.net.forward(theta, part[None, : D + 1], train=False, buffers=buffers)
            Y = part[None, D + 1 :]
            cost += loss.value(Z, Y)
            if loss.correct is not None:
                correct += loss.correct(Z, Y)
        acc = correct / N if loss.correct is not None else np.full(self.R, np.nan)
        return cost / N, acc

    def _sharpness(self, e: int, theta: np.ndarray) -> np.ndarray:
        """The sharpness column at epoch e (R,), at the evaluated point theta (Polyak's average, schedule-free's x):
        measured every train.sharpness_every epochs and at the last, else NaN."""
        if self.sharp is None or (e % self.sharp_every and e != self.epochs):
            return np.full(self.R, np.nan)
        t = time.perf_counter()
        lam = self.sharp.probe(theta, e)
        self.sharp_seconds += time.perf_counter() - t
        return lam

    def _penalty(self, theta) -> np.ndarray | float:
        return l2_penalty(theta, self.mask, self.l2) if self.l2.any() else 0.0

    def _eval_val(self, theta, buffers) -> dict:
        """Test-mode validation cost and accuracy (NaN without a validation split)."""
        if self.data.val is None:
            nan = np.full(self.R, np.nan)
            return {"val_cost": nan, "val_acc": nan}
        vc, va = self.evaluate(theta, self.data.val, buffers)
        return {"val_cost": vc, "val_acc": va}

    def _eval_all(self, theta, buffers) -> dict:
        """Test-mode cost (with the L2 penalty) and accuracy on the training set, and the validation metrics."""
        tc, ta = self.evaluate(theta, self.data.train, buffers)
        return {"train_cost": tc + self._penalty(theta), "train_acc": ta, **self._eval_val(theta, buffers)}

    def _activations(self, theta, buffers) -> list[np.ndarray]:
        M = self.data.train[:, :256]
        return self.net.hidden(theta, M[None, : self.data.D + 1], buffers=buffers)

    # ---- the loop -----------------------------------------------------------------------------

    def run(self, on_epoch: Callable[[EpochRecord], None] | None = None, *,
            resume: list[dict] | None = None, stop=None) -> list[RunResult]:
        """Train; with `resume` (each replica's EpochRecord.state() of one epoch, maybe from other groups) go on
        from there, computing what the uninterrupted runs compute. Once `stop` (a threading.Event, or anything
        with is_set()) is set, training ends at the next step boundary and the live replicas are interrupted."""
        stopped = (stop or Never).is_set
        R, dt, net = self.R, self.dtype, self.net
        theta, grad = self.theta, self.grad
        init_fp = [fingerprint(theta[r]) for r in range(R)]
        init = theta.copy(), {k: v.copy() for k, v in self.buffers.items()}  # params_init.npz
        frozen = self.frozen
        acts0 = self._activations(theta, self.buffers) if self.record_activations and resume is None else None
        avg = theta.copy() if self.polyak is not None else None
        lstates = [o.init(theta[r]) for r, o in enumerate(self.opts)] if self.lbfgs else None
        steps_fns = None if self.lbfgs else self._plan()
        step_buf = np.empty_like(theta)
        lr_e = np.empty((R, 1), dtype=dt)
        # each rule updates its own rows of theta: contiguous row slices, views bound once; with per-parameter
        # multipliers (optimizer.lr_mult) its step size is lr_e * mult, an (n, P) array set each epoch
        slices, scaled = [], []
        for rule in self.rules:
            rule.start(theta[rule.sl])
            mult = lrmult.multiplier(net.layout, [c["optimizer"].get(lrmult.KEY) for c in self.cfgs[rule.sl]], dt)
            lr_r = lr_e[rule.sl] if mult is None else np.empty((rule.sl.stop - rule.sl.start, theta.shape[1]), dtype=dt)
            if mult is not None:
                scaled.append((lr_e[rule.sl], mult, lr_r))
            slices.append((rule, grad[rule.sl], theta[rule.sl], step_buf[rule.sl], lr_r))
        clip = self.clip
        l2m = self.l2 * self.mask if self.l2.any() else None
        active = np.ones(R, dtype=bool)
        end_epoch = np.full(R, self.epochs)
        status = ["completed"] * R
        reason = [""] * R
        snapshots: dict[int, tuple] = {}
        trace = Recorder(self.cfgs[0]["train"].get("snapshots_every", 0), R)  # snapshots.npz (train.snapshots_every)
        es_best = np.full(R, np.inf)
        es_wait = np.zeros(R, dtype=int)
        batch_fp = ["full"] * R
        log_iters = self.cfgs[0]["train"]["log_iterations"]
        polyak = None if avg is None else (1.0 - self.polyak)
        t0 = time.perf_counter()
        clock = time.perf_counter
        steps = 0
        e = done = 0
        averaged = [rule for rule in self.rules if rule.opt.evaluate_at is not None]
        at = np.empty_like(theta) if averaged and avg is None else None
        current = [0]  # the index of the step (batch) being taken

        def point():
            """Where metrics are taken: Polyak's average, else each rule's evaluation point (schedule-free's x), else theta."""
            if avg is not None or at is None:
                return theta if avg is None else avg
            at[...] = theta
            for rule in averaged:
                rule.opt.evaluate_at(rule.state, theta[rule.sl], at[rule.sl])
            return at

        def regrad(sl):
            """The gradient again, at theta's current contents on this step's batch, into grad[sl] (SAM's second pass).

            The epoch's logits, the running statistics and the other rules' gradients stay as the first pass left them.
            """
            a, b = self.bounds[current[0]] if len(steps_fns) > 1 else (0, self.n_epoch)
            z, g = self.Zall[:, :, a:b].copy(), grad.copy()
            kept = {k: v.copy() for k, v in self.buffers.items()}
            steps_fns[current[0]]()
            if l2m is not None:
                np.add(grad, l2m * theta, out=grad)
            self.Zall[:, :, a:b] = z
            for k, v in kept.items():
                self.buffers[k][...] = v
            g[sl] = grad[sl]
            grad[...] = g

        for rule in self.rules:
            if "regrad" in rule.opt.wants:
                rule.kw["regrad"] = lambda sl=rule.sl: regrad(sl)

        def snapshot(r):
            snapshots[r] = (point()[r].copy(), {k: v[r].copy() for k, v in self.buffers.items()})

        def state() -> list[dict]:
            return [self._replica_state(r, dict(
                epoch=e, steps=steps, seconds=clock() - t0, avg=None if avg is None else avg[r].copy(),
                opt=None if lstates is None else lstates[r], active=bool(active[r]), status=status[r], reason=reason[r],
                end_epoch=int(end_epoch[r]), snapshot=snapshots.get(r), es_best=float(es_best[r]), es_wait=int(es_wait[r]),
                cost0=float(cost0[r]), init_fp=init_fp[r], batch_fp=batch_fp[r],
                acts0=None if acts0 is None else [a[r].copy() for a in acts0], trace=trace.state(r))) for r in range(R)]

        start = 0
        if resume is not None:
            start = done = e = int(resume[0]["epoch"])
            steps = int(resume[0]["steps"])
            t0 -= float(resume[0]["seconds"])
            self._restore(resume, lstates)
            if avg is not None:
                avg[...] = np.stack([s["avg"] for s in resume])
            for r, s in enumerate(resume):
                active[r], status[r], reason[r], end_epoch[r] = s["active"], s["status"], s["reason"], s["end_epoch"]
                es_best[r], es_wait[r], init_fp[r], batch_fp[r] = s["es_best"], s["es_wait"], s["init_fp"], s["batch_fp"]
                if s["snapshot"] is not None:
                    snapshots[r] = (s["snapshot"][0], dict(s["snapshot"][1]))
                trace.restore(r, s.get("trace"))
            if self.record_activations and resume[0]["acts0"] is not None:
                acts0 = [np.stack([s["acts0"][l] for s in resume]) for l in range(len(resume[0]["acts0"]))]

        with np.errstate(all="ignore"):
            if resume is None:
                first = self._eval_all(theta, self.buffers)
                cost0 = first["train_cost"].astype(np.float64)
                if trace.due(0):
                    trace.take(0, theta, self.buffers, range(R))
            else:
                cost0 = np.array([s["cost0"] for s in resume], dtype=np.float64)
            lr0 = np.array([c["optimizer"]["lr"] for c in self.cfgs], dtype=np.float64)
            # epoch 0's lr is epoch 1's, computed as set_epoch does (in the training dtype): a float32 lr is
            # rounded the same way whether the rule's lr is a shared Python float (alone) or an (R, 1) array
            lr0_dt = lr0.astype(dt).reshape(R, 1)
            for rule in self.rules:
                m0 = rule.sched.multiplier(0, rule.sched.init(rule.sl.stop - rule.sl.start))[0]
                lr0_dt[rule.sl] = rule.lr * np.asarray(m0, dtype=dt)
            lr0 = lr0_dt[:, 0].astype(np.float64)
            nan = np.full(R, np.nan)
            if on_epoch is not None and resume is None:
                rec = dict(first, epoch=np.zeros(R), step=np.zeros(R), lr=lr0, grad_norm=nan, update_ratio=nan,
                           seconds=np.zeros(R), sharpness=self._sharpness(0, theta))
                on_epoch(EpochRecord(0, rec, active.copy(), {}, state=state))
            try:
                for e in range(start + 1, self.epochs + 1 if active.any() else start + 1):
                    lr_e[...] = lr0.reshape(R, 1)  # L-BFGS: its own lr; the rules overwrite their slices
                    for rule in self.rules:
                        rule.set_epoch(e, lr_e)
                    lr_e *= active.reshape(R, 1)  # frozen replicas take no steps
                    for lr_s, mult, lr_r in scaled:
                        np.multiply(lr_s, mult, out=lr_r)
                    iter_costs = None
                    if self.lbfgs:
                        if stopped():
                            raise Stopped
                        self._lbfgs_epoch(lstates, active)
                        steps += 1
                        ratio = nan
                    else:
                        order = self._gather(e)
                        if e == 1 and order is not None:
                            batch_fp = [fingerprint(order[r]) for r in range(R)]
                        for current[0], step in enumerate(steps_fns):
                            if stopped():
                                raise Stopped
                            step()
                            if l2m is not None:
                                np.multiply(l2m, theta, out=step_buf)
                                grad += step_buf
                            if frozen is not None:  # frozen layers: no gradient in the optimizers' states (nor in the norm)
                                np.copyto(grad, 0.0, where=frozen)
                            if clip is not None:  # on the cost's gradient, L2 included (torch: after backward)
                                gnorm = clip(grad)
                            for rule, g_r, th_r, buf_r, lr_r in slices:
                                t_u = clock()
                                direction, rule.state = rule.update(g_r, rule.state, th_r, **rule.kw)
                                np.multiply(direction, lr_r, out=buf_r)
                                rule.seconds += clock() - t_u
                            if frozen is not None:  # and no step, whatever the rule adds (decoupled weight decay, ...)
                                np.copyto(step_buf, 0.0, where=frozen)
                            theta -= step_buf
                            if polyak is not None:
                                avg += polyak * (theta - avg)
                        steps += len(steps_fns)
                        if log_iters:
                            iter_costs = np.stack([
                                net.loss.value(self.Zall[:, :, a:b], self.Yall[:, :, a:b]) / (b - a)
                                for a, b in (self.bounds if len(steps_fns) > 1 else [(0, self.n_epoch)])
                            ], axis=1)
                        ratio = norms(step_buf) / norms(theta)
                    if clip is None:  # clipped: the last step's norm before clipping, as clip_grad_norm_ returns
                        gnorm = norms(grad)
                    if self.lbfgs:  # the full-batch cost and accuracy after its step
                        m = self._eval_all(theta, self.buffers)
                    else:  # the mean cost and accuracy over the epoch's batches, as each was seen
                        m = self._eval_val(point(), self.buffers)
                        m["train_cost"] = net.loss.value(self.Zall, self.Yall) / self.n_epoch + self._penalty(theta)
                        m["train_acc"] = (net.loss.correct(self.Zall, self.Yall) / self.n_epoch
                                          if net.loss.correct is not None else nan)
                    m.update(epoch=e, step=steps, lr=lr_e.reshape(-1), grad_norm=gnorm, update_ratio=ratio,
                             seconds=time.perf_counter() - t0, sharpness=self._sharpness(e, point()))
                    alive = active.copy()
                    if trace.due(e):
                        trace.take(e, point(), self.buffers, np.flatnonzero(alive))  # where the metrics are taken
                    ended = self._decide(e, m, cost0, active, es_best, es_wait)
                    for rule in self.rules:
                        rule.observe(m["val_cost"] if self.data.val is not None else m["train_cost"])
                    for r, (st, why) in ended.items():
                        status[r], reason[r] = st, why
                        end_epoch[r] = e
                        active[r] = False
                        snapshot(r)
                    if on_epoch is not None:
                        on_epoch(EpochRecord(e, m, alive, ended, iter_costs, state=state))
                    done = e
                    if not active.any():
                        break
            except (Stopped, KeyboardInterrupt):  # KeyboardInterrupt: a second Ctrl-C, mid-step
                for r in np.flatnonzero(active):
                    status[r], reason[r] = "interrupted", f"interrupted after epoch {done}"
                    end_epoch[r] = done  # the last epoch whose row was written
                    snapshot(r)
                active[:] = False
                self.interrupted = True
            acts1 = self._activations(point(), self.buffers) if self.record_activations else None

        results = []
        final = point().copy()
        final_buffers = {k: v.copy() for k, v in self.buffers.items()}
        for r, (th, buf) in snapshots.items():
            final[r] = th
            for k in final_buffers:
                final_buffers[k][r] = buf[k]
        # the metrics rows average over each epoch's batches; this is the final model itself, in test mode
        with np.errstate(all="ignore"):
            ev = self._eval_all(final, final_buffers)
            if self.data.test is not None:  # the held-out part: measured here once, never per epoch
                ev["test_cost"], ev["test_acc"] = self.evaluate(final, self.data.test, final_buffers)
        timing = [{} for _ in range(R)]
        for rule in self.rules:
            for r in range(rule.sl.start, rule.sl.stop):
                timing[r] = update_timing(rule.seconds, steps, rule.sl.stop - rule.sl.start)
        if self.lbfgs:  # one replica per step: its own closure-driven inner loop, line search included
            for r in range(R):
                timing[r] = update_timing(self._lbfgs_seconds[r], steps, 1)
        if self.sharp is not None:  # the group's time in sharpness probes, shared by its runs as update_seconds is
            for r in range(R):
                timing[r] = dict(timing[r], sharpness_seconds=self.sharp_seconds, sharpness_products=self.sharp.products)
        for r in range(R):
            th, buf = final[r], {k: v[r] for k, v in final_buffers.items()}
            params = {k: v[0].copy() for k, v in net.layout.named(th[None]).items()}
            acts = {}
            if acts0 is not None:
                for l, (a0, a1) in enumerate(zip(acts0, acts1), start=1):
                    acts[f"init_layer{l}"] = a0[r].reshape(-1)
                    acts[f"final_layer{l}"] = a1[r].reshape(-1)
            start_params = {k: v[0].copy() for k, v in net.layout.named(init[0][r : r + 1]).items()}
            start_params.update({k: v[r] for k, v in init[1].items()})
            extra = {"params_init": start_params}
            if trace.every:
                extra["snapshots"] = trace.arrays(r, int(end_epoch[r]), th, buf)
            results.append(RunResult(status[r], reason[r], int(end_epoch[r]), params, dict(buf), init_fp[r], batch_fp[r], acts,
                                     extra=extra, final_eval={k: float(v[r]) for k, v in ev.items()}, timing=timing[r]))
        return results

    interrupted = False

    # ---- checkpoints ----------------------------------------------------------------------------

    def _shuffle_state(self, r: int) -> dict:
        """Replica r's shuffle stream at this epoch's end: its seed's owner's stream (the one drawn), minus what
        _permutation drew ahead, so that any group, whatever it draws ahead, goes on with the same orders."""
        u = int(self._inv[r])
        gen = self.gens[self._owners[u]]["shuffle"]
        if getattr(self, "_perms", None) is None:
            return gen.bit_generator.state
        return advanced(self._refill[u], self._perm_at * self.data.N)

    def _replica_state(self, r: int, loop: dict) -> dict:
        """Replica r's whole training state after an epoch: the loop's (in `loop`), parameters, buffers, generators,
        its rule's optimizer and schedule states; plain arrays and values (see checkpoint.py)."""
        out = dict(loop, theta=self.theta[r].copy(), grad=self.grad[r].copy(),
                   buffers={k: v[r].copy() for k, v in self.buffers.items()},
                   gens={name: g.bit_generator.state for name, g in self.gens[r].items()}, sched=None, msched=None)
        out["gens"]["shuffle"] = self._shuffle_state(r)
        for rule in self.rules:
            if rule.sl.start <= r < rule.sl.stop:
                i, n = r - rule.sl.start, rule.sl.stop - rule.sl.start
                out.update(opt=rows_of(rule.state, i, n), sched=rows_of(rule.sstate, i, n), msched=rows_of(rule.mstate, i, n))
        return out

    def _restore(self, states: list[dict], lstates: list | None) -> None:
        """Parameters, buffers, generators and optimizer/schedule states from each replica's saved state."""
        self.theta[...] = np.stack([s["theta"] for s in states])
        self.grad[...] = np.stack([s["grad"] for s in states])
        for k, v in self.buffers.items():
            v[...] = np.stack([s["buffers"][k] for s in states])
        for g, s in zip(self.gens, states):
            for name, st in s["gens"].items():
                g[name].bit_generator.state = st
        for rule in self.rules:
            part = states[rule.sl]
            n = rule.sl.stop - rule.sl.start
            rule.state = combine([s["opt"] for s in part], rule.state, n)
            rule.sstate = combine([s["sched"] for s in part], rule.sstate, n)
            rule.mstate = combine([s["msched"] for s in part], rule.mstate, n)
        if lstates is not None:
            for r, s in enumerate(states):
                lstates[r] = combine([s["opt"]], lstates[r], 1)

    def _lbfgs_epoch(self, lstates, active):
        """One L-BFGS step (a closure-driven inner loop on the full batch) per active replica."""
        R = self.R
        net1 = self._net1
        M = self.data.train
        A0, Y = M[None, : self.data.D + 1], M[None, self.data.D + 1 :]
        costs = np.full(R, np.nan)
        for r in np.flatnonzero(active):
            buf = {k: v[r : r + 1] for k, v in self.buffers.items()}
            g1 = np.empty((1, self.theta.shape[1]), dtype=self.dtype)

            frozen = None if self.frozen is None else self.frozen[r]

            def closure(th, buf=buf, l2=self.l2[r, 0], g1=g1, frozen=frozen):
                c = net1.objective(th.reshape(1, -1), A0, Y, g1, l2=l2, buffers=buf)[0]
                if frozen is not None:
                    g1[0][frozen] = 0.0
                return float(c), g1[0].copy()

            t_u = time.perf_counter()
            fixed = None if frozen is None else self.theta[r][frozen].copy()
            loss, lstates[r] = self.opts[r].step(self.theta[r], closure, lstates[r])
            if fixed is not None:  # its direction is 0 there already; kept bit for bit (a -0.0 + 0.0 is 0.0)
                self.theta[r][frozen] = fixed
            self._lbfgs_seconds[r] += time.perf_counter() - t_u
            self.grad[r] = closure(self.theta[r])[1]
            costs[r] = loss
        return costs, None

    @property
    def _net1(self) -> MLP:
        if not hasattr(self, "_net1_cache"):
            c0 = self.cfgs[0]
            self._net1_cache = build(c0["model"], c0["loss"], self.data.D, self.data.C, R=1, dtype=self.dtype)
        return self._net1_cache

    def _decide(self, e, m, cost0, active, es_best, es_wait) -> dict[int, tuple[str, str]]:
        """Which active replicas end at epoch e: diverged (non-finite, or cost > factor * initial) or stopped early."""
        tc = m["train_cost"]
        bad = active & ~(tc <= self.diverge * cost0)  # NaN compares False: non-finite costs are bad too
        ended = {}
        for r in np.flatnonzero(bad).tolist():
            if not np.isfinite(tc[r]):
                ended[r] = ("diverged", f"train cost became {tc[r]} at epoch {e}")
            else:
                ended[r] = ("diverged", f"train cost {tc[r]:.4g} exceeded {self.diverge[r]:g} x the initial {cost0[r]:.4g} at epoch {e}")
        if self.has_es:
            for r in np.flatnonzero(active & ~bad).tolist():
                es = self.es[r]
                val = m[es["metric"]][r]
                score = -val if es["metric"].endswith("acc") else val
                if score < es_best[r] - es["min_delta"]:
                    es_best[r], es_wait[r] = score, 0
                else:
                    es_wait[r] += 1
                    if es_wait[r] >= es["patience"]:
                        ended[r] = ("stopped_early", f"{es['metric']} did not improve for {es['patience']} epochs")
        return ended


__all__ = ["Trainer"]
