"""The config boundary under hostile input: a property-based fuzz of the loader (any YAML document gives a
validated config or one OptbenchError) and the CLI's answer to each known defect (exit 2, one line, no runs)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optbench.config import expand, read_config
from optbench.names import MAX_LABEL
from optbench.errors import OptbenchError

from conftest import ROOT

FUZZ = settings(max_examples=700, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

# ---- strategies: random trees around a valid config skeleton, and raw text

KEYS = ["name", "label", "seed", "seeds", "data", "model", "loss", "regularization", "optimizer", "schedule",
        "momentum_schedule", "train", "variants", "sweep", "lr", "mu", "beta1", "eps", "amsgrad", "form", "epochs",
        "batch_size", "sampling", "dtype", "hidden", "activation", "init", "scale", "norm", "drop_prob", "n_samples",
        "noise", "classes", "dim", "val_fraction", "standardize", "folds", "fold", "start", "l2", "mixup", "polyak",
        "early_stopping", "metric", "patience", "every", "gamma", "warmup", "method", "params", "trials", "<<"]
NAMES = ["adam", "sgd", "gd", "momentum", "nesterov", "lbfgs", "adamw", "step", "cosine", "ramp", "constant", "moons",
         "spiral", "blobs", "sine", "csv", "npz", "quadratic", "rosenbrock", "relu", "tanh", "he", "small", "full",
         "bce", "mse", "softmax_ce", "val_cost", "train_cost", "float32", "random", "grid", "ema", "batch", "layer"]
EDGE_NUMBERS = [0, 1, 2, -1, 3, 7, 2**31, 2**63, 2**64, -2**63, 10**30, 0.0, -0.0, 0.5, 1.0, 1e-300, 1e308,
                float("inf"), -float("inf"), float("nan"), 0.999999]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 300), st.sampled_from(EDGE_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(NAMES),
    st.text(max_size=12), st.sampled_from([".x", "../x", "a/b", "a\nb", "a\x00b", "x\u202ey", "x" * 300, "0.01", "1e-3"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6), st.integers(-2, 2), st.none(), st.booleans())
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=4)), max_leaves=12)
SKELETON = {"name": "fuzz", "seeds": [0, 1], "data": {"name": "moons", "n_samples": 40}, "model": {"hidden": [3]},
            "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 2, "batch_size": 8},
            "variants": {"a": {}, "b": {"optimizer": {"name": "sgd"}}}}


@st.composite
def mutated(draw) -> dict:
    """The skeleton with a few key paths replaced, added or removed (each path drawn from the config's own keys)."""
    cfg = yaml.safe_load(yaml.safe_dump(SKELETON))
    for _ in range(draw(st.integers(1, 4))):
        node = cfg
        for _ in range(draw(st.integers(0, 2))):
            subs = [k for k, v in node.items() if isinstance(v, dict)]
            if not subs:
                break
            node = node[draw(st.sampled_from(subs))]
        key = draw(st.one_of(st.sampled_from(sorted(node, key=str) or ["name"]), keys))
        if draw(st.integers(0, 5)) == 0:
            node.pop(key, None)
        else:
            node[key] = draw(trees)
    return cfg


def _dump(cfg) -> str:
    try:
        return yaml.safe_dump(cfg, allow_unicode=False)
    except yaml.YAMLError:  # a key or value PyYAML cannot represent: the text is still a document to read
        return repr(cfg)


YAMLISH = st.lists(st.sampled_from(list("{}[]:,-&*!|>'\"#%@ \n\tab01.e") + ["<<", "*a", "&a ", "\\0", "\x00", "lr",
                                                                           "optimizer", "data", "name: "]),
                   max_size=60).map("".join)


def _check(path) -> None:
    """The property: a clean list of resolved configs, or one OptbenchError of one line; nothing else."""
    try:
        raw = read_config(path)
        runs = expand(raw, source=str(path), base_dir=path.parent)
    except OptbenchError as err:
        msg = str(err)
        assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
        return
    for cfg in runs:  # what passed the boundary is what the engine may trust
        assert isinstance(cfg["name"], str) and not cfg["name"].startswith(".")
        assert len(cfg["label"]) <= MAX_LABEL and not any(p.startswith(".") or not p for p in cfg["label"].split("/"))
        assert all(c.isascii() and c.isprintable() for c in cfg["label"])
        assert isinstance(cfg["seed"], int) and not isinstance(cfg["seed"], bool) and cfg["seed"] >= 0
        for section in ("optimizer", "schedule", "regularization", "train", "data"):
            for k, v in cfg[section].items():
                assert not (isinstance(v, float) and not math.isfinite(v)), (section, k, v)
        assert type(cfg["train"]["epochs"]) is int


def _write(tmp_path_factory, text: str):
    d = tmp_path_factory.mktemp("fuzz", numbered=True)
    p = d / "c.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    return p


@FUZZ
@given(cfg=mutated())
@example(cfg={**SKELETON, "\n": None})  # found by CI: a key with a newline made a two-line error
@example(cfg={**SKELETON, "data": {**SKELETON["data"], "a\r\nb": 1}})
def test_fuzz_structured_configs(tmp_path_factory, cfg):
    _check(_write(tmp_path_factory, _dump(cfg)))


@FUZZ
@given(text=YAMLISH)
def test_fuzz_raw_yaml_text(tmp_path_factory, text):
    _check(_write(tmp_path_factory, text))


@st.composite
def aliased(draw) -> str:
    """Anchors defined at the top level and referenced, nested and merged below: bombs, cycles and deep chains."""
    n = draw(st.integers(1, 30))
    width = draw(st.integers(1, 9))
    lines = ["a0: &a0 " + draw(st.sampled_from(["[1, 2]", "{lr: 0.1}", "x", "{name: adam}"]))]
    for i in range(1, n):
        refs = ", ".join(f"*a{draw(st.integers(0, i - 1))}" for _ in range(width))
        form = draw(st.sampled_from(["[{r}]", "{{k: [{r}]}}", "{{<<: *a{j}, k{i}: 1}}", "[{r}, *a{i}]"]))
        lines.append(f"a{i}: &a{i} " + form.format(r=refs, i=i, j=draw(st.integers(0, i - 1))))
    body = yaml.safe_dump({k: v for k, v in SKELETON.items() if k != "optimizer"})
    target = draw(st.sampled_from(["optimizer", "variants", "model", "data", "seeds"]))
    return "\n".join(lines) + f"\n{body}{target}: *a{draw(st.integers(0, n - 1))}\n"


@settings(FUZZ, max_examples=600)
@given(text=aliased())
def test_fuzz_aliases(tmp_path_factory, text):
    _check(_write(tmp_path_factory, text))


# ---- the CLI: each defect of the boundary is exit 2, one line on stderr, and no run directory

OK = "data: {name: moons, n_samples: 40}\noptimizer: {name: adam}\ntrain: {epochs: 1, batch_size: 8}\n"
BOMB = "".join([f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "x"] * 9) + "]\n" for i in range(12)])
CASES = {
    "lr true": (OK.replace("{name: adam}", "{name: adam, lr: true}"), r"optimizer.lr: True is invalid"),
    "epochs true": (OK.replace("epochs: 1", "epochs: true"), r"train.epochs: True is invalid"),
    "lr string": (OK.replace("{name: adam}", "{name: adam, lr: '0.01'}"), r"optimizer.lr: '0.01' is invalid"),
    "lr inf": (OK.replace("{name: adam}", "{name: adam, lr: .inf}"), r"optimizer.lr: inf is invalid"),
    "lr nan": (OK.replace("{name: adam}", "{name: adam, lr: .nan}"), r"optimizer.lr: nan is invalid"),
    "name traversal": ("name: ../../x/evil\n" + OK, r"name: '../../x/evil' is invalid"),
    "name hidden": ("name: .hidden\n" + OK, r"name: '.hidden' is invalid"),
    "label newline": ('label: "a\\nb"\n' + OK, r"label: 'a\\nb' is invalid"),
    "label NUL": ('label: "a\\0b"\n' + OK, r"label: 'a\\x00b' is invalid"),
    "label bidi": ('label: "a\\u202eb"\n' + OK, r"label: 'a\\u202eb' is invalid"),
    "label long": (f"label: {'y' * 1000}\n" + OK, r"label: 'y+\.\.\. is invalid"),
    "variant hidden": (OK + "variants: {.v: {}}\n", r"variants: '.v' is invalid"),
    "alias bomb": (BOMB + OK, r"c.yaml line \d+: YAML document too large"),
    "deep nesting": (OK + "model: " + "[" * 600 + "]" * 600 + "\n", r"c.yaml line \d+: YAML document nested too deeply"),
    "data.name list": (OK.replace("{name: moons,", "{name: [moons],"), r"data.name: \['moons'\] is invalid"),
    "negative seed": ("seed: -1\n" + OK, r"seed: -1 is invalid"),
    "negative seeds": ("seeds: [0, -5]\n" + OK, r"seeds: \[0, -5\] is invalid"),
    "symlink loop": (None, r"c.yaml: cannot open config file \(Too many levels of symbolic links\)"),
    "directory": (None, r"c.yaml: is a directory, not a regular file"),
    "fifo": (None, r"c.yaml: not a regular file"),
}


def _make(d, case):
    text, _ = CASES[case]
    p = d / "c.yaml"
    if case == "symlink loop":
        os.symlink(d / "b.yaml", p)
        os.symlink(p, d / "b.yaml")
    elif case == "directory":
        p.mkdir()
    elif case == "fifo":
        os.mkfifo(p)
    else:
        p.write_text(text)
    return p


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Every case's `optbench train` at once (the processes are independent; 2 cores share them)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(case):
        d = tmp_path_factory.mktemp(case.replace(" ", "-").replace(".", "-"))
        cfg = _make(d, case)
        p = subprocess.run([sys.executable, "-m", "optbench", "train", str(cfg), "--runs-dir", str(d / "runs")],
                           capture_output=True, text=True, cwd=d, env=env, timeout=300)
        return case, (p.returncode, p.stdout, p.stderr, d / "runs")

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(run, CASES))


@pytest.mark.parametrize("case", list(CASES))
def test_cli_refuses_with_one_line_and_no_run(cli_results, case):
    import re

    rc, out, errtext, runs = cli_results[case]
    lines = errtext.splitlines()
    assert rc == 2, (case, rc, errtext[-500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), errtext
    assert re.search(CASES[case][1], lines[0]), lines[0]
    assert not runs.exists() or not any(runs.iterdir())


def test_cli_still_trains_a_valid_config_with_set(tmp_path, cli):
    (tmp_path / "c.yaml").write_text(OK)
    rc, out, errtext = cli("train", tmp_path / "c.yaml", "--set", "optimizer.lr=0.01", "-q",
                           "--runs-dir", tmp_path / "runs")
    assert rc == 0, errtext
    (run,) = list((tmp_path / "runs").iterdir())
    assert read_config(run / "config.yaml")["optimizer"]["lr"] == 0.01


def test_compare_skips_a_run_whose_config_yaml_is_a_bomb(tmp_path, cli):
    (tmp_path / "c.yaml").write_text(OK)
    rc, _, errtext = cli("train", tmp_path / "c.yaml", "-q", "--runs-dir", tmp_path / "runs")
    assert rc == 0, errtext
    (run,) = list((tmp_path / "runs").iterdir())
    bad = tmp_path / "runs" / "zz-bomb"
    bad.mkdir()
    for f in ("summary.json", "metrics.csv"):
        (bad / f).write_bytes((run / f).read_bytes())
    (bad / "config.yaml").write_text(BOMB + OK)
    rc, out, errtext = cli("compare", tmp_path / "runs", "--format", "json")
    assert rc == 0, errtext
    assert "zz-bomb" in errtext and "YAML document too large" in errtext
    assert "internal error" not in errtext
