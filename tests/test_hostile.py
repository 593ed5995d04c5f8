"""Hostile files and data (issue 9): FIFOs, devices, loops and directories as data paths; crafted and corrupt
NPZ archives; extreme values; configs too big for memory; deeply nested run files. Each is one error line
(exit 2, no run directory) or, in a run directory, one warning; never a hang, a traceback or a wrong result."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from optbench import budget, data, files
from optbench.config import expand
from optbench.data import csvfile, load, splitting
from optbench.errors import OptbenchError
from optbench.execute import execute
from optbench.runset.reading import read

from conftest import run_cli

BASE = {"name": "h", "data": {"name": "moons", "n_samples": 40}, "optimizer": {"name": "adam"},
        "train": {"epochs": 1, "batch_size": 8}}


@pytest.fixture(autouse=True)
def alarm():
    """A read that blocks (a FIFO without writer) fails the test after 20 s instead of hanging the suite."""
    def ring(*_):
        raise TimeoutError("blocked reading a data path")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def fails(pattern):
    return pytest.raises(OptbenchError, match=pattern)


def one_feature_csv(tmp_path, values, name="d.csv", labels=None) -> str:
    """A CSV of columns x, noise, label; x carries the label (x > 0)."""
    x = np.asarray(values, dtype=np.float64)
    y = (x > 0).astype(int) if labels is None else labels
    rows = [f"{float(v)!r},{0.1 * (i % 3)},{c}" for i, (v, c) in enumerate(zip(x, y))]
    p = tmp_path / name
    p.write_text("x,noise,label\n" + "\n".join(rows) + "\n")
    return str(p)


# ---- 1. data paths: only regular files, read to a bound ------------------------------------------


def _hostile_path(tmp_path: Path, kind: str, ext: str) -> str:
    p = tmp_path / f"d.{ext}"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "device":
        return "/dev/zero"
    elif kind == "symlink loop":
        os.symlink(tmp_path / f"e.{ext}", p)
        os.symlink(p, tmp_path / f"e.{ext}")
    elif kind == "directory":
        p.mkdir()
    return str(p)


PATH_ERRORS = {"fifo": "is not a regular file (a FIFO, socket or device", "device": "is not a regular file",
               "symlink loop": "Too many levels of symbolic links", "directory": "is a directory"}


@pytest.mark.parametrize("ext", ["csv", "npz"])
@pytest.mark.parametrize("kind", sorted(PATH_ERRORS))
def test_a_data_path_that_is_no_regular_file_is_one_error_naming_it(tmp_path, kind, ext):
    path = _hostile_path(tmp_path, kind, ext)
    with fails(r"^data\.path: ") as e:
        load({"name": ext, "path": path})
    assert PATH_ERRORS[kind] in str(e.value) and path in str(e.value) and "\n" not in str(e.value)


def test_a_relative_symlink_loop_in_a_config_is_one_error(tmp_path):
    os.symlink(tmp_path / "b.csv", tmp_path / "a.csv")
    os.symlink(tmp_path / "a.csv", tmp_path / "b.csv")
    with fails(r"data\.path: .*a\.csv.*Too many levels of symbolic links"):
        expand({**BASE, "data": {"name": "csv", "path": "a.csv"}}, base_dir=tmp_path)


def test_a_csv_over_the_size_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = one_feature_csv(tmp_path, np.linspace(-1, 1, 200))
    monkeypatch.setattr(csvfile, "MAX_CSV_BYTES", 1000)
    with fails(r"^data\.path: '.*d\.csv' is too large: [\d,]+ bytes \(accepted: at most 1,000; store large data as \.npz\)"):
        load({"name": "csv", "path": path})


def test_a_csv_line_or_field_over_the_cap_is_one_error(tmp_path, monkeypatch):
    p = tmp_path / "long.csv"
    p.write_text("1,0\n" + "2," * 5000 + "1\n")
    monkeypatch.setattr(csvfile, "MAX_CSV_LINE", 4096)
    with fails(r"^data\.path: .*long\.csv line 2: 10,002 characters long \(accepted: at most 4,096 per line\)"):
        load({"name": "csv", "path": str(p)})
    monkeypatch.setattr(csvfile, "MAX_CSV_LINE", 2**20)
    p.write_text('1,0\n"' + "9" * 200_000 + '",1\n')
    with fails(r"^data\.path: cannot read .*long\.csv.* as CSV: field larger than field limit"):
        load({"name": "csv", "path": str(p)})


def test_hostile_data_paths_through_the_command_line(tmp_path):
    """End to end: exit 2, one line on stderr, no run directory; the FIFO does not hang the process."""
    for kind, ext in (("fifo", "csv"), ("device", "csv"), ("fifo", "npz")):
        d = tmp_path / f"{kind}-{ext}"
        d.mkdir()
        path = _hostile_path(d, kind, ext)
        (d / "c.yaml").write_text(json.dumps({**BASE, "data": {"name": ext, "path": path}}))
        code, out, err = run_cli("train", d / "c.yaml", "--runs-dir", d / "runs", timeout=60)
        assert code == 2 and err.startswith("error: data.path: ") and len(err.splitlines()) == 1, err
        assert not (d / "runs").exists()


# ---- 2. NPZ: headers checked against their bytes and the budget before anything is allocated ---------


def _npy(header_shape, body: bytes, descr="<f8") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {header_shape}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


def _npz(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, blob in members.items():
            z.writestr(f"{name}.npy", blob)
    return str(path)


def _npy_of(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def test_a_crafted_npy_header_asking_for_745_gib_is_refused_before_allocating(tmp_path):
    path = _npz(tmp_path / "c.npz", {"X": _npy((100000, 100000, 10), b"\0" * 8), "y": _npy_of(np.arange(10))})
    with fails(r"^data\.path: array 'X' in .*c\.npz: its header says float64 \(100000, 100000, 10\) \(745 GiB\) "
               r"but the archive holds 8 bytes for it \(truncated or crafted\)$"):
        load({"name": "npz", "path": path})


def test_an_honest_npz_over_the_memory_budget_is_refused(tmp_path, monkeypatch):
    """A 4 MB array of zeros compresses to a few kilobytes: the file is small, what it asks for is not."""
    path = _npz(tmp_path / "z.npz", {"X": _npy_of(np.zeros((250_000, 2))), "y": _npy_of(np.arange(250_000) % 2)},
                zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 100_000
    monkeypatch.setenv(budget.ENV, "1M")
    with fails(r"^data\.path: .*z\.npz \(arrays 'X', 'y', 5\.72 MiB as stored\) needs about 17\.2 MiB of memory, "
               r"over the limit of 1 MiB \(set by OPTBENCH_MEMORY_LIMIT\)$"):
        load({"name": "npz", "path": path})


@pytest.mark.parametrize("cut", ["half", "in data", "crc"])
def test_a_truncated_or_corrupt_npz_is_one_line(tmp_path, cut):
    good = tmp_path / "g.npz"
    np.savez(good, X=np.random.default_rng(0).standard_normal((50, 2)), y=np.arange(50) % 2)
    blob = bytearray(good.read_bytes())
    if cut == "half":
        blob = blob[: len(blob) // 2]
    elif cut == "in data":  # X's header says 50 rows but only 10 follow: a consistent archive around a short array
        blob = bytearray(Path(_npz(tmp_path / "s.npz", {"X": _npy((50, 2), b"\0" * 160),
                                                         "y": _npy_of(np.arange(50) % 2)})).read_bytes())
    else:
        blob[200:260] = b"\xff" * 60
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(blob))
    with fails(r"^data\.path: ") as e:
        load({"name": "npz", "path": str(bad)})
    assert "bad.npz" in str(e.value) and "\n" not in str(e.value)


def test_safe_npz_arrays_never_unpickles_and_reports_missing_keys(tmp_path):
    path = tmp_path / "o.npz"
    np.savez(path, X=np.zeros((3, 2)), obj=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(files.BadFile, match=r"array 'obj' in .*o\.npz holds Python objects"):
        files.safe_npz_arrays(str(path))  # every member's header is checked, not just those asked for later
    with pytest.raises(files.MissingArrays) as e:
        files.safe_npz_arrays(str(path), ["X", "x_train"])
    assert e.value.missing == ["x_train"] and e.value.present == ["X", "obj"]
    arrays = files.safe_npz_arrays(str(path), ["X"])
    assert list(arrays) == ["X"] and arrays["X"].shape == (3, 2)


# ---- 3. extreme data: a data error naming the column, never a silently wrong run -------------------


def test_1e308_in_a_csv_is_a_data_error_naming_the_column_not_a_run_at_50_percent(tmp_path):
    x = np.r_[1e308, -1e308, np.linspace(-1, 1, 38)]
    path = one_feature_csv(tmp_path, x)
    with fails(r"^data: column 1 \('x'\) of .*d\.csv: its standard deviation overflows float64 \(values up to "
               r"1e\+308; accepted: \|x\| below about 1e154, or data\.standardize: false\)$"):
        load({"name": "csv", "path": path})


def test_1e308_in_an_npz_is_a_data_error_naming_the_column(tmp_path):
    X = np.c_[np.zeros(40), np.r_[1e308, -1e308, np.linspace(-1, 1, 38)]]
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(40) % 2)
    with fails(r"^data: X\[:, 1\] of .*d\.npz: its standard deviation overflows float64"):
        load({"name": "npz", "path": str(tmp_path / "d.npz")})


def test_a_value_beyond_the_training_spread_that_overflows_once_standardized_is_a_data_error():
    X = np.c_[np.r_[np.linspace(0, 1e-3, 10), 1e308]]
    ds = data.Dataset(X, np.arange(11) % 2, "binary", 2, ("column 1 of v.csv",))
    train, val = splitting._take(ds, np.arange(10)), splitting._take(ds, np.array([10]))
    with fails(r"^data: column 1 of v\.csv: the value 1e\+308 is not finite once standardized"):
        splitting._standardized(train, val, True)


def test_a_csv_value_that_overflows_float32_is_a_config_error_not_a_divergence(tmp_path):
    path = one_feature_csv(tmp_path, np.r_[1e39, np.linspace(-1, 1, 39)])
    cfg = {**BASE, "data": {"name": "csv", "path": path, "standardize": False},
           "train": {"epochs": 1, "batch_size": 8, "dtype": "float32"}}
    with fails(r"^train\.dtype: float32 cannot hold the value 1e\+39 of column 1 \('x'\) of .*d\.csv"):
        expand(cfg)
    cfg["train"]["dtype"] = "float64"
    assert expand(cfg)  # float64 holds it: trained as asked


def test_float32_regression_targets_are_checked_too(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("x,t\n" + "".join(f"{i},{v!r}\n" for i, v in enumerate([1e39, 0.5, 0.25, 1.5])))
    cfg = {**BASE, "data": {"name": "csv", "path": str(p), "task": "regression"},
           "train": {"epochs": 1, "batch_size": 2, "dtype": "float32"}}
    with fails(r"^train\.dtype: float32 cannot hold the regression target 1e\+39"):
        expand(cfg)


def test_extreme_data_through_the_command_line_leaves_no_run_directory(tmp_path):
    path = one_feature_csv(tmp_path, np.r_[1e308, -1e308, np.linspace(-1, 1, 38)])
    (tmp_path / "c.yaml").write_text(json.dumps({**BASE, "data": {"name": "csv", "path": path}}))
    code, out, err = run_cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs")
    assert code == 2 and err.startswith("error: data: column 1 ('x') of ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


# ---- 4. memory: estimated before anything is allocated ----------------------------------------------


@pytest.mark.parametrize("change, key", [({"model": {"hidden": [2**31]}}, "model.hidden"),
                                         ({"model": {"hidden": [100_000, 100_000]}}, "model.hidden"),
                                         ({"data": {"name": "moons", "n_samples": 2**31}}, "data.n_samples")])
def test_huge_configs_are_refused_with_the_estimate_and_the_limit(change, key, monkeypatch):
    monkeypatch.setenv(budget.ENV, "64G")
    with fails(rf"^{key}: .*needs about [\d.]+ [GT]iB of memory.*over the limit of 64 GiB "
               rf"\(set by OPTBENCH_MEMORY_LIMIT\)$"):
        expand({**BASE, **change})


def test_the_limit_is_half_the_physical_memory_unless_the_environment_says(monkeypatch):
    monkeypatch.delenv(budget.ENV, raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert budget.limit()[0] == int(0.5 * physical)
    for text, n in (("512M", 512 * 2**20), ("2g", 2 * 2**30), ("1.5GiB", 3 * 2**29), ("1000", 1000)):
        monkeypatch.setenv(budget.ENV, text)
        assert budget.limit() == (n, "set by OPTBENCH_MEMORY_LIMIT")
    monkeypatch.setenv(budget.ENV, "lots")
    with fails(r"^OPTBENCH_MEMORY_LIMIT: 'lots' is invalid \(accepted: a number of bytes > 0"):
        expand(BASE)


def test_replicas_of_one_group_count_together(monkeypatch):
    """Each of 8 seeds fits alone; the group of 8 that trains them at once does not."""
    cfg = {**BASE, "seeds": list(range(8)), "model": {"hidden": [64, 64]}}
    runs = expand({**cfg, "seeds": [0]})
    one = budget.estimate(runs, 40, 2, 1).total
    eight = budget.estimate(runs * 8, 40, 2, 1).total
    assert eight > 4 * one
    monkeypatch.setenv(budget.ENV, str(int(2 * one)))
    assert len(expand({**cfg, "seeds": [0]})) == 1
    with fails(r"^model\.hidden: 8 runs training together need about .* over the limit"):
        expand(cfg)


def test_a_huge_config_through_the_command_line_leaves_no_run_directory(tmp_path):
    (tmp_path / "c.yaml").write_text(json.dumps({**BASE, "model": {"hidden": [2**31]}}))
    code, out, err = run_cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs")
    assert code == 2 and err.startswith("error: model.hidden: ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_the_estimate_bounds_what_a_real_run_allocates(tmp_path):
    """The formula is an upper bound: the parameter part covers theta, gradients and Adam's moments."""
    (cfg,) = expand({**BASE, "model": {"hidden": [32]}})
    e = budget.estimate([cfg], 40, 2, 1)
    P = (2 + 1) * 32 + (32 + 1) * 1
    assert e.params >= 8 * P * (2 + 2)  # theta, grad, m, v
    assert e.data >= 40 * (2 + 1 + 1) * 8 * 2  # X and y in float64, and the engine's copy


# ---- 5. deep nesting and other hostile content in run files ----------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    outcomes, interrupted = execute(expand({**BASE, "seeds": [0, 1]}), root)
    assert outcomes and not interrupted
    return root


def _victim(runs: Path, tmp_path: Path) -> tuple[Path, Path]:
    dst = tmp_path / "runs"
    shutil.copytree(runs, dst)
    return dst, sorted(d for d in dst.iterdir() if d.is_dir())[0]


@pytest.mark.parametrize("depth", [80, 500, 900, 5000])
def test_a_deeply_nested_summary_json_skips_the_run_with_one_warning(runs, tmp_path, depth):
    dst, bad = _victim(runs, tmp_path)
    s = json.loads((bad / "summary.json").read_text())
    text = json.dumps({k: v for k, v in s.items() if k != "final"})
    (bad / "summary.json").write_text(text[:-1] + ', "final": ' + '{"a": ' * depth + "1" + "}" * depth + "}")
    warnings: list[str] = []
    kept = read([dst], warnings.append)
    assert len(kept) == 1 and bad not in [r.path for r in kept]
    assert warnings == [f"warning: {bad}: summary.json is nested too deeply (more than 64 levels)"]


def test_a_deeply_nested_config_yaml_skips_the_run_with_one_warning(runs, tmp_path):
    dst, bad = _victim(runs, tmp_path)
    (bad / "config.yaml").write_text((bad / "config.yaml").read_text() + "extra: " + "[" * 600 + "]" * 600 + "\n")
    warnings: list[str] = []
    assert len(read([dst], warnings.append)) == 1
    assert len(warnings) == 1 and "config.yaml" in warnings[0] and "nested too deeply" in warnings[0]


@pytest.mark.parametrize("kind", ["fifo", "device", "too large"])
def test_a_run_file_that_is_no_bounded_regular_file_is_one_warning_and_never_blocks(runs, tmp_path, kind):
    dst, bad = _victim(runs, tmp_path)
    target = bad / "summary.json"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        os.symlink("/dev/zero", target)
    else:
        with open(target, "wb") as f:  # sparse: 17 MiB of nothing costs no disk
            f.truncate(17 * 2**20)
    warnings: list[str] = []
    assert len(read([dst], warnings.append)) == 1
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {bad}: ")
    assert ("too large" if kind == "too large" else "not a regular file") in warnings[0]


def test_bare_compare_does_not_block_on_a_fifo_summary(runs, tmp_path):
    dst, bad = _victim(runs, tmp_path)
    (bad / "summary.json").unlink()
    os.mkfifo(bad / "summary.json")
    code, out, err = run_cli("compare", "--runs-dir", dst, timeout=60)
    assert code == 0 and "error" not in err, err  # the unreadable run is no part of the experiment chosen


# ---- the config boundary keeps what it promised (verified here, fixed with the config work) ---------


@pytest.mark.parametrize("raw, message", [
    ({**BASE, "data": {"name": ["moons"]}}, r"^data\.name: \['moons'\] is invalid"),
    ({**BASE, "seed": -1}, r"^seed: -1 is invalid"),
    ({**BASE, "data": {"name": "moons", "seed": -1}}, r"^data\.seed: -1 is invalid"),
])
def test_list_names_and_negative_seeds_are_config_errors(raw, message):
    with fails(message):
        expand(raw)


def test_the_split_key_npz_loader_checks_headers_as_the_npz_reader_does(tmp_path):
    """npz_splits reads through safe_npz_arrays too: a crafted x_train header is refused before allocating."""
    small = _npy_of(np.zeros((4, 2)))
    path = _npz(tmp_path / "mnist.npz", {"x_train": _npy((100000, 100000, 10), b"\0" * 8), "y_train": _npy_of(np.arange(4) % 2),
                                         "x_test": small, "y_test": _npy_of(np.arange(4) % 2)})
    with fails(r"^data\.path: array 'x_train' in .*mnist\.npz: its header says float64 \(100000, 100000, 10\) \(745 GiB\)"):
        load({"name": "npz_splits", "path": path})
