"""Sessions: `nox -s tests` (CPU: numpy, torch CPU, JAX CPU, array-api-strict), `nox -s tests_gpu`
(adds cupy, torch CUDA and JAX on the GPU, on a GPU machine), `nox -s lint`, `nox -s bench`, `nox -s experiments`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

# The CPU build of PyTorch, pinned: an unpinned `torch` pulls a multi-GB CUDA build.
TORCH_CPU = "torch==2.13.0"
# JAX 0.10.x, the newest that installs on Python 3.11 (later releases need 3.12): the CPU session
# takes the `jax` extra of pyproject.toml (jax[cpu], same pin), the GPU session the CUDA 12 wheels.
JAX_CUDA = "jax[cuda12]>=0.10,<0.11"


@nox.session
def tests(session: nox.Session) -> None:
    """The full CPU suite, JAX rows included."""
    session.install(TORCH_CPU)
    session.install("-e", ".[test,jax]")
    session.run("pytest", *session.posargs)


@nox.session
def tests_gpu(session: nox.Session) -> None:
    """The suite with cupy, torch CUDA and JAX on the GPU (on a machine with an NVIDIA GPU and CUDA 12)."""
    session.install("torch")  # the CUDA build from PyPI
    session.install("-e", ".[test,cupy]", JAX_CUDA)
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
