"""`optbench list`: a registry's entries with their options, or one entry in full with its readable form."""

from __future__ import annotations

import inspect

from optbench.choices import FAMILIES
from optbench.layout import is_terminal
from optbench.report.table import show_table


def registry(family: str):
    import importlib

    mod, attr = FAMILIES[family]
    return getattr(importlib.import_module(mod), attr)


def _annotation(p: inspect.Parameter) -> str:
    a = p.annotation
    if a is inspect.Parameter.empty:
        return ""
    text = a if isinstance(a, str) else getattr(a, "__name__", str(a))
    return str(text).replace("typing.", "")


def print_registry(family: str) -> None:
    from optbench.errors import OptbenchError

    reg = registry(family)
    rows = []
    for name in reg.names() + reg.installed():  # installed plugins are imported here, to show their schema
        try:
            params = reg.params(name)
        except OptbenchError as err:
            rows.append([name, "-", f"plugin that does not load: {str(err).split(' is invalid: ', 1)[-1]}"])
            continue
        opts = ", ".join(
            f"{k}={p.default!r}" if p.default is not inspect.Parameter.empty else f"{k} (required)"
            for k, p in params.items()
        )
        summary = reg.summary(name)
        rows.append([name, opts or "-", f"(plugin {reg.get(name).__module__}) {summary}" if reg.is_plugin(name) else summary])
    show_table(family, ["name", "options (defaults)", "what it is"], rows)
    if not is_terminal():
        print()


def print_entry(family: str, name: str) -> None:
    """One entry in full: its docstring (the formula), its options with defaults and, for an optimizer, the
    reference form (optbench/reference.py) its fast form is tested against, or its own code when that is its formula."""
    reg = registry(family)
    factory = reg.get(name, family)
    alias = f" (another name for {factory.__name__})" if factory.__name__ != name else ""
    lines = [f"{family} {name}{alias}", "", *(inspect.getdoc(factory) or "").splitlines(), "", "options (defaults):"]
    lines += [f"  {k}: {_annotation(p)} = {p.default!r}" for k, p in reg.params(name).items()] or ["  none"]
    if family == "optimizers":
        lines += ["", *_rule_forms(name, factory)]
    print("\n".join(lines))


def _rule_forms(name: str, factory) -> list[str]:
    """The readable forms of optimizer `name`: reference.py's steps for it, or where its code is."""
    from optbench import reference
    from optbench.optim import is_closure_optimizer

    if registry("optimizers").is_plugin(name):
        try:
            source = inspect.getsource(factory).rstrip()
        except (OSError, TypeError):
            source = "(its source is not available)"
        return [f"a rule of your own ({factory.__module__}), its code:", "", source]
    if is_closure_optimizer(name):
        return [f"a closure optimizer ({factory.__module__}): step(theta, closure, state), see its module docstring"]
    own = getattr(factory, "reference_forms", None)  # a rule in its own module names its textbook form
    steps = list(own) if own else reference.forms(factory.__name__)
    if not steps:
        return [f"written as its formula, the fast form is its reference ({factory.__module__}):", "",
                inspect.getsource(factory).rstrip()]
    out = []
    for step in steps:
        how = ("bit for bit" if step.__name__ in reference.BITWISE and not own
               else "to rounding (1e-15 of the trajectory's scale)" if not own else "to rounding")
        where = step.__module__.replace(".", "/") + ".py"
        out += [f"reference form {step.__name__} ({where}; the fast form matches it {how}):", "",
                inspect.getsource(step).rstrip(), ""]
    return out[:-1]
