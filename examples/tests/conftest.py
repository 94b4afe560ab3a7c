"""Settings of the application's tests: the same JAX 64-bit setting as the library's suite
(tests/conftest.py), so that these tests, and the scripts they start, see the same JAX whether they
run alone (`pytest examples/tests`) or with the library's tests (`nox -s tests`)."""

from __future__ import annotations

import os
import sys

if "jax" in sys.modules:
    sys.modules["jax"].config.update("jax_enable_x64", True)
else:
    os.environ["JAX_ENABLE_X64"] = "1"
