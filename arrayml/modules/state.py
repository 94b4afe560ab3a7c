"""A module tree's state: its parameters and buffers together by dotted name (what a checkpoint
saves), loaded back with every difference named, and moved to another backend, device or dtype.
`Module` hands these on as ``state()``, ``load_state()`` and ``to()``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import backend
from ..backend import Array
from .tree import (
    N,
    Node,
    buffer_slots,
    clear_gradients,
    named_modules,
    parameter_slots,
    parameters,
    placement,
)


def state(module: Node) -> dict[str, Array]:
    """Parameters and buffers by dotted name: everything needed to rebuild the model's outputs
    (what a checkpoint saves).

    Returns:
        A new dict from each dotted name (``"0.weight"``, ``"1.running_mean"``) to its array.
    """
    out = parameters(module)
    out.update({name: owner.buffers[key] for name, owner, key in buffer_slots(module)})
    return out


def load_state(module: Node, state: Mapping[str, Array]) -> None:
    """Set parameters and buffers from a dict like `state` returns.

    The names, shapes and dtypes must match this model exactly; arrays are converted to the
    namespace and device this model lives on. Nothing is reshaped or cast silently, and nothing
    is changed on error. Gradients and the forward cache are dropped.

    Args:
        state: the arrays by dotted name, of any supported backend or device.

    Raises:
        TypeError: `state` is not a mapping.
        ValueError: names are missing or unexpected, or values are not arrays or have another
            shape or dtype (every difference is named).
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"load_state expects a dict of arrays by name (what state() returns), got {type(state).__name__}")
    slots = {name: (owner.params, key) for name, owner, key in parameter_slots(module)}
    slots.update({name: (owner.buffers, key) for name, owner, key in buffer_slots(module)})
    problems = _differences(slots, state)
    if problems:
        raise ValueError("state does not match this model: " + "; ".join(problems))
    for name, (table, key) in slots.items():
        mine = table[key]
        xp, dev = backend.get_namespace_and_device(mine)
        table[key] = backend.convert(state[name], xp, dev, mine.dtype)
    _forget_the_last_step(module)


def _differences(slots: dict[str, tuple[dict[str, Array], str]], state: Mapping[str, Any]) -> list[str]:
    """Every way `state` does not fit the arrays of `slots`: names missing or unexpected, values
    that are not arrays, other shapes or dtypes."""
    missing, extra = sorted(set(slots) - set(state)), sorted(set(state) - set(slots))
    problems = [f"missing {missing}"] if missing else []
    if extra:
        problems.append(f"unexpected {extra}")
    for name in sorted(set(slots) & set(state)):
        table, key = slots[name]
        mine, theirs = table[key], state[name]
        try:  # an array arrayml can use (not a list, not a tensor that requires grad)
            backend.get_namespace(theirs, names=("the value",), what=name)
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
            continue
        if tuple(theirs.shape) != tuple(mine.shape):
            problems.append(f"{name}: shape {tuple(theirs.shape)} where the model has {tuple(mine.shape)}")
        elif backend.dtype_name(theirs.dtype) != backend.dtype_name(mine.dtype):
            problems.append(f"{name}: dtype {backend.dtype_name(theirs.dtype)} where the model has "
                            f"{backend.dtype_name(mine.dtype)}")
    return problems


def move(module: N, xp: Any = None, device: Any = None, dtype: Any = None) -> N:
    """Move every parameter and buffer to another namespace, device or floating dtype. Drops
    gradients and the forward cache.

    Args:
        xp: the namespace or a backend name (``"torch"``); None keeps the current one.
        device: the device (None: the namespace's default, or the current one when `xp` is None).
        dtype: a floating dtype or its name; None keeps each array's current dtype.

    Returns:
        The module itself.
    """
    current = placement(module)
    if xp is None and current is not None:
        xp = current.xp
        device = current.device if device is None else device
    where = backend.placement(xp, device, "float32" if dtype is None else dtype)
    for _, owner in named_modules(module):
        for table in (owner.params, owner.buffers):
            for key, value in table.items():
                target = where.dtype if dtype is not None else getattr(where.xp, backend.dtype_name(value.dtype))
                table[key] = backend.convert(value, where.xp, where.device, target)
    _forget_the_last_step(module)
    return module


def _forget_the_last_step(module: Node) -> None:
    """Drop gradients and saved activations: they belong to arrays the model no longer holds."""
    module.clear_cache()
    clear_gradients(module)
