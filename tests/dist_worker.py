"""One process of the data-parallel tests (tests/test_distributed.py starts N of them, each with
RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, as torchrun would).

    python tests/dist_worker.py JOB OUT_DIR

writes OUT_DIR/rank<r>.npz with what the test compares. The same functions run in the test
process itself with ``group=None`` to give the single-process reference. Jobs:

  library          the training-equivalence cases, the synchronized batch norm gradient check
                   and the evaluation check, in one group (process start-up is the slow part)
  mismatch-shape   rank 1 builds a wider hidden layer; mismatch-dtype: rank 1 builds float64
  hang             rank 1 stops answering before an all-reduce (rank 0 must give up)
  cuda-torch, cupy the equivalence on CUDA arrays through NCCL
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import arrayml as am
from arrayml import backend, distributed, gradcheck
from arrayml.data import Splits
from arrayml.training import ArraymlLearner, evaluate, fit

N_FEATURES, N_CLASSES, HIDDEN = 24, 4, [16]

#: (name, backend, device, batch norm: None / "sync", global batch, overlap, optimizer): 22 steps
#: each. overlap: each layer's all-reduce starts during backward (the default); False: one bucket
#: after it. optimizer: a key of OPTIMIZERS.
EQUIVALENCE_CASES = [
    ("numpy", "numpy", None, None, 128, True, "sgd"),
    ("torch", "torch", None, None, 128, True, "sgd"),
    ("numpy-syncbn", "numpy", None, "sync", 128, True, "sgd"),
    ("torch-syncbn", "torch", None, "sync", 128, True, "sgd"),
    ("numpy-syncbn-uneven", "numpy", None, "sync", 127, True, "sgd"),
    ("numpy-after-backward", "numpy", None, None, 128, False, "sgd"),
    ("numpy-syncbn-uneven-after-backward", "numpy", None, "sync", 127, False, "sgd"),
    ("numpy-adam-clip-uneven", "numpy", None, None, 127, True, "adam-clip"),
]

#: The optimizers of the cases. The clip norm 0.1 is below the gradient norm of most steps here:
#: clipping each process's own gradient instead of the averaged one would give other steps.
OPTIMIZERS = {
    "sgd": lambda: am.SGD(0.05, momentum=0.9),
    "adam-clip": lambda: am.Adam(0.01, clip_grad_norm=0.1),
    "adam": lambda: am.Adam(0.01),
}


def make_data(xp_name: str, device: Any = None, dtype: str = "float32", *, n_train: int = 128 * 11 + 40,
              n_eval: int = 300, seed: int = 5) -> Splits:
    """A learnable generated problem: the class is the argmax of a fixed linear map, plus noise."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(N_FEATURES, N_CLASSES))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, N_FEATURES)) * 2.0 + 0.5
        y = np.argmax(x @ w + rng.normal(scale=0.5, size=(n, N_CLASSES)), axis=1).astype(np.int64)
        return x, y

    host = Splits(*draw(n_train), *draw(n_eval), *draw(n_eval), n_classes=N_CLASSES)
    where = backend.placement(xp_name, device, dtype)
    return host.to(where.xp, where.device, where.dtype)


def train(group: distributed.ProcessGroup | None, xp_name: str, device: Any, norm: str | None,
          batch: int, overlap: bool = True, optimizer: str = "sgd", *, epochs: int = 2) -> dict[str, np.ndarray]:
    """22 steps (2 epochs of 11; SGD with momentum by default), validated after each epoch; the
    per-step losses, the validation figures and the final parameters and buffers."""
    data = make_data(xp_name, device)
    sync = group.batch_norm_sync() if group is not None and norm == "sync" else None
    model = am.MLP(N_FEATURES, HIDDEN, N_CLASSES, batch_norm=norm is not None, batch_norm_sync=sync, xp=xp_name,
                   device=device, rng=0)
    learner: Any = ArraymlLearner(model, OPTIMIZERS[optimizer]())
    if group is not None:
        learner = distributed.DataParallelLearner(learner, group, batch_size=batch, overlap=overlap)
    state = fit(learner, data, epochs=epochs, batch_size=batch, seed=3, log=None, progress=False, log_every=4)  # the optimizer's rate
    out = {"loss": np.asarray(state.history["steps"]["loss"]), "accuracy": np.asarray(state.history["steps"]["accuracy"]),
           "val": np.asarray([[e["val_loss"], e["val_accuracy"]] for e in state.history["epochs"]])}
    out.update({f"state/{k}": np.asarray(backend.to_numpy(v)) for k, v in model.state().items()})
    return out


# Synchronized batch norm against central differences: the global batch of 5 rows is split 3 + 2.
FD_ROWS, FD_FEATURES = 5, 3


def fd_problem() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {"x": rng.normal(size=(FD_ROWS, FD_FEATURES)) * np.array([1.0, 3.0, 0.5]) + np.array([2.0, -1.0, 0.0]),
            "dy": rng.uniform(-2, 2, size=(FD_ROWS, FD_FEATURES)),
            "gamma": rng.uniform(0.5, 1.5, size=FD_FEATURES), "beta": rng.normal(size=FD_FEATURES),
            "running_mean": np.array([1.5, -0.5, 0.2])}  # the shift K: not 0, to exercise it


def fd_rows(group: distributed.ProcessGroup | None) -> slice:
    if group is None:
        return slice(0, FD_ROWS)
    return slice(0, 3) if group.rank == 0 else slice(3, FD_ROWS)


def sync_bn_gradients(group: distributed.ProcessGroup | None) -> dict[str, np.ndarray]:
    """float64: the analytic dx (this process's rows), dgamma, dbeta (summed over the processes)
    and the central differences of L = Σ_all y ⊙ dy, every process evaluating its rows of
    every perturbed forward; momentum 0 keeps the running statistics (and so the shift) fixed."""
    p = fd_problem()
    rows = fd_rows(group)
    bn = am.BatchNorm1d(FD_FEATURES, momentum=0.0, dtype="float64",
                        sync=None if group is None else group.batch_norm_sync())
    bn.params["gamma"], bn.params["beta"] = p["gamma"], p["beta"]
    bn.buffers["running_mean"] = p["running_mean"]

    def total(v: float) -> float:
        return float(v if group is None else group.all_reduce_sum([np.asarray(v)])[0])

    x, dy = p["x"][rows], p["dy"][rows]
    bn.forward(x)
    dx = bn.backward(dy)
    dgamma, dbeta = bn.grads["gamma"], bn.grads["beta"]
    if group is not None:
        dgamma, dbeta = group.all_reduce_sum([dgamma, dbeta])

    def loss(xg: np.ndarray) -> float:
        return total(float(np.sum(bn.forward(xg[rows]) * dy)))

    num_dx = gradcheck.numerical_gradient(loss, p["x"])[rows]
    out = {"dx": dx, "dgamma": dgamma, "dbeta": dbeta, "num_dx": num_dx}
    for name in ("gamma", "beta"):
        def of_param(v: np.ndarray, name: str = name) -> float:
            bn.params[name] = v
            return loss(p["x"])
        out[f"num_d{name}"] = gradcheck.numerical_gradient(of_param, p[name])
        bn.params[name] = p[name]
    return out


def evaluation(group: distributed.ProcessGroup | None, xp_name: str) -> dict[str, np.ndarray]:
    """An untrained model scored on 2345 rows in batches of 500 (5 batches: 3 on rank 0, 2 on
    rank 1): confusion matrix, loss and count."""
    data = make_data(xp_name, n_eval=2345)
    model = am.MLP(N_FEATURES, [32], N_CLASSES, xp=xp_name, rng=1, dtype=data.x_val.dtype)
    learner: Any = ArraymlLearner(model, am.SGD(0.1))
    if group is not None:
        learner = distributed.DataParallelLearner(learner, group, batch_size=4)
    summary = evaluate(learner, data.x_val, data.y_val, n_classes=N_CLASSES, batch_size=500, betas=())
    return {"confusion": np.asarray(summary["confusion_matrix"]), "loss": np.asarray(summary["loss"]),
            "n": np.asarray(summary["n"])}


def dropout_masks(group: distributed.ProcessGroup | None, seed: int = 4) -> dict[str, np.ndarray]:
    """Three data-parallel steps of an MLP with dropout: this process's masks of each step (the
    dropout layer's scaled mask), and the final parameters."""
    data = make_data("numpy")
    model = am.MLP(N_FEATURES, HIDDEN, N_CLASSES, dropout=0.5, rng=0)
    learner: Any = ArraymlLearner(model, am.SGD(0.05), seed=seed)
    if group is not None:
        learner = distributed.DataParallelLearner(learner, group, batch_size=64)
    lo, hi = (0, 64) if group is None else (32 * group.rank, 32 * group.rank + 32)
    masks = []
    for step in range(3):
        rows = slice(64 * step + lo, 64 * step + hi)
        learner.train_step(data.x_train[rows], data.y_train[rows], 0.05, step)
        masks.append(np.asarray(model.layers[2].mask))
    out = {"masks": np.stack(masks)}
    out.update({f"state/{k}": np.asarray(v) for k, v in model.state().items()})
    return out


#: Data-parallel CNNs with synchronized BatchNorm2d: (name, backend, global batch), 6 steps each.
CNN_CASES = [("cnn-numpy-uneven", "numpy", 31), ("cnn-torch", "torch", 32)]


def train_cnn(group: distributed.ProcessGroup | None, xp_name: str, batch: int) -> dict[str, np.ndarray]:
    """6 steps of a small CNN (two 3x3 convolutions with batch norm, max pooling, global average)
    on random images: with a group, synchronized BatchNorm2d (statistics over the N·H·W values of
    the whole global batch); without, plain BatchNorm2d on the whole batch. The per-step losses
    and the final parameters and running statistics."""
    rng = np.random.default_rng(9)
    n = 6 * batch + 10
    y = rng.integers(0, 3, size=n).astype(np.int64)
    x = (rng.normal(size=(n, 2, 6, 6)) + y[:, None, None, None] * np.array([0.5, -0.5])[None, :, None, None])
    where = backend.placement(xp_name, None, "float32")
    data = Splits(x[:6 * batch], y[:6 * batch], x[6 * batch:], y[6 * batch:], n_classes=3).to(where.xp, where.device,
                                                                                              where.dtype)
    sync = group.batch_norm_sync() if group is not None else None
    model = am.CNN(2, 6, [4], 3, batch_norm_sync=sync, rng=0, xp=where.xp, device=where.device)
    learner: Any = ArraymlLearner(model, am.SGD(0.05, momentum=0.9))
    if group is not None:
        learner = distributed.DataParallelLearner(learner, group, batch_size=batch)
    state = fit(learner, data, epochs=1, batch_size=batch, seed=3, log=None, progress=False, log_every=2)
    out = {"loss": np.asarray(state.history["steps"]["loss"])}
    out.update({f"state/{k}": np.asarray(backend.to_numpy(v)) for k, v in model.state().items()})
    return out


def library(group: distributed.ProcessGroup) -> dict[str, np.ndarray]:
    out = {}
    for name, xp_name, device, norm, batch, overlap, optimizer in EQUIVALENCE_CASES:
        out.update({f"{name}/{k}": v for k, v in train(group, xp_name, device, norm, batch, overlap, optimizer).items()})
    for run in ("a", "b"):  # twice: the same masks again
        out.update({f"dropout-{run}/{k}": v for k, v in dropout_masks(group).items()})
    out.update({f"fd/{k}": v for k, v in sync_bn_gradients(group).items()})
    for xp_name in ("numpy", "torch", "array-api-strict"):
        out.update({f"eval-{xp_name}/{k}": v for k, v in evaluation(group, xp_name).items()})
    for name, xp_name, batch in CNN_CASES:
        out.update({f"{name}/{k}": v for k, v in train_cnn(group, xp_name, batch).items()})
    return out


def mismatch(group: distributed.ProcessGroup, what: str) -> None:
    hidden = [20] if what == "shape" and group.rank == 1 else HIDDEN
    dtype = "float64" if what == "dtype" and group.rank == 1 else "float32"
    model = am.MLP(N_FEATURES, hidden, N_CLASSES, rng=0, dtype=dtype)
    distributed.DataParallelLearner(ArraymlLearner(model, am.SGD(0.1)), group, batch_size=8)


def hang(group: distributed.ProcessGroup) -> None:
    group.all_reduce_sum([np.ones(3)])  # both meet once
    if group.rank == 1:
        print("rank 1 stops answering", file=sys.stderr, flush=True)
        time.sleep(600)
    group.all_reduce_sum([np.ones(3)], what="the all-reduce that rank 1 never joins")


def main(job: str, out_dir: str) -> int:
    try:
        group = distributed.init(cuda=job in ("cuda-torch", "cupy"))
    except distributed.DistributedError as exc:
        print(f"dist_worker: error: {exc}", file=sys.stderr, flush=True)
        return 3
    try:
        if job == "library":
            result = library(group)
        elif job.startswith("mismatch-"):
            mismatch(group, job.split("-", 1)[1])
            result = {}
        elif job == "hang":
            hang(group)
            result = {}
        elif job == "cuda-torch":
            result = train(group, "torch", distributed.local_device(backend.namespace_by_name("torch"), "cuda"), "sync", 128)
        elif job == "cupy":
            result = train(group, "cupy", distributed.local_device(backend.namespace_by_name("cupy"), None), "sync", 128)
        else:
            raise ValueError(f"unknown job {job!r}")
    except distributed.DistributedError as exc:
        print(f"dist_worker: error: {exc}", file=sys.stderr, flush=True)
        return 3
    finally:
        group.shutdown()
    np.savez(Path(out_dir) / f"rank{group.rank}.npz", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
