import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def run_cli(*args, cwd=None, timeout=300):
    """`python -m optbench ARGS` in a subprocess: (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "optbench", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd or ROOT, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def cli():
    return run_cli


def run_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.glob("*/*") if d.is_dir() and not d.name.startswith("."))


def by_key(root: Path) -> dict[str, tuple]:
    """Run key -> (status, metrics rows without the clock, parameters) of every run directory under root; fails on a duplicate."""
    out = {}
    for d in run_dirs(root):
        s = json.loads((d / "summary.json").read_text())
        with open(d / "metrics.csv") as f:
            rows = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
        with np.load(d / "params.npz") as p:
            params = {k: p[k].tobytes() for k in p.files}
        assert s["sweep"]["key"] not in out, f"duplicate run {s['sweep']['key']}"
        out[s["sweep"]["key"]] = (s["status"], rows, params)
    return out
