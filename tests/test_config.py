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
    assert runs[0]["optimizer"] == {"name": "momentum", "lr": 0.01, "mu": 0.9, "form": "classic", "dampening": 0.0,
                                   "weight_decay": 0.0}


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


# ---- strict types: a boolean or a string is never a number, every float is finite (issue 8, item 7)

@pytest.mark.parametrize("section,expected", [
    ({"optimizer": {"name": "adam", "lr": True}}, r"^optimizer.lr: True is invalid: input should be a valid number"),
    ({"optimizer": {"name": "adam", "lr": "0.01"}}, r"^optimizer.lr: '0.01' is invalid: input should be a valid number"),
    ({"optimizer": {"name": "adam", "lr": float("inf")}}, r"^optimizer.lr: inf is invalid: input should be a finite number"),
    ({"optimizer": {"name": "adam", "eps": float("nan")}}, r"^optimizer.eps: nan is invalid: input should be a finite number"),
    ({"optimizer": {"name": "momentum", "mu": False}}, r"^optimizer.mu: False is invalid"),
    ({"optimizer": {"name": "adam", "amsgrad": 1}}, r"^optimizer.amsgrad: 1 is invalid: input should be a valid boolean"),
    ({"optimizer": {"name": "lbfgs", "max_iter": 2.0}}, r"^optimizer.max_iter: 2.0 is invalid: input should be a valid integer"),
    ({"train": {"epochs": True}}, r"^train.epochs: True is invalid: input should be a valid integer"),
    ({"train": {"epochs": "5"}}, r"^train.epochs: '5' is invalid"),
    ({"train": {"batch_size": True}}, r"^train.batch_size: True is invalid"),
    ({"train": {"log_iterations": "yes"}}, r"^train.log_iterations: 'yes' is invalid"),
    ({"train": {"diverge_factor": float("inf")}}, r"^train.diverge_factor: inf is invalid"),
    ({"schedule": {"name": "step", "gamma": "0.5"}}, r"^schedule.gamma: '0.5' is invalid"),
    ({"schedule": {"name": "step", "every": True}}, r"^schedule.every: True is invalid"),
    ({"momentum_schedule": {"name": "ramp", "end": float("nan")}, "optimizer": {"name": "momentum"}},
     r"^momentum_schedule.end: nan is invalid"),
    ({"data": {"name": "moons", "noise": True}}, r"^data.noise: True is invalid: input should be a valid number"),
    ({"data": {"name": "moons", "n_samples": "300"}}, r"^data.n_samples: '300' is invalid"),
    ({"data": {"name": "moons", "val_fraction": True}}, r"^data.val_fraction: True is invalid"),
    ({"data": {"name": "moons", "standardize": 1}}, r"^data.standardize: 1 is invalid: input should be a valid boolean"),
    ({"data": {"name": "moons", "seed": True}}, r"^data.seed: True is invalid"),
    ({"data": {"name": "quadratic", "start": [True, 1.0]}}, r"^data.start.0: True is invalid"),
    ({"data": {"name": "rosenbrock", "a": float("inf")}}, r"^data.a: inf is invalid"),
    ({"model": {"hidden": [True]}}, r"^model.hidden.0: True is invalid"),
    ({"model": {"drop_prob": "0.5"}}, r"^model.drop_prob: '0.5' is invalid"),
    ({"model": {"init": {"name": "small", "scale": float("inf")}}}, r"^model.init.scale: inf is invalid"),
    ({"model": {"activation": {"name": "leaky_relu", "slope": True}}}, r"^model.activation.slope: True is invalid"),
    ({"regularization": {"l2": True}}, r"^regularization.l2: True is invalid"),
    ({"regularization": {"mixup": float("inf")}}, r"^regularization.mixup: inf is invalid"),
    ({"regularization": {"early_stopping": {"patience": True, "metric": "train_cost"}}},
     r"^regularization.early_stopping.patience: True is invalid"),
    ({"seed": True}, r"^seed: True is invalid"),
])
def test_strict_types_everywhere(section, expected):
    import re

    msg = err({**BASE, **section})
    assert re.search(expected, msg), msg


def test_strict_types_keep_integers_as_floats_and_set_values_typed():
    runs = expand({**BASE, "optimizer": {"name": "adam", "lr": 1}}, sets=["optimizer.beta1=0.8", "train.epochs=3"])
    assert runs[0]["optimizer"]["lr"] == 1.0 and isinstance(runs[0]["optimizer"]["lr"], float)
    assert runs[0]["optimizer"]["beta1"] == 0.8 and runs[0]["train"]["epochs"] == 3
    problem = expand({**BASE, "data": {"name": "quadratic", "start": [1, 2]}, "model": {}})
    assert problem[0]["data"]["start"] == [1.0, 2.0]  # a YAML list is a 2-D start point
    assert "error" not in str(expand(dict(problem[0])))  # the resolved config reruns itself
    msg = err(BASE, sets=["optimizer.lr=true"])
    assert msg.startswith("optimizer.lr: True is invalid")


def test_sweep_values_are_strictly_typed(tmp_path):
    from optbench.sweep.plan import plan_sweep

    cfg = tmp_path / "s.yaml"
    cfg.write_text("data: {name: moons}\noptimizer: adam\ntrain: {epochs: 1}\n"
                   "sweep: {method: grid, params: {optimizer.lr: [0.01, true]}}\n")
    with pytest.raises(OptbenchError, match=r"^sweep.params.optimizer.lr: True is invalid"):
        plan_sweep(cfg)


# ---- names and labels: one safe path component each (issue 9, items 2 and 5)

@pytest.mark.parametrize("raw,expected", [
    ({**BASE, "name": ".hidden"}, r"^name: '.hidden' is invalid: .*must not start with '.'"),
    ({**BASE, "name": "../../x/evil"}, r"^name: '../../x/evil' is invalid"),
    ({**BASE, "name": "/abs/path"}, r"^name: '/abs/path' is invalid"),
    ({**BASE, "name": "a\\b"}, r"^name: 'a\\\\b' is invalid"),
    ({**BASE, "name": "x" * 65}, r"^name: 'x+\.\.\. is invalid: .*at most 64"),
    ({**BASE, "name": ["a"]}, r"^name: \['a'\] is invalid"),
    ({**BASE, "label": "a\nb"}, r"^label: 'a\\nb' is invalid"),
    ({**BASE, "label": "a\x00b"}, r"^label: 'a\\x00b' is invalid"),
    ({**BASE, "label": "evil\u202egnp.exe"}, r"^label: 'evil\\u202egnp.exe' is invalid"),
    ({**BASE, "label": ".x"}, r"^label: '.x' is invalid"),
    ({**BASE, "label": "a/../b"}, r"^label: 'a/../b' is invalid"),
    ({**BASE, "label": "a//b"}, r"^label: 'a//b' is invalid"),
    ({**BASE, "label": "y" * 300}, r"^label: 'y+\.\.\. is invalid: it is 300 characters long \(at most 200\)"),
    ({**BASE, "label": 5}, r"^label: 5 is invalid"),
    ({**BASE, "label": "a/b", "variants": {"v": {}}}, r"^label: 'a/b' is invalid: .*variants"),
    ({**BASE, "variants": {".v": {}}}, r"^variants: '.v' is invalid"),
    ({**BASE, "variants": {"a/b": {}}}, r"^variants: 'a/b' is invalid"),
    ({**BASE, "variants": {"v\u200f": {}}}, r"^variants: 'v\\u200f' is invalid"),
    ({**BASE, "variants": {None: {}}}, r"^variants: None is invalid: a variant name is a string"),
    ({**BASE, "variants": {True: {}}}, r"^variants: True is invalid"),
])
def test_names_and_labels_are_one_safe_path_component(raw, expected):
    import re

    msg = err(raw)
    assert re.search(expected, msg), msg


def test_a_resolved_label_with_slashes_reruns():
    runs = expand({**BASE, "label": "exp", "variants": {"adam-2": {}}})
    assert runs[0]["label"] == "exp/adam-2"
    assert expand(dict(runs[0]))[0]["label"] == "exp/adam-2"
    assert expand({**BASE, "label": "a/b/t001"})[0]["label"] == "a/b/t001"  # a sweep run's config.yaml


def test_a_name_from_a_hidden_file_name_is_refused(tmp_path):
    (tmp_path / ".cfg.yaml").write_text("data: {name: moons}\noptimizer: adam\n")
    with pytest.raises(OptbenchError, match=r"^name: '.cfg' is invalid: .*set name:"):
        load_experiment(tmp_path / ".cfg.yaml")


# ---- other boundary defects (issue 9)

@pytest.mark.parametrize("raw,expected", [
    ({**BASE, "data": {"name": ["moons"]}}, r"^data.name: \['moons'\] is invalid: expected a string"),
    ({**BASE, "data": ["moons"]}, r"^data: \['moons'\] is invalid"),
    ({**BASE, "optimizer": {"name": {"a": 1}}}, r"^optimizer.name: \{'a': 1\} is invalid"),
    ({**BASE, "seeds": [-1]}, r"^seeds: \[-1\] is invalid: .*0 <= seed"),
    ({**BASE, "seeds": [2**64]}, r"^seeds: .* is invalid"),
    ({**BASE, "seed": -3}, r"^seed(s)?: .*-3.* is invalid"),
    ({**BASE, "seeds": [True]}, r"^seeds: \[True\] is invalid"),
])
def test_other_boundary_defects(raw, expected):
    import re

    msg = err(raw)
    assert re.search(expected, msg), msg


def test_seed_option_is_checked_too():
    with pytest.raises(OptbenchError, match=r"^--seed: -1 is invalid"):
        expand(BASE, seed=-1)


# ---- bounded YAML: alias bombs, deep nesting, files that are not regular files (issue 9)

def _bomb(levels: int = 12) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
              for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused():
    text = _bomb()
    assert len(text) < 1000
    with pytest.raises(OptbenchError, match=r"^bomb.yaml line \d+: YAML document too large: more than [\d,]+ nodes "
                                            r"once aliases are expanded"):
        parse_yaml(text, "bomb.yaml")


def test_recursive_alias_is_refused():
    with pytest.raises(OptbenchError, match=r"^r.yaml line 1: YAML alias \*a refers to a node that contains it"):
        parse_yaml("&a [*a]\n", "r.yaml")


@pytest.mark.parametrize("text", [
    "[" * 600 + "]" * 600,
    "{a: " * 600 + "1" + "}" * 600,
    "".join(f"{'  ' * i}k:\n" for i in range(600)),
])
def test_deep_nesting_is_refused(text):
    with pytest.raises(OptbenchError, match=r"^deep.yaml line \d+: YAML document nested too deeply: more than \d+ levels"):
        parse_yaml(text, "deep.yaml")


def test_deep_nesting_through_aliases_is_refused():
    """Each line nests the one before it: shallow as written, 300 levels deep as built."""
    text = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 300))
    with pytest.raises(OptbenchError, match=r"nested too deeply"):
        parse_yaml(text, "deep.yaml")


def test_long_merge_chains_are_a_clean_error():
    text = "a0: &a0 {k0: 1}\n" + "".join(f"a{i}: &a{i} {{<<: *a{i - 1}, k{i}: 1}}\n" for i in range(1, 2000))
    with pytest.raises(OptbenchError, match=r"^m.yaml"):
        parse_yaml(text, "m.yaml")


def test_aliases_within_budget_still_work_and_are_unshared():
    out = parse_yaml("base: &b {name: adam, lr: 0.1}\noptimizer: *b\n", "x")
    assert out == {"base": {"name": "adam", "lr": 0.1}, "optimizer": {"name": "adam", "lr": 0.1}}
    out["optimizer"]["lr"] = 0.2  # a --set on one key must not change the other
    assert out["base"]["lr"] == 0.1


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink loop", "device"])
def test_config_path_that_is_not_a_regular_file(tmp_path, kind):
    import os

    p = tmp_path / "c.yaml"
    if kind == "directory":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "symlink loop":
        os.symlink(tmp_path / "loop2.yaml", p)
        os.symlink(p, tmp_path / "loop2.yaml")
    else:
        p = "/dev/zero"
    with pytest.raises(OptbenchError, match=r"c.yaml: |/dev/zero: ") as e:
        load_experiment(p)
    assert "not a regular file" in str(e.value) or "symbolic links" in str(e.value), str(e.value)


def test_oversized_config_file_is_refused(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text("name: big\n" + "#" * (2 << 20) + "\n")
    with pytest.raises(OptbenchError, match=r"big.yaml: config file too large: [\d,]+ bytes \(accepted: at most"):
        load_experiment(p)


def test_a_run_with_a_hostile_config_yaml_is_a_corrupt_run(tmp_path):
    from optbench.runs.read import CorruptRun, read_run

    for name, text in [("bomb", _bomb()), ("deep", "[" * 2000 + "]" * 2000)]:
        d = tmp_path / name
        d.mkdir()
        (d / "config.yaml").write_text(text)
        (d / "summary.json").write_text('{"status": "completed"}')
        (d / "metrics.csv").write_text("epoch\n0\n")
        with pytest.raises(CorruptRun, match=rf"{name}: unreadable config.yaml \(.*YAML document"):
            read_run(d)


@pytest.mark.parametrize("key", ["\n", "a\r\nb", "x\x00y", "r\u202el", "t\tab"])
def test_a_key_with_control_characters_is_named_on_one_line(tmp_path, key):
    """Keys come from the user's file; the message escapes them (\\n, \\x00, \\u202e) instead of breaking the line."""
    from optbench.config import expand
    from optbench.errors import OptbenchError
    raw = {"name": "k", "optimizer": {"name": "sgd"}, key: 1}
    with pytest.raises(OptbenchError) as err:
        expand(raw, source="c.yaml", base_dir=tmp_path)
    msg = str(err.value)
    assert msg.isprintable() and "unknown key" in msg
    assert key.encode("unicode_escape").decode("ascii") in msg
