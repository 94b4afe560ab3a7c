"""Small CIFAR-10 look-alikes in the real formats: the official tar.gz of pickled batches, and
the npz cache. Built in temporary folders; no test touches the network."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def fake_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 32, 32, 3) uint8 images whose pixels encode (sample, channel), and labels 0..9."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n, dtype=np.int64) % 10
    return x, y


def batch_bytes(x: np.ndarray, y: np.ndarray, *, name: bytes = b"batch") -> bytes:
    """A batch as the official archive pickles it: rows of 1024 R, 1024 G, 1024 B values."""
    rows = np.reshape(np.transpose(x, (0, 3, 1, 2)), (x.shape[0], 3072))
    return pickle.dumps({b"batch_label": name, b"labels": [int(v) for v in y], b"data": rows,
                         b"filenames": [b"img%d.png" % i for i in range(len(y))]}, protocol=2)


def make_archive(path: Path, *, per_batch: int = 20, test: int = 30, payload: dict[str, bytes] | None = None) -> tuple[Path, str, dict]:
    """Write a cifar-10-python.tar.gz look-alike; returns (path, md5, the arrays it holds)."""
    xs, ys = [], []
    members = {}
    for i in range(1, 6):
        x, y = fake_images(per_batch, seed=i)
        xs.append(x)
        ys.append(y)
        members[f"cifar-10-batches-py/data_batch_{i}"] = batch_bytes(x, y)
    xt, yt = fake_images(test, seed=99)
    members["cifar-10-batches-py/test_batch"] = batch_bytes(xt, yt)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": []}, protocol=2)
    members.update(payload or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    arrays = {"x_train": np.concatenate(xs), "y_train": np.concatenate(ys), "x_test": xt, "y_test": yt}
    return path, md5, arrays


def make_cache(folder: Path, *, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """A cifar10_uint8.npz look-alike with learnable structure: the class sets the mean colour."""
    rng = np.random.default_rng(seed)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, size=n).astype(np.int64)
        base = (np.arange(10)[:, None] * np.array([25, 13, 7])[None, :]) % 256
        x = base[y][:, None, None, :] + rng.normal(0, 40, size=(n, 32, 32, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y

    x_train, y_train = images(n_train)
    x_test, y_test = images(n_test)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cifar10_uint8.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path
