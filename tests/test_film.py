"""Parameter snapshots (train.snapshots_every) and the figures drawn from them: --kind landscape, film, layers.

Runs are trained by the engine through the CLI (a few epochs), then plotted; the numbers a figure draws are
checked against what training logged."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import CONFIGS, run_cli
from optbench import checkpoint, landscape as ls, snapshots
from optbench.config import load_experiment
from optbench.plot import Options, make_figure, plot_command
from optbench.plots import data, film, layers, snapdata
from optbench.plots.choose import choose
from optbench.plots.landscape import line_to_final, pca_plane
from optbench.plots.record import Record
from optbench.records import fingerprint
from optbench.train import Trainer

EPOCHS, EVERY = 10, 4  # snapshots at 0, 4, 8 and the last, 10


def _train(root: Path, config: str, *sets: str) -> Path:
    code, out, err = run_cli("train", CONFIGS / config, "--runs-dir", root, *[a for s in sets for a in ("--set", s)])
    assert code == 0, err
    return root


@pytest.fixture(scope="module")
def moons(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("moons"), "moons-optimizers.yaml", f"train.epochs={EPOCHS}",
                  f"train.snapshots_every={EVERY}", "seeds=[0]", "optimizer.lr=0.05",
                  "variants.momentum.optimizer.lr=0.05", "variants.adam.optimizer.lr=0.02")


@pytest.fixture(scope="module")
def sine(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("sine"), "sine-regression.yaml", "train.epochs=6", "train.snapshots_every=2",
                  "seeds=[0]", "regularization.l2=0.001")


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("plain"), "sine-regression.yaml", "train.epochs=2", "seeds=[0]")


def dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def view_of(root: Path):
    runs = data.read_runs([root], lambda m: None)
    return choose(data.group_runs(runs), metric="train_cost")


# ---- snapshots.npz ----------------------------------------------------------------------------------------


def test_snapshots_every_k_epochs_first_is_the_init_last_is_params_npz(moons):
    net = None
    for d in dirs(moons):
        s = snapshots.read(d, "test")
        assert s.epoch.tolist() == [0, 4, 8, 10]
        summary = json.loads((d / "summary.json").read_text())
        assert fingerprint(s.theta[0]) == summary["fingerprints"]["init"]  # the weights training started from
        net = net or ls.RunNet(d)
        with np.load(d / "params.npz") as p:
            final = {k: v[0] for k, v in net.layout.named(s.theta[-1:]).items()}
            assert all(np.array_equal(final[k], p[k]) for k in p.files)
        assert not np.array_equal(s.theta[1], s.theta[2])  # they move
        assert yaml.safe_load((d / "config.yaml").read_text())["train"]["snapshots_every"] == EVERY


def test_snapshots_are_taken_where_the_metrics_are_schedule_frees_x_and_polyaks_average(tmp_path):
    """A rule evaluated at another point than theta (schedule-free's x) and Polyak averaging: a snapshot is that
    point, so the one at epoch 3 of a 6-epoch run is a 3-epoch run's params.npz (constant rates: the same steps)."""
    sets = ("train.snapshots_every=3", "seeds=[0]", "variants.adam.optimizer={name: schedule_free_adamw, lr: 0.0025}",
            "variants.momentum.regularization.polyak=0.9")
    six = _train(tmp_path / "six", "moons-optimizers.yaml", "train.epochs=6", *sets)
    three = _train(tmp_path / "three", "moons-optimizers.yaml", "train.epochs=3", *sets)
    net = None
    for d6, d3 in zip(dirs(six), dirs(three), strict=True):
        s = snapshots.read(d6, "test")
        assert s.epoch.tolist() == [0, 3, 6]
        net = net or ls.RunNet(d6)
        with np.load(d3 / "params.npz") as p:
            at3 = {k: v[0] for k, v in net.layout.named(s.theta[1:2]).items()}
            assert all(np.array_equal(at3[k], p[k]) for k in p.files), d6.name


def test_without_the_key_no_snapshots_and_the_config_as_before(plain):
    (d,) = [p for p in dirs(plain) if "adam" in p.name]
    assert not (d / "snapshots.npz").exists()
    assert "snapshots_every" not in yaml.safe_load((d / "config.yaml").read_text())["train"]


def test_a_resumed_run_keeps_the_snapshots_taken_before_its_checkpoint():
    cfgs = load_experiment(CONFIGS / "moons-optimizers.yaml", sets=["train.epochs=9", "train.snapshots_every=2", "seeds=[0]"])
    saved = {}

    def on_epoch(rec):
        if rec.epoch == 5:
            with tempfile.TemporaryDirectory() as tmp:  # through the file, as `train --resume` reads it
                for r, st in enumerate(rec.state()):
                    checkpoint.save(Path(tmp) / "c.npz", st)
                    saved[r] = checkpoint.load(Path(tmp) / "c.npz")

    full = Trainer(cfgs).run(on_epoch=on_epoch)
    again = Trainer(cfgs).run(resume=[saved[r] for r in range(len(cfgs))])
    for a, b in zip(full, again):
        sa, sb = a.extra["snapshots"], b.extra["snapshots"]
        assert sa["epoch"].tolist() == [0, 2, 4, 6, 8, 9] == sb["epoch"].tolist()
        assert sa["theta"].tobytes() == sb["theta"].tobytes()


def test_negative_snapshots_every_is_rejected(tmp_path):
    code, _, err = run_cli("train", CONFIGS / "sine-regression.yaml", "--runs-dir", tmp_path, "--set", "train.snapshots_every=-1")
    assert code == 2 and err.strip().startswith("error: train.snapshots_every: -1") and len(err.strip().splitlines()) == 1


# ---- the landscape -----------------------------------------------------------------------------------------


def test_interpolation_ends_at_the_logged_initial_and_final_costs(moons, sine):
    for root in (moons, sine):  # sine: with an L2 term
        for shot in snapdata.load(view_of(root), "test", print, 4):
            alpha = ls.alphas()
            J = line_to_final(shot, alpha)
            logged0 = shot.run.metrics["train_cost"][0]
            final = shot.run.summary["final_eval"]["train_cost"]  # test mode, final weights: what alpha 1 is
            assert J[alpha == 0.0][0] == pytest.approx(logged0, rel=1e-12)
            assert J[alpha == 1.0][0] == pytest.approx(final, rel=1e-12)
            assert J[alpha == 1.0][0] < J[alpha == 0.0][0]


def test_pca_frame_starts_at_the_origin_and_the_plane_through_it_is_the_initial_cost(moons):
    shot = snapdata.load(view_of(moons), "test", print, 4)[0]
    surf = pca_plane(shot)
    assert np.allclose(surf.path[0], 0.0)
    assert (surf.path[-1] > 0).all()  # signs: the path ends at positive coordinates
    assert 0.5 < surf.explained.sum() <= 1.0 + 1e-12
    fr = ls.pca_frame(shot.snaps.theta)
    assert np.allclose(fr.U @ fr.U.T, np.eye(2))
    J0 = shot.net.cost(ls.plane(fr.origin, fr.U, np.array([0.0]), np.array([0.0])))
    assert J0[0] == pytest.approx(shot.run.metrics["train_cost"][0], rel=1e-12)


def test_filter_normalized_directions_match_each_neurons_norm_and_leave_biases():
    from optbench.params import Layout

    lay = Layout.mlp([2, 5, 3, 1], norm=True)
    theta = np.random.default_rng(1).standard_normal(lay.P)
    d = ls.filter_normalized(theta, lay, np.random.default_rng(0))
    assert np.array_equal(d, ls.filter_normalized(theta, lay, np.random.default_rng(0)))  # seeded: reproducible
    for blk in lay.blocks:
        v, t = lay.view(d[None], blk)[0], lay.view(theta[None], blk)[0]
        if blk.kind == "dense":
            assert np.allclose(np.linalg.norm(v[:, :-1], axis=1), np.linalg.norm(t[:, :-1], axis=1))
            assert not v[:, -1].any()
        else:
            assert not v.any()


def test_landscape_figure_states_its_directions_and_draws_the_path(moons):
    rec = Record("landscape")
    fig = make_figure(data.read_runs([moons], print), Options(kind="landscape"), rec=rec)
    titles = " ".join(ax.get_title() + ax.get_xlabel() for ax in fig.get_axes())
    assert "filter-normalized random directions" in titles and "PC1 of θ_t − θ_0" in titles and "principal directions" in titles
    paths = [r for r in rec.rows if r[3] == "path"]
    assert len(paths) == 3 * 4 and float(paths[0][4]) == 0.0 == float(paths[0][5])  # 3 labels x 4 snapshots, from (0, 0)
    between = {r[2] for r in rec.rows if r[1] == "between labels"}
    assert len(between) == 3  # every pair of the three labels: same model and data


# ---- the film ---------------------------------------------------------------------------------------------


def test_film_gif_has_a_frame_per_snapshot_epoch(moons, tmp_path):
    out = plot_command([str(moons)], out=tmp_path / "film.gif", kind="film", warn=print)
    assert list(tmp_path.iterdir()) == [out]  # written atomically, no temporary file left
    with Image.open(out) as im:
        assert im.n_frames == 4 and im.info["loop"] == 0
    again = plot_command([str(moons)], out=tmp_path / "again.gif", kind="film", warn=print)
    assert again.read_bytes() == out.read_bytes()  # the same runs give the same file


def test_film_strip_columns_are_the_epochs_and_regression_draws_the_fit(moons, sine):
    fig = make_figure(data.read_runs([moons], print), Options(kind="film"))
    titles = [ax.get_title() for ax in fig.get_axes()]
    assert len(titles) == 3 * 4 and sum("epoch 10" in t for t in titles) == 3
    rec = Record("film")
    make_figure(data.read_runs([sine], print), Options(kind="film"), rec=rec)
    fits = [r for r in rec.rows if r[3].startswith("fit epoch")]
    reel = film.reels(view_of(sine), print)[0]
    last = [float(r[5]) for r in fits if r[3] == "fit epoch 6" and r[2] == reel.shot.group.label]
    from optbench.predict import load_predictor  # the film's last frame is the trained net's own prediction

    assert np.allclose(last, load_predictor(reel.shot.run.path)(reel.grid[0][:, None])[:, 0])


# ---- layers ---------------------------------------------------------------------------------------------


def test_layers_update_ratio_between_snapshots(moons):
    shot = snapdata.load(view_of(moons), "test", print, 4)[0]
    st = layers.stats(shot)
    W1 = shot.net.layout.named(shot.snaps.theta)["W1"].reshape(len(shot.snaps.epoch), -1)
    want = np.linalg.norm(W1[1:] - W1[:-1], axis=1) / np.linalg.norm(W1[:-1], axis=1)
    assert np.allclose(st.ratio[0], want) and st.ratio.shape == (3, 3)
    # the recomputed gradient at the final snapshot is the engine's own full-batch gradient
    g = np.zeros_like(shot.snaps.theta[-1:])
    shot.net.net(1).objective(shot.snaps.theta[-1:], shot.net.A0, shot.net.Y, g)
    assert np.allclose(st.grad_norm[0, -1], np.linalg.norm(shot.net.layout.named(g)["W1"]))
    fig = make_figure(data.read_runs([moons], print), Options(kind="layers"))
    assert sum(ax.get_visible() for ax in fig.get_axes()) == 3 * 2 * 4  # 3 labels x 2 rows x (3 layers + 1)


# ---- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["landscape", "film", "layers"])
def test_runs_without_snapshots_give_one_line_naming_the_key(plain, kind, tmp_path):
    code, _, err = run_cli("plot", plain, "--kind", kind, "--out", tmp_path / "x.png")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: --kind {kind}:") and "train.snapshots_every" in err


def test_gif_only_for_the_film(moons, tmp_path):
    code, _, err = run_cli("plot", moons, "--kind", "curves", "--out", tmp_path / "x.gif")
    assert code == 2 and ".gif with --kind film" in err and not (tmp_path / "x.gif").exists()
