"""CIFAR-10 (Krizhevsky, 2009): find it, verify it, download it, cache it, preprocess it.

Like ``sklearn.datasets.fetch_*``: `load_cifar10` looks for the cache file ``cifar10_uint8.npz``
in the places `arrayml.datasets` searches (``data_dir``, ``$ARRAYML_DATA``, ``~/.cache/arrayml``)
and, with ``download_if_missing``, downloads the official ``cifar-10-python.tar.gz``: to a
temporary file renamed into place only when complete, its MD5 checked *before* anything is read
from it, the batches parsed with an unpickler that admits only what they hold, and the cache
written (again through a temporary file). A corrupt or truncated cache or archive is reported
and replaced by the next download; it is never used.

The cache format (keys ``x_train`` (50000, 32, 32, 3) uint8, ``y_train`` (50000,) int64,
``x_test`` (10000, 32, 32, 3) uint8, ``y_test`` (10000,) int64) is the one of the team's offline
copy, so ``load_cifar10("../shared/data/cifar10")`` works.

`load_splits` gives what training needs: the assignment's preprocessing (scaled to [0, 1],
normalised per channel, flattened channel-first) and a seeded validation split, as
`arrayml.data.Splits`.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from ..data import Splits, holdout_split
from ..fileio import atomic_write, file_digest
from ._base import DataError, candidate_dirs, download, file_in, offline

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CACHE_NAME = "cifar10_uint8.npz"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: (channels, height, width): the order of each image's 3072 features after `preprocess`.
IMAGE_SHAPE = (3, 32, 32)
N_FEATURES = 3 * 32 * 32
MEAN = (0.491, 0.482, 0.447)
STD = (0.247, 0.243, 0.262)
EXPECTED = {
    "x_train": ((50000, 32, 32, 3), np.uint8),
    "y_train": ((50000,), np.int64),
    "x_test": ((10000, 32, 32, 3), np.uint8),
    "y_test": ((10000,), np.int64),
}


# --------------------------------------------------------------------------------------------
# Reading and checking the cache
# --------------------------------------------------------------------------------------------


def read_cache(path: Path) -> dict[str, np.ndarray]:
    """Load and check a cache file (no pickle allowed).

    A file with other image counts than CIFAR-10's 50000/10000 (a sample for tests or quick
    checks) is accepted with a warning that names the counts.

    Args:
        path: the ``.npz`` cache file.

    Returns:
        ``{"x_train", "y_train", "x_test", "y_test"}``: uint8 images (N, 32, 32, 3) and integer
        labels in 0..9.

    Raises:
        DataError: the file is not a readable ``.npz``, lacks an array, or holds arrays of the
            wrong dtype, shape or label range (saying what is wrong).
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
    """Write the cache through a temporary file renamed into place (never a half file).

    Args:
        arrays: the four arrays of `read_cache`.
        path: the cache file to write.
    """
    with atomic_write(path) as f:
        np.savez(f, allow_pickle=False, **arrays)


# --------------------------------------------------------------------------------------------
# The official archive: parse safely (its MD5 is checked by the download)
# --------------------------------------------------------------------------------------------


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
    """The four cache arrays from a ``cifar-10-python.tar.gz`` (whose MD5 was checked).

    Args:
        path: the archive.

    Returns:
        The arrays of `read_cache`.

    Raises:
        DataError: the archive is unreadable, lacks a batch, or holds a batch that is not CIFAR-10's.
    """
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
# The entry points
# --------------------------------------------------------------------------------------------


def training_images(data_dir: str | os.PathLike | None = None) -> tuple[int, str]:
    """How many training images `load_cifar10` will find, without loading them. Lets a caller check
    its batch and split sizes in milliseconds.

    Args:
        data_dir: the folder searched first (then the places `arrayml.datasets` searches).

    Returns:
        ``(count, source)``: from the header of the first cache file found, or CIFAR-10's 50000 if
        none is readable (it would be downloaded).
    """
    for place in candidate_dirs(data_dir):
        path = file_in(place, CACHE_NAME)
        if path.is_file():
            shape = _npz_shape(path, "x_train")
            if shape:
                return shape[0], str(path)
    return EXPECTED["x_train"][0][0], "CIFAR-10"


def _npz_shape(path: Path, key: str) -> tuple[int, ...] | None:
    """The shape of array `key` in an ``.npz``, read from its ``.npy`` header (None if unreadable)."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            return None if read is None else tuple(read(f)[0])
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError):
        return None


def load_cifar10(
    data_dir: str | os.PathLike | None = None, *, download_if_missing: bool = True,
    url: str = CIFAR10_URL, md5: str = CIFAR10_MD5,
    progress: bool | None = None, timeout: float = 30.0,
) -> dict[str, Any]:
    """CIFAR-10 as uint8 images (N, 32, 32, 3) and int64 labels, from the first cache found.

    The folder downloaded into is created if needed, and removed again if the download fails, so
    that a mistyped folder is not left behind.

    Args:
        data_dir: the folder searched first (then ``$ARRAYML_DATA``, ``~/.cache/arrayml``).
        download_if_missing: download the official archive when no usable cache exists.
        url: where to download it from (for tests).
        md5: the archive's checksum (for tests).
        progress: a download bar (None: only when stderr is a terminal).
        timeout: seconds to wait for the server.

    Returns:
        ``{"x_train", "y_train", "x_test", "y_test", "path"}``: the arrays and the cache file they
        came from.

    Raises:
        DataError: no usable cache exists and none can be downloaded (saying where it looked and
            how to supply the file).
    """
    places = candidate_dirs(data_dir)
    problems = []
    for place in places:
        path = file_in(place, CACHE_NAME)
        if path.is_file():
            try:
                return {**read_cache(path), "path": path}
            except DataError as exc:
                warnings.warn(f"ignoring corrupt CIFAR-10 cache: {exc}; it will be replaced by a fresh download", stacklevel=2)
                problems.append(str(exc))
    target = file_in(places[0], CACHE_NAME)
    looked = ", ".join(str(file_in(p, CACHE_NAME)) for p in places)
    if not download_if_missing or offline():
        raise DataError(_missing_message(looked, problems))
    created = [d for d in (target.parent, *target.parent.parents) if not d.exists()]
    archive = target.parent / ARCHIVE_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if archive.is_file() and file_digest(archive) != md5:
            warnings.warn(f"{archive} fails its MD5 check (truncated or corrupt); downloading it again", stacklevel=2)
            archive.unlink()
        if not archive.is_file():
            download(url, archive, md5=md5, timeout=timeout, progress=progress)
        arrays = parse_archive(archive)
    except (DataError, OSError) as exc:
        for folder in created:  # deepest first: leave no folder a failed download made
            with contextlib.suppress(OSError):
                folder.rmdir()
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
# Preprocessing and the split
# --------------------------------------------------------------------------------------------


#: The images as the cache stores them, and as `normalize` (and an exported model) takes them.
RAW_LAYOUT = "N x 32 x 32 x 3 uint8: RGB pixels 0..255, height, width, channel (as cifar10_uint8.npz stores them)"


def normalize(images: Any, *, dtype: Any = None, flatten: bool = True) -> Any:
    """uint8 images to normalised float rows (or NCHW images), in any array-API namespace.

    The images are scaled to [0, 1], normalised per channel with `MEAN` and `STD`, and flattened
    channel-first (as torchvision's tensors are). Array-API code only, so the same lines run on
    NumPy (`preprocess`) and inside an exported ONNX graph (`arrayml.export.Preprocess`):
    ``(x/255 − mean)/std`` as ``x·scale − offset``.

    Args:
        images: uint8 images (N, 32, 32, 3) of any array-API namespace.
        dtype: a floating dtype of that namespace (default float32).
        flatten: True: (N, 3072) rows (an MLP's input); False: the NCHW batch (N, 3, 32, 32) a
            convolutional network takes (an exported CNN's preprocessing:
            ``functools.partial(normalize, flatten=False)``).

    Returns:
        The normalised array, in the images' namespace and on their device.

    Raises:
        ValueError: the images are not (N, 32, 32, 3).

    Example:
        >>> import numpy as np
        >>> from arrayml.datasets.cifar10 import normalize
        >>> images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
        >>> normalize(images).shape, normalize(images, flatten=False).shape
        ((2, 3072), (2, 3, 32, 32))
    """
    xp, dev = backend.get_namespace_and_device(images, names=("images",), what="cifar10.normalize")
    if images.ndim != 4 or tuple(images.shape[1:]) != (32, 32, 3):
        raise ValueError(f"expected images of shape (N, 32, 32, 3), got {tuple(images.shape)}")
    dtype = xp.float32 if dtype is None else dtype
    scale = xp.asarray(1.0 / (255.0 * np.asarray(STD)), dtype=dtype, device=dev)  # computed in float64
    offset = xp.asarray(np.asarray(MEAN) / np.asarray(STD), dtype=dtype, device=dev)
    block = xp.permute_dims(xp.astype(images, dtype) * scale - offset, (0, 3, 1, 2))
    return xp.reshape(block, (-1, N_FEATURES)) if flatten else block


def preprocess(images: np.ndarray, *, dtype: Any = np.float32, chunk: int = 5000, flatten: bool = True) -> np.ndarray:
    """`normalize` on the host, `chunk` images at a time (the float copy of 50,000 images at once
    would need 600 MB more).

    Args:
        images: uint8 images (N, 32, 32, 3), a NumPy array.
        dtype: the floating dtype of the result.
        chunk: images normalised at a time.
        flatten: (N, 3072) rows (True) or (N, 3, 32, 32) images (False).

    Returns:
        The normalised NumPy array.

    Raises:
        ValueError: the images are not (N, 32, 32, 3).
    """
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"expected images of shape (N, 32, 32, 3), got {images.shape}")
    out = np.empty((images.shape[0], *((N_FEATURES,) if flatten else IMAGE_SHAPE)), dtype=dtype)
    for start in range(0, images.shape[0], chunk):
        out[start:start + chunk] = normalize(images[start:start + chunk], dtype=np.dtype(dtype), flatten=flatten)
    return out


def make_splits(
    arrays: dict[str, np.ndarray], *, val_size: int = 5000, seed: int = 42, subset: int | None = None,
    dtype: Any = np.float32, flatten: bool = True,
) -> Splits:
    """Preprocess the arrays and split off a seeded validation set of `val_size` training images.

    Args:
        arrays: the arrays of `load_cifar10`.
        val_size: how many training images go to the validation set.
        seed: the seed of the split.
        subset: None, or keep only that many of the remaining training images (quick checks).
        dtype: the features' floating dtype.
        flatten: rows of 3072 features (an MLP's input), or False: NCHW images (a CNN's).

    Returns:
        The `arrayml.data.Splits` (host NumPy arrays), with the class names.
    """
    train_idx, val_idx = holdout_split(arrays["x_train"].shape[0], val_size, seed=seed, subset=subset)
    x_all = preprocess(arrays["x_train"], dtype=dtype, flatten=flatten)
    return Splits(
        x_train=x_all[train_idx], y_train=arrays["y_train"][train_idx],
        x_val=x_all[val_idx], y_val=arrays["y_train"][val_idx],
        x_test=preprocess(arrays["x_test"], dtype=dtype, flatten=flatten), y_test=arrays["y_test"],
        n_classes=len(CLASSES), class_names=CLASSES,
    )


def load_splits(
    data_dir: str | os.PathLike | None = None, *, val_size: int = 5000, seed: int = 42,
    subset: int | None = None, dtype: Any = np.float32, download_if_missing: bool = True,
    progress: bool | None = None, flatten: bool = True,
) -> Splits:
    """CIFAR-10 ready for training: `load_cifar10`, then `make_splits` (host NumPy arrays; move
    them to a backend with ``Splits.to``).

    Args:
        data_dir: the folder searched first (see `load_cifar10`).
        val_size: how many training images go to the validation set.
        seed: the seed of the split.
        subset: None, or keep only that many training images (quick checks).
        dtype: the features' floating dtype.
        download_if_missing: download the archive when no usable cache exists.
        progress: a download bar (None: only when stderr is a terminal).
        flatten: rows of 3072 features (True) or NCHW images (False: a CNN's input).

    Returns:
        The `arrayml.data.Splits`.
    """
    arrays = load_cifar10(data_dir, download_if_missing=download_if_missing, progress=progress)
    arrays.pop("path")
    return make_splits(arrays, val_size=val_size, seed=seed, subset=subset, dtype=dtype, flatten=flatten)
