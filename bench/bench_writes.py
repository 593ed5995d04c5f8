"""What writing results costs as a study grows: `optbench train` with R seeds, per run and as a share of the wall.

    python bench/bench_writes.py                          # R = 16, 64, 256; this tree
    python bench/bench_writes.py --against /work/main     # and another source tree, alternating with this one
    python bench/bench_writes.py --epochs 300 --rounds 3  # shorter

The command is `optbench train CONFIG --runs-dir TMP -q` in a fresh process, as a user runs it; CONFIG is R seeds
of the moons net ([2, 5, 2, 1], 300 points, batch 64, Adam, float64: one replica-batched group), --epochs epochs.
The child process times, from inside, what the run directories cost (RunWriter.start: creating them;
on_epoch and checkpoint: the rows and checkpoints while training; finish: flushing, parameters, summaries)
and what training costs (Trainer.run less the writer's share of it: steps and epoch metrics). Per-run cost
is the command's wall time (interpreter start-up and imports included) over R.

The contenders (R values, and trees with --against) take turns, the order rotating from round to round;
figures are the median and range [min-max] over rounds, and the R = 256 / R = 64 ratio is formed within a round.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import envinfo  # noqa: E402

REMOVED = envinfo.clean_process() if __name__ == "__main__" else {}

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import yaml  # noqa: E402

import timing  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WRITER = ("start", "on_epoch", "checkpoint", "finish", "fail")  # RunWriter methods: the cost of writing
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def study(R: int, epochs: int) -> dict:
    """R seeds of the tiny moons net: one group of R replicas."""
    return {
        "name": "bench-writes",
        "seeds": list(range(R)),
        "data": {"name": "moons", "n_samples": 300, "noise": 0.2, "seed": 3},
        "model": {"hidden": [5, 2], "activation": "relu", "init": "he"},
        "loss": "bce",
        "train": {"epochs": epochs, "batch_size": 64},
        "optimizer": {"name": "adam", "lr": 0.001},
    }


# ---- the child: the real command, with timers around the writer and the trainer -------------------------


def child(out: Path, argv: list[str]) -> None:
    """Run `optbench ARGV` in this process with RunWriter's methods and Trainer.run timed; seconds to `out`."""
    from optbench import train
    from optbench.runs.writer import RunWriter

    spent = {k: 0.0 for k in (*WRITER, "run")}
    inside = [0.0]  # writer seconds spent inside Trainer.run (its on_epoch callback)
    in_run = [False]

    def timed(name, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                dt = time.perf_counter() - t
                spent[name] += dt
                if name != "run" and in_run[0]:
                    inside[0] += dt
        return wrapper

    for name in WRITER:
        if hasattr(RunWriter, name):
            setattr(RunWriter, name, timed(name, getattr(RunWriter, name)))
    run = train.Trainer.run

    def run_timed(self, *a, **kw):
        in_run[0] = True
        try:
            return timed("run", run)(self, *a, **kw)
        finally:
            in_run[0] = False

    train.Trainer.run = run_timed
    from optbench.cli import app

    t = time.perf_counter()
    try:
        app(argv, standalone_mode=False)
    finally:
        spent["command"] = time.perf_counter() - t
        spent["train"] = spent["run"] - inside[0]
        spent["write"] = sum(spent[k] for k in WRITER)
        out.write_text(json.dumps(spent))


# ---- the parent -------------------------------------------------------------------------------------------


def measure(tree: Path, R: int, epochs: int, tmp: Path) -> dict:
    """One command at R replicas from source tree `tree`: wall seconds (parent-side) and the child's timers."""
    cfg = tmp / f"writes-{R}.yaml"
    cfg.write_text(yaml.safe_dump(study(R, epochs), sort_keys=False))
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        out = Path(d) / "timers.json"
        env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(tree)}
        t = time.perf_counter()
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(out), "--", "train", str(cfg),
                        "--runs-dir", str(Path(d) / "runs"), "-q"], cwd=tree, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t
        got = json.loads(out.read_text())
        n = sum(1 for p in (Path(d) / "runs").iterdir() if not p.name.startswith("."))
        assert n == R, f"{tree}: {n} run directories for R = {R}"
    return {"wall": wall, **got}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--R", type=int, nargs="+", default=[16, 64, 256], help="replica counts")
    ap.add_argument("--epochs", type=int, default=1000, help="epochs per run")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    ap.add_argument("--against", type=Path, action="append", default=[], help="another source tree to time alongside")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args(argv)
    if args.child is not None:
        child(args.child, [a for a in rest if a != "--"])
        return
    for line in envinfo.describe(envinfo.environment(REMOVED)):
        print(line, flush=True)
    trees = {"this tree": ROOT, **{str(t): t.resolve() for t in args.against}}
    for name, t in trees.items():
        head = subprocess.run(["git", "-C", str(t), "log", "-1", "--format=%h %s"], capture_output=True, text=True).stdout.strip()
        print(f"{name}: {t} at {head[:90]}")
    print(f"command: optbench train (R seeds of moons [2, 5, 2, 1], 300 points, batch 64, Adam, float64, "
          f"{args.epochs} epochs) -q, fresh process, BLAS at 1 thread; {args.rounds} alternating rounds\n", flush=True)
    keys = [(name, R) for name in trees for R in args.R]
    got: dict = {k: [] for k in keys}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            k = i % len(keys)
            for name, R in keys[k:] + keys[:k]:
                got[name, R].append(measure(trees[name], R, args.epochs, Path(tmp)))
            print(f"  round {i + 1}/{args.rounds}: " + ", ".join(
                f"{n} R={R} {got[n, R][-1]['wall']:.2f} s" for n, R in keys), file=sys.stderr, flush=True)
    for name in trees:
        print(f"{name}:")
        print(f"  {'R':>4s}  {'per run (ms)':>22s}  {'wall (s)':>20s}  {'training':>19s}  {'writing':>19s}"
              f"  {'creating dirs (s)':>18s}  {'rows (s)':>18s}  {'checkpoints (s)':>18s}")
        for R in args.R:
            ms = got[name, R]
            per = [m["wall"] / R * 1e3 for m in ms]
            share = lambda key: [m[key] / m["wall"] * 100 for m in ms]  # noqa: E731
            print(f"  {R:>4d}  {timing.fmt(per, '', 1):>22s}  {timing.fmt([m['wall'] for m in ms], '', 2):>20s}"
                  f"  {timing.fmt(share('train'), '%', 0):>19s}  {timing.fmt(share('write'), '%', 0):>19s}"
                  f"  {timing.fmt([m['start'] for m in ms], '', 2):>18s}  {timing.fmt([m['on_epoch'] for m in ms], '', 2):>18s}"
                  f"  {timing.fmt([m['checkpoint'] for m in ms], '', 2):>18s}")
        if 64 in args.R and 256 in args.R:
            ratio = [a["wall"] / 256 / (b["wall"] / 64) for a, b in zip(got[name, 256], got[name, 64])]
            print(f"  per-run cost R=256 / R=64 (within a round): {timing.fmt(ratio)}")
    print("\ntraining: Trainer.run less the writer's calls inside it (steps and epoch metrics); writing: every "
          "RunWriter call (creating directories, rows, checkpoints, finishing); shares of the command's wall time, "
          "which also holds start-up, imports, data and set-up")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; the numbers move with other work on the machine")
    if args.json:
        args.json.write_text(json.dumps({f"{n} R={R}": v for (n, R), v in got.items()}, indent=1))


if __name__ == "__main__":
    main()
