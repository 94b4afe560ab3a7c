"""The `Module` base class: plain-dict parameters and gradients, a forward cache, modes.

A module's learnable arrays live in ``module.params`` (a plain dict), the gradients that
``backward`` computes in ``module.grads`` (same keys, same shapes), and non-learned state such as
batch norm's running statistics in ``module.buffers``. Nothing is ever written in place: the
optimizer and ``backward`` reassign dict entries with new arrays, so a reference to an old array
is a snapshot that stays valid.

What a layer accepts, checked on every call by attribute comparisons only (no device read):
``forward`` a real floating array of the parameters' dtype, namespace and device; ``backward`` an
upstream gradient of the forward output's shape *and dtype*. Refused, naming the call and the
argument: None, lists, NumPy masked arrays, torch ``meta`` tensors, and torch tensors with
``requires_grad=True``. arrayml does its own backpropagation and never builds a torch autograd
graph (one would grow every step and pull the parameters and running statistics into it), so
such tensors are refused rather than silently detached: pass ``x.detach()``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..backend import Array
from . import architecture, tree
from . import predict as predictions
from . import state as states


class Module:
    """Base class of every layer: a layer writes ``forward`` and ``backward``; one with children
    also ``children`` and ``_set_children``; one whose constructor takes arguments also
    ``arguments``. The rest is written once over the tree of modules, in `arrayml.modules.tree`,
    `.state`, `.predict` and `.architecture`, and handed on by the attributes below."""

    #: Whether the layer draws random numbers in training mode (`Dropout`; keys: `set_random_key`).
    draws_random = False
    #: The key a random layer draws from next (None: its own stream); set by `set_random_key`.
    random_key: Any = None
    #: ``hook(name, child)``, called once a child's backward filled its gradients (`set_gradient_hook`).
    gradient_hook: Callable[[str, Module], None] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        architecture.register(cls)

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}
        self.training = True
        self._cache: Any = None

    # -- the two methods every layer writes -------------------------------------------------
    def forward(self, x: Array) -> Array:  # pragma: no cover - abstract
        """The layer's output for input `x`; saves what ``backward`` needs.

        Args:
            x: a floating array of the parameters' dtype, namespace and device, of the shape the
                layer's class description gives.

        Returns:
            The output array, in `x`'s namespace and on its device.

        Raises:
            TypeError, ValueError: `x` is of another namespace, dtype or device, or shape.
        """
        raise NotImplementedError

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:  # pragma: no cover - abstract
        """Fill ``self.grads`` from the upstream gradient `dy` and return dL/d(input).

        Args:
            dy: dL/d(output) of the last forward: its shape, dtype and namespace.
            input_grad: False skips the input gradient, which the first layer never needs (as
                autograd skips inputs that do not require grad).

        Returns:
            dL/d(input), shaped like the forward's input; None when ``input_grad=False``.

        Raises:
            RuntimeError: no forward came before, or ``clear_cache`` removed what it saved.
            TypeError, ValueError: `dy` is not of the forward output's namespace, dtype or shape.
        """
        raise NotImplementedError

    def __call__(self, x: Array) -> Array:
        """``self.forward(x)``.

        Args:
            x: the input (see `forward`).

        Returns:
            The layer's output.
        """
        return self.forward(x)

    # -- what a container writes: its children, and their backward through `child_backward` ---
    def children(self) -> list[tuple[str, Module]]:
        """The direct sub-modules, with their names. Containers override this.

        Returns:
            A list of ``(name, module)`` pairs (empty for a layer without children).
        """
        return []

    def _set_children(self, children: list[Module]) -> None:
        """Replace the direct sub-modules (in `children` order): containers implement it."""
        raise NotImplementedError(f"{type(self).__name__} has children but cannot replace them")

    def child_backward(self, name: str, child: Module, dy: Array, *, input_grad: bool = True) -> Array | None:
        """``child.backward(dy)``, then the gradient hook told that `child`'s gradients are ready.

        Args:
            name, child: the child, and its name among this module's `children`.
            dy, input_grad: as ``child.backward`` takes them.

        Returns:
            What ``child.backward`` returned.
        """
        dx = child.backward(dy, input_grad=input_grad)
        if self.gradient_hook is not None:
            self.gradient_hook(name, child)
        return dx

    set_gradient_hook = tree.set_gradient_hook

    # -- the forward cache ---------------------------------------------------------------------
    def _saved(self) -> Any:
        """What ``forward`` cached for ``backward``; a clear error if there is nothing."""
        cache = self._cache
        return cache if cache is not None else _saved(self)  # (_saved raises the error)

    clear_cache = tree.clear_cache

    # -- the tree: modules, parameters, buffers by dotted name (arrayml.modules.tree) ---------
    named_modules = tree.named_modules
    parameter_slots = tree.parameter_slots
    parameters = tree.parameters
    gradients = tree.gradients
    buffer_slots = tree.buffer_slots
    named_buffers = tree.named_buffers
    set_parameters = tree.set_parameters
    set_buffers = tree.set_buffers
    num_parameters = tree.num_parameters
    placement = tree.placement
    clone = tree.clone
    set_random_key = tree.set_random_key
    draws_random_numbers = tree.draws_random_numbers
    train = tree.train
    eval = tree.eval

    # -- state: what a checkpoint saves, loading it, moving it (arrayml.modules.state) --------
    state = states.state
    load_state = states.load_state
    to = states.move

    # -- predictions, always in evaluation mode (arrayml.modules.predict) ---------------------
    predict = predictions.predict
    predict_proba = predictions.predict_proba

    # -- architecture: what a checkpoint records (arrayml.modules.architecture) ---------------
    config_type: classmethod[Any, [], str] = classmethod(architecture.config_type)
    arguments = architecture.no_arguments  # a module whose constructor takes arguments overrides it
    config = architecture.config
    from_config = classmethod(architecture.from_config)

    def extra_repr(self) -> str:
        """The constructor's settings as ``repr`` shows them inside the parentheses.

        Returns:
            A string, empty for a module without settings.
        """
        return ""

    __repr__ = tree.render


def _saved(owner: Module | Loss) -> Any:
    if owner._cache is None:
        raise RuntimeError(
            f"{type(owner).__name__}.backward() called before forward(): there are no saved "
            "activations (or clear_cache() removed them)"
        )
    return owner._cache


class Loss:
    """Base class of the losses: ``forward(scores, targets)`` returns the scalar loss (a 0-D
    array) and caches what ``backward(dloss=None)`` needs to return dL/d(scores). A loss has no
    parameters; the chain rule continues from its ``backward`` into a `Module`'s."""

    def __init__(self) -> None:
        self._cache: Any = None

    def forward(self, x: Array, t: Array) -> Array:  # pragma: no cover - abstract
        """The scalar loss of scores `x` against targets `t`; saves what ``backward`` needs.

        Args:
            x: the model's outputs, shaped (n, outputs).
            t: the targets (class indices or one-hot rows for the classification losses, values for
                `SquaredError`).

        Returns:
            The loss, a 0-D array in `x`'s namespace and on its device.
        """
        raise NotImplementedError

    def backward(self, dloss: Array | float | None = None) -> Array:  # pragma: no cover - abstract
        """dL/d(scores) of the last forward.

        Args:
            dloss: the upstream gradient of the scalar loss (None: 1).

        Returns:
            An array shaped like the forward's scores.

        Raises:
            RuntimeError: no forward came before.
        """
        raise NotImplementedError

    def __call__(self, x: Array, t: Array) -> Array:
        """``self.forward(x, t)``.

        Args:
            x: the model's outputs.
            t: the targets.

        Returns:
            The scalar loss.
        """
        return self.forward(x, t)

    def _saved(self) -> Any:
        cache = self._cache
        return cache if cache is not None else _saved(self)  # (_saved raises the error)

    def clear_cache(self) -> None:
        """Drop what ``forward`` saved."""
        self._cache = None

    def clone(self) -> Loss:
        """The same loss with a forward cache of its own (see `Module.clone`).

        Returns:
            The new loss.
        """
        new = copy.copy(self)
        new._cache = None
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
