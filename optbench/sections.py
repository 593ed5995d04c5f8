"""The sections of a run config as frozen pydantic models, and a resolved run config as one typed value.

config.py validates raw configs with these models and resolves them to plain dicts: the text written to
each run's config.yaml. The engine reads `RunConfig.of(cfg)`, the same config typed: attributes with their
types and defaults in one place (`cfg.train.epochs`, `cfg.optimizer.name`, `cfg.optimizer.options`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from optbench.registry import STRICT, NonNegative, NonNegativeInt, OpenUnit, Positive, PositiveInt, Unit

Seed = Annotated[int, Field(ge=0, lt=2**63)]


class _Strict(BaseModel):
    model_config = ConfigDict(**STRICT, frozen=True)


class EarlyStopping(_Strict):
    metric: Literal["val_cost", "train_cost", "val_acc", "train_acc"] = "val_cost"
    patience: PositiveInt = 20
    min_delta: NonNegative = 0.0


class Regularization(_Strict):
    l2: NonNegative = 0.0  # 0.5 * l2 * sum(W^2), weights only
    early_stopping: EarlyStopping | None = None
    input_noise: NonNegative = 0.0  # std of Gaussian noise added to training inputs
    label_smoothing: Unit = 0.0
    mixup: NonNegative = 0.0  # alpha of Beta(alpha, alpha); 0 is off
    polyak: OpenUnit | None = None  # decay of the parameter average used for evaluation


class InitRef(_Strict):
    """`init_from: {variant: NAME}`: the same seed's run of variant NAME of this config, trained first by the same command."""

    variant: str


class Model(_Strict):
    hidden: list[PositiveInt] = []
    activation: dict[str, Any] = {"name": "relu"}
    init: dict[str, Any] = {"name": "he"}
    norm: Literal["none", "batch", "layer"] = "none"
    drop_prob: Unit = 0.0  # probability of DROPPING a hidden unit; the keep probability is 1 - drop_prob
    init_from: str | InitRef | None = None  # a run directory whose params.npz starts this run (optbench/finetune.py)
    freeze: list[PositiveInt] = []  # dense layers (1-based, as W1, b1) that take no update

    @pydantic.model_serializer(mode="wrap")
    def _without_unused_finetuning(self, handler):
        out = handler(self)  # a config that does not fine-tune resolves exactly as before the options existed
        if out.get("init_from") is None:
            out.pop("init_from", None)
        if not out.get("freeze"):
            out.pop("freeze", None)
        return out


class Train(_Strict):
    epochs: NonNegativeInt = 100  # 0: evaluate the initial parameters only
    batch_size: PositiveInt | Literal["full"] = 64
    sampling: Literal["epoch", "random"] = "epoch"
    iterations_per_epoch: PositiveInt | None = None
    dtype: Literal["float64", "float32"] = "float64"
    log_iterations: bool = False
    diverge_factor: Positive | None = 3.0
    compat: Literal["none", "dlai"] = "none"  # dlai: the deeplearning.ai notebook's data, init and batch streams (optbench/compat.py)
    clip_grad_norm: Positive | None = None  # torch's clip_grad_norm_ over all parameters of a run (optbench/clip.py)
    clip_grad_value: Positive | None = None  # torch's clip_grad_value_
    snapshots_every: Annotated[int, Field(ge=0)] = 0  # K > 0: the flat parameters every K epochs (and epoch 0, the last) in snapshots.npz
    sharpness_every: NonNegativeInt = 0  # K: the Hessian's top eigenvalue every K epochs (optbench/sharpness.py); 0 = off

    # keys left out of a resolved config at these values: a config without them resolves exactly as before
    # the options existed (same config.yaml text, same checkpoint hashes)
    OMITTED: ClassVar[tuple] = (("compat", "none"), ("clip_grad_norm", None), ("clip_grad_value", None),
                                ("snapshots_every", 0), ("sharpness_every", 0))

    @pydantic.model_serializer(mode="wrap")
    def _without_default_compat(self, handler):
        out = handler(self)
        for key, off in self.OMITTED:
            if key in out and out[key] == off:
                out.pop(key)
        return out


class _Sections(_Strict):
    """Top-level keys of a run config whose contents are checked by pydantic models or registries."""

    name: str
    label: str | None = None
    seed: Seed = 0
    data: dict[str, Any]
    model: Model = Model()
    loss: Literal["bce", "softmax_ce", "mse"] | None = None
    regularization: Regularization = Regularization()
    optimizer: dict[str, Any]
    schedule: dict[str, Any] = {"name": "constant"}
    momentum_schedule: dict[str, Any] = {"name": "constant"}
    train: Train = Train()


class Section(BaseModel):
    """A registry section, `{name: ..., **options}`: what the named factory is and the options it was given."""

    model_config = ConfigDict(frozen=True)
    name: str
    options: dict[str, Any]

    @classmethod
    def of(cls, section: dict) -> "Section":
        return cls(name=section["name"], options={k: v for k, v in section.items() if k != "name"})

    def plain(self) -> dict:
        """The section as config.yaml has it."""
        return {"name": self.name, **self.options}


class RunConfig(BaseModel):
    """One resolved run config, typed: what the engine reads. Built from config.py's resolved dict by `of`."""

    model_config = ConfigDict(frozen=True)
    name: str
    label: str
    seed: int
    data: Section
    model: Model
    loss: str
    regularization: Regularization
    optimizer: Section
    schedule: Section
    momentum_schedule: Section
    train: Train

    @classmethod
    def of(cls, cfg: "dict | RunConfig") -> "RunConfig":
        """The typed form of a resolved config (one already typed is returned as it is)."""
        if isinstance(cfg, RunConfig):
            return cfg
        sections = {k: Section.of(cfg[k]) for k in ("data", "optimizer", "schedule", "momentum_schedule")}
        # model_construct: the dict was validated when it was resolved; the sections' own models are rebuilt
        # for their defaults (a config.yaml written before an option existed) and attribute access
        return cls.model_construct(
            name=cfg["name"], label=cfg["label"], seed=cfg["seed"], loss=cfg["loss"], model=Model.model_construct(**_with_defaults(Model, cfg["model"])),
            regularization=_regularization(cfg["regularization"]), train=Train.model_construct(**_with_defaults(Train, cfg["train"])),
            **sections)


def _with_defaults(model: type[BaseModel], section: dict) -> dict:
    return {**{k: f.get_default(call_default_factory=True) for k, f in model.model_fields.items()}, **section}


def _regularization(section: dict) -> Regularization:
    out = _with_defaults(Regularization, section)
    es = out["early_stopping"]
    if es is not None:
        out["early_stopping"] = EarlyStopping.model_construct(**_with_defaults(EarlyStopping, es))
    return Regularization.model_construct(**out)
