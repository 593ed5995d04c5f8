"""The per-run metrics compare ranks on and sweeps select on: `{final|best}_{train|val}_{cost|acc}`,
`final_test_{cost|acc}`, and `auc`; their direction, their split and their names in table headers."""

from __future__ import annotations

# name -> +1 when lower is better, -1 when higher is better
METRICS: dict[str, int] = {
    **{f"{when}_{split}_{kind}": 1 if kind == "cost" else -1
       for when in ("final", "best") for split in ("train", "val") for kind in ("cost", "acc")},
    "final_test_cost": 1, "final_test_acc": -1,  # test: the final model only, never a best over epochs
    "auc": 1,  # the mean training cost over epochs 0..E
    "best_cost": 1, "best_acc": -1,  # older names: the best on the validation split, training without one
}
SELECTABLE = tuple(m for m in METRICS if "_test_" not in m)  # what a sweep (or early stopping) may select on


def split_of(metric: str) -> str | None:
    """`final_val_cost` -> "val"; None for auc (training) and the split-dependent best_cost / best_acc."""
    parts = metric.split("_")
    return parts[1] if len(parts) == 3 else "train" if metric == "auc" else None


def kind_of(metric: str) -> str:
    """"acc" for accuracies, "cost" for everything else."""
    return "acc" if metric.endswith("_acc") else "cost"


def metric_name(metric: str, split: str | None = None) -> str:
    """A header's words: `final_val_cost` -> "final val cost"; `best_cost` with split "val" -> "best val cost"."""
    if metric == "auc":
        return "AUC"
    if metric in ("best_cost", "best_acc") and split:
        return f"best {split} {kind_of(metric)}"
    return metric.replace("_", " ")


def test_counterpart(metric: str) -> str:
    """The test-split metric reported beside a selection metric: final_test_acc for accuracies, else final_test_cost."""
    return f"final_test_{kind_of(metric)}"
