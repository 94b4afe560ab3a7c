"""Which names of arrayml are public, and which object each one names: the plan of the API
reference that apipages.py writes, in a module of its own that needs no Sphinx, so the library's
tests (tests/test_docstrings.py) walk exactly the names the reference documents."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

PACKAGE = "arrayml"


@dataclass
class Entry:
    """One public object: its home (the full name of its entry) and its other public names."""

    obj: Any
    home: str
    aliases: set[str] = field(default_factory=set)


@dataclass
class Plan:
    """What the reference holds: each page's names, each object's entry, the problems found."""

    pages: dict[str, list[str]]            # module -> its public names, in the order it lists them
    entries: dict[str, Entry]              # full name of a home entry -> the entry
    alias_of: dict[str, str]               # every public full name -> the full name of its entry
    problems: list[str]


def public_names(module: ModuleType) -> list[str]:
    """The module's ``__all__``; without one, the classes and functions it defines, not _private."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", None) == module.__name__]


def public_modules() -> list[str]:
    """`arrayml`, every public module and subpackage directly under it, and every module of the
    package that one of their ``__all__`` lists, in that order (then alphabetical)."""
    package = importlib.import_module(PACKAGE)
    found = [PACKAGE] + sorted(info.name for info in pkgutil.iter_modules(package.__path__, PACKAGE + ".")
                               if not info.name.rpartition(".")[2].startswith("_"))
    queue = list(found)
    while queue:
        module = importlib.import_module(queue.pop(0))
        for name in public_names(module):
            obj = getattr(module, name, None)
            if inspect.ismodule(obj) and obj.__name__.startswith(PACKAGE + ".") and obj.__name__ not in found:
                found.append(obj.__name__)
                queue.append(obj.__name__)
    return [PACKAGE] + sorted(found[1:])


def kind(obj: Any) -> str:
    """What the reference writes for the object: "module", "class", "exception", "function" or "data"."""
    if inspect.ismodule(obj):
        return "module"
    if not (getattr(obj, "__module__", None) or "").startswith(PACKAGE):
        return "data"  # another library's object under a name of ours (a type alias: Array = Any)
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    return "data"


def plan() -> Plan:
    """Every public name of every public module, grouped by the object it names."""
    pages: dict[str, list[str]] = {}
    listed: dict[tuple[int, str], list[tuple[str, str]]] = {}   # object -> [(module, name)]
    objects: dict[tuple[int, str], Any] = {}
    problems: list[str] = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if not (module.__doc__ or "").strip():
            problems.append(f"module {module_name} has no docstring")
        names = []
        for name in public_names(module):
            if not hasattr(module, name):
                problems.append(f"{module_name}.__all__ lists {name!r}, which the module does not have")
                continue
            obj = getattr(module, name)
            names.append(name)
            # classes, functions and modules are one object under every name; a constant is one per name
            key = (id(obj), "" if kind(obj) != "data" else name)
            objects[key] = obj
            listed.setdefault(key, []).append((module_name, name))
        pages[module_name] = names

    entries: dict[str, Entry] = {}
    alias_of: dict[str, str] = {}
    for key, where in listed.items():
        obj = objects[key]
        if kind(obj) == "module":
            home = obj.__name__
        else:
            origin = getattr(obj, "__module__", None) or ""
            inside = [(m, n) for m, n in where if origin == m or origin.startswith(m + ".")]
            module_name, name = max(inside or where, key=lambda mn: (len(mn[0]), mn[0]))
            home = f"{module_name}.{name}"
            if kind(obj) != "data" and not (vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__):
                problems.append(f"{home} has no docstring")
        entry = entries.setdefault(home, Entry(obj, home))
        for module_name, name in where:
            full = f"{module_name}.{name}"
            alias_of[full] = home
            if full != home:
                entry.aliases.add(full)
    return Plan(pages, entries, alias_of, problems)
