"""`optbench lr-find`: the LR range test on real engine runs: exponential rates, the bias-corrected EMA, the stop
rule, the suggestion, the pasteable sweep block (parsed by the sweep's own planner), the figure, bad input."""

import json
import math

import numpy as np
import pytest
import yaml

from conftest import CONFIGS, run_cli
from optbench import lrfind
from optbench.config import load_experiment
from optbench.sweep.plan import plan_sweep

MOONS = CONFIGS / "moons-optimizers.yaml"
SINE = CONFIGS / "sine-regression.yaml"


@pytest.fixture(scope="module")
def sine_json():
    code, out, err = run_cli("lr-find", SINE, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def ema(loss, beta):
    """The smoothed loss written out as fastai does it, independently of lrfind.smoothed."""
    avg, out = 0.0, []
    for i, x in enumerate(loss):
        avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def test_rates_grow_exponentially_from_start_and_the_loss_is_the_bias_corrected_ema(sine_json):
    assert [c["variant"] for c in sine_json["labels"]] == ["sgd", "momentum", "adam"]  # every label, in file order
    for c in sine_json["labels"]:
        lr = np.array(c["lr"])
        assert lr[0] == pytest.approx(1e-7)
        ratio = lr[1:] / lr[:-1]
        assert np.allclose(ratio, (10 / 1e-7) ** (1 / 99), rtol=1e-9)  # one rate per iteration, 1e-7 .. 10 in 100
        assert c["smooth"] == pytest.approx(ema(c["loss"], 0.98), rel=1e-12)
        assert c["seed"] == 0


def test_each_label_stops_when_its_smoothed_loss_exceeds_4x_its_best(sine_json):
    for c in sine_json["labels"]:
        s = c["smooth"]
        k = c["stopped"]
        assert k is not None, c["label"]  # sine's rates blow up well before 10
        assert len(s) == k + 1 and s[k] is not None
        assert s[k] > 4 * min(s[:k])
        assert all(s[i] <= 4 * min(s[:i]) for i in range(1, k))  # and not before
        assert c["lr"][-1] < 10


def test_the_suggestion_is_the_steepest_descent_before_the_minimum(sine_json):
    assert sine_json["suggestion"] == "steepest"
    for c in sine_json["labels"]:
        s, lr = np.array(c["smooth"], dtype=float), np.array(c["lr"])
        window = slice(lrfind.SKIP_START, len(s) - lrfind.SKIP_END)
        k = int(np.argmin(s[window])) + lrfind.SKIP_START
        assert c["minimum"] == lr[k] and c["best"] == s[k] and c["min10"] == pytest.approx(lr[k] / 10)
        assert lr[lrfind.SKIP_START] <= c["steep"] <= c["minimum"]
        i = list(lr).index(c["steep"])
        assert s[max(i - 6, 0)] > s[min(i + 6, k)]  # the loss is falling around the suggestion
        assert c["low"] == pytest.approx(c["steep"] / 10) and c["steep"] < c["high"] <= lr[-1]


def test_a_label_gets_the_same_curve_alone_as_on_the_replica_axis_beside_the_others():
    cfgs = load_experiment(MOONS)
    together = {c.label: c for c in lrfind.lr_find(cfgs, iters=40)}
    alone = lrfind.lr_find([c for c in cfgs if c["label"].endswith("/adam")], iters=40)[0]
    assert len(together) == 3
    assert alone.loss == together[alone.label].loss and alone.lr == together[alone.label].lr
    assert together["moons-optimizers/gd"].loss != alone.loss  # the labels are different runs


def test_the_printed_sweep_block_parses_as_the_configs_sweep(cli, tmp_path):
    code, out, err = cli("lr-find", MOONS)
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 100
    text = out[out.index("\nsweep:\n") + 1 :]
    cfg = tmp_path / "moons-tuned.yaml"
    cfg.write_text(MOONS.read_text() + "\n" + text)  # pasted under the config as printed
    plan = plan_sweep(cfg)
    code, out, err = cli("lr-find", MOONS, "--format", "json")
    ranges = {c["variant"]: (c["low"], c["high"]) for c in json.loads(out)["labels"]}
    assert set(plan.spec.params) == set(ranges) == {"gd", "momentum", "adam"}
    for variant, params in plan.spec.params.items():
        p = params["optimizer.lr"]
        assert p.kind == "log_uniform" and all(isinstance(a, float) for a in p.args)
        lo, hi = ranges[variant]
        assert p.args == pytest.approx((lo, hi), rel=0.05)  # two significant digits
    lrs = [r.cfg["optimizer"]["lr"] for r in plan.runs if r.trial.name != "default"]
    assert lrs and all(min(lo for lo, _ in ranges.values()) * 0.95 <= x <= 10 for x in lrs)


def test_a_config_without_variants_gets_a_plain_params_block(tmp_path):
    raw = yaml.safe_load(SINE.read_text())
    raw.pop("variants")
    raw["optimizer"] = {"name": "adam", "lr": 0.01}
    cfgs = [c for c in load_experiment_from(raw, tmp_path) if c["seed"] == 0]
    block = lrfind.sweep_block(lrfind.lr_find(cfgs))
    assert yaml.safe_load(block)["sweep"]["params"]["optimizer.lr"]["log_uniform"][0] > 0
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw) + block)
    assert set(plan_sweep(tmp_path / "s.yaml").spec.params) == {None}


def load_experiment_from(raw, tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_experiment(path)


@pytest.mark.parametrize("value", [2.5e-05, 3.1e-3, 0.042, 1.0, 1.9, 26.0, 1.2e4])
def test_numbers_are_printed_as_yaml_floats(value):
    text = lrfind.yaml_number(value)
    assert isinstance(yaml.safe_load(text), float) and math.isclose(yaml.safe_load(text), value, rel_tol=0.05)


def test_the_figure_is_written_and_bad_options_are_one_line_exit_2(cli, tmp_path):
    out = tmp_path / "fig" / "lr.png"
    code, stdout, err = cli("lr-find", CONFIGS / "adagrad-stall.yaml", "--iters", "60", "--out", out)
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"figure: {out}" in stdout
    for args, word in ((["--start", "0"], "--start"), (["--start", "1", "--end", "0.1"], "--end"),
                       (["--iters", "2"], "--iters"), (["--out", tmp_path / "x.gif"], "--out"),
                       (["--format", "xml"], "--format")):
        code, stdout, err = cli("lr-find", MOONS, *args)
        assert code == 2 and word in err and len(err.strip().splitlines()) == 1, (args, err)
    code, stdout, err = cli("lr-find", CONFIGS / "ravine-trajectories.yaml")
    assert code == 2 and "2-D problem" in err and len(err.strip().splitlines()) == 1
