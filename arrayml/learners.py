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

    def all_reduce_sum(self, arrays: Sequence[Array], *, what: str = ...) -> list[Array]:
        """The element-wise sums of `arrays` over every process of the group.

        Args:
            arrays: this process's arrays (the same shapes and dtypes on every process).
            what: what is summed, for error messages.

        Returns:
            The sums, one per array, the same on every process.
        """


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
        """One step on the batch (x, y) at learning rate `lr`.

        Args:
            x, y: the batch's inputs and targets, where the model lives.
            lr: the learning rate of this step.
            step: the step's number in the run (0, 1, ...: what its random draws, dropout
                masks, derive from); `fit` passes ``epoch · steps_per_epoch + i``, so a resumed
                run draws what it would have drawn; None: the learner counts its calls.

        Returns:
            ``(loss, correct)``: the batch loss and the number of correct predictions, both as
            0-D device arrays (not read back); None for the count when the learner counts none
            (a regression loss).
        """

    def logits(self, x: Array) -> Array:
        """Outputs in evaluation mode, without touching any training state (each module's mode
        as it was afterwards).

        Args:
            x: the inputs, where the model lives.

        Returns:
            The model's outputs for `x`.
        """

    def snapshot(self) -> dict[str, Any]:
        """The model's parameters and buffers (references are fine: nothing is written in place).

        Returns:
            The state by name, what `restore` takes.
        """

    def restore(self, state: dict[str, Any]) -> None:
        """Put a `snapshot` back into the model.

        Args:
            state: what `snapshot` returned.
        """

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state, flat (``"momentum/0.weight"``: what a checkpoint holds).

        Returns:
            The state's arrays by flat name.
        """

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Set the optimizer's state from `optimizer_state`'s flat form.

        Args:
            state: the flat state (a checkpoint's).
        """


def count_correct(logits: Array, y: Array) -> Array:
    """The number of correct predictions, as a 0-D integer device array (not read back).

    Args:
        logits: the model's outputs, shape (n, classes).
        y: the class indices, shape (n,).

    Returns:
        How many rows' largest output is at their class index, a 0-D integer array.

    Example:
        >>> import numpy as np
        >>> from arrayml.learners import count_correct
        >>> int(count_correct(np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), np.array([0, 1, 1])))
        2
    """
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
        """The array namespace the model lives on."""
        return self.placement.xp

    @property
    def device(self) -> Any:
        """The device the model lives on."""
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
        """One step on the batch (x, y) at learning rate `lr`, through the runner
        (`arrayml.runner.Runner.step`).

        Args:
            x, y: the batch's inputs and targets, where the model lives.
            lr: the learning rate of this step (None: the optimizer's ``lr``).
            step: the step's number in the run, from which its random draws derive (None:
                `next_step`).

        Returns:
            ``(loss, metrics)``: the batch loss and the metrics (the number of correct
            predictions by default; None without metrics), as device arrays, not read back.

        Raises:
            ValueError: the rate is not a finite number >= 0, or the batch does not fit the
                model or the loss.
        """
        return self.runner.step(x, y, lr, step=step)

    def step_key(self, step: int, rank: int | None = None) -> Any:
        """The random key of step `step` (of process `rank` in data-parallel training), where the
        model lives.

        Args:
            step: the step's number.
            rank: the process whose key it is (default: this learner's).

        Returns:
            The key (`arrayml.step.step_key`).
        """
        return self.runner.step_key(step, rank)

    def logits(self, x: Array) -> Array:
        """Outputs in evaluation mode, without touching any training state (each module's mode
        as it was afterwards).

        Args:
            x: the inputs, where the model lives.

        Returns:
            The model's outputs for `x`.
        """
        return outputs(self.model, x)

    def predict(self, x: Array, *, batch_size: int = 1000) -> Array:
        """The predicted class of every row of `x`, in evaluation mode (`Module.predict`).

        Args:
            x: the inputs, where the model lives.
            batch_size: how many rows go through the model at a time.

        Returns:
            The class indices, shape (n,).
        """
        return self.model.predict(x, batch_size=batch_size)

    def predict_proba(self, x: Array, *, batch_size: int = 1000) -> Array:
        """The class probabilities of every row of `x`, in evaluation mode (`Module.predict_proba`).

        Args:
            x: the inputs, where the model lives.
            batch_size: how many rows go through the model at a time.

        Returns:
            The probabilities (a softmax of the outputs), shape (n, classes).
        """
        return self.model.predict_proba(x, batch_size=batch_size)

    def snapshot(self) -> dict[str, Any]:
        """The model's parameters and buffers: references (nothing is written in place), copies
        where the next compiled step would donate (and so delete) the arrays.

        Returns:
            The state by name, what `restore` takes.
        """
        return self.runner.snapshot()

    def restore(self, state: dict[str, Any]) -> None:
        """Put a `snapshot` (or any state of the model) back into the model, checked.

        Args:
            state: the parameters and buffers by name.

        Raises:
            ValueError: a name is missing or unknown, or an array's shape does not fit.
        """
        self.runner.restore(state)

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state, flat (``"momentum/0.weight"``: what a checkpoint holds); copies
        where the next compiled step would donate (and so delete) the arrays.

        Returns:
            The state's arrays by flat name.
        """
        return self.runner.optimizer_state()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Set the optimizer's state from `optimizer_state`'s flat form, checked against the
        optimizer and the model's parameters and moved to where they live.

        Args:
            state: the flat state (`optimizer_state`'s form, a checkpoint's).

        Raises:
            ValueError: the state does not fit the optimizer or the parameters.
            TypeError: an entry is not an array or a dict of arrays.
        """
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

    Args:
        model: the arrayml model to train (an `arrayml.Module` with parameters).
        optimizer: its optimizer (`arrayml.SGD`, `arrayml.Adam`, ...).
        loss: the loss (default: `arrayml.SoftmaxCrossEntropy` with ``validate=False``).
        metrics: ``metrics(logits, y)``, what each step counts besides the loss (default:
            `count_correct`); None for none.
        compile: run each step as one compiled function (JAX or PyTorch models only).
        seed: seeds the steps' random draws, a non-negative integer.

    Raises:
        TypeError: `model`, `optimizer` or `loss` is not an arrayml one, or `seed` is not an
            integer.
        ValueError: the model has no parameters, `seed` is negative, or ``compile=True`` on a
            backend without a tracing compiler.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> from arrayml.learners import ArraymlLearner
        >>> learner = ArraymlLearner(am.MLP(4, [8], 3, rng=0), am.SGD(lr=0.1))
        >>> x, y = np.ones((5, 4), dtype=np.float32), np.array([0, 1, 2, 1, 0])
        >>> loss, correct = learner.train_step(x, y, 0.1)
        >>> loss.shape, int(correct) <= 5, learner.next_step
        ((), True, 1)
        >>> learner.predict(x).shape, learner.predict_proba(x).shape
        ((5,), (5, 3))
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
