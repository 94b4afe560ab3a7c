"""The library's distribution holds the library only: its wheel has `arrayml` and nothing else
(the application, examples/arrayml_app, is a distribution of its own), and the library's tests
import nothing from the application."""

from __future__ import annotations

import ast
from pathlib import Path

from scripts import ROOT
from wheels import build_wheel


def test_the_wheel_holds_only_the_arrayml_package(tmp_path):
    wheel = build_wheel(ROOT, ["pyproject.toml", "README.md", "arrayml"], tmp_path)
    assert wheel.top_level == ["arrayml"]
    assert wheel.roots == {"arrayml", "arrayml-0.1.0.dist-info"}, wheel.roots
    modules = {n for n in wheel.names if n.endswith(".py")}
    assert modules == {p.relative_to(ROOT).as_posix() for p in (ROOT / "arrayml").rglob("*.py")}
    assert "arrayml/py.typed" in wheel.names
    requires = [line for line in wheel.metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert requires and not any("matplotlib" in line for line in requires), requires  # only the application draws


def _imports_and_paths(path) -> tuple[set[str], set[str]]:
    """The top-level modules a file imports, and the string constants in its code (docstrings
    left out) that lead to the application's scripts: "examples" (a path built from it) or a
    script under examples/."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    names, paths = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if node.value == "examples" or (node.value.startswith("examples/") and (node.value.endswith(".py")
                                                                                      or "/experiments" in node.value)):
                paths.add(node.value)
    return names, paths


def test_the_library_tests_import_nothing_from_the_application():
    """Neither by import nor by running one of its scripts (examples/train.py, the experiments)."""
    files = sorted(p for p in (ROOT / "tests").glob("*.py") if p.name != Path(__file__).name)  # (this one names them)
    assert len(files) > 10
    for path in files:
        names, paths = _imports_and_paths(path)
        assert "arrayml_app" not in names, path.name
        assert not paths, (path.name, paths)


def test_the_class_a_layer_author_subclasses_stays_short_and_the_app_has_no_god_module():
    """Module is read in one sitting (at most 150 lines, docstrings included); the application's
    run and answers stay split by job."""
    root = ROOT
    tree = ast.parse((root / "arrayml" / "modules" / "base.py").read_text())
    module = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Module")
    assert module.end_lineno - module.lineno + 1 <= 150
    assert len((root / "examples" / "arrayml_app" / "run.py").read_text().splitlines()) <= 250
    assert len((root / "examples" / "experiments" / "answers.py").read_text().splitlines()) <= 350
