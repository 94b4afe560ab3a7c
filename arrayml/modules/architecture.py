"""A model's architecture as plain data: what a checkpoint records so that a model can be rebuilt
without the code that built it, and compared with another.

``model.config()`` is a JSON-able dict: the module's type and its constructor's arguments
(``Module.arguments``), containers with their children's configs. `build` turns it back into a
module (new parameters, which a checkpoint's arrays then replace); `differences` names what two
configs disagree on. Types are looked up by name among every `Module` subclass defined so far
(arrayml's own by their class name, others by ``module.QualName``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Module, registered_module


def build(config: Mapping[str, Any], *, xp: Any = None, device: Any = None, dtype: Any = None) -> Module:
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
