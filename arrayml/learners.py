"""Learners: what the training loop (`arrayml.training.fit`) trains. A learner holds a model
and its optimizer and runs one step at a time; `ArraymlLearner` runs arrayml's own step
(`arrayml.step.train_step`), eager or compiled. The examples' torch mirror implements the same
protocol for plain ``torch.nn``, and `arrayml.distributed.DataParallelLearner` wraps an
`ArraymlLearner` for data-parallel training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from . import backend, validate
from .backend import Array, Namespace
from .compile import CompiledStep, compile_step
from .modules import Loss, Module, SoftmaxCrossEntropy
from .modules.predict import outputs
from .optim import Optimizer
from .runner import Eager, Runner


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

    #: The learning rate its optimizer was built with (what `fit` uses when given none), or
    #: None if it has none.
    lr: float | None

    def train_step(self, x: Array, y: Array, lr: float, step: int | None = None) -> tuple[Array, Array | None]:
        """One step at learning rate `lr`; returns the batch loss and the number of correct
        predictions, both as 0-D device arrays (not read back); None for the count when the
        learner counts none (a regression loss). `step` is the step's number in the run (0, 1,
        ...: what its random draws, dropout masks, derive from); `fit` passes
        ``epoch · steps_per_epoch + i``, so a resumed run draws what it would have drawn; None:
        the learner counts its calls."""

    def logits(self, x: Array) -> Array:
        """Outputs in evaluation mode, without touching any training state (each module's mode
        as it was afterwards)."""

    def snapshot(self) -> dict[str, Any]:
        """The model's parameters and buffers (references are fine: nothing is written in place)."""

    def restore(self, state: dict[str, Any]) -> None: ...

    def optimizer_state(self) -> dict[str, Any]: ...

    def load_optimizer_state(self, state: dict[str, Any]) -> None: ...


def count_correct(logits: Array, y: Array) -> Array:
    """The number of correct predictions, as a 0-D integer device array (not read back)."""
    xp = backend.get_namespace(logits, y)
    return backend.count_true(xp.argmax(logits, axis=1) == y, xp=xp)


class RunnerLearner:
    """What `ArraymlLearner` and `arrayml.distributed.DataParallelLearner` share: a model, a loss
    and an optimizer trained through a `arrayml.runner.Runner` (``self.runner``, which keeps the
    step number, the steps' random keys and the optimizer's state), and predictions in
    evaluation mode. Subclasses set ``model``, ``loss``, ``optimizer`` and ``runner``."""

    model: Module
    loss: Loss
    optimizer: Optimizer
    runner: Runner

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

    @property
    def lr(self) -> float:
        """The optimizer's learning rate."""
        return self.optimizer.lr

    @property
    def next_step(self) -> int:
        """The number of the next step when `train_step` is not given one."""
        return self.runner.next_step

    def train_step(self, x: Array, y: Array, lr: float, step: int | None = None) -> tuple[Array, Any]:
        return self.runner.step(x, y, lr, step=step)

    def step_key(self, step: int, rank: int | None = None) -> Any:
        """The random key of step `step` (of process `rank` in data-parallel training), where the
        model lives."""
        return self.runner.step_key(step, rank)

    def logits(self, x: Array) -> Array:
        """Outputs in evaluation mode, without touching any training state (each module's mode
        as it was afterwards)."""
        return outputs(self.model, x)

    def predict(self, x: Array, *, batch_size: int = 1000) -> Array:
        """The predicted class of every row of `x`, in evaluation mode (`Module.predict`)."""
        return self.model.predict(x, batch_size=batch_size)

    def predict_proba(self, x: Array, *, batch_size: int = 1000) -> Array:
        """The class probabilities of every row of `x`, in evaluation mode (`Module.predict_proba`)."""
        return self.model.predict_proba(x, batch_size=batch_size)

    def snapshot(self) -> dict[str, Any]:
        """The model's parameters and buffers: references (nothing is written in place), copies
        where the next compiled step would donate (and so delete) the arrays."""
        return self.runner.snapshot()

    def restore(self, state: dict[str, Any]) -> None:
        self.runner.restore(state)

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state, flat (``"momentum/0.weight"``: what a checkpoint holds); copies
        where the next compiled step would donate (and so delete) the arrays."""
        return self.runner.optimizer_state()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Set the optimizer's state from `optimizer_state`'s flat form, checked against the
        optimizer and the model's parameters and moved to where they live."""
        self.runner.load_optimizer_state(state)


class ArraymlLearner(RunnerLearner):
    """An arrayml model, a loss and an optimizer, trained by `arrayml.step.train_step` through a
    `arrayml.runner.Runner` (``learner.runner``), which keeps the step number, the steps' random
    keys and the optimizer's state.

    The loss is the fused softmax + cross-entropy unless another is given (`SquaredError` for
    regression; build it with ``validate=False`` where it has the option: the loop checks labels
    once, up front). `metrics(logits, y)` is what each step counts besides the loss (default:
    the number of correct predictions, which `fit` logs; None for none, e.g. in regression).

    With ``compile=True`` the whole step (forward, loss, backward, update, the metrics) runs as
    one compiled function (`arrayml.compile.compile_step`: ``jax.jit`` on JAX,
    ``torch.compile`` on PyTorch; a `ValueError` on other backends), with the same layer code.

    `seed` seeds the step's random draws (dropout masks, random flips): step n draws from
    ``step_key(seed, n)`` (`arrayml.step.step_key`), eager or compiled.

    Each step switches a model left in evaluation mode (``model.eval()``, a checkpoint) back to
    training mode (a layer frozen on its own in a training model stays frozen); `logits`,
    `predict` and `predict_proba` run it in evaluation mode and leave every module's mode as it
    was. The learner follows its model:
    after ``model.to(...)`` it trains where the model now lives (the optimizer's state is moved
    along at the next step).
    """

    group = None  # one process (arrayml.distributed.DataParallelLearner has a group)

    def __init__(
        self, model: Module, optimizer: Optimizer, *, loss: Loss | None = None,
        metrics: Callable[[Array, Array], Any] | None = count_correct, compile: bool = False, seed: int = 0,
    ) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"ArraymlLearner trains an arrayml Module, got {type(model).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ArraymlLearner needs an arrayml optimizer (arrayml.optim.Optimizer), got "
                            f"{type(optimizer).__name__}")
        if loss is not None and not isinstance(loss, Loss):
            raise TypeError(f"ArraymlLearner needs an arrayml Loss (arrayml.Loss), got {type(loss).__name__}")
        if model.placement() is None:
            raise ValueError("the model has no parameters to train")
        self.model = model
        self.optimizer = optimizer
        self.seed = validate.seed(seed, "ArraymlLearner seed")
        # labels are checked once, up front, by `fit`: no per-step host sync for validation
        self.loss = SoftmaxCrossEntropy(validate=False) if loss is None else loss
        self.metrics = metrics
        self.compiled: CompiledStep | None = None
        if compile:
            self.compiled = self.runner = compile_step(model, self.loss, optimizer, metrics=metrics, seed=self.seed,
                                                       train_mode=True)
        else:
            self.runner = Runner(model, optimizer, Eager(model, self.loss, optimizer, metrics=metrics), seed=self.seed,
                                 train_mode=True, what="ArraymlLearner.train_step")

    count_correct = staticmethod(count_correct)
