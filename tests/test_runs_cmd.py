"""optbench runs: experiments and runs with status, duplicates and sizes; --prune removes superseded duplicates
and failed runs after a confirmation (or --yes), never a run compare reads, a running one, or the only
finished run of its kind."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import CONFIGS, run_cli
from optbench.share import inventory

EPOCHS = 3


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """gd, momentum and adam at seeds 0 and 1; then seed 0 of each trained again: three duplicates."""
    root = tmp_path_factory.mktemp("inv") / "runs"
    for extra in ((), ("--seed", "0")):
        rc, _, err = run_cli("train", CONFIGS / "moons-optimizers.yaml", "--set", f"train.epochs={EPOCHS}", "--set",
                             "seeds=[0,1]", *extra, "-q", "--runs-dir", root)
        assert rc == 0, err
    return root


def _dirs(root: Path) -> dict[tuple[str, int], list[Path]]:
    out: dict[tuple[str, int], list[Path]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        s = json.loads((d / "summary.json").read_text())
        out.setdefault((s["label"].split("/")[-1], s["seed"]), []).append(d)
    for v in out.values():
        v.sort(key=lambda d: json.loads((d / "summary.json").read_text())["created"] + d.name)
    return out


def _set(d: Path, **kv) -> None:
    s = json.loads((d / "summary.json").read_text())
    s.update(kv)
    (d / "summary.json").write_text(json.dumps(s))


@pytest.fixture
def runs(template, tmp_path):
    """The states --prune must tell apart, one per run directory."""
    root = tmp_path / "runs"
    shutil.copytree(template, root)
    d = _dirs(root)
    _set(d["gd", 0][0], created="2000-01-01T00:00:00")  # an older completed twin: superseded
    _set(d["momentum", 0][1], status="interrupted", created="2999-01-01T00:00:00")  # newer but interrupted: superseded
    _set(d["adam", 0][0], status="failed", reason="boom", created="2000-01-01T00:00:00")  # failed twin: superseded
    _set(d["gd", 1][0], status="failed", reason="boom")  # failed, alone
    _set(d["momentum", 1][0], status="running")  # maybe still training: stays
    (root / "not-a-run").mkdir()
    (root / "not-a-run" / "summary.json").write_text("{garbage")  # unreadable: listed, stays
    doomed = {d["gd", 0][0].name, d["momentum", 0][1].name, d["adam", 0][0].name, d["gd", 1][0].name}
    return root, doomed


def test_listing_says_status_duplicates_and_sizes(runs):
    root, doomed = runs
    rc, out, err = run_cli("runs", root)
    assert rc == 0, err
    lines = out.splitlines()
    head = next(line for line in lines if line.startswith("moons-optimizers: "))
    assert head.startswith("moons-optimizers: 9 runs (5 completed, 2 failed, 1 interrupted, 1 running), 3 duplicates, ")
    assert " KB, newest 2999-01-01T00:00:00" in head
    assert "  moons-optimizers/gd: 3 runs (2 completed, 1 failed), seeds 0,1, " in out
    for name in doomed:
        assert any(line.strip().startswith(name) and "<- " in line for line in lines), name
    assert any("not-a-run" in line and "unreadable" in line for line in lines)


def test_prune_needs_a_confirmation(runs):
    root, _ = runs
    before = sorted(p.name for p in root.iterdir())
    rc, out, err = run_cli("runs", root, "--prune")  # stdin is not a terminal: no silent yes
    assert rc == 2
    assert err.strip().splitlines() == ["error: --prune: would remove 4 run directories (" + err.split("(", 1)[1].split(")")[0]
                                        + "); confirm on a terminal or pass --yes"]
    assert sorted(p.name for p in root.iterdir()) == before


def _compared(root: Path) -> list[tuple]:
    from optbench.compare import compare, records

    return [(r["label"], r["seeds"], r["metric_mean"]) for r in records(compare([root], warn=lambda m: None))]


def test_prune_removes_exactly_the_superseded_and_failed(runs):
    root, doomed = runs
    before = _compared(root)
    names = {p.name for p in root.iterdir()}
    rc, out, err = run_cli("runs", root, "--prune", "--yes")
    assert rc == 0, err
    assert out.splitlines()[-1].startswith("removed 4 run directories, ")
    assert {p.name for p in root.iterdir()} == names - doomed
    assert _compared(root) == before  # compare reads the same runs as before
    inv = inventory.take(root, warn=pytest.fail)
    assert inv.prunable() == [] and not any(p.name.startswith(".pruned-") for p in root.iterdir())


def test_never_the_only_finished_run_of_its_kind(runs):
    root, _ = runs
    inv = inventory.take(root, warn=lambda m: None)
    finished = {}
    for e in inv.entries:
        if e.key is not None and e.status in ("completed", "diverged", "stopped_early"):
            finished.setdefault(e.key, []).append(e)
    for key, members in finished.items():
        assert any(not e.why for e in members), key  # one finished run of each kind always stays
    assert not any(e.why for e in inv.entries if e.status == "running" or e.key is None)


def test_sweep_set_aside_runs_and_a_locked_sweep(tmp_path):
    from optbench.sweep.lock import lock_sweep

    rc, _, err = run_cli("sweep", CONFIGS / "moons-sweep.yaml", "--set", "train.epochs=2", "--set", "sweep.budget=1",
                         "--set", "seeds=[0]", "--set", "variants={adam: {optimizer: {name: adam}}}", "--jobs", "1", "-q",
                         "--runs-dir", tmp_path)
    assert rc == 0, err
    sweep = next(p for p in tmp_path.iterdir() if p.is_dir())
    runs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    (sweep / ".superseded").mkdir()
    old = sweep / ".superseded" / runs[0].name
    shutil.copytree(runs[0], old)
    _set(old, status="interrupted")  # what a later pass set aside
    inv = inventory.take(tmp_path, warn=pytest.fail)
    assert [e.path for e in inv.prunable()] == [old]
    lock = lock_sweep(sweep, wait=0)  # a client trains there: its runs are left alone
    try:
        warned = []
        assert inventory.prune(inv, warn=warned.append) == (0, 0)
        assert old.exists() and "in use by" in warned[0]
    finally:
        lock.release()
    removed, freed = inventory.prune(inventory.take(tmp_path, warn=pytest.fail), warn=pytest.fail)
    assert (removed, not old.exists(), freed > 0) == (1, True, True)
    assert all(r.exists() for r in runs)


def test_not_a_directory(tmp_path):
    from optbench.errors import OptbenchError

    with pytest.raises(OptbenchError, match=r": no such runs directory \(accepted: a directory holding runs or sweeps\)$"):
        inventory.take(tmp_path / "nowhere", warn=pytest.fail)
