"""Golden digests: every shipped config (shortened) and tests/golden/rules.yaml train to the same bytes as when
tests/golden/digests.json was written: metrics.csv without its clock column and every params.npz array.

A refactor of the engine must leave these equal. After a change that is meant to alter the numbers, rewrite
the file from the worktree and say why in the commit:
    OPTBENCH_WRITE_GOLDEN=1 python -m pytest -q -p no:cacheprovider tests/test_golden.py

The last bits of a float depend on the machine: NumPy picks its SIMD loops (AVX2 or AVX-512 exp, tanh, sums)
and OpenBLAS its kernel by CPU at run time. So the table is kept per platform, `platform()` below, and a new
platform's table is recorded from a commit whose results are trusted (main before a refactor), never from the
change under test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from threadpoolctl import threadpool_info

from conftest import CONFIGS, ROOT
from optbench.config import load_experiment
from optbench.execute import execute

sys.path.insert(0, str(ROOT / "bench"))
from golden import run_digest  # noqa: E402 - bench/golden.py: the same digest for full-length configs

GOLDEN = ROOT / "tests" / "golden"
DIGESTS = GOLDEN / "digests.json"
FASHION = Path("/usr/share/datasets/fashion-mnist")  # configs/examples/fashion-mnist-optimizers.yaml's data.path



def _every_variant(config: str, key: str, value) -> list[str]:
    """--set overrides of `key` in every variant of `config` (for configs whose variants set it themselves)."""
    variants = yaml.safe_load((ROOT / config).read_text())["variants"]
    return [f"variants.{name}.{key}={value}" for name in variants]


# config (relative to the repository) -> the overrides that make it short; the rest of the config as shipped
SHORT = {
    "configs/adagrad-stall.yaml": ["train.epochs=15"],
    "configs/batch-size-sharpness.yaml": ["train.epochs=12", "variants.full.train.epochs=30"],  # sharpness at 0 and the end
    "configs/dlai-optimizers.yaml": ["train.epochs=15"],
    "configs/finetune-moons.yaml": ["train.epochs=5", "variants.source.train.epochs=5"],
    "configs/init-depth.yaml": ["train.epochs=6"],
    "configs/moons-lr-decay.yaml": ["train.epochs=12", "schedule.interval=4"],
    "configs/moons-optimizers.yaml": ["train.epochs=15"],
    "configs/moons-sweep.yaml": ["train.epochs=10"],
    "configs/modern-optimizers.yaml": ["train.epochs=5"],
    "configs/ravine-trajectories.yaml": [],  # 100 steps of a 2-D point: as shipped
    "configs/sine-regression.yaml": ["train.epochs=10"],
    "configs/spiral-regularization.yaml": ["train.epochs=5"],
    "configs/examples/fashion-mnist-optimizers.yaml": ["train.epochs=1", "data.n_train=1500"],
    "configs/examples/sklearn-strategies.yaml": _every_variant("configs/examples/sklearn-strategies.yaml", "train.epochs", 6),
    "tests/golden/rules.yaml": [],
}
# shipped configs whose data is not on this machine, with where it would come from
NO_DATA = {
    "configs/examples/cs231n-cifar10-optimizers.yaml": "CIFAR-10's python batches (163 MB download), not shipped",
}
def platform() -> str:
    """What decides the last bits: NumPy's version and SIMD extensions in use, the BLAS and its kernel."""
    from numpy._core._multiarray_umath import __cpu_features__ as feats  # what NumPy's dispatch found

    simd = "AVX512_SKX" if feats.get("AVX512_SKX") else "AVX2" if feats.get("AVX2") else "baseline"
    blas = next((f"{i['internal_api']} {i['version']} {i.get('architecture')}" for i in threadpool_info()
                 if i["user_api"] == "blas" and "numpy" in i["filepath"]), "unknown BLAS")
    return f"numpy {np.__version__} {simd}, {blas}"


def digests(config: str, runs_dir: Path) -> dict[str, dict[str, str]]:
    """Train one config shortened; run key (label/s<seed>) -> its status and the sha256 of its metrics.csv
    without the clock column (`seconds`) and its params.npz arrays (bench/golden.py's run_digest)."""
    cfgs = load_experiment(ROOT / config, sets=SHORT[config])
    outcomes, interrupted = execute(cfgs, runs_dir)
    assert not interrupted and len(outcomes) == len(cfgs)
    out = {}
    for o in outcomes:
        key = f"{o.cfg['label']}/s{o.cfg['seed']}"
        assert key not in out, key
        out[key] = {"status": o.result.status, "digest": run_digest(o.path)}
    return out


def test_every_shipped_config_is_covered():
    shipped = {str(p.relative_to(ROOT)) for p in CONFIGS.rglob("*.yaml")}
    assert shipped == (set(SHORT) | set(NO_DATA)) - {"tests/golden/rules.yaml"}
    assert FASHION.is_dir()  # the Fashion-MNIST case trains on the real files
    for config in NO_DATA:
        assert not (ROOT / config).parent.joinpath("cifar-10-batches-py").exists(), f"{config}: data present, add it to SHORT"


@pytest.mark.parametrize("config", sorted(SHORT))
def test_golden_digests(config, tmp_path):
    got, here = digests(config, tmp_path), platform()
    tables = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
    if os.environ.get("OPTBENCH_WRITE_GOLDEN"):
        tables.setdefault(here, {})[config] = got
        DIGESTS.write_text(json.dumps(tables, indent=1, sort_keys=True) + "\n")
    assert here in tables, (f"no golden digests for this platform ({here}; known: {sorted(tables)}): record them "
                            f"from a trusted commit with OPTBENCH_WRITE_GOLDEN=1 (see this file's docstring)")
    expected = tables[here][config]
    assert set(got) == set(expected)
    changed = sorted(k for k in got if got[k] != expected[k])
    assert not changed, f"{config}: {len(changed)} of {len(got)} runs changed, e.g. {changed[:3]}"
