"""Hyperparameter sweeps: grid or random search over config keys, per variant, over seeds and folds.

Data flows one way: the `sweep:` block -> Spec -> trials (sampled with the sweep's own seed) -> runs (one
`config.expand` per trial and fold, one resolved config per seed) -> a Plan whose id hashes all of it ->
`<runs-dir>/<name>-<id>/` holding sweep.json and one run directory per run. Running the same sweep again
skips its complete runs; a changed config has another id and so another directory.
Modules, in that order: `spec` (the sweep block), `plan` (trials, runs, the id, sweep.json, resuming), `run`
(`run_sweep` on a backend, the directory locked by `lock`), `results` (best trials for compare, heat-map tables).
The runner's names are loaded on first use: compare and plot read sweeps through `spec`, `plan` and `results`
and so never load the engine that `run` drives.
"""

from optbench.sweep.plan import DEFAULT_TRIAL, FINAL, Plan, SweepRun, Trial, make_runs, make_trials, plan_sweep, sweep_id
from optbench.sweep.results import Pick, SweepSummary, TrialResult, best_trial, heatmap_table, summarize
from optbench.sweep.spec import METRICS, Param, Spec, parse_params, parse_spec

__all__ = [
    "DEFAULT_TRIAL", "FINAL", "Plan", "SweepRun", "Trial", "make_runs", "make_trials", "plan_sweep", "sweep_id",
    "Pick", "SweepSummary", "TrialResult", "best_trial", "heatmap_table", "summarize",
    "Outcome", "Start", "SweepProgress", "Tally", "make_units", "run_sweep", "unit_id",
    "METRICS", "Param", "Spec", "parse_params", "parse_spec",
]

RUNNER = ("Outcome", "Start", "SweepProgress", "Tally", "make_units", "run_sweep", "unit_id")  # from optbench.sweep.run


def __getattr__(name: str):
    """`optbench.sweep.run_sweep` and the runner's other names, imported on first use (PEP 562)."""
    if name in RUNNER:
        from optbench.sweep import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
