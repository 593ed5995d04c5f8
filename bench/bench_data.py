"""Memory and time of loading MNIST-sized data: `optbench train` on a 60000 x 784 float32 set, NPZ and IDX.

    python bench/bench_data.py                 # both formats, 2 epochs, 784-256-256-10, float32
    python bench/bench_data.py --epochs 1 --formats npz
    python bench/bench_data.py --tree /path/to/other/checkout --tree .   # before and after, alternating

The data is made in a temporary folder (random float32 features, 10 classes); each case runs
`optbench train` as a user would (run directories written, --quiet) under a small launcher that reports
the child's peak RSS (ru_maxrss of RUSAGE_CHILDREN: a child forked from this process would count its
pages until it execs). Printed per case:
  data       N x D x itemsize of the float32 features as stored (the file holds the same bytes)
  peak       peak RSS of the whole command, and peak / data (target: under 2.5)
  epoch      training seconds per epoch, from metrics.csv's `seconds` column ((s_E - s_0) / E)
  outside    wall - training seconds: import, validation, loading, building the trainer, writing
             (an upper bound on the load time; target: under one epoch)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import envinfo  # noqa: E402

REMOVED = envinfo.clean_process() if __name__ == "__main__" else {}

import argparse  # noqa: E402
import csv  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
N, D, K = 60000, 784, 10
LAUNCHER = ("import resource, subprocess, sys, time; t = time.perf_counter();"
            " p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
            " sys.stderr.write(p.stderr); sys.exit(p.returncode) if p.returncode else None;"
            " print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def make_data(folder: Path, formats: list[str]) -> dict[str, dict]:
    """Per format, its data section; the features float32 in [0, 1), the labels 0..9."""
    rng = np.random.default_rng(0)
    X = rng.random((N, D), dtype=np.float32)
    y = rng.integers(0, K, N).astype(np.uint8)
    out = {}
    if "npz" in formats:
        np.savez(folder / "mnist-sized.npz", X=X, y=y)
        out["npz"] = {"name": "npz", "path": str(folder / "mnist-sized.npz")}
    if "idx" in formats:  # LeCun's format: magic 0x00000D03 (float32, 3 dimensions), big-endian sizes and values
        with open(folder / "images-idx3", "wb") as f:
            f.write(struct.pack(">4B3I", 0, 0, 0x0D, 3, N, 28, 28))
            f.write(X.astype(">f4").tobytes())
        with open(folder / "labels-idx1", "wb") as f:
            f.write(struct.pack(">4BI", 0, 0, 0x08, 1, N) + y.tobytes())
        out["idx"] = {"name": "idx", "images": str(folder / "images-idx3"), "labels": str(folder / "labels-idx1")}
    return out


def config(data: dict, epochs: int) -> str:
    import yaml

    return yaml.safe_dump({
        "name": "bench-data", "seeds": [0], "data": {**data, "val_fraction": 0.1},
        "model": {"hidden": [256, 256], "activation": "relu", "init": "he"}, "loss": "softmax_ce",
        "train": {"epochs": epochs, "batch_size": 128, "dtype": "float32"},
        "optimizer": {"name": "adam", "lr": 0.001},
    }, sort_keys=False)


def run_case(folder: Path, fmt: str, data: dict, epochs: int, tree: Path = ROOT) -> dict:
    """`optbench train` (the package of `tree`: python -m from its root) on one format, timed and measured."""
    cfg = folder / f"bench-{fmt}.yaml"
    cfg.write_text(config(data, epochs))
    runs = Path(tempfile.mkdtemp(dir=folder, prefix=f"runs-{fmt}-"))
    p = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-m", "optbench", "train", str(cfg),
                        "--runs-dir", str(runs), "--quiet"], capture_output=True, text=True, cwd=tree)
    if p.returncode:
        raise SystemExit(f"optbench train failed on {fmt}:\n{p.stderr}")
    wall, kib = p.stdout.split()
    (metrics,) = runs.glob("*/metrics.csv")
    with open(metrics) as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
    training = seconds[-1]
    return {"format": fmt, "wall": float(wall), "peak": int(kib) * 1024, "training": training,
            "epoch": (seconds[-1] - seconds[0]) / (len(seconds) - 1), "outside": float(wall) - training}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", nargs="+", choices=["npz", "idx"], default=["npz", "idx"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--tree", type=Path, action="append", help="an optbench checkout to run (repeatable: the "
                    "trees take turns per format); default: this one")
    ap.add_argument("--rounds", type=int, default=1, help="repetitions of every case")
    args = ap.parse_args(argv)
    trees = [t.resolve() for t in args.tree or [ROOT]]
    for line in envinfo.describe(envinfo.environment(REMOVED)):
        print(line, flush=True)
    size = N * D * 4
    print(f"data: {N} x {D} float32 = {size / 2**20:.0f} MiB; net 784-256-256-10, adam, batch 128, float32, "
          f"val_fraction 0.1, {args.epochs} epoch(s)")
    for i, t in enumerate(trees):
        print(f"tree {i}: {t}" + (f" ({_commit(t)})" if _commit(t) else ""))
    print(f"{'format':<7}{'tree':>5}{'peak MiB':>10}{'peak/data':>11}{'wall s':>9}{'epoch s':>9}{'outside s':>11}"
          f"{'outside/epoch':>15}")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for fmt, data in make_data(folder, args.formats).items():
            for _ in range(args.rounds):
                for i, tree in enumerate(trees):
                    r = run_case(folder, fmt, data, args.epochs, tree)
                    print(f"{fmt:<7}{i:>5}{r['peak'] / 2**20:>10.0f}{r['peak'] / size:>11.2f}{r['wall']:>9.2f}"
                          f"{r['epoch']:>9.2f}{r['outside']:>11.2f}{r['outside'] / r['epoch']:>15.2f}", flush=True)
    load = envinfo.environment(REMOVED)["load"]
    if load:
        print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _commit(tree: Path) -> str:
    p = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    return p.stdout.strip()[:60] if p.returncode == 0 else ""


if __name__ == "__main__":
    main()
