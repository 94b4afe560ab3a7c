"""Data-parallel training on ``torch.distributed``: the same hand-written backprop on N processes.

Every process holds the whole model and trains on its rows of each global batch; the one thing
data parallelism adds to a training step is the gradients' all-reduce between backward and the
update (`learner.GradientAllReduce`, the reducer of `arrayml.step.train_step`), so every process
applies the gradient of the global batch's mean loss and the parameters stay identical
everywhere. The layers and the optimizers know nothing of it. ``torch.distributed`` is the
engine: gloo over TCP for arrays on the host, NCCL for CUDA arrays, ``torchrun`` for launching
and rendezvous.

- `init` joins the other processes; `ProcessGroup` sums and broadcasts arrays of any backend in
  flat buckets, one per dtype and device (`arrayml.distributed.group`).
- `DataParallelLearner` wraps an `arrayml.training.ArraymlLearner`: it refuses, at start-up,
  processes whose models differ (naming the difference), broadcasts rank 0's parameters, buffers
  and optimizer state, and all-reduces the gradients every step, each layer's as soon as
  the model's backward has it (`arrayml.distributed.learner`). `arrayml.training.fit` then
  gives each process only its rows of each global batch (`arrayml.data.shard_bounds`), and
  `arrayml.training.evaluate` sums the processes' loss sums and confusion matrices.
- Synchronized batch norm is chosen when the model is built: ``MLP(..., batch_norm=True,
  batch_norm_sync=group.batch_norm_sync())`` normalises with the statistics of the whole global
  batch (docs/derivations.md, "Synchronized batch normalisation").

Faults never hang: every collective and the rendezvous give up after `default_timeout` seconds
(120, or ``$ARRAYML_DIST_TIMEOUT``) with a `DistributedError` naming the rank and the operation; a
process that dies is noticed at once (its TCP connections close). See docs/distributed.md.

``import arrayml.distributed`` does not import torch; `init` does.
"""

from .group import (
    DEFAULT_TIMEOUT,
    SUPPORTED,
    TIMEOUT_ENV,
    DistributedError,
    Pending,
    ProcessGroup,
    default_timeout,
    init,
    launched_by_torchrun,
    local_device,
)
from .learner import DataParallelLearner, GradientAllReduce, describe_model

__all__ = [
    "DEFAULT_TIMEOUT",
    "SUPPORTED",
    "TIMEOUT_ENV",
    "DataParallelLearner",
    "DistributedError",
    "GradientAllReduce",
    "Pending",
    "ProcessGroup",
    "default_timeout",
    "describe_model",
    "init",
    "launched_by_torchrun",
    "local_device",
]
