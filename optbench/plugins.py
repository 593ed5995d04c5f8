"""Factories of the user's own: `package.module:factory` paths and installed entry points, loaded only when named.

    optimizer: {name: "mypkg.rules:sign_sgd", lr: 0.01}        # any importable module
    [project.entry-points."optbench.optimizers"]               # or installed under a short name:
    sign_sgd = "mypkg.rules:sign_sgd"                          #   optimizer: {name: sign_sgd}

A loaded factory is checked as a built-in one is used: a callable whose keyword parameters (each named,
no *args or **kwargs) are its config schema. Every failure is a ValueError saying why in a few words;
the registry (optbench/registry.py) makes it the one-line error naming the key path and the value.
"""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata
from typing import Any, Callable



def is_path(name: str) -> bool:
    """True for `package.module:factory` (a colon: no built-in or entry-point name has one)."""
    return ":" in name


def installed(group: str) -> dict[str, metadata.EntryPoint]:
    """The entry points of `group` by name (read from the installed distributions' metadata, nothing imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def _load(ref: str) -> Any:
    """The object `package.module:attr.attr` names, or a ValueError saying in a few words why not."""
    module, _, attr = ref.partition(":")
    if not module or not attr or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
        raise ValueError("a rule of your own is written package.module:factory (e.g. mypkg.rules:sign_sgd)")
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and (module + ".").startswith(err.name + "."):
            raise ValueError(f"no module named {err.name!r} on this Python's path "
                             "(install the package or add its folder to PYTHONPATH)") from None
        raise ValueError(f"importing {module} failed: {type(err).__name__}: {err}") from None
    except Exception as err:  # the plugin's own code failed while importing
        raise ValueError(f"importing {module} failed: {type(err).__name__}: {err}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {module} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_path(name: str) -> Any:
    """The object a `package.module:factory` name refers to; ValueError (why not, in a few words) when it cannot be imported."""
    return _load(name)


def load_entry_point(ep: metadata.EntryPoint) -> Any:
    """The object an installed entry point names; ValueError when it cannot be loaded."""
    try:
        return _load(ep.value)
    except ValueError as why:
        raise ValueError(f"the installed entry point {ep.name} = {ep.value} ({ep.group}) cannot be loaded: {why}") from None


def check_factory(obj: Any, required: tuple[str, ...] = ()) -> Callable[..., Any]:
    """`obj` when it is a factory whose named keyword parameters are a config schema; else ValueError."""
    if not callable(obj):
        raise ValueError(f"it is {type(obj).__name__}, not a callable factory")
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        raise ValueError("its signature cannot be read (a factory is a Python function)") from None
    varargs = ["*" * (p.kind == p.VAR_POSITIONAL) + "**" * (p.kind == p.VAR_KEYWORD) + p.name
               for p in params.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if varargs:
        raise ValueError(f"its factory takes {varargs[0]}; name every hyperparameter as a keyword "
                         "with its default (the signature is the config schema)")
    missing = [k for k in required if k not in params]
    if missing:
        raise ValueError(f"its factory has no {missing[0]} keyword (accepted: a factory with "
                         f"{', '.join(required)}=... among its keywords)")
    return obj
