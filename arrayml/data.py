"""CIFAR-10: find or download it, check it, preprocess it as the assignment does, batch it.

Set ``ARRAYML_OFFLINE=1`` to never download (an error says where the file was looked for).

Where the data is looked for, in order: the ``data_dir`` argument (``--data-dir``), the
``ARRAYML_DATA`` environment variable, then ``~/.cache/arrayml``. Each may be a folder holding
``cifar10_uint8.npz`` or the path of that file. The cache format (keys ``x_train`` (50000, 32, 32,
3) uint8, ``y_train`` (50000,) int64, ``x_test`` (10000, 32, 32, 3) uint8, ``y_test`` (10000,)
int64) is the one of the team's offline copy, so ``--data-dir ../shared/data/cifar10`` works.

With no cache, the official ``cifar-10-python.tar.gz`` is downloaded (progress bar, timeout) to a
temporary file that is renamed into place only when complete, its MD5 is checked *before*
anything is read from it, the batches are parsed with an unpickler that admits only what they
hold, and the cache is written (again through a temporary file). A corrupt or truncated cache or
archive is reported and replaced by the next download; it is never used.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import backend
from .backend import Array, Namespace
from .fileio import atomic_write

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CACHE_NAME = "cifar10_uint8.npz"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.491, 0.482, 0.447)
STD = (0.247, 0.243, 0.262)
EXPECTED = {
    "x_train": ((50000, 32, 32, 3), np.uint8),
    "y_train": ((50000,), np.int64),
    "x_test": ((10000, 32, 32, 3), np.uint8),
    "y_test": ((10000,), np.int64),
}


class DataError(RuntimeError):
    """The data set is missing, corrupt, or could not be downloaded."""


# --------------------------------------------------------------------------------------------
# Where to look
# --------------------------------------------------------------------------------------------


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The places searched, in order: `data_dir`, ``$ARRAYML_DATA``, ``~/.cache/arrayml``."""
    out = []
    if data_dir is not None:
        out.append(Path(data_dir).expanduser())
    if os.environ.get("ARRAYML_DATA"):
        out.append(Path(os.environ["ARRAYML_DATA"]).expanduser())
    out.append(Path.home() / ".cache" / "arrayml")
    return out


def _cache_path(place: Path) -> Path:
    return place if place.suffix == ".npz" else place / CACHE_NAME


# --------------------------------------------------------------------------------------------
# Reading and checking the cache
# --------------------------------------------------------------------------------------------


def read_cache(path: Path) -> dict[str, np.ndarray]:
    """Load and check a cache file (no pickle allowed). Raises `DataError` saying what is wrong.

    A file with other image counts than CIFAR-10's 50000/10000 (a sample for tests or quick
    checks) is accepted with a warning that names the counts.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks the arrays {missing}; it holds {sorted(arrays)}")
    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            raise DataError(f"{path}: {key} should be uint8 of shape (N, 32, 32, 3), got {x.dtype} {x.shape}")
    for key, xkey in (("y_train", "x_train"), ("y_test", "x_test")):
        y = arrays[key]
        if y.ndim != 1 or y.shape[0] != arrays[xkey].shape[0] or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: {key} should be integer labels of shape ({arrays[xkey].shape[0]},), got {y.dtype} {y.shape}")
        if y.size and (np.min(y) < 0 or np.max(y) > 9):
            raise DataError(f"{path}: {key} holds labels from {np.min(y)} to {np.max(y)}, expected 0..9")
        arrays[key] = np.asarray(y, dtype=np.int64)
    counts = (arrays["x_train"].shape[0], arrays["x_test"].shape[0])
    if counts != (EXPECTED["x_train"][0][0], EXPECTED["x_test"][0][0]):
        warnings.warn(f"{path} holds {counts[0]} training and {counts[1]} test images, not CIFAR-10's 50000 and 10000", stacklevel=3)
    return arrays


def write_cache(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Write the cache through a temporary file renamed into place (never a half file)."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


# --------------------------------------------------------------------------------------------
# The official archive: download, verify, parse safely
# --------------------------------------------------------------------------------------------


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB blocks (``"md5"`` for the archive, ``"sha256"`` for
    recording which data a run used)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, *, md5: str, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download `url` to `dest` via a temporary file, checking the MD5 before renaming it in."""
    from tqdm.auto import tqdm

    try:
        with atomic_write(dest) as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.md5()
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}", disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
            if digest.hexdigest() != md5:  # raising here discards the temporary file
                raise DataError(f"download of {url} is corrupt or incomplete: MD5 {digest.hexdigest()}, expected {md5}")
    except OSError as exc:
        raise DataError(f"could not download {url}: {exc}") from None
    return dest


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what the CIFAR-10 batches hold: dicts, lists, bytes, ints and NumPy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, which a data batch never needs")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def _load_batch(raw: bytes, member: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"archive member {member} is not a CIFAR-10 batch: {exc}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise DataError(f"archive member {member} has data {data.shape} and labels {labels.shape}")
    # rows are 1024 red, 1024 green, 1024 blue values: to (N, 32, 32, 3)
    return np.transpose(np.reshape(data, (-1, 3, 32, 32)), (0, 2, 3, 1)), labels


def parse_archive(path: Path) -> dict[str, np.ndarray]:
    """The four cache arrays from a ``cifar-10-python.tar.gz`` (whose MD5 was checked)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
            missing = [n for n in names if n not in members]
            if missing:
                raise DataError(f"{path} lacks the batches {missing}")
            parts = {}
            for n in names:
                f = tar.extractfile(members[n])
                assert f is not None
                parts[n] = _load_batch(f.read(), n)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path} is not a readable tar.gz archive ({type(exc).__name__}: {exc})") from None
    train = [parts[f"data_batch_{i}"] for i in range(1, 6)]
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": parts["test_batch"][0],
        "y_test": parts["test_batch"][1],
    }


# --------------------------------------------------------------------------------------------
# The one entry point
# --------------------------------------------------------------------------------------------


def load_cifar10(
    data_dir: str | os.PathLike | None = None, *, download_if_missing: bool = True,
    url: str = CIFAR10_URL, md5: str = CIFAR10_MD5,
    progress: bool = True, timeout: float = 30.0,
) -> dict[str, np.ndarray]:
    """CIFAR-10 as uint8 images (N, 32, 32, 3) and int64 labels, from the first cache found.

    The result also holds ``"path"``: the cache file it came from. Raises `DataError` when no
    usable cache exists and none can be downloaded, saying where it looked and how to supply the
    file. (`url` and `md5` exist for tests.)
    """
    places = candidate_dirs(data_dir)
    problems = []
    for place in places:
        path = _cache_path(place)
        if path.is_file():
            try:
                return {**read_cache(path), "path": path}
            except DataError as exc:
                warnings.warn(f"ignoring corrupt CIFAR-10 cache: {exc}; it will be replaced by a fresh download", stacklevel=2)
                problems.append(str(exc))
    target = _cache_path(places[0])
    looked = ", ".join(str(_cache_path(p)) for p in places)
    if not download_if_missing or os.environ.get("ARRAYML_OFFLINE", "") not in ("", "0"):
        raise DataError(_missing_message(looked, problems))
    archive = target.parent / ARCHIVE_NAME
    try:
        if archive.is_file() and file_digest(archive) != md5:
            warnings.warn(f"{archive} fails its MD5 check (truncated or corrupt); downloading it again", stacklevel=2)
            archive.unlink()
        if not archive.is_file():
            download(url, archive, md5=md5, timeout=timeout, progress=progress)
        arrays = parse_archive(archive)
    except DataError as exc:
        raise DataError(_missing_message(looked, [*problems, str(exc)])) from None
    write_cache(arrays, target)
    return {**read_cache(target), "path": target}


def _missing_message(looked: str, problems: list[str]) -> str:
    text = (
        f"CIFAR-10 not found: looked for {CACHE_NAME} in {looked}. Supply it with --data-dir DIR "
        f"(a folder holding {CACHE_NAME}, e.g. ../shared/data/cifar10) or ARRAYML_DATA=DIR, or "
        f"put the official {ARCHIVE_NAME} (MD5 {CIFAR10_MD5}) from {CIFAR10_URL} in the first of those folders"
    )
    if problems:
        text += ". Problems: " + "; ".join(problems)
    return text


# --------------------------------------------------------------------------------------------
# Preprocessing, split, batches
# --------------------------------------------------------------------------------------------


def preprocess(images: np.ndarray, *, dtype: Any = np.float32, chunk: int = 5000) -> np.ndarray:
    """uint8 (N, 32, 32, 3) -> (N, 3072) float: scaled to [0, 1], normalised per channel with
    `MEAN` and `STD`, flattened channel-first (as torchvision's tensors are)."""
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"expected images of shape (N, 32, 32, 3), got {images.shape}")
    scale = np.asarray(1.0 / (255.0 * np.asarray(STD)), dtype=dtype)
    offset = np.asarray(np.asarray(MEAN) / np.asarray(STD), dtype=dtype)
    out = np.empty((images.shape[0], 3 * 32 * 32), dtype=dtype)
    for start in range(0, images.shape[0], chunk):
        block = np.asarray(images[start:start + chunk], dtype=dtype) * scale - offset  # (x/255 - mean)/std
        out[start:start + chunk] = np.reshape(np.transpose(block, (0, 3, 1, 2)), (block.shape[0], -1))
    return out


@dataclass
class Splits:
    """Train/validation/test features and labels, as arrays of one namespace and device."""

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array
    n_classes: int = 10

    def to(self, xp: Namespace, device: Any, dtype: Any) -> Splits:
        """A copy on namespace `xp` and `device`, features as `dtype`: one transfer per array."""
        def move(a: Any, dt: Any) -> Any:
            return backend.convert(a, xp, device, dt)

        return Splits(
            move(self.x_train, dtype), move(self.y_train, xp.int64),
            move(self.x_val, dtype), move(self.y_val, xp.int64),
            move(self.x_test, dtype), move(self.y_test, xp.int64), self.n_classes,
        )

    def sizes(self) -> dict[str, int]:
        return {"train": self.x_train.shape[0], "val": self.x_val.shape[0], "test": self.x_test.shape[0]}


def make_splits(
    arrays: dict[str, np.ndarray], *, val_size: int = 5000, seed: int = 42, subset: int | None = None,
    dtype: Any = np.float32,
) -> Splits:
    """Preprocess and split off a seeded validation set of `val_size` training images.

    `subset`, for quick checks, keeps only that many of the remaining training images.
    """
    n = arrays["x_train"].shape[0]
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be between 1 and {n - 1}, got {val_size}")
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = order[:val_size], order[val_size:]
    if subset is not None:
        if subset < 1:
            raise ValueError(f"subset must be a positive number of images, got {subset}")
        train_idx = train_idx[:subset]
    x_all = preprocess(arrays["x_train"], dtype=dtype)
    return Splits(
        x_train=x_all[train_idx], y_train=arrays["y_train"][train_idx],
        x_val=x_all[val_idx], y_val=arrays["y_train"][val_idx],
        x_test=preprocess(arrays["x_test"], dtype=dtype), y_test=arrays["y_test"],
    )


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """The generator that shuffles epoch `epoch` of a run with `seed` (independent of how many
    epochs ran before, so that a resumed run shuffles exactly as an uninterrupted one)."""
    return np.random.default_rng([seed, epoch])


def train_batches(
    x: Array, y: Array, batch_size: int, *, seed: int, epoch: int,
) -> Iterator[tuple[Array, Array]]:
    """Shuffled training batches of exactly `batch_size` (the last partial batch is dropped).

    The permutation is drawn on the host and moved to the device once per epoch; each batch is
    gathered on the device with ``take``.
    """
    xp, dev = backend.get_namespace_and_device(x, y)
    n = x.shape[0]
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch size must be between 1 and the {n} training samples, got {batch_size}")
    order = backend.permutation(epoch_generator(seed, epoch), n, xp=xp, device=dev)
    for start in range(0, n - batch_size + 1, batch_size):
        idx = order[start:start + batch_size]
        yield xp.take(x, idx, axis=0), xp.take(y, idx, axis=0)


def eval_batches(x: Array, y: Array, batch_size: int) -> Iterator[tuple[Array, Array]]:
    """Batches in order, the last one possibly smaller: every sample is evaluated once."""
    n = x.shape[0]
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)  # out-of-bounds slice stops are not in the standard
        yield x[start:stop, ...], y[start:stop]


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return n_train // batch_size
