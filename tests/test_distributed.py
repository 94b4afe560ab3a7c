"""Data-parallel training (arrayml.distributed): N processes give what one process gives.

Processes are started by the tests as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT in the environment; gloo on loopback), or by torchrun itself, each bounded by a
timeout: a test never hangs. The library-level cases share one pair of processes
(tests/dist_worker.py) because starting a process that imports torch is the slow part; the
command-line cases run examples/train.py. NCCL cases need two CUDA devices and are skipped, with
the reason, elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import arrayml as am
from arrayml import backend, gradcheck
from arrayml.data import eval_batches, shard_bounds, train_batches
from cifar_fixtures import make_cache

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "examples" / "train.py"
WORKER = ROOT / "tests" / "dist_worker.py"
#: Seconds a spawned group may take in all (generous: 2 shared cores), and the collective timeout.
GROUP_DEADLINE = 300
DIST_TIMEOUT = 30
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def _env(rank: int, world: int, port: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "ARRAYML_DIST_TIMEOUT": str(DIST_TIMEOUT)})
    env.update(extra)
    return env


def _plain_env() -> dict[str, str]:
    """The environment of a process started without a group (torchrun adds its own)."""
    env = _env(0, 1, 0)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key)
    return env


def start(args: list, world: int, *, ranks: list[int] | None = None, **extra: str) -> list[subprocess.Popen]:
    """Processes `ranks` (default: all) of a group of `world`, as torchrun would start them."""
    port = free_port()
    return [subprocess.Popen([sys.executable, *map(str, args)], env=_env(r, world, port, **extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in (range(world) if ranks is None else ranks)]


def finish(procs: list[subprocess.Popen], deadline: float = GROUP_DEADLINE) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each process; a group still running at the deadline is
    killed and the test fails: a hang is a failure, never a wait."""
    end = time.monotonic() + deadline
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(end - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a process of the group still ran after {deadline} s: {[q.args for q in procs]}")
        results.append((p.returncode, out, err))
    return results


def _ok(results: list[tuple[int, str, str]]) -> None:
    for rank, (rc, _, err) in enumerate(results):
        assert rc == 0, f"rank {rank} exited with {rc}:\n{err[-3000:]}"


@pytest.fixture(scope="module")
def library_job(tmp_path_factory):
    """Two processes running every library-level case of tests/dist_worker.py once."""
    pytest.importorskip("torch", reason="torch is not installed (CPU build: pip install torch==2.13.0)")
    out = tmp_path_factory.mktemp("library")
    _ok(finish(start([WORKER, "library", out], 2)))
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
    _ok(finish(start([WORKER, job, tmp_path], world)))
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(world)]
    one = dist_worker.train(None, "numpy", None, "local", 128)
    np.testing.assert_allclose(ranks[0]["loss"], one["loss"], rtol=1e-4)  # GPU float32 kernels round differently
    for key in one:
        np.testing.assert_array_equal(ranks[0][key], ranks[-1][key], err_msg=key)


# --------------------------------------------------------------------------------------------
# The command line: torchrun, a killed process, resuming on another number of processes
# --------------------------------------------------------------------------------------------

APP_FLAGS = ["--hidden-dims", "128", "--batch-size", "50", "--val-size", "300", "--epochs", "6", "--lr", "0.01", "--momentum", "0.9",
             "--checkpoint-every", "1", "--quiet"]


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory):
    """The same run, uninterrupted, by torchrun on 2 processes and by 1 process."""
    pytest.importorskip("torch", reason="torch is not installed (CPU build: pip install torch==2.13.0)")
    root = tmp_path_factory.mktemp("app")
    make_cache(root / "data", n_train=4300, n_test=200)  # 80 steps an epoch: time to kill a process mid-run
    env = _plain_env()
    common = [TRAIN, "--data-dir", root / "data", *APP_FLAGS]
    torchrun = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                 *map(str, common), "--out", str(root / "two")], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    single = subprocess.Popen([sys.executable, *map(str, common), "--out", str(root / "one")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _ok(finish([torchrun, single]))
    return root


def _model(checkpoint: Path) -> dict[str, np.ndarray]:
    with np.load(checkpoint) as npz:
        return {k: npz[k] for k in npz.files if k.startswith(("model/", "optimizer/"))}


def test_torchrun_trains_data_parallel_with_no_other_flag(app_runs):
    two = json.loads((app_runs / "two" / "results.json").read_text())
    one = json.loads((app_runs / "one" / "results.json").read_text())
    assert two["distributed"] == {"world_size": 2, "backend": "gloo", "per_rank_batch": [25, 25],
                                  "sync_batch_norm": False, "timeout_seconds": float(DIST_TIMEOUT)}
    assert one["distributed"]["world_size"] == 1 and one["distributed"]["per_rank_batch"] == [50]
    # float32 rounding differs (sums of 2 × 25 rows, not 50), and 480 steps of SGD amplify it
    # from about 1e-7 to about 1e-3 on losses that reach 0.04: tight at first, looser by the end
    # (the library-level test above holds 22 steps to float32 rounding)
    loss2, loss1 = np.asarray(two["history"]["steps"]["loss"]), np.asarray(one["history"]["steps"]["loss"])
    np.testing.assert_allclose(loss2[:20], loss1[:20], rtol=2e-6)
    np.testing.assert_allclose(loss2, loss1, rtol=5e-2, atol=1e-3)
    assert two["test"]["n"] == one["test"]["n"] == 200
    a, b = _model(app_runs / "two" / "checkpoint.npz"), _model(app_runs / "one" / "checkpoint.npz")
    for key in b:
        if key.startswith("model/"):  # (momentum buffers near a minimum are all round-off; not compared)
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-3 * np.max(np.abs(b[key])), err_msg=key)
    assert sorted(p.name for p in (app_runs / "two").iterdir()) == sorted(p.name for p in (app_runs / "one").iterdir())


def test_sync_batch_norm_flag_trains_like_one_process_with_batch_norm(app_runs, tmp_path):
    common = [TRAIN, "--data-dir", app_runs / "data", "--hidden-dims", "64", "--batch-size", "50", "--val-size", "300",
              "--epochs", "1", "--lr", "0.01", "--batch-norm", "--quiet"]
    env = _plain_env()
    two = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                            *map(str, common), "--sync-batch-norm", "--out", str(tmp_path / "two")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    one = subprocess.Popen([sys.executable, *map(str, common), "--out", str(tmp_path / "one")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _ok(finish([two, one]))
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("two", "one"))
    assert a["distributed"]["sync_batch_norm"] is True and a["config"]["sync_batch_norm"] is True
    # float32 sums in another order: equal to rounding at first, then the differences grow (to
    # 1.3e-5 by step 20 on an AMD EPYC host); per-process statistics would differ at once
    loss_two, loss_one = a["history"]["steps"]["loss"], b["history"]["steps"]["loss"]
    np.testing.assert_allclose(loss_two[:8], loss_one[:8], rtol=1e-5)
    np.testing.assert_allclose(loss_two[:20], loss_one[:20], rtol=5e-5)
    assert a["test"]["n"] == b["test"]["n"]


def test_sync_batch_norm_flag_needs_batch_norm(tmp_path):
    proc = subprocess.run([sys.executable, str(TRAIN), "--sync-batch-norm", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120, env=_plain_env())
    assert proc.returncode == 2
    assert "--sync-batch-norm must be used with --batch-norm, got True" in proc.stderr


def test_a_killed_process_ends_the_other_and_the_run_resumes_on_two_or_one(app_runs, tmp_path):
    """Rank 1 is killed during epoch 2: rank 0 stops at once with a clear error (exit 1). The
    last checkpoint (epoch 1) then resumes on 2 processes to the uninterrupted run's parameters,
    and on 1 process to them within float32 rounding (a checkpoint of N processes resumes on M)."""
    out = tmp_path / "killed"
    procs = start([TRAIN, "--data-dir", app_runs / "data", *APP_FLAGS, "--out", out], 2)
    ckpt = out / "checkpoint.npz"
    end = time.monotonic() + GROUP_DEADLINE
    while not ckpt.exists() and time.monotonic() < end and procs[1].poll() is None:
        time.sleep(0.02)
    assert ckpt.exists(), finish(procs)
    procs[1].send_signal(signal.SIGKILL)
    t_kill = time.monotonic()
    [(rc, _, err), (rc1, _, _)] = finish(procs)
    stopped_after = time.monotonic() - t_kill
    assert rc1 == -signal.SIGKILL
    assert rc == 5, err  # EXIT_DISTRIBUTED
    lines = [ln for ln in err.splitlines() if ln.startswith("train.py: error:")]
    assert len(lines) == 1, err
    assert "rank 0 of 2:" in lines[0] and "failed, so another process died, hung or lost its connection" in lines[0]
    assert stopped_after < DIST_TIMEOUT, stopped_after
    saved = json.loads(np.load(ckpt)["meta.json"].tobytes())
    assert 1 <= saved["fit"]["epochs_done"] < 6

    env = _plain_env()
    resume2 = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                str(TRAIN), "--resume", str(ckpt), "--out", str(tmp_path / "r2"), "--quiet"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    resume1 = subprocess.Popen([sys.executable, str(TRAIN), "--resume", str(ckpt), "--out", str(tmp_path / "r1"), "--quiet"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _ok(finish([resume2, resume1]))
    uninterrupted = _model(app_runs / "two" / "checkpoint.npz")
    on_two, on_one = _model(tmp_path / "r2" / "checkpoint.npz"), _model(tmp_path / "r1" / "checkpoint.npz")
    for key, value in uninterrupted.items():
        np.testing.assert_allclose(on_two[key], value, rtol=0, atol=1e-6 * np.max(np.abs(value)), err_msg=key)
        if key.startswith("model/"):  # as in the torchrun test above
            np.testing.assert_allclose(on_one[key], value, rtol=0, atol=1e-3 * np.max(np.abs(value)), err_msg=key)
    resumed = json.loads((tmp_path / "r2" / "results.json").read_text())
    assert resumed["distributed"]["world_size"] == 2 and resumed["timing"]["resumed_from_epoch"] == saved["fit"]["epochs_done"]


@pytest.mark.slow
def test_torchrun_on_the_shared_cifar10_copy_reaches_the_single_process_accuracy(tmp_path):
    """The issue's done-when check: the defaults under torchrun on 2 processes land in the band
    of the single-process default (46-53%, tests/test_cli.py); measured: 50.27% against 49.30%."""
    pytest.importorskip("torch", reason="torch is not installed (CPU build: pip install torch==2.13.0)")
    shared = ROOT.parent / "shared" / "data" / "cifar10"
    if not (shared / "cifar10_uint8.npz").is_file():
        pytest.skip(f"the team's CIFAR-10 copy is not at {shared}; nothing to reproduce")
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(TRAIN),
                             "--data-dir", str(shared), "--out", str(tmp_path / "run"), "--quiet"],
                            env=_plain_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _ok(finish([proc], deadline=1800))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    print(f"torchrun default: test accuracy {results['test_accuracy']:.4f} in {results['timing']['wall_seconds']:.0f}s")
    assert results["distributed"]["world_size"] == 2 and results["distributed"]["per_rank_batch"] == [64, 64]
    assert 0.46 <= results["test_accuracy"] <= 0.53
