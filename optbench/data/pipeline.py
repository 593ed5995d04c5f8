"""The `data:` config section -> a Split: options checked, the dataset generated or read, split and standardized.

The data's own seed (`data.seed`) spawns one generator for drawing the dataset and one for splitting it, so
runs with different seeds see the same data.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Annotated

import numpy as np
import pydantic
from pydantic import Field

from optbench import budget
from optbench.data.dataset import DataError, Dataset, Split
from optbench.data.registry import DATASETS
from optbench.data.splitting import split, with_test
from optbench.datasets import Loaded, LoaderError
from optbench.errors import OptbenchError
from optbench.registry import STRICT, NonNegativeInt, Unit, format_value, pydantic_message

Folds = Annotated[int, Field(ge=2)]


class CommonOptions(pydantic.BaseModel):
    """Options of every `data:` section besides `name` and the generator's own."""

    model_config = STRICT  # a boolean or string is never a number; floats finite
    seed: NonNegativeInt = 0  # the data's own seed, independent of the run seed
    val_fraction: Unit = 0.0
    test_fraction: Unit = 0.0  # held out first, before validation and folds; only evaluated at the end
    standardize: bool = True
    folds: Folds | None = None  # k-fold cross-validation: the examples cut into `folds` parts ...
    fold: NonNegativeInt | None = None  # ... of which part `fold` validates and the others train

    @pydantic.model_serializer(mode="wrap")
    def _without_unused_folds(self, handler):
        # a config that does not use folds (or a test split) resolves exactly as before they existed
        out = handler(self)
        for key in ("folds", "fold"):
            if out.get(key) is None:
                out.pop(key, None)
        if not out.get("test_fraction"):
            out.pop("test_fraction", None)
        return out


COMMON = tuple(CommonOptions.model_fields)


def resolved_section(section: dict) -> dict:
    """The data section with the generator's and the common defaults filled in (config.yaml says what was made)."""
    sec = dict(section)
    name = sec.pop("name")
    common = CommonOptions.model_validate({k: sec.pop(k) for k in list(sec) if k in COMMON})
    own = DATASETS.validate(name, sec, "data")
    if own.get("rotate") == 0 and name == "moons":  # unrotated moons resolve exactly as before the option existed
        del own["rotate"]
    return {"name": name, **own, **common.model_dump()}


def load(section: dict, *, path_prefix: str = "data", dtype=np.float64, dtype_path: str = "train.dtype") -> Split:
    """The `data:` config section -> generated or read dataset, split and standardized; bit-identical per seed.

    Features X come out in `dtype` (the training dtype): file formats read into it when it holds their
    values exactly, and standardization writes into it chunk by chunk; a value `dtype` cannot hold is an
    error at `dtype_path`.
    """
    if not isinstance(section, dict):
        raise OptbenchError(
            f"{path_prefix}: {format_value(section)} is invalid: expected a mapping with a dataset name"
        )
    if "name" not in section:
        raise OptbenchError(f"{path_prefix}.name: required key is missing (accepted: {', '.join(DATASETS.names())})")
    name = section["name"]
    if not isinstance(name, str):
        raise OptbenchError(f"{path_prefix}.name: {format_value(name)} is not a dataset name "
                            f"(accepted: {', '.join(DATASETS.names())})")
    DATASETS.get(name, f"{path_prefix}.name")
    own = list(DATASETS.params(name))
    for key in section:
        if key != "name" and key not in own and key not in COMMON:
            accepted = ", ".join(own + list(COMMON))
            raise OptbenchError(f"{path_prefix}.{key}: unknown option for {name} (accepted: {accepted})")
    try:
        common = CommonOptions.model_validate({k: section[k] for k in COMMON if k in section})
    except pydantic.ValidationError as err:
        raise OptbenchError(pydantic_message(err, path_prefix)) from None
    _check_folds(common, path_prefix)
    options = DATASETS.validate(name, {k: v for k, v in section.items() if k in own}, path_prefix)
    n = options.get("n_samples")
    if isinstance(n, int):  # a generator: its arrays are known before they are drawn
        features = options.get("dim", 2)
        budget.check(budget.data_bytes(n, features, 1), f"{path_prefix}.n_samples: {n:,} examples of {features} features")
    gen_rng, split_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(common.seed).spawn(2))
    dt = np.dtype(dtype)
    out = dict(standardize=common.standardize, rng=split_rng, test_fraction=common.test_fraction,
               test_path=f"{path_prefix}.test_fraction", dtype=dt, dtype_path=dtype_path, own=True)
    try:
        engine = {"dtype": dt} if "dtype" in inspect.signature(DATASETS.get(name)).parameters else {}
        ds = DATASETS.build(name, options, rng=gen_rng, **engine)
    except (DataError, LoaderError) as err:
        raise OptbenchError(f"{path_prefix}.{err.key}: {err.detail}") from None
    ds, test = _file_parts(ds, common, path_prefix)
    if ds.columns is None:
        source = section.get("path") if isinstance(section.get("path"), str) else name
        ds = dataclasses.replace(ds, columns=tuple(f"feature {j + 1} of {source}" for j in range(ds.X.shape[1])))
    if common.folds is not None:
        parts = split(ds, folds=common.folds, fold=common.fold, path=f"{path_prefix}.folds", **out)
    else:
        parts = split(ds, val_fraction=common.val_fraction, path=f"{path_prefix}.val_fraction", **out)
    return parts if test is None else with_test(parts, test, dt, dtype_path, own=True)


def _file_parts(ds: Dataset | Loaded, common: CommonOptions, path_prefix: str) -> tuple[Dataset, Dataset | None]:
    """A file format's training part and its own test split (used as such: no test_fraction carved beside it)."""
    if not isinstance(ds, Loaded):
        return ds, None
    test = None if ds.test is None else Dataset(*ds.test, ds.task, ds.n_classes)
    if test is not None and common.test_fraction > 0:
        raise OptbenchError(f"{path_prefix}.test_fraction: {common.test_fraction} is invalid: the file has its own "
                            f"test split of {len(test.y)} examples (accepted: 0)")
    return Dataset(ds.X, ds.y, ds.task, ds.n_classes), test


def _check_folds(common: CommonOptions, path_prefix: str) -> None:
    """`folds` and `fold` come together, fold < folds, and the folds replace val_fraction."""
    if common.folds is None and common.fold is None:
        return
    if common.folds is None:
        raise OptbenchError(f"{path_prefix}.fold: {common.fold} needs {path_prefix}.folds (accepted: set folds: K >= 2 too)")
    if common.fold is None:
        raise OptbenchError(f"{path_prefix}.folds: {common.folds} needs {path_prefix}.fold, the part that validates "
                            f"(accepted: fold: 0..{common.folds - 1})")
    if common.fold >= common.folds:
        raise OptbenchError(f"{path_prefix}.fold: {common.fold} is invalid for {common.folds} folds "
                            f"(accepted: 0..{common.folds - 1})")
    if common.val_fraction > 0:
        raise OptbenchError(f"{path_prefix}.val_fraction: {common.val_fraction} is invalid with folds: the fold is the "
                            "validation part (accepted: 0)")
