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

from .. import backend


class ArchitectureError(ValueError):
    """An architecture that cannot be built (hand-edited, truncated, of another version), with
    where: ``architecture.layers[3].features: missing: LayerNorm needs it``.

    `part` is the config (a dict) that is wrong and `field` its entry (or None): a container's
    ``from_config`` builds its children with `build`, and each enclosing `build` rewrites the
    path from its own config down to `part`."""

    def __init__(self, part: Any, field: str | None, problem: str, path: str = "") -> None:
        self.part, self.field, self.problem, self.path = part, field, problem, path
        where = "architecture" + path + (f".{field}" if field is not None else "")
        super().__init__(f"{where}: {problem}")


#: Every Module subclass by its config name (`config_type`).
_REGISTRY: dict[str, type] = {}

#: Constructor arguments that say where or how a module is made, not what it is: a config
#: leaves them out (the dtype is recorded beside it; a synchronisation function is a process's).
PLACEMENT_ARGUMENTS = ("xp", "device", "dtype", "rng", "sync", "batch_norm_sync")


def config_type(cls: type) -> str:
    """The name a config records for module class `cls` (``Module.config_type``).

    Returns:
        The class name for arrayml's modules, ``module.QualName`` for others (so that two
        classes of one name cannot be confused).
    """
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
    """The constructor's arguments that make this module what it is (JSON-able; not where it
    lives): ``Module.arguments``, which a module whose constructor takes such arguments overrides.

    Returns:
        A dict from argument name to value; this default: empty.

    Raises:
        NotImplementedError: the constructor takes arguments and ``arguments`` was not overridden.
    """
    taken = [p for p in inspect.signature(type(module).__init__).parameters if p not in ("self", *PLACEMENT_ARGUMENTS)]
    if taken:
        raise NotImplementedError(
            f"{type(module).__name__}.arguments() must return its constructor's arguments ({', '.join(taken)}) "
            "for its architecture to be recorded"
        )
    return {}


def config(module: Any) -> dict[str, Any]:
    """This module's architecture as plain data (``Module.config``); `build` makes a new one from it.

    Returns:
        ``{"type": ..., **module.arguments()}`` (containers add their children's configs).
    """
    return {"type": config_type(type(module)), **module.arguments()}


def from_config(cls: Any, config: Mapping[str, Any], **placement: Any) -> Any:
    """A new module of this class from `config` (``Module.from_config``).

    Args:
        config: an architecture as `config` writes it.
        **placement: xp, device and dtype, passed to a constructor that takes them.

    Returns:
        The new module, with fresh parameters.
    """
    accepted = inspect.signature(cls.__init__).parameters
    args = {k: v for k, v in config.items() if k != "type"}
    return cls(**args, **{k: v for k, v in placement.items() if k in accepted})


def build(config: Mapping[str, Any], *, xp: Any = None, device: Any = None, dtype: Any = None) -> Any:
    """A new module with the architecture `config` (made by ``Module.config``), its parameters
    on `xp`, `device` and `dtype` (defaults: NumPy, CPU, float32), initialised afresh.

    An architecture that cannot be built is an `ArchitectureError` (a `ValueError`) naming the
    entry by its path (``architecture.layers[3].features``): not a dict with a ``type``, an
    unknown type, an entry its module needs that is missing, one it does not take, or a value
    its constructor refuses (the constructor's own message). A `xp`, `device` or `dtype` that
    cannot be used is the usual error of `arrayml.backend.placement`, raised first."""
    backend.placement(xp, device, dtype)  # where the model goes is not the architecture's fault
    try:
        _check(config)
        cls = registered_module(config["type"])
        return cls.from_config(config, xp=xp, device=device, dtype=dtype)
    except ArchitectureError as exc:  # here, or in a container's build of a child: the path from here
        path = _path_to(config, exc.part)
        if path is None:
            raise
        raise ArchitectureError(exc.part, exc.field, exc.problem, path) from None
    except KeyError as exc:  # a container's from_config reading an entry that is not there
        field = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
        raise ArchitectureError(config, field, f"missing: {config['type']} needs it") from None
    except (TypeError, ValueError) as exc:
        name = config["type"]
        raise ArchitectureError(config, None, f"{name} cannot be built from it: "
                                f"{'' if isinstance(exc, ValueError) or name in str(exc) else 'TypeError: '}{exc}") from None


def _check(config: Any) -> None:
    """What can be said of `config` before anything is built: a dict with a registered ``type``
    (and for arrayml's own modules, or any whose ``from_config`` is `Module`'s: every entry its
    constructor needs, and none that it does not take); its entries that are architectures (a
    child, or a list of children) checked the same way."""
    if not isinstance(config, Mapping) or "type" not in config:
        raise ArchitectureError(config, None, "an architecture is a dict with a 'type' entry (what Module.config() "
                                f"returns), got {config!r}")
    if not isinstance(config["type"], str):
        raise ArchitectureError(config, "type", f"a module type is a name (str), got {type(config['type']).__name__} "
                                f"{config['type']!r}")
    try:
        cls = registered_module(config["type"])
    except ValueError as exc:
        raise ArchitectureError(config, "type", str(exc)) from None
    _check_arguments(cls, config)
    for key, value in config.items():
        if isinstance(value, Mapping):
            _check(value)
        elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                if not isinstance(item, Mapping):  # among architectures: a child that is not one
                    raise ArchitectureError(config, f"{key}[{i}]", "an architecture is a dict with a 'type' entry "
                                            f"(what Module.config() returns), got {item!r}")
                _check(item)


def _check_arguments(cls: Any, config: Mapping[str, Any]) -> None:
    """Entries of `config` against `cls`'s constructor, where they map one to one: arrayml's own
    modules, and any that keep `Module.from_config`; not a constructor of ``*args`` or
    ``**kwargs``."""
    from .base import Module  # (base imports this module: the registry)

    own = cls.__module__.startswith("arrayml.") or getattr(cls.from_config, "__func__", None) is getattr(
        Module.from_config, "__func__", None)
    params = [p for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"]
    if not own or any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return
    takes = [p.name for p in params if p.name not in PLACEMENT_ARGUMENTS]
    listed = ", ".join(takes) if takes else "no arguments"
    for key in config:
        if key != "type" and key not in takes:
            why = " (where the model lives is not part of its architecture)" if key in PLACEMENT_ARGUMENTS else ""
            raise ArchitectureError(config, key, f"{cls.__name__} takes no argument {key!r}{why} (it takes {listed})")
    for p in params:
        if p.name in takes and p.default is p.empty and p.name not in config:
            raise ArchitectureError(config, p.name, f"missing: {cls.__name__} needs it ({cls.__name__} takes {listed})")


def _path_to(config: Any, part: Any, path: str = "") -> str | None:
    """The path from `config` to the dict `part` inside it (``.layers[3]``), "" for `config`
    itself, None if it is not inside."""
    if config is part:
        return path
    if isinstance(config, Mapping):
        for key, value in config.items():
            found = _path_to(value, part, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found = _path_to(value, part, f"{path}[{i}]")
            if found is not None:
                return found
    return None


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
