"""One docstring style, Google's, for every name the API reference documents, and the examples in
those docstrings run.

Which names: exactly those docs/_ext/apipages.py puts in the reference (its plan, from the
``__all__`` of `arrayml` and of its public modules, in docs/_ext/apinames.py): every public
function, every public class, and each class's own public methods and properties (those the
class itself defines, as the reference's ``:members:`` shows them) and its ``__call__``.

The rules, for each of them:

- It has a docstring. A method without one inherits its base's (the reference shows that one,
  as autodoc does), and is then held to it: the base's ``Args:`` must name its parameters.
- Arguments: every parameter other than ``self``/``cls`` is an entry of an ``Args:`` section
  (``name:``, ``name (type):``, or several names sharing a description: ``xp, device, dtype:``),
  ``*args``/``**kwargs`` included (as ``*args:``/``**kwargs:`` or by their bare names). A
  class's constructor arguments are documented in the class docstring, which is what the
  reference shows (not ``__init__``'s); a data class may list its fields under ``Attributes:``.
- Returns: a function or method whose return annotation is not ``None`` (or, unannotated, whose
  own body returns a value) has a ``Returns:`` section; a generator a ``Yields:`` (or
  ``Returns:``) section. Properties are exempt (their docstring says what they are), and so are
  dunder methods other than ``__call__``.
- Raises: every exception class that the function's own body raises by name (``raise
  ValueError(...)``) is an entry of a ``Raises:`` section; a ``raise error`` of a variable needs
  the section. Not counted: the raises of nested functions and classes (theirs), a bare
  ``raise`` (a re-raise), and ``NotImplementedError`` (an abstract method: the subclass writes
  the body). A class answers for its ``__init__``'s raises. Exceptions raised by the helpers a
  function calls are not found by this check; the docstrings name them where a caller meets
  them (the validation errors of a constructor, say).

Names the rules leave out are in ALLOWED, each with its reason. The modules in NOT_YET are not
held to the rules yet; each must still break them somewhere, so the list can only shrink. The
examples (``>>>`` lines) of the docstrings of EXAMPLE_MODULES run as doctests, so a wrong
example fails here.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scripts import ROOT

sys.path.insert(0, str(ROOT / "docs" / "_ext"))
import apinames  # noqa: E402  (docs/_ext is not a package)

# Exceptions to the rules: full name -> why it is exempt.
ALLOWED: dict[str, str] = {}

# The public modules whose names are not yet held to the rules (the entries whose home is one of
# them); each must still break them, so the list only shrinks.
NOT_YET: set[str] = set()

_HEADER = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")
_NAME = r"\*{0,2}[A-Za-z_][A-Za-z0-9_.]*"
_ENTRY = re.compile(rf"^({_NAME}(?:\s*,\s*{_NAME})*)\s*(\([^)]*\))?\s*:")
_DUNDER = re.compile(r"^__\w+__$")


def sections(doc: str) -> dict[str, list[str]]:
    """The Google-style sections of a docstring: header ("Args", "Returns", ...) -> the names its
    entries start with (a ``name:`` or ``name (type):`` at the first indentation of the body)."""
    lines = inspect.cleandoc(doc).splitlines()
    found: dict[str, list[str]] = {}
    i = 0
    while i < len(lines):
        header = _HEADER.match(lines[i])
        if not header:
            i += 1
            continue
        base = len(header.group(1))
        entries: list[str] = []
        body_indent = None
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > base):
            line = lines[i]
            if line.strip():
                indent = len(line) - len(line.lstrip())
                body_indent = indent if body_indent is None else body_indent
                entry = _ENTRY.match(line.strip())
                if indent == body_indent and entry:
                    entries += [name.strip() for name in entry.group(1).split(",")]
            i += 1
        found.setdefault(header.group(2), []).extend(entries)
    return found


def _own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's own body: not those of the functions, lambdas and classes it defines."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(node))


def _syntax(function: Callable) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source)
    node = tree.body[0]
    return node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None


def raised(function: Callable) -> tuple[set[str], bool]:
    """The exception class names the function's own body raises by name, and whether it also
    raises something else (a variable)."""
    node = _syntax(function)
    names: set[str] = set()
    other = False
    if node is None:
        return names, other
    for child in _own_nodes(node):
        if isinstance(child, ast.Raise) and child.exc is not None:
            exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
            name = exc.id if isinstance(exc, ast.Name) else exc.attr if isinstance(exc, ast.Attribute) else None
            if name == "NotImplementedError":
                continue  # an abstract method: the subclass writes it
            if name and name[0].isupper():
                names.add(name)
            else:
                other = True
    return names, other


def returns_value(function: Callable) -> str | None:
    """"Returns" if the function returns something other than None, "Yields" for a generator,
    None otherwise (by the annotation; unannotated, by its own ``return`` statements)."""
    if inspect.isgeneratorfunction(function):
        return "Yields"
    annotation = inspect.signature(function, eval_str=False).return_annotation
    if annotation is not inspect.Signature.empty:
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
        return None if text in ("None", "NoReturn", "Never", "NoneType") else "Returns"
    node = _syntax(function)
    if node is None:
        return None
    for child in _own_nodes(node):
        if isinstance(child, ast.Return) and child.value is not None and not (
                isinstance(child.value, ast.Constant) and child.value.value is None):
            return "Returns"
    return None


def parameters(function: Callable, skip_first: bool) -> list[str]:
    """The parameters a docstring must name (``*args`` as ``args``: either spelling is accepted)."""
    names = list(inspect.signature(function, eval_str=False).parameters)
    return names[1:] if skip_first and names else names


def _documented(names: list[str]) -> set[str]:
    return {n.lstrip("*") for n in names}


def problems_of(name: str, doc: str | None, function: Callable | None, *, skip_first: bool,
                need_returns: bool = True, fields: bool = False) -> list[str]:
    """What `name`'s docstring misses of the rules (the module docstring says them)."""
    if not (doc or "").strip():
        return [f"{name}: no docstring"]
    found = sections(doc or "")
    out = []
    if function is None:
        return out
    args = _documented(found.get("Args", []) + found.get("Arguments", [])
                       + (found.get("Attributes", []) if fields else []))
    missing = [p for p in parameters(function, skip_first) if p not in args]
    if missing:
        out.append(f"{name}: Args: does not name {', '.join(missing)}")
    kind = returns_value(function) if need_returns else None
    if kind == "Returns" and "Returns" not in found and "Return" not in found:
        out.append(f"{name}: no Returns: section")
    if kind == "Yields" and not {"Yields", "Yield", "Returns"} & set(found):
        out.append(f"{name}: no Yields: section")
    names, other = raised(function)
    listed = set(found.get("Raises", []))
    unlisted = sorted(n for n in names if n not in listed and n.rpartition(".")[2] not in listed)
    if unlisted:
        out.append(f"{name}: Raises: does not name {', '.join(unlisted)}")
    if other and "Raises" not in found:
        out.append(f"{name}: raises, and has no Raises: section")
    return out


def _in_library(function: Any) -> bool:
    return (getattr(function, "__module__", None) or "").startswith(apinames.PACKAGE)


def class_members(cls: type) -> Iterator[tuple[str, Any]]:
    """The members the reference documents on the class's entry: its own public methods and
    properties, and ``__call__``."""
    for member, value in vars(cls).items():
        if member.startswith("_") and member != "__call__":
            continue
        if isinstance(value, staticmethod | classmethod | property) or inspect.isfunction(value):
            yield member, value


def problems_of_class(home: str, cls: type) -> list[str]:
    out = []
    init = cls.__init__
    fields = hasattr(cls, "__dataclass_fields__") or hasattr(cls, "_fields")
    constructor = init if inspect.isfunction(init) and _in_library(init) else None
    if constructor is None and hasattr(cls, "_fields"):  # a named tuple: its __new__ takes the fields
        constructor = cls.__new__
    out += problems_of(home, vars(cls).get("__doc__"), constructor, skip_first=True, need_returns=False,
                       fields=fields)
    for member, value in class_members(cls):
        full = f"{home}.{member}"
        if isinstance(value, property):
            out += problems_of(full, inspect.getdoc(value), None, skip_first=True)
            continue
        function = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        doc = inspect.getdoc(getattr(cls, member))
        exempt = _DUNDER.match(member) and member != "__call__"
        out += problems_of(full, doc, function, skip_first=not isinstance(value, staticmethod),
                           need_returns=not exempt)
    return out


def all_problems(modules: set[str] | None = None) -> dict[str, list[str]]:
    """Every documented object of the reference (whose home is in `modules`, if given) -> what
    its docstrings miss (empty lists left out)."""
    out: dict[str, list[str]] = {}
    for home, entry in apinames.plan().entries.items():
        if modules is not None and home.rpartition(".")[0] not in modules:
            continue
        kind = apinames.kind(entry.obj)
        if kind in ("class", "exception"):
            found = problems_of_class(home, entry.obj)
        elif kind == "function":
            function = inspect.unwrap(entry.obj)
            found = problems_of(home, inspect.getdoc(entry.obj), function, skip_first=False)
        else:
            continue
        found = [p for p in found if p.partition(":")[0] not in ALLOWED]
        if found:
            out[home] = found
    return out


def test_the_checker_reads_google_sections_and_raises():
    doc = '''Do it.

    Args:
        x (int): the first,
            on two lines.
        *rest: more.

    Returns:
        The sum.

    Raises:
        ValueError: when x is negative.
    '''
    assert sections(doc) == {"Args": ["x", "*rest"], "Returns": [], "Raises": ["ValueError"]}

    def f(x: int, *rest: int) -> int:
        if x < 0:
            raise ValueError("negative")

        def inner():
            raise KeyError("not f's own")
        return x
    assert raised(f) == ({"ValueError"}, False)
    assert problems_of("f", doc, f, skip_first=False) == []
    bare = problems_of("f", "Do it.", f, skip_first=False)
    assert bare == ["f: Args: does not name x, rest", "f: no Returns: section", "f: Raises: does not name ValueError"]


def test_every_documented_name_follows_the_google_style():
    problems = {home: found for home, found in all_problems().items() if home.rpartition(".")[0] not in NOT_YET}
    report = "\n".join(p for found in problems.values() for p in found)
    assert not problems, f"{sum(map(len, problems.values()))} docstring problems:\n{report}"


def test_the_allow_list_names_only_documented_objects_that_need_it():
    homes = set(apinames.plan().entries)
    for name in ALLOWED:
        assert name in homes or name.rpartition(".")[0] in homes, f"{name} is no documented name"
    assert NOT_YET <= set(apinames.public_modules())
    done = sorted(m for m in NOT_YET if not all_problems({m}))
    assert not done, f"{done} now follow the rules: take them off NOT_YET"


# The modules whose docstring examples (>>> lines) run here.
EXAMPLE_MODULES: list[str] = [
    "arrayml.modules.activations", "arrayml.modules.cnn", "arrayml.modules.containers", "arrayml.modules.conv",
    "arrayml.modules.linear", "arrayml.modules.softmax", "arrayml.optim.adam", "arrayml.optim.base",
    "arrayml.optim.sgd", "arrayml.optim.state", "arrayml.schedules", "arrayml.metrics", "arrayml.training",
    "arrayml.checkpoint", "arrayml.export.inference", "arrayml.data", "arrayml.datasets.cifar10",
    "arrayml.sklearn._classifier", "arrayml.sklearn._regressor", "arrayml.learners", "arrayml.runner",
    "arrayml.step", "arrayml.compile", "arrayml.distributed.learner",
    "arrayml.gradcheck", "arrayml.fileio", "arrayml.validate",
    "arrayml.compat", "arrayml.backend", "arrayml.backend.namespaces", "arrayml.backend.devices",
    "arrayml.backend.random", "arrayml.backend.transfer", "arrayml.backend.kernels", "arrayml.backend.graph",
]


def _examples() -> Iterator[tuple[str, doctest.DocTest]]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    for module_name in EXAMPLE_MODULES:
        module = importlib.import_module(module_name)
        for test in finder.find(module, module_name):
            if test.examples:
                yield test.name, test


def test_there_are_examples():
    names = [name for name, _ in _examples()]
    assert len(names) >= len(EXAMPLE_MODULES), names


@pytest.mark.parametrize("test", [t for _, t in _examples()], ids=[n for n, _ in _examples()])
def test_docstring_examples_run(test):
    if test.name.startswith("arrayml.export.") and importlib.util.find_spec("ndonnx") is None:
        pytest.skip("the ONNX export examples need the [onnx] extra (ndonnx, onnxruntime)")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{test.name}: {result.failed} of {result.attempted} examples failed"
