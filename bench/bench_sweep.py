"""A whole tuning study as a user runs it: `optbench sweep` against a PyTorch script, at equal core counts, measured.

    python bench/bench_sweep.py                 # study 1 at 1 and 2 cores, study 2
    python bench/bench_sweep.py --epochs 100    # a longer study (the default is short: see below)

Study 1, the tuning study: GD, momentum (EMA form) and Adam x 8 learning rates x 5 seeds on moons (300
points, [2, 5, 2, 1], batch 64): 120 trials. Both sides run in a fresh process as a user would, and
both write every trial's per-epoch metrics and final parameters:
  - `optbench sweep STUDY.yaml --jobs J` (J = 1 or 2; BLAS at one thread per process),
  - a PyTorch script training the same 120 trials (same data, net, optimizer, learning rate, shuffled
    batches per epoch, the epoch's mean cost and accuracy), one trial after another in each of J
    processes (torch.set_num_threads(1) each), writing a metrics.csv and a params.npz per trial.
Every trial of both sides is trained and timed: nothing is extrapolated. The study is shorter than a
real one (--epochs, default 50, instead of 1000) so that several rounds fit in a few minutes; both
sides grow linearly in epochs past their start-up, which the PyTorch side reports separately (its
interpreter, `import torch` and worker start), so longer studies move the ratio towards its
"training only" figure. The sides alternate (optbench, PyTorch, optbench, ...) and each ratio is formed
within a round: median [min-max] over --rounds.
Not compared: a PyTorch user batching the 40 trials of one optimizer into one bmm model (bench_engine.py
and bench_scaling.py measure that form): it needs a per-replica learning rate, which torch.optim does not take.

Study 2, many groups: 12 structurally different groups (3 widths x 4 batch sizes) of 4 Adam runs, as
`optbench sweep --jobs 1` and `--jobs 2` in back-to-back pairs, next to what two busy processes get on
this machine now.
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

T_START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
LRS = [round(10 ** (-4 + 3 * i / 7), 6) for i in range(8)]  # 1e-4 .. 1e-1, log-spaced
SEEDS = [0, 1, 2, 3, 4]
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


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


def optbench_sweep(path: Path, jobs: int, where: Path) -> tuple[float, int]:
    """Wall seconds of `python -m optbench sweep PATH --jobs J` into a fresh directory (a user's command), runs written."""
    runs_dir = Path(tempfile.mkdtemp(dir=where))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "optbench", "sweep", str(path), "--jobs", str(jobs), "--runs-dir", str(runs_dir), "-q"],
                   check=True, capture_output=True, cwd=ROOT, env={**os.environ, **ONE_THREAD})
    seconds = time.perf_counter() - t
    n = sum(1 for _ in runs_dir.rglob("metrics.csv"))
    return seconds, n


def torch_study(path: Path, procs: int, where: Path) -> tuple[float, dict]:
    """Wall seconds of this file's PyTorch script (`--torch-study`) on the study's trials in `procs` processes."""
    out = Path(tempfile.mkdtemp(dir=where))
    t = time.perf_counter()
    p = subprocess.run([sys.executable, __file__, "--torch-study", str(path), "--procs", str(procs), "--out", str(out)],
                       check=True, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **ONE_THREAD})
    seconds = time.perf_counter() - t
    return seconds, json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the PyTorch script (a fresh process)


def _torch_trial(job: tuple) -> int:
    """One trial in PyTorch eager: per epoch a shuffle, the steps, the epoch's mean cost and accuracy; a metrics.csv
    row per epoch and the final parameters in params.npz. Returns the steps taken."""
    import csv

    import numpy as np
    import torch

    from optbench.config import load_data

    cfg, out = job
    torch.set_num_threads(1)
    split = load_data(cfg["data"])
    X = torch.tensor(split.train.X, dtype=torch.float64)
    y = torch.tensor(split.train.y, dtype=torch.float64).reshape(-1, 1)
    torch.manual_seed(cfg["seed"])
    dims = [X.shape[1], *cfg["model"]["hidden"], 1]
    layers = []
    for i, o in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(i, o, dtype=torch.float64), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    o, lr = cfg["optimizer"], cfg["optimizer"]["lr"]
    if o["name"] == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    elif o["name"] == "momentum":  # the EMA form: v = mu v + (1 - mu) g
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=o["mu"], dampening=o["mu"])
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr)
    lossf = torch.nn.BCEWithLogitsLoss()
    N, B = len(X), cfg["train"]["batch_size"]
    gen = torch.Generator().manual_seed(cfg["seed"])
    out.mkdir(parents=True)
    steps, t0 = 0, time.perf_counter()
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "lr", "train_cost", "train_acc", "seconds"])
        for e in range(1, cfg["train"]["epochs"] + 1):
            perm = torch.randperm(N, generator=gen)
            cost = torch.zeros((), dtype=torch.float64)
            correct = torch.zeros((), dtype=torch.long)
            for s in range(0, N, B):
                idx = perm[s : s + B]
                opt.zero_grad()
                Z = net(X[idx])
                loss = lossf(Z, y[idx])
                loss.backward()
                opt.step()
                steps += 1
                with torch.no_grad():
                    cost += loss * len(idx)
                    correct += ((Z > 0).to(torch.float64) == y[idx]).sum()
            w.writerow([e, steps, lr, (cost / N).item(), (correct / N).item(), time.perf_counter() - t0])
    np.savez(out / "params.npz", **{k: v.detach().numpy() for k, v in net.state_dict().items()})
    return steps


def _warm(_) -> int:
    import torch  # noqa: F401

    import optbench.config  # noqa: F401

    return 0


def torch_script(path: Path, procs: int, out: Path) -> None:
    """The PyTorch side of study 1: every trial of the sweep, in `procs` processes; prints its own timings as JSON."""
    import multiprocessing

    import torch  # noqa: F401 - imported before the clock: part of the start-up a user pays

    from optbench.sweep import plan_sweep

    t_import = time.perf_counter()
    jobs = [(r.cfg, out / f"trial-{i:04d}") for i, r in enumerate(plan_sweep(path).runs)]
    if procs == 1:
        t_train = time.perf_counter()
        steps = [_torch_trial(j) for j in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            pool.map(_warm, range(procs))  # the workers have started and imported torch: start-up, not training
            t_train = time.perf_counter()
            steps = pool.map(_torch_trial, jobs, chunksize=1)
    done = time.perf_counter()
    print(json.dumps({"trials": len(jobs), "steps": sum(steps), "import_s": t_import - T_START, "train_s": done - t_train}))


# ---------------------------------------------------------------- study 2 and the machine's parallel ceiling


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
    ap.add_argument("--epochs", type=int, default=50, help="epochs per trial (a real study: 1000)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of each pair")
    ap.add_argument("--cores", default="1,2", help="core counts to compare at (optbench --jobs J against J PyTorch processes)")
    ap.add_argument("--pairs", type=int, default=5, help="study 2: pairs of --jobs 1 and --jobs 2 passes")
    ap.add_argument("--torch-study", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--procs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.torch_study:
        return torch_script(args.torch_study, args.procs, args.out)
    for line in envinfo.describe(envinfo.environment(REMOVED)):
        print(line)
    where = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    path = write(study_config(args.epochs), where)
    print(f"\nstudy 1: 3 optimizers x 8 learning rates x 5 seeds = 120 trials, moons, {args.epochs} epochs, every trial"
          f" trained and written on both sides; {args.rounds} alternating rounds per core count", flush=True)
    med = statistics.median
    for cores in map(int, args.cores.split(",")):
        ours, theirs, inside, ratio = [], [], [], []
        for _ in range(args.rounds):
            s, n = optbench_sweep(path, cores, where)
            t, info = torch_study(path, cores, where)
            assert n == info["trials"] == 120, (n, info)
            ours.append(s)
            theirs.append(t)
            inside.append(info)
            ratio.append(t / s)
        train = [i["train_s"] for i in inside]
        start = [t - i["train_s"] for t, i in zip(theirs, inside)]
        print(f"  {cores} core(s): optbench sweep --jobs {cores}: {med(ours):7.2f} s [{min(ours):.2f}-{max(ours):.2f}]"
              f" wall ({120 / med(ours):.1f} trials/s)")
        print(f"             PyTorch, {cores} process(es):  {med(theirs):7.2f} s [{min(theirs):.2f}-{max(theirs):.2f}]"
              f" wall, of which training {med(train):.2f} s and start-up {med(start):.2f} s")
        print(f"             PyTorch's wall / optbench's: {timing.fmt(ratio)};"
              f" PyTorch's training alone / optbench's wall: {timing.fmt([a / b for a, b in zip(train, ours)])}", flush=True)

    path2 = write(groups_config(args.epochs), where)
    j1, j2 = [], []
    for _ in range(args.pairs):
        j1.append(optbench_sweep(path2, 1, where)[0])
        s, n2 = optbench_sweep(path2, 2, where)
        j2.append(s)
    print(f"\nstudy 2: {n2} runs in 12 groups that cannot share a pass, {args.epochs} epochs ({args.pairs} pairs)")
    print(f"  optbench sweep --jobs 1: {med(j1):7.2f} s,  --jobs 2: {med(j2):7.2f} s;"
          f"  --jobs 2 vs --jobs 1: {timing.fmt([a / b for a, b in zip(j1, j2)])}")
    print(f"  this machine's ceiling now: two busy processes run {parallel_ceiling():.2f}x as fast as one")
    load = os.getloadavg()
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; the numbers move with other work on the machine")


if __name__ == "__main__":
    main()
