"""A model's architecture as plain data: what a checkpoint records so that a model can be rebuilt
without the code that built it, and compared with another.

``model.config()`` is a JSON-able dict: the module's type and its constructor's arguments
(``Module.arguments``), containers with their children's configs. `build` turns it back into a
module (new parameters, which a checkpoint's arrays then replace); `differences` names what two
configs disagree on. Types are looked up by name in the registry of every `Module` subclass
defined so far (arrayml's own by their class name, others by ``module.QualName``), which each
subclass joins when it is defined (`register`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

#: Every Module subclass by its config name (`config_type`).
_REGISTRY: dict[str, type] = {}

#: Constructor arguments that say where or how a module is made, not what it is: a config
#: leaves them out (the dtype is recorded beside it; a synchronisation function is a process's).
PLACEMENT_ARGUMENTS = ("xp", "device", "dtype", "rng", "sync", "batch_norm_sync")


def config_type(cls: type) -> str:
    """The name a config records for module class `cls`: the class name for arrayml's modules,
    ``module.QualName`` for others (so that two classes of one name cannot be confused)."""
    if cls.__module__.startswith("arrayml.modules"):
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: type) -> None:
    """Make module class `cls` known to `build` by its `config_type`."""
    _REGISTRY[config_type(cls)] = cls


def registered_module(name: str) -> Any:
    """The Module subclass whose config type is `name` (a `ValueError` naming the known ones)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown module type {name!r} in the architecture; known: {', '.join(sorted(_REGISTRY))} "
                         "(a layer of your own must be imported before its checkpoint is loaded)")
    return _REGISTRY[name]


def no_arguments(module: Any) -> dict[str, Any]:
    """The arguments of a module whose constructor takes none that make it what it is (the
    default ``Module.arguments``); a constructor that takes some must say so by overriding it."""
    taken = [p for p in inspect.signature(type(module).__init__).parameters if p not in ("self", *PLACEMENT_ARGUMENTS)]
    if taken:
        raise NotImplementedError(
            f"{type(module).__name__}.arguments() must return its constructor's arguments ({', '.join(taken)}) "
            "for its architecture to be recorded"
        )
    return {}


def config(module: Any) -> dict[str, Any]:
    """`module`'s architecture as plain data: ``{"type": ..., **module.arguments()}``."""
    return {"type": config_type(type(module)), **module.arguments()}


def from_config(cls: Any, config: Mapping[str, Any], **placement: Any) -> Any:
    """A new `cls` from `config` (see `config`); `placement` (xp, device, dtype) is passed to a
    constructor that takes it."""
    accepted = inspect.signature(cls.__init__).parameters
    args = {k: v for k, v in config.items() if k != "type"}
    return cls(**args, **{k: v for k, v in placement.items() if k in accepted})


def build(config: Mapping[str, Any], *, xp: Any = None, device: Any = None, dtype: Any = None) -> Any:
    """A new module with the architecture `config` (made by ``Module.config``), its parameters
    on `xp`, `device` and `dtype` (defaults: NumPy, CPU, float32), initialised afresh."""
    if not isinstance(config, Mapping) or "type" not in config:
        raise TypeError(f"an architecture is a dict with a 'type' entry (what Module.config() returns), got {config!r}")
    cls = registered_module(config["type"])
    return cls.from_config(config, xp=xp, device=device, dtype=dtype)


def differences(mine: Any, theirs: Any, *, path: str = "", names: tuple[str, str] = ("the model", "the checkpoint"),
                ) -> list[str]:
    """Every place where two architectures differ, as ``"path: X in <names[0]>, Y in <names[1]>"``."""
    where = path or "the model"
    if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
        if mine.get("type") != theirs.get("type"):
            return [f"{where}: {mine.get('type')} in {names[0]}, {theirs.get('type')} in {names[1]}"]
        out = []
        for key in sorted(set(mine) | set(theirs)):
            sub = f"{path}.{key}" if path else key
            if key not in mine or key not in theirs:
                out.append(f"{sub}: {'absent' if key not in mine else repr(mine[key])} in {names[0]}, "
                           f"{'absent' if key not in theirs else repr(theirs[key])} in {names[1]}")
            else:
                out += differences(mine[key], theirs[key], path=sub, names=names)
        return out
    if isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs) and any(
            isinstance(m, Mapping) for m in mine):
        return [d for i, (m, t) in enumerate(zip(mine, theirs)) for d in differences(m, t, path=f"{path}[{i}]", names=names)]
    if mine != theirs:
        return [f"{where}: {mine!r} in {names[0]}, {theirs!r} in {names[1]}"]
    return []
