"""`optbench plot`: one figure from run directories, saved as PNG, SVG or PDF.

Reads run directories only (never trains); may rebuild a trained net from params.npz to draw its decision
regions. Matplotlib is imported on first use, not with this module, so `optbench train` never loads it;
figures are built with the object API (no pyplot, no global state, no display needed).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from optbench.errors import OptbenchError
from optbench.paths import prepare_out, safe_component, write_atomic
from optbench.runs import COLUMNS

KINDS = ("curves", "accuracy", "lr", "boundary", "activations", "trajectory", "dashboard", "heatmap")
XS = ("epoch", "step", "seconds")
BANDS = ("std", "minmax")
FORMATS = ("png", "svg", "pdf")
# no software versions or dates in the files: the same runs give the same bytes
METADATA = {
    "png": {"Software": None},
    "svg": {"Creator": None, "Date": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclass(frozen=True)
class Options:
    """What to draw: the figure kind and the curve options (ignored by kinds that do not use them)."""

    kind: str = "curves"
    metric: str = "train_cost"
    x: str = "epoch"
    log_y: bool = False
    seeds: bool = False
    band: str = "std"
    keys: str = ""  # heatmap: "X,Y", two config key paths (default: the two keys a sweep varied)


def _accepted(option: str, value: str, accepted) -> None:
    if value not in accepted:
        raise OptbenchError(f"{option}: {value!r} is not accepted (accepted: {', '.join(accepted)})")


def check_options(opts: Options) -> Options:
    """Reject a bad option value with one line naming the option, the value and what is accepted."""
    _accepted("--kind", opts.kind, KINDS)
    _accepted("--metric", opts.metric, COLUMNS)
    _accepted("--x", opts.x, XS)
    _accepted("--band", opts.band, BANDS)
    return opts


def output_path(out: Path | None, runs_dir: Path, experiment: str, kind: str) -> Path:
    """--out as given (its extension picks the format), else <runs_dir>/plots/<experiment>-<kind>.png.

    The experiment's name comes from run files: it is data, made one safe file name (never a path).
    """
    if out is None:
        return Path(runs_dir) / "plots" / f"{safe_component(f'{experiment}-{kind}')}.png"
    out = Path(out)
    fmt = out.suffix[1:].lower()
    if fmt not in FORMATS:
        shown = out.suffix or "no extension"
        raise OptbenchError(f"--out: {str(out)!r} has {shown} (accepted: {', '.join('.' + f for f in FORMATS)})")
    return out


def plot_command(paths: list[str], *, runs_dir: Path = Path("runs"), out: Path | None = None, kind: str = "curves",
                 metric: str = "train_cost", x: str = "epoch", log_y: bool = False, seeds: bool = False,
                 band: str = "std", keys: str = "", warn: Callable[[str], None] = _stderr) -> Path:
    """Draw one figure from run directories, save it, return its path."""
    opts = check_options(Options(kind, metric, x, log_y, seeds, band, keys))
    if out is not None:
        output_path(out, runs_dir, "", kind)  # a bad extension fails before any run is read
    from optbench.plots import data
    from optbench.plots.style import style

    if out is not None:
        prepare_out(out)  # a folder that cannot be made fails before any run is read
    runs = data.select_runs(list(paths), Path(runs_dir), warn)
    path = output_path(out, runs_dir, data.experiment_title(runs), kind)
    with style():  # also around saving: svg.hashsalt and the dpi are read then
        fig = make_figure(runs, opts, warn=warn)
        save(fig, path, "--out" if out is not None else "--runs-dir")  # the default file lives in the runs dir
    return path


def save(fig, path: Path, option: str = "--out") -> None:
    """Write the figure atomically in the format its extension names, without dates or versions; a missing
    folder is created, an unwritable target is one OptbenchError line."""
    fmt = path.suffix[1:].lower()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, metadata=METADATA[fmt]), option)


def make_figure(runs, opts: Options, *, warn: Callable[[str], None] = _stderr):
    """The matplotlib Figure of `opts.kind` for these runs (not saved): what `plot_command` writes."""
    from optbench.plots import data
    from optbench.plots.figures import FIGURES
    from optbench.plots.style import style

    check_options(opts)
    with style():
        return FIGURES[opts.kind](data.group_runs(runs), data.experiment_title(runs), opts, warn)
