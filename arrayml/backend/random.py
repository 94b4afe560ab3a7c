"""Random numbers, always from an explicit seed.

Initial weights and batch orders: a `numpy.random.Generator` that the caller passes in (or a
seed it is made from), drawn on the host in float64 and moved to the device once, so a run
repeats exactly on every backend and device, and no library's global state is touched.

Random numbers inside the training step (dropout masks): a *key* per step, drawn from by each
library's own generator on the arrays' own device (`random_key`, `fold_in`, `uniform_from_key`;
see the section below).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dtypes import dtype_name, jax_dtype
from .namespaces import Array, Namespace, namespace_name

#: The host generator initial weights and batch orders are drawn from.
Generator = np.random.Generator
#: What a seed argument (``rng=``) accepts: a generator, an integer seed, or None (seed 0).
Seed = np.random.Generator | int | np.integer | None


def as_generator(rng: Seed) -> np.random.Generator:
    """A `numpy.random.Generator` from a generator, a non-negative integer seed (NumPy integers
    too), or ``None`` (seed 0).

    ``None`` means seed 0 rather than fresh entropy: arrayml runs are reproducible unless you ask
    otherwise. Pass one generator to everything that should draw from the same stream.

    Args:
        rng: a `numpy.random.Generator` (returned as it is), a non-negative integer seed, or
            None (seed 0).

    Returns:
        The generator.

    Raises:
        TypeError: `rng` is none of those (a float, a bool, a string).
        ValueError: `rng` is a negative integer.

    Example:
        >>> from arrayml import backend
        >>> float(backend.as_generator(7).random()) == float(backend.as_generator(7).random())
        True
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


def child_seed(rng: Seed) -> int:
    """The integer seed of a stream of its own for a caller given `rng`: a child of a generator
    (``Generator.spawn``, which leaves the generator's own draws as they were), or the seed
    itself (None: 0).

    Args:
        rng: a `numpy.random.Generator`, a non-negative integer seed, or None.

    Returns:
        The seed, a non-negative integer.

    Raises:
        TypeError: `rng` is no generator, integer or None.
        ValueError: `rng` is a negative integer.
    """
    as_generator(rng)  # the same checks of `rng` as everywhere
    if isinstance(rng, np.random.Generator):
        return int(rng.spawn(1)[0].integers(0, 2**63))
    return 0 if rng is None else int(rng)


def global_seed_generator() -> np.random.Generator:
    """A generator seeded from NumPy's *global* random state, for code written the course's way:
    a script's ``np.random.seed(42)`` then makes the draws reproducible.

    Returns:
        A new generator (its seed is drawn from NumPy's global state, which advances).
    """
    return np.random.default_rng(np.random.randint(0, 2**31 - 1))  # noqa: NPY002 - honour np.random.seed()


def normal(
    rng: np.random.Generator, shape: tuple[int, ...], *, std: float, xp: Namespace, device: Any, dtype: Any,
) -> Array:
    """Samples of N(0, std²) of `shape`, drawn from `rng` on the host (in float64, so a seed gives
    the same numbers for every dtype and backend), then created on `device` with `dtype`.

    Args:
        rng: the host generator.
        shape: the samples' shape.
        std: the standard deviation.
        xp, device, dtype: where to create the array, and its dtype.

    Returns:
        The samples, an array of `xp` on `device`.
    """
    host = rng.normal(0.0, std, size=shape)
    return xp.asarray(host, dtype=dtype, device=device)


def uniform(
    rng: np.random.Generator, shape: tuple[int, ...], *, low: float, high: float, xp: Namespace, device: Any,
    dtype: Any,
) -> Array:
    """Samples of U(low, high) of `shape`, drawn on the host in float64 like `normal`.

    Args:
        rng: the host generator.
        shape: the samples' shape.
        low, high: the interval.
        xp, device, dtype: where to create the array, and its dtype.

    Returns:
        The samples, an array of `xp` on `device`.
    """
    host = rng.uniform(low, high, size=shape)
    return xp.asarray(host, dtype=dtype, device=device)


def permutation(rng: np.random.Generator, n: int, *, xp: Namespace, device: Any) -> Array:
    """A random permutation of ``0 .. n-1`` drawn from `rng`, as an int64 array on `device`.

    Args:
        rng: the host generator.
        n: how many indices.
        xp, device: where to create the array.

    Returns:
        The permutation, an integer array (int32 on JAX without x64).
    """
    host = rng.permutation(n)
    dtype = xp.int64
    if namespace_name(xp) == "jax":
        dtype = jax_dtype(dtype, "permutation")  # int32 without x64: n < 2**31 indices
    return xp.asarray(host, dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# Keys: random numbers drawn on the arrays' own device, inside the step (dropout masks)
# --------------------------------------------------------------------------------------------
#
# A training step that draws random numbers (a dropout mask) takes a *key*, derives one per
# layer (`fold_in`), and draws from it with the library's own generator on the arrays' device
# (`uniform_from_key`). The same key gives the same numbers; a new step a new key. What a key
# is depends on the library:
#
# - JAX: a ``jax.random`` key array (uint32[2], ``jax.random.PRNGKey``) on the device. It is an
#   array like any other, so a compiled step takes it as a traced argument and ``fold_in`` and
#   ``jax.random.uniform`` run inside the compiled function: no host random numbers.
# - everything else: a `HostKey`, a path of non-negative integers (seed, step, layer...) on the
#   host. Drawing seeds the library's own generator from it (NumPy's ``Generator``, a
#   ``torch.Generator`` on the tensor's device, CuPy's ``Generator``) and draws on the device;
#   array-api-strict (a test backend) draws with NumPy and copies, so it gets NumPy's numbers.
# - inside ``torch.compile``, which cannot trace a generator object: `GLOBAL_GENERATOR`; the
#   draw uses torch's default generator of the device, which `seeded_globally` seeds from the
#   step's `HostKey` around the compiled call and then restores, so the run stays reproducible
#   and the caller's global random state is left as it was.


@dataclass(frozen=True)
class HostKey:
    """A key held on the host: a path of non-negative integers, from the seed down.

    Attributes:
        path: the integers the key was derived from (seed, then each `fold_in`'s data).
    """

    path: tuple[int, ...]

    def seed64(self) -> int:
        """The path hashed to a 64-bit seed (NumPy's `SeedSequence`), for generators that take
        one integer.

        Returns:
            The seed, an integer in [0, 2**64).
        """
        words = np.random.SeedSequence(self.path).generate_state(2, np.uint32)
        return int(words[0]) | (int(words[1]) << 32)


class _GlobalGenerator:
    """The key of draws from the device's default generator (inside ``torch.compile``)."""

    def __repr__(self) -> str:
        return "GLOBAL_GENERATOR"


#: The key that a ``torch.compile``d step draws with: see `seeded_globally`.
GLOBAL_GENERATOR = _GlobalGenerator()

#: What `random_key` returns and `fold_in` and `uniform_from_key` take.
Key = Any


def random_key(seed: int, *, xp: Namespace, device: Any) -> Key:
    """The key of `seed` (a non-negative integer) for arrays of namespace `xp` on `device`:
    a ``jax.random.PRNGKey`` on the device for JAX, a `HostKey` otherwise.

    Args:
        seed: the seed, a non-negative integer.
        xp, device: where the arrays the key draws for live.

    Returns:
        The key.

    Raises:
        ValueError: `seed` is not a non-negative integer.

    Example:
        >>> import numpy as np
        >>> from arrayml import backend
        >>> key = backend.fold_in(backend.random_key(0, xp=np, device="cpu"), 3)
        >>> key
        HostKey(path=(0, 3))
        >>> backend.uniform_from_key(key, (2,), xp=np, device="cpu", dtype=np.float32).shape
        (2,)
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"a random seed must be a non-negative integer, got {type(seed).__name__} {seed!r}")
    if namespace_name(xp) == "jax":
        import jax

        return jax.device_put(jax.random.PRNGKey(int(seed)), device)
    return HostKey((int(seed),))


def fold_in(key: Key, data: Any) -> Key:
    """A new key from `key` and a non-negative integer `data` (a step number, a layer's index,
    a process's rank); different `data`, independent numbers. On JAX `data` may be a traced
    integer (``jax.random.fold_in``).

    Args:
        key: a key of `random_key` (or `GLOBAL_GENERATOR`, returned as it is).
        data: a non-negative integer.

    Returns:
        The new key, of `key`'s kind.
    """
    if isinstance(key, HostKey):
        return HostKey((*key.path, int(data)))
    if key is GLOBAL_GENERATOR:
        return key  # the draws of one compiled call follow each other in one seeded stream
    import jax

    return jax.random.fold_in(key, data)


def uniform_from_key(key: Key, shape: tuple[int, ...], *, xp: Namespace, device: Any, dtype: Any) -> Array:
    """Samples of U[0, 1) of `shape` and `dtype` on `device`, drawn by namespace `xp`'s library
    from `key` (see above).

    Args:
        key: the key (`random_key`, `fold_in`).
        shape: the samples' shape; every size known.
        xp, device, dtype: where to create the array, and its dtype.

    Returns:
        The samples, an array of `xp` on `device`.

    Raises:
        ValueError: a size in `shape` is not known (an ONNX graph's dynamic batch).
    """
    if any(n is None for n in shape):
        raise ValueError(f"random numbers of shape {tuple(shape)}: a size that is not known until the graph runs (an "
                         "ONNX graph's dynamic batch) cannot have its numbers drawn while the graph is built; give "
                         "the graph a fixed batch size, or evaluate the model (eval()) so that it draws nothing")
    shape = tuple(int(n) for n in shape)
    name = namespace_name(xp)
    if key is GLOBAL_GENERATOR:
        import torch

        return torch.rand(shape, dtype=dtype, device=device)
    if not isinstance(key, HostKey):
        import jax

        return jax.random.uniform(key, shape, dtype=dtype)
    if name == "torch":
        import torch

        gen = torch.Generator(device=device)
        gen.manual_seed(key.seed64())
        return torch.rand(shape, generator=gen, dtype=dtype, device=device)
    if name == "cupy":
        import cupy

        with cupy.cuda.Device(device.id if hasattr(device, "id") else device):
            return cupy.random.default_rng(key.seed64()).random(shape, dtype=dtype)
    host = np.random.default_rng(key.path).random(shape, dtype=np.dtype(dtype_name(dtype)))
    return host if name == "numpy" else xp.asarray(host, dtype=dtype, device=device)


@contextmanager
def seeded_globally(key: Key, *, xp: Namespace, device: Any) -> Iterator[None]:
    """Around a ``torch.compile``d call that draws with `GLOBAL_GENERATOR`: the default
    generator of `device` seeded from the step's `HostKey`, and restored afterwards (as if
    nothing had drawn from it). Nothing to do for other keys and namespaces.

    Args:
        key: the step's key.
        xp, device: where the model lives.

    Yields:
        None, with torch's default generator of `device` seeded (for a `HostKey` on torch).
    """
    if not isinstance(key, HostKey) or namespace_name(xp) != "torch":
        yield
        return
    import torch

    cuda = [device] if getattr(device, "type", None) == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        generator = torch.cuda.default_generators[device.index or 0] if cuda else torch.default_generator
        generator.manual_seed(key.seed64())
        yield
