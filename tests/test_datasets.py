"""File formats on disk (IDX, CIFAR-10 pickles/tar.gz/binary, scikit-learn's bundled sets): fixtures written
here in each format's exact layout; every bad input is one line (exit 2 from the CLI) and nothing is written."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from conftest import ROOT, run_dirs
from optbench.data import load
from optbench.errors import OptbenchError

# ---------------------------------------------------------------- writers of the real formats

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
             np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    """LeCun's IDX: 0, 0, type code, ndim; big-endian uint32 sizes; big-endian values."""
    a = np.asarray(a)
    head = bytes([0, 0, IDX_CODES[a.dtype.newbyteorder("=")], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write(path, data: bytes, gz: bool = False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mnist_like(rng, n, classes=3, shape=(4, 3)):
    X = rng.integers(0, 256, (n, *shape)).astype(np.uint8)
    y = (np.arange(n) % classes).astype(np.uint8)
    return X, y


@pytest.fixture
def mnist_dir(tmp_path):
    """A folder with the four standard MNIST file names, gzipped: 30 training and 12 test 4x3 images, 3 classes."""
    rng = np.random.default_rng(0)
    (X, y), (Xt, yt) = mnist_like(rng, 30), mnist_like(rng, 12)
    d = tmp_path / "mnist"
    d.mkdir()
    for name, a in (("train-images-idx3-ubyte", X), ("train-labels-idx1-ubyte", y),
                    ("t10k-images-idx3-ubyte", Xt), ("t10k-labels-idx1-ubyte", yt)):
        write(d / f"{name}.gz", idx_bytes(a), gz=True)
    return d, (X, y, Xt, yt)


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote CIFAR-10's batches: str and bytes as BINSTRING, numpy.core globals."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2str(self, obj: bytes):
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2str
    dispatch[str] = lambda self, s: self.save_py2str(s.encode("latin1"))

    def save_global(self, obj, name=None):
        module = {"numpy._core.multiarray": "numpy.core.multiarray"}.get(obj.__module__, obj.__module__)
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def cifar_batch(X: np.ndarray, y: np.ndarray, label: str) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump({b"batch_label": label.encode(), b"labels": [int(v) for v in y],
                                      b"data": X, b"filenames": [b"f%d.png" % i for i in range(len(y))]})
    return buf.getvalue()


N_BATCH = 6  # images per batch here (10000 in CIFAR-10)


@pytest.fixture
def cifar(tmp_path):
    """cifar-10-batches-py/, cifar-10-python.tar.gz and cifar-10-batches-bin/ holding the same small batches."""
    rng = np.random.default_rng(1)
    batches = {n: (rng.integers(0, 256, (N_BATCH, 3072)).astype(np.uint8), rng.integers(0, 10, N_BATCH))
               for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    py, binary = tmp_path / "cifar-10-batches-py", tmp_path / "cifar-10-batches-bin"
    py.mkdir()
    binary.mkdir()
    for n, (X, y) in batches.items():
        (py / n).write_bytes(cifar_batch(X, y, n))
        (binary / f"{n}.bin").write_bytes(np.c_[y.astype(np.uint8), X].tobytes())
    (py / "batches.meta").write_bytes(b"not read")
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(py, arcname="cifar-10-batches-py")
    return {"py": py, "bin": binary, "tgz": tgz, "batches": batches}


def fails(match: str):
    return pytest.raises(OptbenchError, match=re.escape(match))


def one_line(err: OptbenchError) -> str:
    text = str(err)
    assert "\n" not in text and len(text) < 400, text
    return text


# ---------------------------------------------------------------- IDX


def test_idx_folder_reads_the_four_files_and_uses_the_test_files_as_the_test_split(mnist_dir):
    d, (X, y, Xt, yt) = mnist_dir
    s = load({"name": "idx", "path": str(d), "standardize": False})
    assert s.train.X.shape == (30, 12) and s.train.X.dtype == np.float64  # 4x3 images flattened
    np.testing.assert_array_equal(s.train.X, X.reshape(30, -1))
    np.testing.assert_array_equal(s.train.y, y)
    np.testing.assert_array_equal(s.test.X, Xt.reshape(12, -1))
    np.testing.assert_array_equal(s.test.y, yt)
    assert (s.train.task, s.train.n_classes, s.val) == ("multiclass", 3, None)


def test_idx_standardizes_every_split_with_training_statistics(mnist_dir):
    d, (X, y, Xt, yt) = mnist_dir
    s = load({"name": "idx", "path": str(d), "val_fraction": 0.2})
    assert len(s.train.y) == 24 and len(s.val.y) == 6 and len(s.test.y) == 12
    raw = load({"name": "idx", "path": str(d), "standardize": False})
    np.testing.assert_allclose(s.test.X, (raw.test.X - s.mean) / s.std)
    np.testing.assert_allclose(s.train.X.mean(0), 0, atol=1e-12)
    assert not np.allclose(s.mean, Xt.reshape(12, -1).mean(0))  # not the test set's own statistics


def test_idx_files_raw_or_gz_n_train_and_float_types(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((20, 2, 5)).astype(np.float32)
    y = (np.arange(20) % 4).astype(np.int16)
    img, lab = write(tmp_path / "img.idx", idx_bytes(X)), write(tmp_path / "lab.idx.gz", idx_bytes(y), gz=True)
    s = load({"name": "idx", "images": str(img), "labels": str(lab), "n_train": 7, "standardize": False})
    np.testing.assert_array_equal(s.train.X, X[:7].reshape(7, 10).astype(np.float64))  # the first 7, in file order
    np.testing.assert_array_equal(s.train.y, y[:7])
    assert s.test is None and s.train.n_classes == 4  # classes: the largest label + 1 over the files


def test_idx_test_fraction_carves_a_test_split_only_where_the_files_have_none(tmp_path, mnist_dir):
    rng = np.random.default_rng(3)
    X, y = mnist_like(rng, 40)
    img, lab = write(tmp_path / "i", idx_bytes(X)), write(tmp_path / "l", idx_bytes(y))
    s = load({"name": "idx", "images": str(img), "labels": str(lab), "test_fraction": 0.25})
    assert len(s.test.y) == 10 and len(s.train.y) == 30
    with fails("data.test_fraction: 0.25 is invalid: the file has its own test split of 12 examples (accepted: 0)"):
        load({"name": "idx", "path": str(mnist_dir[0]), "test_fraction": 0.25})


def _idx_case(tmp_path, case):
    rng = np.random.default_rng(4)
    X, y = mnist_like(rng, 10)
    good_x, good_y = idx_bytes(X), idx_bytes(y)
    sec = {"name": "idx", "images": str(tmp_path / "i"), "labels": str(tmp_path / "l")}
    files = {"i": good_x, "l": good_y}
    if case == "missing":
        files.pop("i")
    elif case == "truncated":
        files["i"] = good_x[:-5]
    elif case == "truncated_gz":
        files["i"] = gzip.compress(good_x)[:-12]
    elif case == "longer":
        files["i"] = good_x + b"\0"
    elif case == "magic":
        files["i"] = b"\x00\x00\x07\x03" + good_x[4:]
    elif case == "not_idx":
        files["i"] = b"PK\x03\x04 a zip file"
    elif case == "count":
        files["l"] = idx_bytes(y[:9])
    elif case == "label_dims":
        files["l"] = idx_bytes(y.reshape(5, 2))
    elif case == "label_range":
        sec["classes"] = 2
    elif case == "float_labels":
        files["l"] = idx_bytes(y.astype(np.float32))
    elif case == "single_class":
        files["l"] = idx_bytes(np.zeros(10, np.uint8))
    for name, b in files.items():
        (tmp_path / name).write_bytes(b)
    return sec


IDX_BAD = {
    "missing": "data.images: not found:",
    "truncated": "is truncated: 10 records of shape (4, 3) as its header says needs 120 bytes, the file has 115 left",
    "truncated_gz": "is truncated or corrupt while reading",
    "longer": "holds more data than its header's 10 records of shape (4, 3)",
    "magic": "is not an IDX file: magic number 0x00000703",
    "not_idx": "is not an IDX file: magic number 0x504b0304",
    "count": "data.labels: ",
    "label_dims": "has shape (5, 2) (accepted: labels, one value per example: 1 dimension)",
    "label_range": "label 2 at example 2 is out of range (accepted: 0..1)",
    "float_labels": "holds labels of dtype float32 (accepted: integer class labels)",
    "single_class": "holds a single class, label 0",
}


@pytest.mark.parametrize("case", IDX_BAD)
def test_idx_bad_inputs_are_one_line(tmp_path, case):
    with pytest.raises(OptbenchError) as err:
        load(_idx_case(tmp_path, case))
    assert IDX_BAD[case] in one_line(err.value)
    assert one_line(err.value).startswith("data.")


def test_idx_count_mismatch_names_both_files(tmp_path):
    with fails("has 9 labels but"):
        load(_idx_case(tmp_path, "count"))


def test_idx_folder_errors(tmp_path, mnist_dir):
    d = mnist_dir[0]
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with fails("holds 0 files named like (t10k|test)-labels[.-]idx1-ubyte[.gz] (none)"):
        load({"name": "idx", "path": str(d)})
    with fails("data.path: not found: "):
        load({"name": "idx", "path": str(tmp_path / "nowhere")})
    with fails("give path or images/labels, not both"):
        load({"name": "idx", "path": str(d), "images": "x"})
    with fails("data.n_train: 31 is more than the 30 training examples"):
        load({"name": "idx", "images": str(d / "train-images-idx3-ubyte.gz"),
              "labels": str(d / "train-labels-idx1-ubyte.gz"), "n_train": 31})


# ---------------------------------------------------------------- CIFAR-10


def test_cifar_py_tar_and_bin_read_the_same_arrays(cifar):
    b = cifar["batches"]
    X = np.concatenate([b[f"data_batch_{i}"][0] for i in range(1, 6)]).astype(np.float64)
    y = np.concatenate([b[f"data_batch_{i}"][1] for i in range(1, 6)])
    for kind in ("py", "tgz", "bin"):
        s = load({"name": "cifar10", "path": str(cifar[kind]), "standardize": False})
        np.testing.assert_array_equal(s.train.X, X, err_msg=kind)
        np.testing.assert_array_equal(s.train.y, y, err_msg=kind)
        np.testing.assert_array_equal(s.test.X, b["test_batch"][0], err_msg=kind)
        np.testing.assert_array_equal(s.test.y, b["test_batch"][1], err_msg=kind)
        assert (s.train.n_classes, s.train.task, s.train.X.shape[1]) == (10, "multiclass", 3072)
    parent = load({"name": "cifar10", "path": str(cifar["py"].parent), "standardize": False})  # the folder holding it
    np.testing.assert_array_equal(parent.train.X, X)


def test_cifar_n_train_takes_the_first_examples_cs231n_style(cifar):
    s = load({"name": "cifar10", "path": str(cifar["tgz"]), "n_train": 8, "standardize": False})
    b = cifar["batches"]
    first8 = np.concatenate([b["data_batch_1"][0], b["data_batch_2"][0][:2]])
    np.testing.assert_array_equal(s.train.X, first8)
    assert len(s.test.y) == N_BATCH


def test_a_malicious_pickle_is_refused_with_one_line_and_never_runs(tmp_path, cifar):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2)
    (cifar["py"] / "data_batch_3").write_bytes(evil)
    with pytest.raises(OptbenchError) as err:
        load({"name": "cifar10", "path": str(cifar["py"])})
    msg = one_line(err.value)
    assert re.search(r"data\.path: .*data_batch_3 is refused: its pickle asks for (posix|os|nt)\.system", msg), msg
    assert not marker.exists()
    # the same through builtins.eval or a protocol-4 STACK_GLOBAL: refused by name too
    for payload in (pickle.dumps((eval, ("1",)), protocol=4), b"cbuiltins\neval\n(S'1'\ntR."):
        (cifar["py"] / "data_batch_3").write_bytes(payload)
        with fails("is refused: its pickle asks for builtins."):
            load({"name": "cifar10", "path": str(cifar["py"])})


def test_a_standard_pickle_load_would_have_run_it(tmp_path):
    """The control: the payload above does execute under a plain pickle.load, so the refusal is what protects."""
    marker = tmp_path / "ran"
    code = f"import os, pickle; pickle.loads(pickle.dumps(type('E', (), {{'__reduce__': lambda s: (os.system, ('touch {marker}',))}})()))"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert marker.exists()


CIFAR_BAD = {
    "missing": ("py", lambda c: (c["py"] / "data_batch_2").unlink(), "lacks data_batch_2"),
    "truncated_pickle": ("py", lambda c: (c["py"] / "test_batch").write_bytes((c["py"] / "test_batch").read_bytes()[:-40]),
                         "test_batch is not a readable CIFAR batch pickle"),
    "wrong_shape": ("py", lambda c: (c["py"] / "data_batch_1").write_bytes(
        cifar_batch(np.zeros((3, 100), np.uint8), [0, 1, 2], "x")), "'data' is shape (3, 100), dtype uint8"),
    "label_range": ("py", lambda c: (c["py"] / "data_batch_1").write_bytes(
        cifar_batch(np.zeros((2, 3072), np.uint8), [3, 10], "x")), "label 10 at example 1 is out of range (accepted: 0..9)"),
    "label_count": ("py", lambda c: (c["py"] / "data_batch_1").write_bytes(
        cifar_batch(np.zeros((2, 3072), np.uint8), [3], "x")), "'labels' is 1 labels for 2 images"),
    "bin_truncated": ("bin", lambda c: (c["bin"] / "data_batch_5.bin").write_bytes(
        (c["bin"] / "data_batch_5.bin").read_bytes()[:-1]), "not a whole number of 3073-byte records"),
    "bin_label": ("bin", lambda c: (c["bin"] / "test_batch.bin").write_bytes(
        b"\x0c" + (c["bin"] / "test_batch.bin").read_bytes()[1:]), "label 12 at example 0 is out of range"),
    "tgz_truncated": ("tgz", lambda c: c["tgz"].write_bytes(c["tgz"].read_bytes()[:-300]),
                      "as a CIFAR-10 .tar.gz: truncated or corrupt"),
    "not_there": ("none", lambda c: None, "data.path: not found: "),
}


@pytest.mark.parametrize("case", CIFAR_BAD)
def test_cifar_bad_inputs_are_one_line(cifar, tmp_path, case):
    kind, spoil, expected = CIFAR_BAD[case]
    spoil(cifar)
    path = cifar[kind] if kind != "none" else tmp_path / "cifar-10-batches-py-absent"
    with pytest.raises(OptbenchError) as err:
        load({"name": "cifar10", "path": str(path)})
    assert expected in one_line(err.value)


# ---------------------------------------------------------------- scikit-learn's bundled sets


@pytest.mark.parametrize("name, shape, task, k", [
    ("digits", (1797, 64), "multiclass", 10), ("iris", (150, 4), "multiclass", 3),
    ("breast_cancer", (569, 30), "binary", 2), ("wine", (178, 13), "multiclass", 3),
    ("diabetes", (442, 10), "regression", 0)])
def test_sklearn_bundled_sets(name, shape, task, k):
    s = load({"name": name, "val_fraction": 0.2, "test_fraction": 0.2})
    n = shape[0]
    assert len(s.train.y) + len(s.val.y) + len(s.test.y) == n and s.train.X.shape[1] == shape[1]
    assert (s.train.task, s.train.n_classes) == (task, k)
    assert s.train.y.shape == ((len(s.train.y), 1) if task == "regression" else (len(s.train.y),))


def test_sklearn_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if not installed
    with fails("data.name: digits is one of scikit-learn's bundled sets, and scikit-learn is not installed "
               "(accepted: pip install 'optbench[datasets]', or another data.name)"):
        load({"name": "digits"})


# ---------------------------------------------------------------- through the CLI: exit 2, one line, nothing written


@pytest.mark.parametrize("section", [
    "{name: idx, images: nowhere.idx, labels: nowhere.idx}",
    "{name: cifar10, path: cifar-10-batches-py}",
])
def test_cli_missing_data_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, section):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: x\ndata: {section}\noptimizer: {{name: sgd, lr: 0.1}}\n")
    code, out, err = cli("train", cfg, "-q", "--runs-dir", tmp_path / "runs")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not found" in err, err
    assert str(tmp_path) in err  # the path, resolved against the config's folder
    assert not (tmp_path / "runs").exists() or not run_dirs(tmp_path / "runs")


def test_cli_trains_on_an_idx_folder_relative_to_the_config(cli, mnist_dir):
    d = mnist_dir[0]
    cfg = d.parent / "c.yaml"
    cfg.write_text("name: tiny\ndata: {name: idx, path: mnist}\nmodel: {hidden: [8]}\noptimizer: {name: adam, lr: 0.01}\n"
                   "train: {epochs: 3, batch_size: 10}\n")
    code, out, err = cli("train", cfg, "-q", "--runs-dir", d.parent / "runs")
    assert code == 0, err
    (run,) = (d.parent / "runs").glob("tiny-*")
    final = json.loads((run / "summary.json").read_text())["final_eval"]
    assert 0 <= final["test_acc"] <= 1 and final["test_cost"] > 0  # the files' test split, measured once


# ---------------------------------------------------------------- the deeplearning.ai notebook's streams


def test_moons_random_state_is_sklearns_make_moons_point_for_point():
    from sklearn.datasets import make_moons

    X, y = make_moons(300, noise=0.2, random_state=3)  # = np.random.seed(3); make_moons(300, noise=0.2)
    s = load({"name": "moons", "n_samples": 300, "noise": 0.2, "random_state": 3, "standardize": False})
    np.testing.assert_array_equal(s.train.X, X)
    np.testing.assert_array_equal(s.train.y, y)


def test_circles_random_state_is_sklearns_make_circles_point_for_point():
    from sklearn.datasets import make_circles

    X, y = make_circles(noise=0.2, factor=0.5, random_state=1)  # scikit-learn's strategies example
    s = load({"name": "circles", "n_samples": 100, "noise": 0.2, "factor": 0.5, "random_state": 1,
              "standardize": False})
    np.testing.assert_array_equal(s.train.X, X)
    np.testing.assert_array_equal(s.train.y, y)


def test_compat_init_and_batch_order_are_the_notebooks():
    from optbench.compat import epoch_order, init_rng

    rs = np.random.RandomState(3)  # initialize_parameters: np.random.seed(3), then layer by layer
    dims = [2, 5, 2, 1]
    expected = [rs.randn(dims[l], dims[l - 1]) * np.sqrt(2 / dims[l - 1]) for l in range(1, 4)]
    from optbench.init import he

    g = init_rng(0)
    for W, l in zip(expected, range(1, 4)):
        np.testing.assert_array_equal(he(shape=(dims[l], dims[l - 1]), rng=g), W)
    state = np.random.RandomState()
    for i in (0, 1, 4999):  # model(): seed = 10, then seed + 1 before each epoch's random_mini_batches
        np.testing.assert_array_equal(epoch_order(i, 300, 0, state), np.random.RandomState(10 + i + 1).permutation(300))
    assert not np.array_equal(epoch_order(0, 300, 1, state), epoch_order(0, 300, 0, state))  # seed 1: another stream


def test_compat_fills_the_notebooks_defaults_and_a_config_without_it_resolves_as_before(tmp_path):
    from optbench.config import load_experiment

    base = ("name: x\ndata: {name: moons, seed: 3}\noptimizer: {name: gd, lr: 0.1}\n"
            "schedule: {name: inverse_time, interval: 1000}\n")
    (tmp_path / "plain.yaml").write_text(base)
    (tmp_path / "dlai.yaml").write_text(base + "train: {compat: dlai}\n")
    (plain,), (nb,) = load_experiment(tmp_path / "plain.yaml"), load_experiment(tmp_path / "dlai.yaml")
    assert "compat" not in plain["train"] and plain["data"]["random_state"] is None
    assert plain["schedule"]["timing"] == "during" and plain["data"]["standardize"] is True
    assert nb["train"]["compat"] == "dlai" and nb["schedule"]["timing"] == "after"
    assert nb["data"]["random_state"] == 3 and nb["data"]["standardize"] is False


def test_inverse_time_timing_after_decays_one_epoch_later():
    from optbench.schedules import SCHEDULES

    during = SCHEDULES.build("inverse_time", {"decay_rate": 1.0, "interval": 1}, epochs=10)
    after = SCHEDULES.build("inverse_time", {"decay_rate": 1.0, "interval": 1, "timing": "after"}, epochs=10)
    m = lambda s, e: float(s.multiplier(e, {})[0])  # noqa: E731
    assert [m(during, e) for e in range(4)] == [1, 1 / 2, 1 / 3, 1 / 4]  # torch's LambdaLR: epoch e at f(e)
    assert [m(after, e) for e in range(4)] == [1, 1, 1 / 2, 1 / 3]  # the notebook: epoch e at f(e - 1)


# ---------------------------------------------------------------- real data in CI: Debian's dataset-fashion-mnist

FASHION = "/usr/share/datasets/fashion-mnist"  # .ci/run installs the package (apt-get install dataset-fashion-mnist)


def test_fashion_mnist_example_config_learns_from_the_debian_package(cli, tmp_path):
    """configs/examples/fashion-mnist-optimizers.yaml, shortened (3000 images, 1 epoch): all well above chance."""
    assert os.path.isdir(FASHION), "install Debian's dataset-fashion-mnist (as .ci/run does)"
    code, _, err = cli("train", ROOT / "configs/examples/fashion-mnist-optimizers.yaml", "-q", "--runs-dir", tmp_path,
                       "--set", "data.n_train=3000", "--set", "train.epochs=1")
    assert code == 0, err
    final = {d.name.split("-")[3]: json.loads((d / "summary.json").read_text())["final_eval"]
             for d in tmp_path.glob("fashion-mnist-optimizers-*")}
    assert set(final) == {"sgd", "momentum", "adam"}
    for v, f in final.items():
        assert f["test_acc"] > 0.6, (v, f)  # chance is 0.1; the 10000 t10k images are the test split


def test_sklearn_strategies_example_shows_its_lesson_per_data_set(cli, tmp_path):
    """configs/examples/sklearn-strategies.yaml in full (28 runs, a few seconds), compared one data set at a time:
    inv-scaling without momentum is the slowest everywhere, momentum rescues it, and the lowest final training
    cost is a constant rate with momentum or Adam."""
    code, _, err = cli("train", ROOT / "configs/examples/sklearn-strategies.yaml", "-q", "--runs-dir", tmp_path)
    assert code == 0, err
    for ds in ("iris", "digits", "circles", "moons"):
        code, out, err = cli("compare", *tmp_path.glob(f"sklearn-strategies-{ds}-*"), "--format", "json")
        assert code == 0, err
        rows = {r["label"].split("/")[1][len(ds) + 1:]: r for r in json.loads(out)}
        cost = {k: r["final_train_cost"] for k, r in rows.items()}
        assert len(cost) == 7 and {r["metric"] for r in rows.values()} == {"final_train_cost"}, ds
        assert max(cost, key=cost.get) == "invscaling", (ds, cost)
        assert cost["invscaling-momentum"] < cost["invscaling"] and cost["invscaling-nesterov"] < cost["invscaling"]
        best = next(k for k, r in rows.items() if r["verdict"] == "best")
        assert best in {"momentum", "nesterov", "adam"} and best == min(cost, key=cost.get), (ds, cost)
        assert cost["constant"] > min(cost["momentum"], cost["adam"]), (ds, cost)


def test_examples_without_their_data_fail_with_one_line(cli, tmp_path):
    code, _, err = cli("train", ROOT / "configs/examples/cs231n-cifar10-optimizers.yaml", "-q", "--runs-dir", tmp_path,
                       "--set", f"data.path={tmp_path / 'cifar-10-batches-py'}")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "data.path: not found:" in err and "cifar-10-python.tar.gz" in err
    assert not list(tmp_path.iterdir())


def test_cs231n_example_config_trains_on_cifar_files_in_the_exact_format(cli, cifar, tmp_path):
    """The CS231n config itself, on the small CIFAR batches written above (the real set is not installable here)."""
    code, _, err = cli("train", ROOT / "configs/examples/cs231n-cifar10-optimizers.yaml", "-q", "--runs-dir", tmp_path / "runs",
                       "--set", f"data.path={cifar['tgz']}", "--set", "data.n_train=20", "--set", "train.batch_size=10",
                       "--set", "train.epochs=1")
    assert code == 0, err
    assert len(list((tmp_path / "runs").glob("cs231n-cifar10-optimizers-*"))) == 4


def test_peak_memory_loading_60000_like_float32_idx_is_one_float64_copy(tmp_path):
    """A float32 IDX set read into float64 holds the output and one 8 MB chunk, never the file's bytes as well."""
    n, d = 20000, 784
    X = np.random.default_rng(0).random((n, d), dtype=np.float32)
    write(tmp_path / "img", idx_bytes(X.reshape(n, 28, 28)))
    write(tmp_path / "lab", idx_bytes((np.arange(n) % 10).astype(np.uint8)))
    code = (f"import resource; from optbench.data import load; "
            f"r = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024; a = r(); "
            f"s = load({{'name': 'idx', 'images': '{tmp_path}/img', 'labels': '{tmp_path}/lab', 'standardize': False}}); "
            f"print(r() - a, s.train.X.nbytes)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    grown, nbytes = map(int, out.split())
    assert nbytes == n * d * 8
    assert grown < 1.2 * nbytes, (grown, nbytes)  # reading the 63 MB file whole first would add 0.5x or more


# ---------------------------------------------------------------- .npz with split keys (Keras' mnist.npz)


@pytest.fixture
def keras_npz(tmp_path):
    rng = np.random.default_rng(5)
    (X, y), (Xt, yt) = mnist_like(rng, 25, classes=4), mnist_like(rng, 8, classes=4)
    p = tmp_path / "mnist.npz"
    np.savez_compressed(p, x_train=X, y_train=y, x_test=Xt, y_test=yt)
    return p, (X, y, Xt, yt)


def test_npz_split_keys_are_train_and_test(keras_npz):
    p, (X, y, Xt, yt) = keras_npz
    s = load({"name": "npz_splits", "path": str(p), "n_train": 20, "standardize": False})
    np.testing.assert_array_equal(s.train.X, X[:20].reshape(20, -1))
    np.testing.assert_array_equal(s.test.y, yt)
    assert (s.train.n_classes, s.test.X.shape) == (4, (8, 12))


@pytest.mark.parametrize("case, expected", [
    ("missing_key", "data.y_test: 'y_test' is not an array in"),
    ("objects", "array 'y_train' in"),  # the safe reader names the file (data.path) and the array
    ("truncated", "not an .npz archive"),
    ("rows", "data.y_train: array 'y_train' in"),
    ("label_range", "data.y_test: array 'y_test' in"),
])
def test_npz_split_bad_inputs_are_one_line(keras_npz, case, expected):
    p, (X, y, Xt, yt) = keras_npz
    arrays = {"x_train": X, "y_train": y, "x_test": Xt, "y_test": yt}
    if case == "missing_key":
        arrays.pop("y_test")
    elif case == "objects":
        arrays["y_train"] = np.array([object()] * len(y))
    elif case == "rows":
        arrays["y_train"] = y[:-1]
    elif case == "label_range":
        arrays["y_test"] = -np.ones(len(yt), np.int8)
    np.savez(p, **arrays)
    if case == "truncated":
        p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(OptbenchError) as err:
        load({"name": "npz_splits", "path": str(p)})
    assert expected in one_line(err.value)
