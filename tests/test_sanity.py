"""`optbench check`: CS231n's sanity checks on real engine runs: the loss at initialization, overfitting a tiny
subset and the gradient check, on every shipped config and on deliberately broken setups."""

import json
import math

import numpy as np
import pytest
import yaml

from conftest import CONFIGS, run_cli
from optbench import sanity
from optbench.config import load_experiment
from optbench.train import Trainer

NETS = sorted(p for p in CONFIGS.glob("*.yaml") if "data: {name: quadratic" not in p.read_text())
NETS.append(CONFIGS / "examples" / "sklearn-strategies.yaml")  # the example whose data ships with scikit-learn
ADAGRAD = CONFIGS / "adagrad-stall.yaml"  # spiral, 3 classes, one hidden layer of 50: quick to overfit


def verdicts(path, sets=(), only=sanity.CHECKS):
    vs, skipped = sanity.sanity_checks(load_experiment(path, sets=sets), only=only)
    return {v.check: v for v in vs}, skipped


@pytest.mark.parametrize("path", NETS, ids=lambda p: p.stem)
def test_every_shipped_net_passes_every_check_but_init_depths_broken_label(path):
    """init-depth ships a net that cannot learn (5 layers at scale 0.01, stuck at ln 3): the one stuck label.
    The configs whose lesson is a slow rule (GD at 0.0007, invscaling) pass with that label marked slow."""
    got, skipped = verdicts(path)
    assert not skipped and set(got) == {"init", "overfit", "gradcheck"}
    assert got["init"].ok, got["init"].line
    assert got["gradcheck"].ok, got["gradcheck"].line
    stuck = {r["label"].split("/")[1] for r in got["overfit"].labels if not r["ok"] and not r["slow"]}
    zero = {c["label"] for c in load_experiment(path) if c["train"]["epochs"] == 0}  # finetune-moons' source-as-is
    assert zero.isdisjoint(r["label"] for r in got["overfit"].labels)  # evaluated only: nothing to overfit
    assert stuck == ({"5layer-small"} if path.stem == "init-depth" else set()), got["overfit"].line
    assert got["overfit"].ok == (not stuck)
    runs = load_experiment(path)
    assert sum(len(r["costs"]) for r in got["init"].labels) == len(runs)  # every label x seed was looked at


def test_init_loss_is_the_epoch_0_cost_and_ln_c_is_what_a_tiny_init_gives():
    """Softmax over 3 classes at init scale 1e-4 (logits ~ 0) gives ln 3 to 6 digits: the expected value is
    the uninformed net's, and the measured one is the engine's own test-mode cost at the initial weights."""
    got, _ = verdicts(ADAGRAD, sets=["model.init={name: small, scale: 1.0e-4}"], only=("init",))
    costs = [c for r in got["init"].labels for c in r["costs"]]
    assert got["init"].ok and np.allclose(costs, math.log(3), rtol=1e-6)
    assert got["init"].labels[0]["expected"] == pytest.approx(math.log(3))
    cfg = sanity.plain(load_experiment(ADAGRAD)[0])
    tr = Trainer([cfg])
    first = tr.evaluate(tr.theta, tr.data.train, tr.buffers)[0][0]
    got, _ = verdicts(ADAGRAD, only=("init",))
    assert got["init"].labels[0]["costs"][0] == pytest.approx(first, rel=1e-12)


def test_weights_at_scale_10_fail_the_init_loss_check_and_exit_1(cli):
    code, out, err = cli("check", ADAGRAD, "--set", "model.init={name: small, scale: 10}", "--set", "seeds=[0]")
    assert code == 1, err
    lines = out.splitlines()
    init = next(line for line in lines if "init loss" in line)
    assert init.startswith("FAIL") and "tolerance x4" in init and "ln 3" in init  # the tolerance is stated in the line
    assert "init loss" in lines[-1].split("failed:")[1]
    assert max(len(line) for line in lines) <= 100
    code, out, err = cli("check", ADAGRAD, "--set", "seeds=[0]", "--format", "json")  # the same net at He init
    assert code == 0 and json.loads(out)["checks"][0]["ok"]


def test_a_learning_rate_of_1e_9_fails_the_overfit_check_only(cli):
    sets = [f"variants.{v}.optimizer.lr=1.0e-9" for v in ("adagrad", "rmsprop", "adam")]
    code, out, err = cli("check", ADAGRAD, *[a for s in sets for a in ("--set", s)], "--format", "json")
    assert code == 1, err
    got = {c["check"]: c for c in json.loads(out)["checks"]}
    assert got["init"]["ok"] and got["gradcheck"]["ok"]
    assert not got["overfit"]["ok"]
    for row in got["overfit"]["labels"]:  # stuck, not slow: the cost did not move
        assert row["step"] is None and row["best"] < 1.0 and row["examples"] == sanity.SUBSET
        assert not row["slow"] and row["fall"] < 1e-2 and row["last_quarter_fall"] < sanity.STILL
    code, out, _ = cli("check", ADAGRAD)  # the same config at its own rates overfits the 20 examples
    assert code == 0 and "PASS  overfit" in out and out.splitlines()[-1] == "3 of 3 checks passed"


def test_overfit_reaches_100_percent_on_20_examples_and_says_when():
    got, _ = verdicts(CONFIGS / "spiral-regularization.yaml", only=("overfit",))
    v = got["overfit"]
    assert v.ok, v.line
    assert [r["label"].split("/")[1] for r in v.labels] == ["none", "l2", "dropout", "batchnorm"]
    for r in v.labels:  # regularization and dropout are off: the l2 and dropout variants are the plain net
        assert r["best"] == 1.0 and 0 < r["step"] <= r["budget"] and r["examples"] == 20
    plain = {r["label"].split("/")[1]: r["step"] for r in v.labels}
    assert plain["none"] == plain["l2"] == plain["dropout"]


def test_overfit_carries_the_lessons_of_init_depth_and_of_the_reference_experiment():
    """A 5-layer net at init scale 0.01 does not learn (init-depth's lesson): it cannot even overfit 20 examples;
    at the notebook's rate 0.0007 plain GD is far too slow to, Adam does it (moons-optimizers' lesson)."""
    got, _ = verdicts(CONFIGS / "init-depth.yaml", only=("overfit",))
    failed = {r["label"].split("/")[1] for r in got["overfit"].labels if not r["ok"]}
    assert failed == {"5layer-small"}
    got, _ = verdicts(CONFIGS / "moons-optimizers.yaml", only=("overfit",))
    ok = {r["label"].split("/")[1]: r["ok"] for r in got["overfit"].labels}
    assert ok["adam"] and not ok["gd"]
    gd = next(r for r in got["overfit"].labels if r["label"].endswith("/gd"))  # slow, still learning at the end
    assert gd["slow"] and gd["last_quarter_fall"] >= sanity.STILL and got["overfit"].ok and got["overfit"].warn


def test_slow_labels_warn_and_exit_0_stuck_ones_fail_and_a_divergence_is_stuck(cli):
    code, out, err = cli("check", CONFIGS / "moons-optimizers.yaml")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("SLOW  overfit    2/3 slow, short of 100% accuracy on 20 examples in 10000 steps")
    assert lines[-1] == "3 of 3 checks passed (overfit slow: more steps or a higher rate)"
    assert max(len(line) for line in lines) <= 100
    code, out, err = cli("check", ADAGRAD, "--set", "variants.adam.optimizer.lr=1.0e+4", "--format", "json")
    assert code == 1, err
    rows = {r["label"].split("/")[1]: r for r in next(c for c in json.loads(out)["checks"]
                                                       if c["check"] == "overfit")["labels"]}
    assert not rows["adam"]["ok"] and not rows["adam"]["slow"] and rows["adagrad"]["ok"]


def test_a_schedule_keeps_its_pace_per_step_in_the_overfit_run(tmp_path):
    """moons-lr-decay: the interval form (decay every 1000 epochs of 5 steps) fits the 20 examples; the plain 1/t
    form decays too fast and stalls GD (the config's lesson), which the check reports as the one failure."""
    got, _ = verdicts(CONFIGS / "moons-lr-decay.yaml", only=("overfit",))
    steps = {r["label"].split("/")[1]: r["step"] for r in got["overfit"].labels}
    assert {v for v, step in steps.items() if step is None} == {"gd-1-over-t"}
    cfg = next(c for c in load_experiment(CONFIGS / "moons-lr-decay.yaml") if c["label"].endswith("/gd"))
    run, budget = sanity.overfit_config(cfg, 300)
    assert run["train"]["iterations_per_epoch"] == 5 and run["train"]["sampling"] == "random"
    assert run["train"]["epochs"] * 5 == budget == 10_000
    # a label at a constant rate first in the file (one engine group with the others in training) trains its
    # tiny run apart from them: the scheduled labels' results do not change
    raw = yaml.safe_load((CONFIGS / "moons-lr-decay.yaml").read_text())
    raw["variants"] = {"gd-constant": {"optimizer": {"name": "gd", "lr": 0.1}, "schedule": {"name": "constant"}},
                       **raw["variants"]}
    path = tmp_path / "decay.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    got, _ = verdicts(path, only=("overfit",))
    mixed = {r["label"].split("/")[1]: r["step"] for r in got["overfit"].labels}
    assert {v: mixed[v] for v in steps} == steps


def test_a_2d_problem_says_the_checks_do_not_apply(cli):
    code, out, err = cli("check", CONFIGS / "ravine-trajectories.yaml")
    assert code == 0, err
    assert len(out.splitlines()) == 1 and "do not apply" in out and len(out.rstrip("\n")) <= 100
    code, out, _ = cli("check", CONFIGS / "ravine-trajectories.yaml", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["applies"] is False and data["checks"] == [] and len(data["skipped"]) == 5


def test_regression_expects_the_cost_of_zero_outputs(tmp_path):
    got, _ = verdicts(CONFIGS / "sine-regression.yaml", only=("init",))
    cfg = load_experiment(CONFIGS / "sine-regression.yaml")[0]
    tr = Trainer([cfg])
    Y = tr.data.train[tr.data.D + 1 :]
    assert got["init"].labels[0]["expected"] == pytest.approx(np.mean(Y**2))  # mse: mean_k (0 - y_k)^2
    assert "zero-output cost" in got["init"].line


def test_bad_input_is_one_line_and_exit_2(cli, tmp_path):
    code, out, err = cli("check", tmp_path / "missing.yaml")
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    code, out, err = cli("check", ADAGRAD, "--format", "xml")
    assert code == 2 and "--format" in err and len(err.strip().splitlines()) == 1
