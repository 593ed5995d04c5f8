"""Fine-tuning: a run that starts from another run's parameters (`model.init_from`) and keeps layers fixed (`model.freeze`).

`init_from` is a run directory (its `params.npz`: W1, b1, ..., gamma/beta, batch-norm running statistics), or
`{variant: NAME}`: the same seed's run of variant NAME of the same config, trained first by the same
`optbench train` (execute.py puts that run's directory in the config before its group trains, so the
config.yaml written holds the directory). Either way the arrays must have exactly the keys and shapes of
the config's model: a wrong file is one line naming the key, before anything trains.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from optbench.errors import OptbenchError
from optbench.params import Layout
from optbench.sections import Model

KEY = "model.init_from"
SOURCE_STATUSES = ("completed", "stopped_early")  # a run whose params.npz is a finished model


def is_ref(value) -> bool:
    """Whether `init_from` names a variant of the same config (not yet a directory)."""
    return isinstance(value, dict)


def expected_arrays(dims: list[int], norm: str) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every array a params.npz of this net holds: Layout.named's, then the batch-norm buffers."""
    layout = Layout.mlp(dims, norm != "none")
    out = {k: v.shape[1:] for k, v in layout.named(np.empty((1, layout.P))).items()}
    if norm == "batch":
        for l, n in enumerate(dims[1:-1], start=1):
            out[f"running_mean{l}"] = out[f"running_var{l}"] = (n, 1)
    return out


def _fmt(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def resolve_dir(value: str) -> str:
    """A run directory as written (absolute, or relative to the current directory) -> its absolute path, checked."""
    d = Path(value).expanduser()
    try:
        d = d.resolve()
    except (RuntimeError, OSError):
        d = d.absolute()
    if not d.is_dir():
        raise OptbenchError(f"{KEY}: {value}: no such run directory")
    if not (d / "params.npz").is_file():
        raise OptbenchError(f"{KEY}: {d}: no params.npz (not a finished run directory)")
    try:
        status = json.loads((d / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status not in SOURCE_STATUSES:
        raise OptbenchError(f"{KEY}: {d}: its status is {status or 'unreadable'} "
                            f"(accepted: a run whose status is {' or '.join(SOURCE_STATUSES)})")
    return str(d)


def load(run_dir: str, dims: list[int], norm: str) -> dict[str, np.ndarray]:
    """params.npz of run_dir as {name: array}, checked against the net's keys and shapes (no pickle)."""
    path = Path(run_dir) / "params.npz"
    want = expected_arrays(dims, norm)
    try:
        with np.load(path, allow_pickle=False) as z:
            got = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise OptbenchError(f"{KEY}: {path}: unreadable ({err.__class__.__name__}: {err})") from None
    for k, shape in want.items():  # the names first, then the shapes: another net is named as such
        if k not in got:
            raise OptbenchError(f"{KEY}: {path} has no {k} (the model expects {k} of shape {_fmt(shape)}; "
                                f"it holds {', '.join(got) or 'nothing'})")
    extra = [k for k in got if k not in want]
    if extra:
        raise OptbenchError(f"{KEY}: {path} holds {', '.join(extra)}, which the model does not have "
                            f"(its arrays: {', '.join(want)})")
    for k, shape in want.items():
        if got[k].shape != shape:
            raise OptbenchError(f"{KEY}: {k} in {path} has shape {_fmt(got[k].shape)}, the model expects {_fmt(shape)}")
        if not np.issubdtype(got[k].dtype, np.floating):
            raise OptbenchError(f"{KEY}: {k} in {path} is {got[k].dtype}, not floating point")
    return got


def check_freeze(layers: list[int], n_layers: int) -> None:
    """model.freeze: distinct dense layers 1..n_layers, not all of them (nothing would train)."""
    for l in layers:
        if l > n_layers:
            raise OptbenchError(f"model.freeze: {l} is not a layer of this net (accepted: 1 to {n_layers}, as in W1..W{n_layers})")
    if len(set(layers)) != len(layers):
        raise OptbenchError(f"model.freeze: {layers} has duplicates")
    if len(set(layers)) == n_layers:
        raise OptbenchError(f"model.freeze: {layers} freezes every layer: nothing would train "
                            "(to evaluate the initial parameters only, set train.epochs: 0)")


def frozen_mask(layout: Layout, layers: list[int]) -> np.ndarray:
    """(P,) True on the parameters of the frozen layers: W_l, b_l and, with a norm, gamma_l, beta_l."""
    mask = np.zeros(layout.P, dtype=bool)
    for blk in layout.blocks:
        if blk.layer in layers:
            mask[blk.offset : blk.offset + blk.size] = True
    return mask


def resolve_refs(group: list[dict], trained: dict[tuple[str, int], Path]) -> None:
    """Replace each `init_from: {variant: NAME}` in the group's configs by the directory of that variant's run of
    the same seed, from `trained` ((label, seed) -> directory of the runs this command has trained so far)."""
    for cfg in group:
        key = source_key(cfg)
        if key is None:
            continue
        d = trained.get(key)
        if d is None:  # not trained by this command, nor found finished by train --resume
            raise OptbenchError(f"{KEY}: {cfg['label']} (seed {cfg['seed']}) starts from {key[0]}, which this command "
                                f"did not train (train the whole config without --resume, or give a run directory)")
        cfg["model"]["init_from"] = resolve_dir(str(d))


def source_key(cfg: dict) -> tuple[str, int] | None:
    """(label, seed) of the run an `init_from: {variant: NAME}` names (a variant of the same config), else None."""
    ref = cfg["model"].get("init_from")
    if not is_ref(ref):
        return None
    return f"{cfg['label'].rpartition('/')[0]}/{ref['variant']}", cfg["seed"]


def start_from(net, theta: np.ndarray, buffers: dict[str, np.ndarray], models: list[Model]) -> None:
    """Rows of theta (R, P) and of the buffers from each replica's `init_from` directory, in the training dtype.

    A `{variant: NAME}` not resolved yet (check, lr-find and gradcheck look at a config before anything trains)
    leaves the replica at its own initializer's draw."""
    for r, m in enumerate(models):
        src = m.init_from
        if isinstance(src, str):
            arrays = load(src, net.dims, net.norm)
            for name, view in net.layout.named(theta[r : r + 1]).items():
                view[0] = arrays[name]
            for k, v in buffers.items():
                v[r] = arrays[k]


def frozen_rows(layout: Layout, models: list[Model]) -> np.ndarray | None:
    """(R, P) True where a replica's parameter is frozen (model.freeze), or None when nothing is."""
    if not any(m.freeze for m in models):
        return None
    return np.stack([frozen_mask(layout, m.freeze) for m in models])
