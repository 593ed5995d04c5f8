"""Fine-tuning and initial parameters: params_init.npz, train.epochs: 0, model.init_from, model.freeze, moons rotate."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import yaml

from optbench import finetune
from optbench.config import expand, load_data
from optbench.data import load
from optbench.errors import OptbenchError
from optbench.model import build
from optbench.sections import Model
from optbench.optim import OPTIMIZERS
from optbench.train import STREAMS
from optbench.trainers import train_runs

BASE = {
    "name": "ft",
    "data": {"name": "moons", "n_samples": 120, "noise": 0.2, "seed": 3},
    "model": {"hidden": [6, 4], "activation": "relu", "init": "he"},
    "loss": "bce",
    "train": {"epochs": 4, "batch_size": 32},
    "optimizer": {"name": "adam", "lr": 0.01},
}


def raw(**over) -> dict:
    """BASE with sections replaced or merged (a dict value merges into BASE's section)."""
    out = copy.deepcopy(BASE)
    for k, v in over.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def fails(match: str):
    return pytest.raises(OptbenchError, match=f"^{match}$")


def npz(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_config(tmp_path, cfg: dict, name="c.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def source_run(cli, tmp_path, **over):
    """Train BASE (or a variation) once with the CLI; its run directory."""
    runs = tmp_path / "src"
    code, _, err = cli("train", write_config(tmp_path, raw(**over), "src.yaml"), "-q", "--runs-dir", runs)
    assert code == 0, err
    (d,) = runs.iterdir()
    return d


# ---- params_init.npz and train.epochs: 0 -----------------------------------------------------------


def test_params_init_is_the_initializers_draw_for_the_seed_and_epochs_0_evaluates_it(cli, tmp_path):
    cfg = raw(model={"norm": "batch"}, seed=7, data={"val_fraction": 0.25}, train={"epochs": 0})
    code, _, err = cli("train", write_config(tmp_path, cfg), "-q", "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    (d,) = (tmp_path / "runs").iterdir()
    init, final = npz(d / "params_init.npz"), npz(d / "params.npz")
    assert set(init) == set(final) == set(finetune.expected_arrays([2, 6, 4, 1], "batch"))
    assert all(np.array_equal(init[k], final[k]) for k in init)  # nothing trained
    # the model's own init from the seed's "init" stream (train.STREAMS), independent of the trainer
    net = build(Model.model_construct(**{**BASE["model"], "activation": {"name": "relu"}, "norm": "batch", "drop_prob": 0.0}), "bce", 2, 1,
                R=1, dtype=np.float64)
    rng = np.random.default_rng(np.random.SeedSequence(7).spawn(len(STREAMS))[STREAMS.index("init")])
    theta = net.init_params([("he", {})], [rng])
    for k, v in net.layout.named(theta).items():
        assert np.array_equal(init[k], v[0]), k
    assert np.array_equal(init["running_var1"], np.ones((6, 1)))
    rows = np.genfromtxt(d / "metrics.csv", delimiter=",", skip_header=1, ndmin=2)  # empty cells: NaN
    assert rows.shape[0] == 1 and rows[0, 0] == 0  # the epoch-0 row alone
    s = json.loads((d / "summary.json").read_text())
    assert s["status"] == "completed" and s["epochs"] == 0
    assert s["final"]["train_cost"] == s["initial"]["train_cost"] == rows[0, 3]
    assert s["final_eval"]["train_cost"] == pytest.approx(rows[0, 3], rel=1e-12)  # final = initial model
    # the readers take a 0-epoch run: compare, every plot kind that applies, the report
    code, out, err = cli("compare", tmp_path / "runs", "--format", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["final_val_cost"] == pytest.approx(rows[0, 4], rel=1e-12) and row["auc"] == pytest.approx(rows[0, 3])
    for kind in ("curves", "accuracy", "boundary", "activations", "dashboard"):
        code, _, err = cli("plot", tmp_path / "runs", "--kind", kind, "--out", tmp_path / f"{kind}.png")
        assert code == 0 and (tmp_path / f"{kind}.png").stat().st_size > 0, (kind, err)
    code, _, err = cli("report", tmp_path / "runs", "--out", tmp_path / "r.html")
    assert code == 0, err


def test_a_run_replays_in_torch_from_its_own_files(cli, tmp_path):
    """Full-batch SGD: config.yaml (the data), params_init.npz (the start) and torch.optim.SGD give every row of
    metrics.csv and params.npz (the order of examples does not matter in a full batch)."""
    torch = pytest.importorskip("torch")
    cfg = raw(optimizer={"name": "sgd", "lr": 0.5}, train={"epochs": 25, "batch_size": "full"}, seed=2)
    code, _, err = cli("train", write_config(tmp_path, cfg), "-q", "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    (d,) = (tmp_path / "runs").iterdir()
    run_cfg = yaml.safe_load((d / "config.yaml").read_text())
    split = load_data(run_cfg["data"])
    X = torch.tensor(split.train.X)
    y = torch.tensor(split.train.y, dtype=torch.float64).reshape(-1, 1)
    init = npz(d / "params_init.npz")
    layers = [torch.nn.Linear(a, b, dtype=torch.float64) for a, b in zip([2, 6, 4], [6, 4, 1])]
    with torch.no_grad():
        for l, lin in enumerate(layers, start=1):
            lin.weight.copy_(torch.tensor(init[f"W{l}"]))
            lin.bias.copy_(torch.tensor(init[f"b{l}"]))
    net = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    costs = []
    for _ in range(25):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(X), y)
        costs.append(loss.item())
        loss.backward()
        opt.step()
    logged = np.loadtxt(d / "metrics.csv", delimiter=",", skiprows=1, usecols=3)
    # row 0: the initial parameters in test mode; row e: the cost epoch e's step was taken at (theta_{e-1})
    np.testing.assert_allclose(logged[0], costs[0], rtol=1e-12)
    np.testing.assert_allclose(logged[1:], costs, rtol=1e-10)
    final = npz(d / "params.npz")
    for l, lin in enumerate(layers, start=1):
        np.testing.assert_allclose(final[f"W{l}"], lin.weight.detach().numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(final[f"b{l}"], lin.bias.detach().numpy(), rtol=1e-10, atol=1e-13)
    assert not np.allclose(final["W1"], init["W1"])  # it did train


# ---- model.freeze ------------------------------------------------------------------------------------

OPTIONS = {"adamw": {"weight_decay": 0.1}, "lion": {"weight_decay": 0.1}, "lbfgs": {"max_iter": 5}}


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_frozen_layers_stay_bit_identical_under_every_optimizer(name):
    """L2 and decoupled weight decay included: the frozen layer's W and b are the initial bytes, the others move."""
    bs = "full" if name == "lbfgs" else 32
    over = dict(optimizer={"name": name, "lr": 0.05 if name != "lbfgs" else 1.0, **OPTIONS.get(name, {})},
                train={"batch_size": bs, "epochs": 3}, regularization={"l2": 0.01})
    frozen, free = expand(raw(model={"freeze": [2]}, **over)) + expand(raw(**over))
    a, b = train_runs([frozen, free])  # one group: the freeze is per replica
    (solo,) = train_runs([frozen])
    init = a.extra["params_init"]
    for k in ("W2", "b2"):
        assert a.params[k].tobytes() == init[k].tobytes(), k
        assert not np.array_equal(b.params[k], init[k]), k  # the same run unfrozen moves them
    for k in ("W1", "b1", "W3", "b3"):
        assert not np.array_equal(a.params[k], init[k]), k
    assert all(solo.params[k].tobytes() == a.params[k].tobytes() for k in a.params)  # grouped or alone: the same


def test_freeze_takes_norm_parameters_of_its_layer_too():
    (cfg,) = expand(raw(model={"freeze": [1], "norm": "batch"}))
    (res,) = train_runs([cfg])
    init = res.extra["params_init"]
    for k in ("W1", "b1", "gamma1", "beta1"):
        assert np.array_equal(res.params[k], init[k]), k
    assert not np.array_equal(res.params["gamma2"], init["gamma2"])
    assert not np.array_equal(res.buffers["running_mean1"], init["running_mean1"])  # statistics still follow the data


@pytest.mark.parametrize("freeze, message", [
    ([4], r"model.freeze: 4 is not a layer of this net \(accepted: 1 to 3, as in W1..W3\)"),
    ([1, 1], r"model.freeze: \[1, 1\] has duplicates"),
    ([1, 2, 3], r"model.freeze: \[1, 2, 3\] freezes every layer: nothing would train "
                r"\(to evaluate the initial parameters only, set train.epochs: 0\)"),
    ([0], r"model.freeze.0: 0 is invalid: input should be greater than or equal to 1"),
])
def test_bad_freeze_is_one_line(freeze, message):
    with fails(message):
        expand(raw(model={"freeze": freeze}))


# ---- model.init_from ----------------------------------------------------------------------------------


def test_init_from_a_run_directory_starts_from_its_params(cli, tmp_path):
    src = source_run(cli, tmp_path)
    (cfg,) = expand(raw(model={"init_from": str(src)}, data={"rotate": 30}))
    assert cfg["model"]["init_from"] == str(src.resolve())
    (res,) = train_runs([cfg])
    source = npz(src / "params.npz")
    assert all(np.array_equal(res.extra["params_init"][k], source[k]) for k in source)
    # the CLI writes the directory into config.yaml, and that config reruns the run exactly
    code, _, err = cli("train", write_config(tmp_path, raw(model={"init_from": str(src)})), "-q", "--runs-dir", tmp_path / "ft")
    assert code == 0, err
    (d,) = (tmp_path / "ft").iterdir()
    assert yaml.safe_load((d / "config.yaml").read_text())["model"]["init_from"] == str(src.resolve())
    assert all(np.array_equal(npz(d / "params_init.npz")[k], source[k]) for k in source)
    code, _, err = cli("train", d / "config.yaml", "-q", "--runs-dir", tmp_path / "again")
    assert code == 0, err
    (e,) = (tmp_path / "again").iterdir()
    assert npz(e / "params.npz").keys() == npz(d / "params.npz").keys()
    assert all(np.array_equal(npz(e / "params.npz")[k], npz(d / "params.npz")[k]) for k in source)


def test_init_from_checks_keys_and_shapes_in_one_line(cli, tmp_path):
    src = source_run(cli, tmp_path)
    p = src / "params.npz"
    with fails(rf"model.init_from: W2 in {p} has shape \(4, 6\), the model expects \(5, 6\)"):
        expand(raw(model={"init_from": str(src), "hidden": [6, 5]}))
    with fails(rf"model.init_from: {p} has no gamma1 \(the model expects gamma1 of shape \(6,\); it holds W1, b1, W2, b2, W3, b3\)"):
        expand(raw(model={"init_from": str(src), "norm": "layer"}))
    with fails(rf"model.init_from: {p} holds W3, b3, which the model does not have \(its arrays: W1, b1, W2, b2\)"):
        expand(raw(model={"init_from": str(src), "hidden": [6]}))
    with fails(rf"model.init_from: {tmp_path}/nowhere: no such run directory"):
        expand(raw(model={"init_from": str(tmp_path / "nowhere")}))
    with fails(rf"model.init_from: {tmp_path}: no params.npz \(not a finished run directory\)"):
        expand(raw(model={"init_from": str(tmp_path)}))
    # through the CLI: one line on stderr, exit 2, nothing written
    code, out, err = cli("train", write_config(tmp_path, raw(model={"init_from": str(src), "hidden": [6, 5]})),
                         "--runs-dir", tmp_path / "none")
    assert code == 2 and err.strip() == f"error: model.init_from: W2 in {p} has shape (4, 6), the model expects (5, 6)"
    assert not (tmp_path / "none").exists()
    p.write_bytes(b"not a zip file")
    with fails(rf"model.init_from: {p}: unreadable .*"):
        expand(raw(model={"init_from": str(src)}))


def test_init_from_a_variant_names_one_written_before_it_with_the_same_net():
    variants = {"a": {}, "b": {"model": {"init_from": {"variant": "a"}}}}
    runs = expand(raw(variants=variants, seeds=[0, 1]))
    assert [r["model"].get("init_from") for r in runs] == [None, None, {"variant": "a"}, {"variant": "a"}]
    with fails(r"variants.b.model.init_from.variant: 'c' is not a variant written before this one \(accepted: a\)"):
        expand(raw(variants={"a": {}, "b": {"model": {"init_from": {"variant": "c"}}}}))
    none = r"\(accepted: none; a run directory instead\)"
    with fails(rf"variants.a.model.init_from.variant: 'b' is not a variant written before this one {none}"):
        expand(raw(variants={"a": {"model": {"init_from": {"variant": "b"}}}, "b": {}}))
    with fails(r"variants.b.model.init_from.variant: variant a's net \[2, 6, 4, 1\] \(norm none\) "
               r"is not this one's \[2, 3, 1\] \(norm none\)"):
        expand(raw(variants={"a": {}, "b": {"model": {"init_from": {"variant": "a"}, "hidden": [3]}}}))
    with fails(rf"model.init_from.variant: 'a' is not a variant written before this one {none}"):
        expand(raw(model={"init_from": {"variant": "a"}}))


def test_one_command_trains_the_source_first_and_resume_finds_it(cli, tmp_path):
    cfg = raw(variants={"src": {"train": {"epochs": 2}}, "ft": {"model": {"init_from": {"variant": "src"}}}})
    path = write_config(tmp_path, cfg)
    code, _, err = cli("train", path, "-q", "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    (src,) = (tmp_path / "runs").glob("ft-src-s0-*")
    (ft,) = (tmp_path / "runs").glob("ft-ft-s0-*")
    assert yaml.safe_load((ft / "config.yaml").read_text())["model"]["init_from"] == str(src.resolve())
    assert all(np.array_equal(v, npz(ft / "params_init.npz")[k]) for k, v in npz(src / "params.npz").items())
    params = npz(ft / "params.npz")
    # --resume: a finished fine-tuning run is found by its config.yaml (which names its source), a lost one is
    # trained again from the finished source, to the same bytes
    code, _, err = cli("train", path, "-q", "--runs-dir", tmp_path / "runs", "--resume")
    assert code == 0 and "0 new, 2 finished already" in err, err
    shutil.rmtree(ft)
    code, _, err = cli("train", path, "-q", "--runs-dir", tmp_path / "runs", "--resume")
    assert code == 0 and "1 new, 1 finished already" in err, err
    (again,) = (tmp_path / "runs").glob("ft-ft-s0-*")
    assert all(np.array_equal(v, npz(again / "params.npz")[k]) for k, v in params.items())
    c = expand(cfg)[1]
    with fails(r"model.init_from: ft/ft \(seed 0\) starts from ft/src, which this command did not train "
               r"\(train the whole config without --resume, or give a run directory\)"):
        finetune.resolve_refs([c], {})


def test_a_diverged_source_is_refused(cli, tmp_path):
    src = source_run(cli, tmp_path)
    s = json.loads((src / "summary.json").read_text())
    (src / "summary.json").write_text(json.dumps({**s, "status": "diverged"}))
    with fails(rf"model.init_from: {src}: its status is diverged \(accepted: a run whose status is completed or stopped_early\)"):
        expand(raw(model={"init_from": str(src)}))


# ---- moons rotate -----------------------------------------------------------------------------------


def test_rotated_moons_are_the_same_points_turned_about_their_centre():
    a = load({"name": "moons", "seed": 3, "standardize": False}).train
    b = load({"name": "moons", "seed": 3, "rotate": 90, "standardize": False}).train
    assert np.array_equal(a.y, b.y)
    c = np.array([0.5, 0.25])
    np.testing.assert_allclose(b.X, (a.X - c) @ np.array([[0.0, 1.0], [-1.0, 0.0]]) + c, atol=1e-12)
    (cfg,) = expand(raw())
    assert "rotate" not in cfg["data"]  # unrotated moons resolve as before the option existed
    with fails(r"data.rotate: 400 is invalid: input should be less than or equal to 360"):
        expand(raw(data={"rotate": 400}))
