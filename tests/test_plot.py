"""`optbench plot`: every figure kind drawn from real run directories (the engine, a few epochs), checked through
the matplotlib objects and as files; option errors, default paths, byte-identical output, corrupt runs skipped."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.contour import ContourSet

from optbench.config import load_experiment
from optbench.errors import OptbenchError
from optbench.execute import execute
from optbench.plot import KINDS, Options, make_figure, plot_command
from optbench.plots import data
from optbench.runs.columns import COLUMNS
from optbench.runs.read import Run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# ---- run directories -----------------------------------------------------------------------------------


def train(config: str, root: Path, *sets: str) -> Path:
    """Train a shipped config with overrides into root; returns root."""
    execute(load_experiment(CONFIGS / config, sets=list(sets)), root)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("plot")


@pytest.fixture(scope="module")
def moons(root) -> Path:
    """The reference experiment, 3 labels x 2 seeds, with a validation split."""
    return train("moons-optimizers.yaml", root / "moons", "train.epochs=30", "seeds=[0, 1]", "data.val_fraction=0.25",
                 "train.snapshots_every=10")


@pytest.fixture(scope="module")
def sweep(root) -> Path:
    """The same labels at three learning rates; at lr 20 plain GD diverges."""
    for lr in (0.01, 0.3, 20):
        train("moons-optimizers.yaml", root / "sweep", "train.epochs=15", "seeds=[0, 1]", f"optimizer.lr={lr}",
              f"variants.momentum.optimizer.lr={lr}", f"variants.adam.optimizer.lr={lr}")
    return root / "sweep"


@pytest.fixture(scope="module")
def sine(root) -> Path:
    return train("sine-regression.yaml", root / "sine", "train.epochs=5", "seeds=[0]")


@pytest.fixture(scope="module")
def paths(root) -> Path:
    """Five optimizers on the ill-conditioned quadratic: one point in the plane each, trajectory.npz."""
    return train("ravine-trajectories.yaml", root / "paths", "train.epochs=30")


@pytest.fixture(scope="module")
def sharp(root) -> Path:
    """batch-size-sharpness shortened: three batch sizes x 2 seeds, sharpness every 4 epochs."""
    return train("batch-size-sharpness.yaml", root / "sharp", "train.epochs=12", "variants.full.train.epochs=12",
                 "seeds=[0, 1]", "train.sharpness_every=4", "variants.full.train.sharpness_every=4")


def runs_in(d: Path) -> list[Run]:
    return data.select_runs([str(d)], Path("unused"), warn=pytest.fail)


def figure(d: Path, **opts):
    return make_figure(runs_in(d), Options(**opts), warn=lambda m: None)


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


# ---- curves and accuracy -------------------------------------------------------------------------------


def test_curves_mean_per_label_and_validation_dashed(moons):
    fig = figure(moons)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 6  # 3 labels x (training mean, validation mean)
    assert sorted(ln.get_linestyle() for ln in lines) == ["-"] * 3 + ["--"] * 3
    assert legend_texts(ax) == ["adam", "gd", "momentum", "training", "validation"]
    assert len(ax.collections) == 6  # a band per line
    assert ax.get_yscale() == "linear"
    assert "moons-optimizers" in ax.get_title() and "Learning rate = 0.0007" in ax.get_title()
    assert ax.get_xlabel() == "epoch"


def test_curves_single_seeds_and_log_y(moons):
    (ax,) = figure(moons, seeds=True, log_y=True).axes
    assert len(ax.get_lines()) == 3 * (2 * 2 + 2)  # per label: 2 seeds x (train, val) faint + 2 means
    assert ax.get_yscale() == "log"
    assert sum(ln.get_alpha() is not None and ln.get_alpha() < 1 for ln in ax.get_lines()) == 12


def test_curves_other_metric_and_x(moons):
    (ax,) = figure(moons, metric="grad_norm", x="step").axes
    assert len(ax.get_lines()) == 3  # no validation twin for grad_norm
    assert ax.get_xlabel().startswith("step")
    assert ax.get_lines()[0].get_xdata().max() > 30  # steps, not epochs


def test_one_color_per_label_in_every_figure(moons):
    curve_colors = {ln.get_label(): ln.get_color() for ln in figure(moons).axes[0].get_lines() if ln.get_label()[0] != "_"}
    assert curve_colors == {"adam": data.PALETTE[0], "gd": data.PALETTE[1], "momentum": data.PALETTE[2]}
    bound = figure(moons, kind="boundary")
    assert [ax.title.get_color() for ax in visible_axes(bound)] == list(data.PALETTE[:3])


def test_divergence_marked_and_axis_not_flattened(sweep):
    warnings = []
    (ax,) = make_figure(runs_in(sweep), Options(), warn=warnings.append).axes
    marks = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
    assert marks and "diverged" in legend_texts(ax)
    ok = [r for r in runs_in(sweep) if r.status != "diverged"]
    assert ax.get_ylim()[1] < 1.2 * max(np.nanmax(r.metrics["train_cost"]) for r in ok)
    assert not any("averaging runs with learning rates" in w for w in warnings)  # one line per lr, as compare's rows
    # one legend entry per lr; past the cap of 8 labels the worst (the diverged lr=20) fold into "N others"
    names = {t.partition(" (")[0] for t in legend_texts(ax)}
    assert {"adam lr=0.01", "gd lr=0.3"} <= names and "1 others" in names and "momentum lr=20" not in names


def test_accuracy_training_and_validation(moons):
    (ax,) = figure(moons, kind="accuracy").axes
    assert len(ax.get_lines()) == 6
    assert "validation" in legend_texts(ax)
    assert ax.yaxis.get_major_formatter().__class__.__name__ == "PercentFormatter"
    assert "accuracy" in ax.get_title()


def test_accuracy_refuses_regression(sine):
    with pytest.raises(OptbenchError, match="--kind accuracy: needs classification runs.*regression"):
        figure(sine, kind="accuracy")


def test_metric_without_values_is_an_error(sweep):
    with pytest.raises(OptbenchError, match="--metric val_cost: no values.*validation split"):
        figure(sweep, metric="val_cost")


# ---- aggregation over seeds ----------------------------------------------------------------------------


def fake_run(costs, status="completed", label="e/a", seed=0) -> Run:
    n = len(costs)
    m = {c: np.full(n, np.nan) for c in COLUMNS}
    m["epoch"] = m["step"] = np.arange(n, dtype=float)
    m["train_cost"] = np.asarray(costs, dtype=float)
    return Run(Path(f"/x/{label}-{seed}"), {"name": "e", "seed": seed}, {"label": label, "status": status, "name": "e"}, m)


def test_aggregate_over_the_seeds_present_at_each_epoch():
    long, short = fake_run([4.0, 3.0, 2.0, 1.0]), fake_run([2.0, 1.0, np.inf], status="diverged", seed=1)
    c = data.aggregate([long, short], "train_cost", "epoch", "std")
    assert c.x.tolist() == [0, 1, 2, 3]
    assert c.mean.tolist() == [3.0, 2.0, 2.0, 1.0]  # the inf is dropped, then the seed is gone
    assert c.lo.tolist() == [2.0, 1.0, 2.0, 1.0] and c.hi.tolist() == [4.0, 3.0, 2.0, 1.0]  # std within the range
    m = data.aggregate([long, short], "train_cost", "epoch", "minmax")
    assert m.lo.tolist() == [2.0, 1.0, 2.0, 1.0] and m.hi.tolist() == [4.0, 3.0, 2.0, 1.0]
    g = data.Group("e/a", "a", "k", [long, short])
    assert data.divergence_points(g, "train_cost", "epoch") == [(1.0, 1.0)]
    assert data.aggregate([long], "val_cost", "epoch", "std") is None


def test_colors_follow_sorted_labels():
    assert data.color_map(["b", "a", "b"]) == {"a": data.PALETTE[0], "b": data.PALETTE[1]}


# ---- learning-rate sensitivity -------------------------------------------------------------------------


def test_lr_sensitivity_log_x_one_line_per_optimizer(sweep):
    (ax,) = figure(sweep, kind="lr").axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    texts = legend_texts(ax)
    assert texts[:3] == ["adam", "gd", "momentum"] and "diverged" in texts[-1]
    assert len(ax.containers) == 3  # errorbar containers
    xs = sorted(set(np.concatenate([c.lines[0].get_xdata() for c in ax.containers])))
    assert xs == [0.01, 0.3, 20] or xs == [0.01, 0.3]  # lr 20: a point only where some seed survived
    (ax,) = figure(sweep, kind="lr", log_y=True, metric="train_acc", band="minmax").axes
    assert ax.get_yscale() == "log"


def test_lr_needs_several_learning_rates(moons):
    with pytest.raises(OptbenchError, match=r"--kind lr: needs runs of one optimizer at several learning rates; "
                                            r"found one lr per optimizer \(adam 0.0007, gd 0.0007, momentum 0.0007\)"):
        figure(moons, kind="lr")


# ---- decision boundary, activations, trajectory, dashboard ---------------------------------------------


def test_boundary_one_panel_per_label_first_seed(moons):
    axes = visible_axes(figure(moons, kind="boundary"))
    assert len(axes) == 3
    for ax, name in zip(axes, ["adam", "gd", "momentum"]):
        assert ax.get_title().startswith(name) and "seed 0 (first seed)" in ax.get_title()
        points = ax.collections[-1].get_offsets()
        assert len(points) == 225  # the training points (300 x 0.75)
        xlo, xhi = ax.get_xlim()
        assert xlo < points[:, 0].min() and xhi > points[:, 0].max()  # the grid has a margin


def test_boundary_needs_2d_classification(sine, paths):
    with pytest.raises(OptbenchError, match="--kind boundary: needs classification runs on 2-D data.*regression"):
        figure(sine, kind="boundary")
    with pytest.raises(OptbenchError, match="try --kind trajectory"):
        figure(paths, kind="boundary")


def test_activations_row_per_label_column_per_layer(moons):
    fig = figure(moons, kind="activations")
    assert len(fig.axes) == 3 * 2  # moons net: hidden [5, 2]
    for ax in fig.axes:
        assert "init μ" in ax.get_title() and "final μ" in ax.get_title() and "σ" in ax.get_title()
        assert len(ax.patches) == 2  # init and final histograms overlaid
    assert [ax.get_ylabel().split("\n")[0] for ax in fig.axes[::2]] == ["adam", "gd", "momentum"]
    assert len(fig.legends) == 1


def test_activations_missing_is_an_error(paths):
    with pytest.raises(OptbenchError, match="--kind activations: no run has activations.npz"):
        figure(paths, kind="activations")


def test_trajectory_contours_paths_start_and_minimum(paths):
    (ax,) = visible_axes(figure(paths, kind="trajectory"))
    assert ax.get_title() == "quadratic (condition=20)"
    assert (ax.get_xlim(), ax.get_ylim()) == ((-5.0, 5.0), (-2.0, 2.0))  # the problem's bounds
    names = ["adam", "gd", "momentum", "nesterov", "rmsprop"]
    assert legend_texts(ax) == [f"{n} (lr {lr})" for n, lr in zip(names, [0.3, 0.09, 0.02, 0.02, 0.1])] + ["start", "minimum"]
    path_lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
    assert len(path_lines) == 5 and all(len(ln.get_xdata()) == 31 for ln in path_lines)  # start + 30 steps
    assert all((ln.get_xdata()[0], ln.get_ydata()[0]) == (-4.0, 1.0) for ln in path_lines)
    (contours,) = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert np.allclose(np.diff(np.log(contours.levels)), np.log(contours.levels[1] / contours.levels[0]))  # log-spaced


def test_trajectory_needs_problem_runs(moons):
    with pytest.raises(OptbenchError, match="--kind trajectory: needs runs on a 2-D test function"):
        figure(moons, kind="trajectory")


def test_dashboard_skips_panels_that_do_not_apply(moons, sine, paths):
    axes = visible_axes(figure(moons, kind="dashboard"))
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["cost", "accuracy", "adam", "gd", "momentum"]
    sine_titles = [ax.get_title() for ax in visible_axes(figure(sine, kind="dashboard"))]
    assert sine_titles[:2] == ["cost", "fitted function (mean over seeds, their range)"]
    assert sine_titles[2].startswith("where the fit misses")
    assert [ax.get_title() for ax in visible_axes(figure(paths, kind="dashboard"))] == ["cost", "quadratic (condition=20)"]


# ---- files, options, selection -------------------------------------------------------------------------

KIND_RUNS = {"lr": "sweep", "trajectory": "paths", "heatmap": "grid_sweep", "fit": "sine", "sharpness": "sharp"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_saved_as_png(kind, request, tmp_path):
    src = request.getfixturevalue(KIND_RUNS.get(kind, "moons"))
    out = plot_command([str(src)], out=tmp_path / f"{kind}.png", kind=kind, warn=lambda m: None)
    assert out == tmp_path / f"{kind}.png"
    head = out.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


@pytest.mark.parametrize("ext, magic", [("svg", b"<?xml"), ("pdf", b"%PDF"), ("PNG", b"\x89PNG")])
def test_format_from_extension(moons, tmp_path, ext, magic):
    out = plot_command([str(moons)], out=tmp_path / f"fig.{ext}")
    assert out.read_bytes().startswith(magic)


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_same_input_gives_identical_bytes(moons, tmp_path, fmt):
    a = plot_command([str(moons)], out=tmp_path / f"a.{fmt}", seeds=True)
    b = plot_command([str(moons)], out=tmp_path / f"b.{fmt}", seeds=True)
    assert a.read_bytes() == b.read_bytes()
    for stamp in (b"Matplotlib", b"CreationDate", b"dc:date", b"Software"):
        assert stamp not in a.read_bytes()


@pytest.mark.parametrize("option, value, shown", [
    ("kind", "pie", "--kind: 'pie' is invalid (accepted: curves, accuracy, lr, boundary, activations"),
    ("metric", "loss", "--metric: 'loss' is invalid (accepted: epoch, step, lr, train_cost"),
    ("x", "time", "--x: 'time' is invalid (accepted: epoch, step, seconds)"),
    ("band", "iqr", "--band: 'iqr' is invalid (accepted: std, minmax)"),
    ("out", Path("fig.jpg"), "--out: 'fig.jpg' has .jpg (accepted: .png, .svg, .pdf)"),
    ("out", Path("fig"), "--out: 'fig' has no extension (accepted: .png, .svg, .pdf)"),
])
def test_bad_option_values(tmp_path, option, value, shown):
    with pytest.raises(OptbenchError) as err:
        plot_command([], runs_dir=tmp_path / "nowhere", **{option: value})
    assert str(err.value).startswith(shown) and "\n" not in str(err.value)


def test_default_output_path_and_newest_experiment(moons, sine, tmp_path):
    runs = tmp_path / "runs"
    for d in [*moons.iterdir(), *sine.iterdir()]:
        shutil.copytree(d, runs / d.name)
    for d in (runs).glob("sine-*"):
        s = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**s, "created": "2000-01-01T00:00:00"}))
    warnings = []
    out = plot_command([], runs_dir=runs, warn=warnings.append)
    assert out == runs / "plots" / "moons-optimizers-curves.png" and out.is_file()
    assert {r.label for r in data.select_runs([], runs, warnings.append)} == {f"moons-optimizers/{v}" for v in ("adam", "gd", "momentum")}
    for d in (runs).glob("sine-*"):
        s = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**s, "created": "2100-01-01T00:00:00"}))
    assert plot_command([], runs_dir=runs, warn=warnings.append) == runs / "plots" / "sine-regression-curves.png"
    # one line each time saying which experiment was drawn; the plots directory is not mistaken for a run
    assert warnings == [f"plotting experiment {name}, the newest of 2 in {runs}; name directories to choose"
                        for name in ("moons-optimizers", "moons-optimizers", "sine-regression")]


def test_corrupt_run_dirs_are_skipped_with_a_warning(moons, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(moons, runs)
    good = sorted(runs.iterdir())
    (runs / "empty").mkdir()
    shutil.copytree(good[0], runs / "bad-json")
    (runs / "bad-json" / "summary.json").write_text("{not json")
    shutil.copytree(good[0], runs / "still-running")
    s = json.loads((good[0] / "summary.json").read_text())
    (runs / "still-running" / "summary.json").write_text(json.dumps({**s, "status": "running"}))
    cfg = runs / "still-running" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("\nseed: 0\n", "\nseed: 7\n"))  # not a rerun of good[0]: its own seed
    shutil.copytree(good[0], runs / "truncated")
    with open(runs / "truncated" / "metrics.csv", "a") as f:
        f.write("31,1,2")
    warnings = []
    out = plot_command([str(runs)], out=tmp_path / "fig.png", warn=warnings.append)
    assert out.is_file()
    assert len(warnings) == 4 and all(w.startswith(f"warning: {runs}/") for w in warnings)
    reasons = "\n".join(warnings)
    for text in ("empty: incomplete run directory", "bad-json: unreadable summary.json", "still-running: status running",
                 "truncated row"):
        assert text in reasons


def test_no_runs_is_an_error(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(OptbenchError, match="no runs found in .*runs"):
        plot_command([], runs_dir=tmp_path / "runs")
    with pytest.raises(OptbenchError, match="no runs found in .*nowhere"):
        plot_command([], runs_dir=tmp_path / "nowhere")
    (tmp_path / "runs" / "junk").mkdir()
    warnings = []
    with pytest.raises(OptbenchError, match="no runs found"):
        plot_command([str(tmp_path / "runs")], warn=warnings.append)
    assert len(warnings) == 1


def test_matplotlib_is_imported_only_to_draw():
    code = "import sys, optbench.plot, optbench.execute, optbench.cli; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_every_kind_has_a_figure_function():
    from optbench.plots.figures import FIGURES

    assert tuple(FIGURES) == KINDS


# ---- heatmap (2-D sweeps) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """A 2 x 3 grid over momentum's lr and mu, two seeds, trained by `optbench sweep`."""
    from optbench.sweep import run_sweep

    root = tmp_path_factory.mktemp("grid")
    cfg = root / "grid.yaml"
    cfg.write_text(
        "name: lr-mu\nseeds: [0, 1]\ndata: {name: moons, n_samples: 120, seed: 3}\nmodel: {hidden: [4]}\n"
        "train: {epochs: 5, batch_size: 32}\noptimizer: {name: momentum, lr: 0.01, mu: 0.9}\n"
        "sweep: {method: grid, params: {optimizer.lr: [0.01, 0.1], optimizer.mu: [0.0, 0.5, 0.9]}}\n"
    )
    run_sweep(cfg, runs_dir=root / "runs", jobs=1)
    (sweep_dir,) = [p for p in (root / "runs").iterdir() if p.is_dir()]
    return sweep_dir


def test_heatmap_of_a_grid_sweep(grid_sweep, tmp_path):
    from matplotlib.collections import QuadMesh

    from optbench.plot import plot_command

    fig = figure(grid_sweep, kind="heatmap")
    ax = fig.axes[0]
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert mesh.get_array().shape == (3, 2)  # rows: the 3 mu values, columns: the 2 learning rates
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("optimizer.lr", "optimizer.mu")
    assert len(fig.axes) == 2  # the panel and its colorbar
    assert len([t for t in ax.texts if t.get_text()]) == 6  # every cell labelled with its value
    out = plot_command([str(grid_sweep)], kind="heatmap", out=tmp_path / "h.svg")
    assert out.exists() and out.stat().st_size > 1000


def test_heatmap_needs_two_keys(grid_sweep, moons):
    with pytest.raises(OptbenchError, match=r"--kind heatmap: needs one or two swept keys.*found: none"):
        figure(moons, kind="heatmap")
    with pytest.raises(OptbenchError, match="needs one or two swept keys"):
        figure(grid_sweep, kind="heatmap", keys="optimizer.lr,optimizer.lr")


# ---- sweep-aware, readable at any size, --data ------------------------------------------------------

import csv  # noqa: E402
import struct  # noqa: E402

from optbench.plots import choose, curves, sensitivity  # noqa: E402
from optbench.plots.record import HEADER, Record  # noqa: E402


@pytest.fixture(scope="module")
def sweep27(tmp_path_factory) -> Path:
    """configs/moons-sweep.yaml as shipped (3 variants x (8 trials + default) = 27 trials), 4 epochs, 2 seeds."""
    from optbench.sweep import run_sweep

    root = tmp_path_factory.mktemp("sweep27")
    run_sweep(CONFIGS / "moons-sweep.yaml", sets=["train.epochs=4", "seeds=[0, 1]", "data.n_samples=120", "train.snapshots_every=2"],
              runs_dir=root, jobs=1)
    (d,) = [p for p in root.iterdir() if p.is_dir()]
    return d


def drawn(d: Path, tmp_path: Path, **opts) -> list[dict]:
    """The rows `plot --data` writes for these options (the figure saved beside it)."""
    out = tmp_path / f"{opts.get('kind', 'curves')}.csv"
    plot_command([str(d)], out=tmp_path / "fig.png", data_out=out, warn=lambda m: None, **opts)
    with open(out) as f:
        return list(csv.DictReader(f))


def labels_of(rows, series: str) -> list[str]:
    return list(dict.fromkeys(r["label"] for r in rows if r["series"] == series))


def picks(d: Path) -> dict[str, set[str]]:
    """role -> labels, from sweep.results through compare's reader (independent of the plot code)."""
    from optbench.compare.read import read_facts
    from optbench.sweep import summarize

    (summary,) = summarize(read_facts([str(d)], (), warn=lambda m: None))
    out: dict[str, set[str]] = {}
    for p in summary.picks:
        out.setdefault(p.role, set()).add(p.result.runs[0].label)
    return out


def test_sweep_default_view_is_each_variants_default_and_tuned(sweep27, tmp_path):
    rows = drawn(sweep27, tmp_path)
    assert tuple(rows[0]) == HEADER
    shown = set(labels_of(rows, "train_cost"))
    chosen = picks(sweep27)
    assert shown == chosen["default"] | chosen["tuned"] and len(shown) == 6
    assert set(labels_of(rows, "val_cost")) == shown  # the validation twin of each
    band = [r for r in rows if r["series"] == "train_cost"]
    assert all(r["lo"] != "" and float(r["lo"]) <= float(r["y"]) <= float(r["hi"]) for r in band)  # seed bands


def test_sweep_top_and_labels_filter(sweep27, tmp_path):
    top2 = labels_of(drawn(sweep27, tmp_path, top=2), "train_cost")
    assert len(top2) == 3 * 3 and sum(lab.endswith("/default") for lab in top2) == 3
    adam = labels_of(drawn(sweep27, tmp_path, labels="*adam*"), "train_cost")
    assert len(adam) == 9 and all("/adam/" in lab for lab in adam)
    with pytest.raises(OptbenchError, match=r"--labels: '\*sgd\*' matches no label"):
        figure(sweep27, labels="*sgd*")
    with pytest.raises(OptbenchError, match=r"--top: 0 is invalid \(accepted: a whole number >= 1\)"):
        figure(sweep27, top=0)


def test_legend_capped_best_named_rest_grey(sweep27, tmp_path):
    rows = drawn(sweep27, tmp_path, labels="*")
    assert len(labels_of(rows, "train_cost")) == 27  # every trial drawn ...
    (ax,) = figure(sweep27, labels="*").axes
    texts = legend_texts(ax)
    named = [t for t in texts if t not in ("training", "validation", "diverged") and not t.startswith("(")]
    assert len(named) == choose.LEGEND_MAX  # ... the best LEGEND_MAX - 1 named, one entry for the rest
    assert named[-1] == f"{27 - choose.LEGEND_MAX + 1} others"
    grey = [ln for ln in ax.get_lines() if ln.get_color() == choose.OTHERS_COLOR]
    assert len(grey) == 27 - choose.LEGEND_MAX + 1


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.mark.parametrize("kind", KINDS)
def test_no_side_over_2400_px_at_27_trials(kind, sweep27, sine, paths, sharp, tmp_path):
    src = {"trajectory": paths, "fit": sine, "sharpness": sharp}.get(kind, sweep27)
    out = plot_command([str(src)], out=tmp_path / f"{kind}.png", kind=kind, labels="*", warn=lambda m: None)
    w, h = png_size(out)
    assert max(w, h) <= 2400 and min(w, h) >= 400, (w, h)


def test_overlapping_curves_get_distinct_styles(moons):
    (ax,) = figure(moons).axes
    means = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    gd, mom, adam = means["gd"], means["momentum"], means["adam"]
    assert np.allclose(gd.get_ydata(), mom.get_ydata(), rtol=0.02)  # they do coincide at this lr
    assert gd.get_marker() in ("None", None, "") and adam.get_marker() in ("None", None, "")
    assert mom.get_marker() not in ("None", None, "")  # the one on top is marked ...
    assert mom.get_linewidth() < gd.get_linewidth()  # ... and thinner, so GD shows on both sides


def test_overlap_marks_only_for_coinciding_curves():
    x = np.arange(50.0)
    a = data.Curve(x, np.exp(-x / 10), None, None)
    near = data.Curve(x, np.exp(-x / 10) * 1.001, None, None)
    far = data.Curve(x, 0.5 + 0 * x, None, None)
    styles = curves.overlap_marks([a, far, near], log_y=False, dashes=True)
    assert styles[0] == {} and styles[1] == {} and styles[2]["marker"] in curves.MARKERS
    assert styles[2]["linestyle"] != "-"


def test_bands_stay_within_the_metrics_bounds(tmp_path):
    from matplotlib.figure import Figure

    costs = [fake_run([0.5, 0.02, 0.0], seed=0), fake_run([0.9, 0.6, 0.4], seed=1), fake_run([0.4, 0.01, 0.0], seed=2)]
    group = data.Group("e/a", "a", "#1f77b4", costs)
    rec = Record("curves")
    ax = Figure().add_subplot()
    curves.draw_curves(ax, [group], metric="train_cost", x="epoch", band="std", seeds=False, log_y=False, title="",
                       lr_in_legend=False, rec=rec)
    rows = [r for r in rec.rows if r[3] == "train_cost"]
    assert all(float(r[6]) >= 0.0 for r in rows) and ax.get_ylim()[0] >= 0.0
    points = {"sgd": {0.1: [(0.0, False), (0.0, False), (0.9, False)], 1.0: [(1.0, False), (1.0, False), (0.2, False)]}}
    for metric, (lo, hi) in (("train_cost", (0.0, np.inf)), ("train_acc", (0.0, 1.0))):
        rec = Record("lr")
        sensitivity.draw_lr(Figure().add_subplot(), points, metric=metric, band="std", log_y=False, title="", rec=rec)
        for r in rec.rows:
            assert lo <= float(r[6]) <= float(r[5]) <= float(r[7]) <= hi


def test_log_y_by_default_for_regression_and_test_functions(moons, sine, paths):
    assert figure(moons).axes[0].get_yscale() == "linear"
    assert figure(sine).axes[0].get_yscale() == "log"
    (ax,) = figure(paths).axes
    assert ax.get_yscale() == "log" and ax.get_ylabel().startswith("f − f*")
    assert figure(paths, log_y=False).axes[0].get_yscale() == "linear"


def test_fit_draws_the_data_and_each_labels_mean_prediction(sine, tmp_path):
    from optbench.predict import load_predictor, run_data

    rows = drawn(sine, tmp_path, kind="fit")
    assert labels_of(rows, "fit") == [f"sine-regression/{v}" for v in ("adam", "momentum", "sgd")]
    split = run_data(next(sine.iterdir()))
    assert sum(r["series"] == "train points" for r in rows) == len(split.train.y)
    assert sum(r["series"] == "val points" for r in rows) == len(split.val.y)
    adam = [r for r in rows if r["series"] == "fit" and r["label"].endswith("/adam")]
    (run,) = [d for d in sine.iterdir() if "-adam-" in d.name]  # one seed in this fixture
    x = np.array([float(r["x"]) for r in adam])
    assert np.allclose([float(r["y"]) for r in adam], load_predictor(run)(x[:, None])[:, 0])
    assert len(labels_of(rows, "val mse")) == 3  # the held-out error along x


def test_lr_on_an_lr_by_mu_grid_draws_one_line_per_mu(grid_sweep, tmp_path):
    rows = drawn(grid_sweep, tmp_path, kind="lr")
    lines = labels_of(rows, "final train_cost")
    assert lines == ["momentum (mu 0)", "momentum (mu 0.5)", "momentum (mu 0.9)"]
    runs = runs_in(grid_sweep)
    for r in rows:
        if r["label"] == "momentum (mu 0.5)":
            lr = float(r["x"])
            finals = [data.final_value(u, "train_cost") for u in runs
                      if u.config["optimizer"]["mu"] == 0.5 and u.config["optimizer"]["lr"] == lr]
            assert len(finals) == 2  # the two seeds only, not the other mu values
            assert float(r["y"]) == pytest.approx(np.mean(finals))
            assert float(r["hi"]) - float(r["y"]) == pytest.approx(min(np.std(finals), max(finals) - np.mean(finals)))


def test_heatmap_shows_the_sweeps_metric_and_marks_the_selected_trial(grid_sweep, tmp_path):
    rows = drawn(grid_sweep, tmp_path, kind="heatmap")
    runs = runs_in(grid_sweep)
    assert len(rows) == 6
    for r in rows:  # best_cost without a validation split: the best training cost, mean over seeds
        mine = [u for u in runs if u.label == r["label"]]
        assert float(r["z"]) == pytest.approx(np.mean([np.nanmin(u.metrics["train_cost"]) for u in mine]))
    (best,) = [r for r in rows if r["series"] == "best"]
    assert float(best["z"]) == min(float(r["z"]) for r in rows)
    fig = figure(grid_sweep, kind="heatmap")
    ax = fig.axes[0]
    from matplotlib.colors import to_rgba

    frames = [p for p in ax.patches if p.get_edgecolor() == to_rgba("red")]
    assert len(frames) == 1  # one selected trial, framed at its cell: (lr index, mu index)
    lrs, mus = sorted({float(r["x"]) for r in rows}), sorted({float(r["y"]) for r in rows})
    cx, cy = frames[0].get_x() + frames[0].get_width() / 2, frames[0].get_y() + frames[0].get_height() / 2
    assert (round(cx), round(cy)) == (lrs.index(float(best["x"])), mus.index(float(best["y"])))


@pytest.fixture(scope="module")
def acc_sweep(grid_sweep):
    """The same grid sweep selected on best accuracy (higher is better)."""
    from optbench.sweep import run_sweep

    cfg = next(grid_sweep.parent.parent.glob("*.yaml"))
    run_sweep(cfg, sets=["sweep.metric=best_acc"], runs_dir=grid_sweep.parent.parent / "acc", jobs=1)
    (d,) = [p for p in (grid_sweep.parent.parent / "acc").iterdir() if p.is_dir()]
    return d


def test_heatmap_colours_mean_better_the_same_way_for_every_metric(grid_sweep, acc_sweep, tmp_path):
    from matplotlib import colormaps
    from matplotlib.collections import QuadMesh

    top = colormaps["viridis"](1.0)  # yellow: the better end
    for d, pick in ((grid_sweep, min), (acc_sweep, max)):
        rows = drawn(d, tmp_path, kind="heatmap")
        best = pick(float(r["z"]) for r in rows)
        (mesh,) = [c for c in figure(d, kind="heatmap").axes[0].collections if isinstance(c, QuadMesh)]
        assert np.allclose(mesh.to_rgba(best), top)


def test_data_csv_is_byte_identical_and_checked(moons, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    plot_command([str(moons)], out=tmp_path / "a.png", data_out=a, kind="dashboard", seeds=True)
    plot_command([str(moons)], out=tmp_path / "b.png", data_out=b, kind="dashboard", seeds=True)
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 1000
    with pytest.raises(OptbenchError, match=r"--data: 'x.txt' is not a .csv file"):
        plot_command([str(moons)], out=tmp_path / "c.png", data_out=Path("x.txt"))


def test_cli_plot_options(sweep27, tmp_path, cli):
    rc, out, err = cli("plot", sweep27, "--top", "1", "--linear-y", "--data", tmp_path / "d.csv", "-o", tmp_path / "f.png")
    assert rc == 0, err
    with open(tmp_path / "d.csv") as f:
        assert len(labels_of(list(csv.DictReader(f)), "train_cost")) == 6
    rc, out, err = cli("plot", sweep27, "--top", "0")
    assert rc == 2 and err.strip() == "error: --top: 0 is invalid (accepted: a whole number >= 1)"

