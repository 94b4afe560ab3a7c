"""Random numbers: an explicit seeded generator, drawn on the host, moved to the device once.

Every draw goes through a `numpy.random.Generator` that the caller passes in (or a seed it is made
from), so a run repeats exactly on every backend and device, and no library's global state is
touched.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dtypes import jax_dtype
from .namespaces import Array, Namespace, namespace_name

#: What a seed argument (``rng=``) accepts: a generator, an integer seed, or None (seed 0).
Seed = np.random.Generator | int | np.integer | None


def as_generator(rng: Seed) -> np.random.Generator:
    """A `numpy.random.Generator` from a generator, a non-negative integer seed (NumPy integers
    too), or ``None`` (seed 0).

    ``None`` means seed 0 rather than fresh entropy: arrayml runs are reproducible unless you ask
    otherwise. Pass one generator to everything that should draw from the same stream.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"rng must be a numpy.random.Generator or a non-negative int seed, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be a numpy.random.Generator or a non-negative int seed, got {type(rng).__name__} {rng!r}"
    )


def global_seed_generator() -> np.random.Generator:
    """A generator seeded from NumPy's *global* random state, for code written the course's way:
    a script's ``np.random.seed(42)`` then makes the draws reproducible."""
    return np.random.default_rng(np.random.randint(0, 2**31 - 1))  # noqa: NPY002 - honour np.random.seed()


def normal(
    rng: np.random.Generator, shape: tuple[int, ...], *, std: float, xp: Namespace, device: Any, dtype: Any,
) -> Array:
    """Samples of N(0, std²) of `shape`, drawn from `rng` on the host (in float64, so a seed gives
    the same numbers for every dtype and backend), then created on `device` with `dtype`."""
    host = rng.normal(0.0, std, size=shape)
    return xp.asarray(host, dtype=dtype, device=device)


def uniform(
    rng: np.random.Generator, shape: tuple[int, ...], *, low: float, high: float, xp: Namespace, device: Any,
    dtype: Any,
) -> Array:
    """Samples of U(low, high) of `shape`, drawn on the host in float64 like `normal`."""
    host = rng.uniform(low, high, size=shape)
    return xp.asarray(host, dtype=dtype, device=device)


def permutation(rng: np.random.Generator, n: int, *, xp: Namespace, device: Any) -> Array:
    """A random permutation of ``0 .. n-1`` drawn from `rng`, as an int64 array on `device`."""
    host = rng.permutation(n)
    dtype = xp.int64
    if namespace_name(xp) == "jax":
        dtype = jax_dtype(dtype, "permutation")  # int32 without x64: n < 2**31 indices
    return xp.asarray(host, dtype=dtype, device=device)
