"""The training loop: epochs of shuffled mini-batches, an optional learning-rate schedule,
per-step and per-epoch history, the best-validation model kept and tested.

The loop talks to a *learner* (`arrayml.learners`: `ArraymlLearner`; the examples' torch mirror
has one for plain ``torch.nn``), so that arrayml and PyTorch are trained on the same batches in
the same order and evaluated by the same code, and their results compare point by point. It
knows no data set: it takes `arrayml.data.Splits` of any data.

Before the first step `fit` checks that the problem is the one the model can learn: its labels
are class indices that the model's outputs can score (a 3-output model is refused 10-class
labels, naming both numbers), its features are finite and of the width the model takes, and it
takes the learning rate from one place (the optimizer's, or a schedule whose peak is the
optimizer's), every step's rate a finite number >= 0. No step waits on the device: the per-step loss and
accuracy stay on the device and are read back together once every ``log_every`` steps (and at
the end of each epoch). That is also when a NaN or infinite loss is noticed; the run then stops
cleanly and records where it diverged. After `fit` the model holds the weights of the best
validation epoch (``restore_best=False`` keeps the last ones), in evaluation mode. With ``early_stopping=N`` the loop
stops once N epochs in a row have not beaten the best validation accuracy (patience N, as Keras'
``EarlyStopping(patience=N)``), and records where.

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
from typing import Any

import numpy as np

from . import backend, metrics, validate
from .backend import Array, Namespace
from .data import Splits, check_finite, eval_batches, steps_per_epoch, train_batches
from .learners import ArraymlLearner, Learner, ProcessGroup, count_correct
from .modules import Module, SoftmaxCrossEntropy
from .schedules import Constant, Schedule

__all__ = ["ArraymlLearner", "EpochSteps", "FitState", "Learner", "ProcessGroup", "check_labels", "count_correct",
           "evaluate", "evaluate_best", "fit", "train_epoch"]


def _shard(learner: Learner) -> tuple[ProcessGroup | None, tuple[int, int] | None]:
    """The learner's process group (None for one process) and its ``(rank, world_size)``."""
    group = learner.group
    return group, None if group is None else (group.rank, group.world_size)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate(
    learner: Learner, x: Array, y: Array, *, n_classes: int | None = None, batch_size: int = 1000,
    betas: Sequence[float] = (0.1, 1.0, 10.0), class_names: Sequence[str] | None = None, check: bool = True,
) -> dict[str, Any]:
    """Loss, accuracy, confusion matrix, per-class precision/recall/F-beta of `learner` on
    (x, y), all computed on the device and read back once.

    A data-parallel learner scores its share of the batches (`eval_batches` with a shard); the
    loss sums and confusion matrices of all processes are then added up, so every process gets
    the exact figures of the whole of (x, y), each sample counted once.

    Args:
        learner: the learner whose model is scored (in evaluation mode).
        x: the features, (n, ...) with n > 0.
        y: the labels, a 1-D integer array of length n.
        n_classes: the number of classes (default: the model's number of outputs).
        batch_size: rows scored at a time.
        betas: the F-beta weights to report (`arrayml.metrics.summarize`).
        class_names: None, or a name for each class.
        check: first check that the labels lie in [0, n_classes) (one more read-back); `fit`
            checks them once up front and passes False.

    Returns:
        The summary of `arrayml.metrics.summarize`: ``n``, ``accuracy``, ``loss`` (the mean
        softmax cross-entropy), ``confusion_matrix``, per-class and macro figures.

    Raises:
        TypeError: `learner` is not a learner, `x` and `y` are not arrays of one namespace and
            device, or the labels are not integers.
        ValueError: `x` has no rows, `class_names` does not name every class, a setting is out of
            range, or (with `check`) a label is out of range.
    """
    check_learner(learner, "evaluate")
    batch_size = validate.positive_int(batch_size, "evaluate batch_size")
    xp, dev = backend.get_namespace_and_device(x, y, names=("x", "y"), what="evaluate")
    if x.shape[0] == 0:
        raise ValueError("evaluate: x has no rows, so there is nothing to evaluate")
    if n_classes is None:
        n_classes = output_width(learner, x)
    else:
        n_classes = validate.positive_int(n_classes, "evaluate n_classes")
    if class_names is not None and len(class_names) != n_classes:
        raise ValueError(f"evaluate class_names must name the {n_classes} classes the model scores, got "
                         f"{len(class_names)} names")
    if check:
        check_labels(y, n_classes, "evaluate")
    group, shard = _shard(learner)
    wide = backend.widest_float(xp)  # float64; float32 on JAX without x64
    cm = xp.zeros((n_classes, n_classes), dtype=backend.widest_int(xp), device=dev)
    loss_sum = xp.zeros((), dtype=wide, device=dev)
    loss_fn = SoftmaxCrossEntropy(validate=False)  # labels are checked above, or were by the caller
    for xb, yb in eval_batches(x, y, batch_size, shard=shard):
        logits = learner.logits(xb)
        loss_sum = loss_sum + xp.astype(loss_fn.forward(logits, yb), wide) * xb.shape[0]
        # labels are in range (checked), and argmax predictions always are
        cm = cm + metrics.confusion_matrix(yb, xp.argmax(logits, axis=1), n_classes, xp=xp, validate=False)
    if group is not None:
        cm, loss_sum = group.all_reduce_sum([cm, loss_sum], what="the evaluation counts")
    return metrics.summarize(cm, loss_sum=loss_sum, betas=betas, class_names=class_names)


def output_width(learner: Learner, x: Array) -> int:
    """The number of outputs (classes) of `learner`'s model: the width of its logits for the
    first row of `x` (evaluation mode; a shape, nothing read back)."""
    return int(learner.logits(x[:1, ...]).shape[1])


def check_labels(y: Array, n_classes: int, what: str) -> None:
    """Validate a whole label array once (one host sync), so training steps need not.

    Args:
        y: the labels.
        n_classes: the number of classes.
        what: the call errors name.

    Raises:
        TypeError: `y` is not a 1-D integer array.
        ValueError: a label is outside [0, n_classes).
    """
    xp = backend.get_namespace(y, names=(f"{what} labels",))
    if not xp.isdtype(y.dtype, "integral") or y.ndim != 1:
        raise TypeError(f"{what} labels must be a 1-D integer array, got {backend.dtype_name(y.dtype)} of shape {tuple(y.shape)}")
    if y.shape[0] and bool(xp.any((y < 0) | (y >= n_classes))):
        raise ValueError(f"{what} labels must be in [0, {n_classes}), got values from {int(xp.min(y))} to {int(xp.max(y))}")


#: What a learner has (`arrayml.learners.Learner`): what `fit` and `evaluate` check for.
_LEARNER_METHODS = ("train_step", "logits", "snapshot", "restore")


def check_learner(learner: Any, what: str) -> None:
    """Refuse what is not a learner, saying how to make one from a model (the usual mistake)."""
    if isinstance(learner, Module):
        raise TypeError(
            f"{what} trains a learner (a model with its optimizer), got the model {type(learner).__name__}; wrap "
            f"it: {what}(ArraymlLearner(model, am.SGD(lr)), data, ...)"
            if what == "fit" else
            f"{what}'s learner must be a learner (arrayml.learners.ArraymlLearner: a model with its optimizer), got "
            f"{type(learner).__name__}; wrap the model: ArraymlLearner(model, am.SGD(lr))"
        )
    missing = [m for m in _LEARNER_METHODS if not callable(getattr(learner, m, None))]
    if missing:
        raise TypeError(
            f"{what}'s learner must be a learner (arrayml.learners.ArraymlLearner(model, optimizer), or an object "
            f"with {', '.join(_LEARNER_METHODS)}), got {type(learner).__name__}, which has no {', '.join(missing)}"
        )


def _width(learner: Learner, data: Splits, name: str) -> int:
    """`output_width` on ``data.<name>``; an input the model cannot take is named with its shape."""
    x = getattr(data, name)
    try:
        return output_width(learner, x)
    except (TypeError, ValueError) as exc:
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(f"fit: data.{name} has shape {tuple(x.shape)}, which the model cannot take: {exc}") from None


def check_problem(learner: Learner, data: Splits) -> int:
    """The number of classes the model scores, after checking, once and up front, that it fits
    `data`: every split's rows are inputs the model takes (a wrong width names the field, its
    shape and what the model expects), every label in [0, outputs), and outputs equal to
    ``data.n_classes`` when the data says how many classes there are. The error names both
    numbers."""
    width = _width(learner, data, "x_train")
    for name in ("x_val", "x_test"):
        if getattr(data, name) is not None:
            _width(learner, data, name)
    if data.class_names is not None and len(data.class_names) != width:
        raise ValueError(f"data.class_names names {len(data.class_names)} classes, but the model has {width} outputs: "
                         "name every output (or give no class names)")
    classes = data.n_classes
    assert classes is not None  # Splits fills it in from the labels
    if width < classes or (data.n_classes_given and width != classes):
        said = "has" if data.n_classes_given else f"has labels up to {classes - 1}, so at least"
        raise ValueError(
            f"the model has {width} outputs but the data {said} {classes} classes: build the model with {classes} "
            f"outputs (e.g. MLP(n_inputs, hidden, {classes}))"
        )
    for part in ("train", "val"):
        y = getattr(data, f"y_{part}")
        if y is not None:
            check_labels(y, width, part)
    return width


#: Where `fit`'s rates come from, as its errors name them.
_OWN_RATE = "the learner's optimizer's learning rate (opt.lr)"


def _rates(learner: Learner, schedule: Schedule | None, lr: float | None) -> Schedule:
    """The rate of every step, from one source: `schedule`, else `lr`, else the optimizer's.
    Two different rates (an optimizer built with one, fit or a schedule given another) are a
    `ValueError` naming both. Each source is first checked to be a finite number >= 0, named
    (`validate.learning_rate`): whatever the optimizer checks when its rate is reassigned, fit
    does not train at a rate it has not checked."""
    own = learner.lr
    if own is not None:
        own = validate.learning_rate(own, _OWN_RATE, zero_ok=True)
    if lr is not None:
        lr = validate.learning_rate(lr, "fit's lr", zero_ok=True)
    if schedule is not None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"fit schedule must be an arrayml.schedules.Schedule (e.g. Cosine(lr, epochs=...)), got "
                            f"{type(schedule).__name__}")
        validate.learning_rate(schedule.lr, "the schedule's peak learning rate (schedule.lr)", zero_ok=True)
        if lr is not None:
            raise ValueError("fit takes a learning rate or a schedule, not both: the schedule gives every step's rate")
        if own is not None and not math.isclose(schedule.lr, own, rel_tol=1e-12):
            raise ValueError(f"two learning rates: the optimizer's lr={own:g} and the schedule's peak lr={schedule.lr:g}; "
                             "build both from one number")
        return schedule
    if lr is not None and own is not None and not math.isclose(lr, own, rel_tol=1e-12):
        raise ValueError(f"two learning rates: the optimizer's lr={own:g} and fit's lr={lr:g}; give the rate once "
                         "(to the optimizer, or as fit's schedule)")
    rate = lr if lr is not None else own
    if rate is None:
        raise ValueError("fit needs a learning rate: the learner's optimizer has none, so give lr= or a schedule")
    return Constant(rate)


def rate_at(schedule: Schedule, epoch: int, step: int, n_steps: int) -> float:
    """The rate of step `step` (0-based) of epoch `epoch` (0-based) of `n_steps`: ``schedule(epoch
    + step / n_steps)``, checked to be a finite number >= 0; an error names the step."""
    t = epoch + step / n_steps
    rate = schedule(t)
    if type(rate) is float and 0.0 <= rate < math.inf:  # the usual case, at every step: nothing more to ask
        return rate
    return validate.learning_rate(
        rate, f"the schedule's learning rate at epoch {epoch + 1}, step {step + 1} of {n_steps} (fractional epoch "
              f"{t:.4g}; {type(schedule).__name__})", zero_ok=True)


def _check_schedule(schedule: Schedule, first_epoch: int, epochs: int, n_steps: int) -> None:
    """Every rate the run will take, checked before its first step (a schedule that goes wrong in
    the tenth epoch is refused now, not after nine)."""
    for epoch in range(first_epoch, epochs):
        for step in range(n_steps):
            rate_at(schedule, epoch, step, n_steps)


def _check_callable(value: Any, what: str, wanted: str) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{what} must be {wanted} or None, got {type(value).__name__} {value!r}")


def _set_training(learner: Learner, training: bool) -> None:
    """Put the learner's model in training or evaluation mode: ``learner.model.train(flag)``,
    which an arrayml `Module` and a ``torch.nn.Module`` (the examples' torch mirror) both have; a
    learner without a model keeps its own rule."""
    train = getattr(getattr(learner, "model", None), "train", None)
    if callable(train):
        train(training)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


@dataclass
class FitState:
    """Everything a run needs to continue: what a checkpoint holds.

    Args:
        epochs_done: the number of epochs finished.
        history: per epoch (``"epochs"``: the records the log prints) and per step (``"steps"``:
            loss, accuracy, lr).
        best_epoch: the 1-based epoch of the best validation accuracy, or None.
        best_val_accuracy: that accuracy (-inf before any).
        best_state: the learner's snapshot after that epoch (model and optimizer), or None.
        diverged: where the loss first was not finite (``{"epoch", "step", ...}``), or None.
        stopped_early: where early stopping ended the run (``{"epoch", "best_epoch",
            "patience"}``), or None.
    """

    epochs_done: int = 0
    history: dict[str, Any] = field(default_factory=lambda: {"epochs": [], "steps": {"loss": [], "accuracy": [], "lr": []}})
    best_epoch: int | None = None
    best_val_accuracy: float = -math.inf
    best_state: dict[str, Any] | None = None
    diverged: dict[str, Any] | None = None
    #: Where early stopping ended the run (``{"epoch", "best_epoch", "patience"}``), or None.
    stopped_early: dict[str, Any] | None = None


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

    def add(self, loss: Array, correct: Array | None, lr: float) -> None:
        self.pending_loss.append(loss)
        if correct is not None:  # a learner that counts nothing (regression) leaves `corrects` empty
            self.pending_correct.append(correct)
        self.lrs.append(lr)

    def flush(self) -> int | None:
        """Read the pending values back; the 0-based step of the first non-finite loss, if any."""
        if not self.pending_loss:
            return None
        xp = self.xp
        parts = [xp.stack(self.pending_loss)]
        if self.pending_correct:
            parts.append(xp.astype(xp.stack(self.pending_correct), self.pending_loss[0].dtype))
        packed = xp.concat(parts)
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
    restore_best: bool = True, early_stopping: int | None = None,
) -> FitState:
    """Train `learner` on ``data.x_train`` for `epochs`, validating after each epoch.

    Batches are reshuffled each epoch by a generator derived from (`seed`, epoch), and the last
    partial batch is dropped. With a validation set, the state after the best validation accuracy
    is kept in ``FitState.best_state``; without one (``data.x_val`` None) there is no best-epoch
    selection and the model keeps the last epoch's weights (said in the log).

    The model trains in training mode and is left in **evaluation mode** when `fit` returns (or
    is interrupted): ``model.forward(x)`` then predicts without dropout, with batch norm's
    running statistics. (``model.train()`` before calling the model's own ``forward`` in
    training mode again; a later `fit` switches by itself.)

    Everything is checked before the first step, naming the argument or the field: every step's
    rate is computed up front, the features are checked for NaN or infinity (naming the field and
    the first bad row: one read back per array), the rows against what the model takes, the
    labels against the model's outputs (`check_problem`).

    Args:
        learner: a learner (a model with its optimizer: ``ArraymlLearner(model, optimizer)``).
        data: the `arrayml.data.Splits` to train, validate and test on.
        epochs: the number of epochs (a positive integer).
        batch_size: rows per step (a positive integer, at most the training set's size).
        seed: a non-negative integer: the batches' shuffle and the steps' random draws.
        schedule: the learning rate as ``schedule(step / steps_per_epoch)``; None: a constant.
        lr: the constant rate without a schedule (it must be the optimizer's); None: the
            optimizer's own.
        progress: a progress bar per epoch (None: only when stderr is a terminal).
        log_every: steps between two read-backs of the losses (a positive integer).
        log: called with each line of the log (default `print`; None: silent).
        start: the `FitState` of an earlier run to continue (resume), or None.
        on_epoch_end: called with the state after every epoch (checkpointing), or None.
        restore_best: put the best-validation state back into the model when `fit` returns.
        early_stopping: None, or a patience N (a positive integer): training stops after the
            first epoch that ends N epochs after the best validation accuracy so far (N epochs
            without a new best), recorded in ``FitState.stopped_early``; the best model is kept
            and, with `restore_best`, put back. It needs a validation set.

    Returns:
        The run's `FitState`: history, best epoch and state, divergence, early stop.

    Raises:
        TypeError: `learner` is not a learner (a model: wrap it), `data` is not `Splits`, an
            argument has the wrong type, or the labels are not integers.
        ValueError: a setting is out of range (a batch larger than the training set too), a rate
            is negative or not finite (the optimizer's, `lr`, or any step of `schedule`), the
            features hold NaN or infinity, rows or labels do not fit the model, or
            `early_stopping` without a validation set.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> from arrayml.data import Splits
        >>> from arrayml.learners import ArraymlLearner
        >>> from arrayml.training import fit
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(64, 4)).astype(np.float32)
        >>> y = (x[:, 0] > 0).astype(np.int64)
        >>> data = Splits(x[:48], y[:48], x[48:], y[48:])
        >>> learner = ArraymlLearner(am.MLP(4, [8], 2), am.Adam(lr=0.01))
        >>> state = fit(learner, data, epochs=3, batch_size=16, seed=0, log=None, progress=False)
        >>> state.epochs_done, len(state.history["epochs"])
        (3, 3)
    """
    check_learner(learner, "fit")
    if not isinstance(data, Splits):
        raise TypeError(
            f"fit data must be arrayml.data.Splits, got {type(data).__name__}; make them with "
            "Splits(x_train, y_train, x_val, y_val) (validation and test pairs optional: from arrayml.data import Splits)"
        )
    epochs = validate.positive_int(epochs, "fit epochs")
    batch_size = validate.positive_int(batch_size, "fit batch_size")
    seed = validate.seed(seed, "fit seed")
    log_every = validate.positive_int(log_every, "fit log_every")
    restore_best = validate.boolean(restore_best, "fit restore_best")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"fit progress must be True, False or None, got {type(progress).__name__} {progress!r}")
    _check_callable(log, "fit log", "a function of one string (e.g. print)")
    _check_callable(on_epoch_end, "fit on_epoch_end", "a function of the FitState")
    if start is not None and not isinstance(start, FitState):
        raise TypeError(f"fit start must be the FitState of an earlier run (or None), got {type(start).__name__}")
    schedule = _rates(learner, schedule, lr)
    if early_stopping is not None:
        early_stopping = validate.positive_int(early_stopping, "fit early_stopping (the patience, in epochs)")
        if data.x_val is None:
            raise ValueError("fit early_stopping watches the validation accuracy, but the data have no validation set "
                             "(data.x_val is None): give one, or train without early_stopping")
    n_steps = steps_per_epoch(data.x_train.shape[0], batch_size)
    if n_steps == 0:
        raise ValueError(f"batch size {batch_size} exceeds the {data.x_train.shape[0]} training samples")
    state = start if start is not None else FitState()
    _check_schedule(schedule, state.epochs_done, epochs, n_steps)
    for name in ("x_train", "x_val", "x_test"):
        if getattr(data, name) is not None:
            check_finite(getattr(data, name), f"data.{name}", "fit")
    n_classes = check_problem(learner, data)
    say = log if log is not None else (lambda _msg: None)
    if data.x_val is None:
        say("no validation set: no best-epoch selection, the model keeps the last epoch's weights")
    _set_training(learner, True)
    try:
        _loop(learner, data, state, schedule, say, epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
              log_every=log_every, n_classes=n_classes, on_epoch_end=on_epoch_end, early_stopping=early_stopping)
        if restore_best and state.best_state is not None:
            learner.restore(state.best_state)
            say(f"the model now holds the weights of epoch {state.best_epoch}, the best on validation "
                f"(accuracy {state.best_val_accuracy:.4f})")
    finally:
        _set_training(learner, False)  # predictions from here on: evaluation mode
    return state


def _loop(learner: Learner, data: Splits, state: FitState, schedule: Schedule, say: Callable[[str], None], *,
          epochs: int, batch_size: int, seed: int, progress: bool | None, log_every: int, n_classes: int,
          on_epoch_end: Callable[[FitState], None] | None, early_stopping: int | None) -> None:
    """`fit`'s epochs, from ``state.epochs_done`` on, with everything checked."""
    for epoch in range(state.epochs_done, epochs):
        if state.diverged is not None or state.stopped_early is not None:
            break
        t0 = time.perf_counter()
        steps = train_epoch(learner, data.x_train, data.y_train, epoch=epoch, epochs=epochs, batch_size=batch_size, seed=seed,
                            schedule=schedule, progress=progress, log_every=log_every)
        _record_steps(state, steps, batch_size)
        if steps.diverged_at is not None:
            state.diverged = {"epoch": epoch + 1, "step": steps.diverged_at + 1, "loss": str(steps.losses[steps.diverged_at])}
            state.history["epochs"].append({"epoch": epoch + 1, "diverged": True, "seconds": time.perf_counter() - t0})
            say(f"epoch {epoch + 1}/{epochs}: loss became {state.diverged['loss']} at step {state.diverged['step']}: "
                "diverged, stopping this run")
        else:
            record = _epoch_record(learner, data, steps, epoch=epoch, batch_size=batch_size, n_classes=n_classes, t0=t0)
            state.history["epochs"].append(record)
            if record.get("val_accuracy") is not None and record["val_accuracy"] > state.best_val_accuracy:
                state.best_val_accuracy = record["val_accuracy"]
                state.best_epoch = epoch + 1
                state.best_state = learner.snapshot()  # references: a snapshot, since nothing is written in place
            say(_epoch_line(record, epochs))
        state.epochs_done = epoch + 1
        if (early_stopping is not None and state.diverged is None and state.best_epoch is not None
                and state.epochs_done - state.best_epoch >= early_stopping and state.epochs_done < epochs):
            state.stopped_early = {"epoch": state.epochs_done, "best_epoch": state.best_epoch, "patience": early_stopping}
            say(f"early stopping after epoch {state.epochs_done}: no better validation accuracy than epoch "
                f"{state.best_epoch}'s in {early_stopping} epoch{'s' if early_stopping > 1 else ''}")
        if on_epoch_end is not None:
            on_epoch_end(state)
        if state.stopped_early is not None:
            break


@dataclass
class EpochSteps:
    """What one epoch of steps left (`train_epoch`).

    Args:
        losses: the host losses of the steps, in order.
        corrects: their correct counts (empty when the learner counts none).
        lrs: their rates.
        diverged_at: the 0-based step whose loss was first not finite (None if the epoch finished).
    """

    losses: list[float]
    corrects: list[float]
    lrs: list[float]
    diverged_at: int | None


def train_epoch(
    learner: Learner, x: Array, y: Array, *, epoch: int, epochs: int, batch_size: int, seed: int,
    schedule: Schedule, progress: bool | None = None, log_every: int = 50, shuffle: bool = True,
    drop_last: bool = True,
) -> EpochSteps:
    """One epoch of steps on batches of (x, y); losses read back every `log_every` steps and at the
    end. Stops at the first read-back that holds a non-finite loss.

    Args:
        learner: the learner to train.
        x: the training features.
        y: the training labels (checked before: the steps do not check them).
        epoch: the 0-based epoch (seeds the shuffle; names the progress bar).
        epochs: the run's number of epochs (for the progress bar).
        batch_size: rows per step.
        seed: the run's seed; the batches are drawn from (`seed`, `epoch`)
            (`arrayml.data.train_batches`).
        schedule: the learning rate by fractional epoch.
        progress: a progress bar (None: only when stderr is a terminal).
        log_every: steps between two read-backs of the losses.
        shuffle: False keeps the rows' order.
        drop_last: False also runs the last partial batch.

    Returns:
        The epoch's `EpochSteps`.
    """
    from tqdm.auto import tqdm

    epoch = validate.seed(epoch, "train_epoch epoch")
    batch_size = validate.positive_int(batch_size, "train_epoch batch_size")
    log_every = validate.positive_int(log_every, "train_epoch log_every")
    seed = validate.seed(seed, "train_epoch seed")
    n_steps = steps_per_epoch(x.shape[0], batch_size, drop_last=drop_last)
    _, shard = _shard(learner)  # data-parallel: this process's rows of each global batch
    log = _StepLog(learner.xp)
    diverged_at = None
    bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}/{epochs}", disable=None if progress is None else not progress,
               leave=False, unit="step")
    # A diverging run overflows before its loss is read back; that is reported as a
    # divergence, so NumPy's floating-point warnings would only be noise here.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), bar:
        for step, (xb, yb) in enumerate(train_batches(x, y, batch_size, seed=seed, epoch=epoch, shard=shard,
                                                      shuffle=shuffle, drop_last=drop_last)):
            rate = rate_at(schedule, epoch, step, n_steps)
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


def _epoch_record(learner: Learner, data: Splits, steps: EpochSteps, *, epoch: int, batch_size: int,
                  n_classes: int, t0: float) -> dict[str, Any]:
    """The epoch's record: its training figures and, with a validation set, the validation loss
    and accuracy (None without)."""
    val: dict[str, Any] = {"loss": None, "accuracy": None}
    if data.x_val is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            val = evaluate(learner, data.x_val, data.y_val, n_classes=n_classes, betas=(), check=False)
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
    line = (f"epoch {record['epoch']:>3}/{epochs}  lr {record['lr']:.4g}  train loss {record['train_loss']:.4f}  "
            f"train acc {record['train_accuracy']:.4f}")
    if record["val_accuracy"] is not None:
        line += f"  val loss {record['val_loss']:.4f}  val acc {record['val_accuracy']:.4f}"
    return line + f"  ({record['seconds']:.1f}s)"


def evaluate_best(learner: Learner, data: Splits, state: FitState) -> dict[str, Any] | None:
    """The best-validation model (restored) evaluated on the test set; without a validation set the
    model as it is.

    Args:
        learner: the learner `fit` trained.
        data: the run's splits.
        state: the run's `FitState`.

    Returns:
        `evaluate`'s summary on the test set; None when there is no test set, or no epoch
        finished before a divergence.
    """
    if data.x_test is None:
        return None
    if state.best_state is not None:
        learner.restore(state.best_state)
    elif data.x_val is not None or state.diverged is not None:
        return None
    return evaluate(learner, data.x_test, data.y_test, class_names=data.class_names, check=False)
