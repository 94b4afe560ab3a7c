"""Data-parallel training under ``torchrun``: where each process computes, the process group it
joins (once per process), its part of the learner, and what results.json records about it.

Under torchrun (RANK and WORLD_SIZE in the environment) a run is data-parallel with no other
flag: every process joins the group, trains its rows of each global batch of ``--batch-size``,
and rank 0 alone prints, draws progress bars and writes results, figures and checkpoints.
"""

from __future__ import annotations

import atexit
from typing import Any

from arrayml import backend, distributed
from arrayml.data import shard_bounds
from arrayml.training import ArraymlLearner, Learner

from .config import RunConfig

_GROUP: list[distributed.ProcessGroup] = []  # joined once per process, left at exit


def run_device(config: RunConfig) -> str | None:
    """``--device``, except that under torchrun a bare ``cuda`` is this process's GPU (LOCAL_RANK)."""
    if not distributed.launched_by_torchrun():
        return config.device
    return distributed.local_device(backend.namespace_by_name(config.xp), config.device)


def placement(config: RunConfig) -> backend.Placement:
    """Where this process computes, or a `ValueError` naming the flags (a JAX float64 run without
    x64 says how to enable it; --compile on a backend without a compiler says which have one)."""
    try:
        where = backend.placement(config.xp, run_device(config), config.dtype)
    except TypeError as exc:
        raise ValueError(f"--xp {config.xp} --dtype {config.dtype}: {exc}") from None
    if config.compile and backend.namespace_name(where.xp) not in ("jax", "torch"):
        raise ValueError(f"--compile needs --xp jax (jax.jit) or --xp torch (torch.compile), got --xp {config.xp}")
    if config.compile and distributed.launched_by_torchrun():
        raise ValueError("--compile does not combine with data-parallel training: the gradients' all-reduce sits "
                         "between backward and SGD.step, inside the step that --compile fuses; drop --compile "
                         "under torchrun")
    return where


def joined_group() -> distributed.ProcessGroup | None:
    """This process's group if it has joined one (`data_parallel_group`), else None."""
    return _GROUP[0] if _GROUP else None


def data_parallel_group(where: backend.Placement) -> distributed.ProcessGroup | None:
    """Under torchrun, this process's group (joined on the first call: NCCL for CUDA arrays,
    gloo otherwise); None when the process runs alone."""
    if not distributed.launched_by_torchrun():
        return None
    if not _GROUP:
        cuda = backend.namespace_name(where.xp) == "cupy" or getattr(where.device, "type", None) == "cuda"
        group = distributed.init(cuda=cuda)
        atexit.register(group.shutdown)
        _GROUP.append(group)
    return _GROUP[0]


def data_parallel(learner: Learner, group: distributed.ProcessGroup, config: RunConfig) -> Learner:
    """`learner` as this process's part of data-parallel training. Every setting but where the
    run reads and writes is compared between the processes at start-up."""
    if not isinstance(learner, ArraymlLearner):
        raise ValueError(f"data-parallel training needs the arrayml learner, not {type(learner).__name__}: "
                         "run the torch.nn reference without torchrun")

    settings = {f"--{k.replace('_', '-')}": v for k, v in config.saved().items() if k not in ("data_dir", "out", "resume")}
    return distributed.DataParallelLearner(learner, group, batch_size=config.batch_size, **settings)


def data_parallel_info(group: distributed.ProcessGroup | None, config: RunConfig) -> dict[str, Any]:
    """What results.json records about the processes: world size, communication backend, and
    the rows of each global batch that each process trains on."""
    world = 1 if group is None else group.world_size
    return {
        "world_size": world,
        "backend": None if group is None else group.backend,
        "per_rank_batch": [hi - lo for lo, hi in (shard_bounds(config.batch_size, r, world) for r in range(world))],
        "sync_batch_norm": config.sync_batch_norm and group is not None,
        "timeout_seconds": None if group is None else group.timeout,
    }

