"""How cost grows with replicas, examples, width and depth: optbench against the PyTorch forms, in one run.

    python bench/bench_scaling.py              # the table, bench/results/scaling.csv and scaling.png
    python bench/bench_scaling.py --quick      # 2 rounds, the largest n left out

Four axes around the tiny moons net ([2, 5, 2, 1], bce, Adam, batch 64, float64, 1 thread on both sides),
each point the whole training loop (bench/sides.py: shuffles, steps, epoch metrics) on the same work:
  R      replicas 1, 4, 16, 64, 256 (n = 300): us per replica-step; PyTorch default, foreach and fused
         train the replicas one after another (a loop over seeds), bmm trains them together; at R = 256
         only fused and bmm run (a loop over seeds costs per replica-step what it costs at R = 64, and
         default and foreach would take most of the time budget); the first epoch is not timed
  n      examples 300 ... 300,000 (R = 1): us per example (an epoch's cost over n)
  width  hidden [w, w], w = 8 ... 512 (R = 1, n = 300): us per step
  depth  hidden [32] * d, d = 1 ... 8 (R = 1, n = 300): us per step
The contenders of a point take turns (A, B, A, B, ...); each ratio (PyTorch's time over optbench's) is
formed within a round, and the median and range [min-max] over rounds are reported.
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
import statistics  # noqa: E402

import sides  # noqa: E402
import timing  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TINY = sides.Spec()
MOONS = TINY.data


def points(quick: bool) -> list[tuple[str, int, sides.Spec, tuple[str, ...]]]:
    """(axis, value, spec, PyTorch forms) for every point; epochs chosen so each point is a few hundred ms in PyTorch."""
    out = []
    for R in (1, 4, 16, 64, 256):  # the first epoch is a warm-up, not timed (first-step allocations, Adam's state)
        forms = (*sides.FORMS, "bmm") if R <= 64 else ("fused", "bmm")
        out.append(("R", R, TINY.with_(R=R, epochs=1 + max(1, 64 // R), warmup=1), forms))
    for n in (300, 3000, 30000) + (() if quick else (300000,)):
        out.append(("n", n, TINY.with_(data={**MOONS, "n_samples": n}, epochs=max(1, 3000 // n)), ("default", "fused")))
    for w in (8, 32, 128, 512):
        out.append(("width", w, TINY.with_(hidden=(w, w), epochs=10), ("default", "fused")))
    for d in (1, 2, 4, 8):
        out.append(("depth", d, TINY.with_(hidden=(32,) * d, epochs=10), ("default", "fused")))
    return out


def unit_cost(axis: str, run: sides.Run, spec: sides.Spec) -> float:
    """us per replica-step, or per example on the n axis."""
    if axis == "n":
        return run.seconds / (spec.epochs * spec.data["n_samples"] * run.R) * 1e6
    return run.per_replica_step_us


def measure(quick: bool, n_rounds: int, log) -> list[dict]:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(limits=1):
        for axis, value, spec, forms in points(quick):
            contenders = {"optbench": lambda spec=spec: sides.optbench_loop(spec)}
            contenders.update({f"torch {f}": (lambda spec=spec, f=f: sides.torch_loop(spec, f)) for f in forms})
            runs = timing.rounds(contenders, n_rounds, min_seconds=0.03)
            base = [unit_cost(axis, r, spec) for r in runs["optbench"]]
            work = {k: (v[0].steps, v[0].R, v[0].shapes) for k, v in runs.items()}
            assert len(set(work.values())) == 1, f"{axis}={value}: the sides did different work: {work}"
            for name, rs in runs.items():
                us = [unit_cost(axis, r, spec) for r in rs]
                ratio = [u / b for u, b in zip(us, base)]
                rows.append({"axis": axis, "value": value, "contender": name, "unit": "us/example" if axis == "n" else "us/replica-step",
                             "median": statistics.median(us), "min": min(us), "max": max(us),
                             "ratio_median": statistics.median(ratio), "ratio_min": min(ratio), "ratio_max": max(ratio),
                             "steps": rs[0].steps, "R": rs[0].R, "rounds": len(rs), "threads": 1})
            log(f"{axis}={value}: " + ", ".join(f"{r['contender']} {r['median']:.3g}" for r in rows[-len(runs):]))
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


AXES = {"R": "replicas R (n = 300)", "n": "examples n (R = 1)", "width": "width w of hidden [w, w]",
        "depth": "depth d of hidden [32] * d"}
STYLE = {"optbench": ("k", "o", "-"), "torch default": ("tab:red", "s", "--"), "torch foreach": ("tab:orange", "^", "--"),
         "torch fused": ("tab:blue", "v", "--"), "torch bmm": ("tab:green", "D", "-.")}


def figure(rows: list[dict], path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 4, figsize=(16, 4.2), constrained_layout=True)
    for ax, (axis, label) in zip(axs, AXES.items()):
        sel = [r for r in rows if r["axis"] == axis]
        for name, (color, marker, ls) in STYLE.items():
            pts = sorted((r["value"], r["median"], r["min"], r["max"]) for r in sel if r["contender"] == name)
            if not pts:
                continue
            x, m, lo, hi = zip(*pts)
            ax.errorbar(x, m, yerr=[[a - b for a, b in zip(m, lo)], [b - a for a, b in zip(m, hi)]], color=color,
                        marker=marker, ls=ls, capsize=2, label=name)
        ax.set_xscale("log", base=2 if axis == "depth" else 10)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("us per example" if axis == "n" else "us per replica-step")
        ax.grid(True, which="both", alpha=0.3)
    axs[0].legend(fontsize=8)
    fig.suptitle("optbench vs PyTorch, whole training loop (moons [2, 5, 2, 1] unless varied, Adam, batch 64, "
                 f"float64, 1 thread); median and [min-max] over alternating rounds\n{subtitle}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict]) -> list[str]:
    """The scaling table as text: one line per point, each contender's median and its ratio to optbench."""
    lines = []
    for axis in AXES:
        sel = [r for r in rows if r["axis"] == axis]
        if not sel:
            continue
        names = list(dict.fromkeys(r["contender"] for r in sel))
        unit = sel[0]["unit"]
        lines.append(f"\n{AXES[axis]}: {unit}, and PyTorch's time / optbench's (median [min-max])")
        lines.append(f"  {axis:>7s}  " + "  ".join(f"{n:>28s}" for n in names))
        for v in sorted({r["value"] for r in sel}):
            cells = []
            for n in names:
                r = next((x for x in sel if x["value"] == v and x["contender"] == n), None)
                cell = "not run" if r is None else f"{r['median']:.3g}" if n == "optbench" else (
                    f"{r['median']:.3g} {r['ratio_median']:.1f}x [{r['ratio_min']:.1f}-{r['ratio_max']:.1f}]")
                cells.append(f"{cell:>28s}")
            lines.append(f"  {v:>7d}  " + "  ".join(cells))
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds, n up to 30,000")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per point")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for scaling.csv and scaling.png")
    args = ap.parse_args(argv)
    info = envinfo.environment(REMOVED)
    for line in envinfo.describe(info):
        print(line, flush=True)
    rows = measure(args.quick, 2 if args.quick else args.rounds, lambda s: print("  " + s, file=sys.stderr, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "scaling.csv")
    for line in table(rows):
        print(line)
    blas = next((lib for lib in info["blas"] if "numpy" in (lib["filepath"] or "")), info["blas"][0])
    load = os.getloadavg()
    subtitle = (f"{info['cpu']}, numpy {info['numpy']} ({blas['internal_api']} {blas['version']}, {blas['architecture']}), "
                f"torch {info['torch']} ({info['torch_blas']}); load average {info['load'][0]:.1f} at start, {load[0]:.1f} at end")
    figure(rows, args.out / "scaling.png", subtitle)
    print(f"\nwrote {args.out / 'scaling.csv'} and {args.out / 'scaling.png'}; load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} at the end")


if __name__ == "__main__":
    main()
