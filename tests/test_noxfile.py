"""noxfile.py: the torch that the CPU sessions install comes from $ARRAYML_TORCH_REQUIREMENT
(so that a machine can ask for PyTorch's CPU-only wheels), defaulting to today's pin; the
sessions that run the application install it, and `nox -s tests` runs both suites."""

from __future__ import annotations

import sys
import types

import pytest

from scripts import ROOT, load_script


@pytest.fixture
def noxfile(monkeypatch):
    """noxfile.py loaded with a stand-in `nox` (nox itself is not a test dependency)."""
    fake = types.ModuleType("nox")
    fake.options = types.SimpleNamespace()
    fake.session = lambda f=None, **kw: f if f is not None else (lambda g: g)
    fake.Session = object
    monkeypatch.setitem(sys.modules, "nox", fake)
    return load_script(ROOT / "noxfile.py")


class RecordingSession:
    posargs: list[str] = []

    def __init__(self):
        self.installs = []

    def install(self, *args):
        self.installs.append(list(args))

    def run(self, *args):
        pass


def test_tests_session_installs_the_pinned_torch_by_default(noxfile, monkeypatch):
    monkeypatch.delenv("ARRAYML_TORCH_REQUIREMENT", raising=False)
    session = RecordingSession()
    noxfile.tests(session)
    assert session.installs[0] == ["torch==2.13.0"]


def test_torch_requirement_comes_from_the_environment_with_pip_arguments(noxfile, monkeypatch):
    monkeypatch.setenv("ARRAYML_TORCH_REQUIREMENT", "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu")
    for name in ("tests", "bench", "experiments"):
        session = RecordingSession()
        getattr(noxfile, name)(session)
        assert session.installs[0] == ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"], name


def test_the_sessions_that_run_the_application_install_it_and_tests_runs_both_suites(noxfile):
    for name in ("tests", "tests_gpu", "bench", "experiments"):
        session = RecordingSession()
        getattr(noxfile, name)(session)
        args = [a for call in session.installs for a in call]
        assert any(args[i:i + 2] == ["-e", "examples/arrayml_app"] for i in range(len(args))), (name, session.installs)
        assert any(a == "." or a.startswith(".[") for a in args), name  # and the library, editable, beside it
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'testpaths = ["tests", "examples/tests"]' in pyproject  # `pytest` in the tests session collects both


def test_tests_session_installs_the_onnx_extra_so_ci_runs_the_ndonnx_rows(noxfile, monkeypatch):
    monkeypatch.delenv("ARRAYML_TORCH_REQUIREMENT", raising=False)
    session = RecordingSession()
    noxfile.tests(session)
    extras = [a for call in session.installs for a in call if a.startswith(".[")]
    assert len(extras) == 1 and "onnx" in extras[0][2:-1].split(","), session.installs
