"""Sharpness (optbench/sharpness.py): power iteration against known spectra, the exact Hessian-vector product against
central differences of the gradient, the top eigenvalue against the full Hessian of small nets, the metrics column
a run writes (and the one it does not), compare's final_sharpness and `plot --kind sharpness`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optbench.config import load_experiment
from optbench.errors import OptbenchError
from optbench.execute import execute
from optbench.runs.columns import ALL_COLUMNS, COLUMNS
from optbench.runs.read import read_run
from optbench.sharpness import TOL, Sharpness, hvp_fd, top_eigenvalue
from optbench.sections import Model
from optbench.train import Trainer

rng0 = np.random.default_rng(0)
D, N = 3, 40
X = rng0.standard_normal((N, D))
TARGETS = {"bce": (1, np.sign(X[:, :1] * X[:, 1:2]).T), "softmax_ce": (3, np.eye(3)[rng0.integers(0, 3, N)].T),
           "mse": (2, rng0.standard_normal((2, N)))}


def probe_for(loss: str, model: dict, l2=(0.0, 0.3), seeds=(0, 1)) -> tuple[Sharpness, np.ndarray]:
    """A Sharpness over R = len(seeds) replicas of a small net on 40 examples, and their parameters (moved off
    initialization, so that no ReLU unit sits exactly at its kink)."""
    C, Y = TARGETS[loss]
    M = np.vstack([X.T, np.ones(N), Y])
    R = len(seeds)
    s = Sharpness(Model.model_construct(**{"norm": "none", "drop_prob": 0.0, **model}), loss, M, D, C, l2=np.array(l2[:R]).reshape(R, 1), seeds=list(seeds))
    th = s.net.init_params([("xavier", {})] * R, [np.random.default_rng(i) for i in seeds])
    th += 0.2 * np.random.default_rng(9).standard_normal(th.shape)
    return s, th


def full_hessian(s: Sharpness, th: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """(R, P, P): column j = central difference of the exact gradient along e_j (independent of the R-op), symmetrized."""
    R, P = th.shape
    H = np.stack([hvp_fd(s.grad, th, np.broadcast_to(np.eye(P)[j], (R, P)).copy(), np.full((R, 1), h))
                  for j in range(P)], axis=2)
    return (H + H.transpose(0, 2, 1)) / 2


def test_power_iteration_finds_the_largest_eigenvalue_of_known_spectra():
    """Three replicas: a clear gap, a close pair (slow convergence), and a negative eigenvalue largest in magnitude
    (a saddle: power iteration's first pass finds -9, the shifted pass the top +2)."""
    P = 20
    spectra = [np.r_[5.0, np.linspace(-1, 2, P - 1)], np.r_[3.0, 2.9, np.linspace(-1, 1, P - 2)],
               np.r_[-9.0, 2.0, np.linspace(-3, 1, P - 2)]]
    Q = [np.linalg.qr(np.random.default_rng(r).standard_normal((P, P)))[0] for r in range(3)]
    A = np.stack([q @ np.diag(lam) @ q.T for q, lam in zip(Q, spectra)])
    lam, used = top_eigenvalue(lambda v: np.einsum("rij,rj->ri", A, v), np.random.default_rng(5).standard_normal((3, P)))
    assert np.allclose(lam, [5.0, 3.0, 2.0], rtol=TOL), lam
    assert used > 2


@pytest.mark.parametrize("loss", sorted(TARGETS))
@pytest.mark.parametrize("act", [{"name": "tanh"}, {"name": "sigmoid"}, {"name": "elu", "alpha": 0.7}, {"name": "relu"},
                                 {"name": "leaky_relu", "slope": 0.1}, {"name": "identity"}])
@pytest.mark.parametrize("hidden", [[], [5, 4]])
def test_exact_hessian_vector_product_matches_central_differences(loss, act, hidden):
    s, th = probe_for(loss, {"hidden": hidden, "activation": act})
    V = np.random.default_rng(3).standard_normal(th.shape)
    exact, numeric = s.hvp(th, V), hvp_fd(s.grad, th, V, np.full((2, 1), 1e-5))
    assert np.abs(exact - numeric).max() <= 1e-7 * np.abs(exact).max()


@pytest.mark.parametrize("loss, model", [
    ("bce", {"hidden": [6, 4], "activation": {"name": "tanh"}}),
    ("softmax_ce", {"hidden": [8], "activation": {"name": "relu"}}),
    ("mse", {"hidden": [5], "activation": {"name": "elu"}}),
    ("bce", {"hidden": [6, 4], "activation": {"name": "tanh"}, "norm": "batch"}),  # the finite-difference path
    ("softmax_ce", {"hidden": [6], "activation": {"name": "tanh"}, "norm": "layer"}),
])
def test_top_eigenvalue_against_the_full_hessian(loss, model):
    """The probe's lambda_max is the full Hessian's largest eigenvalue to 1e-4 relative: its stopping rule (residual
    <= TOL |lambda|, TOL = 1e-3) puts an eigenvalue within 1e-3 |lambda|, and the error is about residual^2 / gap
    (measured here: 8e-12 to 1.1e-5). The exact products make a Hessian symmetric to rounding."""
    s, th = probe_for(loss, model)
    H = full_hessian(s, th)
    if s.exact:
        Hx = np.stack([s.hvp(th, np.broadcast_to(np.eye(th.shape[1])[j], th.shape).copy()) for j in range(th.shape[1])], axis=2)
        assert np.abs(Hx - Hx.transpose(0, 2, 1)).max() <= 1e-12 * np.abs(Hx).max()
        assert np.abs(Hx - H).max() <= 1e-6 * np.abs(Hx).max()
    top = np.linalg.eigvalsh(H)[:, -1]
    lam = s.probe(th, epoch=0)
    assert np.all(np.abs(lam - top) <= 1e-4 * np.abs(top)), (lam, top)


def test_each_replica_measures_what_it_measures_alone():
    s3, th3 = probe_for("bce", {"hidden": [6], "activation": {"name": "tanh"}}, l2=(0.0, 0.3, 0.1), seeds=(0, 1, 2))
    together = s3.probe(th3, epoch=4)
    for r in range(3):
        s1, _ = probe_for("bce", {"hidden": [6], "activation": {"name": "tanh"}}, l2=((0.0, 0.3, 0.1)[r],), seeds=(r,))
        assert s1.probe(th3[r : r + 1], epoch=4)[0] == pytest.approx(together[r], rel=1e-12)
    assert len(set(together.round(6))) == 3


def tiny(tmp_path, *sets):
    cfgs = load_experiment("configs/batch-size-sharpness.yaml", sets=["seeds=[0, 1]", "train.epochs=7",
                                                                      "variants.full.train.epochs=7", *sets])
    outcomes, _ = execute(cfgs, tmp_path)
    return {(o.cfg["label"].split("/")[1], o.cfg["seed"]): o.path for o in outcomes}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_metrics_column_every_k_epochs_and_at_the_last(tmp_path, dtype):
    runs = tiny(tmp_path, "train.sharpness_every=3", "variants.full.train.sharpness_every=3", f"train.dtype={dtype}")
    for (variant, seed), d in runs.items():
        assert (d / "metrics.csv").read_text().splitlines()[0] == ",".join(ALL_COLUMNS)
        run = read_run(d)
        s = run.metrics["sharpness"]
        assert np.flatnonzero(np.isfinite(s)).tolist() == [0, 3, 6, 7]  # every 3 epochs, and the last
        # the last value is the final parameters' sharpness, measured again from params.npz
        cfg = run.config
        tr = Trainer([cfg])
        with np.load(d / "params.npz") as p:
            theta = tr.net.layout.from_named({k: p[k][None] for k in p.files}, dtype=np.float64)
        assert tr.sharp.probe(theta, 7)[0] == pytest.approx(s[-1], rel=1e-6 if dtype == "float32" else 1e-12)
        summary = json.loads((d / "summary.json").read_text())
        assert summary["sharpness_seconds"] > 0 and summary["sharpness_products"] >= 4


def comparison(root):
    from optbench.compare import compare, records, render_plain

    c = compare([root], warn=pytest.fail)
    return {r["label"].split("/")[1]: r for r in records(c)}, render_plain(c)


def test_runs_without_it_write_the_old_columns_and_read_back_nan(tmp_path):
    runs = tiny(tmp_path, "train.sharpness_every=0", "variants.full.train.sharpness_every=0")
    d = runs["b8", 0]
    assert (d / "metrics.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert "sharpness_every" not in (d / "config.yaml").read_text()  # resolved as before the option existed
    assert np.isnan(read_run(d).metrics["sharpness"]).all() and len(read_run(d).metrics["sharpness"]) == 8
    rows, table = comparison(tmp_path)
    assert {r["final_sharpness"] for r in rows.values()} == {None} and "final sharpness" not in table
    assert all(r["health"] == [] for r in rows.values())
    from optbench.plot import plot_command

    with pytest.raises(OptbenchError, match="train.sharpness_every"):
        plot_command([str(tmp_path)], out=tmp_path / "s.png", kind="sharpness", warn=pytest.fail)


def test_compare_and_plot_read_it(tmp_path):
    runs = tiny(tmp_path, "train.sharpness_every=2", "variants.full.train.sharpness_every=7")
    rows, table = comparison(tmp_path)
    for v in ("b8", "b64", "full"):
        last = [read_run(runs[v, s]).metrics["sharpness"][-1] for s in (0, 1)]
        assert rows[v]["final_sharpness"] == pytest.approx(np.mean(last), rel=1e-12)
    assert "final sharpness" in table
    from optbench.plot import Options, make_figure
    from optbench.plots import data

    fig = make_figure(data.select_runs([str(tmp_path)], tmp_path, warn=pytest.fail), Options(kind="sharpness"))
    (ax,) = fig.axes
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert {"b8", "b64", "full", "_edge"} <= set(lines)
    assert np.allclose(lines["_edge"].get_ydata(), 2 / 0.1)  # the edge of stability at lr 0.1
    assert lines["full"].get_xdata().tolist() == [0, 7]  # measured epochs only, NaN rows left out
    assert ax.get_yscale() == "log" and any("edge of stability" in t.get_text() for t in ax.get_legend().get_texts())


@pytest.mark.parametrize("sets, shown", [
    (["train.sharpness_every=-1"], "train.sharpness_every: -1 is invalid"),
    (["train.sharpness_every=1.5"], "train.sharpness_every: 1.5 is invalid"),
])
def test_bad_values(sets, shown):
    with pytest.raises(OptbenchError, match=shown):
        load_experiment("configs/batch-size-sharpness.yaml", sets=sets)


def test_not_for_2d_problems():
    with pytest.raises(OptbenchError, match="train.sharpness_every: 2 is invalid for the 2-D problem"):
        load_experiment("configs/ravine-trajectories.yaml", sets=["train.sharpness_every=2"])
