"""The checks of a resolved config that span its sections (each section alone is checked by its model or factory).

config.py calls them while it resolves: the optimizer against the training shape and the loss, clipping and
lr_mult against the optimizer and the model, fine-tuning sources against the net, groups against the memory budget.
"""

from __future__ import annotations

from typing import Any

from optbench import budget, lrmult
from optbench.errors import OptbenchError
from optbench.registry import format_value


def _problems():
    from optbench.problems import PROBLEMS  # the 2-D problems' names: imported when a config needs them

    return PROBLEMS


def check_clips(out: dict) -> None:
    """At most one of train.clip_grad_norm and clip_grad_value, and neither with a closure optimizer."""
    clips = [k for k in ("clip_grad_norm", "clip_grad_value") if k in out["train"]]
    if len(clips) == 2:
        raise OptbenchError("train.clip_grad_value: give clip_grad_norm or clip_grad_value, not both "
                            "(the order of two clips would matter)")
    if clips and _optim().is_closure_optimizer(out["optimizer"]["name"]):
        raise OptbenchError(f"train.{clips[0]}: {out['optimizer']['name']} evaluates its own gradients "
                            f"inside a step; clipping is not supported with it (omit train.{clips[0]})")


def set_lr_mult(out: dict, spec: Any) -> None:
    """optimizer.lr_mult resolved to parameter names (omitted when empty), where a rule takes steps of lr_t."""
    opt, path = out["optimizer"]["name"], f"optimizer.{lrmult.KEY}"
    if out["data"]["name"] in _problems():
        raise OptbenchError(f"{path}: a 2-D problem ({out['data']['name']}) has no layers (omit {lrmult.KEY})")
    if _optim().is_closure_optimizer(opt):
        raise OptbenchError(f"{path}: {opt} chooses its own step on all parameters at once (omit {lrmult.KEY})")
    resolved = lrmult.resolve(spec, out["model"], path)
    if resolved:
        out["optimizer"][lrmult.KEY] = resolved


def check_plugin_rule(section: dict) -> None:
    """A rule of the user's own builds, with its validated options, what the loop drives (optim.Optimizer)."""
    optim = _optim()
    name = section["name"]
    where = f"optimizer.name: {format_value(name)} is invalid"
    try:
        rule = optim.OPTIMIZERS.build(name, {k: v for k, v in section.items() if k != "name"})
    except Exception as err:  # the plugin's own code
        raise OptbenchError(f"{where}: its factory failed: {type(err).__name__}: {err}") from None
    if not (isinstance(rule, optim.Optimizer) or optim.is_closure_optimizer(name)):
        raise OptbenchError(f"{where}: its factory returned {type(rule).__name__}, not an "
                            "optbench.optim.Optimizer(init, bind, lr)")


def check_finetuning(model: dict, dims: list[int]) -> None:
    """model.freeze names layers of this net; a model.init_from directory holds this net's arrays (made absolute)."""
    from optbench import finetune

    finetune.check_freeze(model.get("freeze", []), len(dims) - 1)
    src = model.get("init_from")
    if isinstance(src, str):
        model["init_from"] = finetune.resolve_dir(src)
        finetune.load(model["init_from"], dims, model["norm"])


def _optim():
    from optbench import optim

    return optim


def check_combination(cfg: dict, *, n_train: int, has_val: bool) -> None:
    """Rules that involve more than one key."""
    tr = cfg["train"]
    bs = tr["batch_size"]
    if bs != "full" and bs > n_train:
        raise OptbenchError(
            f"train.batch_size: {bs} is larger than the {n_train} training examples (accepted: 1..{n_train} or full)"
        )
    if tr["iterations_per_epoch"] is not None and tr["sampling"] != "random":
        raise OptbenchError("train.iterations_per_epoch: only used with sampling: random (set train.sampling: random)")
    opt = cfg["optimizer"]["name"]
    optim = _optim()
    if optim.is_closure_optimizer(opt):  # it re-evaluates the cost inside a step
        if bs != "full":
            raise OptbenchError(f"train.batch_size: {bs} is invalid for {opt}: it takes full batches (accepted: full)")
        if cfg["schedule"]["name"] != "constant":
            raise OptbenchError(f"schedule: {opt} takes no learning-rate schedule (accepted: constant)")
        if cfg["model"]["drop_prob"] > 0:
            raise OptbenchError(f"model.drop_prob: {opt} needs a deterministic cost; dropout is not supported with it (accepted: 0)")
    if cfg["momentum_schedule"]["name"] != "constant" and not optim.takes_mu(opt):
        accepted = ", ".join(n for n in optim.OPTIMIZERS.names() if optim.takes_mu(n))
        raise OptbenchError(
            f"momentum_schedule: {cfg['momentum_schedule']['name']} needs a momentum optimizer (accepted: {accepted}), not {opt}"
        )
    es = cfg["regularization"]["early_stopping"]
    if es is not None and es["metric"].startswith("val") and not has_val:
        raise OptbenchError(
            f"regularization.early_stopping.metric: {es['metric']} needs a validation split (set data.val_fraction > 0)"
        )
    if cfg["loss"] == "mse" and cfg["regularization"]["label_smoothing"] > 0:
        raise OptbenchError("regularization.label_smoothing: only for classification losses (bce, softmax_ce)")


def check_refs(runs: list[dict], shapes: dict, names: list[str]) -> None:
    """Each `model.init_from: {variant: NAME}` names a variant written before its own whose net is the same."""
    seen: dict[tuple[str, int], dict] = {}
    for cfg in runs:
        vname = cfg["label"].rpartition("/")[2]
        ref = cfg["model"].get("init_from")
        if isinstance(ref, dict):
            path = f"variants.{vname}.model.init_from.variant" if names else "model.init_from.variant"
            src = ref["variant"]
            before = names[: names.index(vname)] if names else []
            if src not in before:
                before = ", ".join(before)
                raise OptbenchError(f"{path}: {format_value(src)} is not a variant written before this one "
                                    f"(accepted: {before or 'none; a run directory instead'})")
            other = seen[src, cfg["seed"]]
            net = lambda c: (shapes[id(c)][1:], c["model"]["hidden"], c["model"]["norm"])  # noqa: E731
            if net(other) != net(cfg):
                (d0, k0), (d1, k1) = shapes[id(other)][1:], shapes[id(cfg)][1:]
                raise OptbenchError(f"{path}: variant {src}'s net {[d0, *other['model']['hidden'], k0]} "
                                    f"(norm {other['model']['norm']}) is not this one's {[d1, *cfg['model']['hidden'], k1]} "
                                    f"(norm {cfg['model']['norm']})")
        seen[vname, cfg["seed"]] = cfg


def check_memory(runs: list[dict], shapes: dict[int, tuple[int, int, int] | None]) -> None:
    """Each group the engine will form (groups.make_groups) fits the memory budget, before anything is allocated."""
    from optbench.groups import make_groups

    for g in make_groups(runs):
        shape = shapes[id(g[0])]
        if shape is not None and len(g) > 1:  # one run alone was checked as it was resolved
            budget.check_group(g, *shape)
