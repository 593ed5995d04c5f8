"""Every registered update rule, built-in or plugin, reduces the loss with its default hyperparameters, trained
through the engine as a config would train it: on a convex quadratic (the 2-D problem `quadratic`) and on a small
moons net. The table is the registry itself, so a rule added later is covered without a line here."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from optbench.config import expand
from optbench.execute import train_group
from optbench.groups import make_groups
from optbench.optim import OPTIMIZERS

# A learning rate only for a rule whose factory has none by default (every other option has one: test_optim's
# test_factories_are_schemas). None of the rules registered today needs one; a rule of a plugin might.
LR_WITHOUT_DEFAULT = 1e-2

QUADRATIC = {"name": "every-rule-quadratic", "data": {"name": "quadratic", "condition": 10.0, "start": [-4.0, 1.0]},
             "train": {"epochs": 200}}
MOONS = {"name": "every-rule-moons", "data": {"name": "moons", "n_samples": 200, "noise": 0.2, "seed": 3},
         "model": {"hidden": [8], "activation": "tanh", "init": "xavier"}, "loss": "bce",
         "train": {"epochs": 25, "batch_size": 32}}


def _one_name_per_rule() -> list[str]:
    """The registered names without aliases (gd is sgd again), in registry order."""
    first: dict = {}
    for n in OPTIMIZERS.names():
        first.setdefault(OPTIMIZERS.get(n), n)
    return list(first.values())


RULES = _one_name_per_rule()


def _defaults(name: str) -> dict:
    """The optimizer section of rule `name` with its defaults: only its name (and an lr where it has no default)."""
    lr = inspect.signature(OPTIMIZERS.get(name)).parameters.get("lr")
    missing_lr = lr is not None and lr.default is inspect.Parameter.empty
    return {"name": name, **({"lr": LR_WITHOUT_DEFAULT} if missing_lr else {})}


def _full_batch(name: str) -> dict:
    """A closure rule (L-BFGS) takes full batches and no schedule: the train section it needs."""
    from optbench.optim import is_closure_optimizer

    return {"train": {"batch_size": "full"}} if is_closure_optimizer(name) else {}


def _train_every_rule(base: dict) -> dict[str, tuple[float, float, str]]:
    """rule -> (cost at epoch 0, cost at the last epoch, status), every registered rule trained on `base`."""
    names = RULES
    variants = {n: {"optimizer": _defaults(n), **_full_batch(n)} for n in names}
    cfgs = expand({**base, "variants": variants})
    out = {}
    for group in make_groups(cfgs):
        trace = train_group(group)
        cost = trace.metrics["train_cost"]
        for r, c in enumerate(group):
            out[c["optimizer"]["name"]] = (float(cost[0, r]), float(cost[-1, r]), trace.results[r].status)
    assert set(out) == set(names)
    return out


@pytest.fixture(scope="module")
def quadratic():
    return _train_every_rule(QUADRATIC)


@pytest.fixture(scope="module")
def moons():
    return _train_every_rule(MOONS)


@pytest.mark.parametrize("name", RULES)
def test_reduces_a_convex_quadratic(quadratic, name):
    first, last, status = quadratic[name]
    assert status == "completed"
    assert last < 0.99 * first, (first, last)


@pytest.mark.parametrize("name", RULES)
def test_reduces_the_moons_loss(moons, name):
    first, last, status = moons[name]
    assert status == "completed"
    assert last < 0.99 * first, (first, last)
