"""The training loop: epochs of shuffled mini-batches, SGD, an optional learning-rate schedule,
per-step and per-epoch history, best-validation model kept and tested.

The loop talks to a *learner* (`ArraymlLearner` here; the examples' torch mirror has one for
plain ``torch.nn``), so that arrayml and PyTorch are trained on the same batches in the same order
and evaluated by the same code, and their results compare point by point. It knows no data set:
it takes `arrayml.data.Splits` of any data.

No step waits on the device: the per-step loss and accuracy stay on the device and are read back
together once every ``log_every`` steps (and at the end of each epoch). That is also when a NaN or
infinite loss is noticed; the run then stops cleanly and records where it diverged.

A learner whose ``group`` is a process group (`arrayml.distributed.DataParallelLearner`) trains
one shard of data-parallel training: the loop then gives it only its process's rows of each global
batch, and `evaluate` scores only its share of the batches and sums the counts over the
processes. The loop itself never communicates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import backend, metrics, validate
from .backend import Array, Namespace
from .data import Splits, eval_batches, steps_per_epoch, train_batches
from .modules import Module, SoftmaxCrossEntropy
from .optim import Optimizer, flatten_state, unflatten_state
from .schedules import Constant, Schedule
from .step import step_key, train_step


class ProcessGroup(Protocol):
    """The part of `arrayml.distributed.ProcessGroup` the loop uses."""

    rank: int
    world_size: int

    def all_reduce_sum(self, arrays: Sequence[Array], *, what: str = ...) -> list[Array]: ...


class Learner(Protocol):
    """What the loop needs from a model and its optimizer."""

    xp: Namespace
    device: Any
    #: None when training in one process; the process group of data-parallel training otherwise.
    group: ProcessGroup | None

    def train_step(self, x: Array, y: Array, lr: float, step: int | None = None) -> tuple[Array, Array]:
        """One optimizer step at learning rate `lr`; returns the batch loss and the number of
        correct predictions, both as 0-D device arrays (not read back). `step` is the step's
        number in the run (0, 1, ...; what its random draws, e.g. dropout masks, derive from):
        `fit` passes ``epoch · steps_per_epoch + i``; None: the learner counts its calls."""

    def logits(self, x: Array) -> Array:
        """Outputs in evaluation mode, without touching any training state."""

    def snapshot(self) -> dict[str, Any]:
        """The model's parameters and buffers (references are fine: nothing is written in place)."""

    def restore(self, state: dict[str, Any]) -> None: ...

    def optimizer_state(self) -> dict[str, Any]: ...

    def load_optimizer_state(self, state: dict[str, Any]) -> None: ...


def _shard(learner: Learner) -> tuple[ProcessGroup | None, tuple[int, int] | None]:
    """The learner's process group (None for one process) and its ``(rank, world_size)``."""
    group = learner.group
    return group, None if group is None else (group.rank, group.world_size)


def count_correct(logits: Array, y: Array) -> Array:
    """The number of correct predictions, as a 0-D integer device array (not read back)."""
    xp = backend.get_namespace(logits, y)
    return backend.count_true(xp.argmax(logits, axis=1) == y, xp=xp)


class ArraymlLearner:
    """An arrayml model, the fused softmax + cross-entropy loss and an optimizer, trained by
    `arrayml.step.train_step`.

    With ``compile=True`` the whole step (forward, loss, backward, update, the correct-count)
    runs as one compiled function (`arrayml.compile.compile_step`: ``jax.jit`` on JAX,
    ``torch.compile`` on PyTorch; a `ValueError` on other backends), with the same layer code.

    `seed` seeds the step's random draws (dropout masks): step n draws from
    ``step_key(seed, n)`` (`arrayml.step.step_key`), eager or compiled.

    The learner follows its model: after ``model.to(...)`` it trains where the model now lives
    (the optimizer's state is moved along at the next step).
    """

    group = None  # one process (arrayml.distributed.DataParallelLearner has a group)

    def __init__(self, model: Module, optimizer: Optimizer, *, compile: bool = False, seed: int = 0) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"ArraymlLearner trains an arrayml Module, got {type(model).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ArraymlLearner needs an arrayml optimizer (arrayml.optim.Optimizer), got "
                            f"{type(optimizer).__name__}")
        if model.placement() is None:
            raise ValueError("the model has no parameters to train")
        self.model = model
        self.optimizer = optimizer
        self.seed = validate.seed(seed, "ArraymlLearner seed")
        #: The number of the next step when `train_step` is not given one.
        self.next_step = 0
        # labels are checked once, up front, by `fit`: no per-step host sync for validation
        self.loss = SoftmaxCrossEntropy(validate=False)
        self.compiled = None
        if compile:
            from .compile import compile_step

            self.compiled = compile_step(model, self.loss, optimizer, metrics=count_correct, seed=self.seed)

    @property
    def placement(self) -> backend.Placement:
        """Where the model lives now."""
        where = self.model.placement()
        if where is None:
            raise ValueError("the model has no parameters to train")
        return where

    @property
    def xp(self) -> Namespace:
        return self.placement.xp

    @property
    def device(self) -> Any:
        return self.placement.device

    count_correct = staticmethod(count_correct)

    def train_step(self, x: Array, y: Array, lr: float, step: int | None = None) -> tuple[Array, Array]:
        step = self.next_step if step is None else step
        self.next_step = step + 1
        key = self.step_key(step) if self.model.draws_random_numbers() else None
        if self.compiled is not None:
            return self.compiled(x, y, lr, key=key)
        params = self.model.parameters()
        self.optimizer.state, loss, correct = train_step(
            self.model, self.loss, self.optimizer, self.optimizer.state_for(params), x, y, lr, key=key,
            metrics=count_correct)
        return loss, correct

    def step_key(self, step: int, rank: int | None = None) -> Any:
        """The random key of step `step` (of process `rank` in data-parallel training), where the
        model lives."""
        where = self.placement
        return step_key(self.seed, step, xp=where.xp, device=where.device, rank=rank)

    def logits(self, x: Array) -> Array:
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model.forward(x)
        finally:
            self.model.clear_cache()
            self.model.train(was_training)

    def snapshot(self) -> dict[str, Any]:
        # eager: references (nothing is written in place); compiled on JAX: copies, since the
        # next step donates the model's arrays
        return self.model.state() if self.compiled is None else self.compiled.snapshot()

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state(state)

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state, flat (``"momentum/0.weight"``: what a checkpoint holds)."""
        return flatten_state(self.optimizer.state_for(self.model.parameters()))

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Set the optimizer's state from `optimizer_state`'s flat form, checked against the
        model's parameters and moved to where they live."""
        self.optimizer.state = self.optimizer.fitted_state(unflatten_state(state), self.model.parameters())


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate(
    learner: Learner, x: Array, y: Array, *, n_classes: int = 10, batch_size: int = 1000,
    betas: Sequence[float] = (0.1, 1.0, 10.0), class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Loss, accuracy, confusion matrix, per-class precision/recall/F-beta of `learner` on
    (x, y), all computed on the device and read back once.

    A data-parallel learner scores its share of the batches (`eval_batches` with a shard); the
    loss sums and confusion matrices of all processes are then added up, so every process gets
    the exact figures of the whole of (x, y), each sample counted once."""
    xp, dev = backend.get_namespace_and_device(x, y)
    group, shard = _shard(learner)
    wide = backend.widest_float(xp)  # float64; float32 on JAX without x64
    cm = xp.zeros((n_classes, n_classes), dtype=backend.widest_int(xp), device=dev)
    loss_sum = xp.zeros((), dtype=wide, device=dev)
    loss_fn = SoftmaxCrossEntropy(validate=False)  # labels were checked once, by the caller
    for xb, yb in eval_batches(x, y, batch_size, shard=shard):
        logits = learner.logits(xb)
        loss_sum = loss_sum + xp.astype(loss_fn.forward(logits, yb), wide) * xb.shape[0]
        # labels were checked once by the caller, and argmax predictions are always in range
        cm = cm + metrics.confusion_matrix(yb, xp.argmax(logits, axis=1), n_classes, xp=xp, validate=False)
    if group is not None:
        cm, loss_sum = group.all_reduce_sum([cm, loss_sum], what="the evaluation counts")
    names = class_names if class_names is not None and len(class_names) == n_classes else None
    return metrics.summarize(cm, loss_sum=loss_sum, betas=betas, class_names=names)


def check_labels(y: Array, n_classes: int, what: str) -> None:
    """Validate a whole label array once (one host sync), so training steps need not."""
    xp = backend.get_namespace(y)
    if not xp.isdtype(y.dtype, "integral") or y.ndim != 1:
        raise TypeError(f"{what} labels must be a 1-D integer array, got {backend.dtype_name(y.dtype)} of shape {tuple(y.shape)}")
    if y.shape[0] and bool(xp.any((y < 0) | (y >= n_classes))):
        raise ValueError(f"{what} labels must be in [0, {n_classes}), got values from {int(xp.min(y))} to {int(xp.max(y))}")


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


@dataclass
class FitState:
    """Everything a run needs to continue: what a checkpoint holds."""

    epochs_done: int = 0
    history: dict[str, Any] = field(default_factory=lambda: {"epochs": [], "steps": {"loss": [], "accuracy": [], "lr": []}})
    best_epoch: int | None = None
    best_val_accuracy: float = -math.inf
    best_state: dict[str, Any] | None = None
    diverged: dict[str, Any] | None = None


class _StepLog:
    """The losses and correct counts of one epoch's steps. They stay on the device until `flush`
    reads all pending ones back in one transfer (every ``log_every`` steps, and at the end)."""

    def __init__(self, xp: Namespace) -> None:
        self.xp = xp
        self.pending_loss: list[Array] = []
        self.pending_correct: list[Array] = []
        self.losses: list[float] = []
        self.corrects: list[float] = []
        self.lrs: list[float] = []

    def add(self, loss: Array, correct: Array, lr: float) -> None:
        self.pending_loss.append(loss)
        self.pending_correct.append(correct)
        self.lrs.append(lr)

    def flush(self) -> int | None:
        """Read the pending values back; the 0-based step of the first non-finite loss, if any."""
        if not self.pending_loss:
            return None
        xp = self.xp
        packed = xp.concat([xp.stack(self.pending_loss), xp.astype(xp.stack(self.pending_correct), self.pending_loss[0].dtype)])
        host = np.asarray(backend.to_numpy(packed), dtype=np.float64)
        k = len(self.pending_loss)
        first = len(self.losses)
        self.losses.extend(host[:k].tolist())
        self.corrects.extend(host[k:].tolist())
        self.pending_loss.clear()
        self.pending_correct.clear()
        bad = np.flatnonzero(~np.isfinite(host[:k]))
        return first + int(bad[0]) if bad.size else None


def fit(
    learner: Learner, data: Splits, *, epochs: int, batch_size: int, seed: int,
    schedule: Schedule | None = None, lr: float | None = None, progress: bool | None = None,
    log_every: int = 50, log: Callable[[str], None] | None = print,
    start: FitState | None = None, on_epoch_end: Callable[[FitState], None] | None = None,
) -> FitState:
    """Train `learner` on ``data.x_train`` for `epochs`, validating after each epoch.

    The learning rate is ``schedule(step / steps_per_epoch)`` (a constant `lr` if no schedule).
    Batches are reshuffled each epoch by a generator derived from (`seed`, epoch), and the last
    partial batch is dropped. The state after the best validation accuracy is kept in
    ``FitState.best_state``. `start` continues an earlier run (resume); `on_epoch_end` is called
    with the state after every epoch (checkpointing). `progress`: a progress bar per epoch
    (None: only when stderr is a terminal).
    """
    if schedule is None:
        if lr is None:
            raise ValueError("fit needs a learning rate or a schedule")
        schedule = Constant(lr)
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    for name in ("train", "val"):
        check_labels(getattr(data, f"y_{name}"), data.n_classes, name)
    n_steps = steps_per_epoch(data.x_train.shape[0], batch_size)
    if n_steps == 0:
        raise ValueError(f"batch size {batch_size} exceeds the {data.x_train.shape[0]} training samples")
    state = start if start is not None else FitState()
    say = log if log is not None else (lambda _msg: None)
    for epoch in range(state.epochs_done, epochs):
        if state.diverged is not None:
            break
        t0 = time.perf_counter()
        steps = train_epoch(learner, data, epoch=epoch, epochs=epochs, batch_size=batch_size, seed=seed,
                            schedule=schedule, progress=progress, log_every=log_every)
        _record_steps(state, steps, batch_size)
        if steps.diverged_at is not None:
            state.diverged = {"epoch": epoch + 1, "step": steps.diverged_at + 1, "loss": str(steps.losses[steps.diverged_at])}
            state.history["epochs"].append({"epoch": epoch + 1, "diverged": True, "seconds": time.perf_counter() - t0})
            say(f"epoch {epoch + 1}/{epochs}: loss became {state.diverged['loss']} at step {state.diverged['step']}: "
                "diverged, stopping this run")
        else:
            record = _validate(learner, data, steps, epoch=epoch, batch_size=batch_size, t0=t0)
            state.history["epochs"].append(record)
            if record["val_accuracy"] > state.best_val_accuracy:
                state.best_val_accuracy = record["val_accuracy"]
                state.best_epoch = epoch + 1
                state.best_state = learner.snapshot()  # references: a snapshot, since nothing is written in place
            say(_epoch_line(record, epochs))
        state.epochs_done = epoch + 1
        if on_epoch_end is not None:
            on_epoch_end(state)
    return state


@dataclass
class EpochSteps:
    """What one epoch of steps left: host losses, correct counts and rates, and the 0-based step
    whose loss was first not finite (None if the epoch finished)."""

    losses: list[float]
    corrects: list[float]
    lrs: list[float]
    diverged_at: int | None


def train_epoch(
    learner: Learner, data: Splits, *, epoch: int, epochs: int, batch_size: int, seed: int,
    schedule: Schedule, progress: bool | None = None, log_every: int = 50,
) -> EpochSteps:
    """One epoch of SGD steps on shuffled batches; losses read back every `log_every` steps. Stops
    at the first read-back that holds a non-finite loss."""
    from tqdm.auto import tqdm

    n_steps = steps_per_epoch(data.x_train.shape[0], batch_size)
    _, shard = _shard(learner)  # data-parallel: this process's rows of each global batch
    log = _StepLog(learner.xp)
    diverged_at = None
    bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}/{epochs}", disable=None if progress is None else not progress,
               leave=False, unit="step")
    # A diverging run overflows before its loss is read back; that is reported as a
    # divergence, so NumPy's floating-point warnings would only be noise here.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), bar:
        for step, (xb, yb) in enumerate(train_batches(data.x_train, data.y_train, batch_size, seed=seed, epoch=epoch,
                                                             shard=shard)):
            rate = float(schedule(epoch + step / n_steps))
            loss, correct = learner.train_step(xb, yb, rate, epoch * n_steps + step)
            log.add(loss, correct, rate)
            bar.update(1)
            if (step + 1) % log_every == 0 or step + 1 == n_steps:
                diverged_at = log.flush()
                bar.set_postfix(loss=f"{log.losses[-1]:.4f}", lr=f"{rate:.3g}")
                if diverged_at is not None:
                    break
    return EpochSteps(log.losses, log.corrects, log.lrs[: len(log.losses)], diverged_at)


def _record_steps(state: FitState, steps: EpochSteps, batch_size: int) -> None:
    history = state.history["steps"]
    history["loss"].extend(steps.losses)
    history["accuracy"].extend(c / batch_size for c in steps.corrects)
    history["lr"].extend(steps.lrs)


def _validate(learner: Learner, data: Splits, steps: EpochSteps, *, epoch: int, batch_size: int, t0: float) -> dict[str, Any]:
    """The epoch's record: its training figures and the validation loss and accuracy."""
    with np.errstate(over="ignore", invalid="ignore"):
        val = evaluate(learner, data.x_val, data.y_val, n_classes=data.n_classes, betas=())
    return {
        "epoch": epoch + 1,
        "lr": steps.lrs[-1],
        "train_loss": float(np.mean(steps.losses)),
        "train_accuracy": float(np.sum(steps.corrects) / (len(steps.corrects) * batch_size)),
        "val_loss": val["loss"],
        "val_accuracy": val["accuracy"],
        "seconds": time.perf_counter() - t0,
    }


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {record['epoch']:>3}/{epochs}  lr {record['lr']:.4g}  train loss {record['train_loss']:.4f}  "
        f"train acc {record['train_accuracy']:.4f}  val loss {record['val_loss']:.4f}  "
        f"val acc {record['val_accuracy']:.4f}  ({record['seconds']:.1f}s)"
    )


def evaluate_best(learner: Learner, data: Splits, state: FitState) -> dict[str, Any] | None:
    """Restore the best-validation state and evaluate it on the test set (None if no epoch
    finished before a divergence)."""
    if state.best_state is None:
        return None
    learner.restore(state.best_state)
    return evaluate(learner, data.x_test, data.y_test, n_classes=data.n_classes, class_names=data.class_names)
