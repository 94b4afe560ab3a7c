"""An optimizer's state: a plain dict whose entries are either a dict of arrays by parameter
name (a "slot": momentum buffers, Adam's moments) or one array (Adam's step count).

`fits` asks, by attribute comparisons only (it runs every step), whether a state belongs to the
parameters as they are; `fitted` checks a state from elsewhere (set by hand, read from a
checkpoint, on another device) against the optimizer and the parameters, reading its values back
once (`check_values`), and converts it to where the parameters live. `flatten_state` and
`unflatten_state` turn it into the flat ``"slot/parameter"`` names a checkpoint holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .. import backend
from ..backend import Array

#: An optimizer's state: slot name → {parameter name → array}, or entry name → array.
State = dict[str, Any]


def fitted(optimizer: Any, state: Mapping[str, Any], params: Mapping[str, Array]) -> State:
    """`state` (e.g. read from a checkpoint, as host arrays) checked against this optimizer
    and `params`, and converted to where they live: an empty state is a fresh one (`init`);
    otherwise every entry the optimizer keeps, and no other, for every parameter, of its
    shape, holding values that make sense (`check_state_values`). Anything else is a
    `ValueError` or `TypeError` naming the entry. Reads values back (once per state)."""
    name = type(optimizer).__name__
    if not isinstance(state, Mapping):
        raise TypeError(f"{name} state must be a dict (what init() returns), got {type(state).__name__}")
    fresh = optimizer.init(params)
    if not state:
        return fresh
    keeps = ", ".join(sorted(fresh)) or "nothing"
    unknown, missing = sorted(set(state) - set(fresh)), sorted(set(fresh) - set(state))
    if unknown:
        raise ValueError(
            f"{name} state has entries {unknown} that this optimizer does not keep (it keeps: {keeps}); "
            f"is it the state of another optimizer, or of {name} with other settings?"
        )
    if missing:
        raise ValueError(f"{name} state lacks the entries {missing} (it keeps: {keeps}); give a whole state, "
                         f"or none (optimizer.state = None) to start afresh")
    out: State = {}
    for key, default in fresh.items():
        given = state[key]
        if isinstance(default, dict):
            out[key] = _fitted_slot(f"{name} state {key}", given, params)
            continue
        backend.get_namespace(given, names=(f"{name} state {key!r}",))
        if tuple(given.shape) != tuple(default.shape):
            raise ValueError(f"{name} state {key!r} has shape {tuple(given.shape)} but must be a "
                             f"{len(default.shape)}-D array of shape {tuple(default.shape)}")
        xp, dev = backend.get_namespace_and_device(default)
        out[key] = backend.convert(given, xp, dev, default.dtype)
    optimizer.check_state_values(out)
    return out

def _fitted_slot(what: str, given: Any, params: Mapping[str, Array]) -> dict:
    if not isinstance(given, Mapping):
        raise TypeError(f"{what} must be a dict of arrays by parameter name, got {type(given).__name__}")
    unknown, missing = sorted(set(given) - set(params)), sorted(set(params) - set(given))
    if unknown:
        raise ValueError(f"{what} has entries for parameters this model lacks: {unknown}")
    if missing:
        raise ValueError(f"{what} has no entry for the parameters {missing}; give every parameter's, or no "
                         f"state at all (optimizer.state = None) to start afresh")
    slot = {}
    for pname, p in params.items():
        v = given[pname]
        backend.get_namespace(v, names=(f"{what}[{pname!r}]",))
        if tuple(v.shape) != tuple(p.shape):
            raise ValueError(
                f"{what}[{pname!r}] has shape {tuple(v.shape)} but its parameter has shape {tuple(p.shape)}; "
                f"it belongs to another model (a checkpoint of another architecture?): reset the "
                f"optimizer's state with optimizer.state = None"
            )
        xp, dev = backend.get_namespace_and_device(p)
        slot[pname] = backend.convert(v, xp, dev, p.dtype)
    return slot

def check_values(optimizer: Any, state: State) -> None:
    """Refuse values no step of this optimizer can have made: a step count (`step_counts`)
    that is not a whole number from 0 up to what its dtype counts exactly, a second moment
    (`second_moments`) below 0 or NaN. Reads the values back: called once per state set or
    loaded, never per step."""
    name = type(optimizer).__name__
    for key in optimizer.step_counts:
        count = state[key]
        limit = int(2 / backend.get_namespace(count).finfo(count.dtype).eps)  # 2**53 in float64
        value = float(backend.to_numpy(count))
        if not (math.isfinite(value) and 0 <= value <= limit and value == math.floor(value)):
            raise ValueError(f"{name} state {key!r} must be a whole number of steps from 0 to {limit}, got "
                             f"{value:g}")
    for key in optimizer.second_moments:
        for pname, v in state.get(key, {}).items():
            xp = backend.get_namespace(v)
            if not bool(xp.all(v >= 0)):
                raise ValueError(f"{name} state {key}[{pname!r}] holds negative or NaN values: a second moment "
                                 f"is >= 0 (is it another optimizer's, or edited?)")


def fits(state: Mapping[str, Any], params: Mapping[str, Array]) -> bool:
    """Whether every slot of `state` holds, for every parameter, an array of its type, shape,
    dtype and device, and every single entry (a step count) an array of the parameters' type
    and device (attribute comparisons only: this runs every eager step)."""
    first = next(iter(params.values()), None)
    for entry in state.values():
        if not isinstance(entry, dict):
            if first is not None and (type(entry) is not type(first)
                                      or getattr(entry, "device", None) != getattr(first, "device", None)):
                return False
            continue
        if len(entry) != len(params):
            return False
        for pname, p in params.items():
            v = entry.get(pname)
            if v is None or type(v) is not type(p) or v.shape != p.shape or v.dtype != p.dtype \
                    or getattr(v, "device", None) != getattr(p, "device", None):
                return False
    return True


def flatten_state(state: Mapping[str, Any] | None) -> dict[str, Array]:
    """An optimizer state as flat pairs, for a checkpoint; `unflatten_state` undoes it.

    Args:
        state: the state (None: empty).

    Returns:
        A dict from ``"slot/parameter"`` (a slot's array) or ``"entry"`` (a single array) to array.

    Example:
        >>> from arrayml.optim import flatten_state, unflatten_state
        >>> flat = flatten_state({"step": 3, "momentum": {"0.weight": 1.0}})
        >>> flat
        {'step': 3, 'momentum/0.weight': 1.0}
        >>> unflatten_state(flat)
        {'step': 3, 'momentum': {'0.weight': 1.0}}
    """
    flat: dict[str, Array] = {}
    for key, entry in (state or {}).items():
        if isinstance(entry, Mapping):
            flat.update({f"{key}/{pname}": v for pname, v in entry.items()})
        else:
            flat[key] = entry
    return flat


def unflatten_state(flat: Mapping[str, Array]) -> State:
    """The nested state that `flatten_state` flattened.

    Args:
        flat: the ``"slot/parameter"`` and ``"entry"`` pairs.

    Returns:
        The state: a dict of slots (dicts by parameter name) and single entries.
    """
    state: State = {}
    for key, value in flat.items():
        slot, sep, pname = key.partition("/")
        if sep:
            if slot not in state:
                state[slot] = {}
            state[slot][pname] = value
        else:
            state[key] = value
    return state
