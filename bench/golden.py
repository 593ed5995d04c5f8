"""Golden digests of every shipped config's metrics: the proof that a change preserved behaviour.

    python bench/golden.py                       # print one digest per run and one per config
    python bench/golden.py --out before.json     # keep them; after the change:
    python bench/golden.py --check before.json   # exit 1 and name each run whose metrics changed

Each config in configs/ is trained as written (`optbench train`; a sweep config also as `optbench sweep`)
in a temporary runs directory. A run's digest is the SHA-256 of its metrics.csv without the `seconds`
column (wall time is not behaviour) together with its params.npz arrays, keyed by label and seed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_digest(run_dir: Path) -> str:
    """sha256 over metrics.csv minus `seconds` and every params.npz array (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(rows[0]) if name != "seconds"]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[r[i] for i in keep] for r in rows])
    h.update(buf.getvalue().encode())
    params = run_dir / "params.npz"
    if params.is_file():
        with np.load(params, allow_pickle=False) as z:
            for name in sorted(z.files):
                a = z[name]
                h.update(f"{name}:{a.dtype}:{a.shape}".encode())
                h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _run_key(run_dir: Path) -> str:
    summary = json.loads((run_dir / "summary.json").read_text())
    return f"{summary['label']}|s{summary['seed']}" + (f"|f{summary['fold']}" if summary.get("fold") is not None else "")


def digests(command: str, config: Path, workdir: Path) -> dict[str, str]:
    """Train one config with `optbench COMMAND`, return {label|seed: digest} of its runs."""
    runs = workdir / f"{config.stem}-{command}"
    p = subprocess.run([sys.executable, "-m", "optbench", command, str(config), "--runs-dir", str(runs), "-q"],
                       cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{command} {config.name} failed ({p.returncode}): {p.stderr.strip()}")
    out = {}
    for summary in sorted(runs.rglob("summary.json")):
        if ".superseded" not in summary.parts:
            out[_run_key(summary.parent)] = run_digest(summary.parent)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the digests as JSON")
    ap.add_argument("--check", type=Path, help="compare with digests written earlier by --out")
    ap.add_argument("--configs", nargs="*", help="config names (default: every file in configs/)")
    args = ap.parse_args()
    names = args.configs or sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    result: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            config = ROOT / "configs" / f"{name}.yaml"
            commands = ["train", "sweep"] if "sweep:" in config.read_text() else ["train"]
            for command in commands:
                runs = digests(command, config, Path(tmp))
                combined = hashlib.sha256("".join(f"{k}={v}\n" for k, v in sorted(runs.items())).encode()).hexdigest()
                result[f"{name}:{command}"] = {"config": combined, **runs}
                print(f"{name:24s} {command:5s} {len(runs):4d} runs  {combined[:16]}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    if args.check:
        before = json.loads(args.check.read_text())
        changed = [f"{cfg} {run}" for cfg, runs in before.items() if cfg in result
                   for run, d in runs.items() if run != "config" and result[cfg].get(run) != d]
        for line in changed:
            print(f"changed: {line}")
        print(f"{len(changed)} runs changed" if changed else "every run's metrics and parameters are unchanged")
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
