"""Datasets: generators, CSV/NPZ files, the split/standardize pipeline and its error messages."""

import inspect
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optbench.datasets import LOADERS
from optbench.data import DATASETS, Dataset, Split, check_labels, expected_loss, load, split
from optbench.errors import OptbenchError
from optbench.registry import RESERVED

# name -> (options, task, n_classes, n_features)
SYNTHETIC = {
    "moons": ({"n_samples": 301, "noise": 0.2}, "binary", 2, 2),
    "circles": ({"n_samples": 301, "noise": 0.1, "factor": 0.3}, "binary", 2, 2),
    "spiral": ({"n_samples": 301, "classes": 4, "noise": 0.2}, "multiclass", 4, 2),
    "blobs": ({"n_samples": 301, "classes": 3, "dim": 5, "spread": 0.5}, "multiclass", 3, 5),
    "xor": ({"n_samples": 301, "noise": 0.1}, "binary", 2, 2),
    "sine": ({"n_samples": 301, "noise": 0.1}, "regression", 0, 1),
}


def raw(name, seed=0, **options):
    """The generated dataset, unsplit and unstandardized."""
    return load({"name": name, "seed": seed, "standardize": False, **options}).train


def fails(match):
    return pytest.raises(OptbenchError, match=re.escape(match))


# ---------------------------------------------------------------- registry conventions


def test_every_dataset_is_registered_with_a_schema():
    assert set(SYNTHETIC) | {"csv", "npz"} | set(LOADERS) == set(DATASETS.names())
    for name in DATASETS.names():
        sig = inspect.signature(DATASETS.get(name))
        assert all(p.kind is p.KEYWORD_ONLY for p in sig.parameters.values())
        assert list(sig.parameters)[-1] == "rng"
        assert "rng" not in DATASETS.params(name) and not set(DATASETS.params(name)) & set(RESERVED)
        assert DATASETS.summary(name)
    assert "path" not in DATASETS.defaults("csv")  # the one required option


# ---------------------------------------------------------------- generators


@pytest.mark.parametrize("name", SYNTHETIC)
def test_generator_shapes_dtypes_and_labels(name):
    options, task, n_classes, dim = SYNTHETIC[name]
    ds = raw(name, **options)
    assert (ds.task, ds.n_classes) == (task, n_classes)
    assert ds.X.shape == (301, dim) and ds.X.dtype == np.float64 and ds.X.flags.c_contiguous
    assert np.all(np.isfinite(ds.X))
    if task == "regression":
        assert ds.y.shape == (301, 1) and ds.y.dtype == np.float64
    else:
        assert ds.y.shape == (301,) and ds.y.dtype == np.int64
        counts = np.bincount(ds.y)
        assert len(counts) == n_classes and counts.max() - counts.min() <= 1  # balanced
        assert not np.all(np.diff(ds.y) >= 0)  # shuffled, not in blocks


@pytest.mark.parametrize("name", SYNTHETIC)
def test_generator_is_deterministic_under_its_seed(name):
    options = SYNTHETIC[name][0]
    a, b, c = raw(name, 5, **options), raw(name, 5, **options), raw(name, 6, **options)
    assert a.X.tobytes() == b.X.tobytes() and a.y.tobytes() == b.y.tobytes()
    assert not np.array_equal(a.X, c.X)


def test_defaults_are_the_reference_moons():
    ds = load({"name": "moons"}).train
    assert ds.X.shape == (300, 2) and np.bincount(ds.y).tolist() == [150, 150]


def sorted_rows(X, y):
    Z = np.c_[X, y]
    return Z[np.lexsort(Z.T[::-1])]


@pytest.mark.parametrize("n", [300, 301, 2])
def test_moons_and_circles_match_sklearn_geometry(n):
    import sklearn.datasets as datasets
    X, y = datasets.make_moons(n_samples=n, noise=None, shuffle=False)
    ds = raw("moons", n_samples=n, noise=0)
    np.testing.assert_allclose(sorted_rows(ds.X, ds.y), sorted_rows(X, y), atol=1e-12)
    X, y = datasets.make_circles(n_samples=n, noise=None, factor=0.3, shuffle=False)
    ds = raw("circles", n_samples=n, noise=0, factor=0.3)
    np.testing.assert_allclose(sorted_rows(ds.X, ds.y), sorted_rows(X, y), atol=1e-12)


def test_spiral_geometry_without_noise():
    ds = raw("spiral", n_samples=30, classes=3, noise=0)
    for j in range(3):
        Xj = ds.X[ds.y == j]
        r = np.linalg.norm(Xj, axis=1)
        np.testing.assert_allclose(np.sort(r), np.linspace(0, 1, 10), atol=1e-12)
        t = np.arctan2(Xj[:, 0], Xj[:, 1])  # x = r sin t, y = r cos t
        expected = np.linspace(4 * j, 4 * (j + 1), 10)[np.argsort(np.argsort(r))]
        keep = r > 0
        np.testing.assert_allclose(np.cos(t[keep]), np.cos(expected[keep]), atol=1e-9)


def test_blobs_centers_xor_signs_and_sine_curve():
    ds = raw("blobs", n_samples=40, classes=2, dim=3, spread=0)
    assert ds.task == "binary"
    centers = np.array([ds.X[ds.y == k][0] for k in range(2)])
    np.testing.assert_array_equal(ds.X, centers[ds.y])
    assert np.all(np.abs(centers) <= 5)
    ds = raw("xor", n_samples=8, noise=0)
    assert set(map(tuple, ds.X)) == {(1, 1), (-1, 1), (-1, -1), (1, -1)}
    np.testing.assert_array_equal(ds.y, (np.sign(ds.X[:, 0]) != np.sign(ds.X[:, 1])).astype(int))
    assert raw("xor", n_samples=2).y.tolist() in ([0, 1], [1, 0])
    ds = raw("sine", noise=0)
    assert np.all(np.abs(ds.X) <= np.pi)
    np.testing.assert_array_equal(ds.y, np.sin(ds.X))


@pytest.mark.parametrize(
    "section, message",
    [
        ({"name": "moons", "noise": -0.1}, "data.noise: -0.1 is invalid"),
        ({"name": "moons", "n_samples": 1}, "data.n_samples: 1 is invalid"),
        ({"name": "spiral", "classes": 1}, "data.classes: 1 is invalid"),
        ({"name": "spiral", "n_samples": 2, "classes": 3}, "data.n_samples: 2 is invalid: needs at least one example"),
        ({"name": "circles", "factor": 1.0}, "data.factor: 1.0 is invalid"),
        ({"name": "moons", "nosie": 0.1}, "data.nosie: unknown option for moons (accepted: n_samples, noise, random_state, rotate, seed,"),
        ({"name": "mooons"}, "data.name: unknown dataset 'mooons' (accepted: moons, circles"),
        ({"noise": 0.1}, "data.name: required key is missing (accepted: moons"),
        ({"name": ["moons"]}, "data.name: ['moons'] is not a dataset name"),
        ({"name": "moons", "seed": -1}, "data.seed: -1 is invalid"),
        ({"name": "moons", "val_fraction": 1.5}, "data.val_fraction: 1.5 is invalid"),
        ({"name": "moons", "standardize": "maybe"}, "data.standardize: 'maybe' is invalid"),
        ({"name": "csv"}, "data.path: required key is missing"),
    ],
)
def test_bad_options_name_the_key(section, message):
    with fails(message):
        load(section)


def test_bad_section_and_custom_prefix():
    with fails("data: 'moons' is invalid: expected a mapping"):
        load("moons")
    with fails("runs.0.data.noise: -1 is invalid"):
        load({"name": "moons", "noise": -1}, path_prefix="runs.0.data")


def test_no_global_random_state_is_touched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    load({"name": "blobs", "val_fraction": 0.3})
    np.testing.assert_array_equal(np.random.get_state()[1], before)


# ---------------------------------------------------------------- split and standardization


def test_standardization_uses_training_statistics_only():
    section = {"name": "blobs", "n_samples": 200, "dim": 3, "val_fraction": 0.25, "seed": 4}
    s = load(section)
    plain = load({**section, "standardize": False})
    assert len(s.train.y) == 150 and len(s.val.y) == 50
    np.testing.assert_allclose(s.train.X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(s.train.X.std(axis=0), 1, atol=1e-12)
    assert np.all(np.abs(s.val.X.mean(axis=0)) > 1e-6)  # not re-centred on its own statistics
    np.testing.assert_allclose(s.mean, plain.train.X.mean(axis=0))
    np.testing.assert_allclose(s.std, plain.train.X.std(axis=0))
    np.testing.assert_allclose(s.val.X, (plain.val.X - s.mean) / s.std)
    np.testing.assert_allclose(s.transform(plain.val.X), s.val.X)
    np.testing.assert_array_equal(s.val.y, plain.val.y)
    assert plain.mean is None and plain.std is None and plain.transform(plain.val.X) is not None


def test_split_is_deterministic_and_partitions_the_examples():
    section = {"name": "moons", "val_fraction": 0.3, "seed": 9, "standardize": False}
    a, b = load(section), load(section)
    for part in ("train", "val"):
        assert getattr(a, part).X.tobytes() == getattr(b, part).X.tobytes()
    full = raw("moons", 9)
    rows = sorted(map(tuple, np.r_[a.train.X, a.val.X]))
    assert rows == sorted(map(tuple, full.X))


def test_no_validation_keeps_order_and_regression_targets_are_not_scaled():
    s = load({"name": "sine", "noise": 0})
    assert s.val is None and len(s.train.y) == 300
    np.testing.assert_allclose(s.train.X.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(s.train.y, np.sin(s.train.X * s.std + s.mean), atol=1e-15)  # y unscaled
    ds = raw("sine")
    np.testing.assert_array_equal(load({"name": "sine", "standardize": False}).train.X, ds.X)


def test_constant_feature_is_centred_not_divided():
    ds = Dataset(np.c_[np.full(10, 3.3), np.arange(10.0)], np.arange(10) % 2, "binary", 2)
    s = split(ds, rng=np.random.default_rng(0))
    assert s.std[0] == 1.0
    assert np.all(np.isfinite(s.train.X)) and np.abs(s.train.X[:, 0]).max() < 1e-12


def test_val_fraction_must_leave_examples_on_both_sides():
    with fails("data.val_fraction: 0.001 is invalid: leaves no validation example of 300"):
        load({"name": "moons", "val_fraction": 0.001})
    with fails("data.val_fraction: 0.9 is invalid: leaves no training example of 2"):
        load({"name": "moons", "n_samples": 2, "val_fraction": 0.9})


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 60), f=st.floats(0, 1, exclude_max=True))
def test_split_sizes_add_up(n, f):
    try:
        s = load({"name": "xor", "n_samples": n, "val_fraction": f})
    except OptbenchError as err:
        assert "data.val_fraction" in str(err)
        assert round(f * n) in (0, n) and f > 0
        return
    n_val = 0 if s.val is None else len(s.val.y)
    assert len(s.train.y) + n_val == n and len(s.train.y) >= 1
    assert (n_val >= 1) == (f > 0)


# ---------------------------------------------------------------- CSV and NPZ files


def write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_csv_with_header_label_by_name(tmp_path):
    path = write(tmp_path, "a,label,b\n1,0,2\n3,1,4\n5,1,6\n")
    ds = load({"name": "csv", "path": path, "label": "label", "standardize": False}).train
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4], [5, 6]])
    assert ds.y.tolist() == [0, 1, 1] and ds.y.dtype == np.int64 and (ds.task, ds.n_classes) == ("binary", 2)


@pytest.mark.parametrize("label", [0, -3, "0"])
def test_csv_without_header_label_by_index(tmp_path, label):
    path = write(tmp_path, "7,1.5,2\n\n9,3.5,4\n 8 , 2.5 ,5\n")  # blank line, spaces
    ds = load({"name": "csv", "path": path, "label": label, "standardize": False}).train
    np.testing.assert_array_equal(ds.X, [[1.5, 2], [3.5, 4], [2.5, 5]])
    assert ds.y.tolist() == [0, 2, 1] and ds.task == "multiclass" and ds.n_classes == 3  # 7, 9, 8 remapped


def test_csv_header_flag_and_label_remapping(tmp_path):
    path = write(tmp_path, "1,2,5\n3,4,-1\n5,6,5\n")
    ds = load({"name": "csv", "path": path, "header": True, "standardize": False}).train
    assert ds.X.tolist() == [[3, 4], [5, 6]] and ds.y.tolist() == [0, 1]  # -1, 5 -> 0, 1
    ds = load({"name": "csv", "path": path, "standardize": False}).train
    assert ds.y.tolist() == [1, 0, 1] and ds.task == "binary"
    ds = load({"name": "csv", "path": path, "task": "multiclass", "standardize": False}).train
    assert ds.y.tolist() == [1, 0, 1] and (ds.task, ds.n_classes) == ("multiclass", 2)
    ds = load({"name": "csv", "path": path, "task": "regression", "standardize": False}).train
    assert ds.y.tolist() == [[5], [-1], [5]] and ds.y.dtype == np.float64


def test_csv_non_integer_labels_are_regression(tmp_path):
    path = write(tmp_path, "x,y\n0,0.5\n1,1.5\n2,3\n")
    ds = load({"name": "csv", "path": path}).train
    assert ds.task == "regression" and ds.n_classes == 0 and ds.y.shape == (3, 1)
    with fails("data.task: binary needs integer class labels, but"):
        load({"name": "csv", "path": path, "task": "binary"})


def test_npz_round_trip(tmp_path):
    path = tmp_path / "d.npz"
    X = np.arange(12.0).reshape(6, 2)
    np.savez(path, inputs=X, labels=np.array([2, 4, 4, 2, 6, 6]), Y=np.ones((6, 3)) / 3)
    ds = load({"name": "npz", "path": str(path), "x_key": "inputs", "y_key": "labels", "standardize": False}).train
    np.testing.assert_array_equal(ds.X, X)
    assert ds.y.tolist() == [0, 1, 1, 0, 2, 2] and (ds.task, ds.n_classes) == ("multiclass", 3)
    ds = load({"name": "npz", "path": str(path), "x_key": "inputs", "y_key": "Y"}).train
    assert ds.task == "regression" and ds.y.shape == (6, 3)
    np.savez(path, X=np.arange(4), y=np.array([True, False, True, False]))
    ds = load({"name": "npz", "path": str(path), "standardize": False}).train
    assert ds.X.shape == (4, 1) and ds.y.tolist() == [1, 0, 1, 0] and ds.task == "binary"


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("", {}, "data.path: {path} is empty"),
        ("\n  \n", {}, "data.path: {path} is empty"),
        ("a,b\n", {}, "data.path: {path} has a header row but no data rows"),
        ("1,2\n3,4\n5,abc\n", {}, "data.path: {path} line 3, column 2: 'abc' is not a number"),
        ("a,b,c\n1,2,3\n\n4,,6\n", {}, "data.path: {path} line 4, column 2: '' is not a number"),
        ("a,b\n1,2\n", {"header": False}, "data.path: {path} line 1, column 1: 'a' is not a number"),
        ("1,2,3\n4,5\n", {}, "data.path: {path} line 2: 2 columns, expected 3 as on line 1"),
        ("1\n2\n", {}, "data.path: {path} has 1 column"),
        ("1,2\nnan,1\n", {}, "data.path: {path} line 2, column 1: 'nan' is not a finite number"),
        ("1,2\n3,inf\n", {}, "data.path: {path} line 2, column 2: 'inf' is not a finite number"),
        ("1,2\n3,4\n", {"label": 2}, "data.label: 2 is out of range for {path} with 2 columns (accepted: an index -2..1"),
        ("1,2\n3,4\n", {"label": -3}, "data.label: -3 is out of range"),
        ("a,b\n1,2\n", {"label": "c"}, "data.label: 'c' is not a column of {path} (accepted: 'a', 'b', or an index -2..1)"),
        ("1,2\n3,4\n", {"label": "b"}, "data.label: 'b' is not a column of {path} (accepted: an index -2..1 (the file has no"),
        ("1,0\n2,1\n3,2\n", {"task": "binary"}, "data.task: binary does not fit the labels of {path}: 3 distinct values (0, 1,"),
        ("1,5\n2,5\n", {"task": "binary"}, "data.task: binary needs labels 0/1 or two distinct values"),
        ("1,1\n2,1\n", {}, "data.task: auto found a single label value 1"),
        ("1,1\n2,1\n", {"task": "multiclass"}, "data.task: multiclass needs at least 2 distinct labels"),
        ("1,0.5\n2,1\n", {"task": "multiclass"}, "data.task: multiclass needs integer class labels, but {path} has label 0.5"),
    ],
)
def test_bad_csv(tmp_path, text, options, message):
    path = write(tmp_path, text)
    with fails(message.format(path=path)):
        load({"name": "csv", "path": path, **options})


def test_unreadable_files(tmp_path):
    with fails("data.path: file not found: 'no/such.csv'"):
        load({"name": "csv", "path": "no/such.csv"})
    with fails(f"data.path: {str(tmp_path)!r} is a directory"):
        load({"name": "csv", "path": str(tmp_path)})
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x81,\x00\n")
    with fails(f"data.path: cannot read {str(p)!r}: not a UTF-8 text file"):
        load({"name": "csv", "path": str(p)})
    with fails("data.path: file not found: 'no/such.npz'"):
        load({"name": "npz", "path": "no/such.npz"})
    with fails(f"data.path: cannot read {str(p)!r}: not an .npz archive"):
        load({"name": "npz", "path": str(p)})
    np.save(tmp_path / "a.npy", np.zeros(3))
    with fails("holds a single .npy array"):
        load({"name": "npz", "path": str(tmp_path / "a.npy")})


def test_bad_npz(tmp_path):
    path = str(tmp_path / "d.npz")
    names, obj = np.array(["a", "b", "c"]), np.array([{}, 1], dtype=object)
    np.savez(path, X=np.zeros((3, 2)), y=np.array([0, 1, 0]), names=names, obj=obj)
    with fails(f"data.x_key: 'inputs' is not an array in {path} (keys present: 'X', 'y', 'names', 'obj')"):
        load({"name": "npz", "path": path, "x_key": "inputs"})
    with fails("data.y_key: 'Y' is not an array"):
        load({"name": "npz", "path": path, "y_key": "Y"})
    with fails("data.path: array 'names' in"):
        load({"name": "npz", "path": path, "y_key": "names"})
    with fails("data.path: array 'obj' in"):
        load({"name": "npz", "path": path, "y_key": "obj"})
    np.savez(path, X=np.zeros((3, 2)), y=np.array([0, 1]))
    with fails("data.path: array 'y' in"):
        load({"name": "npz", "path": path})
    np.savez(path, X=np.array([[0.0], [np.inf], [1.0]]), y=np.array([0, 1, 0]))
    with fails("data.path: array 'X' in"):
        load({"name": "npz", "path": path})
    np.savez(path, X=np.zeros((3, 1)), y=np.array([0.0, np.nan, 1.0]))
    with fails("data.path: the labels in"):
        load({"name": "npz", "path": path})
    np.savez(path, X=np.zeros((3, 1)), y=np.eye(3))
    with fails("data.task: binary needs one class label per example"):
        load({"name": "npz", "path": path, "task": "binary"})


def test_file_datasets_ignore_the_seed(tmp_path):
    path = write(tmp_path, "1,0\n2,1\n3,0\n4,1\n")
    a, b = load({"name": "csv", "path": path, "seed": 1}), load({"name": "csv", "path": path, "seed": 2})
    np.testing.assert_array_equal(a.train.X, b.train.X)


# ---------------------------------------------------------------- labels vs. loss


def test_expected_loss_and_check_labels():
    binary, multi, reg = raw("moons"), raw("spiral"), raw("sine")
    assert [expected_loss(d.task) for d in (binary, multi, reg)] == ["bce", "softmax_ce", "mse"]
    for ds in (binary, multi, reg):
        check_labels(ds, expected_loss(ds.task))
    check_labels(binary, "softmax_ce")
    with fails("loss: bce does not fit multiclass labels (3 classes); accepted for this data: softmax_ce"):
        check_labels(multi, "bce")
    with fails("loss: softmax_ce does not fit regression targets; accepted for this data: mse"):
        check_labels(reg, "softmax_ce")
    with fails("variants.x.loss: mse does not fit binary labels (2 classes); accepted for this data: bce, softmax_ce"):
        check_labels(binary, "mse", path="variants.x.loss")
    with fails("loss: unknown loss 'hinge' (accepted: bce, softmax_ce, mse)"):
        check_labels(binary, "hinge")


def test_split_type():
    s = load({"name": "moons", "val_fraction": 0.1})
    assert isinstance(s, Split) and isinstance(s.train, Dataset) and isinstance(s.val, Dataset)
