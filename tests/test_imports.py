"""No import cycles in the package: every `import optbench...` (at module level, in functions, under TYPE_CHECKING)
is an edge between modules, and no two modules may reach each other; and no edge from a reader into the engine."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "optbench"

# the modules that train, and those that only read run directories (DESIGN.md: "read run directories only")
ENGINE = {"optbench.train", "optbench.trajectory", "optbench.trainers", "optbench.rules", "optbench.model", "optbench.optim"}
READERS = ("optbench.runs", "optbench.plot", "optbench.compare", "optbench.plots")


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
    the engine); what they reach through config's validation, predict or the sweep runner is not checked here."""
    graph = import_graph()
    assert ENGINE <= graph.keys()  # a renamed engine module must be renamed here, not silently dropped
    readers = [m for m in graph if m in READERS or m.startswith(tuple(f"{r}." for r in READERS))]
    assert len(readers) > len(READERS)  # the subpackages' modules are among them
    assert {m: sorted(graph[m] & ENGINE) for m in readers if graph[m] & ENGINE} == {}


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
