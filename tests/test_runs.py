"""Run directories: writing a finished group at once equals writing it epoch by epoch."""

from optbench.config import expand
from optbench.execute import train_group
from optbench.runs.read import read_run
from optbench.runs.writer import RunWriter


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
    b = RunWriter(tmp_path / "b", cfgs, group="g")
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


def test_metrics_text_reads_back_to_the_same_floats(tmp_path):
    import numpy as np

    cfgs = expand({"name": "w", "seeds": [0, 1], "data": {"name": "moons", "n_samples": 200, "val_fraction": 0.25},
                   "optimizer": {"name": "sgd", "lr": 0.1}, "schedule": {"name": "step", "every": 5, "gamma": 0.5},
                   "train": {"epochs": 12, "batch_size": 32}})
    trace = train_group(cfgs)
    w = RunWriter(tmp_path, cfgs, group="g")
    w.start()
    w.write_trace(trace.metrics, trace.alive, trace.iter_costs)
    w.finish(trace.results, seconds=1.0)
    for r, d in enumerate(w.dirs):
        m = read_run(d).metrics
        for col in ("lr", "train_cost", "val_cost", "train_acc", "val_acc", "grad_norm", "update_ratio"):
            np.testing.assert_array_equal(m[col], np.asarray(trace.metrics[col], dtype=float)[:, r], err_msg=col)
        assert len(set(m["lr"])) == 3  # the step schedule's three values
        np.testing.assert_allclose(m["seconds"], np.asarray(trace.metrics["seconds"], dtype=float)[:, r], atol=1e-6)


def test_rows_text_is_the_row_by_row_text():
    """The column-at-a-time formatter writes what the per-epoch one does, signed zeros, NaN and inf included."""
    import numpy as np

    from optbench.runs.columns import ROW, rows_text

    rows = np.array([[0, 0, 0.1, np.nan, -0.0, 0.5, np.inf, 1e-300, 2.0, 0.0],
                     [1, 5, 0.1, 0.25, 0.0, 0.5, -np.inf, 1 / 3, 2.0, 0.1234567891],
                     [2, 10, 0.05, 0.25, -0.0, 0.75, np.nan, 1 / 3, 3.0, 12.5]])
    assert rows_text(rows) == "".join((ROW % tuple(v)).replace("nan", "") for v in rows.tolist())
