"""The training loop: epochs of shuffled mini-batches, SGD, an optional learning-rate schedule,
per-step and per-epoch history, best-validation model kept and tested.

The loop talks to a *learner* (`ArraymlLearner` here; ``examples/torch_reference.py`` has one for
plain ``torch.nn``), so that arrayml and PyTorch are trained on the same batches in the same order
and evaluated by the same code, and their results files compare point by point.

No step waits on the device: the per-step loss and accuracy stay on the device and are read back
together once every ``log_every`` steps (and at the end of each epoch). That is also when a NaN or
infinite loss is noticed; the run then stops cleanly and records where it diverged.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import backend, metrics
from .backend import Array, Namespace
from .data import CLASSES, Splits, eval_batches, steps_per_epoch, train_batches
from .fileio import atomic_write
from .modules import Module, SoftmaxCrossEntropy
from .optim import SGD
from .schedules import Constant, Schedule


class Learner(Protocol):
    """What the loop needs from a model and its optimizer."""

    xp: Namespace
    device: Any

    def train_step(self, x: Array, y: Array, lr: float) -> tuple[Array, Array]:
        """One SGD step at learning rate `lr`; returns the batch loss and the number of correct
        predictions, both as 0-D device arrays (not read back)."""

    def logits(self, x: Array) -> Array:
        """Outputs in evaluation mode, without touching any training state."""

    def snapshot(self) -> dict[str, Any]:
        """The model's parameters and buffers (references are fine: nothing is written in place)."""

    def restore(self, state: dict[str, Any]) -> None: ...

    def optimizer_state(self) -> dict[str, Any]: ...

    def load_optimizer_state(self, state: dict[str, Any]) -> None: ...


class ArraymlLearner:
    """An arrayml model, the fused softmax + cross-entropy loss and `SGD`."""

    def __init__(self, model: Module, optimizer: SGD) -> None:
        self.model = model
        self.optimizer = optimizer
        # labels are checked once, up front, by `fit`: no per-step host sync for validation
        self.loss = SoftmaxCrossEntropy(validate=False)
        where = model.placement()
        if where is None:
            raise ValueError("the model has no parameters to train")
        self.xp, self.device = where.xp, where.device

    def train_step(self, x: Array, y: Array, lr: float) -> tuple[Array, Array]:
        xp = self.xp
        logits = self.model.forward(x)
        loss = self.loss.forward(logits, y)
        self.model.backward(self.loss.backward(), input_grad=False)  # dL/d(images) is never used
        self.optimizer.step(self.model, lr)
        correct = xp.sum(xp.astype(xp.argmax(logits, axis=1) == y, xp.int64))
        return loss, correct

    def logits(self, x: Array) -> Array:
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model.forward(x)
        finally:
            self.model.clear_cache()
            self.model.train(was_training)

    def snapshot(self) -> dict[str, Any]:
        return self.model.state()

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state(state)

    def optimizer_state(self) -> dict[str, Any]:
        return dict(self.optimizer.velocity)

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.velocity = {
            k: backend.convert(v, self.xp, self.device, self.model.placement().dtype) for k, v in state.items()
        }


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate(
    learner: Learner, x: Array, y: Array, *, n_classes: int = 10, batch_size: int = 1000,
    betas: Sequence[float] = (0.1, 1.0, 10.0), class_names: Sequence[str] | None = CLASSES,
) -> dict[str, Any]:
    """Loss, accuracy, confusion matrix, per-class precision/recall/F-beta of `learner` on
    (x, y), all computed on the device and read back once."""
    xp, dev = backend.get_namespace_and_device(x, y)
    cm = xp.zeros((n_classes, n_classes), dtype=xp.int64, device=dev)
    loss_sum = xp.zeros((), dtype=xp.float64, device=dev)
    loss_fn = SoftmaxCrossEntropy(validate=False)  # labels were checked once, by the caller
    for xb, yb in eval_batches(x, y, batch_size):
        logits = learner.logits(xb)
        loss_sum = loss_sum + xp.astype(loss_fn.forward(logits, yb), xp.float64) * xb.shape[0]
        cm = cm + metrics.confusion_matrix(yb, xp.argmax(logits, axis=1), n_classes, xp=xp)
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


def fit(
    learner: Learner, data: Splits, *, epochs: int, batch_size: int, seed: int,
    schedule: Schedule | None = None, lr: float | None = None, progress: bool = True,
    log_every: int = 50, log: Callable[[str], None] | None = print,
    start: FitState | None = None, on_epoch_end: Callable[[FitState], None] | None = None,
) -> FitState:
    """Train `learner` on ``data.x_train`` for `epochs`, validating after each epoch.

    The learning rate is ``schedule(step / steps_per_epoch)`` (a constant `lr` if no schedule).
    Batches are reshuffled each epoch by a generator derived from (`seed`, epoch), and the last
    partial batch is dropped. The state after the best validation accuracy is kept in
    ``FitState.best_state``. `start` continues an earlier run (resume); `on_epoch_end` is called
    with the state after every epoch (checkpointing).
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
    xp = learner.xp
    state = start if start is not None else FitState()
    say = log if log is not None else (lambda _msg: None)
    from tqdm.auto import tqdm

    for epoch in range(state.epochs_done, epochs):
        if state.diverged is not None:
            break
        t0 = time.perf_counter()
        pending_loss: list[Array] = []
        pending_correct: list[Array] = []
        losses: list[float] = []
        corrects: list[float] = []
        step_lrs: list[float] = []
        bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False, unit="step")

        def flush(step: int) -> bool:
            """Read the pending losses back (one transfer); False if one is not finite."""
            if not pending_loss:
                return True
            packed = xp.concat([xp.stack(pending_loss), xp.astype(xp.stack(pending_correct), pending_loss[0].dtype)])
            host = np.asarray(backend.to_numpy(packed), dtype=np.float64)
            k = len(pending_loss)
            new_losses = host[:k].tolist()
            losses.extend(new_losses)
            corrects.extend(host[k:].tolist())
            pending_loss.clear()
            pending_correct.clear()
            bar.set_postfix(loss=f"{new_losses[-1]:.4f}", lr=f"{step_lrs[-1]:.3g}")
            bad = [i for i, v in enumerate(new_losses) if not math.isfinite(v)]
            if bad:
                first = len(losses) - k + bad[0]
                state.diverged = {"epoch": epoch + 1, "step": first + 1, "loss": str(new_losses[bad[0]])}
                return False
            return True

        # A diverging run overflows before its loss is read back; that is reported as a
        # divergence below, so NumPy's floating-point warnings would only be noise here.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for step, (xb, yb) in enumerate(train_batches(data.x_train, data.y_train, batch_size, seed=seed, epoch=epoch)):
                rate = float(schedule(epoch + step / n_steps))
                step_lrs.append(rate)
                loss, correct = learner.train_step(xb, yb, rate)
                pending_loss.append(loss)
                pending_correct.append(correct)
                bar.update(1)
                if (step + 1) % log_every == 0 and not flush(step):
                    break
            if state.diverged is None:
                flush(n_steps - 1)
        bar.close()
        steps = state.history["steps"]
        steps["loss"].extend(losses)
        steps["accuracy"].extend(c / batch_size for c in corrects)
        steps["lr"].extend(step_lrs[: len(losses)])
        if state.diverged is not None:
            d = state.diverged
            say(f"epoch {epoch + 1}/{epochs}: loss became {d['loss']} at step {d['step']}: diverged, stopping this run")
            state.history["epochs"].append({"epoch": epoch + 1, "diverged": True, "seconds": time.perf_counter() - t0})
            state.epochs_done = epoch + 1
            if on_epoch_end is not None:
                on_epoch_end(state)
            break
        with np.errstate(over="ignore", invalid="ignore"):
            val = evaluate(learner, data.x_val, data.y_val, n_classes=data.n_classes, betas=())
        record = {
            "epoch": epoch + 1,
            "lr": step_lrs[-1],
            "train_loss": float(np.mean(losses)),
            "train_accuracy": float(np.sum(corrects) / (len(corrects) * batch_size)),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "seconds": time.perf_counter() - t0,
        }
        state.history["epochs"].append(record)
        if val["accuracy"] > state.best_val_accuracy:
            state.best_val_accuracy = val["accuracy"]
            state.best_epoch = epoch + 1
            state.best_state = learner.snapshot()  # references: a snapshot, since nothing is written in place
        state.epochs_done = epoch + 1
        say(
            f"epoch {epoch + 1:>3}/{epochs}  lr {record['lr']:.4g}  train loss {record['train_loss']:.4f}  "
            f"train acc {record['train_accuracy']:.4f}  val loss {record['val_loss']:.4f}  "
            f"val acc {record['val_accuracy']:.4f}  ({record['seconds']:.1f}s)"
        )
        if on_epoch_end is not None:
            on_epoch_end(state)
    return state


def evaluate_best(learner: Learner, data: Splits, state: FitState) -> dict[str, Any] | None:
    """Restore the best-validation state and evaluate it on the test set (None if no epoch
    finished before a divergence)."""
    if state.best_state is None:
        return None
    learner.restore(state.best_state)
    return evaluate(learner, data.x_test, data.y_test, n_classes=data.n_classes)


# --------------------------------------------------------------------------------------------
# Results files
# --------------------------------------------------------------------------------------------


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON through a temporary file renamed into place."""
    path = Path(path)
    with atomic_write(path, "w") as f:
        f.write(_dumps(obj, 0) + "\n")
    return path


def _dumps(o: Any, level: int) -> str:
    """JSON with one-space indentation, but lists of plain values on one line (readable, and three
    times smaller for per-step histories). NaN and ±Infinity are written as Python's json does."""
    pad, inner = " " * level, " " * (level + 1)
    if isinstance(o, dict):
        if not o:
            return "{}"
        items = (f"{inner}{json.dumps(str(k))}: {_dumps(v, level + 1)}" for k, v in o.items())
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(o, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in o):
            return json.dumps(list(o), allow_nan=True, default=_json_default, separators=(", ", ": "))
        return "[\n" + ",\n".join(inner + _dumps(v, level + 1) for v in o) + "\n" + pad + "]"
    return json.dumps(o, allow_nan=True, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
