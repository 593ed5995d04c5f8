"""The MLP engine: one group's training, for loop.run_epochs.

Runs that share data, architecture, loss, optimizer kind and training shape form a *group* and train
as one vectorized pass over a replica axis; the hyperparameters that differ between them become
(R, 1) arrays. A replica that diverges or stops early is frozen and the others go on. Randomness comes
from per-run generators spawned from each run's seed, so a run's numbers do not depend on its group.
Data movement is batches.py's, the update update.py's, the loop loop.py's; this module says what a
net's step, epoch record, stop decision and result are.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from optbench import compat, finetune, lrmult
from optbench.batches import Augmentation, Batches, DataMatrix
from optbench.checkpoint import combine, rows_of
from optbench.clip import clipper
from optbench.datacache import DataCache
from optbench.evaluation import evaluate
from optbench.losses import l2_penalty
from optbench.loop import Progress, run_epochs
from optbench.model import MLP, build
from optbench.optim import OPTIMIZERS, is_closure_optimizer
from optbench.records import EpochRecord, Never, RunResult, fingerprint, norms
from optbench.rules import make_rules
from optbench.sections import RunConfig
from optbench.sharpness import Sharpness
from optbench.snapshots import Recorder
from optbench.stopping import EarlyStopping, diverged
from optbench.update import ClosureSteps, Updater

STREAMS = ("init", "shuffle", "dropout", "noise", "mixup")  # one generator per purpose, in this order


def _gens(seed: int) -> dict[str, np.random.Generator]:
    seqs = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(s) for name, s in zip(STREAMS, seqs)}


def _column(values, dt) -> np.ndarray:
    return np.array([v or 0.0 for v in values], dtype=dt).reshape(-1, 1)


class Trainer:
    """One group's training: set up from resolved configs, then `run(on_epoch)` returns one RunResult per replica."""

    resumable = True  # EpochRecord.state() gives each replica's checkpoint

    def __init__(self, cfgs: list[dict | RunConfig], *, record_activations: bool = False, cache: DataCache | None = None,
                 split=None):
        """cfgs: resolved configs (config.expand's dicts, read here as RunConfig); `split` (a data.Split): train on
        these parts instead of loading the configs' data (sanity.py's tiny subset)."""
        self.cfgs = cfgs = [RunConfig.of(c) for c in cfgs]
        c0, tr = cfgs[0], cfgs[0].train
        self.R = R = len(cfgs)
        self.dtype = dt = np.dtype(tr.dtype)
        if split is None:
            cache = DataCache() if cache is None else cache  # validation's entry: loaded once, in dt
            self.data = cache.derived(c0.data.plain(), dt, ("layout", c0.loss), lambda s: DataMatrix.shared(s, c0.loss, dt))
            self.split = cache.get(c0.data.plain(), dt)  # its features are views of self.data's matrices
        else:
            self.split, self.data = split, DataMatrix(split, c0.loss, dt)
        D, C = self.data.D, self.data.C
        self.net: MLP = build(c0.model, c0.loss, D, C, R=R, dtype=dt)
        self.gens = [_gens(c.seed) for c in cfgs]
        inits = [(c.model.init["name"], {k: v for k, v in c.model.init.items() if k != "name"}) for c in cfgs]
        init_rngs = [compat.init_rng(c.seed) if tr.compat == "dlai" else g["init"] for c, g in zip(cfgs, self.gens)]
        self.theta = self.net.init_params(inits, init_rngs)
        self.grad = np.zeros_like(self.theta)
        self.buffers = self.net.new_buffers()
        finetune.start_from(self.net, self.theta, self.buffers, [c.model for c in cfgs])  # model.init_from
        self.frozen = finetune.frozen_rows(self.net.layout, [c.model for c in cfgs])  # (R, P) or None: model.freeze
        self.init = self.theta.copy(), {k: v.copy() for k, v in self.buffers.items()}  # params_init.npz
        self.init_fp = [fingerprint(self.theta[r]) for r in range(R)]
        self.batch_fp = ["full"] * R  # the first epoch's batch order, once drawn
        self.record_activations, self.epochs = record_activations, tr.epochs
        reg = [c.regularization for c in cfgs]
        self.l2, noise, smooth, mixup = (_column([getattr(r, k) for r in reg], dt) for k in ("l2", "input_noise", "label_smoothing", "mixup"))
        self.mask = self.net.layout.weight_mask().astype(dt)  # 1 on weights, 0 on biases and norm parameters
        self.l2m = self.l2 * self.mask if self.l2.any() else None  # d(L2)/dtheta = l2m * theta
        self.keep = (1.0 - np.array([c.model.drop_prob for c in cfgs], dtype=dt)).reshape(R, 1, 1)
        self.diverge = np.array([c.train.diverge_factor or np.inf for c in cfgs], dtype=np.float64)
        self.early = EarlyStopping([r.early_stopping for r in reg])
        self.has_val = self.data.val is not None  # plateau schedules watch val_cost, else train_cost
        self.loader = Batches(self.data, tr, [c.seed for c in cfgs], self.gens,
                              Augmentation(smooth, mixup, noise, D=D, C=C, loss=c0.loss, gens=self.gens), dt)
        self._setup_update(cfgs, reg)
        self.steps = [] if self.closure is not None else self.loader.plan(self._compile)
        self.current = 0  # the index of the batch being stepped (SAM's regrad repeats it)
        self.sharp_every, self.sharp_seconds = tr.sharpness_every, 0.0
        self.sharp = None if not self.sharp_every else Sharpness(
            c0.model, c0.loss, self.data.train, D, C, l2=self.l2, seeds=[c.seed for c in cfgs])
        self.trace = Recorder(tr.snapshots_every, R)  # snapshots.npz (train.snapshots_every)
        self.snapshots: dict[int, tuple] = {}  # replica -> (theta, buffers) where it ended
        self.cost0 = np.full(R, np.nan)  # the initial train cost (divergence is relative to it)
        self.acts0 = None  # the hidden activations at initialization (record_activations)
        self.interrupted = False

    def _setup_update(self, cfgs: list[RunConfig], reg: list) -> None:
        """The rules and their Updater, or one closure optimizer per replica (groups.group_key gives each its own group)."""
        dt, c0 = self.dtype, cfgs[0]
        self.net1 = self.closure = None
        if is_closure_optimizer(c0.optimizer.name):
            self.rules = []
            opts = [OPTIMIZERS.build(c.optimizer.name, c.optimizer.options) for c in cfgs]
            self.closure = ClosureSteps(opts, self.theta, self.frozen)
            self.net1 = build(c0.model, c0.loss, self.data.D, self.data.C, R=1, dtype=dt)
        else:  # epochs 0: epoch 0's lr is a 1-epoch run's first
            self.rules = make_rules(cfgs, max(self.epochs, 1), dt, layout=self.net.layout)
            for rule in self.rules:
                if "regrad" in rule.opt.wants:
                    rule.kw["regrad"] = lambda sl=rule.sl: self._regrad(sl)
        mults = [lrmult.multiplier(self.net.layout, [c.optimizer.options.get(lrmult.KEY) for c in cfgs[rule.sl]], dt)
                 for rule in self.rules]
        polyak = None if reg[0].polyak is None else _column([r.polyak for r in reg], dt)
        lr0 = np.array([c.optimizer.options["lr"] for c in cfgs], dtype=np.float64)
        self.update = Updater(self.rules, self.theta, self.grad, lr0, mults=mults, clip=clipper([c.train for c in cfgs], self.theta.shape[1], dt),
                              frozen=self.frozen, polyak=polyak)

    # ---- steps --------------------------------------------------------------------------------

    def _compile(self, A0, Y, Z) -> Callable[[], None]:
        """One batch's step: grad <- dJ/dtheta on (A0, Y), its logits into Z, the L2 term added."""
        inner = self.net.compile_step(self.theta, self.grad, A0, Y, Z, buffers=self.buffers, keep=self.keep,
                                      drop_gens=[g["dropout"] for g in self.gens] if self.net.dropout else None)
        if self.l2m is None:
            return inner
        l2g = np.empty_like(self.theta)

        def step():
            inner()
            np.multiply(self.l2m, self.theta, out=l2g)
            self.grad += l2g

        return step

    def batches(self, e: int):
        """Epoch e's steps, its examples gathered first."""
        order = self.loader.gather(e)
        if e == 1 and order is not None:
            self.batch_fp = [fingerprint(order[r]) for r in range(self.R)]
        for self.current, step in enumerate(self.steps):
            yield step

    def _regrad(self, sl: slice) -> None:
        """The gradient again, at theta's current contents on this step's batch, into grad[sl] (SAM's second pass).

        The epoch's logits, the running statistics and the other rules' gradients stay as the first pass left them.
        """
        a, b = self.loader.span(self.current)
        Zall = self.loader.Zall
        z, g = Zall[:, :, a:b].copy(), self.grad.copy()
        kept = {k: v.copy() for k, v in self.buffers.items()}
        self.steps[self.current]()
        Zall[:, :, a:b] = z
        for k, v in kept.items():
            self.buffers[k][...] = v
        g[sl] = self.grad[sl]
        self.grad[...] = g

    def closure_of(self, r: int) -> Callable:
        """Replica r's full-batch cost and gradient, theta_r (P,) -> (J, dJ/dtheta (P,)), for a closure optimizer."""
        M, D = self.data.train, self.data.D
        A0, Y = M[None, : D + 1], M[None, D + 1 :]
        buf = {k: v[r : r + 1] for k, v in self.buffers.items()}
        g1 = np.empty((1, self.theta.shape[1]), dtype=self.dtype)
        frozen, l2 = (None if self.frozen is None else self.frozen[r]), self.l2[r, 0]

        def closure(th):
            c = self.net1.objective(th.reshape(1, -1), A0, Y, g1, l2=l2, buffers=buf)[0]
            if frozen is not None:
                g1[0][frozen] = 0.0
            return float(c), g1[0].copy()

        return closure

    # ---- evaluation ---------------------------------------------------------------------------

    def evaluate(self, theta: np.ndarray, M: np.ndarray, buffers) -> tuple[np.ndarray, np.ndarray]:
        """Test-mode mean cost (R,) and accuracy (R,) (NaN for regression) on a data matrix (D+1+C, N)."""
        return evaluate(self.net, theta, M, self.data.D, buffers)

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

    def _sharpness(self, e: int, theta: np.ndarray) -> np.ndarray:
        """The sharpness column at epoch e (R,), at the evaluated point theta (Polyak's average, schedule-free's x):
        measured every train.sharpness_every epochs and at the last, else NaN."""
        if self.sharp is None or (e % self.sharp_every and e != self.epochs):
            return np.full(self.R, np.nan)
        t = time.perf_counter()
        lam = self.sharp.probe(theta, e)
        self.sharp_seconds += time.perf_counter() - t
        return lam

    def _activations(self, theta, buffers) -> list[np.ndarray]:
        M = self.data.train[:, :256]
        return self.net.hidden(theta, M[None, : self.data.D + 1], buffers=buffers)

    def record(self, e: int, prog: Progress) -> tuple[dict, np.ndarray | None]:
        """Epoch e's metric columns, and its per-batch costs (train.log_iterations)."""
        net, L, up, theta = self.net, self.loader, self.update, self.theta
        iter_costs, nan = None, np.full(self.R, np.nan)
        if self.closure is not None:  # the gradient at the new point, the full-batch cost and accuracy there
            for r in np.flatnonzero(prog.active):
                self.grad[r] = self.closure_of(r)(theta[r])[1]
            ratio = nan
            m = self._eval_all(theta, self.buffers)
        else:  # the mean cost and accuracy over the epoch's batches, as each was seen
            if self.cfgs[0].train.log_iterations:
                spans = [L.span(i) for i in range(len(self.steps))]
                iter_costs = np.stack([net.loss.value(L.Zall[:, :, a:b], L.Yall[:, :, a:b]) / (b - a) for a, b in spans], axis=1)
            ratio = norms(up.step) / norms(theta)
            m = self._eval_val(up.point(), self.buffers)
            m["train_cost"] = net.loss.value(L.Zall, L.Yall) / L.n_epoch + self._penalty(theta)
            m["train_acc"] = net.loss.correct(L.Zall, L.Yall) / L.n_epoch if net.loss.correct is not None else nan
        m.update(epoch=e, step=prog.steps, lr=up.lr_e.reshape(-1), grad_norm=up.grad_norm(), update_ratio=ratio,
                 seconds=prog.seconds(), sharpness=self._sharpness(e, up.point()))
        if self.trace.due(e):
            self.trace.take(e, up.point(), self.buffers, np.flatnonzero(prog.active))  # where the metrics are taken
        return m, iter_costs

    def decide(self, e: int, m: dict, prog: Progress) -> dict[int, tuple[str, str]]:
        """Which active replicas end at epoch e: diverged (non-finite, or cost > factor * initial) or stopped early."""
        ended = diverged(e, m["train_cost"], self.cost0, self.diverge, prog.active)
        if self.early.on:
            ended.update(self.early(m, [r for r in np.flatnonzero(prog.active).tolist() if r not in ended]))
        return ended

    def finish(self, r: int) -> None:
        """Replica r has ended: its parameters and buffers now are its final ones."""
        self.snapshots[r] = (self.update.point()[r].copy(), {k: v[r].copy() for k, v in self.buffers.items()})

    # ---- the run ------------------------------------------------------------------------------

    def run(self, on_epoch: Callable[[EpochRecord], None] | None = None, *,
            resume: list[dict] | None = None, stop=None) -> list[RunResult]:
        """Train; with `resume` (each replica's EpochRecord.state() of one epoch, maybe from other groups) go on
        from there, computing what the uninterrupted runs compute. Once `stop` (a threading.Event, or anything
        with is_set()) is set, training ends at the next step boundary and the live replicas are interrupted."""
        prog = Progress(self.R, self.epochs)
        with np.errstate(all="ignore"):
            if resume is None:
                self._begin(prog, on_epoch)
            else:
                self._resume(prog, resume)
            self.interrupted = run_epochs(self, prog, on_epoch, (stop or Never).is_set)
            acts1 = self._activations(self.update.point(), self.buffers) if self.record_activations else None
            return self._results(prog, acts1)

    def _begin(self, prog: Progress, on_epoch) -> None:
        """Epoch 0: the initialization's metrics, the costs divergence is measured against."""
        R, theta = self.R, self.theta
        if self.record_activations:
            self.acts0 = self._activations(theta, self.buffers)
        first = self._eval_all(theta, self.buffers)
        self.cost0 = first["train_cost"].astype(np.float64)
        if self.trace.due(0):
            self.trace.take(0, theta, self.buffers, range(R))
        if on_epoch is not None:
            nan = np.full(R, np.nan)
            rec = dict(first, epoch=np.zeros(R), step=np.zeros(R), lr=self._lr0(), grad_norm=nan, update_ratio=nan,
                       seconds=np.zeros(R), sharpness=self._sharpness(0, theta))
            on_epoch(EpochRecord(0, rec, prog.active.copy(), {}, state=lambda: self.state(prog)))

    def _lr0(self) -> np.ndarray:
        """Epoch 0's lr column: epoch 1's, computed as Rule.set_epoch does (in the training dtype), so a float32 lr is
        rounded the same way whether the rule's lr is a shared Python float (alone) or an (R, 1) array."""
        lr0 = self.update.lr0.astype(self.dtype).reshape(self.R, 1)
        for rule in self.rules:
            m0 = rule.sched.multiplier(0, rule.sched.init(rule.sl.stop - rule.sl.start))[0]
            lr0[rule.sl] = rule.lr * np.asarray(m0, dtype=self.dtype)
        return lr0[:, 0].astype(np.float64)

    def _results(self, prog: Progress, acts1) -> list[RunResult]:
        """One RunResult per replica: its final parameters (where it ended) measured once more in test mode."""
        final = self.update.point().copy()
        final_buffers = {k: v.copy() for k, v in self.buffers.items()}
        for r, (th, buf) in self.snapshots.items():
            final[r] = th
            for k in final_buffers:
                final_buffers[k][r] = buf[k]
        # the metrics rows average over each epoch's batches; this is the final model itself, in test mode
        ev = self._eval_all(final, final_buffers)
        if self.data.test is not None:  # the held-out part: measured here once, never per epoch
            ev["test_cost"], ev["test_acc"] = self.evaluate(final, self.data.test, final_buffers)
        timing = (self.closure or self.update).timing(prog.steps)
        if self.sharp is not None:  # the group's time in sharpness probes, shared by its runs as update_seconds is
            timing = [dict(t, sharpness_seconds=self.sharp_seconds, sharpness_products=self.sharp.products) for t in timing]
        named = self.net.layout.named
        results = []
        for r in range(self.R):
            th, buf, end = final[r], {k: v[r] for k, v in final_buffers.items()}, int(prog.end_epoch[r])
            acts = {}
            if self.acts0 is not None:
                for l, (a0, a1) in enumerate(zip(self.acts0, acts1), start=1):
                    acts[f"init_layer{l}"], acts[f"final_layer{l}"] = a0[r].reshape(-1), a1[r].reshape(-1)
            start = {k: v[0].copy() for k, v in named(self.init[0][r : r + 1]).items()}
            start.update({k: v[r] for k, v in self.init[1].items()})
            extra = {"params_init": start}
            if self.trace.every:
                extra["snapshots"] = self.trace.arrays(r, end, th, buf)
            results.append(RunResult(prog.status[r], prog.reason[r], end, {k: v[0].copy() for k, v in named(th[None]).items()},
                                     dict(buf), self.init_fp[r], self.batch_fp[r], acts, extra=extra,
                                     final_eval={k: float(v[r]) for k, v in ev.items()}, timing=timing[r]))
        return results

    # ---- checkpoints ----------------------------------------------------------------------------

    def state(self, prog: Progress) -> list[dict]:
        """Each replica's whole training state after an epoch: plain arrays and values (see checkpoint.py)."""
        return [self._replica_state(r, prog) for r in range(self.R)]

    def _replica_state(self, r: int, prog: Progress) -> dict:
        """Replica r's loop position, parameters, buffers, generators, and its rule's optimizer and schedule states."""
        up = self.update
        out = dict(epoch=prog.epoch, steps=prog.steps, seconds=prog.seconds(), avg=None if up.avg is None else up.avg[r].copy(),
                   opt=None if self.closure is None else self.closure.states[r], active=bool(prog.active[r]),
                   status=prog.status[r], reason=prog.reason[r], end_epoch=int(prog.end_epoch[r]),
                   snapshot=self.snapshots.get(r), es_best=float(self.early.best[r]), es_wait=int(self.early.wait[r]),
                   cost0=float(self.cost0[r]), init_fp=self.init_fp[r], batch_fp=self.batch_fp[r],
                   acts0=None if self.acts0 is None else [a[r].copy() for a in self.acts0], trace=self.trace.state(r),
                   theta=self.theta[r].copy(), grad=self.grad[r].copy(), buffers={k: v[r].copy() for k, v in self.buffers.items()},
                   gens={name: g.bit_generator.state for name, g in self.gens[r].items()}, sched=None, msched=None)
        out["gens"]["shuffle"] = self.loader.shuffle_state(r)
        for rule in self.rules:
            if rule.sl.start <= r < rule.sl.stop:
                i, n = r - rule.sl.start, rule.sl.stop - rule.sl.start
                out.update(opt=rows_of(rule.state, i, n), sched=rows_of(rule.sstate, i, n), msched=rows_of(rule.mstate, i, n))
        return out

    def _resume(self, prog: Progress, states: list[dict]) -> None:
        """Go on from each replica's saved state: parameters, buffers, generators, optimizer/schedule states, the loop's."""
        s0 = states[0]
        prog.epoch = prog.done = int(s0["epoch"])
        prog.steps = int(s0["steps"])
        prog.t0 -= float(s0["seconds"])
        self.theta[...] = np.stack([s["theta"] for s in states])
        self.grad[...] = np.stack([s["grad"] for s in states])
        for k, v in self.buffers.items():
            v[...] = np.stack([s["buffers"][k] for s in states])
        for g, s in zip(self.gens, states):
            for name, st in s["gens"].items():
                g[name].bit_generator.state = st
        for rule in self.rules:
            part, n = states[rule.sl], rule.sl.stop - rule.sl.start
            rule.state = combine([s["opt"] for s in part], rule.state, n)
            rule.sstate = combine([s["sched"] for s in part], rule.sstate, n)
            rule.mstate = combine([s["msched"] for s in part], rule.mstate, n)
        if self.closure is not None:
            self.closure.states = [combine([s["opt"]], st, 1) for s, st in zip(states, self.closure.states)]
        if self.update.avg is not None:
            self.update.avg[...] = np.stack([s["avg"] for s in states])
        for r, s in enumerate(states):
            prog.restore(s, r)
            self.early.best[r], self.early.wait[r], self.init_fp[r], self.batch_fp[r] = s["es_best"], s["es_wait"], s["init_fp"], s["batch_fp"]
            if s["snapshot"] is not None:
                self.snapshots[r] = (s["snapshot"][0], dict(s["snapshot"][1]))
            self.trace.restore(r, s.get("trace"))
        self.cost0 = np.array([s["cost0"] for s in states], dtype=np.float64)
        if self.record_activations and s0["acts0"] is not None:
            self.acts0 = [np.stack([s["acts0"][l] for s in states]) for l in range(len(s0["acts0"]))]


__all__ = ["Trainer"]
