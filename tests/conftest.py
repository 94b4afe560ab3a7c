"""Shared test settings: hypothesis profiles, JAX with 64-bit types enabled, and the `torch`
fixture for the tests that need PyTorch (only those are skipped where it is not installed)."""

from __future__ import annotations

import os
import sys

# The gradient tests run in float64, which JAX only has with x64 enabled. This must happen before
# JAX creates its first array: the environment variable if JAX is not imported yet (it is read at
# import; subprocesses inherit it), the config otherwise. Tests of the x64-off errors turn it off
# locally with `jax.enable_x64(False)` or start a subprocess without the variable.
if "jax" in sys.modules:
    sys.modules["jax"].config.update("jax_enable_x64", True)
else:
    os.environ["JAX_ENABLE_X64"] = "1"

# scikit-learn's array API dispatch (tests/test_sklearn.py) needs scipy's own array API support,
# which scipy reads from this variable when it is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pytest
from hypothesis import HealthCheck, settings

# "ci" (the default) keeps the suite to a few minutes on 2 cores and draws the same examples on
# every run (derandomized), so CI is repeatable; "thorough" draws many more, fresh each time:
# HYPOTHESIS_PROFILE=thorough nox -s tests
settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def torch():
    """The torch module; the test is skipped, with the install command, where torch is missing."""
    return pytest.importorskip("torch", reason="torch is not installed (CPU build: pip install torch==2.13.0)")
