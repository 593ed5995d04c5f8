"""Two versions of optbench side by side: bench_engine.py --json files from each, ratios to the peers before/after.

    # alternate the versions, each in its own checkout, on a quiet machine:
    PYTHONPATH=OLD python bench/bench_engine.py --quick --json before-1.json
    PYTHONPATH=NEW python bench/bench_engine.py --quick --json after-1.json   # ... before-2, after-2
    python bench/compare_versions.py --before before-*.json --after after-*.json

A refactor that keeps speed keeps each ratio (peer's time / optbench's) within the range of the other version's.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def _pooled(files: list[Path], comparison: str, side: str, key: str) -> list[float]:
    return [x for f in files for x in json.loads(f.read_text())[comparison][side][key]]


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, nargs="+", required=True)
    ap.add_argument("--after", type=Path, nargs="+", required=True)
    args = ap.parse_args()
    table = json.loads(args.before[0].read_text())
    print(f"{len(args.before)} run(s) before, {len(args.after)} after; medians [ranges] over every round of every run")
    print(f"{'comparison':28s} {'peer':24s} {'ratio before':>24s} {'ratio after':>24s}   optbench us before -> after")
    for comparison, sides in table.items():
        if not isinstance(sides, dict) or "optbench" not in sides:
            continue
        ob, oa = (_pooled(files, comparison, "optbench", "us") for files in (args.before, args.after))
        for peer, fig in sides.items():
            if peer == "optbench" or not isinstance(fig, dict) or "ratio" not in fig:
                continue
            rb, ra = (_pooled(files, comparison, peer, "ratio") for files in (args.before, args.after))
            print(f"{comparison[:28]:28s} {peer[:24]:24s} {_fmt(rb):>24s} {_fmt(ra):>24s}   "
                  f"{statistics.median(ob):.2f} -> {statistics.median(oa):.2f}")


if __name__ == "__main__":
    main()
