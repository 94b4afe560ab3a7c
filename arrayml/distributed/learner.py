"""The data-parallel learner: `arrayml.step.train_step` with its gradients all-reduced.

Every process holds the whole model and trains on its rows of each global batch. The one thing
data parallelism adds to a training step is `GradientAllReduce`, the step's reducer, which sits
between backward and the update::

    logits = model.forward(x_r)                       # this process's rows of the global batch
    loss = loss_fn.forward(logits, y_r)
    model.backward(loss_fn.backward(w_r))             # w_r = N·b_r/B: its share of the global mean
    grads = all_reduce(grads) / N                     # each layer's, as soon as backward has it
    params, state = optimizer.update(grads, state, params, lr)   # the same on every process

so every process applies the gradient of the global batch's mean loss, exactly as one process
would with the whole batch, and the parameters stay identical everywhere.
"""

from __future__ import annotations

from typing import Any

from .. import backend, validate
from ..backend import Array
from ..data import shard_bounds
from ..learners import ArraymlLearner, RunnerLearner, count_correct
from ..modules import Module
from ..optim import flatten_state
from ..runner import Eager, Runner
from .group import Pending, ProcessGroup


def describe_model(model: Module, optimizer: Any = None, **settings: Any) -> dict[str, Any]:
    """What must be equal on every process: each parameter and buffer (name, shape, dtype), the
    optimizer's state entries, the array backend and device type, and any `settings`.

    Args:
        model: this process's model.
        optimizer: its optimizer (its settings and state entries are compared), or None.
        **settings: anything else that must agree (``{"global batch": 256}``), by name.

    Returns:
        A small picklable description, what `ProcessGroup.check_identical` compares.

    Example:
        >>> import arrayml as am
        >>> from arrayml.distributed import describe_model
        >>> d = describe_model(am.Linear(3, 2, rng=0), am.SGD(lr=0.1), epochs=5)
        >>> d["parameters and buffers"]["weight"], d["array backend"], d["epochs"]
        ([[2, 3], 'float32'], 'numpy', 5)
    """
    where = model.placement()
    entries = {name: [list(a.shape), backend.dtype_name(a.dtype)] for name, a in model.state().items()}
    state = {}
    if optimizer is not None:
        flat = flatten_state(optimizer.state_for(model.parameters()))
        state = {name: [list(a.shape), backend.dtype_name(a.dtype)] for name, a in flat.items()}
    out = {
        "parameters and buffers": entries,
        "optimizer": repr(optimizer),
        "optimizer state": state,
        "array backend": None if where is None else backend.namespace_name(where.xp),
        "device type": None if where is None else str(where.device).split(":")[0],
    }
    out.update(settings)
    return out


class GradientAllReduce:
    """The reducer of a data-parallel step (`arrayml.step.GradientReducer`): starts each layer's
    gradient all-reduce (averaged: summed, then divided by N) as soon as the model's backward has
    computed it (its gradient hook, ``Module.set_gradient_hook``, which every container honours), so that the communication of the later layers runs while the earlier ones
    compute (DDP's overlap), and waits for all of them before the update. This process's share
    of the loss and its correct count ride in the first bucket (summed).

    Args:
        group: the process group.
        local_batch: this process's rows of each global batch, b_r.
        batch_size: the global batch size, B.
        overlap: start each layer's all-reduce as soon as backward has it (False: all of them
            after backward, in one go).
    """

    def __init__(self, group: ProcessGroup, *, local_batch: int, batch_size: int, overlap: bool = True) -> None:
        self.group = group
        self.share = local_batch / batch_size
        weight = group.world_size * self.share
        #: This process's weight in the mean over the processes, N·b_r/B (None when it is 1).
        self.loss_scale = None if weight == 1.0 else weight
        self.overlap = overlap
        self._stats: list[Array] = []
        self._started: list[tuple[list[str], Pending]] = []

    def begin(self, loss: Array, correct: Any) -> None:
        """Keep this process's share of the loss and its correct count, to be summed with the
        first bucket of gradients.

        Args:
            loss: this process's mean loss over its rows, a 0-D device array.
            correct: its number of correct predictions, a 0-D device array.
        """
        xp = backend.get_namespace(loss)
        # the share of the global mean loss, and the correct count (exact below 2**24 in float32)
        self._stats = [loss * self.share, xp.astype(correct, loss.dtype)]
        self._started = []

    def on_layer(self, name: str, layer: Module) -> None:
        """Start the all-reduce of `layer`'s gradients (with ``overlap``; nothing otherwise).

        Args:
            name: the layer's name in the model (the prefix of its parameters' names).
            layer: the layer, whose gradients backward has just computed.
        """
        if self.overlap:
            grads = layer.gradients()
            if grads:
                self._start({f"{name}.{key}": g for key, g in grads.items()})

    def _start(self, grads: dict[str, Array]) -> None:
        stats, self._stats = self._stats, []  # with the first bucket only
        arrays = [*grads.values(), *stats]
        pending = self.group.start(arrays, mean=[True] * len(grads) + [False] * len(stats),
                                   what="the gradient all-reduce")
        self._started.append((list(grads), pending))

    def finish(self, grads: dict[str, Array]) -> tuple[dict[str, Array], Array, Any]:
        """Start the all-reduce of the gradients not yet started, and wait for all of them.

        Args:
            grads: this process's gradients, by parameter name.

        Returns:
            ``(grads, loss, correct)``: the gradients averaged over the processes, the global
            batch's mean loss and its number of correct predictions.

        Raises:
            DistributedError: another process died, hung or lost its connection.
        """
        done = {name for names, _ in self._started for name in names}
        rest = {name: g for name, g in grads.items() if name not in done}
        if rest or not self._started:
            self._start(rest)
        reduced: dict[str, Array] = {}
        stats: list[Array] = []
        for names, pending in self._started:
            out = pending.wait()
            reduced.update(zip(names, out))
            stats += out[len(names):]
        self._started = []
        loss, correct = stats
        return {name: reduced[name] for name in grads}, loss, correct


class DataParallelLearner(RunnerLearner):
    """One process's part of data-parallel training of an `ArraymlLearner` (arrayml's
    DistributedDataParallel, written out).

    Built on every process with the same model and a global `batch_size` B; the constructor
    checks that every process built the same model (`ProcessGroup.check_identical`) and copies
    rank 0's parameters, buffers and optimizer state to all (`broadcast_from_rank0`). Then
    `arrayml.training.fit` hands `train_step` this process's b_r rows of each global batch
    (``shard_bounds(B, rank, N)``), and `arrayml.training.evaluate` scores its share of the
    evaluation batches and sums the counts over the processes.

    If B is not a multiple of N, the shares differ by one row and each process's loss gradient
    is weighted by w_r = N·b_r/B (1 when they are equal), so that the averaged gradient is the
    gradient of the mean loss over the whole global batch: uneven shards are exact, not refused.

    Its steps run through a runner of its own (`arrayml.runner.Runner` with the `Eager`
    strategy and this process's reducer and rank), which keeps its step count and the shared
    optimizer's state; the wrapped learner's own runner is left alone.

    A compiled learner is refused: the all-reduce sits inside the step that ``compile`` fuses,
    and a traced function cannot wait on torch.distributed.

    Args:
        learner: the `ArraymlLearner` to train (built with ``compile=False``), the same on every
            process.
        group: the process group (`init`).
        batch_size: the global batch size B, a positive integer.
        overlap: overlap each layer's gradient all-reduce with the backward of the earlier
            layers (default True).
        **settings: anything else that must agree between the processes (compared at
            start-up with the model).

    Raises:
        TypeError: `learner` is not an `ArraymlLearner`, or `batch_size` not an integer.
        ValueError: the learner is compiled, or `batch_size` is not positive.
        DistributedError: the processes built different models or settings, or another
            process died, hung or lost its connection.
    """

    def __init__(self, learner: ArraymlLearner, group: ProcessGroup, *, batch_size: int, overlap: bool = True,
                 **settings: Any) -> None:
        if not isinstance(learner, ArraymlLearner):
            raise TypeError(f"DataParallelLearner trains an arrayml.training.ArraymlLearner, got {type(learner).__name__}")
        if learner.compiled is not None:
            raise ValueError(
                "data-parallel training cannot run a compiled step: the gradients' all-reduce sits between backward "
                "and the update, inside the step that compile fuses; build the ArraymlLearner with compile=False"
            )
        self.learner, self.group = learner, group
        self.model, self.optimizer, self.loss = learner.model, learner.optimizer, learner.loss
        self.batch_size = validate.positive_int(batch_size, "DataParallelLearner batch_size")
        lo, hi = shard_bounds(self.batch_size, group.rank, group.world_size)
        self.local_batch = hi - lo
        self.reducer = GradientAllReduce(group, local_batch=self.local_batch, batch_size=self.batch_size,
                                         overlap=overlap)
        #: This process's runner: its own step count, keys folded with its rank, the shared
        #: optimizer's state; each step the learner's, with the gradients all-reduced.
        self.runner = Runner(self.model, self.optimizer,
                             Eager(self.model, self.loss, self.optimizer, metrics=count_correct, reducer=self.reducer),
                             seed=learner.seed, rank=group.rank, train_mode=True, what="DataParallelLearner.train_step")
        group.check_identical(describe_model(self.model, self.optimizer, **{"global batch": self.batch_size, **settings}))
        self.broadcast_from_rank0()

    @property
    def weight(self) -> float:
        """This process's weight in the mean over the processes: N·b_r/B."""
        return self.reducer.loss_scale or 1.0

    def broadcast_from_rank0(self) -> None:
        """Give every process rank 0's parameters, buffers and optimizer state (one broadcast
        per dtype and device), so that all start identical, as DDP does when it is built."""
        params, buffers = self.model.parameters(), self.model.named_buffers()
        state = flatten_state(self.optimizer.state_for(params))
        arrays = [*params.values(), *buffers.values(), *state.values()]
        received = iter(self.group.broadcast(arrays, what="the broadcast of rank 0's parameters"))
        self.model.set_parameters({name: next(received) for name in params})  # reassigned, never written in place
        self.model.set_buffers({name: next(received) for name in buffers})
        self.runner.load_optimizer_state({name: next(received) for name in state})

    def train_step(self, x: Array, y: Array, lr: float, step: int | None = None) -> tuple[Array, Array]:
        """One step of the global batch from this process's rows (x, y); returns the global
        batch's mean loss and number of correct predictions, as device arrays. Random draws
        (dropout masks) come from ``step_key(seed, step, rank=rank)``: every process draws its
        own, and the same again when the run is repeated.

        Args:
            x, y: this process's rows of the global batch (``shard_bounds(B, rank, N)``).
            lr: the learning rate of this step.
            step: the step's number in the run (None: `next_step`).

        Returns:
            ``(loss, correct)``: the global batch's mean loss and number of correct
            predictions, as 0-D device arrays, the same on every process.

        Raises:
            ValueError: `x` does not hold this process's share of the global batch, the rate
                is not a finite number >= 0, or the batch does not fit the model.
            DistributedError: another process died, hung or lost its connection.
        """
        if x.shape[0] != self.local_batch:
            raise ValueError(
                f"rank {self.group.rank} of {self.group.world_size} expects its {self.local_batch} rows of a global batch "
                f"of {self.batch_size}, got {x.shape[0]}: give fit the batch size the DataParallelLearner was built with"
            )
        return super().train_step(x, y, lr, step)
