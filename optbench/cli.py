"""The `optbench` command: thin Typer commands that parse, call one library function and render."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

import typer

from optbench import __version__
from optbench.choices import (ANIMATED, COMPARE_FORMATS, EXPORT_EXTRAS, EXPORT_FORMATS, EXPORT_PER, FAMILIES,
                              FIGURE_FORMATS, KIND_NEEDS, PLOT_BANDS, PLOT_KINDS, PLOT_XS, SORT_METRICS, TEXT_FORMATS,
                              say)
from optbench.choices import check as check_choice  # `check` is also a command below
from optbench.errors import OptbenchError
from optbench.metrics import METRICS

app = typer.Typer(
    help="Compare neural-network optimizers: train configs, compare runs, plot cost curves.",
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
)


def _version(value: bool):
    if value:
        typer.echo(f"optbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """optbench: train MLPs with many optimizers at once and compare them."""


def _fail(msg: str, code: int = 2):
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _one_of(name: str, accepted):
    """A typer callback: a value outside `accepted` is one `error:` line, exit 2, before anything is loaded or read."""

    def callback(value):
        if value is not None:
            check_choice(name, value, accepted)
        return value

    return callback


def _needs() -> str:
    """`landscape, film and layers need train.snapshots_every; sharpness needs train.sharpness_every`."""
    by_need: dict[str, list[str]] = {}
    for kind, need in KIND_NEEDS.items():
        by_need.setdefault(need, []).append(kind)
    return "; ".join(f"{say(kinds, last='and')} need{'s' if len(kinds) == 1 else ''} {need}" for need, kinds in by_need.items())


FIGURE_FILES = say("." + f for f in FIGURE_FORMATS)
SORT_EXTRA = [k for k in SORT_METRICS if k not in METRICS]  # --sort: any --metric or these
EXPORT_FILES = say(EXPORT_FORMATS, {f: f"pip install 'optbench[{x}]'" for f, x in EXPORT_EXTRAS.items()})


def _stop_on_signals() -> threading.Event:
    """The event that Ctrl-C and SIGTERM set, handed to the trainers: they stop at the next step, open runs
    flushed and marked interrupted. A second Ctrl-C stops at once (KeyboardInterrupt)."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@app.command()
def train(
    configs: List[Path] = typer.Argument(..., help="Experiment YAML files (or a run's config.yaml to rerun it)."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override a key before expansion: KEY.PATH=VALUE (YAML-typed); repeatable."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Run only this seed (replaces seed/seeds)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run directories are written."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no per-run listing: errors and one result line only."),
    resume: bool = typer.Option(False, "--resume", help="Finish this experiment under --runs-dir: runs that crashed or were interrupted go on from their last checkpoint, finished ones are not trained again."),
    checkpoint_every: float = typer.Option(5.0, "--checkpoint-every", min=0.0, help="Seconds between checkpoints of the open runs (0: every epoch)."),
    tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", help="Also write TensorBoard event files here as training proceeds, one run each (pip install 'optbench[tensorboard]')."),
):
    """Train every run the configs describe (variants x seeds) and write one run directory per run."""
    import time

    from functools import partial

    from optbench.config import load_experiment
    from optbench.datacache import DataCache
    from optbench.execute import execute
    from optbench.report.outcomes import print_train_table
    from optbench.report.progress import TrainProgress
    from optbench.trainers import make_trainer

    cache = DataCache()  # validation loads each data section once, in its training dtype; the trainers reuse it
    cfgs = []
    for c in configs:
        cfgs.extend(load_experiment(c, sets=set_, seed=seed, cache=cache))
    again = None
    if resume:
        from optbench.resume import plan_resume

        plan = plan_resume(cfgs, runs_dir)
        typer.echo(f"resume: {plan.continued} runs go on from their checkpoints, {plan.restarted} start again (no checkpoint), "
                   f"{len(plan.cfgs) - plan.continued - plan.restarted} new, {plan.done} finished already"
                   + (f", {len(plan.busy)} still training elsewhere (left alone)" if plan.busy else ""), err=True)
        cfgs, again = plan.cfgs, plan.resume
        if not cfgs:
            return
    stop = _stop_on_signals()
    progress = TrainProgress(quiet=quiet)
    if tensorboard is not None:
        from optbench.share.tensorboard import LiveTrain

        progress = LiveTrain(progress, tensorboard, cfgs)
    t0 = time.perf_counter()
    with progress:
        outcomes, interrupted = execute(cfgs, runs_dir, progress, resume=again, checkpoint_every=checkpoint_every,
                                        trainer=partial(make_trainer, cache=cache), stop=stop)
    print_train_table(outcomes, cfgs=cfgs, interrupted=interrupted, quiet=quiet, seconds=time.perf_counter() - t0)
    if interrupted:
        typer.echo("interrupted: open runs were flushed and marked interrupted", err=True)
        raise typer.Exit(130)


@app.command()
def sweep(
    config: Path = typer.Argument(..., help="An experiment YAML file with a sweep: block (method, params, trials or budget, seeds)."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override a key before expansion: KEY.PATH=VALUE (YAML-typed); repeatable; sweep.* keys too."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the sweep directory <name>-<id>/ is written (and found again to resume)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Groups trained at once: this process and N-1 worker processes, BLAS pinned to one thread each (default: the number of cores)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://HOST:PORT of a Dask scheduler: train on its workers instead (pip install 'optbench[dask]')."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress: errors and one result line only."),
    tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", help="Also write TensorBoard event files here, each run as its group finishes (pip install 'optbench[tensorboard]')."),
):
    """Run a hyperparameter sweep: every trial x seed (x fold), grouped and vectorized; rerun to resume."""
    from optbench.report.outcomes import print_sweep_outcome
    from optbench.report.progress import SweepProgress
    from optbench.sweep import run_sweep

    stop = _stop_on_signals()
    display = SweepProgress(quiet=quiet)
    if tensorboard is not None:
        from optbench.share.tensorboard import LiveSweep

        display = LiveSweep(display, tensorboard)
    with display as progress:
        outcome = run_sweep(config, sets=set_, runs_dir=runs_dir, jobs=jobs, scheduler=scheduler, progress=progress,
                            stop=stop)
    print_sweep_outcome(outcome, quiet=quiet)
    if outcome.interrupted:
        typer.echo("interrupted: finished runs were kept, running ones marked interrupted", err=True)
        raise typer.Exit(130)


@app.command("list")
def list_(
    family: Optional[str] = typer.Argument(
        None, callback=_one_of("FAMILY", FAMILIES), help=f"{say(FAMILIES)} (default: all)."
    ),
    name: Optional[str] = typer.Argument(
        None, help="One entry of FAMILY in full: its formula and options; for an optimizer also the reference form it is tested against."
    ),
):
    """List what a config can name, with each entry's hyperparameters and defaults."""
    from optbench.report.listing import print_entry, print_registry

    if name is not None:
        print_entry(family, name)
        return
    for fam in [family] if family else list(FAMILIES):
        print_registry(fam)


@app.command()
def gradcheck(
    config: Path = typer.Argument(..., help="An experiment YAML file."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override a key: KEY.PATH=VALUE; repeatable."),
    examples: int = typer.Option(16, "--examples", min=1, help="Training examples in the checked batch."),
    samples: int = typer.Option(20, "--samples", min=1, help="Entries checked per parameter tensor (chosen at random)."),
    params: bool = typer.Option(False, "--params", help="One line per parameter tensor instead of per net and path."),
):
    """Numeric gradient check of each configured net on every path it trains through; exit 1 on FAIL."""
    from optbench.config import load_experiment
    from optbench.report.gradcheck import print_gradcheck
    from optbench.checks import gradcheck_runs

    cfgs = load_experiment(config, sets=set_)
    rows = gradcheck_runs(cfgs, examples=examples, samples=samples)
    ok = print_gradcheck(rows, params=params)
    if not ok:
        raise typer.Exit(1)


@app.command()
def check(
    config: Path = typer.Argument(..., help="An experiment YAML file."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override a key: KEY.PATH=VALUE; repeatable."),
    fmt: str = typer.Option("table", "--format", "-f", callback=_one_of("--format", TEXT_FORMATS), help=f"{say(TEXT_FORMATS)}."),
):
    """CS231n's sanity checks: loss at init vs ln C, overfit 20 examples, gradient check; exit 1 on FAIL."""
    import json

    from optbench.config import load_experiment
    from optbench.sanity import as_json, lines, sanity_checks

    verdicts, skipped = sanity_checks(load_experiment(config, sets=set_))
    if fmt == "json":
        typer.echo(json.dumps(as_json(verdicts, skipped), indent=1))
    else:
        for line in lines(verdicts, skipped):
            typer.echo(line)
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)


@app.command("lr-find")
def lr_find(
    config: Path = typer.Argument(..., help="An experiment YAML file: each label's first seed is tested, all at once."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override a key: KEY.PATH=VALUE; repeatable."),
    start: float = typer.Option(1e-7, "--start", help="Learning rate of the first iteration."),
    end: float = typer.Option(10.0, "--end", help="Learning rate of the last iteration."),
    iters: int = typer.Option(100, "--iters", help="Iterations (one mini-batch each); the rate grows exponentially."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=f"Also draw smoothed loss vs lr to this {FIGURE_FILES}."),
    fmt: str = typer.Option("table", "--format", "-f", callback=_one_of("--format", TEXT_FORMATS), help=f"{say(TEXT_FORMATS)}."),
):
    """The LR range test (Smith 2017, fastai lr_find): suggested lr and a sweep range per label."""
    import json

    from optbench.config import load_experiment
    from optbench.lrfind import as_json, check_range, lines, lr_find as find

    check_range(start, end, iters)
    if out is not None:
        from optbench.plot import output_path

        output_path(out, out.parent, "", "lr-find")  # a bad extension fails before anything trains
    curves = find(load_experiment(config, sets=set_), start=start, end=end, iters=iters)
    if out is not None:
        from optbench.plots.lrfind import save_lr_find

        save_lr_find(curves, out, title=f"LR range test: {config.stem}")
    if fmt == "json":
        typer.echo(json.dumps(as_json(curves, start=start, end=end, iters=iters), indent=1))
        return
    for line in lines(curves, source=str(config), start=start, end=end, iters=iters):
        typer.echo(line)
    if out is not None:
        typer.echo(f"figure: {out}")


@app.command()
def compare(
    runs: List[str] = typer.Argument(None, help="Run directories or directories holding runs (default: all under --runs-dir)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where to look when no RUN_DIR is given."),
    threshold: List[str] = typer.Option([], "--threshold", "-t", help="METRIC=VALUE: first epoch METRIC <= VALUE (>= for accuracies); repeatable."),
    metric: Optional[str] = typer.Option(None, "--metric", "-m", help=f"Rank and pair on {say(METRICS)} (default: final_val_cost with a validation split, else final_train_cost; a sweep's own metric)."),
    sort: Optional[str] = typer.Option(None, "--sort", callback=_one_of("--sort", SORT_METRICS), help=f"Row order: any --metric, {say(SORT_EXTRA)} (a metric also ranks when --metric is not given)."),
    fmt: str = typer.Option("table", "--format", "-f", callback=_one_of("--format", COMPARE_FORMATS), help=f"{say(COMPARE_FORMATS)}."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to FILE instead of stdout."),
    wide: bool = typer.Option(False, "--wide", "-w", help="Every column on the terminal (seeds, AUC, group s, ...), continued below when too wide."),
):
    """Compare runs: one row per label over seeds, paired statistics against the best, health checks."""
    from optbench.compare import compare_command

    raise typer.Exit(compare_command(runs or [], runs_dir=runs_dir, thresholds=threshold, sort=sort, fmt=fmt, out=out,
                                     metric=metric, wide=wide))


@app.command()
def plot(
    runs: List[str] = typer.Argument(None, help="Run directories or directories holding runs (default: the newest experiment under --runs-dir)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where to look when no RUN_DIR is given."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=f"Output file; {FIGURE_FILES}, or .gif for --kind {say(ANIMATED)} (default: RUNS_DIR/plots/<experiment>-<kind>.png)."),
    kind: str = typer.Option("curves", "--kind", "-k", callback=_one_of("--kind", PLOT_KINDS), help=f"{say(PLOT_KINDS)} ({_needs()})."),
    metric: str = typer.Option("train_cost", "--metric", "-m", help="Any metrics.csv column (curves, lr)."),
    x: str = typer.Option("epoch", "--x", callback=_one_of("--x", PLOT_XS), help=f"x axis of curves: {say(PLOT_XS)}."),
    log_y: Optional[bool] = typer.Option(None, "--log-y/--linear-y", help="y axis scale (default: log for the costs of 2-D test functions, drawn as f - f*, and of regression; else linear)."),
    seeds: bool = typer.Option(False, "--seeds", help="Also draw every seed's curve, faintly."),
    band: str = typer.Option("std", "--band", callback=_one_of("--band", PLOT_BANDS), help=f"Spread around the mean over seeds: {say(PLOT_BANDS)}."),
    keys: str = typer.Option("", "--keys", help="heatmap: one or two config keys X[,Y] (default: the keys the sweep varied)."),
    top: Optional[int] = typer.Option(None, "--top", help="Only the K best labels (in a sweep: the K best trials of each variant, beside its default)."),
    labels: str = typer.Option("", "--labels", help="Only labels matching these globs, comma-separated (e.g. '*adam*'); in a sweep '*' draws every trial."),
    data_out: Optional[Path] = typer.Option(None, "--data", help="Also write the exact series drawn to this CSV (kind, panel, label, series, x, y, lo, hi, z)."),
):
    """Draw the comparison figure of a set of runs (the GD / momentum / Adam cost curves by default)."""
    from optbench.plot import plot_command

    path = plot_command(runs or [], runs_dir=runs_dir, out=out, kind=kind, metric=metric, x=x, log_y=log_y,
                        seeds=seeds, band=band, keys=keys, top=top, labels=labels, data_out=data_out,
                        warn=lambda m: typer.echo(m, err=True))
    typer.echo(str(path))


@app.command()
def export(
    runs: List[str] = typer.Argument(None, help="Run directories, directories holding runs or sweep directories (default: the newest experiment under --runs-dir)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (a directory for --format tensorboard: one event file per run below it)."),
    fmt: str = typer.Option("csv", "--format", "-f", callback=_one_of("--format", EXPORT_FORMATS), help=f"{EXPORT_FILES}."),
    per: str = typer.Option("epoch", "--per", callback=_one_of("--per", EXPORT_PER), help="; ".join(f"{k}: {v}" for k, v in EXPORT_PER.items()) + "."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where to look when no RUN_DIR is given."),
):
    """Export runs as one tidy table (label, seed, status, sweep trial, varied config keys as columns) or TensorBoard files."""
    from optbench.share.export import export_command

    path, n = export_command(runs or [], out=out, fmt=fmt, per=per, runs_dir=runs_dir, warn=lambda m: typer.echo(m, err=True))
    typer.echo(f"{path}: {n} run{'s' if n != 1 else ''}")


@app.command()
def report(
    runs: List[str] = typer.Argument(None, help="Run directories, directories holding runs or sweep directories (default: the newest experiment under --runs-dir)."),
    out: Path = typer.Option(..., "--out", "-o", help="The .html file: one self-contained page that opens offline."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where to look when no RUN_DIR is given."),
):
    """Write one self-contained HTML page of a study: tables, figures, configs, environment, commands."""
    from optbench.share.html import report_command

    typer.echo(str(report_command(runs or [], out=out, runs_dir=runs_dir, warn=lambda m: typer.echo(m, err=True))))


@app.command("runs")
def runs_(
    runs_dir: Path = typer.Argument(Path("runs"), help="A runs directory (or one sweep directory)."),
    every: bool = typer.Option(False, "--all", "-a", help="One line per run, not only those that need attention."),
    prune_: bool = typer.Option(False, "--prune", help="Remove superseded duplicates and failed or crashed runs (asks first)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --prune: do not ask."),
):
    """List experiments and runs: status, duplicates and sizes; --prune removes what compare would never read."""
    from optbench.share import inventory

    inv = inventory.take(runs_dir, warn=lambda m: typer.echo(m, err=True))
    for line in inventory.lines(inv, every=every):
        typer.echo(line)
    if not prune_:
        return
    doomed = inv.prunable()
    if not doomed:
        typer.echo("nothing to prune")
        return
    what = f"{len(doomed)} run director{'ies' if len(doomed) != 1 else 'y'} ({inventory.human(sum(e.size for e in doomed))})"
    if not yes:
        if not sys.stdin.isatty():
            _fail(f"--prune: would remove {what}; confirm on a terminal or pass --yes")
        typer.confirm(f"remove {what}?", abort=True)
    removed, freed = inventory.prune(inv, warn=lambda m: typer.echo(m, err=True))
    typer.echo(f"removed {removed} run director{'ies' if removed != 1 else 'y'}, {inventory.human(freed)} freed")


def _usage_error(err: BaseException) -> bool:
    """Click's usage errors (typer vendors click from 0.29 on, so match by shape, not by class)."""
    return hasattr(err, "show") and isinstance(getattr(err, "exit_code", None), int)


def main():
    """Console entry point: bad input is one line on stderr with exit code 2, never a traceback."""
    try:
        rc = app(standalone_mode=False)
    except OptbenchError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:
        if _usage_error(err):  # a usage error: click's own message, exit 2
            err.show()
            sys.exit(err.exit_code)
        if os.environ.get("OPTBENCH_DEBUG"):  # a bug: one line, the traceback only on request
            raise
        typer.echo(f"internal error: {err.__class__.__name__}: {err} (set OPTBENCH_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
