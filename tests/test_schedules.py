"""Schedules: hand-written value tables, torch.optim.lr_scheduler trajectories, replicas vs. solo runs, validation."""

import inspect
import math
import warnings

import numpy as np
import pytest

from optbench.errors import OptbenchError
from optbench.schedules import MOMENTUM_SCHEDULES, SCHEDULES

SQRT2 = math.sqrt(2.0)


def trajectory(schedule, n, metrics=None, R=1):
    """Multipliers for e = 0..n-1; metrics[..., e] (shape (R,)) is observed after epoch e."""
    state = schedule.init(R)
    out = []
    for e in range(n):
        m, state = schedule.multiplier(e, state)
        out.append(m)
        if metrics is not None:
            state = schedule.observe(np.asarray(metrics, dtype=float).reshape(R, -1)[:, e], state)
    return out


def build(registry, name, epochs=100, **options):
    return registry.build(name, registry.validate(name, options, "schedule"), epochs=epochs)


# ---------------------------------------------------------------- value tables, written from the formulas


TABLES = [
    # (name, options, epochs, {e: expected multiplier})
    ("constant", {}, 10, {0: 1, 1: 1, 9: 1, 500: 1}),
    ("step", {"every": 2, "gamma": 0.5}, 10, dict(enumerate([1, 1, 0.5, 0.5, 0.25, 0.25, 0.125]))),
    ("step", {}, 5000, {0: 1, 999: 1, 1000: 0.1, 1999: 0.1, 2000: 0.01}),
    ("exponential", {"gamma": 0.5}, 10, dict(enumerate([1, 0.5, 0.25, 0.125, 0.0625]))),
    ("exponential", {}, 10, {0: 1, 1: 0.95, 2: 0.9025}),
    ("inverse_time", {}, 10, dict(enumerate([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]))),
    ("inverse_time", {"decay_rate": 1, "interval": 1000}, 5000, {0: 1, 999: 1, 1000: 0.5, 2500: 1 / 3}),
    ("inverse_time", {"decay_rate": 0.5, "interval": 2}, 10, dict(enumerate([1, 1, 1 / 1.5, 1 / 1.5, 0.5, 0.5]))),
    ("inverse_time", {"decay_rate": 0}, 10, {0: 1, 7: 1}),
    # scikit-learn invscaling on 150 examples: 1 / (1 + 150 e)^0.5
    ("inverse_time", {"decay_rate": 150, "power": 0.5}, 10, {0: 1, 1: 151**-0.5, 2: 301**-0.5, 9: 1351**-0.5}),
    # cos(pi/4) = sqrt2/2, so (1 + cos(pi/4))/2 = (2 + sqrt2)/4
    ("cosine", {}, 4, dict(enumerate([1, (2 + SQRT2) / 4, 0.5, (2 - SQRT2) / 4]))),
    # warmup 1/3, 2/3, then 0.2 + 0.8 * the table above over the 4 remaining epochs; clipped at 0.2 past the end
    (
        "cosine",
        {"warmup": 2, "min_factor": 0.2},
        6,
        {0: 1 / 3, 1: 2 / 3, 2: 1, 3: 0.2 + 0.8 * (2 + SQRT2) / 4, 4: 0.6, 5: 0.2 + 0.8 * (2 - SQRT2) / 4, 6: 0.2, 9: 0.2},
    ),
    ("cosine", {"warmup": 5}, 3, {0: 1 / 6, 2: 3 / 6, 4: 5 / 6}),  # warmup longer than the run: no crash
]


@pytest.mark.parametrize("name,options,epochs,table", TABLES)
def test_value_table(name, options, epochs, table):
    schedule = build(SCHEDULES, name, epochs, **options)
    state = schedule.init(1)
    for e, expected in table.items():
        m, state = schedule.multiplier(e, state)
        assert np.ndim(m) == 0 and isinstance(float(m), float)
        assert float(m) == pytest.approx(expected, rel=1e-12, abs=1e-15), (name, options, e)


def test_plateau_table():
    # factor .5, patience 1, threshold 10% (rel), cooldown 1, floor .2; traced by hand:
    # e0 best 10 | e1 9.5 not < 9: bad 1 | e2 bad 2 > 1: m .5, cooldown | e3 bad forgiven in cooldown | e4 bad 1
    # e5 8 < 9: best | e6 NaN: bad 1 | e7 7.5 not < 7.2: bad 2, m .25 | e8 7 < 7.2: best | e9, e10: m max(.125, .2)
    # e11 cooldown | e12, e13: reduction stays at the .2 floor
    schedule = build(SCHEDULES, "plateau", factor=0.5, patience=1, threshold=0.1, cooldown=1, min_factor=0.2)
    metrics = [10, 9.5, 9.5, 9.9, 9.9, 8, np.nan, 7.5, 7, 7, 7, 7, 7, 7, 7]
    expected = [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]
    ms = trajectory(schedule, 15, metrics)
    assert all(m.shape == (1, 1) for m in ms)
    np.testing.assert_array_equal(np.concatenate(ms).ravel(), expected)


def test_plateau_defaults_wait_patience_epochs():
    schedule = build(SCHEDULES, "plateau")  # patience 10: the 11th epoch without improvement reduces
    ms = np.concatenate(trajectory(schedule, 14, [5.0] * 14)).ravel()
    np.testing.assert_array_equal(ms, [1] * 12 + [0.1] * 2)


def test_plateau_nan_metric_does_not_crash():
    schedule = build(SCHEDULES, "plateau", patience=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ms = np.concatenate(trajectory(schedule, 6, np.full((2, 6), np.nan), R=2), axis=1)
    # NaN is never better, so e0..e2 are 3 bad epochs > patience 2, like torch
    np.testing.assert_array_equal(ms, [[1, 1, 1, 0.1, 0.1, 0.1]] * 2)


def test_momentum_ramp_table():
    schedule = build(MOMENTUM_SCHEDULES, "ramp", start=0.5, end=0.9, over=4)
    ms = trajectory(schedule, 8)
    np.testing.assert_allclose(ms, [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9], rtol=1e-12)
    defaults = trajectory(build(MOMENTUM_SCHEDULES, "ramp"), 201)
    assert defaults[0] == 0.5 and defaults[50] == pytest.approx(0.745) and defaults[100] == defaults[200] == 0.99


def test_momentum_constant_leaves_mu_alone():
    assert trajectory(build(MOMENTUM_SCHEDULES, "constant"), 3) == [None, None, None]


@pytest.mark.parametrize("name", [n for n in SCHEDULES.names() if n != "one_cycle"])
def test_first_epoch_uses_base_rate(name):
    m, _ = build(SCHEDULES, name, epochs=50).multiplier(0, SCHEDULES.build(name, {}, epochs=50).init(3))
    assert np.all(np.asarray(m) == 1)


def test_one_cycle_starts_low_peaks_at_the_base_rate_and_ends_far_below():
    """optimizer.lr is OneCycle's max_lr: the run starts at lr/div_factor, peaks at lr, ends at lr/(25*1e4)."""
    ms = ours("one_cycle", 100)
    assert ms[0] == pytest.approx(1 / 25) and ms.max() == pytest.approx(1.0) and ms[-1] == pytest.approx(1 / 25e4)
    assert int(np.argmax(ms)) == 29  # the peak at pct_start * epochs - 1, as torch places it


# ---------------------------------------------------------------- against torch.optim.lr_scheduler

N = 60


def torch_lrs(make, n=N, metrics=None):
    """lr of a torch optimizer with base lr 1 (so lr == multiplier) before each of n epochs."""
    import torch
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=1.0)
    scheduler = make(opt)
    out = []
    for e in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()  # no grad: a no-op, but keeps torch from warning about the call order
        scheduler.step() if metrics is None else scheduler.step(float(metrics[e]))
    return np.array(out)


def ours(name, n=N, metrics=None, **options):
    return np.asarray(trajectory(build(SCHEDULES, name, epochs=n, **options), n, metrics), dtype=float).ravel()


@pytest.mark.parametrize("every,gamma", [(7, 0.3), (1, 0.9), (100, 0.1)])
def test_step_matches_torch(every, gamma):
    import torch.optim.lr_scheduler as lrs
    expected = torch_lrs(lambda opt: lrs.StepLR(opt, step_size=every, gamma=gamma))
    np.testing.assert_allclose(ours("step", every=every, gamma=gamma), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.9, 0.5, 1.05])
def test_exponential_matches_torch(gamma):
    import torch.optim.lr_scheduler as lrs
    expected = torch_lrs(lambda opt: lrs.ExponentialLR(opt, gamma=gamma))
    np.testing.assert_allclose(ours("exponential", gamma=gamma), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [50, 60, 97])
def test_cosine_matches_torch(n):
    import torch.optim.lr_scheduler as lrs
    expected = torch_lrs(lambda opt: lrs.CosineAnnealingLR(opt, T_max=n, eta_min=0), n)
    np.testing.assert_allclose(ours("cosine", n), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n,options", [
    (60, {}),
    (50, {"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0}),
    (97, {"pct_start": 0.5, "anneal": "linear"}),
    (20, {"pct_start": 0.01}),  # the peak at step -0.8: torch's first phase is never taken
])
def test_one_cycle_matches_torch(n, options):
    import torch.optim.lr_scheduler as lrs
    kw = {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4, "anneal": "cos", **options}
    expected = torch_lrs(lambda opt: lrs.OneCycleLR(
        opt, max_lr=1.0, total_steps=n, pct_start=kw["pct_start"], div_factor=kw["div_factor"],
        final_div_factor=kw["final_div_factor"], anneal_strategy=kw["anneal"], cycle_momentum=False), n)
    np.testing.assert_allclose(ours("one_cycle", n, **options), expected, rtol=1e-12, atol=1e-15)


def test_one_cycle_momentum_matches_torchs_cycle_momentum():
    import torch
    n = 40
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=1.0, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=n, base_momentum=0.8, max_momentum=0.95)
    expected = []
    for _ in range(n):
        expected.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    mus = trajectory(build(MOMENTUM_SCHEDULES, "one_cycle", n, base=0.8, peak=0.95), n)
    np.testing.assert_allclose(np.ravel(mus), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("T_0,T_mult,min_factor", [(10, 1, 0.0), (7, 2, 0.1), (3, 3, 0.0), (1, 2, 0.05)])
def test_cosine_restarts_matches_torch(T_0, T_mult, min_factor):
    import torch.optim.lr_scheduler as lrs
    expected = torch_lrs(lambda opt: lrs.CosineAnnealingWarmRestarts(opt, T_0=T_0, T_mult=T_mult, eta_min=min_factor))
    got = ours("cosine_restarts", T_0=T_0, T_mult=T_mult, min_factor=min_factor)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("inner,options,torch_inner", [
    ("step", {"every": 3, "gamma": 0.5}, lambda lrs, opt: lrs.StepLR(opt, step_size=3, gamma=0.5)),
    ("exponential", {"gamma": 0.9}, lambda lrs, opt: lrs.ExponentialLR(opt, gamma=0.9)),
    ("constant", {}, lambda lrs, opt: lrs.ConstantLR(opt, factor=1.0, total_iters=0)),
])
def test_warmup_of_any_schedule_is_torchs_linear_warmup_then_the_schedule(inner, options, torch_inner):
    """warmup w: torch's SequentialLR of LinearLR(start_factor 1/(w+1), total_iters w) and the schedule at w."""
    import torch.optim.lr_scheduler as lrs
    w = 4
    expected = torch_lrs(lambda opt: lrs.SequentialLR(opt, [
        lrs.LinearLR(opt, start_factor=1 / (w + 1), end_factor=1.0, total_iters=w), torch_inner(lrs, opt)],
        milestones=[w]))
    np.testing.assert_allclose(ours(inner, warmup=w, **options), expected, rtol=1e-12, atol=1e-15)


def test_warmup_zero_is_the_schedule_itself_and_plateau_still_observes():
    assert ours("step", every=3, gamma=0.5).tolist() == ours("step", every=3, gamma=0.5, warmup=0).tolist()
    metric = scripted_metric()
    warm = ours("plateau", len(metric), metric, warmup=3, patience=2, factor=0.5)
    assert warm[:3].tolist() == [0.25, 0.5, 0.75] and warm.min() < 0.5  # warmed up, then reduced on its metric


def scripted_metric():
    """Improvement, plateaus, improvements below a 1% threshold, a NaN, a real drop, tiny improvements: 66 epochs."""
    return np.concatenate(
        [
            np.linspace(10.0, 5.0, 10),
            np.full(8, 5.0),
            5.0 * (1 - 0.5e-2) ** np.arange(1, 11),
            [4.0, 4.0, np.nan, 4.0, 3.0, 3.5],
            np.full(12, 3.0),
            3.0 - 1e-3 * np.arange(1, 11),
            [2.0, 2.5, 2.0, 1.99, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5],
        ]
    )


PLATEAU_CASES = [
    {},
    {"factor": 0.5, "patience": 2, "threshold": 1e-2, "cooldown": 3},
    {"factor": 0.5, "patience": 2, "threshold": 1e-2, "cooldown": 3, "min_factor": 0.05},
    {"factor": 0.7, "patience": 0, "threshold": 0.0, "cooldown": 1},
    {"factor": 0.1, "patience": 4, "threshold": 0.05, "cooldown": 0, "min_factor": 1e-3},
]


@pytest.mark.parametrize("options", PLATEAU_CASES)
def test_plateau_matches_torch(options):
    import torch.optim.lr_scheduler as lrs
    metric = scripted_metric()
    n = len(metric)
    kw = {"factor": 0.1, "patience": 10, "threshold": 1e-4, "cooldown": 0, "min_factor": 0.0, **options}
    expected = torch_lrs(
        lambda opt: lrs.ReduceLROnPlateau(
            opt,
            mode="min",
            threshold_mode="rel",
            factor=kw["factor"],
            patience=kw["patience"],
            threshold=kw["threshold"],
            cooldown=kw["cooldown"],
            min_lr=kw["min_factor"],
            eps=0.0,  # optbench has no eps: it sees multipliers, not absolute rates
        ),
        n,
        metric,
    )
    assert len(set(expected)) >= 2  # the script does trigger reductions
    np.testing.assert_allclose(ours("plateau", n, metric, **options), expected, rtol=1e-12, atol=0)


# ---------------------------------------------------------------- replicas: (R, 1) parameters == solo runs

VECTOR_CASES = [
    (SCHEDULES, "step", {"every": [1, 2, 5], "gamma": [0.1, 0.5, 0.9]}),
    (SCHEDULES, "step", {"every": 3, "gamma": [0.1, 0.5, 0.9]}),
    (SCHEDULES, "exponential", {"gamma": [0.5, 0.9, 0.99]}),
    (SCHEDULES, "inverse_time", {"decay_rate": [0.0, 1.0, 0.25], "interval": [1, 4, 10]}),
    (SCHEDULES, "inverse_time", {"decay_rate": [150.0, 1.0, 3.0], "power": [0.5, 1.0, 2.0]}),
    (SCHEDULES, "cosine", {"warmup": [0, 3, 10], "min_factor": [0.0, 0.1, 0.5]}),
    (SCHEDULES, "cosine", {"warmup": [0, 3, 10]}),
    (MOMENTUM_SCHEDULES, "ramp", {"start": [0.5, 0.0, 0.9], "end": [0.99, 0.9, 0.5], "over": [10, 1, 30]}),
    (SCHEDULES, "one_cycle", {"pct_start": [0.3, 0.1, 0.5], "div_factor": [25.0, 10.0, 4.0]}),
    (SCHEDULES, "cosine_restarts", {"T_0": [3, 5, 7], "T_mult": [1, 2, 3], "min_factor": [0.0, 0.1, 0.5]}),
    (SCHEDULES, "step", {"warmup": [0, 2, 5], "every": [3, 1, 2]}),
    (SCHEDULES, "one_cycle", {"warmup": [0, 3, 8]}),
    (MOMENTUM_SCHEDULES, "one_cycle", {"pct_start": [0.3, 0.2, 0.6], "base": [0.85, 0.5, 0.8]}),
]


@pytest.mark.parametrize("registry,name,options", VECTOR_CASES)
def test_replicas_equal_solo(registry, name, options):
    R, n = 3, 40
    vector = trajectory(registry.build(name, {k: np.reshape(v, (-1, 1)) for k, v in options.items()}, epochs=n), n)
    assert all(np.shape(m) == (R, 1) for m in vector)
    for r in range(R):
        solo = build(registry, name, n, **{k: v[r] if isinstance(v, list) else v for k, v in options.items()})
        np.testing.assert_allclose([m[r, 0] for m in vector], trajectory(solo, n), rtol=1e-14, atol=0)


def test_plateau_replicas_equal_solo():
    R, n = 3, 50
    rng = np.random.default_rng(0)
    # random walks with flat stretches and a NaN, different per replica
    metrics = 10 + np.cumsum(rng.choice([-1.0, 0.0, 0.0, 0.001], size=(R, n)), axis=1)
    metrics[1, 20] = np.nan
    options = {"factor": [0.5, 0.1, 0.9], "patience": [0, 2, 5], "threshold": [0.0, 1e-2, 1e-4], "cooldown": [2, 0, 1]}
    vector = SCHEDULES.build("plateau", {k: np.reshape(v, (-1, 1)) for k, v in options.items()}, epochs=n)
    ms = np.concatenate(trajectory(vector, n, metrics, R=R), axis=1)
    assert len(np.unique(ms)) > 3  # reductions happen
    for r in range(R):
        solo = build(SCHEDULES, "plateau", n, **{k: v[r] for k, v in options.items()})
        np.testing.assert_array_equal(ms[r], np.concatenate(trajectory(solo, n, metrics[r])).ravel())


# ---------------------------------------------------------------- schema and validation


@pytest.mark.parametrize(
    "registry,name,options,prefix",
    [
        (SCHEDULES, "step", {"every": 0}, "schedule.every:"),
        (SCHEDULES, "step", {"gamma": 0}, "schedule.gamma:"),
        (SCHEDULES, "step", {"every": 1.5}, "schedule.every:"),
        (SCHEDULES, "exponential", {"gamma": -0.5}, "schedule.gamma:"),
        (SCHEDULES, "inverse_time", {"decay_rate": -1}, "schedule.decay_rate:"),
        (SCHEDULES, "inverse_time", {"interval": 0}, "schedule.interval:"),
        (SCHEDULES, "cosine", {"warmup": -1}, "schedule.warmup:"),
        (SCHEDULES, "cosine", {"min_factor": 1.0}, "schedule.min_factor:"),
        (SCHEDULES, "plateau", {"factor": 1.0}, "schedule.factor:"),
        (SCHEDULES, "plateau", {"factor": 0}, "schedule.factor:"),
        (SCHEDULES, "plateau", {"patience": -1}, "schedule.patience:"),
        (SCHEDULES, "plateau", {"threshold": -1e-4}, "schedule.threshold:"),
        (SCHEDULES, "plateau", {"cooldown": "soon"}, "schedule.cooldown:"),
        (SCHEDULES, "plateau", {"min_factor": -0.1}, "schedule.min_factor:"),
        (SCHEDULES, "cosine", {"epochs": 10}, "schedule.epochs: unknown option"),  # engine-supplied, not config
        (SCHEDULES, "constant", {"gamma": 0.5}, "schedule.gamma: unknown option"),
        (MOMENTUM_SCHEDULES, "ramp", {"end": 1.0}, "schedule.end:"),
        (MOMENTUM_SCHEDULES, "ramp", {"start": -0.1}, "schedule.start:"),
        (MOMENTUM_SCHEDULES, "ramp", {"over": 0}, "schedule.over:"),
    ],
)
def test_validation_rejects_impossible_values(registry, name, options, prefix):
    with pytest.raises(OptbenchError) as err:
        registry.validate(name, options, "schedule")
    assert str(err.value).startswith(prefix), str(err.value)


def test_unknown_schedule_lists_accepted_names():
    with pytest.raises(OptbenchError, match=r"^schedule\.name: unknown schedule 'linear' \(accepted: constant, step"):
        SCHEDULES.validate("linear", {}, "schedule")


ALL = [(SCHEDULES, n) for n in SCHEDULES.names()] + [(MOMENTUM_SCHEDULES, n) for n in MOMENTUM_SCHEDULES.names()]


@pytest.mark.parametrize("registry,name", ALL)
def test_factory_shape(registry, name):
    """Keyword-only, annotated, defaulted options; `epochs` last and not configurable; a one-line summary."""
    params = list(inspect.signature(registry.get(name)).parameters.values())
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    assert params[-1].name == "epochs" and "epochs" not in registry.params(name)
    assert all(p.default is not inspect.Parameter.empty and p.annotation is not inspect.Parameter.empty for p in params[:-1])
    assert registry.summary(name)
    assert registry.validate(name, {}, "schedule") == registry.defaults(name)


def test_inverse_time_power_is_sklearns_invscaling():
    """scikit-learn's SGDOptimizer sets lr_init / (t + 1)^power_t after each epoch, t the examples seen."""
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    n, lr0 = 150, 0.2
    schedule = build(SCHEDULES, "inverse_time", 10, decay_rate=n, power=0.5)
    state = schedule.init(1)
    ref = SGDOptimizer([np.zeros(1)], learning_rate_init=lr0, lr_schedule="invscaling", power_t=0.5)
    for e in range(10):
        m, state = schedule.multiplier(e, state)
        assert lr0 * float(m) == pytest.approx(ref.learning_rate, rel=1e-15), e
        ref.iteration_ends((e + 1) * n)


def test_one_cycle_with_cycled_momentum_trains_at_the_scheduled_rates():
    """The engine runs epoch e (1-based rows) at lr * one_cycle(e - 1) with mu from the momentum one_cycle."""
    from optbench.config import expand
    from optbench.train import Trainer

    n = 20
    cfgs = expand({"name": "t", "data": {"name": "moons", "n_samples": 200, "seed": 1}, "model": {"hidden": [4]},
                   "loss": "bce", "train": {"epochs": n, "batch_size": 50},
                   "optimizer": {"name": "momentum", "lr": 0.5, "mu": 0.9},
                   "schedule": {"name": "one_cycle", "warmup": 2}, "momentum_schedule": {"name": "one_cycle"}})
    lrs = {}
    res = Trainer(cfgs).run(on_epoch=lambda rec: lrs.__setitem__(rec.epoch, float(rec.metrics["lr"][0])))
    assert res[0].status == "completed"
    expected = 0.5 * ours("one_cycle", n, warmup=2)
    np.testing.assert_allclose([lrs[e] for e in range(1, n + 1)], expected, rtol=1e-15)
    assert lrs[0] == lrs[1]  # the epoch-0 row shows the rate epoch 1 runs at
