"""Data-parallel training (arrayml.distributed): N processes give what one process gives.

Processes are started by the tests as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT in the environment; gloo on loopback), or by torchrun itself, each bounded by a
timeout: a test never hangs. The library-level cases share one pair of processes
(tests/dist_worker.py) because starting a process that imports torch is the slow part; the
command-line cases (torchrun and examples/train.py) are the application's, in
examples/tests/test_cli_distributed.py. NCCL cases need two CUDA devices and are skipped, with the
reason, elsewhere.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import arrayml as am
from arrayml import backend, gradcheck
from arrayml.data import eval_batches, shard_bounds, train_batches
from process_group import GROUP_DEADLINE, all_ok, finish, free_port, start

WORKER = Path(__file__).resolve().parent / "dist_worker.py"
FD_TOLERANCE = 1e-6  # as in tests/test_gradients.py


# --------------------------------------------------------------------------------------------
# Sharding: pure arithmetic, no torch
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shard_bounds_give_every_row_to_exactly_one_process(world):
    for batch in [world, world + 1, 10, 127, 128]:
        bounds = [shard_bounds(batch, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == batch
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no overlap
        sizes = [hi - lo for lo, hi in bounds]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1, (batch, sizes)


def test_shard_bounds_refuse_a_batch_smaller_than_the_world():
    with pytest.raises(ValueError, match="a global batch of 3 cannot be shared by 4 processes.*at least 4"):
        shard_bounds(3, 0, 4)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        shard_bounds(8, 2, 2)


@pytest.mark.parametrize("world,batch", [(2, 8), (3, 10)])
def test_sharded_batches_put_together_are_the_global_batches(world, batch):
    x = np.reshape(np.arange(53 * 2, dtype=np.float32), (53, 2))
    y = np.arange(53, dtype=np.int64)
    whole = list(train_batches(x, y, batch, seed=4, epoch=1))
    shards = [list(train_batches(x, y, batch, seed=4, epoch=1, shard=(r, world))) for r in range(world)]
    assert all(len(s) == len(whole) == 53 // batch for s in shards)
    for step, (xb, yb) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([s[step][1] for s in shards]), yb)
        np.testing.assert_array_equal(np.concatenate([s[step][0] for s in shards]), xb)


def test_sharded_evaluation_batches_are_the_single_process_batches_dealt_round_robin():
    x = np.reshape(np.arange(23 * 2, dtype=np.float32), (23, 2))
    y = np.arange(23, dtype=np.int64)
    whole = [yb for _, yb in eval_batches(x, y, 5)]
    dealt = [[yb for _, yb in eval_batches(x, y, 5, shard=(r, 2))] for r in range(2)]
    assert [len(d) for d in dealt] == [3, 2]
    for i, yb in enumerate(whole):
        np.testing.assert_array_equal(dealt[i % 2][i // 2], yb)


def test_import_arrayml_distributed_does_not_import_torch():
    code = "import sys, arrayml.distributed, arrayml.training; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# A group of one process, inside the test process: buckets on every backend
# --------------------------------------------------------------------------------------------


@pytest.fixture
def solo(torch):
    from arrayml import distributed

    group = distributed.init(rank=0, world_size=1, master_addr="127.0.0.1", master_port=free_port(), timeout=30)
    yield group
    group.shutdown()


@pytest.mark.parametrize("xp_name", ["numpy", "torch", "array-api-strict"])
def test_buckets_give_back_arrays_of_the_same_backend_shape_and_dtype(solo, xp_name):
    where = backend.placement(xp_name, None, "float32")
    xp = where.xp
    rng = np.random.default_rng(0)
    hosts = [rng.normal(size=(3, 4)).astype(np.float32), np.float32(2.5), rng.normal(size=(5,)).astype(np.float32),
             np.arange(6, dtype=np.int64)]
    arrays = [xp.asarray(h, device=where.device) for h in hosts]
    for name in ("all_reduce_sum", "all_reduce_mean", "broadcast"):
        n = 3 if name == "all_reduce_mean" else 4  # a mean of integers is refused (below)
        arrays_in, hosts_in = arrays[:n], hosts[:n]
        out = getattr(solo, name)(arrays_in)
        for h, a, o in zip(hosts_in, arrays_in, out):
            assert backend.namespace_name(backend.get_namespace(o)) == xp_name
            assert tuple(o.shape) == np.shape(h) and backend.dtype_name(o.dtype) == backend.dtype_name(a.dtype)
            np.testing.assert_array_equal(backend.to_numpy(o), h)  # a world of one: sum = mean = the input
    for h, a in zip(hosts, arrays):  # the inputs are left alone
        np.testing.assert_array_equal(backend.to_numpy(a), h)
    with pytest.raises(TypeError, match="a mean over the processes needs floating arrays, got int64"):
        solo.all_reduce_mean(arrays)


def test_numpy_and_torch_buckets_cross_without_a_copy(solo, torch):
    from arrayml.distributed.group import _torch_view

    flat = np.arange(10, dtype=np.float32)
    tensor, back = _torch_view(flat, backend.namespace_by_name("numpy"))
    assert tensor.data_ptr() == flat.ctypes.data and back(tensor) is flat
    t = torch.arange(4.0)
    assert _torch_view(t, backend.namespace_by_name("torch"))[0] is t


def test_an_unsupported_namespace_is_named_with_what_is_supported():
    from types import ModuleType

    from arrayml.distributed import DistributedError
    from arrayml.distributed.group import _torch_view

    with pytest.raises(DistributedError, match="communicates numpy .* torch .* cupy .* array-api-strict .*; got a jaxlike array"):
        _torch_view(None, ModuleType("jaxlike"))


def test_a_data_parallel_learner_refuses_a_batch_it_was_not_built_for(solo):
    from arrayml.distributed import DataParallelLearner

    learner = DataParallelLearner(am.training.ArraymlLearner(am.MLP(4, [3], 2), am.SGD(0.1)), solo, batch_size=8)
    x = np.zeros((5, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="rank 0 of 1 expects its 8 rows of a global batch of 8, got 5"):
        learner.train_step(x, np.zeros(5, dtype=np.int64), 0.1)


def test_a_bad_timeout_in_the_environment_is_named(monkeypatch):
    from arrayml import distributed

    monkeypatch.setenv("ARRAYML_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"\$ARRAYML_DIST_TIMEOUT must be a positive number of seconds, got 'soon'"):
        distributed.default_timeout()
    monkeypatch.setenv("ARRAYML_DIST_TIMEOUT", "7.5")
    assert distributed.default_timeout() == 7.5


# --------------------------------------------------------------------------------------------
# Groups of real processes
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def library_job(tmp_path_factory):
    """Two processes running every library-level case of tests/dist_worker.py once."""
    pytest.importorskip("torch", reason="torch is not installed (CPU build: pip install torch==2.13.0)")
    out = tmp_path_factory.mktemp("library")
    all_ok(finish(start([WORKER, "library", out], 2)))
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]


def _case(results: dict, name: str) -> dict:
    prefix = name + "/"
    return {k[len(prefix):]: v for k, v in results.items() if k.startswith(prefix)}


def _cases():
    import dist_worker

    return [pytest.param(c, id=c[0]) for c in dist_worker.EQUIVALENCE_CASES]


@pytest.mark.parametrize("case", _cases())
def test_two_processes_train_like_one_process_on_the_whole_batch(library_job, case):
    """Global batch 128 (and an uneven 127 = 63 + 64) on 2 processes against 1 process, over 22
    steps with momentum: the same per-step losses and parameters to float32 rounding; with
    synchronized batch norm against one process's BatchNorm1d on the whole batch."""
    import dist_worker

    name, xp_name, device, norm, batch, _, optimizer = case
    one = dist_worker.train(None, xp_name, device, None if norm is None else "local", batch, optimizer=optimizer)
    two = [_case(r, name) for r in library_job]
    for key in one:  # every process holds exactly the same model
        np.testing.assert_array_equal(two[0][key], two[1][key], err_msg=key)
    assert len(two[0]["loss"]) == 22
    np.testing.assert_allclose(two[0]["loss"], one["loss"], rtol=2e-6, err_msg="per-step losses")
    np.testing.assert_array_equal(two[0]["accuracy"], one["accuracy"])
    np.testing.assert_allclose(two[0]["val"], one["val"], rtol=2e-6)
    for key in one:
        if key.startswith("state/"):
            # relative to the array's largest entry; the Linear bias before batch norm has a zero
            # gradient but for round-off, so it stays near 1e-9 and gets an absolute floor: its
            # round-off reached 2.1e-8 on an AMD EPYC host (OpenBLAS), where weights move by 1e-2
            scale = max(float(np.max(np.abs(one[key]))), 1e-2)
            np.testing.assert_allclose(two[0][key], one[key], rtol=0, atol=2e-5 * scale, err_msg=key)
    before = am.MLP(dist_worker.N_FEATURES, dist_worker.HIDDEN, dist_worker.N_CLASSES, rng=0).parameters()
    assert np.max(np.abs(one["state/0.weight"] - before["0.weight"])) > 1e-2  # training moved the weights


@pytest.mark.parametrize("overlapped,after", [("numpy", "numpy-after-backward"),
                                               ("numpy-syncbn-uneven", "numpy-syncbn-uneven-after-backward")])
def test_overlapping_the_all_reduce_with_backward_changes_no_bit(library_job, overlapped, after):
    """Each layer's all-reduce started during backward, or one bucket after it: the same sums
    (two processes add in one order), so the very same bits."""
    a, b = _case(library_job[0], overlapped), _case(library_job[0], after)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_clipping_acts_on_the_averaged_gradient(library_job):
    """Adam with clip_grad_norm 0.1 on 2 processes (uneven shares, 63 + 64 rows) gave one
    process's steps on the whole batch (test above); here: the clipping acted in those steps, so
    clipping each process's own gradient before the average would not have given them."""
    import dist_worker

    unclipped = dist_worker.train(None, "numpy", None, None, 127, optimizer="adam")
    clipped = _case(library_job[0], "numpy-adam-clip-uneven")
    assert np.max(np.abs(clipped["state/0.weight"] - unclipped["state/0.weight"])) > 1e-3


def test_each_process_draws_its_own_dropout_masks_reproducibly(library_job):
    runs = [[_case(r, f"dropout-{run}") for r in library_job] for run in "ab"]
    for rank in range(2):  # the same seed, rank and steps: the same masks
        np.testing.assert_array_equal(runs[0][rank]["masks"], runs[1][rank]["masks"])
    first, second = runs[0][0]["masks"], runs[0][1]["masks"]
    assert first.shape == second.shape == (3, 32, dist_worker_hidden())
    assert not np.array_equal(first, second)  # each process its own masks
    assert not np.array_equal(first[0], first[1])  # a new mask every step
    for key in runs[0][0]:  # and still one model: every process holds the same parameters
        if key.startswith("state/"):
            np.testing.assert_array_equal(runs[0][0][key], runs[0][1][key], err_msg=key)


def dist_worker_hidden() -> int:
    import dist_worker

    return dist_worker.HIDDEN[0]


def test_synchronized_batch_norm_gradient_matches_finite_differences(library_job):
    """float64, a global batch of 5 rows split 3 + 2, with the running-mean shift non-zero: dx of
    each process's rows and the summed dγ, dβ against central differences of Σ_all y ⊙ dy, and
    against one process's BatchNorm1d on the whole batch."""
    import dist_worker

    whole = dist_worker.sync_bn_gradients(None)
    parts = [_case(r, "fd") for r in library_job]
    dx = np.concatenate([p["dx"] for p in parts])
    assert gradcheck.relative_error(dx, np.concatenate([p["num_dx"] for p in parts])) < FD_TOLERANCE
    for p in parts:
        for name in ("gamma", "beta"):
            assert gradcheck.relative_error(p[f"d{name}"], p[f"num_d{name}"]) < FD_TOLERANCE, name
            np.testing.assert_allclose(p[f"d{name}"], whole[f"d{name}"], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, whole["dx"], rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(dx)) > 1e-3  # not a vacuous zero gradient


def _cnn_cases():
    import dist_worker

    return [pytest.param(c, id=c[0]) for c in dist_worker.CNN_CASES]


@pytest.mark.parametrize("case", _cnn_cases())
def test_two_processes_train_a_cnn_with_synchronized_batchnorm2d_like_one_process(library_job, case):
    """A CNN's convolutions, pooling and BatchNorm2d, data-parallel: with the batch statistics of
    the whole global batch (N·H·W values per channel, an uneven 15 + 16 images too), 2 processes
    take the steps one process takes on the whole batch, to float32 rounding."""
    import dist_worker

    name, xp_name, batch = case
    one = dist_worker.train_cnn(None, xp_name, batch)
    two = [_case(r, name) for r in library_job]
    assert len(two[0]["loss"]) == 6
    np.testing.assert_allclose(two[0]["loss"], one["loss"], rtol=2e-6)
    for key in one:
        if key.startswith("state/"):
            np.testing.assert_array_equal(two[0][key], two[1][key], err_msg=key)  # one model everywhere
            scale = max(float(np.max(np.abs(one[key]))), 1e-2)
            np.testing.assert_allclose(two[0][key], one[key], rtol=0, atol=2e-5 * scale, err_msg=key)
    assert np.max(np.abs(one["state/1.running_mean"])) > 1e-2  # the batch statistics moved the running ones


@pytest.mark.parametrize("xp_name", ["numpy", "torch", "array-api-strict"])
def test_distributed_evaluation_gives_exactly_the_single_process_confusion_matrix(library_job, xp_name):
    import dist_worker

    one = dist_worker.evaluation(None, xp_name)
    for r in library_job:
        two = _case(r, f"eval-{xp_name}")
        np.testing.assert_array_equal(two["confusion"], one["confusion"])
        assert int(two["n"]) == int(one["n"]) == 2345  # every row once: no padded duplicates
        assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=1e-12)
    assert len(np.unique(np.argmax(one["confusion"], axis=1))) > 1  # a matrix with something in it


@pytest.mark.parametrize("what,message", [
    ("shape", "rank 1: 0.weight: shape (20, 24) on rank 1, (16, 24) on rank 0"),
    ("dtype", "rank 1: 0.bias: dtype float64 on rank 1, float32 on rank 0"),
])
def test_processes_that_build_different_models_are_refused_naming_the_difference(torch, tmp_path, what, message):
    results = finish(start([WORKER, f"mismatch-{what}", tmp_path], 2))
    for rank, (rc, _, err) in enumerate(results):
        assert rc == 3, f"rank {rank}: {err}"
        assert "the processes built different models, refused at start-up" in err
        assert message in err, err


def test_a_hung_process_ends_the_others_within_the_timeout(torch, tmp_path):
    timeout = 5
    procs = start([WORKER, "hang", tmp_path], 2, ARRAYML_DIST_TIMEOUT=str(timeout))
    t0 = time.monotonic()
    try:
        out, err = procs[0].communicate(timeout=GROUP_DEADLINE)
    finally:
        procs[1].kill()
        procs[1].communicate()
    waited = time.monotonic() - t0
    assert procs[0].returncode == 3, err
    assert "rank 0 of 2: the all-reduce that rank 1 never joins failed, so another process died, hung" in err
    assert "collectives give up after 5 s" in err
    assert waited < GROUP_DEADLINE / 2, waited  # the 5 s timeout plus start-up, not a hang


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rendezvous_that_cannot_complete_ends_within_the_timeout(torch, tmp_path, rank):
    """Only one of two processes starts: rank 0 waits for the other `timeout` seconds, rank 1
    tries to reach rank 0 for about twice that; both end with the reason, never hang."""
    timeout = 3
    t0 = time.monotonic()
    [(rc, _, err)] = finish(start([WORKER, "library", tmp_path], 2, ranks=[rank], ARRAYML_DIST_TIMEOUT=str(timeout)))
    waited = time.monotonic() - t0
    assert rc != 0
    assert f"rank {rank} of 2 could not meet the other processes at 127.0.0.1:" in err
    assert f"within {timeout} s" in err and "check that all 2 processes were started" in err
    assert waited < 60, waited


@pytest.mark.parametrize("job,needs", [("cuda-torch", "torch"), ("cupy", "cupy")])
def test_processes_on_cuda_train_through_nccl_like_one_process(tmp_path, job, needs):
    """One process per GPU (NCCL refuses two ranks on one GPU): two where there are two GPUs,
    else one (still NCCL, DLPack and the CUDA buckets), with synchronized batch norm."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("NCCL needs a CUDA device; this torch build sees none (run `nox -s tests_gpu` on a GPU machine)")
    if not torch.distributed.is_nccl_available():
        pytest.skip("this torch build has no NCCL")
    if needs == "cupy" and importlib.util.find_spec("cupy") is None:
        pytest.skip("cupy is not installed (pip install cupy-cuda12x)")
    import dist_worker

    world = min(2, torch.cuda.device_count())
    all_ok(finish(start([WORKER, job, tmp_path], world)))
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(world)]
    one = dist_worker.train(None, "numpy", None, "local", 128)
    np.testing.assert_allclose(ranks[0]["loss"], one["loss"], rtol=1e-4)  # GPU float32 kernels round differently
    for key in one:
        np.testing.assert_array_equal(ranks[0][key], ranks[-1][key], err_msg=key)
