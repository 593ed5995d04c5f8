"""Datasets: synthetic generators and local CSV/NPZ files, split and standardized with training statistics.

Examples are rows: X (N, D) in the training dtype (float64, or float32 when loaded for float32 training);
y (N,) int64 class labels or (N, K) float64 regression targets. File formats read straight into that dtype
when it holds every stored value; standardization works chunk by chunk (float64 statistics and arithmetic,
in place where the arrays are the loader's own), so float32 training never holds a float64 copy of large data.
No network access ever: every dataset is generated from an explicit rng or read from a local file.
"""

from __future__ import annotations

import csv as csvlib
import inspect
import io
import itertools
import math
from array import array
import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pydantic
from pydantic import ConfigDict, Field

from optbench import budget
from optbench import standardize as standardize_mod
from optbench.datasets import LOADERS, Loaded, LoaderError
from optbench.datasets.base import read_dtype
from optbench.errors import OptbenchError
from optbench.files import MissingArrays, read_bounded, safe_npz_arrays
from optbench.registry import STRICT, NonNegative, NonNegativeInt, PositiveInt, Registry, Unit, format_value, pydantic_message

DATASETS = Registry("dataset")

Task = Literal["binary", "multiclass", "regression"]
TaskOption = Literal["auto", "binary", "multiclass", "regression"]
Samples = Annotated[int, Field(ge=2)]
Classes = Annotated[int, Field(ge=2)]
Folds = Annotated[int, Field(ge=2)]


@dataclass(frozen=True)
class Dataset:
    """Examples as rows: X (N, D) float64 (or float32); y (N,) int64 class labels, or (N, K) float64 regression targets."""

    X: np.ndarray
    y: np.ndarray
    task: Task
    n_classes: int  # 0 for regression
    columns: tuple[str, ...] | None = None  # how errors name feature j ("column 3 ('b') of d.csv"); None: "feature j+1"

    def column(self, j: int, source: str = "") -> str:
        """The name errors give feature column j."""
        if self.columns is not None and j < len(self.columns):
            return self.columns[j]
        return f"feature {j + 1}" + (f" of {source}" if source else "")


@dataclass(frozen=True)
class Split:
    """Training, validation and held-out test parts, standardized with training statistics."""

    train: Dataset
    val: Dataset | None
    mean: np.ndarray | None  # (D,) statistics used, or None when not standardized
    std: np.ndarray | None
    test: Dataset | None = None  # measured once, on the final model; nothing selects on it

    def transform(self, X: np.ndarray) -> np.ndarray:
        """New inputs (M, D) -> (X - mean) / std with the training statistics (e.g. a decision-boundary grid)."""
        X = np.asarray(X, dtype=np.float64)
        return X if self.mean is None else (X - self.mean) / self.std


class _DataError(OptbenchError):
    """Bad value of one dataset option; `load` prefixes the key with the config section's path."""

    def __init__(self, key: str, detail: str):
        super().__init__(f"{key}: {detail}")
        self.key, self.detail = key, detail


# ---------------------------------------------------------------- synthetic generators


def _even_labels(n: int, k: int) -> np.ndarray:
    """Labels 0..k-1 in blocks whose sizes differ by at most one (the first n % k blocks get the extra example)."""
    if n < k:
        raise _DataError("n_samples", f"{n} is invalid: needs at least one example per class (accepted: >= {k})")
    return np.repeat(np.arange(k, dtype=np.int64), n // k + (np.arange(k) < n % k))


def _shuffled(X: np.ndarray, y: np.ndarray, task: Task, n_classes: int, rng: np.random.Generator) -> Dataset:
    perm = rng.permutation(len(y))
    return Dataset(np.ascontiguousarray(X[perm], dtype=np.float64), y[perm].astype(np.int64), task, n_classes)


def _sklearn_order(X: np.ndarray, y: np.ndarray, noise: float, random_state: int) -> Dataset:
    """scikit-learn's generators' tail: shuffle (sklearn.utils.shuffle), then Gaussian noise, from one RandomState."""
    state = np.random.RandomState(random_state)
    perm = np.arange(len(y))
    state.shuffle(perm)
    X = X[perm] + state.normal(scale=noise, size=X.shape)
    return Dataset(np.ascontiguousarray(X), y[perm].astype(np.int64), "binary", 2)


@DATASETS.register()
def moons(
    *, n_samples: Samples = 300, noise: NonNegative = 0.2, random_state: NonNegativeInt | None = None,
    rotate: Annotated[float, Field(ge=-360, le=360)] = 0.0, rng: np.random.Generator,
) -> Dataset:
    """Two interleaving half circles (sklearn's make_moons), 2 features, binary.

    random_state: scikit-learn's make_moons(n_samples, noise=noise, random_state=random_state) point for point
    (shuffle, then noise, from a RandomState) instead of optbench's own draw from data.seed.
    rotate: degrees counterclockwise about the moons' centre (0.5, 0.25), after the noise: the same points,
    turned (a shifted problem to fine-tune on).
    """
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.concatenate([np.c_[np.cos(t_out), np.sin(t_out)], np.c_[1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5]])
    if random_state is not None:
        ds = _sklearn_order(X, np.repeat([0, 1], [n_out, n_in]), noise, random_state)
    else:
        X += noise * rng.standard_normal(X.shape)
        ds = _shuffled(X, np.repeat([0, 1], [n_out, n_in]), "binary", 2, rng)
    return ds if rotate == 0 else dataclasses.replace(ds, X=_rotated(ds.X, rotate, (0.5, 0.25)))


def _rotated(X: np.ndarray, degrees: float, centre: tuple[float, float]) -> np.ndarray:
    """Points (N, 2) turned counterclockwise by `degrees` about `centre`: (x - c) R^T + c."""
    a = np.deg2rad(degrees)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(centre)
    return np.ascontiguousarray((X - c) @ R.T + c)


@DATASETS.register()
def circles(
    *, n_samples: Samples = 300, noise: NonNegative = 0.1, factor: Unit = 0.5,
    random_state: NonNegativeInt | None = None, rng: np.random.Generator,
) -> Dataset:
    """Two concentric circles, the inner one `factor` times the outer radius (sklearn's make_circles), binary.

    random_state: scikit-learn's make_circles(n_samples, noise=noise, factor=factor, random_state=random_state)
    point for point, as for moons.
    """
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.concatenate([np.c_[np.cos(t_out), np.sin(t_out)], factor * np.c_[np.cos(t_in), np.sin(t_in)]])
    if random_state is not None:
        return _sklearn_order(X, np.repeat([0, 1], [n_out, n_in]), noise, random_state)
    X += noise * rng.standard_normal(X.shape)
    return _shuffled(X, np.repeat([0, 1], [n_out, n_in]), "binary", 2, rng)


@DATASETS.register()
def spiral(
    *, n_samples: Samples = 300, classes: Classes = 3, noise: NonNegative = 0.2, rng: np.random.Generator
) -> Dataset:
    """CS231n's spiral: `classes` arms, radius 0..1, angle 4 rad per arm plus noise, multiclass."""
    y = _even_labels(n_samples, classes)
    counts = np.bincount(y, minlength=classes)
    r = np.concatenate([np.linspace(0, 1, c) for c in counts])
    t = np.concatenate([np.linspace(4 * j, 4 * (j + 1), c) for j, c in enumerate(counts)])
    t += noise * rng.standard_normal(n_samples)
    return _shuffled(np.c_[r * np.sin(t), r * np.cos(t)], y, "multiclass", classes, rng)


@DATASETS.register()
def blobs(
    *, n_samples: Samples = 300, classes: Classes = 3, dim: PositiveInt = 2, spread: NonNegative = 1.0,
    rng: np.random.Generator,
) -> Dataset:
    """Gaussian clusters (std `spread`) around random centers in [-5, 5]^dim; binary if classes == 2."""
    y = _even_labels(n_samples, classes)
    centers = rng.uniform(-5, 5, (classes, dim))
    X = centers[y] + spread * rng.standard_normal((n_samples, dim))
    return _shuffled(X, y, "binary" if classes == 2 else "multiclass", classes, rng)


@DATASETS.register()
def xor(*, n_samples: Samples = 300, noise: NonNegative = 0.1, rng: np.random.Generator) -> Dataset:
    """Four clusters at (±1, ±1), label 1 where the signs differ (XOR), binary."""
    # Round-robin over clusters with alternating labels: balanced classes for any n_samples >= 2.
    centers = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    c = centers[np.arange(n_samples) % 4]
    X = c + noise * rng.standard_normal(c.shape)
    return _shuffled(X, (c[:, 0] * c[:, 1] < 0).astype(np.int64), "binary", 2, rng)


@DATASETS.register()
def sine(*, n_samples: Samples = 300, noise: NonNegative = 0.1, rng: np.random.Generator) -> Dataset:
    """1-D regression: x uniform on [-pi, pi], y = sin(x) + Gaussian noise."""
    X = rng.uniform(-np.pi, np.pi, (n_samples, 1))
    y = np.sin(X) + noise * rng.standard_normal((n_samples, 1))
    return Dataset(X, y, "regression", 0)


# ---------------------------------------------------------------- local files


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _names(values: Any, limit: int = 20) -> str:
    items = [format_value(v) for v in list(values)[:limit]]
    return ", ".join(items) + (", ..." if len(values) > limit else "")


MAX_CSV_BYTES = 256 * 2**20  # beyond, parsing text costs more than the arrays: store large data as .npz
MAX_CSV_LINE = 2**20  # characters per line (a row of numbers); the csv module bounds a field at 128 KiB


def _lines(text: str, path: str):
    """The lines of `text` as the csv module wants them, refusing any over MAX_CSV_LINE characters."""
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        if len(line) > MAX_CSV_LINE:
            raise _DataError("path", f"{path} line {number}: {len(line):,} characters long "
                                     f"(accepted: at most {MAX_CSV_LINE:,} per line)")
        yield line


def _read_text(path: str) -> str:
    """The text of a regular CSV file of at most MAX_CSV_BYTES."""
    try:
        data = read_bounded(path, "a CSV file", MAX_CSV_BYTES, "; store large data as .npz")
    except OptbenchError as err:
        raise _DataError("path", str(err)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _DataError("path", f"cannot read {path!r}: not a UTF-8 text file") from None


def _rows(path: str, text: str):
    """(line number, stripped cells) of every non-blank CSV row, one at a time."""
    reader = csvlib.reader(_lines(text, path))
    try:
        for row in reader:
            cells = [c.strip() for c in row]
            if any(cells):
                yield reader.line_num, cells
    except csvlib.Error as err:
        raise _DataError("path", f"cannot read {path!r} as CSV: {err}") from None


def _label_column(label: str | int, names: list[str] | None, width: int, path: str) -> int:
    span = f"an index {-width}..{width - 1}"
    accepted = f"{_names(names)}, or {span}" if names else f"{span} (the file has no header row)"
    if isinstance(label, str) and names and label in names:
        if names.count(label) > 1:
            raise _DataError("label", f"{label!r} names {names.count(label)} columns of {path} (accepted: {span})")
        return names.index(label)
    if isinstance(label, str):
        try:
            label = int(label)
        except ValueError:
            raise _DataError("label", f"{label!r} is not a column of {path} (accepted: {accepted})") from None
    if not -width <= label < width:
        raise _DataError("label", f"{label} is out of range for {path} with {width} columns (accepted: {accepted})")
    return label % width


@DATASETS.register()
def csv(
    *, path: str, label: str | int = -1, header: bool | None = None, task: TaskOption = "auto",
    rng: np.random.Generator,
) -> Dataset:
    """Numeric features and one label column (by header name or index) from a local CSV file."""
    text = _read_text(path)
    # a value costs 8 bytes as float64 and a few copies on its way: bound them before parsing
    budget.check(4 * 8 * (text.count(",") + text.count("\n") + 1), f"{path} ({len(text):,} characters of CSV)")
    rows = _rows(path, text)
    first_line, first = next(rows, (0, None))
    if first is None:
        raise _DataError("path", f"{path} is empty (accepted: rows of numbers, optionally after a header row)")
    if header is None:
        header = not all(_is_number(c) for c in first)
    names = first if header else None
    width = len(first)
    if width < 2:
        raise _DataError("path", f"{path} has 1 column (accepted: feature columns and a label column)")
    col = _label_column(label, names, width, path)
    values, lines = array("d"), array("q")
    for line, cells in (rows if header else itertools.chain([(first_line, first)], rows)):
        if len(cells) != width:
            raise _DataError(
                "path", f"{path} line {line}: {len(cells)} columns, expected {width} as on line {first_line}"
            )
        try:
            row = [float(c) for c in cells]
        except ValueError:
            j, c = next((j, c) for j, c in enumerate(cells) if not _is_number(c))
            hint = " (the first row is data because header: false)" if line == first_line else ""
            raise _DataError("path", f"{path} line {line}, column {j + 1}: {c!r} is not a number{hint}") from None
        if not all(map(math.isfinite, row)):
            j = next(j for j, v in enumerate(row) if not math.isfinite(v))
            raise _DataError("path", f"{path} line {line}, column {j + 1}: {cells[j]!r} is not a finite number")
        values.extend(row)
        lines.append(line)
    if not lines:
        raise _DataError("path", f"{path} has a header row but no data rows")
    values = np.frombuffer(values, dtype=np.float64).reshape(len(lines), width)
    kept = [j for j in range(width) if j != col]
    columns = tuple(f"column {j + 1}" + (f" ({names[j]!r})" if names else "") + f" of {path}" for j in kept)
    return _from_arrays(values[:, kept], values[:, col], task, path, columns)


def _npz_array(a: np.ndarray, key: str, path: str) -> np.ndarray:
    if a.ndim == 0 or len(a) == 0:
        raise _DataError("path", f"array {key!r} in {path} has dtype {a.dtype} and shape {a.shape} "
                                 "(accepted: a non-empty numeric array, one row per example)")
    return a


@DATASETS.register()
def npz(
    *, path: str, x_key: str = "X", y_key: str = "y", task: TaskOption = "auto",
    dtype: np.dtype = np.dtype(np.float64), rng: np.random.Generator,
) -> Dataset:
    """Features and labels from two arrays of a local .npz file (np.savez; no pickle)."""
    try:
        arrays = safe_npz_arrays(path, [x_key] if x_key == y_key else [x_key, y_key])
    except MissingArrays as err:
        key, option = (x_key, "x_key") if x_key in err.missing else (y_key, "y_key")
        raise _DataError(option, f"{key!r} is not an array in {path} (keys present: {_names(err.present) or 'none'})") from None
    except OptbenchError as err:
        raise _DataError("path", str(err)) from None
    X, y = _npz_array(arrays[x_key], x_key, path), _npz_array(arrays[y_key], y_key, path)
    if y.ndim > 2 or len(y) != len(X):
        raise _DataError("path", f"array {y_key!r} in {path} has shape {y.shape} but {x_key!r} has {len(X)} rows "
                                 "(accepted: one label or target row per example)")
    # 1-D -> one feature; images -> flattened; float32 stays float32 for float32 training (no copy)
    X = X.reshape(len(X), -1).astype(read_dtype(X.dtype, dtype), copy=False)
    bad = np.argwhere(~np.isfinite(X)) if X.dtype.kind == "f" and not np.isfinite(X).all() else ()
    if len(bad):
        raise _DataError("path", f"array {x_key!r} in {path} holds {X[tuple(bad[0])]} at row {bad[0][0]}, "
                                 f"column {bad[0][1]} (accepted: finite features)")
    columns = tuple(f"{x_key}[:, {j}] of {path}" for j in range(X.shape[1]))
    return _from_arrays(X, y, task, path, columns)


def _from_arrays(X: np.ndarray, y: np.ndarray, task: str, source: str,
                 columns: tuple[str, ...] | None = None) -> Dataset:
    """Infer or check the task from the labels; remap class labels to 0..C-1 in sorted order."""
    X = np.ascontiguousarray(X, dtype=X.dtype if X.dtype in (np.float32, np.float64) else np.float64)
    return dataclasses.replace(_labelled(X, y, task, source), columns=columns)


def _labelled(X: np.ndarray, y: np.ndarray, task: str, source: str) -> Dataset:
    yf = y.astype(np.float64)
    if not np.all(np.isfinite(yf)):
        raise _DataError("path", f"the labels in {source} are not all finite (accepted: finite numbers)")
    if yf.ndim == 2 and yf.shape[1] > 1:
        if task in ("auto", "regression"):
            return Dataset(X, np.ascontiguousarray(yf), "regression", 0)
        raise _DataError("task", f"{task} needs one class label per example, but the labels in {source} have shape "
                                 f"{yf.shape} (accepted: regression; store one-hot labels as y.argmax(1))")
    yf = yf.reshape(-1)
    values = np.unique(yf)
    integral = bool(np.all(values == np.round(values)))
    if task == "auto":
        if not integral:
            task = "regression"
        elif len(values) < 2:
            raise _DataError("task", f"auto found a single label value {values[0]:g} in {source} "
                                     "(accepted: at least 2 classes, or task regression)")
        else:
            task = "binary" if len(values) == 2 else "multiclass"
    if task == "regression":
        return Dataset(X, yf.reshape(-1, 1), "regression", 0)
    if not integral:
        odd = values[values != np.round(values)][0]
        raise _DataError("task", f"{task} needs integer class labels, but {source} has label {odd:g} "
                                 "(accepted: regression, or auto)")
    if task == "binary":
        if len(values) > 2:
            shown = _names(values.astype(np.int64).tolist(), 10)
            raise _DataError("task", f"binary does not fit the labels of {source}: {len(values)} distinct values "
                                     f"({shown}) (accepted: multiclass, or auto)")
        if np.all((values == 0) | (values == 1)):
            return Dataset(X, yf.astype(np.int64), "binary", 2)
        if len(values) < 2:
            raise _DataError("task", f"binary needs labels 0/1 or two distinct values, but {source} has only "
                                     f"{values[0]:g}")
        return Dataset(X, (yf == values[1]).astype(np.int64), "binary", 2)
    if len(values) < 2:
        raise _DataError("task", f"multiclass needs at least 2 distinct labels, but {source} has only {values[0]:g}")
    return Dataset(X, np.searchsorted(values, yf).astype(np.int64), "multiclass", len(values))


# ---------------------------------------------------------------- pipeline


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
    except (_DataError, LoaderError) as err:
        raise OptbenchError(f"{path_prefix}.{err.key}: {err.detail}") from None
    ds, test = _file_parts(ds, common, path_prefix)
    if ds.columns is None:
        source = section.get("path") if isinstance(section.get("path"), str) else name
        ds = dataclasses.replace(ds, columns=tuple(f"feature {j + 1} of {source}" for j in range(ds.X.shape[1])))
    if common.folds is not None:
        parts = split(ds, folds=common.folds, fold=common.fold, path=f"{path_prefix}.folds", **out)
    else:
        parts = split(ds, val_fraction=common.val_fraction, path=f"{path_prefix}.val_fraction", **out)
    return parts if test is None else _with_test(parts, test, dt, dtype_path, own=True)


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


def _take(ds: Dataset, idx: np.ndarray) -> Dataset:
    return dataclasses.replace(ds, X=np.ascontiguousarray(ds.X[idx]), y=np.ascontiguousarray(ds.y[idx]))


def _scaled(ds: Dataset | None, mean: np.ndarray | None, std: np.ndarray | None, dtype=np.float64,
            dtype_path: str = "train.dtype", *, own: bool = False, largest: float = np.nan) -> Dataset | None:
    """(X - mean) / std (X as is when mean is None) in `dtype`, chunk by chunk (standardize_mod.transformed); in place
    when `own` (the arrays are this pipeline's), refused where a value does not stay finite or fit `dtype`."""
    if ds is None:
        return None
    try:
        X = standardize_mod.transformed(ds.X, mean, std, dtype, in_place=own, largest=largest)
    except standardize_mod.BadValue as bad:
        if bad.kind == "nonfinite":
            raise OptbenchError(f"data: {ds.column(bad.j)}: the value {ds.X[bad.i, bad.j]:.6g} is not finite once "
                                "standardized (accepted: values within float64 after (x - mean) / std, or "
                                "data.standardize: false)") from None
        raise _dtype_error(dtype_path, np.dtype(dtype), bad.value, ds.column(bad.j), mean is not None) from None
    return ds if X is ds.X else dataclasses.replace(ds, X=X)


def _dtype_error(path: str, dtype: np.dtype, value: float, column: str, standardized: bool) -> OptbenchError:
    limit = float(np.finfo(dtype).max)
    return OptbenchError(f"{path}: {dtype} cannot hold the value {value:.6g} of {column} "
                         f"(accepted: float64, or |x| <= {limit:.3g}"
                         + (")" if standardized else "; data.standardize: true scales it)"))


def check_dtype(split: Split, dtype: str, path: str = "train.dtype") -> None:
    """Every array the engine casts to `dtype` stays finite there (float32 overflows beyond 3.4e38); features
    loaded in `dtype` were checked as they were written."""
    limit = float(np.finfo(np.dtype(dtype)).max)
    for part in (split.train, split.val, split.test):
        if part is None:
            continue
        if part.X.dtype != np.dtype(dtype):
            big = np.abs(part.X) > limit
            if big.any():
                j = int(np.argmax(big.any(axis=0)))
                raise _dtype_error(path, np.dtype(dtype), part.X[int(np.argmax(big[:, j])), j], part.column(j),
                                   split.mean is not None)
        if part.task == "regression" and np.any(np.abs(part.y) > limit):
            v = part.y.flat[int(np.argmax(np.abs(part.y) > limit))]
            raise OptbenchError(f"{path}: {dtype} cannot hold the regression target {v:.6g} "
                                f"(accepted: float64, or |y| <= {limit:.3g})")


def split(
    ds: Dataset, *, val_fraction: float = 0.0, standardize: bool = True, rng: np.random.Generator,
    path: str = "val_fraction", folds: int | None = None, fold: int = 0, test_fraction: float = 0.0,
    test_path: str = "test_fraction", dtype=np.float64, dtype_path: str = "train.dtype", own: bool = False,
) -> Split:
    """Random permutation; the last round(val_fraction * N) examples validate; standardize with training statistics.

    With `folds`: the permutation is cut into `folds` near-equal parts (np.array_split); part `fold`
    validates and the others, in permutation order, train. The folds of one seed partition the examples.
    With `test_fraction`: the last round(test_fraction * N) examples of the permutation are held out as
    the test part first, and the rest is split as above (val_fraction stays a fraction of all N).
    test_fraction 0 draws and splits exactly as before the test split existed.
    Features come out in `dtype`; `own`: ds is this caller's to overwrite (standardized in place).
    """
    n = len(ds.y)
    n_test = round(test_fraction * n)
    if test_fraction > 0 and n_test < 1:
        raise OptbenchError(f"{test_path}: {test_fraction} is invalid: leaves no test example of {n} "
                            f"(accepted: 0, or more than {0.5 / n:.3g})")
    if n - n_test < 2:
        raise OptbenchError(f"{test_path}: {test_fraction} is invalid: leaves {n - n_test} of {n} examples to train "
                            "and validate on (accepted: a smaller fraction)")
    if n_test:
        perm = rng.permutation(n)
        test, ds = _take(ds, perm[n - n_test :]), _take(ds, perm[: n - n_test])
        kept = _split_rest(ds, val_fraction, standardize, rng, path, folds, fold, n, dtype, dtype_path, True)
        return _with_test(kept, test, dtype, dtype_path, own=True)
    return _split_rest(ds, val_fraction, standardize, rng, path, folds, fold, n, dtype, dtype_path, own)


def _split_rest(ds: Dataset, val_fraction: float, standardize: bool, rng: np.random.Generator, path: str,
                folds: int | None, fold: int, n_all: int, dtype, dtype_path: str, own: bool) -> Split:
    """Training and validation parts of `ds` (all examples but the test part); fractions are of all n_all."""
    n = len(ds.y)
    if folds is not None:
        if folds > n:
            raise OptbenchError(f"{path}: {folds} is invalid: more folds than the {n} examples (accepted: 2..{n})")
        parts = np.array_split(rng.permutation(n), folds)
        train = _take(ds, np.concatenate(parts[:fold] + parts[fold + 1 :]))
        return _standardized(train, _take(ds, parts[fold]), standardize, dtype, dtype_path, True)
    n_val = round(val_fraction * n_all)
    if val_fraction > 0 and n_val < 1:
        raise OptbenchError(f"{path}: {val_fraction} is invalid: leaves no validation example of {n_all} "
                            f"(accepted: 0, or more than {0.5 / n_all:.3g})")
    if n - n_val < 1:
        raise OptbenchError(f"{path}: {val_fraction} is invalid: leaves no training example of {n_all}"
                            + (f" after the {n_all - n} test examples" if n < n_all else "")
                            + " (accepted: a smaller fraction)")
    if n_val:
        perm = rng.permutation(n)
        train, val = _take(ds, perm[: n - n_val]), _take(ds, perm[n - n_val :])
        own = True  # fresh copies
    else:
        train, val = ds, None  # no validation: keep the dataset's own order
    return _standardized(train, val, standardize, dtype, dtype_path, own)


def _with_test(parts: Split, test: Dataset, dtype=np.float64, dtype_path: str = "train.dtype", *,
               own: bool = False) -> Split:
    """`parts` with the test part, scaled by the training statistics, in `dtype`."""
    return Split(parts.train, parts.val, parts.mean, parts.std, _scaled(test, parts.mean, parts.std, dtype, dtype_path, own=own))


def _standardized(train: Dataset, val: Dataset | None, standardize: bool, dtype=np.float64,
                  dtype_path: str = "train.dtype", own: bool = False) -> Split:
    """Training statistics (float64, standardize.column_stats) applied to both parts, written in `dtype`."""
    if not standardize:
        return Split(_scaled(train, None, None, dtype, dtype_path, own=own),
                     _scaled(val, None, None, dtype, dtype_path, own=own), None, None)
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std, lo, hi = standardize_mod.column_stats(train.X)
        std[hi - lo == 0] = 1.0  # constant feature: centre only
    # |x - mean| beyond ~1.3e154 squares past float64: the std overflows and (x - mean) / inf zeroes the feature
    bad = ~(np.isfinite(mean) & np.isfinite(std))
    if bad.any():
        j = int(np.argmax(bad))
        top = train.X[int(np.argmax(np.abs(train.X[:, j]))), j]
        raise OptbenchError(f"data: {train.column(j)}: its standard deviation overflows float64 (values up to "
                            f"{top:.6g}; accepted: |x| below about 1e154, or data.standardize: false)")
    largest = standardize_mod.bound(mean, std, lo, hi)  # within float32: no value needs checking
    return Split(_scaled(train, mean, std, dtype, dtype_path, own=own, largest=largest),
                 _scaled(val, mean, std, dtype, dtype_path, own=own), mean, std)


# ---------------------------------------------------------------- labels vs. loss

_LOSS_TASKS = {"bce": ("binary",), "softmax_ce": ("binary", "multiclass"), "mse": ("regression",)}
_EXPECTED_LOSS = {"binary": "bce", "multiclass": "softmax_ce", "regression": "mse"}


def expected_loss(task: str) -> str:
    """The natural loss of a task: binary -> bce, multiclass -> softmax_ce, regression -> mse."""
    return _EXPECTED_LOSS[task]


def check_labels(ds: Dataset, loss: str, path: str = "loss") -> None:
    """Raise OptbenchError when the dataset's labels do not fit `loss` (mse on class labels is rejected too)."""
    if loss not in _LOSS_TASKS:
        raise OptbenchError(f"{path}: unknown loss {format_value(loss)} (accepted: {', '.join(_LOSS_TASKS)})")
    if ds.task in _LOSS_TASKS[loss]:
        return
    what = "regression targets" if ds.task == "regression" else f"{ds.task} labels ({ds.n_classes} classes)"
    fits = ", ".join(k for k, tasks in _LOSS_TASKS.items() if ds.task in tasks)
    hint = " (for numeric targets read from a file, set data.task: regression)" if loss == "mse" else ""
    raise OptbenchError(f"{path}: {loss} does not fit {what}; accepted for this data: {fits}{hint}")


for _name, _loader in LOADERS.items():  # the file formats of optbench.datasets, beside the generators
    DATASETS.register(_name)(_loader)
