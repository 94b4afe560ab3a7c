"""Data for training, whatever the data set: train/validation/test splits as arrays of one
backend, a seeded hold-out split, and the batches the training loop draws.

Knows no data set (those live in `arrayml.datasets`). Shuffling is derived from (seed, epoch)
alone, so a resumed run shuffles exactly as an uninterrupted one.

Data-parallel training (`arrayml.distributed`) shards *batches*, not the data set: every process
draws the same global permutation and cuts the same global batches, and process r of N keeps rows
``shard_bounds(batch, r, N)`` of each. N processes together see exactly the batches one process
would, in the same order, whatever N is (so a checkpoint written by N processes resumes on M).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backend, validate
from .backend import Array, Namespace

_FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


@dataclass
class Splits:
    """Train/validation/test features and labels, as arrays of one namespace and device.

    Everything is checked here, naming the field: every entry an array (a pandas object is refused
    with what to pass instead), one namespace and device, matching lengths, integer labels within
    [0, n_classes), no empty split.

    Args:
        x_train: the training features, an (n, ...) array.
        y_train: their labels, a 1-D integer array of length n.
        x_val, y_val: the validation pair, or None (no validation, so no best-epoch selection).
        x_test, y_test: the test pair, or None.
        n_classes: the number of classes; by default the largest label plus one (read from the
            labels once, here).
        class_names: None, or a name for each class.

    Raises:
        TypeError: an entry is not an array, the arrays are not of one namespace and device, or
            labels are not 1-D integers.
        ValueError: one of a pair is missing, lengths differ, a split is empty, a label is
            negative or not below `n_classes`, or `class_names` does not name every class.

    Example:
        >>> import numpy as np
        >>> from arrayml.data import Splits
        >>> x, y = np.zeros((10, 3), dtype=np.float32), np.arange(10) % 2
        >>> data = Splits(x[:8], y[:8], x[8:], y[8:])
        >>> data.sizes(), data.n_classes
        ({'train': 8, 'val': 2, 'test': 0}, 2)
        >>> data.to("numpy", dtype="float64").x_train.dtype
        dtype('float64')
    """

    x_train: Array
    y_train: Array
    x_val: Array | None = None
    y_val: Array | None = None
    x_test: Array | None = None
    y_test: Array | None = None
    n_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    #: Whether `n_classes` was given (True) or read from the labels (False).
    n_classes_given: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        arrays = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is None and name not in ("x_train", "y_train"):
                continue
            backend.get_namespace(value, names=(f"Splits.{name}",))  # an array, or a clear error
            arrays[name] = value
        for part in ("val", "test"):
            if (f"x_{part}" in arrays) != (f"y_{part}" in arrays):
                given, missing = (f"x_{part}", f"y_{part}") if f"x_{part}" in arrays else (f"y_{part}", f"x_{part}")
                raise ValueError(f"Splits.{given} is given but Splits.{missing} is None: give both, or neither")
        xp = backend.get_namespace(*arrays.values(), names=[f"Splits.{n}" for n in arrays], what="Splits")
        for part in ("train", "val", "test"):
            if f"x_{part}" in arrays:
                _check_pair(xp, part, arrays[f"x_{part}"], arrays[f"y_{part}"])
        top = max(int(xp.max(arrays[f"y_{p}"])) for p in ("train", "val", "test") if f"y_{p}" in arrays)
        low = min(int(xp.min(arrays[f"y_{p}"])) for p in ("train", "val", "test") if f"y_{p}" in arrays)
        if low < 0:
            raise ValueError(f"Splits labels must be class indices >= 0, got a label {low}")
        self.n_classes_given = self.n_classes is not None
        if self.n_classes is None:
            self.n_classes = top + 1
        else:
            self.n_classes = validate.positive_int(self.n_classes, "Splits.n_classes")
            if top >= self.n_classes:
                raise ValueError(f"Splits labels must be in [0, n_classes={self.n_classes}), got a label {top}")
        if self.class_names is not None and len(self.class_names) != self.n_classes:
            raise ValueError(f"Splits.class_names must name the {self.n_classes} classes, got {len(self.class_names)} names")

    def to(self, xp: Namespace | str | None, device: Any = None, dtype: Any = None) -> Splits:
        """A copy on namespace `xp` and `device`, features as `dtype`: one transfer per array.

        Args:
            xp: a backend name (``"torch"``) or an array-API namespace, as `backend.placement`
                takes it (None: NumPy).
            device: a device name or object of that library (None: its default device).
            dtype: the features' floating dtype, ``"float32"`` or ``"float64"`` (None: the
                one they have); the labels become int64.

        Returns:
            A new `Splits`; this one is left as it is.

        Raises:
            TypeError, ValueError: an `xp`, `device` or `dtype` that `backend.placement` refuses,
                before anything is copied.
        """
        where = backend.placement(xp, device, dtype)
        ns, features = where.xp, (None if dtype is None else where.dtype)

        def move(a: Any, dt: Any) -> Any:
            return None if a is None else backend.convert(a, ns, where.device, dt)

        return Splits(
            move(self.x_train, features), move(self.y_train, ns.int64),
            move(self.x_val, features), move(self.y_val, ns.int64),
            move(self.x_test, features), move(self.y_test, ns.int64),
            self.n_classes if self.n_classes_given else None, self.class_names,
        )

    def sizes(self) -> dict[str, int]:
        """The number of samples of each split given.

        Returns:
            ``{"train": n, "val": ..., "test": ...}``: 0 for a split that is None.
        """
        return {part: 0 if getattr(self, f"x_{part}") is None else getattr(self, f"x_{part}").shape[0]
                for part in ("train", "val", "test")}


def _check_pair(xp: Namespace, part: str, x: Array, y: Array) -> None:
    if not xp.isdtype(y.dtype, "integral") or y.ndim != 1:
        raise TypeError(f"Splits.y_{part} must be a 1-D array of integer class indices, got "
                        f"{backend.dtype_name(y.dtype)} of shape {tuple(y.shape)}")
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"Splits.x_{part} and Splits.y_{part} must have one row per label, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"Splits.x_{part} has no rows" + ("" if part == "train" else
                         f": pass x_{part}=None, y_{part}=None for no {'validation' if part == 'val' else 'test'} set"))


def check_finite(x: Array, name: str, what: str) -> None:
    """Refuse NaN or infinite values in a floating array of rows. One read back to the host: the
    count and the first bad row together. Integer arrays are always finite.

    Args:
        x: the array.
        name: its name in the error.
        what: the caller, named in the error.

    Raises:
        ValueError: `x` holds NaN or infinity (how many rows hold one, and the first of them).
    """
    xp = backend.get_namespace(x, names=(name,), what=what)
    if not xp.isdtype(x.dtype, ("real floating", "complex floating")) or x.ndim == 0 or x.shape[0] == 0:
        return
    n = x.shape[0]
    width = 1
    for size in x.shape[1:]:
        width *= size
    bad = xp.any(~xp.isfinite(xp.reshape(x, (n, width))), axis=1) if width else xp.zeros((n,), dtype=xp.bool,
                                                                                        device=backend.device(x))
    wide = backend.widest_int(xp)
    packed = xp.stack([xp.astype(backend.count_true(bad, xp=xp), wide), xp.astype(xp.argmax(xp.astype(bad, wide)), wide)])
    count, first = (int(v) for v in np.asarray(backend.to_numpy(packed)))
    if count:
        raise ValueError(
            f"{what}: {name} holds NaN or infinite values ({count} row{'s' if count > 1 else ''}), the first in row "
            f"{first}: drop or impute those rows first"
        )


def holdout_split(n: int, val_size: int, *, seed: int, subset: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded random split of ``0 .. n-1`` into a training and a validation part.

    Args:
        n: the number of samples.
        val_size: how many go to the validation part, in [1, n - 1].
        seed: the seed of the permutation.
        subset: None, or keep only that many of the training indices (quick checks).

    Returns:
        ``(train, val)``: two NumPy integer arrays of indices.

    Raises:
        ValueError: `val_size` or `subset` is out of range.
    """
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be between 1 and {n - 1}, got {val_size}")
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = order[:val_size], order[val_size:]
    if subset is not None:
        if subset < 1:
            raise ValueError(f"subset must be a positive number of samples, got {subset}")
        train_idx = train_idx[:subset]
    return train_idx, val_idx


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """The generator that shuffles one epoch of a run (independent of how many epochs ran before,
    so that a resumed run shuffles exactly as an uninterrupted one).

    Args:
        seed: the run's seed.
        epoch: the 0-based epoch.

    Returns:
        A new `numpy.random.Generator`.
    """
    return np.random.default_rng([seed, epoch])


def shard_bounds(batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """The rows of a global batch that one process takes: ``lo = rank·B // N``,
    ``hi = (rank + 1)·B // N``. The shares differ by at most one row (128 on 3 processes: 42, 43,
    43) and every row belongs to exactly one process.

    Args:
        batch_size: B, the global batch's size.
        rank: the process, in [0, world_size).
        world_size: N, the number of processes (at most `batch_size`).

    Returns:
        ``(lo, hi)``: the process takes rows ``[lo, hi)``.

    Raises:
        ValueError: `rank` is out of range, or the batch has fewer rows than processes.

    Example:
        >>> from arrayml.data import shard_bounds
        >>> [shard_bounds(128, rank, 3) for rank in range(3)]
        [(0, 42), (42, 85), (85, 128)]
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if batch_size < world_size:
        raise ValueError(
            f"a global batch of {batch_size} cannot be shared by {world_size} processes: every process "
            f"needs at least one sample; use a batch size of at least {world_size}"
        )
    return rank * batch_size // world_size, (rank + 1) * batch_size // world_size


def train_batches(
    x: Array, y: Array, batch_size: int, *, seed: int, epoch: int, shard: tuple[int, int] | None = None,
    shuffle: bool = True, drop_last: bool = True,
) -> Iterator[tuple[Array, Array]]:
    """Shuffled training batches of exactly `batch_size` (the last partial batch is dropped).

    The permutation is drawn on the host and moved to the device once per epoch; each batch is
    gathered on the device with ``take``.

    Args:
        x: the features, (n, ...).
        y: the labels, (n,).
        batch_size: rows per batch, in [1, n].
        seed: the run's seed.
        epoch: the 0-based epoch: the permutation is drawn from (`seed`, `epoch`)
            (`epoch_generator`).
        shard: None, or ``(rank, world_size)``: only that process's rows of each global batch are
            gathered (`shard_bounds`); the global batches are the same.
        shuffle: False takes the rows in order (slices, no gather).
        drop_last: False also yields the last, smaller batch, so that every sample is seen every
            epoch (what scikit-learn's stochastic solvers do; a compiled step compiles once more
            for its shape).

    Yields:
        ``(x_batch, y_batch)`` pairs on the arrays' device.

    Raises:
        ValueError: `batch_size` is not between 1 and n.
    """
    xp, dev = backend.get_namespace_and_device(x, y)
    n = x.shape[0]
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch size must be between 1 and the {n} training samples, got {batch_size}")
    lo, hi = (0, batch_size) if shard is None else shard_bounds(batch_size, *shard)
    order = backend.permutation(epoch_generator(seed, epoch), n, xp=xp, device=dev) if shuffle else None
    for start in range(0, n - batch_size + 1 if drop_last else n, batch_size):
        if start + batch_size > n:  # the last, smaller batch (drop_last=False)
            lo, hi = (0, n - start) if shard is None else shard_bounds(n - start, *shard)
        if order is None:
            yield x[start + lo:start + hi, ...], y[start + lo:start + hi, ...]
        else:
            idx = order[start + lo:start + hi]
            yield backend.take_rows(x, idx, xp=xp), backend.take_rows(y, idx, xp=xp)


def eval_batches(
    x: Array, y: Array, batch_size: int, *, shard: tuple[int, int] | None = None,
) -> Iterator[tuple[Array, Array]]:
    """Batches in order, the last one possibly smaller: every sample is evaluated once.

    Args:
        x: the features, (n, ...).
        y: the labels, (n,).
        batch_size: rows per batch.
        shard: None, or ``(rank, world_size)``: process r gets batches r, r + N, r + 2N, ...: the
            very batches one process would score, so each logit is computed from the same rows by
            the same operations, and the shards' confusion matrices add up to exactly the
            single-process one.

    Yields:
        ``(x_batch, y_batch)`` slices.
    """
    n = x.shape[0]
    rank, world = (0, 1) if shard is None else shard
    for i, start in enumerate(range(0, n, batch_size)):
        if i % world != rank:
            continue
        stop = min(start + batch_size, n)  # out-of-bounds slice stops are not in the standard
        yield x[start:stop, ...], y[start:stop]


def steps_per_epoch(n_train: int, batch_size: int, *, drop_last: bool = True) -> int:
    """Batches in an epoch of `train_batches`.

    Args:
        n_train: the number of training samples.
        batch_size: rows per batch.
        drop_last: count full batches only (True) or the last partial one too.

    Returns:
        The number of steps.
    """
    return n_train // batch_size if drop_last else -(-n_train // batch_size)
