"""Shared test settings: hypothesis profiles, and the `torch` fixture for the tests that need
PyTorch (only those are skipped where it is not installed)."""

from __future__ import annotations

import os

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
