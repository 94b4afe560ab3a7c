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
        """Called after the forward pass, with this process's loss and metrics."""

    def on_layer(self, name: str, layer: Module) -> None:
        """Called as each child of the model has its gradients (the model's gradient hook)."""

    def finish(self, grads: dict[str, Array]) -> tuple[dict[str, Array], Array, Any]:
        """The gradients, loss and metrics of the whole global batch."""


def train_step(
    model: Module, loss_fn: Loss, optimizer: Optimizer, opt_state: State, x: Array, y: Array, lr: Any, *,
    key: Any = None, metrics: Callable[[Array, Array], Any] | None = None, reducer: GradientReducer | None = None,
) -> tuple[State, Array, Any]:
    """One step on the batch (x, y) at rate `lr`: returns the new optimizer state, the batch's
    mean loss (a 0-D device array, not read back) and ``metrics(logits, y)`` (None without).

    `key`: this step's random key, from which every layer that draws (dropout) gets its own
    (`Module.set_random_key`); None leaves such layers to their own streams."""
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
    The same (seed, rank, step), the same key: a resumed run draws what it would have drawn."""
    key = backend.random_key(seed, xp=xp, device=device)
    if rank is not None:
        key = backend.fold_in(key, rank)
    return backend.fold_in(key, step)
