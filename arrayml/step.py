"""The training step, written once: forward, loss, backward, update.

    opt_state, loss, extra = train_step(model, loss_fn, optimizer, opt_state, x, y, lr)

Every way arrayml trains is this function:

- eagerly (`arrayml.training.ArraymlLearner`), on the live model;
- compiled (`arrayml.compile.compile_step`), traced by ``jax.jit`` or ``torch.compile`` as a
  pure function of (parameters, buffers, optimizer state, batch, rate), run on a `Module.clone`
  that holds the traced arrays, so the live model never does;
- data-parallel (`arrayml.distributed.DataParallelLearner`), with a `GradientReducer` that
  all-reduces the gradients between backward and the update, each layer's as soon as
  ``Sequential.backward`` has computed it.

It reassigns the model's parameters (and, through forward, its buffers) and fills its ``grads``;
the optimizer's state goes in and comes out, as in optax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .backend import Array
from .modules.base import Loss, Module
from .modules.containers import Sequential
from .optim.base import Optimizer, State


class GradientReducer(Protocol):
    """What data-parallel training adds to a step (`arrayml.distributed.GradientAllReduce`)."""

    #: The factor this process's loss gradient is scaled by (None: 1).
    loss_scale: float | None

    def begin(self, loss: Array, extra: Any) -> None:
        """Called after the forward pass, with this process's loss and metrics."""

    def on_layer(self, name: str, layer: Module) -> None:
        """Called as each top-level layer of a `Sequential` has its gradients."""

    def finish(self, grads: dict[str, Array]) -> tuple[dict[str, Array], Array, Any]:
        """The gradients, loss and metrics of the whole global batch."""


def train_step(
    model: Module, loss_fn: Loss, optimizer: Optimizer, opt_state: State, x: Array, y: Array, lr: Any, *,
    metrics: Callable[[Array, Array], Any] | None = None, reducer: GradientReducer | None = None,
) -> tuple[State, Array, Any]:
    """One step on the batch (x, y) at rate `lr`: returns the new optimizer state, the batch's
    mean loss (a 0-D device array, not read back) and ``metrics(logits, y)`` (None without)."""
    logits = model.forward(x)
    loss = loss_fn.forward(logits, y)
    extra = metrics(logits, y) if metrics is not None else None
    if reducer is None:
        model.backward(loss_fn.backward(), input_grad=False)  # dL/d(input) is never used
    else:
        reducer.begin(loss, extra)
        dlogits = loss_fn.backward(reducer.loss_scale)
        if isinstance(model, Sequential):
            model.backward(dlogits, input_grad=False, on_layer=reducer.on_layer)
        else:
            model.backward(dlogits, input_grad=False)
    grads = model.gradients()
    if reducer is not None:
        grads, loss, extra = reducer.finish(grads)
    params, opt_state = optimizer.update(grads, opt_state, model.parameters(), lr)
    model.set_parameters(params)
    return opt_state, loss, extra
