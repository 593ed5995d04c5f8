"""The optimizer registry: every update rule by name, and what the engine asks of a rule.

A first-order rule is an `Optimizer(init, bind, lr)` (optbench/optimizer.py: the protocol and the pieces rules
are built from). The rules live in small modules, one family each, ordered by increasing complexity:

    optbench/sgd.py         sgd (gd), momentum, nesterov
    optbench/adaptive.py    adagrad, rmsprop, adadelta
    optbench/adam.py        adam, adamw, adamax, nadam, radam, adabelief
    optbench/lion.py        lion
    optbench/lbfgs.py       lbfgs, a closure optimizer: it re-evaluates the function, so another protocol
                            (`is_closure_optimizer`)
    optbench/muon.py, prodigy.py, schedulefree.py, wrappers.py    the modern rules

Each registers its rules with `@OPTIMIZERS.register()` when the registry is first looked up (the providers
below, imported in this order, which is the order `optbench list optimizers` shows). These are the fast
forms. optbench/reference.py writes each classic rule as the literature does (SEEDS.md §1), and
tests/test_optim.py holds the two together; `optbench list optimizers NAME` shows both.
"""

from __future__ import annotations

import inspect

from optbench.optimizer import Optimizer  # what a rule returns; plugins import it from here (README)
from optbench.registry import Registry

# the rule modules use the registry and optbench/optimizer.py's pieces, so this module cannot import them: they
# register at the first lookup; plugins (optbench/plugins.py): a user's `package.module:factory` or an installed
# entry point
OPTIMIZERS = Registry("optimizer", providers=("optbench.sgd", "optbench.adaptive", "optbench.adam", "optbench.lion",
                                              "optbench.lbfgs", "optbench.muon", "optbench.prodigy",
                                              "optbench.schedulefree", "optbench.wrappers"),
                      plugins="optbench.optimizers", required=("lr",))

__all__ = ["OPTIMIZERS", "Optimizer", "build", "is_closure_optimizer", "takes_mu"]


# ---- the registry's protocols --------------------------------------------------------------------


def is_closure_optimizer(name: str) -> bool:
    """True when `name` builds a closure optimizer (lbfgs.LBFGS: step(theta, closure, state)) rather than an Optimizer.

    It re-evaluates the cost inside a step: full batches only, no lr schedule, no dropout, one replica at a time.
    """
    return getattr(OPTIMIZERS.get(name), "needs_closure", False)


def build(name: str, options: dict, *, layout=None):
    """OPTIMIZERS.build, handing `layout` (params.Layout: the blocks of theta's row) to the factories that take it."""
    takes = "layout" in inspect.signature(OPTIMIZERS.get(name)).parameters
    return OPTIMIZERS.build(name, options, **({"layout": layout} if takes else {}))


def takes_mu(name: str) -> bool:
    """True when `name`'s update takes `mu=` (its factory has a momentum coefficient mu): a momentum schedule applies."""
    return "mu" in OPTIMIZERS.params(name) and not is_closure_optimizer(name)
