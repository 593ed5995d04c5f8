import subprocess
import sys
from pathlib import Path

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
