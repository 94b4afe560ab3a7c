"""Functions over a module tree: its modules, parameters and buffers by dotted name, modes, random
keys, a structural copy. `Module` hands these on as its methods (``model.parameters()`` is
``parameters(model)``), so a layer author never reads them to write a layer.

Names are dotted paths through ``children()``: ``"0.weight"`` is the ``weight`` of child ``"0"``.
Nothing is written in place: setting a parameter reassigns its owner's dict entry.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from .. import backend
from ..backend import Array


class Node(Protocol):
    """What these functions need of a module (an arrayml `Module`)."""

    params: dict[str, Array]
    grads: dict[str, Array]
    buffers: dict[str, Array]
    training: bool
    draws_random: bool
    random_key: Any
    _cache: Any

    def children(self) -> Sequence[tuple[str, Any]]: ...

    def extra_repr(self) -> str: ...

    def clear_cache(self) -> None: ...


N = TypeVar("N", bound=Node)


def named_modules(module: N, prefix: str = "") -> Iterator[tuple[str, N]]:
    """This module and every descendant, depth first, with dotted names.

    Args:
        prefix: the name given to this module (its descendants' names start with it).

    Returns:
        An iterator of ``(name, module)`` pairs, this module first (named `prefix`).
    """
    found: list[tuple[str, N]] = []
    _walk(module, prefix, found)
    return iter(found)


def _walk(module: Any, prefix: str, found: list) -> None:
    """Append `module` and its descendants to `found`: a list built by plain recursion, since the
    optimizer walks the tree on every step and nested generators cost a frame per level per item."""
    found.append((prefix, module))
    for name, child in module.children():
        _walk(child, f"{prefix}.{name}" if prefix else name, found)


def parameter_slots(module: Node) -> Iterator[tuple[str, Any, str]]:
    """Where every parameter lives, in the order of `parameters`.

    Returns:
        An iterator of ``(full_name, owner, key)``: ``owner.params[key]`` is the array named
        ``full_name``.
    """
    found: list[tuple[str, Node]] = []
    _walk(module, "", found)
    return iter([((f"{prefix}.{key}" if prefix else key), owner, key) for prefix, owner in found for key in owner.params])


def buffer_slots(module: Node) -> Iterator[tuple[str, Any, str]]:
    """Where every buffer lives: like `parameter_slots`, for the non-learned state (running statistics).

    Returns:
        An iterator of ``(full_name, owner, key)``: ``owner.buffers[key]`` is the array.
    """
    return iter([((f"{prefix}.{key}" if prefix else key), owner, key)
                 for prefix, owner in named_modules(module) for key in owner.buffers])


def parameters(module: Node) -> dict[str, Array]:
    """Every learnable array, by dotted name (``"0.weight"``, ``"2.gamma"``...).

    Returns:
        A new dict from each dotted name to its array (the arrays themselves, not copies).
    """
    return {name: owner.params[key] for name, owner, key in parameter_slots(module)}


def gradients(module: Node) -> dict[str, Array]:
    """The gradients of the last ``backward``, by the same names as `parameters`.

    Returns:
        A new dict from each parameter's dotted name to its gradient.

    Raises:
        RuntimeError: a parameter has no gradient (``backward`` was not called since the gradients
            were last cleared).
    """
    out = {}
    for name, owner, key in parameter_slots(module):
        if key not in owner.grads:
            raise RuntimeError(f"no gradient for parameter {name!r}: call backward() first")
        out[name] = owner.grads[key]
    return out


def named_buffers(module: Node) -> dict[str, Array]:
    """Every buffer (running statistics), by dotted name.

    Returns:
        A new dict from each dotted name to its array.
    """
    return {name: owner.buffers[key] for name, owner, key in buffer_slots(module)}


def set_parameters(module: Node, params: Mapping[str, Array]) -> None:
    """Reassign every parameter from `params`, as the optimizer's update does: no checks, no
    conversion, nothing written in place. For arrays from elsewhere, ``load_state`` checks and
    converts.

    Args:
        params: the new arrays, by the names of `parameters` (every one of them).
    """
    for name, owner, key in parameter_slots(module):
        owner.params[key] = params[name]


def set_buffers(module: Node, buffers: Mapping[str, Array]) -> None:
    """Reassign every buffer from `buffers`, unchecked (as `set_parameters` does for parameters).

    Args:
        buffers: the new arrays, by the names of `named_buffers` (every one of them).
    """
    for name, owner, key in buffer_slots(module):
        owner.buffers[key] = buffers[name]


def clear_gradients(module: Node) -> None:
    """Forget every gradient of the tree."""
    for _, owner in named_modules(module):
        owner.grads = {}


def num_parameters(module: Node) -> int:
    """The number of learnable scalars (``Linear(20, 40)`` has 840).

    Returns:
        The sum of the sizes of every parameter.
    """
    return sum(math.prod(p.shape) for p in parameters(module).values())


def placement(module: Node) -> backend.Placement | None:
    """Namespace, device and dtype of the module's parameters.

    Returns:
        A `arrayml.backend.Placement` read from the first parameter, or None if the module has none.
    """
    for p in parameters(module).values():
        xp, dev = backend.get_namespace_and_device(p)
        return backend.Placement(xp=xp, device=dev, dtype=p.dtype)
    return None


def train(module: N, mode: bool = True) -> N:
    """Every module of the tree in training mode (batch statistics in batch norm, dropout on), or
    in evaluation mode with ``mode=False``.

    Args:
        mode: True for training mode, False for evaluation mode.

    Returns:
        The module itself (so that ``model.train()`` chains).
    """
    for _, owner in named_modules(module):
        owner.training = mode
    return module


def eval(module: N) -> N:  # noqa: A001 - Module.eval, as torch names it
    """Evaluation mode (running statistics in batch norm, no dropout): ``self.train(False)``.

    Returns:
        The module itself.
    """
    return train(module, False)


def clear_cache(module: Node) -> None:
    """Drop the activations saved by ``forward``, of this module and every child."""
    for _, owner in named_modules(module):
        owner._cache = None


def set_gradient_hook(module: Any, hook: Callable[[str, Any], None] | None) -> None:
    """Have ``hook(name, child)`` called as each child's backward finishes (``child_backward``).

    Args:
        hook: the function to call, or None for no hook.
    """
    module.gradient_hook = hook


def render(module: Node) -> str:
    """``repr(module)``: the class and its `extra_repr` settings, children indented below it."""
    kids = module.children()
    if not kids:
        return f"{type(module).__name__}({module.extra_repr()})"
    inner = "\n".join(f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in kids)
    return f"{type(module).__name__}(\n{inner}\n)"


def set_random_key(module: Node, key: Any) -> None:
    """Give every layer of the tree that draws random numbers (`Dropout`) its key.

    Each such layer gets `key` folded with its index among those layers, so that no two draw the
    same numbers. A training step calls this with the step's key before forward; a key set and
    left fixes the masks.

    Args:
        key: a key from `arrayml.backend.random_key`, or None to give each layer back its own stream.
    """
    index = 0
    for _, owner in named_modules(module):
        if owner.draws_random:
            owner.random_key = None if key is None else backend.fold_in(key, index)
            index += 1


def draws_random_numbers(module: Node) -> bool:
    """Whether any layer of the tree draws random numbers in its current mode.

    Returns:
        True if some layer with ``draws_random`` is in training mode.
    """
    return any(owner.draws_random and owner.training for _, owner in named_modules(module))


def clone(module: N) -> N:
    """A structural copy: the same classes and settings, dicts of its own holding the same arrays
    (nothing is copied, since nothing is written in place), no gradients, no forward cache. What
    `arrayml.compile` traces, so that the live model never holds a traced array.

    Returns:
        The new module tree.
    """
    new = copy.copy(module)
    new.params, new.grads, new.buffers = dict(module.params), {}, dict(module.buffers)
    new._cache = None  # type: ignore[attr-defined]
    children = module.children()
    if children:
        new._set_children([clone(child) for _, child in children])  # type: ignore[attr-defined]
    return new
