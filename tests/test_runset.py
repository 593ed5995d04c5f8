"""Which runs belong together: compare and plot read the same runs (sweep directories too), group them the same
way (label + the config keys that differ), resolve reruns the same way, skip hostile run files with one warning,
take the same default, and never write outside where they should."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from optbench.compare import compare, compare_command
from optbench.config import expand
from optbench.errors import OptbenchError
from optbench.execute import execute
from optbench.plot import Options, make_figure, plot_command
from optbench.plots import data

from conftest import run_cli

BASE = {
    "name": "rs",
    "seeds": [0, 1],
    "data": {"name": "moons", "n_samples": 80, "noise": 0.2, "seed": 3},
    "model": {"hidden": [4], "activation": "relu", "init": "he"},
    "loss": "bce",
    "train": {"epochs": 4, "batch_size": 40},
    "optimizer": {"name": "gd", "lr": 0.1},
}
LABELS = ["rs/adam", "rs/sgd"]


def train(root: Path, cfg: dict) -> Path:
    outcomes, interrupted = execute(expand(cfg), root)
    assert not interrupted and outcomes
    return root


@pytest.fixture(scope="module")
def lrs(tmp_path_factory) -> Path:
    """One label `sgd` trained at three learning rates (three `train --set optimizer.lr=...`), and adam once."""
    root = tmp_path_factory.mktemp("lrs")
    for lr in (0.01, 0.1, 0.3):
        train(root, {**BASE, "variants": {"sgd": {"optimizer": {"name": "sgd", "lr": lr}}}})
    return train(root, {**BASE, "variants": {"adam": {"optimizer": {"name": "adam", "lr": 0.01}}}})


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A runs directory holding one sweep directory (sweep.json and its runs), as `optbench sweep` leaves it."""
    from optbench.sweep import run_sweep

    root = tmp_path_factory.mktemp("swept")
    cfg = root / "s.yaml"
    cfg.write_text("name: sw\nseeds: [0, 1]\ndata: {name: moons, n_samples: 80, seed: 3, val_fraction: 0.25}\n"
                   "model: {hidden: [4]}\ntrain: {epochs: 3, batch_size: 40}\noptimizer: {name: gd, lr: 0.1}\n"
                   "variants: {gd: {}, adam: {optimizer: {name: adam, lr: 0.01}}}\n"
                   "sweep: {method: grid, params: {optimizer.lr: [0.01, 0.1]}}\n")
    run_sweep(cfg, runs_dir=root / "runs", jobs=1)
    return root / "runs"


def copy(src: Path, tmp_path: Path, name: str = "runs") -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def compare_groups(paths, warn=None) -> dict[str, tuple]:
    """config hash -> (label, row name, seeds) of compare's rows."""
    rows = compare([str(p) for p in paths], warn=warn or (lambda m: None)).rows
    return {r.config_hash: (r.label, r.name, r.seeds) for r in rows}


def plot_groups(paths, warn=None) -> dict[str, tuple]:
    """config hash -> (label, display name, seeds) of the groups plot draws."""
    runs = data.select_runs([str(p) for p in paths], Path("unused"), warn or (lambda m: None))
    return {g.key: (g.label, g.name, tuple(r.seed for r in g.runs)) for g in data.group_runs(runs)}


def runs_named(root: Path, part: str) -> list[Path]:
    return sorted(d for d in root.rglob("*") if d.is_dir() and part in d.name and (d / "summary.json").exists())


def edit_summary(d: Path, **changes) -> None:
    s = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps({**s, **changes}))


# ---- one grouping --------------------------------------------------------------------------------


def test_runs_with_other_learning_rates_are_other_rows_and_other_lines(lrs):
    rows, groups = compare_groups([lrs]), plot_groups([lrs])
    assert sorted(name for _, name, _ in rows.values()) == [
        "rs/adam", "rs/sgd lr=0.01", "rs/sgd lr=0.1", "rs/sgd lr=0.3"]
    assert set(rows) == set(groups) and len(rows) == 4  # the same groups, by config hash
    for key, (label, name, seeds) in rows.items():
        plabel, pname, pseeds = groups[key]
        assert (plabel, pseeds) == (label, seeds) == (label, (0, 1))
        assert name == f"rs/{pname}"  # plot drops the shared experiment prefix only


def test_curves_draw_one_line_per_learning_rate(lrs):
    warnings = []
    fig = make_figure(data.select_runs([str(lrs)], Path("unused"), warnings.append), Options(), warn=warnings.append)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    names = {t.partition(" (lr")[0] for t in texts}
    assert {"sgd lr=0.01", "sgd lr=0.1", "sgd lr=0.3", "adam"} <= names
    assert not any("0.01, 0.1, 0.3" in t for t in texts) and warnings == []


def test_display_names_are_short_stable_and_distinct():
    from optbench.runset.grouping import group

    class Item:
        def __init__(self, lr, seed, mu=0.9, label="x/m"):
            self.label, self.status, self.path, self.created = label, "completed", Path(f"/r/{lr}-{mu}-{seed}"), ""
            self.config = {"label": label, "seed": seed, "optimizer": {"name": "momentum", "lr": lr, "mu": mu}}

    items = [Item(lr, s) for lr in (0.123456, 0.123457, 0.3) for s in (1, 0)] + [Item(0.3, 0, mu=0.5), Item(1.0, 0, label="x/a")]
    groups = group(items, lambda m: pytest.fail(m))
    assert [g.name for g in groups] == ["x/a", "x/m lr=0.123456 mu=0.9", "x/m lr=0.123457 mu=0.9", "x/m lr=0.3 mu=0.5",
                                        "x/m lr=0.3 mu=0.9"]  # more digits only where 4 would merge two
    assert [tuple(i.config["seed"] for i in g.items) for g in groups] == [(0,), (0, 1), (0, 1), (0,), (0, 1)]
    assert groups[1].varied == {"optimizer.lr": 0.123456, "optimizer.mu": 0.9}
    assert [g.name for g in group(list(reversed(items)), pytest.fail)] == [g.name for g in groups]  # input order: no matter


# ---- one reader: sweeps, reruns, the default -----------------------------------------------------


def test_plot_reads_a_runs_dir_holding_a_sweep_as_compare_does(swept, tmp_path, monkeypatch):
    (sweep_dir,) = [d for d in swept.iterdir() if d.is_dir()]
    warnings = []
    runs = data.select_runs([str(swept)], Path("unused"), warnings.append)
    assert len(runs) == 2 * 2 * 2 and warnings == []  # variants x lrs x seeds
    from optbench.compare import read_facts

    assert {r.path for r in runs} == {f.path for f in read_facts([str(swept)], (), pytest.fail)}
    assert {r.path for r in runs} == {r.path for r in data.select_runs([str(sweep_dir)], Path("unused"), pytest.fail)}
    monkeypatch.chdir(swept.parent)
    code, out, err = run_cli("plot", "--out", tmp_path / "f.png", cwd=swept.parent)
    assert code == 0 and (tmp_path / "f.png").is_file()
    assert err.strip() == f"plotting sweep {Path('runs') / sweep_dir.name}, the only one in runs; name directories to choose"


def test_bare_compare_and_plot_take_the_same_newest_experiment(lrs, swept, tmp_path):
    runs = copy(lrs, tmp_path)
    shutil.copytree(swept, runs, dirs_exist_ok=True)  # the sweep is newer than the lrs runs
    for d in runs_named(runs, "rs-"):
        edit_summary(d, created="2001-01-01T00:00:00")
    said = []
    assert compare_command([], runs_dir=runs, fmt="json", out=tmp_path / "c.json", warn=said.append) == 0
    plot_command([], runs_dir=runs, out=tmp_path / "p.png", warn=said.append)
    (sweep_dir,) = [d for d in runs.iterdir() if (d / "sweep.json").exists()]
    assert said == [f"{verb} sweep {sweep_dir}, the newest of 2 in {runs}; name directories to choose"
                    for verb in ("comparing", "plotting")]
    assert {rec["label"].split(" ")[0].rsplit("/", 1)[0] for rec in json.loads((tmp_path / "c.json").read_text())} \
        == {"sw/gd", "sw/adam"}
    for d in runs_named(runs, "rs-"):
        edit_summary(d, created="2100-01-01T00:00:00")
    said.clear()
    assert compare_command([], runs_dir=runs, fmt="json", out=tmp_path / "c.json", warn=said.append) == 0
    assert said == [f"comparing experiment rs, the newest of 2 in {runs}; name directories to choose"]
    assert sorted(rec["label"] for rec in json.loads((tmp_path / "c.json").read_text())) == [
        "rs/adam", "rs/sgd lr=0.01", "rs/sgd lr=0.1", "rs/sgd lr=0.3"]


def test_a_rerun_counts_once_in_both_with_one_warning_line(lrs, tmp_path):
    runs = copy(lrs, tmp_path)
    adam = runs_named(runs, "rs-adam")
    for d in adam:  # every adam run trained twice more: 4 duplicates
        for n in (2, 3):
            shutil.copytree(d, d.with_name(f"{d.name}-again{n}"))
    warnings = []
    rows, groups = compare_groups([runs], warnings.append), plot_groups([runs], warnings.append)
    assert set(rows) == set(groups) and len(rows) == 4
    assert {k: (lab, s) for k, (lab, _, s) in rows.items()} == {k: (lab, s) for k, (lab, _, s) in groups.items()}
    assert all(seeds == (0, 1) for _, _, seeds in rows.values())
    line = "warning: 4 duplicate runs ignored (same label, config and seed); the newest finished run of each kept"
    assert warnings == [line, line]  # once for compare, once for plot


def test_a_newer_interrupted_rerun_does_not_replace_a_finished_run(lrs, tmp_path):
    runs = copy(lrs, tmp_path)
    done = runs_named(runs, "rs-adam-s0")[0]
    rerun = done.with_name(done.name + "-rerun")
    shutil.copytree(done, rerun)
    edit_summary(rerun, status="interrupted", created="2999-01-01T00:00:00")
    warnings = []
    (adam,) = [r for r in compare([runs], warn=warnings.append).rows if r.label == "rs/adam"]
    assert [f.path for f in adam.runs if f.seed == 0] == [done] and len(warnings) == 1
    (g,) = [g for g in data.group_runs(data.select_runs([str(runs)], Path("x"), warnings.append)) if g.label == "rs/adam"]
    assert [r.path for r in g.runs if r.seed == 0] == [done]
    newer = done.with_name(done.name + "-newer")  # a newer finished rerun does replace it
    shutil.copytree(done, newer)
    edit_summary(newer, created="2998-01-01T00:00:00")
    (adam,) = [r for r in compare([runs], warn=lambda m: None).rows if r.label == "rs/adam"]
    assert [f.path for f in adam.runs if f.seed == 0] == [newer]


# ---- hostile run files: one warning each, in both commands, never a crash -------------------------


def _crafted_npz(path: Path) -> None:
    """An npz whose W1.npy header promises 745 GiB but holds 8 bytes."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 10), }"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    blob = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 8
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("W1.npy", blob)


def _big_field(d: Path) -> None:
    m = d / "metrics.csv"
    lines = m.read_text().splitlines(keepends=True)
    m.write_text(lines[0] + '"' + "9" * 200_000 + '"' + lines[1][lines[1].index(","):] + "".join(lines[2:]))


def _epoch(value: str):
    def edit(d: Path) -> None:
        m = d / "metrics.csv"
        lines = m.read_text().splitlines(keepends=True)
        lines[-1] = value + lines[-1][lines[-1].index(","):]
        m.write_text("".join(lines))
    return edit


HOSTILE = {
    "label-list": (lambda d: edit_summary(d, label=["a", "b"]), "summary.json label: ['a', 'b'] is not a text"),
    "created-number": (lambda d: edit_summary(d, created=5), "summary.json created: 5 is not a text"),
    "seed-text": (lambda d: (d / "config.yaml").write_text((d / "config.yaml").read_text().replace("\nseed: 0", "\nseed: x")),
                  "config.yaml seed: x is not an integer"),
    "optimizer-list": (lambda d: (d / "config.yaml").write_text((d / "config.yaml").read_text() + "optimizer: [1]\n"),
                       "config.yaml optimizer: [1] is not a mapping"),
    "sweep-metric": (lambda d: edit_summary(d, sweep={"id": "abc", "variant": "v", "trial": "t", "metric": ["x"]}),
                     "summary.json sweep.metric: ['x'] is not a text"),
    "sweep-variant": (lambda d: edit_summary(d, sweep={"id": "abc", "variant": {"a": 1}, "trial": "t"}),
                      "summary.json sweep.variant: {'a': 1} is not a text"),
    "epoch-1e15": (_epoch("1e15"), "metrics.csv epochs are not 0, 1, 2"),
    "epoch-inf": (_epoch("inf"), "metrics.csv epochs are not 0, 1, 2"),
    "csv-field": (_big_field, "unreadable metrics.csv (field larger than field limit"),
    "params-garbage": (lambda d: (d / "params.npz").write_bytes(b"PK\x03\x04 not a zip"), "bad params.npz (BadZipFile"),
    "params-745GiB": (lambda d: _crafted_npz(d / "params.npz"), "header says float64 (100000, 100000, 10), but 8 bytes"),
    "params-shapes": (lambda d: np.savez(d / "params.npz", W1=np.zeros((3, 2)), b1=np.zeros(4), W2=np.zeros((1, 3))),
                      "bad params.npz (W1 (3, 2) and b1 (4,) do not fit"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_run_is_skipped_with_one_warning_by_compare_and_plot(lrs, tmp_path, case):
    runs = copy(lrs, tmp_path)
    bad = runs_named(runs, "rs-adam-s0")[0]
    edit, reason = HOSTILE[case]
    edit(bad)
    for kind in ("curves", "boundary"):
        warnings = []
        out = plot_command([str(runs)], out=tmp_path / f"{kind}.png", kind=kind, warn=warnings.append)
        assert out.is_file() and len(warnings) == 1 and warnings[0].startswith(f"warning: {bad}")
        assert reason in warnings[0], warnings[0]
    warnings = []
    assert compare_command([str(runs)], fmt="json", out=tmp_path / "c.json", warn=warnings.append) == 0
    assert len(warnings) == 1 and reason in warnings[0] and warnings[0].startswith(f"warning: {bad}")
    adam = next(r for r in json.loads((tmp_path / "c.json").read_text()) if r["label"] == "rs/adam")
    assert adam["seed_list"] == [1]


def test_hostile_runs_through_the_command_line_exit_0_with_one_line_each(lrs, tmp_path):
    runs = copy(lrs, tmp_path)
    victims = runs_named(runs, "rs-sgd")[:3]
    for d, case in zip(victims, ("params-745GiB", "csv-field", "sweep-metric")):
        HOSTILE[case][0](d)
    for cmd in (["compare", runs, "-f", "json"], ["plot", runs, "--kind", "boundary", "-o", tmp_path / "b.png"]):
        code, out, err = run_cli(*cmd)
        assert code == 0, err
        assert sorted(err.splitlines()) == sorted(line for line in err.splitlines() if line.startswith("warning: "))
        assert len(err.splitlines()) == 3 and all(str(d) in err for d in victims)


# ---- names from files are data, never paths -------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x/evil", "/tmp/optbench-evil/abs", ".hidden", "a\nb\u202ec\0d"])
def test_a_figure_name_from_run_files_stays_one_file_in_the_plots_dir(lrs, tmp_path, name):
    runs = copy(lrs, tmp_path / "deep" / "er")
    for d in runs_named(runs, "rs-"):
        edit_summary(d, name=name)
    out = plot_command([str(runs)], runs_dir=runs, warn=lambda m: None)
    assert out.parent == runs / "plots" and out.is_file() and not out.name.startswith(".")
    assert [p for p in (tmp_path / "deep").rglob("*.png")] == [out]
    assert not Path("/tmp/optbench-evil").exists() and not (tmp_path / "x").exists()
    assert all(ch.isprintable() and ch not in "/\\" for ch in out.name)


def test_safe_component():
    from optbench.paths import MAX_COMPONENT, safe_component

    assert safe_component("moons-optimizers/adam") == "moons-optimizers-adam"
    assert safe_component("../../x/evil") == "x-evil"
    assert safe_component("/etc/passwd") == "etc-passwd"
    assert safe_component("...") == "runs" and safe_component("") == "runs"
    assert safe_component("a\\b\0c\nd\u202ee") == "a-b-c-d-e"
    long_a, long_b = safe_component("a" * 500), safe_component("a" * 499 + "b")
    assert len(long_a) == MAX_COMPONENT and long_a != long_b


# ---- --out the same in every command -------------------------------------------------------------


@pytest.mark.parametrize("command", ["compare", "plot"])
def test_out_creates_missing_folders_and_refuses_an_unwritable_target(lrs, tmp_path, command):
    ext = ".json" if command == "compare" else ".png"
    extra = ["-f", "json"] if command == "compare" else []
    out = tmp_path / "new" / "deeper" / f"result{ext}"
    code, _, err = run_cli(command, lrs, *extra, "--out", out)
    assert code == 0 and out.is_file(), err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for target in (blocker / f"x{ext}", tmp_path / "new"):  # a file in the way; a directory as the target
        code, stdout, err = run_cli(command, lrs, *extra, "--out", target)
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: --out: "), err
        assert "Traceback" not in err and stdout == ""


def test_prepare_out_says_what_is_wrong(tmp_path):
    from optbench.paths import prepare_out, write_text

    (tmp_path / "f").write_text("")
    with pytest.raises(OptbenchError, match=r"^--out: cannot create the folder .*f/g"):
        prepare_out(tmp_path / "f" / "g" / "x.csv")
    with pytest.raises(OptbenchError, match=r"^--data: '.*' is a directory"):
        prepare_out(tmp_path, "--data")
    assert write_text(tmp_path / "n" / "x.txt", "hi").read_text() == "hi"
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["x.txt"]  # no temporary file left


def test_run_directory_names_are_one_component(tmp_path):
    from optbench.runs.writer import RunWriter

    cfg = {"name": "../up", "label": "../../evil/x", "seed": 0, "train": {"log_iterations": False}}
    w = RunWriter(tmp_path / "runs", [cfg], group="g")
    (d,) = w.start()
    w.fail("test")
    assert d.parent == tmp_path / "runs" and d.name.startswith("evil-x-s0-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
