"""Time optbench's engine against PyTorch (eager, CPU) and scikit-learn on the same work, in one run.

    python bench/bench_engine.py            # every comparison, a table of per-replica-step costs and ratios
    python bench/bench_engine.py --quick    # fewer rounds
    python bench/bench_engine.py --only medium

Every comparison is the same work on both sides (bench/sides.py; tests/test_bench.py checks it), named
by what is timed: "loop" is the whole training loop as a user runs it (shuffles, steps, the epoch's
metrics), "step" the optimizer steps alone on batches gathered once. PyTorch runs as constructed by
default (Adam's per-tensor loop) and in its best CPU forms (foreach, fused Adam; for many replicas
torch.bmm over (R, out, in) weights with fused Adam). The contenders of a comparison take turns
(A, B, A, B, ...) in one process at equal thread counts (threadpoolctl for numpy, torch.set_num_threads);
each ratio is the reference's time over optbench's within one round, shown as the median and range
[min-max] over rounds. Above 1 optbench is faster. Needs torch and scikit-learn (`pip install
torch==2.13.0 scikit-learn`); they are references here, never optbench dependencies.
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

import sides  # noqa: E402
import timing  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = sides.Spec()  # moons 300 (standardized), [2, 5, 2, 1], bce, Adam 7e-4, batch 64 (5 steps an epoch), float64


def medium_spec(where: Path, N: int = 60000, D: int = 784, C: int = 10) -> sides.Spec:
    """784-256-256-10 softmax on N random float32 examples in an .npz, 3 epochs of 30 random batches of 128, float32
    (loops: the first epoch is a warm-up, not timed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    path = where / "medium.npz"
    np.savez(path, X=rng.standard_normal((N, D)).astype(np.float32), y=rng.integers(0, C, N))
    return sides.Spec(data={"name": "npz", "path": str(path), "standardize": False}, hidden=(256, 256),
                      loss="softmax_ce", batch=128, epochs=3, dtype="float32", lr=1e-3, iterations=30, warmup=1)


def comparisons(medium: sides.Spec) -> list[tuple]:
    """(section, name, threads, {contender: runner}); the first contender is optbench, the others its references."""
    t_loop, t_step = TINY.with_(epochs=200), TINY.with_(epochs=100)
    r64 = TINY.with_(R=64, epochs=5, warmup=1)  # 4 timed epochs after one of warm-up, on both sides
    out = [
        ("tiny", "loop, 1 replica", 1, {"optbench": lambda: sides.optbench_loop(t_loop),
                                        **{f"torch {f}": (lambda f=f: sides.torch_loop(t_loop, f)) for f in sides.FORMS},
                                        "scikit-learn fit": lambda: sides.sklearn_loop(t_loop)}),
        ("tiny", "step, 1 replica", 1, {"optbench": sides.optbench_steps(t_step),
                                        **{f"torch {f}": sides.torch_steps(t_step, f) for f in sides.FORMS}}),
        ("tiny", "loop, 64 replicas", 1, {"optbench": lambda: sides.optbench_loop(r64),
                                          "torch bmm+fused": lambda: sides.torch_loop(r64, "bmm"),
                                          "torch fused, a loop over seeds": lambda: sides.torch_loop(r64, "fused")}),
        ("tiny", "step, 64 replicas", 1, {"optbench": sides.optbench_steps(r64),
                                          "torch bmm+fused": sides.torch_steps(r64, "bmm")}),
    ]
    for th in (1, 2):
        out += [
            ("medium", f"loop, {th} thread{'s' * (th > 1)}", th,
             {"optbench": lambda: sides.optbench_loop(medium),
              **{f"torch {f}": (lambda f=f: sides.torch_loop(medium, f)) for f in sides.FORMS}}),
            ("medium", f"step, {th} thread{'s' * (th > 1)}", th,
             {"optbench": sides.optbench_steps(medium), **{f"torch {f}": sides.torch_steps(medium, f) for f in sides.FORMS}}),
        ]
    return out


def cli_wall(reps: int) -> tuple[list[float], int]:
    """`optbench train configs/moons-optimizers.yaml` as a user runs it (15 runs, 5000 epochs, run directories
    written): wall seconds of each repetition and the peak RSS in KiB."""
    # a small launcher runs the command and reports its child's peak: a child forked from this (large) process
    # would count this process's pages as its own until it execs
    launcher = ("import resource, subprocess, sys, time; t = time.perf_counter();"
                " subprocess.run(sys.argv[1:], check=True, capture_output=True);"
                " print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    times, peak = [], 0
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run([sys.executable, "-c", launcher, sys.executable, "-m", "optbench", "train",
                                str(ROOT / "configs" / "moons-optimizers.yaml"), "--runs-dir", d, "--quiet"],
                               check=True, capture_output=True, text=True, cwd=ROOT)
            seconds, kib = p.stdout.split()
            times.append(float(seconds))
            peak = max(peak, int(kib))
    return times, peak


def main(argv=None) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds instead of --rounds")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds per comparison")
    ap.add_argument("--only", default="", help="only comparisons whose section or name contains this text")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = ap.parse_args(argv)
    n_rounds = 3 if args.quick else args.rounds
    for line in envinfo.describe(envinfo.environment(REMOVED)):
        print(line)
    print(f"rounds: {n_rounds} per comparison, contenders alternating; figures are us per replica-step\n", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        medium = medium_spec(Path(tmp))
        for section, name, th, contenders in comparisons(medium):
            if args.only not in f"{section} {name}":
                continue
            torch.set_num_threads(th)
            with threadpool_limits(limits=th):
                runs = timing.rounds(contenders, n_rounds, log=lambda s: print(s, file=sys.stderr, flush=True))
            first = next(iter(runs))
            work = {k: (v[0].steps, v[0].R, v[0].shapes) for k, v in runs.items()}
            assert len(set(work.values())) == 1, f"{section} {name}: the sides did different work: {work}"
            results[f"{section} {name}"] = {
                k: {"us": [r.per_replica_step_us for r in v], "ratio": timing.ratios(v, runs[first])}
                for k, v in runs.items()}
            _print_comparison(section, name, runs, first)
    if not args.only or "cli" in args.only:
        times, peak = cli_wall(2 if args.quick else 3)
        results["cli"] = {"wall_s": times, "peak_kib": peak}
        print(f"\noptbench train configs/moons-optimizers.yaml (15 runs x 5000 epochs, run directories written): "
              f"{timing.fmt(times, ' s')} wall, peak {peak / 1024:.0f} MiB")
    load = os.getloadavg()
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; {os.cpu_count()} cores")
    print("not compared: the sides' set-up (data loading, initialization) and the epoch-0 and final evaluations;"
          " scikit-learn's fit cannot be split, so its figure includes its set-up (a few ms).\n"
          "not quite equal: optbench's medium step gathers its batch from the data (its large-data mode), while"
          " PyTorch's step rows take batches gathered beforehand; the medium loop rows gather on both sides.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def _print_comparison(section: str, name: str, runs: dict, first: str) -> None:
    r0 = runs[first][0]
    print(f"{section} {name}: {r0.steps} steps x {r0.R} replica(s), weights {' '.join('x'.join(map(str, s)) for s in r0.shapes)}")
    for k, v in runs.items():
        us = [r.per_replica_step_us for r in v]
        ratio = "" if k == first else f"   {timing.fmt(timing.ratios(v, runs[first]))}  its time / optbench's"
        print(f"  {k:32s} {statistics.median(us):10.2f} us [{min(us):.2f}-{max(us):.2f}]{ratio}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
