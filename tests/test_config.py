"""Configs: YAML reading, --set, variants x seeds, resolution, and one-line errors naming the key."""

import pytest

from optbench.config import apply_set, deep_merge, expand, load_experiment, parse_yaml
from optbench.errors import OptbenchError

from conftest import CONFIGS

BASE = {
    "name": "t",
    "data": {"name": "moons"},
    "optimizer": {"name": "adam"},
    "train": {"epochs": 2},
}


def err(raw, **kw):
    with pytest.raises(OptbenchError) as e:
        expand(raw, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_yaml_reads_exponent_floats():
    assert parse_yaml("lr: 1e-3\nb: 5E2\nc: .5\nd: '1e-3'", "x") == {"lr": 0.001, "b": 500.0, "c": 0.5, "d": "1e-3"}


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(OptbenchError, match=r"cfg.yaml line 3: YAML syntax error"):
        parse_yaml("a: 1\nb: [1, 2\nc: : 3\n", "cfg.yaml")


def test_expansion_variants_times_seeds_with_labels_and_defaults():
    runs = expand({**BASE, "seeds": [3, 4], "variants": {"a": {}, "b": {"optimizer": {"lr": 0.1}}}})
    assert [(r["label"], r["seed"]) for r in runs] == [("t/a", 3), ("t/a", 4), ("t/b", 3), ("t/b", 4)]
    assert runs[2]["optimizer"] == {"name": "adam", "lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "amsgrad": False}
    assert runs[0]["loss"] == "bce"  # inferred from binary labels
    assert runs[0]["model"]["init"] == {"name": "he", "dist": "normal"}
    assert runs[0]["data"]["n_samples"] == 300 and runs[0]["data"]["val_fraction"] == 0.0


def test_variant_with_another_optimizer_replaces_the_section():
    """Options of the base optimizer must not leak into a variant that names another optimizer."""
    runs = expand({**BASE, "optimizer": {"name": "adam", "beta1": 0.8}, "variants": {"m": {"optimizer": {"name": "momentum"}}}})
    assert runs[0]["optimizer"] == {"name": "momentum", "lr": 0.01, "mu": 0.9, "form": "classic"}


def test_deep_merge_keeps_base_keys():
    assert deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}}) == {"a": {"x": 1, "y": 3}, "b": 1}


def test_set_overrides_are_yaml_typed_and_create_paths():
    raw = {"optimizer": "adam"}
    apply_set(raw, "optimizer.lr=1e-2")
    apply_set(raw, "train.batch_size=full")
    apply_set(raw, "seeds=[1, 2]")
    assert raw == {"optimizer": {"name": "adam", "lr": 0.01}, "train": {"batch_size": "full"}, "seeds": [1, 2]}
    with pytest.raises(OptbenchError, match="expected KEY.PATH=VALUE"):
        apply_set(raw, "optimizer.lr")


def test_seed_override_and_resolved_config_reruns_itself():
    runs = load_experiment(CONFIGS / "moons-optimizers.yaml", seed=7, sets=["train.epochs=3"])
    assert {r["seed"] for r in runs} == {7} and len(runs) == 3
    again = expand(dict(runs[2]))  # a resolved config is itself a valid experiment of one run
    assert again == [runs[2]]


def test_data_paths_are_made_absolute(tmp_path):
    (tmp_path / "d.csv").write_text("x1,x2,y\n0,1,0\n1,0,1\n0.5,0.5,1\n1,1,0\n")
    (tmp_path / "c.yaml").write_text("data: {name: csv, path: d.csv, label: y}\noptimizer: sgd\ntrain: {epochs: 1, batch_size: 2}\n")
    runs = load_experiment(tmp_path / "c.yaml")
    assert runs[0]["data"]["path"] == str(tmp_path / "d.csv")
    assert runs[0]["name"] == "c"


@pytest.mark.parametrize("raw,expected", [
    ({**BASE, "optimzer": {}}, r"^optimzer: unknown key \(accepted: name, label"),
    ({**BASE, "optimizer": {"name": "adam", "bta": 1}}, r"^optimizer.bta: unknown option for adam \(accepted: lr, beta1, beta2, eps, amsgrad\)$"),
    ({**BASE, "optimizer": {"name": "adm"}}, r"^optimizer.name: unknown optimizer 'adm' \(accepted: sgd, gd, momentum"),
    ({**BASE, "optimizer": {"name": "sgd", "lr": -0.1}}, r"^optimizer.lr: -0.1 is invalid: input should be greater than 0$"),
    ({**BASE, "optimizer": {"name": "adam", "beta1": 1.0}}, r"^optimizer.beta1: 1.0 is invalid"),
    ({**BASE, "model": {"drop_prob": 1.0}}, r"^model.drop_prob: 1.0 is invalid: input should be less than 1"),
    ({**BASE, "model": {"hidden": [5, 0]}}, r"^model.hidden.1: 0 is invalid: input should be greater than or equal to 1"),
    ({**BASE, "model": {"activation": "relux"}}, r"^model.activation.name: unknown activation 'relux'"),
    ({**BASE, "model": {"init": {"name": "small", "scale": -1}}}, r"^model.init.scale: -1 is invalid"),
    ({**BASE, "train": {"epochs": "many"}}, r"^train.epochs: 'many' is invalid"),
    ({**BASE, "train": {"batch_size": 500}}, r"^train.batch_size: 500 is larger than the 300 training examples \(accepted: 1..300 or full\)$"),
    ({**BASE, "train": {"batch_size": "half"}}, r"^train.batch_size: 'half' is invalid"),
    ({**BASE, "data": {"name": "moons", "noise": -1}}, r"^data.noise: -1 is invalid"),
    ({**BASE, "data": {"name": "mons"}}, r"^data.name: unknown dataset 'mons'"),
    ({**BASE, "data": {"name": "moons", "val_fraction": 1.0}}, r"^data.val_fraction: 1.0 is invalid"),
    ({**BASE, "data": {"name": "spiral"}, "loss": "bce"}, r"^loss: "),
    ({**BASE, "loss": "hinge"}, r"^loss: 'hinge' is invalid"),
    ({**BASE, "schedule": {"name": "step", "every": 0}}, r"^schedule.every: 0 is invalid"),
    ({**BASE, "optimizer": {"name": "lbfgs"}}, r"^train.batch_size: 64 is invalid for lbfgs"),
    ({**BASE, "regularization": {"early_stopping": {"metric": "val_cost"}}}, r"needs a validation split"),
    ({**BASE, "momentum_schedule": {"name": "ramp"}}, r"^momentum_schedule: ramp needs a momentum optimizer"),
    ({**BASE, "seeds": [1, 1]}, r"^seeds: \[1, 1\] has duplicates$"),
    ({**BASE, "seeds": "all"}, r"^seeds: 'all' is invalid"),
    ({**BASE, "variants": {"a": {"optimizer": {"name": "adam", "bta": 1}}}}, r"^variants.a.optimizer.bta: unknown option for adam"),
    ({**BASE, "variants": {"a": {"seed": 3}}}, r"^variants.a.seed: unknown key for a variant$"),
    ({"name": "t", "data": {"name": "moons"}}, r"^optimizer: required key is missing$"),
    ({**BASE, "data": {"name": "quadratic"}, "model": {"hidden": [3]}}, r"^model: a 2-D problem"),
])
def test_bad_input_messages(raw, expected):
    import re

    msg = err(raw)
    assert re.search(expected, msg), msg


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(OptbenchError, match=r"nope.yaml: config file not found"):
        load_experiment(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(OptbenchError, match="expected a mapping"):
        load_experiment(tmp_path / "list.yaml")
    (tmp_path / "c.yaml").write_text("data: {name: csv, path: missing.csv}\noptimizer: sgd\n")
    with pytest.raises(OptbenchError, match=r"^data.path: file not found"):
        load_experiment(tmp_path / "c.yaml")
    (tmp_path / "bad.csv").write_text("1,2,0\n3,abc,1\n")
    (tmp_path / "c2.yaml").write_text("data: {name: csv, path: bad.csv}\noptimizer: sgd\n")
    with pytest.raises(OptbenchError, match=r"bad.csv line 2, column 2: 'abc' is not a number"):
        load_experiment(tmp_path / "c2.yaml")
