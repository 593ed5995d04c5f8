"""The training loop: epoch semantics, grouping invariance, freezing, regularizers, determinism."""

import csv

import numpy as np
import pytest

from optbench.config import expand, load_data, load_experiment
from optbench.losses import LOSSES
from optbench.model import MLP
from optbench.layers import ACTIVATIONS
from optbench.groups import make_groups
from optbench.batches import Batches, DataMatrix
from optbench.train import Trainer
from optbench.trainers import train_runs

from conftest import CONFIGS

BASE = {
    "name": "t",
    "data": {"name": "moons", "n_samples": 300, "noise": 0.2, "seed": 3},
    "model": {"hidden": [5, 2], "activation": "relu", "init": "he"},
    "loss": "bce",
    "train": {"epochs": 20, "batch_size": 64},
    "optimizer": {"name": "adam", "lr": 0.01},
}


def runs_of(raw=None, **over):
    cfg = dict(BASE if raw is None else raw)
    cfg.update(over)
    return expand(cfg)


def metrics(cfgs):
    """Train and collect each run's per-epoch metrics (dict of arrays) via the on_epoch hook."""
    rows = {}

    def on_epoch(rec):
        for r in np.flatnonzero(rec.alive):
            rows.setdefault(id(group[r]), []).append(
                {k: float(np.broadcast_to(v, rec.alive.shape)[r]) for k, v in rec.metrics.items()})

    results = {}
    for group in make_groups(cfgs):
        for c, res in zip(group, Trainer(group).run(on_epoch=on_epoch)):
            results[id(c)] = res
    return [rows[id(c)] for c in cfgs], [results[id(c)] for c in cfgs]


def test_groups_form_by_structure_not_numbers():
    cfgs = expand({**BASE, "seeds": [0, 1], "variants": {
        "a": {"optimizer": {"name": "adam", "lr": 0.01}},
        "b": {"optimizer": {"name": "adam", "lr": 0.1, "beta1": 0.8}},
        "c": {"optimizer": {"name": "sgd", "lr": 0.1}},
        "d": {"model": {"init": "xavier"}},
    }})
    groups = make_groups(cfgs)
    assert [len(g) for g in groups] == [8]  # one group: the forward/backward passes are shared
    assert [c["label"] for c in groups[0]] == ["t/a", "t/a", "t/b", "t/b", "t/d", "t/d", "t/c", "t/c"]  # rules contiguous
    tr = Trainer(groups[0])
    assert [(r.name, r.sl.start, r.sl.stop) for r in tr.rules] == [("adam", 0, 6), ("sgd", 6, 8)]
    other = expand({**BASE, "model": {"hidden": [4]}})
    assert len(make_groups(cfgs + other)) == 2  # another architecture is another group


def test_solo_and_grouped_runs_agree():
    """A run's numbers must not depend on its group: 8 replicas (lr, beta1, seed differ) vs each alone."""
    variants = {f"v{i}": {"optimizer": {"name": "adam", "lr": 0.002 * (i + 1), "beta1": 0.8 + 0.02 * i}} for i in range(4)}
    cfgs = expand({**BASE, "seeds": [0, 1], "variants": variants, "regularization": {"l2": 0.001}})
    assert len(make_groups(cfgs)) == 1 and len(cfgs) == 8
    grouped, gres = metrics(cfgs)
    for i, c in enumerate(cfgs):
        solo, sres = metrics([c])
        for a, b in zip(solo[0], grouped[i]):
            for k in ("train_cost", "train_acc", "grad_norm", "update_ratio", "lr"):
                np.testing.assert_allclose(a[k], b[k], rtol=1e-10, err_msg=k)
        for k, v in sres[0].params.items():
            np.testing.assert_allclose(v, gres[i].params[k], rtol=1e-10, atol=1e-14)


def test_mixed_optimizers_in_one_group_agree_with_solo_runs():
    """GD, momentum with a ramp, Adam with a step schedule and AdaGrad share one group; each equals its solo run."""
    cfgs = expand({**BASE, "seeds": [0, 1], "variants": {
        "gd": {"optimizer": {"name": "gd", "lr": 0.1}},
        "mom": {"optimizer": {"name": "momentum", "lr": 0.05}, "momentum_schedule": {"name": "ramp", "over": 5}},
        "adam": {"optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"name": "step", "every": 3, "gamma": 0.5}},
        "ada": {"optimizer": {"name": "adagrad", "lr": 0.1}},
    }})
    assert len(make_groups(cfgs)) == 1
    grouped, gres = metrics(cfgs)
    for i, c in enumerate(cfgs):
        solo, sres = metrics([c])
        np.testing.assert_equal(solo[0], [{**row, "seconds": solo[0][j]["seconds"]} for j, row in enumerate(grouped[i])])
        for k, v in sres[0].params.items():
            np.testing.assert_array_equal(v, gres[i].params[k])


def test_epoch_cost_is_the_mean_over_all_examples():
    """With a negligible step, the epoch's logged cost equals the initial full-data cost: the last,
    smaller batch (300 = 4 x 64 + 44) weighs what its examples weigh."""
    cfgs = runs_of(optimizer={"name": "sgd", "lr": 1e-12}, train={"epochs": 1, "batch_size": 64})
    rows, _ = metrics(cfgs)
    assert rows[0][1]["step"] == 5
    np.testing.assert_allclose(rows[0][1]["train_cost"], rows[0][0]["train_cost"], rtol=1e-9)


def test_full_batch_gd_is_one_exact_gradient_step_per_epoch():
    cfgs = runs_of(optimizer={"name": "gd", "lr": 0.5}, train={"epochs": 1, "batch_size": "full"})
    tr = Trainer(cfgs)
    theta0 = tr.theta.copy()
    M = tr.data.train
    D = tr.data.D
    net = MLP([2, 5, 2, 1], ACTIVATIONS.build("relu", {}), LOSSES.build("bce", {}))
    grad = np.zeros_like(theta0)
    net.loss_grad(theta0.copy(), grad, M[None, : D + 1], M[None, D + 1 :])
    res = tr.run()
    expected = net.layout.named(theta0 - 0.5 * grad)
    for k, v in res[0].params.items():
        np.testing.assert_allclose(v, expected[k][0], rtol=1e-12)


def test_diverging_replica_is_frozen_and_the_others_go_on():
    cfgs = expand({**BASE, "variants": {"ok": {}, "boom": {"optimizer": {"name": "sgd", "lr": 1e4}}},
                   "optimizer": {"name": "sgd", "lr": 0.1}, "train": {"epochs": 30, "batch_size": 64}})
    rows, res = metrics(cfgs)
    ok, boom = res
    assert ok.status == "completed" and len(rows[0]) == 31
    assert boom.status == "diverged" and boom.epochs < 30
    assert len(rows[1]) == boom.epochs + 1
    assert "initial" in boom.reason or "became" in boom.reason


def test_early_stopping_on_validation_cost():
    cfgs = runs_of(data={**BASE["data"], "val_fraction": 0.3}, train={"epochs": 400, "batch_size": 16},
                   model={"hidden": [50, 50]}, optimizer={"name": "adam", "lr": 0.05},
                   regularization={"early_stopping": {"metric": "val_cost", "patience": 5}})
    rows, res = metrics(cfgs)
    assert res[0].status == "stopped_early"
    vc = [r["val_cost"] for r in rows[0]]
    best = int(np.argmin(vc))
    assert len(vc) - 1 == best + 5  # stopped exactly `patience` epochs after the best


def test_float32_runs_in_float32_and_tracks_float64():
    r64, _ = metrics(runs_of())
    r32, res = metrics(runs_of(train={"epochs": 20, "batch_size": 64, "dtype": "float32"}))
    assert res[0].params["W1"].dtype == np.float32
    np.testing.assert_allclose(r32[0][-1]["train_cost"], r64[0][-1]["train_cost"], rtol=1e-3)


def test_l2_shrinks_weights():
    _, plain = metrics(runs_of(train={"epochs": 50, "batch_size": 64}))
    _, reg = metrics(runs_of(train={"epochs": 50, "batch_size": 64}, regularization={"l2": 0.5}))
    w = lambda p: sum((p[k] ** 2).sum() for k in p if k.startswith("W"))  # noqa: E731
    assert w(reg[0].params) < 0.7 * w(plain[0].params)


@pytest.mark.parametrize("extra", [
    {"model": {"hidden": [16], "drop_prob": 0.3}},
    {"model": {"hidden": [16], "norm": "batch"}},
    {"model": {"hidden": [16], "norm": "layer"}},
    {"regularization": {"input_noise": 0.1}},
    {"regularization": {"label_smoothing": 0.1}},
    {"regularization": {"mixup": 0.4}},
    {"regularization": {"polyak": 0.9}},
    {"train": {"epochs": 20, "batch_size": 32, "sampling": "random", "iterations_per_epoch": 3}},
    {"schedule": {"name": "cosine", "warmup": 2}},
    {"schedule": {"name": "plateau", "patience": 2}},
])
def test_every_option_trains_and_learns(extra):
    raw = {**BASE, "train": {"epochs": 20, "batch_size": 32}, **extra}
    rows, res = metrics(expand(raw))
    assert res[0].status == "completed"
    assert rows[0][-1]["train_cost"] < rows[0][0]["train_cost"]
    if "sampling" in raw["train"]:
        assert rows[0][-1]["step"] == 60


def test_regularizers_are_per_replica_in_a_group():
    """Dropout and noise draw from each run's own generators: grouped equals solo."""
    cfgs = expand({**BASE, "seeds": [0, 1], "model": {"hidden": [8], "drop_prob": 0.2},
                   "regularization": {"input_noise": 0.05, "mixup": 0.2, "label_smoothing": 0.05},
                   "variants": {"a": {}, "b": {"optimizer": {"name": "adam", "lr": 0.02}}}})  # seeds shared: one order each
    grouped, _ = metrics(cfgs)
    for i in (1, 2):
        solo, _ = metrics(cfgs[i : i + 1])
        np.testing.assert_allclose([r["train_cost"] for r in solo[0]], [r["train_cost"] for r in grouped[i]], rtol=1e-10)


def test_batch_norm_running_statistics_are_saved():
    _, res = metrics(runs_of(model={"hidden": [8], "norm": "batch"}))
    assert set(res[0].buffers) == {"running_mean1", "running_var1"}
    assert res[0].buffers["running_var1"].shape == (8, 1)


def test_lbfgs_trains_full_batch():
    rows, res = metrics(runs_of(optimizer={"name": "lbfgs"}, train={"epochs": 5, "batch_size": "full"}))
    assert res[0].status == "completed"
    assert rows[0][-1]["train_cost"] < 0.5 * rows[0][0]["train_cost"]


def test_momentum_ramp_sets_the_coefficient_each_epoch():
    """A ramp starting at 0.5 trains epoch 1 exactly as a constant mu = 0.5 does, then departs from it."""
    base = {**BASE, "optimizer": {"name": "momentum", "lr": 0.05, "mu": 0.5}}
    r_const, _ = metrics(expand(base))
    r_ramp, _ = metrics(expand({**base, "momentum_schedule": {"name": "ramp", "start": 0.5, "end": 0.99, "over": 10}}))
    assert r_const[0][1]["train_cost"] == r_ramp[0][1]["train_cost"]
    assert r_const[0][2]["train_cost"] != r_ramp[0][2]["train_cost"]


def test_shipped_reference_experiment_shape():
    """moons-optimizers: GD and EMA momentum end close together, Adam clearly lower (SEEDS.md section 6)."""
    cfgs = load_experiment(CONFIGS / "moons-optimizers.yaml", sets=["train.epochs=600", "seeds=[0, 1]"])
    _, res = metrics(cfgs)
    rows, _ = metrics(cfgs)
    final = {}
    for c, r in zip(cfgs, rows):
        final.setdefault(c["label"].split("/")[1], []).append(r[-1]["train_cost"])
    gd, mom, adam = (np.mean(final[k]) for k in ("gd", "momentum", "adam"))
    assert abs(gd - mom) < 0.02 * gd
    assert adam < 0.8 * gd


def test_data_is_shared_not_copied_per_run():
    from optbench.datacache import DataCache

    cache = DataCache()
    cfgs = expand({**BASE, "seeds": [0, 1]}, cache=cache)
    assert load_data(cfgs[0]["data"], cache=cache) is load_data(cfgs[1]["data"], cache=cache)
    assert cache.loads == 1


def test_problem_trajectories():
    cfgs = expand({"name": "p", "data": {"name": "quadratic", "condition": 10.0}, "train": {"epochs": 50},
                   "optimizer": {"name": "gd", "lr": 0.1}, "variants": {"gd": {}, "adam": {"optimizer": {"name": "adam", "lr": 0.1}}}})
    res = train_runs(cfgs)
    for r in res:
        xy = r.extra["trajectory"]["xy"]
        assert xy.shape == (51, 2)
        np.testing.assert_allclose(xy[0], [-4.0, 1.0])
    # GD on a quadratic: x_{t+1} = (1 - lr * h) x_t per coordinate, exactly
    xy = res[0].extra["trajectory"]["xy"]
    np.testing.assert_allclose(xy[10], [-4.0 * 0.9**10, 1.0 * 0.0**10], atol=1e-12)


def test_batch_by_batch_gathering_equals_epoch_gathering(monkeypatch):
    """Large data is gathered one batch at a time instead of a whole epoch at once: same numbers."""
    cfgs = runs_of(seeds=[0, 1], regularization={"label_smoothing": 0.1})
    epoch_mode, _ = metrics(cfgs)
    monkeypatch.setattr(Batches, "EPOCH_GATHER_BYTES", 0)
    batch_mode, _ = metrics(cfgs)
    strip = lambda runs: [[{k: v for k, v in row.items() if k != "seconds"} for row in rows] for rows in runs]  # noqa: E731
    np.testing.assert_equal(strip(batch_mode), strip(epoch_mode))
    # and with the data stored examples-major, gathered by rows
    monkeypatch.setattr(DataMatrix, "ROWS_MAJOR_BYTES", 0)
    rows_mode, _ = metrics(cfgs)
    np.testing.assert_equal(strip(rows_mode), strip(epoch_mode))


@pytest.mark.parametrize("packed", [True, False])
def test_epoch_orders_are_each_replicas_own_uniform_permutations(monkeypatch, packed):
    """Epoch e's order of replica r is the argsort of the e-th N uniforms of r's shuffle stream,
    whatever the group size, the keys drawn ahead, or whether positions ride in the keys' low bits."""
    if not packed:
        monkeypatch.setattr(Batches, "PACK_MAX_N", 0)
    monkeypatch.setattr(Batches, "PERM_KEY_BYTES", 3 * 8 * 3 * 300)  # 3 epochs ahead at R = 3: blocks refill
    cfgs = runs_of(seeds=[4, 5, 6], variants={"a": {}, "b": {"optimizer": {"name": "sgd", "lr": 0.1}}})
    assert [c["seed"] for c in cfgs] == [4, 5, 6] * 2  # equal seeds share one drawn order
    tr = Trainer(cfgs)
    N = tr.data.N
    orders = [tr.loader.gather(e).copy() for e in range(1, 8)]
    for r, c in enumerate(cfgs):
        stream = np.random.default_rng(np.random.SeedSequence(c["seed"]).spawn(5)[1]).random(7 * N)
        for e, order in enumerate(orders):
            np.testing.assert_array_equal(order[r], np.argsort(stream[e * N : (e + 1) * N], kind="stable"))
    solo = Trainer(cfgs[1:2])
    np.testing.assert_array_equal(solo.loader.gather(1)[0], orders[0][1])
    # the gathered examples follow the order
    np.testing.assert_array_equal(tr.loader.G[:, 5, :], tr.data.train[:, orders[-1][5]])


@pytest.mark.parametrize("train", [{"sampling": "random", "iterations_per_epoch": 3, "batch_size": 32},
                                   {"batch_size": "full", "epochs": 5}])
def test_shared_seeds_train_as_when_alone(train):
    """Runs sharing a seed share one drawn order: random sampling and full batches too, each equal to its solo run."""
    cfgs = runs_of(seeds=[0, 1], train={**BASE["train"], **train},
                   variants={"a": {}, "b": {"optimizer": {"name": "sgd", "lr": 0.3}}})
    grouped, _ = metrics(cfgs)
    for i in (0, 3):
        solo, _ = metrics(cfgs[i : i + 1])
        np.testing.assert_array_equal([r["train_cost"] for r in solo[0]], [r["train_cost"] for r in grouped[i]])


@pytest.mark.parametrize("l2", [0.0, 1e-3])
@pytest.mark.parametrize("drop_prob", [0.0, 0.2])
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_float32_trains_in_float32_with_every_norm_dropout_and_l2(tmp_path, norm, drop_prob, l2):
    """A float32 run stays float32 end to end: dropout's uniform draws once came in float64 (a TypeError at
    Generator.random(out=)); with the augmentations and Polyak averaging on too, and the LR range test."""
    from optbench.execute import execute
    from optbench.lrfind import lr_find

    raw = {**BASE, "seeds": [0, 1], "data": {**BASE["data"], "n_samples": 120},
           "model": {"hidden": [6, 4], "activation": "relu", "init": "he", "norm": norm, "drop_prob": drop_prob},
           "train": {"epochs": 3, "batch_size": 32, "dtype": "float32"},
           "regularization": {"l2": l2},
           "variants": {"plain": {}, "augmented": {"regularization": {
               "l2": l2, "input_noise": 0.05, "label_smoothing": 0.05, "mixup": 0.2, "polyak": 0.9}}}}
    trainers = []
    outcomes, interrupted = execute(expand(raw), tmp_path, trainer=lambda *a, **kw: trainers.append(Trainer(*a, **kw)) or trainers[-1])
    assert not interrupted and len(outcomes) == 4
    for tr in trainers:  # what a step computes with: no float64 array meets a float32 one, even where out= would cast
        held = [tr.theta, tr.grad, tr.keep, tr.l2, tr.mask, *tr.buffers.values()]
        for ws in tr.net._ws.values():
            held += [a for a in ws.masks + ws.U if a is not None]
            held += [a for c in ws.caches if c is not None for a in c]
        assert {a.dtype for a in held} == {np.dtype(np.float32)}
    for o in outcomes:
        assert o.result.status == "completed"
        with open(o.path / "metrics.csv") as f:
            costs = [float(r["train_cost"]) for r in csv.DictReader(f)]
        assert len(costs) == 4 and np.isfinite(costs).all()
        with np.load(o.path / "params.npz") as p:
            assert p.files and {p[k].dtype for k in p.files} == {np.dtype(np.float32)}, o.path
            assert ("running_mean1" in p.files) == (norm == "batch")
    for curve in lr_find(expand(raw), iters=8):  # each label's first seed
        assert len(curve.loss) == 8 and np.isfinite(curve.loss).all()
