"""The Fashion-MNIST example config as a user runs it: optbench against the same study written in PyTorch.

    python bench/bench_fashion.py [--rounds 3] [--threads 2] [--data /usr/share/datasets/fashion-mnist]

optbench: `optbench train configs/examples/fashion-mnist-optimizers.yaml` (SGD, momentum, Adam; 784-256-256-10,
float32, 5 epochs of 54000 images, batches of 128; run directories written). PyTorch: bench/torch_fashion.py,
the same work on the same files (load, split, standardize, train, per-epoch metrics, final evaluation, files
written), with torch's defaults and in its best CPU forms (foreach SGD, fused Adam). Each contender is a fresh
process at the same thread count (OPENBLAS_NUM_THREADS / torch.set_num_threads); the three take turns in each
round; wall time and peak RSS are the process's own (a small launcher measures its child). Ratios are
PyTorch's wall over optbench's within a round, median [min-max] over rounds: above 1 optbench is faster.
Needs the data (apt-get install dataset-fashion-mnist) and torch==2.13.0.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import envinfo  # noqa: E402

REMOVED = envinfo.clean_process() if __name__ == "__main__" else {}

import argparse  # noqa: E402
import csv  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import timing  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "examples" / "fashion-mnist-optimizers.yaml"
# runs its arguments as a child and prints the child's wall seconds and peak RSS (KiB): a child forked from the
# bench itself would count the bench's pages until it execs
LAUNCHER = ("import resource, subprocess, sys, time; t = time.perf_counter();"
            " p = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True);"
            " print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
            " print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else '')")


def commands(data: Path, out: Path, threads: int, sets: list[str]) -> dict[str, list[str]]:
    """Each contender's command line, writing under `out`."""
    n_train = [s.split("=", 1)[1] for s in sets if s.startswith("data.n_train=")]
    epochs = [s.split("=", 1)[1] for s in sets if s.startswith("train.epochs=")]
    extra = [*(["--n-train", n_train[0]] if n_train else []), *(["--epochs", epochs[0]] if epochs else [])]
    torch_cmd = [sys.executable, str(ROOT / "bench" / "torch_fashion.py"), "--data", str(data), "--threads", str(threads)]
    return {
        "optbench": [sys.executable, "-m", "optbench", "train", str(CONFIG), "--runs-dir", str(out / "optbench"), "-q",
                     "--set", f"data.path={data}", *[x for s in sets for x in ("--set", s)]],
        "torch default": [*torch_cmd, "--out", str(out / "torch-default"), *extra],
        "torch foreach/fused": [*torch_cmd, "--out", str(out / "torch-best"), "--best", *extra],
    }


def optbench_steps(runs_dir: Path) -> int:
    """Optimizer steps of every run, from the last metrics.csv row of each."""
    total = 0
    for m in runs_dir.glob("*/metrics.csv"):
        with m.open() as f:
            total += int(list(csv.DictReader(f))[-1]["step"])
    return total


def run_once(name: str, cmd: list[str], out: Path, threads: int) -> tuple[float, int, int]:
    """(wall seconds, peak KiB, optimizer steps) of one contender's fresh process."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    p = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], check=True, capture_output=True, text=True,
                       cwd=ROOT, env=env)
    lines = p.stdout.splitlines()
    seconds, kib = lines[0].split()
    steps = optbench_steps(out / "optbench") if name == "optbench" else int(lines[1])
    return float(seconds), int(kib), steps


def study(data: Path, rounds: int, threads: int, sets: list[str], log=print) -> dict[str, dict]:
    """Alternating rounds of all contenders: each one's walls, peaks and steps."""
    res: dict[str, dict] = {}
    for k in range(rounds):
        for name in ("optbench", "torch default", "torch foreach/fused"):
            with tempfile.TemporaryDirectory() as d:
                cmd = commands(data, Path(d), threads, sets)[name]
                wall, kib, steps = run_once(name, cmd, Path(d), threads)
            r = res.setdefault(name, {"wall": [], "peak_mib": [], "steps": set()})
            r["wall"].append(wall)
            r["peak_mib"].append(kib / 1024)
            r["steps"].add(steps)
            log(f"round {k + 1}/{rounds} {name}: {wall:.2f} s, {kib / 1024:.0f} MiB, {steps} steps")
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="optbench --set (n_train, epochs follow)")
    args = ap.parse_args(argv)
    for line in envinfo.describe(envinfo.environment(REMOVED)):
        print(line)
    print(f"threads: {args.threads} on both sides; rounds: {args.rounds}, contenders alternating\n", flush=True)
    res = study(args.data, args.rounds, args.threads, args.sets, log=lambda s: print(s, file=sys.stderr, flush=True))
    steps = {name: r["steps"] for name, r in res.items()}
    assert len({frozenset(s) for s in steps.values()}) == 1, f"the sides did different work: {steps}"
    base = res["optbench"]["wall"]
    print(f"{'':22} {'wall s, median [range]':>26} {'peak MiB':>9} {'ratio to optbench':>22}")
    for name, r in res.items():
        ratio = "1" if name == "optbench" else timing.fmt([t / b for t, b in zip(r["wall"], base)])
        print(f"{name:22} {timing.fmt(r['wall'], ''):>26} {max(r['peak_mib']):9.0f} {ratio:>22}")
    print(f"\nsame work: {next(iter(steps['optbench']))} optimizer steps on every side (3 runs)")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
