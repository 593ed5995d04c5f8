"""Rules of the user's own (optbench/plugins.py): the README's example rule, installed into a test package
with an `optbench.optimizers` entry point, trains, sweeps, lists and is validated like a built-in rule."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from optbench.config import expand
from optbench.errors import OptbenchError
from optbench.optim import OPTIMIZERS
from optbench.groups import make_groups
from optbench.train import Trainer
from optbench.trainers import train_runs

from conftest import ROOT

ENTRY_POINTS = """[optbench.optimizers]
signum = mypkg.rules:signum
broken = mypkg.missing:rule
"""

BAD = '''
from optbench.sgd import sgd

NOT_CALLABLE = 3


def takes_kwargs(*, lr=0.1, **options):
    return sgd(lr=lr)


def no_lr(*, beta=0.9):
    return sgd()


def wrong(*, lr=0.1):
    return 42
'''

BASE = {
    "name": "p",
    "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "seed": 3},
    "model": {"hidden": [5, 2]},
    "train": {"epochs": 15, "batch_size": 32},
    "optimizer": {"name": "signum", "lr": 0.01},
}


def readme_blocks() -> list[str]:
    """The python blocks of the README's section on rules of your own: the rule, then its reference check."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Clipping, per-layer learning rates and rules of your own", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder on sys.path holding package mypkg (the README's rule) and its installed metadata (entry points)."""
    root = tmp_path_factory.mktemp("site")
    pkg = root / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "rules.py").write_text(readme_blocks()[0])
    (pkg / "bad.py").write_text(BAD)
    (pkg / "explodes.py").write_text("raise RuntimeError('the plugin is broken')\n")
    info = root / "mypkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("summary.json"))


def cli(site: Path, *args, cwd=None):
    """`python -m optbench ARGS` with the test package on PYTHONPATH (as a `pip install` would put it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "optbench", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd or ROOT, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_the_readme_rule_matches_its_reference_trajectory(site):
    rule, check = readme_blocks()
    exec(compile(check, "README check", "exec"), {})  # raises if the trajectories differ
    with pytest.raises(AssertionError):  # and the check can fail: another beta is another trajectory
        exec(compile(check.replace("0.8 * m + 0.2", "0.7 * m + 0.3"), "README check", "exec"), {})


def test_entry_point_and_path_name_one_rule_whose_signature_is_its_schema(site):
    cfg = expand({**BASE, "optimizer": {"name": "signum", "lr": 0.02}})[0]
    assert cfg["optimizer"] == {"name": "signum", "lr": 0.02, "beta": 0.9}  # completed with its defaults
    by_path = expand({**BASE, "optimizer": {"name": "mypkg.rules:signum", "lr": 0.02}})[0]
    a, b = train_runs([cfg])[0], train_runs([by_path])[0]
    assert all(a.params[k].tobytes() == b.params[k].tobytes() for k in a.params)
    assert OPTIMIZERS.is_plugin("signum") and "signum" in OPTIMIZERS.installed()
    assert "signum" not in OPTIMIZERS.names()  # names() lists built-ins only: nothing is imported to list them


def test_a_plugin_hyperparameter_varies_per_replica_in_one_group(site):
    cfgs = expand({**BASE, "variants": {"b5": {"optimizer": {"name": "signum", "beta": 0.5}},
                                        "b9": {"optimizer": {"name": "signum", "beta": 0.9}}}})
    groups = make_groups(cfgs)
    assert len(groups) == 1 and len(Trainer(groups[0]).rules) == 1  # beta is an (R, 1) column of one rule
    together = train_runs(cfgs)
    for c, res in zip(cfgs, together):
        alone = train_runs([c])[0]
        assert all(res.params[k].tobytes() == alone.params[k].tobytes() for k in res.params)
    assert together[0].params["W1"].tobytes() != together[1].params["W1"].tobytes()


BAD_NAMES = [
    ({"name": "signum", "bta": 0.5}, r"^optimizer.bta: unknown option for signum \(accepted: lr, beta\)$"),
    ({"name": "signum", "beta": 1.5}, r"^optimizer.beta: 1.5 is invalid: input should be less than 1$"),
    ({"name": "signum", "lr": "0.1"}, r"^optimizer.lr: '0.1' is invalid: .*without quotes"),
    ({"name": "nopkg.rules:signum"}, r"^optimizer.name: 'nopkg.rules:signum' is invalid: no module named 'nopkg' "),
    ({"name": "mypkg.nomodule:signum"}, r"^optimizer.name: 'mypkg.nomodule:signum' is invalid: no module named 'mypkg.nomodule'"),
    ({"name": "mypkg.rules:signun"}, r"^optimizer.name: 'mypkg.rules:signun' is invalid: module mypkg.rules has no attribute 'signun'$"),
    ({"name": "mypkg.bad:NOT_CALLABLE"}, r"^optimizer.name: 'mypkg.bad:NOT_CALLABLE' is invalid: it is int, not a callable factory$"),
    ({"name": "mypkg.bad:takes_kwargs"}, r"is invalid: its factory takes \*\*options; name every hyperparameter"),
    ({"name": "mypkg.bad:no_lr"}, r"is invalid: its factory has no lr keyword"),
    ({"name": "mypkg.bad:wrong"}, r"is invalid: its factory returned int, not an optbench.optim.Optimizer"),
    ({"name": "mypkg.explodes:rule"}, r"is invalid: importing mypkg.explodes failed: RuntimeError: the plugin is broken$"),
    ({"name": "mypkg rules:signum"}, r"is invalid: a rule of your own is written package.module:factory"),
    ({"name": "broken"}, r"^optimizer.name: 'broken' is invalid: the installed entry point broken = mypkg.missing:rule "
                         r"\(optbench.optimizers\) cannot be loaded: no module named 'mypkg.missing'"),
    ({"name": "signumm"}, r"^optimizer.name: unknown optimizer 'signumm' \(accepted: sgd, .*; installed plugins: .*signum"),
]


@pytest.mark.parametrize("section, message", BAD_NAMES)
def test_bad_plugin_input_is_one_line_naming_the_key(site, section, message):
    with pytest.raises(OptbenchError, match=message) as info:
        expand({**BASE, "optimizer": section})
    assert "\n" not in str(info.value)


def test_plugins_are_imported_only_when_named(site):
    code = ("import sys; from optbench.config import expand; "
            f"expand({json.dumps({**BASE, 'optimizer': {'name': 'adam'}})}); "
            "print(sorted(m for m in sys.modules if m.startswith('mypkg') or m in ('optbench.plugins', 'importlib.metadata')))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "mypkg" not in out.stdout and "optbench.plugins" not in out.stdout


def test_a_plugin_trains_and_a_misspelled_hyperparameter_exits_2_from_the_cli(site, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**BASE, "seeds": [0, 1]}))
    code, out, err = cli(site, "train", path, "--runs-dir", tmp_path / "runs", "-q")
    assert code == 0, err
    dirs = run_dirs(tmp_path / "runs")
    assert len(dirs) == 2
    for d in dirs:
        assert json.loads((d / "summary.json").read_text())["status"] == "completed"
        costs = [float(r.split(",")[3]) for r in (d / "metrics.csv").read_text().splitlines()[1:]]
        assert costs[-1] < costs[0]  # it trained
        assert yaml.safe_load((d / "config.yaml").read_text())["optimizer"] == {"name": "signum", "lr": 0.01, "beta": 0.9}
    code, out, err = cli(site, "train", path, "--runs-dir", tmp_path / "runs2", "--set", "optimizer.bta=0.5")
    assert code == 2 and err == "error: optimizer.bta: unknown option for signum (accepted: lr, beta)\n"
    assert not (tmp_path / "runs2").exists()
    code, out, err = cli(site, "train", path, "--runs-dir", tmp_path / "runs2", "--set", "optimizer.name=mypkg.rules:nope")
    assert code == 2 and err.count("\n") == 1 and "module mypkg.rules has no attribute 'nope'" in err


def test_a_plugin_sweeps_over_its_own_hyperparameter(site, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "seeds": [0], "data": {**BASE["data"], "val_fraction": 0.25},
                                    "sweep": {"method": "grid", "params": {"optimizer.beta": [0.5, 0.8]}}}))
    code, out, err = cli(site, "sweep", path, "--runs-dir", tmp_path / "runs", "--jobs", "2", "-q")
    assert code == 0, err
    betas = sorted(yaml.safe_load((d / "config.yaml").read_text())["optimizer"]["beta"] for d in run_dirs(tmp_path / "runs"))
    assert betas == [0.5, 0.8]  # the grid's two trials
    code, out, err = cli(site, "sweep", path, "--runs-dir", tmp_path / "runs", "--set", "sweep.params.optimizer.bta=[0.5]")
    assert code == 2 and "optimizer.bta: unknown option for signum (accepted: lr, beta)" in err


def test_list_shows_installed_plugins_and_their_code(site):
    code, out, err = cli(site, "list", "optimizers")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("signum"))
    assert "lr=0.001, beta=0.9" in row and "mypkg.rules" in row and "Signum: m = beta*m" in row
    assert any(line.startswith("broken") and "does not load" in line for line in out.splitlines())
    code, out, err = cli(site, "list", "optimizers", "signum")
    assert code == 0, err
    assert "a rule of your own (mypkg.rules)" in out and "def signum(*, lr: Positive = 1e-3, beta: Unit = 0.9)" in out
