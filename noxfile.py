"""Sessions: `nox -s tests` (CPU: numpy, torch CPU, JAX CPU, array-api-strict, ndonnx/onnxruntime), `nox -s tests_gpu`
(adds cupy, torch CUDA and JAX on the GPU, on a GPU machine), `nox -s lint`, `nox -s bench`, `nox -s experiments`,
`nox -s docs` (the documentation site, built offline and opened in headless Chromium)."""

from __future__ import annotations

import os
import shlex

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

# The PyTorch the CPU sessions install: today's pin by default. On an ordinary machine PyPI's
# torch is the CUDA build (several GB with its CUDA packages); for the CPU-only build, name
# PyTorch's CPU wheel index too (pip arguments are allowed):
#   ARRAYML_TORCH_REQUIREMENT="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" nox -s tests
TORCH_DEFAULT = "torch==2.13.0"


def torch_requirement() -> list[str]:
    """The `pip install` arguments for torch: $ARRAYML_TORCH_REQUIREMENT, else `TORCH_DEFAULT`."""
    return shlex.split(os.environ.get("ARRAYML_TORCH_REQUIREMENT") or TORCH_DEFAULT)


# JAX 0.10.x, the newest that installs on Python 3.11 (later releases need 3.12): the CPU session
# takes the `jax` extra of pyproject.toml (jax[cpu], same pin), the GPU session the CUDA 12 wheels.
JAX_CUDA = "jax[cuda12]>=0.10,<0.11"


# The application (examples/arrayml_app/, a distribution of its own): the sessions that run it
# install it beside the library, as the README's first command does.
APP = ("-e", "examples/arrayml_app")


@nox.session
def tests(session: nox.Session) -> None:
    """Both suites, the library's (tests/) and the application's (examples/tests/), on the CPU, JAX
    and ndonnx rows included (torch from $ARRAYML_TORCH_REQUIREMENT, default torch==2.13.0)."""
    session.install(*torch_requirement())
    session.install("-e", ".[test,jax,onnx,sklearn,numba]", *APP)
    session.run("pytest", *session.posargs)


@nox.session
def tests_gpu(session: nox.Session) -> None:
    """The suite with cupy, torch CUDA and JAX on the GPU (on a machine with an NVIDIA GPU and CUDA 12)."""
    session.install("torch")  # the CUDA build from PyPI
    session.install("-e", ".[test,cupy,sklearn]", JAX_CUDA, *APP)
    session.run("python", "-c", "import torch, cupy; assert torch.cuda.is_available(); print(cupy.cuda.runtime.getDeviceCount(), 'CUDA device(s)')")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over everything; mypy over the library, whose public API is typed (py.typed ships)."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", "arrayml", "tests", "examples", "benchmarks", "noxfile.py")
    session.run("mypy")


SHARED_DATA = "../shared/data/cifar10"


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks that need no data set (the scikit-learn side by side on the digits; its CIFAR-10
    rows need --data-dir, see the README); their JSON lands in scratch/bench/ (git-ignored: the
    published numbers in results/bench/ change only when copied there on purpose)."""
    session.install(*torch_requirement())
    session.install("-e", ".[bench,jax,sklearn,numba]", *APP)  # threadpoolctl for the BLAS report; JAX for its rows; the torch.nn mirror; sklearn_mlp.py
    session.run("python", "benchmarks/matmul_vs_loop.py", "--json", "scratch/bench/matmul_vs_loop-numpy.json")
    session.run("python", "benchmarks/train_throughput.py", "--json", "scratch/bench/train_throughput.json", *session.posargs)
    session.run("python", "benchmarks/sklearn_mlp.py", "--datasets", "digits", "--json", "scratch/bench/sklearn_mlp-digits.json")


@nox.session
def experiments(session: nox.Session) -> None:
    """Every experiment of docs/results.md, full length, then the report itself (JAX for section
    10, which runs on JAX with the step compiled; PyTorch tensors for the CNN of section 11)."""
    session.install(*torch_requirement())
    session.install("-e", ".[jax]", *APP)
    session.run("python", "examples/experiments/run_all.py", "--data-dir", SHARED_DATA, *session.posargs)


# The site's build folder (git-ignored); the browser tests read it from $ARRAYML_SITE_DIR.
DOCS_HTML = "docs/_build/html"


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site: Sphinx (pinned in docs/requirements.txt) builds docs/ into
    docs/_build/html with every warning an error, MathJax from its npm package (pinned in
    docs/package-lock.json) served from the site itself; then the browser tests open every page
    in Debian's headless Chromium (/usr/bin/chromium) and the site's screenshots land beside it.
    `nox -s docs -- -k home` passes pytest arguments through."""
    session.install("-r", "docs/requirements.txt")
    session.install("-e", ".[sklearn,onnx]")  # autodoc imports every public module (arrayml.sklearn needs scikit-learn); the playground exports its graphs with ndonnx and its test replays them in onnxruntime
    session.run("npm", "ci", "--prefix", "docs", "--no-audit", "--no-fund", external=True)
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", DOCS_HTML)
    # The playground page: its graphs exported by arrayml, onnxruntime-web from its npm package (pinned)
    session.run("npm", "ci", "--ignore-scripts", "--prefix", "docs/playground", "--no-audit", "--no-fund", external=True)
    session.run("python", "docs/playground/build.py", "--out", f"{DOCS_HTML}/playground")
    session.run("pytest", "-v", "-rP", "-p", "no:cacheprovider", "docs/tests", *session.posargs,
                env={"ARRAYML_SITE_DIR": DOCS_HTML})
