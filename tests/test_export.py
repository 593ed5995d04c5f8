"""optbench export: one tidy table (csv, jsonl, parquet) of the reference experiment and of a sweep; --per run."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import CONFIGS, run_cli
from optbench.errors import OptbenchError
from optbench.runs.read import read_run
from optbench.share.export import export_command

EPOCHS = 12  # the reference experiment shortened: every column and row count survives


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    rc, _, err = run_cli("train", CONFIGS / "moons-optimizers.yaml", "--set", f"train.epochs={EPOCHS}", "-q",
                         "--runs-dir", root / "runs")
    assert rc == 0, err
    return root


@pytest.fixture(scope="module")
def frames(ref):
    rc, stdout, err = run_cli("export", ref / "runs", "--format", "csv", "-o", ref / "study.csv")
    assert rc == 0, err
    assert stdout.strip() == f"{ref / 'study.csv'}: 15 runs"
    out = {"csv": ref / "study.csv"}
    for fmt in ("jsonl", "parquet"):  # in this process: a CLI start costs seconds on a busy machine
        out[fmt], n = export_command([str(ref / "runs")], out=ref / f"study.{fmt}", fmt=fmt, warn=pytest.fail)
        assert n == 15
    return out


def test_csv_is_one_row_per_run_and_epoch_with_the_varied_keys(ref, frames):
    df = pd.read_csv(frames["csv"])
    assert len(df) == 15 * (EPOCHS + 1)
    for col in ("label", "seed", "status", "run", "optimizer.name", "optimizer.mu", "optimizer.form", "epoch",
                "train_cost", "train_acc", "lr"):
        assert col in df.columns, col
    assert "optimizer.lr" not in df.columns  # the same in every run: not varied
    assert "model.hidden" not in df.columns
    assert sorted(df["optimizer.name"].unique()) == ["adam", "gd", "momentum"]
    assert set(df.loc[df["optimizer.name"] == "momentum", "optimizer.mu"]) == {0.9}
    assert df.loc[df["optimizer.name"] != "momentum", "optimizer.mu"].isna().all()
    per_run = df.groupby("run")
    assert per_run.size().eq(EPOCHS + 1).all()
    assert sorted(df.groupby("label")["seed"].unique().map(sorted).map(tuple).unique()) == [(0, 1, 2, 3, 4)]
    # the numbers are metrics.csv's, exactly
    for name, rows in per_run:
        run = read_run(ref / "runs" / name)
        assert rows["epoch"].tolist() == list(range(EPOCHS + 1))
        assert np.array_equal(rows["train_cost"].to_numpy(), run.metrics["train_cost"])
        assert rows["label"].iloc[0] == run.label and rows["seed"].iloc[0] == run.seed


def test_jsonl_and_parquet_hold_the_same_frame(frames):
    a = pd.read_csv(frames["csv"])
    b = pd.read_json(frames["jsonl"], lines=True, precise_float=True)  # pandas rounds floats without it
    c = pd.read_parquet(frames["parquet"])
    assert list(a.columns) == list(b.columns) == list(c.columns)
    for other in (b, c):
        for col in ("epoch", "seed", "train_cost", "train_acc", "grad_norm", "optimizer.mu"):
            assert np.allclose(a[col].to_numpy(float), other[col].to_numpy(float), rtol=0, atol=0, equal_nan=True), col
        assert (a["label"] == other["label"]).all()
    assert c["val_cost"].dtype == np.float64 and c["val_cost"].isna().all()  # no validation split: null floats
    assert c["epoch"].dtype == np.int64


def test_per_run_summary(ref, tmp_path):
    out, _ = export_command([str(ref / "runs")], out=tmp_path / "per-run.csv", per="run", warn=pytest.fail)
    df = pd.read_csv(out)
    assert len(df) == 15 and df["run"].is_unique
    for _, row in df.iterrows():
        s = json.loads((ref / "runs" / row["run"] / "summary.json").read_text())
        assert row["final_train_cost"] == s["final"]["train_cost"]
        assert row["epochs"] == EPOCHS
    assert {"auc", "best_train_cost", "best_train_cost_epoch", "final_train_acc"} <= set(df.columns)


def test_sweep_export_has_trials_and_the_searched_key(tmp_path):
    rc, _, err = run_cli("sweep", CONFIGS / "moons-sweep.yaml", "--set", "train.epochs=3", "--set", "sweep.budget=2",
                         "--set", "seeds=[0,1]", "--jobs", "1", "-q", "--runs-dir", tmp_path / "runs")
    assert rc == 0, err
    out = tmp_path / "sweep.jsonl"
    export_command([str(tmp_path / "runs")], out=out, fmt="jsonl", warn=pytest.fail)
    df = pd.read_json(out, lines=True)
    assert len(df) == 3 * 3 * 2 * 4  # 3 variants x (2 trials + default) x 2 seeds x epochs 0..3
    assert {"sweep", "variant", "trial", "optimizer.lr"} <= set(df.columns)
    assert set(df["trial"]) == {"t000", "t001", "default"}
    assert df.groupby(["variant", "trial"])["optimizer.lr"].nunique().eq(1).all()
    assert df["val_cost"].notna().all()


def test_bad_options_and_missing_pyarrow(ref, tmp_path, monkeypatch):
    rc, _, err = run_cli("export", ref / "runs", "--format", "xlsx", "-o", tmp_path / "x.xlsx")
    assert rc == 2 and err.strip().splitlines() == ["error: --format: 'xlsx' is invalid (accepted: csv, jsonl, parquet, tensorboard)"]
    with pytest.raises(OptbenchError, match=r"^--per: 'seed' is invalid \(accepted: epoch, run\)$"):
        export_command([str(ref / "runs")], out=tmp_path / "x.csv", per="seed", warn=pytest.fail)
    with pytest.raises(OptbenchError, match="no readable runs"):
        export_command([str(tmp_path / "nothing-here")], out=tmp_path / "x.csv", warn=lambda m: None)
    assert not (tmp_path / "x.csv").exists()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the optional extra were not installed
    with pytest.raises(OptbenchError, match=r"pip install \"optbench\[parquet\]\""):
        export_command([str(ref / "runs")], out=tmp_path / "x.parquet", fmt="parquet", warn=lambda m: None)
    assert not (tmp_path / "x.parquet").exists()
