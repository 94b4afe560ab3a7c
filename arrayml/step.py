"""The training step, written once: forward, loss, backward, update.

    opt_state, loss, extra = train_step(model, loss_fn, optimizer, opt_state, x, y, lr)

Every way arrayml trains is this function:

- eagerly (`arrayml.training.ArraymlLearner`), on the live model;
- compiled (`arrayml.compile.compile_step`), traced by ``jax.jit`` or ``torch.compile`` as a
  pure function of (parameters, buffers, optimizer state, batch, rate), run on a `Module.clone`
  that holds the traced arrays, so the live model never does;
- data-parallel (`arrayml.distributed.DataParallelLearner`), with a `GradientReducer` that
  all-reduces the gradients between backward and the update, each layer's as soon as the
  model's backward has computed it (the gradient hook, `Module.set_gradient_hook`, which every
  container honours).

The runner around it (`arrayml.runner`) owns what lives between steps: the step number, the
step's random key and the optimizer's state.

It reassigns the model's parameters (and, through forward, its buffers) and fills its ``grads``;
the optimizer's state goes in and comes out, as in optax. A step that draws random numbers
(dropout) takes the step's random `key` as an input too, like the rate: each caller derives it
from its seed and the step number (`arrayml.backend.random_key`, `fold_in`; data-parallel
processes fold in their rank), so masks are reproducible, and a compiled step takes it as a
traced argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from . import backend
from .backend import Array, Namespace
from .modules.base import Loss, Module
from .optim.base import Optimizer, State


class GradientReducer(Protocol):
    """What data-parallel training adds to a step (`arrayml.distributed.GradientAllReduce`)."""

    #: The factor this process's loss gradient is scaled by (None: 1).
    loss_scale: float | None

    def begin(self, loss: Array, extra: Any) -> None:
        """Called after the forward pass, with this process's loss and metrics.

        Args:
            loss: this process's batch loss, a 0-D device array.
            extra: this process's metrics (``metrics(logits, y)``), or None.
        """

    def on_layer(self, name: str, layer: Module) -> None:
        """Called as each child of the model has its gradients (the model's gradient hook).

        Args:
            name: the child's name in the model (the prefix of its parameters' names).
            layer: the child, whose ``gradients()`` are now this step's.
        """

    def finish(self, grads: dict[str, Array]) -> tuple[dict[str, Array], Array, Any]:
        """The gradients, loss and metrics of the whole global batch.

        Args:
            grads: this process's gradients, by parameter name (``model.gradients()``).

        Returns:
            ``(grads, loss, extra)``: the gradients, the loss and the metrics over every
            process's batch, the same on every process.
        """


def train_step(
    model: Module, loss_fn: Loss, optimizer: Optimizer, opt_state: State, x: Array, y: Array, lr: Any, *,
    key: Any = None, metrics: Callable[[Array, Array], Any] | None = None, reducer: GradientReducer | None = None,
) -> tuple[State, Array, Any]:
    """One step on the batch (x, y) at rate `lr`: forward, loss, backward, update.

    The model's parameters are reassigned (not written in place) and its ``grads`` hold the
    step's gradients afterwards; its buffers (batch statistics) are those of the forward pass.

    Args:
        model: the model to train, in the mode it has (the caller switches it to training).
        loss_fn: the loss of the model's outputs and `y` (`arrayml.SoftmaxCrossEntropy`, ...).
        optimizer: computes the new parameters from the gradients (`Optimizer.update`).
        opt_state: the optimizer's state before the step (``optimizer.init(params)`` at first).
        x: the batch's inputs, where the model lives.
        y: the batch's targets (class indices, or values for a regression loss).
        lr: the learning rate, a float or (compiled) a traced 0-D array; checked by the caller.
        key: this step's random key (`step_key`), from which every layer that draws (dropout)
            gets its own (`Module.set_random_key`); None leaves such layers to their own
            streams.
        metrics: ``metrics(logits, y)``, what the step counts besides the loss
            (`arrayml.learners.count_correct`), or None.
        reducer: data-parallel training's gradient all-reduce (`GradientReducer`), or None in
            one process.

    Returns:
        ``(opt_state, loss, extra)``: the optimizer's new state, the batch's mean loss (a 0-D
        device array, not read back) and ``metrics(logits, y)`` (None without metrics); with a
        reducer, the loss and metrics of the global batch.

    Raises:
        ValueError: the batch does not fit the model or the loss (the layers' and the loss's
            own checks), or the optimizer's state does not fit the parameters.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> from arrayml.step import train_step
        >>> model, opt = am.Linear(3, 2, rng=0), am.SGD(lr=0.1)
        >>> x, y = np.ones((4, 3), dtype=np.float32), np.array([0, 1, 1, 0])
        >>> state, loss, extra = train_step(model, am.SoftmaxCrossEntropy(), opt, opt.init(model.parameters()),
        ...                                 x, y, 0.1)
        >>> loss.shape, extra is None
        ((), True)
    """
    if key is not None:
        model.set_random_key(key)
        try:
            logits = model.forward(x)
        finally:
            model.set_random_key(None)  # the key was this step's; a later forward draws anew
    else:
        logits = model.forward(x)
    loss = loss_fn.forward(logits, y)
    extra = metrics(logits, y) if metrics is not None else None
    if reducer is None:
        model.backward(loss_fn.backward(), input_grad=False)  # dL/d(input) is never used
    else:
        reducer.begin(loss, extra)
        model.set_gradient_hook(reducer.on_layer)
        try:
            model.backward(loss_fn.backward(reducer.loss_scale), input_grad=False)
        finally:
            model.set_gradient_hook(None)
    grads = model.gradients()
    if reducer is not None:
        grads, loss, extra = reducer.finish(grads)
    params, opt_state = optimizer.update(grads, opt_state, model.parameters(), lr)
    model.set_parameters(params)
    return opt_state, loss, extra


def step_key(seed: int, step: int, *, xp: Namespace, device: Any, rank: int | None = None) -> Any:
    """The random key of training step `step` (0, 1, ...) of a run seeded with `seed`: the
    seed's key folded with the process's `rank` (data-parallel training: every process draws its
    own masks) and then with the step, on namespace `xp`'s `device` (`arrayml.backend.random`).
    The same (seed, rank, step), the same key: a resumed run draws what it would have drawn.

    Args:
        seed: the run's seed, a non-negative integer.
        step: the step's number, a non-negative integer.
        xp, device: where the model lives (the key is made there: a JAX key on JAX).
        rank: the process's rank in data-parallel training, or None in one process.

    Returns:
        The key: a ``jax.random.PRNGKey`` on JAX, an `arrayml.backend.HostKey` otherwise.

    Raises:
        ValueError: `seed` is not a non-negative integer.
    """
    key = backend.random_key(seed, xp=xp, device=device)
    if rank is not None:
        key = backend.fold_in(key, rank)
    return backend.fold_in(key, step)
