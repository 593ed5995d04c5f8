"""Time optbench's engine against PyTorch (eager, CPU) and scikit-learn on the same work, in one run.

    python bench/bench_engine.py            # every case, a table of times and ratios
    python bench/bench_engine.py --quick    # fewer repetitions

Each case runs in its own subprocess (so peak memory is its own) with the BLAS/OpenMP thread count
fixed by environment for NumPy and by torch.set_num_threads for PyTorch. On a shared machine the
speed drifts by up to 2x over minutes, so the cases run in interleaved rounds (every case once per
round) and each figure is the median over rounds of a case's best repetition within its round, in
microseconds per optimizer step. The replica ratio (64 vs 1) is timed within one process in alternating
pairs, next to the same ratio for the step's math written out by hand in NumPy (the floor). Needs torch and scikit-learn installed
(`pip install torch==2.13.0 scikit-learn`); they are references here, never optbench dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPS = 5


def _median_time(fn, reps: int) -> float:
    """The best of `reps` timings (the least disturbed by other load); rounds take the median of these."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# ---------------------------------------------------------------- tiny: moons [2, 5, 2, 1], Adam, batch 64


def _tiny_cfgs(R: int, epochs: int, opt: str = "adam"):
    from optbench.config import load_experiment

    return load_experiment(ROOT / "configs" / "moons-optimizers.yaml", sets=[
        f"train.epochs={epochs}", f"variants={{{opt}: {{optimizer: {{name: {opt}, lr: 0.0007}}}}}}", f"seeds={list(range(R))}",
    ])


def case_tiny_optbench(R: int = 1, epochs: int = 400, reps: int = REPS) -> dict:
    """The whole training loop (shuffles, steps, per-epoch metrics; no file I/O) per step, and the bare step."""
    from optbench.train import Trainer

    cfgs = _tiny_cfgs(R, epochs)
    Trainer(cfgs).run()  # warm-up
    loop = _median_time(lambda: Trainer(cfgs).run(), reps)
    bare, n = _bare_steps(Trainer(cfgs), 7e-4, epochs)
    n_steps = epochs * n
    return {"loop_us": loop / n_steps * 1e6, "step_us": _median_time(bare, reps) / n_steps * 1e6}


def _bare_steps(tr, lr: float, epochs: int = 1):
    """A function running `epochs` x the trainer's compiled steps plus the first rule's update (no per-epoch
    work: shuffles, metrics, writing), and the number of steps per epoch."""
    import numpy as np

    steps = tr._plan()
    tr._gather(1)
    opt = tr.rules[0].opt
    state = opt.init(tr.theta)
    lr_col = np.full((tr.R, 1), lr, dtype=tr.dtype)
    buf = np.empty_like(tr.theta)

    def bare():
        nonlocal state
        for _ in range(epochs):
            for f in steps:
                f()
                d, state = opt.update(tr.grad, state, tr.theta)
                np.multiply(d, lr_col, out=buf)
                tr.theta -= buf

    bare()  # warm-up
    return bare, len(steps)


def _minimal_step(R: int, B: int = 64):
    """The NumPy floor: the tiny step's math written out by hand for R replicas (features-major (n, R, B)
    storage, biases folded, every buffer preallocated, Adam in place), with none of optbench's generality."""
    import numpy as np

    rng = np.random.default_rng(0)
    mm, mul = np.matmul, np.multiply
    A0s = np.ones((3, R, B))
    A0s[:2] = rng.standard_normal((2, R, B))
    A0 = A0s.transpose(1, 0, 2)
    T = np.sign(rng.standard_normal((1, R, B)))
    theta = rng.standard_normal((R, 30)) * 0.5
    grad = np.zeros_like(theta)
    W1, W2, W3 = theta[:, :15].reshape(R, 5, 3), theta[:, 15:27].reshape(R, 2, 6), theta[:, 27:].reshape(R, 1, 3)
    G1, G2, G3 = grad[:, :15].reshape(R, 5, 3), grad[:, 15:27].reshape(R, 2, 6), grad[:, 27:].reshape(R, 1, 3)
    I1s, I2s = np.ones((6, R, B)), np.ones((3, R, B))
    I1, I2 = I1s.transpose(1, 0, 2), I2s.transpose(1, 0, 2)
    H1c, H2c, H1, H2 = I1s[:5], I2s[:2], I1[:, :5], I2[:, :2]
    Zs, dZs, dH2s, dH1s = np.empty((1, R, B)), np.empty((1, R, B)), np.empty((2, R, B)), np.empty((5, R, B))
    Z, dZ, dH2, dH1 = (a.transpose(1, 0, 2) for a in (Zs, dZs, dH2s, dH1s))
    m1, m2 = np.empty((5, R, B), bool), np.empty((2, R, B), bool)
    W3T, W2T = W3[:, :, :2].swapaxes(1, 2), W2[:, :, :5].swapaxes(1, 2)
    I1T, I2T, A0T = I1.swapaxes(1, 2), I2.swapaxes(1, 2), A0.swapaxes(1, 2)
    M, V, d, b = (np.zeros_like(theta) for _ in range(4))
    t = [0]

    def step():
        mm(W1, A0, out=H1)
        np.maximum(H1c, 0, out=H1c)
        mm(W2, I1, out=H2)
        np.maximum(H2c, 0, out=H2c)
        mm(W3, I2, out=Z)
        mul(Zs, 0.5, out=dZs)
        np.tanh(dZs, out=dZs)
        np.subtract(dZs, T, out=dZs)
        mul(dZs, 0.5 / B, out=dZs)
        mm(dZ, I2T, out=G3)
        mul(W3T, dZ, out=dH2)
        np.greater(H2c, 0, out=m2)
        mul(dH2s, m2, out=dH2s)
        mm(dH2, I1T, out=G2)
        mm(W2T, dH2, out=dH1)
        np.greater(H1c, 0, out=m1)
        mul(dH1s, m1, out=dH1s)
        mm(dH1, A0T, out=G1)
        t[0] += 1
        c = 0.1 / (1 - 0.9 ** t[0])
        k = (0.001 / (1 - 0.999 ** t[0])) ** 0.5 / c
        mul(M, 0.9, out=M)
        np.add(M, grad, out=M)
        mul(grad, grad, out=b)
        mul(V, 0.999, out=V)
        np.add(V, b, out=V)
        np.sqrt(V, out=d)
        mul(d, k, out=d)
        np.add(d, 1e-8 / c, out=d)
        np.divide(M, d, out=d)
        mul(d, 7e-4, out=d)
        np.subtract(theta, d, out=theta)

    return step


def case_tiny_replicas(R: int = 64, pairs: int = 101, reps: int = REPS) -> dict:
    """R replicas against one, timed in alternation in one process, so that both sides of each ratio see
    the same machine speed (it drifts by up to 2x within seconds here): the median of the per-pair ratios.
    Steps: `pairs` pairs of a few ms each. Whole training loops (shuffles, steps, epoch metrics; set-up
    and final evaluation excluded): a fifth as many pairs of about 50 ms. And the floor: the same ratio
    for the step's math written by hand (_minimal_step), in pairs too."""
    from optbench.train import Trainer

    sides = {}
    for n, epochs in ((1, 40), (R, 8)):
        bare, steps = _bare_steps(Trainer(_tiny_cfgs(n, epochs)), 7e-4, epochs)
        sides[n] = (bare, epochs * steps, steps)
    loops = {}
    for n, epochs in ((1, 250), (R, 50)):
        cfgs = _tiny_cfgs(n, epochs)
        Trainer(cfgs).run()  # warm-up

        def timed(cfgs=cfgs):
            marks = []
            Trainer(cfgs).run(on_epoch=lambda rec: marks.append(time.perf_counter()))
            return (marks[-1] - marks[0]) / (len(marks) - 1)  # epoch 0's row to the last: the epochs alone
        loops[n] = (timed, sides[n][2])
    floor = {n: _minimal_step(n) for n in (1, R)}
    step_r, loop_r, floor_r = [], [], []
    for i in range(pairs):
        t = {}
        for n, (bare, n_steps, _) in sides.items():
            t0 = time.perf_counter()
            bare()
            t[n] = (time.perf_counter() - t0) / n_steps
        step_r.append(t[R] / t[1])
        for n, f in floor.items():
            t0 = time.perf_counter()
            for _ in range(sides[n][1]):
                f()
            t[n, "floor"] = (time.perf_counter() - t0) / sides[n][1]
        floor_r.append(t[R, "floor"] / t[1, "floor"])
        if i % 5 == 0:
            per_epoch = {n: f() for n, (f, _) in loops.items()}
            loop_r.append(per_epoch[R] / per_epoch[1])
    q = statistics.quantiles(step_r, n=4)
    return {"step_ratio": statistics.median(step_r), "loop_ratio": statistics.median(loop_r),
            "step_ratio_q1": q[0], "step_ratio_q3": q[2], "floor_ratio": statistics.median(floor_r)}


def case_tiny_torch(epochs: int = 100, reps: int = REPS) -> dict:
    import torch

    from optbench.config import load_data

    cfg = _tiny_cfgs(1, epochs)[0]
    split = load_data(cfg["data"])
    X = torch.tensor(split.train.X, dtype=torch.float64)
    y = torch.tensor(split.train.y, dtype=torch.float64).reshape(-1, 1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2), torch.nn.ReLU(),
                              torch.nn.Linear(2, 1)).double()
    opt = torch.optim.Adam(net.parameters(), lr=7e-4)
    lossf = torch.nn.BCEWithLogitsLoss()
    N, B = len(X), 64

    def train():
        for _ in range(epochs):
            perm = torch.randperm(N)
            for s in range(0, N, B):
                idx = perm[s : s + B]
                opt.zero_grad()
                lossf(net(X[idx]), y[idx]).backward()
                opt.step()

    train()
    n_steps = epochs * -(-N // B)
    return {"step_us": _median_time(train, reps) / n_steps * 1e6}


def case_tiny_sklearn(epochs: int = 200, reps: int = REPS) -> dict:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from optbench.config import load_data

    cfg = _tiny_cfgs(1, epochs)[0]
    split = load_data(cfg["data"])
    X, y = split.train.X, split.train.y

    def fit():
        clf = MLPClassifier(hidden_layer_sizes=(5, 2), activation="relu", solver="adam", learning_rate_init=7e-4,
                            batch_size=64, max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, shuffle=True,
                            random_state=0, alpha=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)

    fit()
    n_steps = epochs * -(-len(X) // 64)
    return {"step_us": _median_time(fit, reps) / n_steps * 1e6}


# ---------------------------------------------------------------- medium: 784-256-256-10, softmax, float32


def _medium_data(N: int = 60000, D: int = 784, C: int = 10):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.standard_normal((N, D)).astype(np.float32), rng.integers(0, C, N)


def _medium_trainer(opt: str, B: int, n_steps: int):
    """An optbench Trainer on 60,000 random samples (written to an .npz), one 'epoch' of n_steps random batches."""
    import numpy as np

    from optbench.config import expand
    from optbench.train import Trainer

    X, y = _medium_data()
    path = Path(tempfile.mkdtemp()) / "medium.npz"
    np.savez(path, X=X, y=y)
    cfgs = expand({"name": "medium", "data": {"name": "npz", "path": str(path), "standardize": False},
                   "model": {"hidden": [256, 256], "activation": "relu", "init": "he"}, "loss": "softmax_ce",
                   "optimizer": {"name": opt, "lr": 1e-3},
                   "train": {"epochs": 1, "batch_size": B, "dtype": "float32", "sampling": "random",
                             "iterations_per_epoch": n_steps, "diverge_factor": None}})
    return Trainer(cfgs)


def case_medium_optbench(opt: str = "adam", B: int = 128, n_steps: int = 60, reps: int = REPS) -> dict:

    run, n = _bare_steps(_medium_trainer(opt, B, n_steps), 1e-3)
    out = {"step_us": _median_time(run, reps) / n * 1e6}
    if opt == "sgd":
        out["matmul_us"] = _matmul_sum(B)
    return out


def _matmul_sum(B: int, reps: int = REPS) -> float:
    """The time of the step's eight matmuls alone (3 forward, 3 weight gradients, 2 back-propagations)."""
    import numpy as np

    rng = np.random.default_rng(0)
    f = np.float32
    A0, A1, A2 = (rng.standard_normal((d, B)).astype(f) for d in (785, 257, 257))
    W1, W2, W3 = (rng.standard_normal(s).astype(f) for s in ((256, 785), (256, 257), (10, 257)))
    Z1, Z2, Z3 = (np.empty((n, B), f) for n in (256, 256, 10))
    G1, G2, G3 = np.empty_like(W1), np.empty_like(W2), np.empty_like(W3)
    D2, D1 = np.empty((256, B), f), np.empty((256, B), f)

    def mm():
        for _ in range(20):
            np.matmul(W1, A0, out=Z1)
            np.matmul(W2, A1, out=Z2)
            np.matmul(W3, A2, out=Z3)
            np.matmul(Z3, A2.T, out=G3)
            np.matmul(W3[:, :256].T, Z3, out=D2)
            np.matmul(D2, A1.T, out=G2)
            np.matmul(W2[:, :256].T, D2, out=D1)
            np.matmul(D1, A0.T, out=G1)

    mm()
    return _median_time(mm, reps) / 20 * 1e6


def case_medium_torch(opt: str = "adam", B: int = 128, n_steps: int = 60, reps: int = REPS) -> dict:
    import torch

    X, y = _medium_data()
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    o = torch.optim.Adam(net.parameters(), lr=1e-3) if opt == "adam" else torch.optim.SGD(net.parameters(), lr=1e-3)
    lossf = torch.nn.CrossEntropyLoss()
    batches = [torch.randint(0, len(X), (B,)) for _ in range(n_steps)]

    def run():
        for idx in batches:
            o.zero_grad()
            lossf(net(X[idx]), y[idx]).backward()
            o.step()

    run()
    return {"step_us": _median_time(run, reps) / n_steps * 1e6}


# ---------------------------------------------------------------- the shipped experiment, end to end


def case_cli(epochs: int | None = None, reps: int = 1) -> dict:
    """`optbench train configs/moons-optimizers.yaml` as a user runs it: wall time and peak memory."""
    times, rss = [], []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as d:
            args = [sys.executable, "-m", "optbench", "train", str(ROOT / "configs" / "moons-optimizers.yaml"),
                    "--runs-dir", d, "--quiet"]
            if epochs:
                args += ["--set", f"train.epochs={epochs}"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
            rss.append(max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
    return {"wall_s": min(times), "peak_kb": max(rss)}


CASES = {
    "tiny-optbench": case_tiny_optbench,
    "tiny-optbench-R64": lambda reps=REPS: case_tiny_optbench(R=64, epochs=100, reps=reps),
    "tiny-replicas": case_tiny_replicas,
    "tiny-torch": case_tiny_torch,
    "tiny-sklearn": case_tiny_sklearn,
    "medium-optbench-adam": case_medium_optbench,
    "medium-torch-adam": case_medium_torch,
    "medium-optbench-sgd1024": lambda reps=REPS: case_medium_optbench("sgd", 1024, 20, reps),
    "medium-torch-sgd1024": lambda reps=REPS: case_medium_torch("sgd", 1024, 20, reps),
    "cli": lambda reps=1: case_cli(reps=reps),
    "cli-1000-epochs": lambda reps=1: case_cli(1000, reps=reps),
}


def run_case(name: str, threads: int, reps: int) -> dict:
    """One case in a fresh interpreter with `threads` BLAS/OpenMP/torch threads; returns its figures and peak memory."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    code = (f"import json, resource, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import bench_engine as b;\n"
            f"import importlib.util\n"
            f"if 'torch' in {name!r} and importlib.util.find_spec('torch'):\n    import torch; torch.set_num_threads({threads})\n"
            f"out = b.CASES[{name!r}](reps={reps}); out['case_peak_kb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
            f" print(json.dumps(out))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repetitions instead of 5")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--only", default="", help="run only cases whose name contains this text")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median over rounds is shown)")
    args = ap.parse_args()
    reps = 3 if args.quick else REPS
    per_round: dict[str, list[dict]] = {}
    for rnd in range(args.rounds):
        for name in CASES:
            if args.only not in name:
                continue
            for th in ([1, 2] if name.startswith("medium") else [1]):
                key = f"{name}@{th}"
                out = run_case(name, th, reps if not name.startswith("cli") else 1)
                per_round.setdefault(key, []).append(out)
                print(f"  round {rnd + 1} {key:32s} {out}", file=sys.stderr, flush=True)
    r = {}
    for key, outs in per_round.items():
        ok = [o for o in outs if "error" not in o]
        r[key] = ({f: statistics.median(o[f] for o in ok) for f in ok[0]} if ok else outs[-1])

    def g(key, field="step_us"):
        return r.get(key, {}).get(field, float("nan"))

    rows = []

    def row(what, ours, ref, ratio, target, ok):
        rows.append((what, ours, ref, ratio, target, "yes" if ok else "NO"))

    o1, t1, s1 = g("tiny-optbench@1"), g("tiny-torch@1"), g("tiny-sklearn@1")
    o1loop = g("tiny-optbench@1", "loop_us")
    row("tiny step vs PyTorch eager", f"{o1:.1f} us", f"{t1:.1f} us", f"{t1 / o1:.1f}x faster", ">= 10x", t1 / o1 >= 10)
    row("tiny training loop vs scikit-learn fit", f"{o1loop:.1f} us", f"{s1:.1f} us", f"{s1 / o1loop:.1f}x faster", ">= 5x", s1 / o1loop >= 5)
    o64s, o64 = g("tiny-optbench-R64@1"), g("tiny-optbench-R64@1", "loop_us")
    sr, lr = g("tiny-replicas@1", "step_ratio"), g("tiny-replicas@1", "loop_ratio")
    spread = f"{g('tiny-replicas@1', 'step_ratio_q1'):.2f}-{g('tiny-replicas@1', 'step_ratio_q3'):.2f}"
    row("64 replicas vs 1, step (paired in one process)", f"{o64s:.1f} us", f"{o1:.1f} us", f"{sr:.2f}x ({spread})",
        "<= 4x", sr <= 4)
    row("64 replicas vs 1, whole training loop (paired)", f"{o64:.1f} us", f"{o1loop:.1f} us", f"{lr:.2f}x", "(info)", True)
    row("  (the same step's math by hand in NumPy, paired)", "", "", f"{g('tiny-replicas@1', 'floor_ratio'):.2f}x",
        "(floor)", True)
    for th in (1, 2):
        om, tm = g(f"medium-optbench-adam@{th}"), g(f"medium-torch-adam@{th}")
        limit = 1.0 if th == 1 else 1.1
        row(f"medium Adam, {th} thread(s), vs PyTorch", f"{om:.0f} us", f"{tm:.0f} us", f"{om / tm:.2f}x the time",
            f"<= {limit}x", om / tm <= limit)
        osgd, mm = g(f"medium-optbench-sgd1024@{th}"), g(f"medium-optbench-sgd1024@{th}", "matmul_us")
        row(f"medium SGD b1024, {th} thread(s), vs its matmuls", f"{osgd:.0f} us", f"{mm:.0f} us", f"{osgd / mm:.2f}x",
            "<= 1.25x", osgd / mm <= 1.25)
        row(f"  (PyTorch SGD b1024, {th} thread(s))", "", f"{g(f'medium-torch-sgd1024@{th}'):.0f} us", "", "(info)", True)
    wall = g("cli@1", "wall_s")
    row("optbench train moons-optimizers.yaml (5000 epochs)", f"{wall:.2f} s", "", "", "< 5 s", wall < 5)
    p5, p1 = g("cli@1", "peak_kb"), g("cli-1000-epochs@1", "peak_kb")
    row("peak memory, 5000 vs 1000 epochs", f"{p5 / 1024:.0f} MB", f"{p1 / 1024:.0f} MB", f"{p5 / p1:.2f}x", "no growth", p5 <= 1.1 * p1)
    for key in ("tiny-optbench@1", "tiny-torch@1", "tiny-sklearn@1", "medium-optbench-adam@1", "medium-torch-adam@1"):
        row(f"  peak memory of {key}", f"{g(key, 'case_peak_kb') / 1024:.0f} MB", "", "", "(info)", True)

    widths = [max(len(str(x[i])) for x in rows + [("case", "optbench", "reference", "ratio", "target", "met")]) for i in range(6)]
    head = ("case", "optbench", "reference", "ratio", "target", "met")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for x in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(x, widths)))
    print(f"\nmachine: {os.cpu_count()} cores; {args.rounds} interleaved rounds; load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
