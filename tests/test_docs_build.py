"""The documentation site's build is pinned and offline: `nox -s docs` installs pinned packages
(docs/requirements.txt, MathJax by its lock file), builds with every warning an error, and runs the
browser tests by name; the site loads MathJax from itself. (The build and the browser tests run
under `nox -s docs`, not here: they need Sphinx and Chromium.)"""

from __future__ import annotations

import json
import re

from scripts import ROOT, load_script

DOCS = ROOT / "docs"


def test_every_docs_requirement_is_pinned():
    lines = [line.split("#")[0].strip() for line in (DOCS / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line]
    assert {re.split(r"[=<>!~]", r)[0].lower() for r in requirements} >= {"sphinx", "pydata-sphinx-theme",
                                                                         "myst-parser", "playwright", "pytest"}
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", r) for r in requirements), requirements


def test_mathjax_comes_from_its_locked_npm_package_and_is_served_by_the_site():
    package = json.loads((DOCS / "package.json").read_text())
    lock = json.loads((DOCS / "package-lock.json").read_text())
    version = package["dependencies"]["mathjax"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "an exact version, not a range"
    assert lock["packages"]["node_modules/mathjax"]["version"] == version
    assert lock["packages"]["node_modules/mathjax"]["integrity"].startswith("sha512-")
    conf = (DOCS / "conf.py").read_text()
    path = re.search(r'^mathjax_path = "([^"]+)"', conf, flags=re.MULTILINE).group(1)
    assert "://" not in path and not path.startswith("//"), "MathJax from another host"


class _Session:
    posargs: list[str] = []

    def __init__(self):
        self.installs, self.runs = [], []

    def install(self, *args):
        self.installs.append(list(args))

    def run(self, *args, **kwargs):
        self.runs.append((list(args), kwargs))


def test_the_docs_session_builds_with_warnings_as_errors_then_runs_the_browser_tests_by_name(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("nox")
    fake.options = types.SimpleNamespace()
    fake.session = lambda f=None, **kw: f if f is not None else (lambda g: g)
    fake.Session = object
    monkeypatch.setitem(sys.modules, "nox", fake)
    noxfile = load_script(ROOT / "noxfile.py")
    session = _Session()
    noxfile.docs(session)
    assert ["-r", "docs/requirements.txt"] in session.installs
    commands = [args for args, _ in session.runs]
    npm = next(c for c in commands if c[0] == "npm")
    assert "ci" in npm  # the lock file, not a fresh resolution
    build = next(c for c in commands if c[0] == "sphinx-build")
    assert "-W" in build and "--keep-going" in build and build[-2:] == ["docs", noxfile.DOCS_HTML]
    tests = next(c for c in commands if c[0] == "pytest")
    assert "docs/tests" in tests and ("-v" in tests or "-rA" in tests)
    assert commands.index(build) < commands.index(tests)
