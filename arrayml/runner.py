"""The runner: one training step after another, around the one step (`arrayml.step.train_step`).

A `Runner` owns what lives between steps, so that it is written once:

- the step number (``next_step``; a caller such as `arrayml.training.fit` may give each step's
  number instead, so that a resumed run draws what it would have drawn);
- each step's random key, from the runner's seed, the step number and, in data-parallel
  training, the process's rank (`arrayml.step.step_key`): dropout masks are reproducible, eager
  or compiled;
- the optimizer's state: fitted to the model before each step (moved along after ``model.to``;
  checked once when it was set by hand or loaded, `Optimizer.state_for`) and kept after it
  (`Optimizer.set_state`), and read or loaded whole (`optimizer_state`, `load_optimizer_state`);
- the rate: checked on the host, naming where it came from, before any step runs, since a
  compiled or exported step could not check a traced one; and, for a learner's step, training
  mode, switched on by the step itself for a model left in evaluation mode (``train_mode=True``).

How one step runs is the strategy it is given, a `Strategy`:

- `Eager`: `train_step` on the live model; given a reducer, data-parallel
  (`arrayml.distributed.DataParallelLearner`: the gradients' all-reduce between backward and the
  update);
- `arrayml.compile.Traced`: the same step as a pure function, on a clone, compiled by
  ``jax.jit``/``torch.compile`` (`arrayml.compile.CompiledStep`) or traced into one ONNX graph
  that onnxruntime runs (`arrayml.export.OnnxTrainStep`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from . import backend, validate
from .backend import Array
from .modules.base import Loss, Module
from .optim import Optimizer, flatten_state, unflatten_state
from .optim.base import State
from .step import GradientReducer, step_key, train_step


class Strategy(Protocol):
    """How a runner runs one step."""

    @property
    def donates(self) -> bool:
        """Whether a step deletes the arrays the model held before it (JAX's donation): the
        runner then copies them before handing out references."""

    def run(self, opt_state: State, x: Array, y: Array, rate: Any, key: Any) -> tuple[State, Array, Any]:
        """One step on (x, y) at the checked `rate` with random `key`, from `opt_state`. The
        model's parameters and buffers are its new ones afterwards.

        Args:
            opt_state: the optimizer's state before the step, fitted to the model.
            x, y: the batch, where the model lives.
            rate: the learning rate, already checked by the runner.
            key: the step's random key, or None (the model draws nothing).

        Returns:
            ``(opt_state, loss, extra)``: the new optimizer state, the loss (a 0-D device array)
            and the metrics (None without).
        """


class Eager(Strategy):
    """`arrayml.step.train_step` on the live model, as it is; with a `reducer`, one process's
    part of a data-parallel step.

    Args:
        model, loss, optimizer: what each step trains, with which loss and optimizer.
        metrics: ``metrics(logits, y)``, what each step counts besides the loss, or None.
        reducer: data-parallel training's gradient all-reduce, or None in one process.
    """

    donates = False

    def __init__(self, model: Module, loss: Loss, optimizer: Optimizer, *,
                 metrics: Callable[[Array, Array], Any] | None = None, reducer: GradientReducer | None = None) -> None:
        self.model, self.loss, self.optimizer, self.metrics, self.reducer = model, loss, optimizer, metrics, reducer

    def run(self, opt_state: State, x: Array, y: Array, rate: Any, key: Any) -> tuple[State, Array, Any]:
        # `Strategy.run`'s contract (and docstring): one `arrayml.step.train_step` on the live model
        return train_step(self.model, self.loss, self.optimizer, opt_state, x, y, rate, key=key, metrics=self.metrics,
                          reducer=self.reducer)


class Runner:
    """Steps of `model` and `optimizer` run by `strategy`, with the bookkeeping between them.

    Args:
        model, optimizer: what is trained (the strategy was built with the same).
        strategy: how each step runs (`Eager`, `arrayml.compile.Traced`).
        seed: the random draws of step n come from ``step_key(seed, n)``.
        rank: the process's rank in data-parallel training (folded into every key), or None.
        train_mode: switch a model in evaluation mode (``model.eval()``, or as a checkpoint
            leaves it) to training mode, the whole tree, before a step: a learner's step does,
            so that it never trains without dropout and batch statistics unasked; a layer put
            in evaluation mode on its own in a model that trains (a frozen batch norm) stays
            so. False runs the model in the modes it has.
        what: the step's name in error messages (``ArraymlLearner.train_step``).

    Raises:
        TypeError: `seed` is not an integer, or `train_mode` not a bool.
        ValueError: `seed` is negative.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> from arrayml.runner import Eager, Runner
        >>> model, opt, loss = am.Linear(3, 2, rng=0), am.SGD(lr=0.1), am.SoftmaxCrossEntropy()
        >>> runner = Runner(model, opt, Eager(model, loss, opt), seed=0)
        >>> x, y = np.ones((4, 3), dtype=np.float32), np.array([0, 1, 1, 0])
        >>> loss_value, extra = runner.step(x, y)
        >>> runner.next_step, loss_value.shape
        (1, ())
    """

    def __init__(self, model: Module, optimizer: Optimizer, strategy: Strategy, *, seed: int = 0,
                 rank: int | None = None, train_mode: bool = False, what: str = "the training step") -> None:
        self.model, self.optimizer, self.strategy = model, optimizer, strategy
        self.what = what
        self.seed = validate.seed(seed, f"{what} seed")
        self.rank = rank
        self.train_mode = validate.boolean(train_mode, f"{what} train_mode")
        #: The number of the next step when a step is given none.
        self.next_step = 0

    def step(self, x: Array, y: Array, lr: Any = None, *, step: int | None = None,
             key: Any = None) -> tuple[Array, Any]:
        """One step on (x, y) at rate `lr`. A step that raises is not counted.

        Args:
            x, y: the batch, where the model lives.
            lr: the learning rate (None: the optimizer's ``lr``), checked here on the host.
            step: the step's number (default ``next_step``), from which its random key derives.
            key: the step's random key, instead of the one `step` derives.

        Returns:
            ``(loss, extra)``: the loss and the metrics (None without), as device arrays, not
            read back.

        Raises:
            ValueError: the rate is not a finite number >= 0, or the batch, the model and the
                optimizer's state do not fit (the step's own checks).
        """
        rate = self.optimizer.rate(lr, self.what)  # on the host, before anything runs or is traced
        number = self.next_step if step is None else step
        if self.train_mode and not self.model.training:
            self.model.train()  # left in evaluation mode (model.eval(), a checkpoint): the whole model trains
        opt_state = self.optimizer.state_for(self.model.parameters())
        if not self.model.draws_random_numbers():
            key = None
        elif key is None:
            key = self.step_key(number)
        new_state, loss, extra = self.strategy.run(opt_state, x, y, rate, key)
        self.optimizer.set_state(new_state)
        self.next_step = number + 1
        return loss, extra

    def step_key(self, step: int, rank: int | None = None) -> Any:
        """The random key of step `step` (of this runner's process, or of `rank`), where the model
        lives now.

        Args:
            step: the step's number.
            rank: the process whose key it is (default: this runner's rank).

        Returns:
            The key (`arrayml.step.step_key`).

        Raises:
            ValueError: the model has no parameters (nowhere to make the key).
        """
        where = self.model.placement()
        if where is None:
            raise ValueError(f"{self.what}: the model has no parameters to train")
        return step_key(self.seed, step, xp=where.xp, device=where.device, rank=self.rank if rank is None else rank)

    # -- what lives between steps, whole: for checkpoints and the best model ----------------
    def snapshot(self) -> dict[str, Array]:
        """The model's parameters and buffers (``model.state()``): references, since nothing is
        written in place, or copies where the next step would delete them (donation).

        Returns:
            The state, by name (what `restore` takes).
        """
        return self._kept(self.model.state())

    def restore(self, state: dict[str, Any]) -> None:
        """Put a `snapshot` (or any state of this model) back into the model, checked.

        Args:
            state: the parameters and buffers by name (`snapshot`'s, ``model.state()``'s).

        Raises:
            ValueError: a name is missing or unknown, or an array's shape does not fit
                (`Module.load_state`).
        """
        self.model.load_state(state)

    def optimizer_state(self) -> dict[str, Array]:
        """The optimizer's state, flat (``"momentum/0.weight"``: what a checkpoint holds).

        Returns:
            The state's arrays by flat name (copies where the next step would delete them).
        """
        return self._kept(flatten_state(self.optimizer.state_for(self.model.parameters())))

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Set the optimizer's state from `optimizer_state`'s flat form, checked against the
        optimizer and the model's parameters (`Optimizer.fitted_state`) and moved to where they
        live.

        Args:
            state: the flat state (`optimizer_state`'s form, a checkpoint's).

        Raises:
            ValueError: the state does not fit the optimizer or the parameters (a missing or
                unknown entry, a shape, values no step can have made).
            TypeError: an entry is not an array or a dict of arrays.
        """
        self.optimizer.set_state(self.optimizer.fitted_state(unflatten_state(state), self.model.parameters()))

    def _kept(self, arrays: dict[str, Array]) -> dict[str, Array]:
        if not self.strategy.donates:
            return arrays
        return {k: backend.get_namespace(v).asarray(v, copy=True) for k, v in arrays.items()}
