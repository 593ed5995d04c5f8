"""Gradient clipping (optbench/clip.py) and per-parameter lr multipliers (optbench/lrmult.py) against torch."""

import numpy as np
import pytest

from optbench.clip import clipper
from optbench.config import expand
from optbench.errors import OptbenchError
from optbench.sections import Train
from optbench.groups import make_groups
from optbench.train import Trainer
from optbench.trainers import train_runs

BASE = {
    "name": "c",
    "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "seed": 3},
    "model": {"hidden": [6, 3], "activation": "relu", "init": "he"},
    "loss": "bce",
    "train": {"epochs": 25, "batch_size": "full"},
    "optimizer": {"name": "sgd", "lr": 0.5},
}


@pytest.fixture
def torch1():
    """torch on one thread: its tiny ops on a shared machine are otherwise slower by the threads' hand-offs."""
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(old)


def _cfgs(clips: list[dict]) -> list[Train]:
    """The train sections of one replica each, with these clip options."""
    return [Train(**c) for c in clips]


def _torch_grads(torch, row: np.ndarray, cuts=(7, 20)) -> list:
    """One replica's gradient row as several torch parameters' .grad (clipping is over all of them)."""
    ps = []
    for part in np.split(row, cuts):
        p = torch.zeros(len(part), dtype=torch.from_numpy(part).dtype, requires_grad=True)
        p.grad = torch.from_numpy(part.copy())
        ps.append(p)
    return ps


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-15), (np.float32, 1e-6)])
def test_clip_grad_norm_matches_torch_per_replica(torch1, dtype, rtol):
    torch = torch1
    rng = np.random.default_rng(0)
    scales = np.array([1e-3, 0.5, 3.0, 40.0, 2.0])[:, None]
    g = (rng.standard_normal((5, 30)) * scales).astype(dtype)
    max_norms = [1.0, 1.0, 1.0, 0.25, None]  # below, near and above the norms; the last replica does not clip
    clip = clipper(_cfgs([{"clip_grad_norm": m} for m in max_norms]), 30, dtype)
    out = g.copy()
    pre = clip(out)
    assert out.dtype == dtype
    np.testing.assert_allclose(pre, np.linalg.norm(g.astype(np.float64), axis=1), rtol=rtol)
    clipped = 0
    for r, m in enumerate(max_norms):
        if m is None:
            assert out[r].tobytes() == g[r].tobytes()  # untouched bit for bit
            continue
        ps = _torch_grads(torch, g[r])
        total = torch.nn.utils.clip_grad_norm_(ps, m)
        ref = torch.cat([p.grad for p in ps]).numpy()
        np.testing.assert_allclose(out[r], ref, rtol=rtol, atol=0)
        assert float(total) == pytest.approx(float(pre[r]), rel=rtol)
        clipped += bool(np.linalg.norm(g[r]) > m)
    assert clipped == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_value_matches_torch_per_replica(torch1, dtype):
    torch = torch1
    rng = np.random.default_rng(1)
    g = (rng.standard_normal((4, 30)) * 2).astype(dtype)
    values = [0.1, 1.0, None, 1e-3]
    clip = clipper(_cfgs([{"clip_grad_value": v} for v in values]), 30, dtype)
    out = g.copy()
    clip(out)
    for r, v in enumerate(values):
        if v is None:
            assert out[r].tobytes() == g[r].tobytes()
            continue
        ps = _torch_grads(torch, g[r])
        torch.nn.utils.clip_grad_value_(ps, v)
        assert out[r].tobytes() == torch.cat([p.grad for p in ps]).numpy().tobytes()
        assert np.abs(out[r]).max() <= np.float32(v) and (np.abs(g[r]) > v).any()


def test_float32_norm_past_its_range_still_clips_to_the_threshold():
    g = np.full((2, 10), 1e30, dtype=np.float32)  # squares overflow float32
    g[1] = 1.0
    clip = clipper(_cfgs([{"clip_grad_norm": 2.0}, {"clip_grad_norm": 2.0}]), 10, np.float32)
    with np.errstate(over="ignore"):  # as the training loop runs it
        pre = clip(g)
    assert np.isfinite(pre).all() and pre[0] == pytest.approx(1e30 * np.sqrt(10), rel=1e-6)
    assert np.linalg.norm(g[0].astype(np.float64)) == pytest.approx(2.0, rel=1e-5)
    assert np.linalg.norm(g[1]) == pytest.approx(2.0, rel=1e-6)


def test_no_clip_builds_nothing():
    assert clipper(_cfgs([{}, {"clip_grad_norm": None}]), 5, np.float64) is None


# ---- whole runs against a torch loop ----------------------------------------------------------------


def _torch_run(torch, tr: Trainer, r: int, epochs: int, make_opt, clip=None, make_sched=None):
    """Replica r of a full-batch Trainer (relu MLP, bce) trained by torch from the same initial weights."""
    import torch.nn.functional as F

    D = tr.data.D
    M = tr.data.train
    X = torch.from_numpy(np.ascontiguousarray(M[:D].T))
    Y = torch.from_numpy(np.ascontiguousarray((M[D + 1 :].T + 1) / 2))  # bce's targets are stored signed
    named = tr.net.layout.named(tr.theta[r : r + 1].copy())
    L = tr.net.L
    ps = {k: torch.tensor(v[0].copy(), requires_grad=True) for k, v in named.items()}
    opt = make_opt(ps)
    sched = None if make_sched is None else make_sched(opt)
    for _ in range(epochs):
        opt.zero_grad()
        H = X
        for l in range(1, L + 1):
            H = F.linear(H, ps[f"W{l}"], ps[f"b{l}"])
            if l < L:
                H = F.relu(H)
        F.binary_cross_entropy_with_logits(H, Y).backward()
        if clip is not None:
            clip(list(ps.values()))
        opt.step()
        if sched is not None:  # one step per epoch (full batch): the scheduler steps with it
            sched.step()
    return {k: p.detach().numpy() for k, p in ps.items()}


def _compare(tr: Trainer, r: int, ref: dict, rtol=1e-10):
    got = tr.net.layout.named(tr.theta[r : r + 1])
    for k, v in ref.items():
        scale = np.abs(v).max()
        assert np.abs(got[k][0] - v).max() <= rtol * scale, k


def test_a_clipped_run_follows_torch_and_each_replica_its_own_threshold(torch1):
    torch = torch1
    variants = {"n05": {"train": {"clip_grad_norm": 0.05}}, "n2": {"train": {"clip_grad_norm": 2.0}},
                "v": {"train": {"clip_grad_value": 0.01}}, "none": {}}
    cfgs = expand({**BASE, "variants": variants})
    groups = make_groups(cfgs)
    assert len(groups) == 1  # clip thresholds are per-replica numbers, not structure
    tr = Trainer(groups[0])
    gnorm = []
    theta0 = tr.theta.copy()
    tr.run(on_epoch=lambda rec: gnorm.append(rec.metrics["grad_norm"]))
    assert (np.array(gnorm[1:])[:, 0] > 0.05).all()  # the first replica's gradient was really clipped every step
    after = tr.theta.copy()
    epochs = BASE["train"]["epochs"]
    clips = [lambda p: torch.nn.utils.clip_grad_norm_(p, 0.05), lambda p: torch.nn.utils.clip_grad_norm_(p, 2.0),
             lambda p: torch.nn.utils.clip_grad_value_(p, 0.01), None]
    tr.theta[...] = theta0
    refs = [_torch_run(torch, tr, r, epochs, lambda ps: torch.optim.SGD(ps.values(), lr=0.5), clip)
            for r, clip in enumerate(clips)]
    tr.theta[...] = after
    for r, ref in enumerate(refs):
        _compare(tr, r, ref)
    moved = [np.abs(after[r] - theta0[r]).max() for r in range(4)]
    assert moved[0] < moved[3] and moved[2] < moved[3]  # clipping shortened the steps


def test_a_run_does_not_depend_on_the_clips_of_its_group():
    raw = {**BASE, "seeds": [0, 1], "train": {"epochs": 6, "batch_size": 32, "dtype": "float32"},
           "optimizer": {"name": "adam", "lr": 0.05}, "variants": {
               "norm": {"train": {"clip_grad_norm": 0.1}}, "value": {"train": {"clip_grad_value": 0.02}}, "none": {}}}
    cfgs = expand(raw)
    together = train_runs(cfgs)
    for c, res in zip(cfgs, together):
        alone = train_runs([c])[0]
        for k in res.params:
            assert res.params[k].tobytes() == alone.params[k].tobytes(), (c["label"], k)


BAD = [
    ({"train": {"clip_grad_norm": -1.0}}, r"^train.clip_grad_norm: -1.0 is invalid: input should be greater than 0"),
    ({"train": {"clip_grad_value": 0}}, r"^train.clip_grad_value: 0 is invalid: input should be greater than 0"),
    ({"train": {"clip_grad_norm": 1.0, "clip_grad_value": 1.0}}, r"^train.clip_grad_value: give clip_grad_norm or clip_grad_value, not both"),
    ({"train": {"clip_grad_norm": "1"}}, r"^train.clip_grad_norm: '1' is invalid: .*without quotes"),
    ({"train": {"clip_grad_norm": 1.0}, "optimizer": {"name": "lbfgs"}}, r"^train.clip_grad_norm: lbfgs evaluates its own gradients"),
    ({"optimizer": {"name": "adam", "lr_mult": {"W9": 0.1}}},
     r"^optimizer.lr_mult.W9: unknown parameter \(accepted: W1, b1, W2, b2, W3, b3, or a layer number 1..3\)$"),
    ({"optimizer": {"name": "adam", "lr_mult": {4: 0.1}}}, r"^optimizer.lr_mult.4: unknown parameter"),
    ({"optimizer": {"name": "adam", "lr_mult": {"W1": -0.1}}}, r"^optimizer.lr_mult.W1: -0.1 is invalid: expected a number >= 0"),
    ({"optimizer": {"name": "adam", "lr_mult": {"W1": True}}}, r"^optimizer.lr_mult.W1: True is invalid"),
    ({"optimizer": {"name": "adam", "lr_mult": [0.1]}}, r"^optimizer.lr_mult: \[0.1\] is invalid: expected a mapping"),
    ({"optimizer": {"name": "lbfgs", "lr_mult": {1: 0.1}}}, r"^optimizer.lr_mult: lbfgs chooses its own step"),
    ({"data": {"name": "rosenbrock"}, "model": {}, "loss": None, "optimizer": {"name": "sgd", "lr_mult": {1: 2}}},
     r"^optimizer.lr_mult: a 2-D problem \(rosenbrock\) has no layers"),
]


@pytest.mark.parametrize("over, message", BAD)
def test_bad_clip_and_lr_mult_are_one_line_naming_the_key(over, message):
    raw = {**BASE, **over}
    if over.get("optimizer", {}).get("name") == "lbfgs":
        raw["train"] = {**raw["train"], "batch_size": "full"}
    with pytest.raises(OptbenchError, match=message) as info:
        expand(raw)
    assert "\n" not in str(info.value)


# ---- per-parameter learning-rate multipliers ---------------------------------------------------------


def test_layer_numbers_and_names_resolve_to_parameter_names():
    cfg = expand({**BASE, "model": {"hidden": [4], "norm": "batch"},
                  "optimizer": {"name": "adam", "lr_mult": {1: 0.1, "b1": 0.0, "2": 3}}})[0]
    assert cfg["optimizer"]["lr_mult"] == {"W1": 0.1, "b1": 0.0, "gamma1": 0.1, "beta1": 0.1, "W2": 3.0, "b2": 3.0}
    assert expand(cfg)[0] == cfg  # the resolved form reruns itself


def test_lr_mult_follows_torch_param_groups_per_replica(torch1):
    torch = torch1
    mults = {"layer1": {1: 0.1}, "layer1b": {1: 0.5}, "mixed": {"W2": 3.0, "b1": 0.0, "W3": 0.5}, "plain": {}}
    cfgs = expand({**BASE, "optimizer": {"name": "adam", "lr": 0.02},
                   "schedule": {"name": "step", "every": 10, "gamma": 0.5},
                   "variants": {k: {"optimizer": {"name": "adam", "lr_mult": v}} for k, v in mults.items()}})
    groups = make_groups(cfgs)
    assert len(groups) == 1
    tr = Trainer(groups[0])
    # multipliers are numbers: the two variants that scale the same parameters share one rule
    assert [(r.sl.start, r.sl.stop) for r in tr.rules] == [(0, 2), (2, 3), (3, 4)]
    theta0 = tr.theta.copy()
    tr.run()
    after = tr.theta.copy()
    tr.theta[...] = theta0
    epochs = BASE["train"]["epochs"]
    for r, c in enumerate(groups[0]):
        mult = c["optimizer"].get("lr_mult", {})

        def make_opt(ps, mult=mult):
            by = {}
            for k, p in ps.items():
                by.setdefault(mult.get(k, 1.0), []).append(p)
            return torch.optim.Adam([{"params": v, "lr": 0.02 * m} for m, v in by.items()], lr=0.02)

        tr.theta[...] = theta0
        ref = _torch_run(torch, tr, r, epochs, make_opt,
                         make_sched=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5))
        tr.theta[...] = after
        _compare(tr, r, ref, rtol=1e-10)
    named = tr.net.layout.named(after - theta0)
    assert np.abs(named["b1"][2]).max() == 0.0 and np.abs(named["b1"][3]).max() > 0  # multiplier 0 froze b1
