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


SHARED_DATA = "../shared/data/cifar10"


@nox.session
def bench(session: nox.Session) -> None:
    """Both benchmarks; their JSON lands in results/bench/."""
    session.install(TORCH_CPU)
    session.install("-e", ".")
    session.run("python", "benchmarks/matmul_vs_loop.py")
    session.run("python", "benchmarks/train_throughput.py", *session.posargs)


@nox.session
def experiments(session: nox.Session) -> None:
    """Every experiment of docs/results.md, full length, then the report itself."""
    session.install(TORCH_CPU)
    session.install("-e", ".")
    session.run("python", "examples/experiments/run_all.py", "--data-dir", SHARED_DATA, *session.posargs)
