"""Per-parameter learning-rate multipliers: torch's param groups as one (1, P) or (n, P) factor on lr_t.

    optimizer: {name: adam, lr: 0.01, lr_mult: {1: 0.1}}           # layer 1 (W1, b1 and its norm) at lr/10
    optimizer: {name: adam, lr: 0.01, lr_mult: {W1: 0.1, b1: 0.0}}  # by parameter name; 0 freezes

The step is theta -= lr_t * mult * direction, the update of torch.optim.Adam([{"params": [W1, b1],
"lr": lr * 0.1}, {"params": rest}], lr=lr): each group's lr is the base lr times its multiplier,
and a schedule scales every group's lr alike (as torch's LambdaLR, StepLR, ... do). The rule's
state and direction are those of the base lr: rules that use lr inside their update see it unscaled.
A layer number stands for every parameter with that number (W_l, b_l, gamma_l, beta_l); a parameter
named too overrides its layer's multiplier. Unnamed parameters keep multiplier 1.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from optbench.errors import OptbenchError
from optbench.params import Layout
from optbench.registry import format_value

KEY = "lr_mult"  # its key in the optimizer section; not a factory's option


def parameter_names(model: dict) -> list[str]:
    """The parameter names of the MLP a resolved model section builds, in buffer order."""
    L = len(model["hidden"]) + 1
    norm = model["norm"] != "none"
    out = []
    for l in range(1, L + 1):
        out += [f"W{l}", f"b{l}"] + ([f"gamma{l}", f"beta{l}"] if norm and l < L else [])
    return out


def _layer(key: Any) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


def resolve(spec: Any, model: dict, path: str = f"optimizer.{KEY}") -> dict[str, float]:
    """A written lr_mult (layer numbers and/or parameter names) -> {parameter name: multiplier}, in buffer order."""
    names = parameter_names(model)
    L = len(model["hidden"]) + 1
    if not isinstance(spec, dict):
        raise OptbenchError(f"{path}: {format_value(spec)} is invalid: expected a mapping of layer number or "
                            "parameter name to a multiplier, e.g. {1: 0.1} or {W1: 0.1, b1: 0.1}")
    by_layer: dict[int, float] = {}
    by_name: dict[str, float] = {}
    for key, value in spec.items():
        where = f"{path}.{key}"
        layer = _layer(key)
        if layer is None and key not in names or layer is not None and not 1 <= layer <= L:
            raise OptbenchError(f"{where}: unknown parameter (accepted: {', '.join(names)}, or a layer number 1..{L})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise OptbenchError(f"{where}: {format_value(value)} is invalid: expected a number >= 0 "
                                "(the factor on this parameter's learning rate; 0 freezes it)")
        if layer is not None:
            by_layer[layer] = float(value)
        else:
            by_name[key] = float(value)
    out = {}
    for n in names:
        layer = int(re.search(r"\d+$", n).group())
        if n in by_name or layer in by_layer:
            out[n] = by_name.get(n, by_layer.get(layer))
    return out


def multiplier(layout: Layout, specs: list[dict | None], dtype) -> np.ndarray | None:
    """The factor on lr_t per parameter of each replica's resolved lr_mult: (1, P) when all agree, (n, P) when not,
    None when none has one."""
    if not any(specs):
        return None
    distinct = specs[:1] if all(s == specs[0] for s in specs) else specs
    mult = np.ones((len(distinct), layout.P), dtype=dtype)
    views = layout.named(mult)
    for r, spec in enumerate(distinct):
        for name, value in (spec or {}).items():
            views[name][r] = value
    return mult
