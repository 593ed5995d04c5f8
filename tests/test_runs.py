"""Run directories: writing a finished group at once equals writing it epoch by epoch."""

from optbench.config import expand
from optbench.execute import train_group
from optbench.runs import RunWriter, read_run


def test_trace_written_at_once_equals_row_by_row(tmp_path):
    cfgs = expand({
        "name": "w", "seeds": [0, 1],
        "data": {"name": "moons", "n_samples": 200, "val_fraction": 0.25},
        "optimizer": {"name": "adam", "lr": 0.05},
        "regularization": {"early_stopping": {"metric": "val_cost", "patience": 3}},
        "train": {"epochs": 60, "batch_size": 32, "log_iterations": True},
        "variants": {"ok": {}, "boom": {"optimizer": {"name": "sgd", "lr": 1e3}}},
    })
    trace = train_group(cfgs)
    a = RunWriter(tmp_path / "a", cfgs, group="g")
    b = RunWriter(tmp_path / "b", cfgs, group="g", flush=False)
    a.start(), b.start()
    for rec in trace.records():
        a.on_epoch(rec)
    b.write_trace(trace.metrics, trace.alive, trace.iter_costs)
    a.finish(trace.results, seconds=1.0)
    b.finish(trace.results, seconds=1.0)
    statuses = set()
    for da, db in zip(a.dirs, b.dirs):
        for name in ("metrics.csv", "iterations.csv"):
            assert (da / name).read_text() == (db / name).read_text(), name
        ra, rb = read_run(da), read_run(db)
        for key in ("initial", "final", "best", "epochs", "final_eval"):
            assert ra.summary[key] == rb.summary[key], key
        statuses.add(ra.status)
    assert "diverged" in statuses
    assert len({len(read_run(d).metrics["epoch"]) for d in a.dirs}) > 1  # runs ended at different epochs
