"""The command line end to end: shipped configs shrunk with --set, reruns, bad input, interrupts."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import CONFIGS, ROOT, run_cli

SHIPPED = sorted(p.name for p in CONFIGS.glob("*.yaml"))


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.exists() else []


def read_metrics(d: Path, drop=("seconds",)):
    with open(d / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_trains(name, tmp_path):
    import yaml

    # a variant that sets its own epochs (batch-size-sharpness' full batch) is shrunk too
    variants = yaml.safe_load((CONFIGS / name).read_text()).get("variants") or {}
    own = [x for v, sec in variants.items() if "epochs" in ((sec or {}).get("train") or {})
           for x in ("--set", f"variants.{v}.train.epochs=3")]
    code, out, errtext = run_cli("train", CONFIGS / name, "--set", "train.epochs=3", *own, "--seed", "0", "--runs-dir", tmp_path)
    assert code == 0, errtext
    dirs = run_dirs(tmp_path)
    assert dirs and all((d / f).exists() for d in dirs for f in ("config.yaml", "metrics.csv", "summary.json", "params.npz"))
    for d in dirs:
        s = json.loads((d / "summary.json").read_text())
        epochs = yaml.safe_load((d / "config.yaml").read_text())["train"]["epochs"]  # 3, or what a variant sets itself
        assert s["status"] == "completed" and s["epochs"] == epochs
        assert len(read_metrics(d)) == epochs + 1  # epoch 0 and the epochs
    assert "completed" in out


def test_rerun_from_a_run_config_reproduces_metrics(tmp_path):
    code, _, e = run_cli("train", CONFIGS / "spiral-regularization.yaml", "--set", "train.epochs=4", "--set", "seeds=[1]",
                         "--runs-dir", tmp_path / "a")
    assert code == 0, e
    first = run_dirs(tmp_path / "a")
    for d in first:
        code, _, e = run_cli("train", d / "config.yaml", "--runs-dir", tmp_path / "b" / d.name)
        assert code == 0, e
        (again,) = run_dirs(tmp_path / "b" / d.name)
        assert read_metrics(again) == read_metrics(d)


def test_version_help_and_list(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("optbench ")
    for args in (["-h"], ["train", "-h"], ["list", "--help"], ["gradcheck", "-h"]):
        code, out, _ = cli(*args)
        assert code == 0 and "Usage" in out
    code, out, _ = cli("list", "optimizers")
    assert code == 0
    for name in ("adam", "lbfgs", "nesterov", "beta1=0.9", "mu=0.9"):
        assert name in out
    code, out, _ = cli("list", "optimizers", "adam")
    assert code == 0 and "mb = m / (1 - b1**t)" in out and "beta2: Unit = 0.999" in out
    code, out, _ = cli("list")
    assert code == 0 and "inverse_time" in out and "moons" in out and "xavier" in out and "softmax_ce" in out
    assert "rosenbrock" in out and "condition=10.0" in out


def test_gradcheck_command(cli):
    code, out, e = cli("gradcheck", CONFIGS / "spiral-regularization.yaml", "--params")
    assert code == 0, e
    assert "W1" in out and "gamma1" in out and "FAIL" not in out


BAD = [
    (["--set", "optimizer.bta=1"], r"optimizer.bta: unknown option for gd"),
    (["--set", "optimizer.lr=-1"], r"optimizer.lr: -1"),
    (["--set", "model.drop_prob=1.0"], r"model.drop_prob: 1.0"),
    (["--set", "model.hidden=[5, 0]"], r"model.hidden.1: 0"),
    (["--set", "train.batch_size=1000"], r"train.batch_size: 1000 is larger than the 300"),
    (["--set", "variants.adam.optimizer.name=adamm"], r"variants.adam.optimizer.name: unknown optimizer 'adamm'"),
    (["--set", "optimizer.lr"], r"expected KEY.PATH=VALUE"),
    (["--set", "data.path=x.csv"], r"data.path: unknown option for moons"),
]


@pytest.mark.parametrize("args,pattern", BAD)
def test_bad_input_is_one_line_exit_2_and_no_run(args, pattern, tmp_path):
    import re

    code, out, e = run_cli("train", CONFIGS / "moons-optimizers.yaml", *args, "--runs-dir", tmp_path)
    assert code == 2
    lines = e.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(pattern, lines[0]), e
    assert "Traceback" not in e
    assert run_dirs(tmp_path) == []


def test_bad_files(tmp_path, cli):
    (tmp_path / "syntax.yaml").write_text("name: x\ndata: {name: moons\noptimizer: sgd\n")
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,x,1\n")
    (tmp_path / "csv.yaml").write_text("data: {name: csv, path: d.csv, label: y}\noptimizer: sgd\n")
    (tmp_path / "labels.csv").write_text("a,y\n1,0\n2,1\n3,2\n")
    (tmp_path / "labels.yaml").write_text("data: {name: csv, path: labels.csv, label: y}\nloss: bce\noptimizer: sgd\n")
    cases = [
        ("missing.yaml", "missing.yaml: config file not found"),
        ("syntax.yaml", "syntax.yaml line 3: YAML syntax error"),
        ("csv.yaml", "line 3, column 2: 'x' is not a number"),
        ("labels.yaml", "loss: "),
    ]
    for name, pattern in cases:
        code, _, e = cli("train", tmp_path / name, "--runs-dir", tmp_path / "runs")
        assert code == 2 and pattern in e and len(e.strip().splitlines()) == 1, e
    assert run_dirs(tmp_path / "runs") == []
    code, _, e = cli("list", "optimisers")
    assert code == 2 and e.startswith("error: FAMILY: 'optimisers' is invalid (accepted: optimizers, ")


def test_sigterm_flushes_and_marks_runs_interrupted(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "optbench", "train", str(CONFIGS / "moons-optimizers.yaml"),
                          "--set", "train.epochs=200000", "--runs-dir", str(tmp_path)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        dirs = run_dirs(tmp_path)
        if dirs and len(read_metrics(dirs[0])) > 50:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 15  # GD, momentum and Adam share one group: all had started
    for d in dirs:
        s = json.loads((d / "summary.json").read_text())
        assert s["status"] == "interrupted"
        rows = read_metrics(d)
        assert len(rows) >= 50 and s["epochs"] == int(rows[-1]["epoch"])
        assert (d / "params.npz").exists()
