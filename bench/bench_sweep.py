"""Throughput of `optbench sweep` against training the same trials one at a time, in one run.

    python bench/bench_sweep.py            # both studies
    python bench/bench_sweep.py --quick    # fewer epochs and a sample of the one-at-a-time trials

Study 1, the tuning study: GD, momentum and Adam x 8 learning rates x 5 seeds on moons (300 points,
[2, 5, 2, 1], batch 64), 1000 epochs: 120 trials. Timed three ways, each writing nothing or run
directories as noted:
  - `optbench sweep` (run_sweep, --jobs = the cores; run directories written),
  - optbench one trial at a time (execute on one config after another, in this process, BLAS at one
    thread; run directories written), and as a user would without sweeps: `optbench train` on each
    trial's config, a fresh process each (a few timed, extrapolated per trial),
  - PyTorch eager one trial at a time (torch.set_num_threads(1)): the same net, optimizer and mini-batches
    per epoch with the per-epoch cost; a few trials are timed and the time per trial extrapolated to 120.
Study 2, many groups: 12 structurally different groups (3 widths x 4 batch sizes) of 4 Adam runs,
timed as `optbench sweep --jobs 1` and `--jobs 2` in back-to-back pairs (this machine's speed drifts
by up to 2x within seconds, so each pair gives a ratio and the median ratio is reported).

Throughput is trials (runs) per second of wall time: sweeps as the median of --reps passes, trials one
at a time as the median trial times the number of trials. The figures depend on the machine and its
load: run it on a quiet machine, and compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LRS = [round(10 ** (-4 + 3 * i / 7), 6) for i in range(8)]  # 1e-4 .. 1e-1, log-spaced
SEEDS = [0, 1, 2, 3, 4]


def study_config(epochs: int) -> dict:
    """Study 1 as a grid sweep: 3 optimizers x 8 learning rates x 5 seeds."""
    return {
        "name": "bench-tuning",
        "seeds": SEEDS,
        "data": {"name": "moons", "n_samples": 300, "noise": 0.2, "seed": 3},
        "model": {"hidden": [5, 2], "activation": "relu", "init": "he"},
        "loss": "bce",
        "train": {"epochs": epochs, "batch_size": 64},
        "optimizer": {"name": "gd", "lr": 0.0007},
        "variants": {"gd": {}, "momentum": {"optimizer": {"name": "momentum", "mu": 0.9, "form": "ema"}},
                     "adam": {"optimizer": {"name": "adam"}}},
        "sweep": {"method": "grid", "params": {"optimizer.lr": LRS}},
    }


def groups_config(epochs: int) -> dict:
    """Study 2: 12 groups that cannot share a vectorized pass (widths x batch sizes), 4 runs each."""
    return {
        "name": "bench-groups",
        "seeds": [0, 1],
        "data": {"name": "moons", "n_samples": 300, "noise": 0.2, "seed": 3},
        "model": {"hidden": [5, 2]},
        "train": {"epochs": epochs, "batch_size": 64},
        "optimizer": {"name": "adam", "lr": 0.001},
        "sweep": {"method": "grid", "params": {"optimizer.lr": [0.001, 0.01], "model.hidden": [[5, 2], [8, 4], [16, 8]],
                                               "train.batch_size": [16, 32, 64, 128]}},
    }


def write(cfg: dict, where: Path) -> Path:
    path = where / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def sweep_pass(path: Path, jobs: int, where: Path) -> tuple[float, int, dict]:
    """Wall seconds of one `optbench sweep` pass into a fresh directory; the runs trained and their statuses."""
    from optbench.sweep import run_sweep

    runs_dir = Path(tempfile.mkdtemp(dir=where))
    t = time.perf_counter()
    out = run_sweep(path, runs_dir=runs_dir, jobs=jobs)
    return time.perf_counter() - t, sum(out.statuses.values()), dict(out.statuses)


def solo_trials(cfgs: list[dict], where: Path) -> list[float]:
    """Seconds of each trial trained alone by optbench (execute on one config, BLAS at one thread, run directory written)."""
    from threadpoolctl import threadpool_limits

    from optbench.execute import execute

    runs_dir = Path(tempfile.mkdtemp(dir=where))
    times = []
    with threadpool_limits(limits=1):
        for cfg in cfgs:
            t = time.perf_counter()
            execute([cfg], runs_dir)
            times.append(time.perf_counter() - t)
    return times


def time_cli(path: Path, where: Path, n: int) -> tuple[float, int]:
    """Median seconds of `optbench train TRIAL.yaml` (a fresh process, run directory written) over n trials."""
    import subprocess

    from optbench.config import dump_yaml
    from optbench.sweep import plan_sweep

    runs = plan_sweep(path).runs
    times = []
    for i in range(n):
        cfg_path = where / f"trial-{i}.yaml"
        cfg_path.write_text(dump_yaml(runs[i * len(runs) // n].cfg))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "optbench", "train", str(cfg_path), "--runs-dir", str(where / "cli"), "-q"],
                       check=True, capture_output=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
        times.append(time.perf_counter() - t)
    return statistics.median(times), n


def torch_trial(opt_name: str, lr: float, epochs: int, seed: int) -> float:
    """Seconds for one trial in PyTorch eager: the same net, optimizer and per-epoch shuffled batches of 64."""
    import torch

    from optbench.config import load_data

    torch.set_num_threads(1)
    split = load_data(study_config(epochs)["data"])
    X = torch.tensor(split.train.X, dtype=torch.float64)
    y = torch.tensor(split.train.y, dtype=torch.float64).reshape(-1, 1)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2), torch.nn.ReLU(),
                              torch.nn.Linear(2, 1)).double()
    params = net.parameters()
    if opt_name == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    elif opt_name == "momentum":  # the EMA form: v = mu v + (1 - mu) g
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, dampening=0.9)
    else:
        opt = torch.optim.SGD(params, lr=lr)
    lossf = torch.nn.BCEWithLogitsLoss(reduction="sum")
    N, B = len(X), 64
    t = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(N)
        total = 0.0
        for s in range(0, N, B):
            idx = perm[s : s + B]
            opt.zero_grad()
            loss = lossf(net(X[idx]), y[idx])
            (loss / len(idx)).backward()
            opt.step()
            total += loss.item()
        _ = total / N  # the epoch's mean cost, as optbench logs it
    return time.perf_counter() - t


def _burn(_=None) -> float:
    t = time.perf_counter()
    s = 0
    for i in range(10_000_000):
        s += i
    return time.perf_counter() - t


def parallel_ceiling() -> float:
    """What two processes get on this machine now: 2 x (one pure-Python loop alone) / (two at once)."""
    import multiprocessing

    one = statistics.median(_burn() for _ in range(3))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_burn, [0, 1])
        t = time.perf_counter()
        pool.map(_burn, [0, 1])
        two = time.perf_counter() - t
    return 2 * one / two


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 epochs and a fifth of the one-at-a-time trials")
    ap.add_argument("--jobs", type=int, default=None, help="workers of the sweep in study 1 (default: the cores)")
    ap.add_argument("--reps", type=int, default=3, help="rounds; each contender is timed once per round, interleaved")
    ap.add_argument("--pairs", type=int, default=7, help="study 2: pairs of --jobs 1 and --jobs 2 passes, back to back")
    args = ap.parse_args(argv)
    from optbench.execute import execute
    from optbench.sweep import plan_sweep
    from optbench.workers import default_jobs

    epochs = 200 if args.quick else 1000
    jobs = args.jobs or default_jobs()
    reps = args.reps
    where = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"bench_sweep: {os.cpu_count()} cores, load average {load:.2f} at start; python {sys.version.split()[0]}")

    # study 1; the contenders take turns, round by round, so that they see the same machine load
    path = write(study_config(epochs), where)
    cfgs = [r.cfg for r in plan_sweep(path).runs][:: 5 if args.quick else 1]
    execute(cfgs[:1], where / "warm-up")
    torch_trial("adam", 1e-3, 10, 0)
    t_sweep, t_sweep1, t_solo, t_torch = [], [], [], []
    names = ["gd", "momentum", "adam"]
    for i in range(reps):
        s, n, statuses = sweep_pass(path, jobs, where)
        t_sweep.append(s)
        t_sweep1.append(sweep_pass(path, 1, where)[0])
        t_solo += solo_trials(cfgs[i::reps], where)
        t_torch.append(torch_trial(names[i % 3], LRS[4], epochs, i))
    cli_s, cli_n = time_cli(path, where, 3)
    med = statistics.median
    sweep_s, sweep1_s, solo_s, torch_s = med(t_sweep), med(t_sweep1), med(t_solo), med(t_torch)
    thr = {"sweep": n / sweep_s, "sweep1": n / sweep1_s, "solo": 1 / solo_s, "cli": 1 / cli_s, "torch": 1 / torch_s}
    print(f"\nstudy 1: 3 optimizers x 8 learning rates x 5 seeds = {n} trials, moons, {epochs} epochs ({statuses})")
    print(f"  ({reps} interleaved rounds; sweeps: the median pass; one at a time: the median trial x {n})")
    print(f"  optbench sweep --jobs {jobs}:       {sweep_s:8.2f} s   {thr['sweep']:8.2f} trials/s")
    print(f"  optbench sweep --jobs 1:       {sweep1_s:8.2f} s   {thr['sweep1']:8.2f} trials/s")
    print(f"  optbench, one trial at a time: {solo_s * n:8.2f} s   {thr['solo']:8.2f} trials/s  ({len(t_solo)} trials timed)")
    print(f"  optbench train per trial:      {cli_s * n:8.2f} s   {thr['cli']:8.2f} trials/s"
          f"  (the CLI, a process each; {cli_n} trials timed, extrapolated per trial to {n})")
    print(f"  PyTorch eager, one at a time:  {torch_s * n:8.2f} s   {thr['torch']:8.2f} trials/s"
          f"  ({len(t_torch)} trials timed, 1 thread, extrapolated per trial to {n})")
    print(f"  sweep vs optbench one trial at a time: {thr['sweep'] / thr['solo']:6.1f}x  (target >= 10x)")
    print(f"  sweep vs optbench train per trial:     {thr['sweep'] / thr['cli']:6.1f}x")
    print(f"  sweep vs PyTorch one at a time:        {thr['sweep'] / thr['torch']:6.1f}x  (target >= 50x)")
    print(f"  sweep --jobs 1 vs optbench one trial at a time: {thr['sweep1'] / thr['solo']:6.1f}x")

    path2 = write(groups_config(epochs), where)
    j1, j2 = [], []
    for _ in range(args.pairs):  # a --jobs 1 pass and a --jobs 2 pass back to back: one ratio each
        s, n2, _ = sweep_pass(path2, 1, where)
        j1.append(s)
        j2.append(sweep_pass(path2, 2, where)[0])
    ratios = sorted(a / b for a, b in zip(j1, j2))
    print(f"\nstudy 2: {n2} runs in 12 groups that cannot share a pass, {epochs} epochs ({args.pairs} pairs of passes, medians)")
    print(f"  optbench sweep --jobs 1: {med(j1):7.2f} s   {n2 / med(j1):7.2f} runs/s")
    print(f"  optbench sweep --jobs 2: {med(j2):7.2f} s   {n2 / med(j2):7.2f} runs/s")
    print(f"  --jobs 2 vs --jobs 1:    {med(ratios):6.2f}x  (target >= 1.7x; the median of the pairs' ratios,"
          f" which ranged {ratios[0]:.2f}-{ratios[-1]:.2f}x)")
    print(f"  this machine's ceiling now: two busy processes run {parallel_ceiling():.2f}x as fast as one")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"\nload average {load:.2f} at the end; the numbers move with other work on the machine")


if __name__ == "__main__":
    main()
