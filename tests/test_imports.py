"""No import cycles in the package: every `import optbench...` (at module level, in functions, under TYPE_CHECKING)
is an edge between modules, and no two modules may reach each other; and no edge from a reader into the engine."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "optbench"

# the modules that train, and those that only read run directories (DESIGN.md: "read run directories only")
ENGINE = {"optbench.train", "optbench.trajectory", "optbench.trainers", "optbench.rules", "optbench.model", "optbench.optim"}
READERS = ("optbench.runs", "optbench.plot", "optbench.compare", "optbench.plots")
# what trains or drives training: no reader reaches these, by any import path (function-level ones included).
# optbench.model is not among them: compare's ensembles and the boundary/fit/landscape/film figures rebuild a
# net from a run's files to predict (DESIGN.md allows it), importing model in the function that does. Nor is
# optbench.optim: config's validation and budget's state count look rules up in the registry (function-level
# imports there), and readers reach config (sweep.spec's RUN_KEYS, predict's load_data) and budget (files'
# size limits) without validating anything; the subprocess tests below hold that optim is never loaded.
TRAINING = {"optbench.train", "optbench.trajectory", "optbench.trainers", "optbench.rules", "optbench.workers",
            "optbench.execute", "optbench.sweep.run"} | {
    f"optbench.workers.{m}" for m in ("backend", "cluster", "driving", "inprocess", "jobs", "local", "process", "units")}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its code."""
    modules = {_module_name(p, package.parent): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
                # `from pkg import name` imports pkg.name when that is a module, else pkg itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:  # `import optbench.x.y` of a name inside x
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith("optbench"):
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_reader_imports_the_engine():
    """runs, plot, compare/* and plots/* import no engine module themselves (issue 10: no arrow from a reader into
    the engine); what they reach through other modules is held by the two tests below."""
    graph = import_graph()
    assert ENGINE <= graph.keys()  # a renamed engine module must be renamed here, not silently dropped
    readers = [m for m in graph if m in READERS or m.startswith(tuple(f"{r}." for r in READERS))]
    assert len(readers) > len(READERS)  # the subpackages' modules are among them
    assert {m: sorted(graph[m] & ENGINE) for m in readers if graph[m] & ENGINE} == {}


def reader_modules(graph: dict[str, set[str]]) -> list[str]:
    return sorted(m for m in graph if m in READERS or m.startswith(tuple(f"{r}." for r in READERS)))


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str | None]:
    """module -> the module it was first reached from (breadth first), for every module start reaches."""
    came: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] - came.keys()):
            came[w] = v
            todo.append(w)
    return came


def test_no_reader_reaches_the_training_code():
    """Not even through another module or a function-level import (issue 10: compare and plots imported the
    sweep runner, plots the training loop for a constant, compare.render the report and so gradient checks)."""
    graph = import_graph()
    assert TRAINING <= graph.keys()
    paths = {}
    for r in reader_modules(graph):
        came = reachable(graph, r)
        for t in sorted(TRAINING & came.keys()):
            path = [t]
            while came[path[-1]] is not None:
                path.append(came[path[-1]])
            paths[f"{r} -> {t}"] = " -> ".join(reversed(path))
    assert paths == {}


def loaded_after(*steps: str) -> list[set[str]]:
    """The optbench modules in sys.modules after each step of code, run in turn in one fresh interpreter (this tree first)."""
    show = "print(json.dumps(sorted(m for m in sys.modules if m.startswith('optbench'))), file=sys.__stdout__)"
    code = "\n".join(["import json, sys", *(f"{step}\n{show}" for step in steps)])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    return [set(json.loads(line)) for line in out.stdout.splitlines()[-len(steps):]]


ENGINE_AT_READ = TRAINING | {"optbench.model", "optbench.optim"}


def test_reading_runs_loads_no_engine(tmp_path):
    """Importing runs, compare, plot and each of their modules loads neither training code nor the net; then
    compare (with its sweep tables and ensembles) and plot (curves, heatmap, landscape) on a trained sweep load
    no training code and no optimizer, the net (optbench.model) only where an ensemble or a figure predicts."""
    from optbench.sweep import run_sweep

    cfg = tmp_path / "grid.yaml"
    cfg.write_text("name: grid\nseeds: [0, 1]\ndata: {name: moons, n_samples: 60, seed: 3, val_fraction: 0.25}\n"
                   "model: {hidden: [3]}\ntrain: {epochs: 2, batch_size: 30, snapshots_every: 1}\n"
                   "optimizer: {name: momentum, lr: 0.01, mu: 0.9}\n"
                   "sweep: {method: grid, params: {optimizer.lr: [0.01, 0.1], optimizer.mu: [0.0, 0.9]}}\n")
    run_sweep(cfg, runs_dir=tmp_path / "runs", jobs=1)
    (sweep,) = [str(p) for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    readers = reader_modules(import_graph())

    def plot(kind: str) -> str:
        return f"plot_command([{sweep!r}], kind={kind!r}, out={str(tmp_path / kind)!r} + '.png', warn=lambda m: None)"

    run = next(p for p in (tmp_path / "runs").glob("*/*") if (p / "snapshots.npz").is_file())
    imported, plotted, compared, costed = loaded_after(
        "\n".join(f"import {m}" for m in readers),
        f"from optbench.plot import plot_command\n{plot('curves')}\n{plot('heatmap')}",
        "import contextlib, io\nfrom optbench.compare import compare_command\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n    assert compare_command([{sweep!r}], fmt='json') == 0",
        # what the landscape, film and layers figures do with a run (a whole landscape figure takes seconds)
        f"import numpy as np\nfrom optbench.landscape import RunNet\nnet = RunNet({str(run)!r})\n"
        "assert np.isfinite(net.cost(np.zeros((2, net.layout.P)))).all()")
    assert set(readers) <= imported  # the imports really happened
    assert sorted(ENGINE_AT_READ & imported) == []
    assert sorted(ENGINE_AT_READ & plotted) == []
    assert (tmp_path / "heatmap.png").is_file()
    assert sorted(ENGINE_AT_READ & compared) == ["optbench.model"]  # the ensembles predict
    assert sorted(ENGINE_AT_READ & costed) == ["optbench.model"]  # a rebuilt net evaluates the costs


def test_the_finder_finds_cycles(tmp_path):
    """A planted cycle (a -> b -> c -> a, through a function-level and a TYPE_CHECKING import) is found."""
    pkg = tmp_path / "optbench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from optbench.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from optbench import c\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import optbench.a\n")
    (pkg / "d.py").write_text("from optbench.a import x\n")  # into the cycle, not part of it
    graph = import_graph(pkg)
    assert graph["optbench.d"] == {"optbench.a"}
    assert cycles(graph) == [{"optbench.a", "optbench.sub.b", "optbench.c"}]
