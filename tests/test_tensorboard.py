"""TensorBoard: export after the fact and --tensorboard live on train and sweep, read back with TensorBoard's
own reader (its event accumulator and HParams protos): every run's scalars and HParams."""

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CONFIGS, run_cli
from optbench.runset import reading
from optbench.errors import OptbenchError
from optbench.paths import safe_component
from optbench.share.tensorboard import LiveTrain, export_runs

EPOCHS = 8


def read_tb(logdir: Path) -> dict:
    """One TensorBoard run as TensorBoard reads it: scalars by tag, HParams (start, experiment, end status)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    content = {t: plugin_data_pb2.HParamsPluginData.FromString(c) for t, c in acc.PluginTagToContent("hparams").items()}
    start = content["_hparams_/session_start_info"].session_start_info.hparams
    hp = {k: (v.string_value if v.HasField("string_value") else v.number_value if v.HasField("number_value")
              else v.bool_value) for k, v in start.items()}
    exp = content["_hparams_/experiment"].experiment
    return {"scalars": scalars, "hparams": hp, "infos": [h.name for h in exp.hparam_infos],
            "metrics": [m.name.tag for m in exp.metric_infos],
            "status": api_pb2.Status.Name(content["_hparams_/session_end_info"].session_end_info.status),
            "files": sorted(p.name for p in logdir.iterdir())}


def check_run(tb: dict, run) -> None:
    """The TensorBoard run holds the run directory's metrics (float32, as TensorBoard stores them) and settings."""
    m = run.metrics
    steps = [s for s, _ in tb["scalars"]["cost/train"]]
    assert steps == m["epoch"].astype(int).tolist()
    for column, tag in (("train_cost", "cost/train"), ("train_acc", "accuracy/train"), ("lr", "lr")):
        assert np.array_equal([v for _, v in tb["scalars"][tag]], m[column].astype(np.float32)), tag
    assert tb["scalars"]["final/train_cost"] == [(int(m["epoch"][-1]), np.float32(m["train_cost"][-1]))]
    assert tb["hparams"]["label"] == run.label and tb["hparams"]["seed"] == run.seed
    assert tb["hparams"]["optimizer.name"] == run.config["optimizer"]["name"]
    assert {"label", "seed", "optimizer.name"} <= set(tb["infos"]) and "final/train_cost" in tb["metrics"]
    assert tb["status"] == "STATUS_SUCCESS"
    assert len([f for f in tb["files"] if f.startswith("events.out.tfevents")]) == 1


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    rc, _, err = run_cli("train", CONFIGS / "moons-optimizers.yaml", "--set", f"train.epochs={EPOCHS}", "-q",
                         "--runs-dir", root / "runs", "--tensorboard", root / "live")
    assert rc == 0, err
    return root


def test_export_after_the_fact(ref, tmp_path):
    out, n = export_runs([str(ref / "runs")], tmp_path / "tb", warn=pytest.fail)
    assert n == 15
    runs = reading.read([ref / "runs"], pytest.fail)
    assert sorted(p.name for p in out.iterdir()) == sorted(r.path.name for r in runs)  # one TensorBoard run each
    for r in runs:
        check_run(read_tb(out / r.path.name), r)
    export_runs([str(ref / "runs")], tmp_path / "tb", warn=pytest.fail)  # again: replaced, not doubled
    check_run(read_tb(out / runs[0].path.name), runs[0])


def test_train_tensorboard_live(ref):
    runs = {(r.label, r.seed): r for r in reading.read([ref / "runs"], pytest.fail)}
    logdirs = sorted((ref / "live").iterdir())
    assert len(logdirs) == 15
    seen = set()
    for d in logdirs:
        tb = read_tb(d)
        key = (tb["hparams"]["label"], int(tb["hparams"]["seed"]))
        check_run(tb, runs[key])
        assert d.name.startswith(f"{safe_component(key[0])}-s{key[1]}-")  # as run directories are named
        seen.add(key)
    assert seen == set(runs)


class _Display:
    """The terminal's progress display, as LiveTrain sees it: every call recorded."""

    def __init__(self):
        self.calls = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __getattr__(self, name):
        return lambda *a: self.calls.append(name)


def test_live_rows_are_written_while_the_group_trains(tmp_path):
    from optbench.config import load_experiment
    from optbench.records import EpochRecord

    cfgs = load_experiment(CONFIGS / "moons-optimizers.yaml", seed=0)  # gd, momentum, adam at seed 0
    display = _Display()
    with LiveTrain(display, tmp_path, cfgs) as live:
        live.group_started(0, 1, cfgs)
        for epoch in range(3):
            cost = np.array([0.7, 0.6, 0.5]) - 0.01 * epoch
            live.epoch(EpochRecord(epoch, {"train_cost": cost, "lr": 0.0007, "train_acc": np.full(3, 0.5)},
                                   np.array([True, True, epoch < 2]), {}))
        for ev in live.events:
            ev.writer.close()  # on disk now, as flush_secs has it every 2 s (flush() returns before the writes land)
        mid = {d.name: read_tb_scalars(d) for d in tmp_path.iterdir()}  # the group is not done
        assert sorted(len(v["cost/train"]) for v in mid.values()) == [2, 3, 3]  # the frozen replica stopped at epoch 1
        adam = next(v for k, v in mid.items() if k.startswith("moons-optimizers-adam-s0-"))
        assert [round(x, 6) for _, x in adam["cost/train"]] == [0.5, 0.49]
    assert display.calls == ["group_started", "epoch", "epoch", "epoch"]


def read_tb_scalars(logdir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def test_sweep_tensorboard_live(tmp_path):
    rc, _, err = run_cli("sweep", CONFIGS / "moons-sweep.yaml", "--set", "train.epochs=3", "--set", "sweep.budget=2",
                         "--set", "seeds=[0,1]", "--jobs", "1", "-q", "--runs-dir", tmp_path / "runs",
                         "--tensorboard", tmp_path / "live")
    assert rc == 0, err
    runs = reading.read([tmp_path / "runs"], pytest.fail)
    assert len(runs) == 18
    assert sorted(p.name for p in (tmp_path / "live").iterdir()) == sorted(r.path.name for r in runs)
    for r in runs:
        tb = read_tb(tmp_path / "live" / r.path.name)
        check_run(tb, r)
        tag = r.summary["sweep"]
        assert tb["hparams"]["variant"] == tag["variant"] and tb["hparams"]["trial"] == tag["trial"]
        assert tb["hparams"]["optimizer.lr"] == pytest.approx(r.config["optimizer"]["lr"])
        assert tb["scalars"]["cost/val"]  # the sweep's validation split


def test_missing_extra_and_bad_out(ref, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(OptbenchError, match=r"--out: .* is a file \(expected a directory for --format tensorboard\)"):
        export_runs([str(ref / "runs")], tmp_path / "file", warn=pytest.fail)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if the optional extra were not installed
    with pytest.raises(OptbenchError, match=r'^--tensorboard needs tensorboardX: pip install "optbench\[tensorboard\]"$'):
        export_runs([str(ref / "runs")], tmp_path / "tb", warn=pytest.fail)
    assert not (tmp_path / "tb").exists()
