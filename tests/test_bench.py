"""The bench harness on tiny sizes: both sides do the same work, and the environment printer says what ran.

No timing is asserted: only what each side did (steps, replicas, shapes, batch sizes), counted by the
runners themselves, and the keys of the environment report. The OpenBLAS variables are never changed here.
"""

import os
import sys
from pathlib import Path

import pytest

import torch  # a test dependency in CI; the runners need it

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import envinfo  # noqa: E402
import sides  # noqa: E402

TINY = sides.Spec(epochs=2, R=2)  # moons 300, [2, 5, 2, 1], batch 64: 5 steps per epoch, the last of 44
MEDIUM = sides.Spec(data={"name": "blobs", "n_samples": 200, "classes": 4, "dim": 6, "seed": 1}, hidden=(8,),
                    loss="softmax_ce", batch=32, epochs=1, R=2, dtype="float32", lr=1e-3, iterations=3)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread, as the benches run it (two spinning OpenMP threads crawl on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _work(run):
    return run.steps, run.R, run.shapes, run.batches


@pytest.mark.parametrize("spec", [TINY, MEDIUM], ids=["tiny-epochs", "random-batches"])
def test_loops_do_the_same_work(spec):
    ours = sides.optbench_loop(spec)
    per_epoch = spec.iterations or -(-300 // spec.batch)
    assert ours.steps == spec.epochs * per_epoch and ours.R == spec.R
    for form in (*sides.FORMS, "bmm"):
        theirs = sides.torch_loop(spec, form)
        assert _work(theirs) == _work(ours), form
        assert theirs.seconds > 0


@pytest.mark.parametrize("spec", [TINY, MEDIUM], ids=["tiny-epochs", "random-batches"])
def test_steps_do_the_same_work(spec):
    ours = sides.optbench_steps(spec)()
    assert ours.steps == spec.epochs * len(ours.batches)
    for form in (*sides.FORMS, "bmm"):
        assert _work(sides.torch_steps(spec, form)()) == _work(ours), form


def test_warm_up_epochs_are_left_out_on_both_sides_alike():
    spec = TINY.with_(epochs=3, warmup=1)
    ours = sides.optbench_loop(spec)
    assert (ours.steps, ours.timed_steps) == (15, 10)
    for form in (*sides.FORMS, "bmm"):
        theirs = sides.torch_loop(spec, form)
        assert (theirs.steps, theirs.timed_steps) == (15, 10), form


def test_sklearn_loop_does_the_same_work():
    assert _work(sides.sklearn_loop(TINY)) == _work(sides.optbench_loop(TINY))


def test_shapes_follow_the_net():
    run = sides.optbench_loop(TINY)
    assert run.shapes == ((5, 2), (2, 5), (1, 2))
    assert run.batches == (64, 64, 64, 64, 44)


def test_environment_reports_kernel_threads_and_versions():
    info = envinfo.environment()
    for key in ("cpu", "cores", "python", "numpy", "torch", "sklearn", "blas", "env", "torch_blas", "torch_threads"):
        assert info[key] not in (None, ""), key
    numpy_blas = [lib for lib in info["blas"] if lib["user_api"] == "blas"]
    assert numpy_blas, info["blas"]
    for lib in numpy_blas:
        assert lib["internal_api"] and lib["num_threads"] >= 1
        assert "architecture" in lib and "version" in lib
    text = "\n".join(envinfo.describe(info))
    for word in ("cpu:", "numpy", "torch", "kernel", "threads", info["numpy"], info["torch"]):
        assert word in text


def test_scrub_removes_the_overrides_from_a_copy_only():
    before = dict(os.environ)
    env, removed = envinfo.scrubbed({"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512", "PATH": "/bin"})
    assert env == {"PATH": "/bin"}
    assert removed == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
    assert dict(os.environ) == before
    info = envinfo.environment(removed)
    assert "OPENBLAS_CORETYPE=Haswell" in "\n".join(envinfo.describe(info))


def test_fashion_bench_sides_take_the_same_steps_and_log_the_same_columns(tmp_path):
    """bench_fashion.py on 600 images and 1 epoch: optbench and both PyTorch forms take 3 x 5 optimizer steps
    (540 training images in batches of 128), and the PyTorch script logs optbench's metrics columns."""
    import bench_fashion

    data = Path("/usr/share/datasets/fashion-mnist")
    assert data.is_dir(), "install Debian's dataset-fashion-mnist (as .ci/run does)"
    sets = ["data.n_train=600", "train.epochs=1"]
    cmds = bench_fashion.commands(data, tmp_path, 1, sets)
    assert list(cmds) == ["optbench", "torch default", "torch foreach/fused"]
    for name, cmd in cmds.items():
        wall, kib, steps = bench_fashion.run_once(name, cmd, tmp_path, 1)
        assert steps == 15 and wall > 0 and kib > 0, name
    ours = {tuple(p.read_text().splitlines()[0].split(",")) for p in (tmp_path / "optbench").glob("*/metrics.csv")}
    theirs = {tuple(p.read_text().splitlines()[0].split(",")) for p in (tmp_path / "torch-default").glob("*/metrics.csv")}
    assert len(ours) == len(theirs) == 1
    assert set(next(iter(ours))) - {"seconds"} == set(next(iter(theirs)))
    assert len(list((tmp_path / "torch-best").glob("*/params.npz"))) == 3
