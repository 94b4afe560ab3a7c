"""The run's data: CIFAR-10 loaded, split and normalised once per process (a sweep of runs
loads it once), with a description of the file it came from for results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from arrayml.data import Splits
from arrayml.datasets import cifar10
from arrayml.fileio import file_digest

from .config import RunConfig

#: SHA-256 of the team's offline CIFAR-10 copy (../shared/data/cifar10), so results say which
#: data they came from.
SHARED_COPY_SHA256 = "5768bc366bb810fb233fbb7bfb53bcfbbb48dda40cc463c615dcf35860044f52"

_SPLITS: dict[tuple, tuple[Splits, dict[str, Any]]] = {}


def load_splits(config: RunConfig) -> tuple[Splits, dict[str, Any]]:
    """Preprocessed host (NumPy) splits and a description of the data file; cached per process,
    so a sweep loads and normalises CIFAR-10 once."""
    flatten = not config.takes_images  # an MLP's rows of 3072 features, or a CNN's NCHW images
    key = (config.data_dir, config.seed, config.subset, config.val_size, config.dtype, flatten)
    if key not in _SPLITS:
        # download bar: on a terminal only (None), never with --quiet
        arrays = cifar10.load_cifar10(config.data_dir, progress=False if config.quiet else None)
        path = arrays.pop("path")
        splits = cifar10.make_splits(arrays, val_size=config.val_size, seed=config.seed, subset=config.subset,
                                     dtype=np.dtype(config.dtype), flatten=flatten)
        info = {"path": str(Path(path).resolve()), "sha256": file_digest(path, "sha256"), "sizes": splits.sizes()}
        if info["sha256"] == SHARED_COPY_SHA256:
            info["note"] = "the team's JPEG-derived offline copy (exact labels, lossy pixels), not the official archive"
        _SPLITS[key] = (splits, info)
    return _SPLITS[key]
