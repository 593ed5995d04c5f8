"""The values each command-line option accepts, defined once: plain tuples read by the modules that implement them
and by the CLI, which builds its help text and its checks from them.

They live here, not beside their code in plot.py, compare/, share/ or report/, because those import NumPy and
the run reader: `optbench -h` and a bad option value answer without loading them (tests/test_choices.py holds
each tuple to the code that implements it).
"""

from __future__ import annotations

from optbench.errors import OptbenchError
from optbench.metrics import METRICS

# optbench plot (plot.py, plots/figures.FIGURES)
PLOT_KINDS = ("curves", "accuracy", "lr", "boundary", "activations", "trajectory", "dashboard", "heatmap", "fit",
              "landscape", "film", "layers", "sharpness")
KIND_NEEDS = {"landscape": "train.snapshots_every", "film": "train.snapshots_every", "layers": "train.snapshots_every",
              "sharpness": "train.sharpness_every"}  # kinds drawn only from runs that recorded this
PLOT_XS = ("epoch", "step", "seconds")
PLOT_BANDS = ("std", "minmax")
FIGURE_FORMATS = ("png", "svg", "pdf")  # --out extensions of plot and lr-find
ANIMATED = ("film",)  # kinds that can also be saved as an animated .gif

# optbench compare (compare/read.py)
COMPARE_FORMATS = ("table", "markdown", "csv", "json", "latex")
# per-label metric -> +1 when lower is better, -1 when higher is better (label: alphabetical)
SORT_METRICS = {**METRICS, "final_sharpness": 1, "seconds": 1, "ensemble_acc": -1, "label": 0}

# optbench export (share/export.py, share/table.py)
EXPORT_FORMATS = ("csv", "jsonl", "parquet", "tensorboard")
EXPORT_EXTRAS = {"parquet": "parquet", "tensorboard": "tensorboard"}  # format -> pip install 'optbench[EXTRA]'
EXPORT_PER = {"epoch": "a row per run x epoch with every logged metric",
              "run": "a row per run (final, best and test metrics)"}  # --per -> what a row is

# optbench check and lr-find (sanity.py, lrfind.py: lines() for table, as_json() for json)
TEXT_FORMATS = ("table", "json")

# optbench list (report/listing.py): family -> (module, registry attribute), imported only when listed
FAMILIES = {
    "optimizers": ("optbench.optim", "OPTIMIZERS"),
    "schedules": ("optbench.schedules", "SCHEDULES"),
    "momentum_schedules": ("optbench.schedules", "MOMENTUM_SCHEDULES"),
    "datasets": ("optbench.data", "DATASETS"),
    "problems": ("optbench.problems", "PROBLEMS"),
    "initializers": ("optbench.init", "INITIALIZERS"),
    "activations": ("optbench.layers", "ACTIVATIONS"),
    "losses": ("optbench.losses", "LOSSES"),
}


def say(values, notes=None, last: str = "or") -> str:
    """`a, b or c` for a help string; `notes` adds `(note)` after a value."""
    shown = [f"{v} ({notes[v]})" if notes and v in notes else str(v) for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} {last} {shown[-1]}"


def check(option: str, value, accepted) -> None:
    """Refuse a value not in `accepted`: `--kind: 'pie' is invalid (accepted: curves, accuracy, ...)`."""
    if value not in accepted:
        raise OptbenchError(f"{option}: {value!r} is invalid (accepted: {', '.join(accepted)})")
