"""Sessions: `nox -s tests` (CPU: numpy, torch CPU, array-api-strict), `nox -s tests_gpu`
(adds cupy and torch CUDA on a GPU machine), `nox -s lint`, `nox -s bench`, `nox -s experiments`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

# The CPU build of PyTorch, pinned: an unpinned `torch` pulls a multi-GB CUDA build.
TORCH_CPU = "torch==2.13.0"


@nox.session
def tests(session: nox.Session) -> None:
    """The full CPU suite."""
    session.install(TORCH_CPU)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def tests_gpu(session: nox.Session) -> None:
    """The suite with cupy and torch CUDA (run on a machine with an NVIDIA GPU and CUDA 12)."""
    session.install("torch")  # the CUDA build from PyPI
    session.install("-e", ".[test,cupy]")
    session.run("python", "-c", "import torch, cupy; assert torch.cuda.is_available(); print(cupy.cuda.runtime.getDeviceCount(), 'CUDA device(s)')")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "arrayml", "tests", "examples", "benchmarks", "noxfile.py")
