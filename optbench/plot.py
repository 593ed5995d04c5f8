"""`optbench plot`: one figure from run directories, saved as PNG, SVG or PDF (the film also as an animated GIF).

Reads run directories only (never trains); may rebuild a trained net from params.npz to draw its decision
regions. Matplotlib is imported on first use, not with this module, so `optbench train` never loads it;
figures are built with the object API (no pyplot, no global state, no display needed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

# the accepted values, defined with the CLI's help in a module that imports nothing heavy
from optbench.choices import ANIMATED, FIGURE_FORMATS as FORMATS, PLOT_BANDS as BANDS, PLOT_KINDS as KINDS, PLOT_XS as XS, check
from optbench.errors import OptbenchError
from optbench.paths import prepare_out, safe_component, write_atomic
from optbench.plots.options import Options
from optbench.runs.columns import ALL_COLUMNS

# no software versions or dates in the files: the same runs give the same bytes
METADATA = {
    "png": {"Software": None},
    "svg": {"Creator": None, "Date": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def check_options(opts: Options) -> Options:
    """Reject a bad option value with one line naming the option, the value and what is accepted."""
    check("--kind", opts.kind, KINDS)
    check("--metric", opts.metric, ALL_COLUMNS)
    check("--x", opts.x, XS)
    check("--band", opts.band, BANDS)
    if opts.top is not None and (isinstance(opts.top, bool) or not isinstance(opts.top, int) or opts.top < 1):
        raise OptbenchError(f"--top: {opts.top!r} is invalid (accepted: a whole number >= 1)")
    return opts


def output_path(out: Path | None, runs_dir: Path, experiment: str, kind: str) -> Path:
    """--out as given (its extension picks the format), else <runs_dir>/plots/<experiment>-<kind>.png.

    The experiment's name comes from run files: it is data, made one safe file name (never a path).
    """
    if out is None:
        return Path(runs_dir) / "plots" / f"{safe_component(f'{experiment}-{kind}')}.png"
    out = Path(out)
    fmt = out.suffix[1:].lower()
    if fmt not in FORMATS and not (fmt == "gif" and kind in ANIMATED):
        shown = out.suffix or "no extension"
        gif = f"; .gif with --kind {', '.join(ANIMATED)}" if fmt == "gif" else ""
        raise OptbenchError(f"--out: {str(out)!r} has {shown} (accepted: {', '.join('.' + f for f in FORMATS)}{gif})")
    return out


def plot_command(paths: list[str], *, runs_dir: Path = Path("runs"), out: Path | None = None, kind: str = "curves",
                 metric: str = "train_cost", x: str = "epoch", log_y: bool = False, seeds: bool = False,
                 band: str = "std", keys: str = "", top: int | None = None, labels: str = "",
                 data_out: Path | None = None, warn: Callable[[str], None] = _stderr) -> Path:
    """Draw one figure from run directories, save it (and with `data_out` the series it draws, as CSV), return its path."""
    opts = check_options(Options(kind=kind, metric=metric, x=x, log_y=log_y, seeds=seeds, band=band, keys=keys,
                                 top=top, labels=labels))
    if out is not None:
        output_path(out, runs_dir, "", kind)  # a bad extension fails before any run is read
    if data_out is not None and Path(data_out).suffix.lower() != ".csv":
        raise OptbenchError(f"--data: {str(data_out)!r} is not a .csv file (accepted: a path ending in .csv)")
    from optbench.plots.record import Record

    from optbench.plots import data
    from optbench.plots.style import style

    if out is not None:
        prepare_out(out)  # a folder that cannot be made fails before any run is read
    runs = data.select_runs(list(paths), Path(runs_dir), warn)
    path = output_path(out, runs_dir, data.experiment_title(runs), kind)
    rec = Record(opts.kind)
    with style():  # also around saving: svg.hashsalt and the dpi are read then
        if path.suffix.lower() == ".gif":
            from optbench.plots import film
            from optbench.plots.choose import choose

            view = choose(data.group_runs(runs), metric=opts.metric, top=opts.top, labels=opts.labels)
            write_atomic(path, lambda tmp: film.write_gif(view, data.experiment_title(runs), opts, warn, rec, tmp))
        else:
            fig = make_figure(runs, opts, warn=warn, rec=rec)
            save(fig, path, "--out" if out is not None else "--runs-dir")  # the default file lives in the runs dir
    if data_out is not None:
        rec.write(prepare_out(data_out, "--data"))
    return path


def save(fig, path: Path, option: str = "--out") -> None:
    """Write the figure atomically in the format its extension names, without dates or versions; a missing
    folder is created, an unwritable target is one OptbenchError line."""
    fmt = path.suffix[1:].lower()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, metadata=METADATA[fmt]), option)


def make_figure(runs, opts: Options, *, warn: Callable[[str], None] = _stderr, rec=None):
    """The matplotlib Figure of `opts.kind` for these runs (not saved): what `plot_command` writes.

    The labels drawn: see `plots.choose.choose` (a sweep's default and tuned trials, --top, --labels);
    `rec` (a plots.record.Record) receives every drawn series."""
    from optbench.plots import data
    from optbench.plots.choose import choose
    from optbench.plots.figures import FIGURES
    from optbench.plots.record import Record
    from optbench.plots.style import style

    check_options(opts)
    view = choose(data.group_runs(runs), metric=opts.metric, top=opts.top, labels=opts.labels)
    with style():
        return FIGURES[opts.kind](view, data.experiment_title(runs), opts, warn, rec if rec is not None else Record(opts.kind))
