"""Checkpoints: parameters, optimizer state and training progress in one pickle-free ``.npz``.

Layout of the file (read with ``numpy.load(path, allow_pickle=False)``):

    model/<name>       every parameter and buffer (``Module.state()`` names)
    optimizer/<name>   the optimizer's momentum buffers, if any
    best/<name>        the best-validation model so far, if any
    meta.json          UTF-8 JSON as a uint8 array: format version, run configuration,
                       epochs done, history, best epoch and accuracy, divergence

Files are written to a temporary name in the same folder and renamed into place, so a crash or a
kill mid-write leaves the previous checkpoint intact under the real name. Arrays are stored on
the host; `load` returns NumPy arrays that ``Module.load_state`` moves to any backend and device.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import backend
from .fileio import atomic_write

FORMAT = "arrayml-checkpoint"
VERSION = 1
_SECTIONS = ("model", "optimizer", "best")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt, or not an arrayml checkpoint."""


@dataclass
class Checkpoint:
    """The content of a checkpoint file, with host (NumPy) arrays."""

    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)
    best: dict[str, np.ndarray] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def save(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to `path` atomically (temporary file, then rename)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for section in _SECTIONS:
        table = getattr(checkpoint, section)
        for name, value in (table or {}).items():
            arrays[f"{section}/{name}"] = np.asarray(backend.to_numpy(value))
    meta = {"format": FORMAT, "version": VERSION, "has_best": checkpoint.best is not None, **checkpoint.meta}
    arrays["meta.json"] = np.frombuffer(json.dumps(meta, allow_nan=True).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by `save`. Raises `CheckpointError` saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    if "meta.json" not in arrays:
        raise CheckpointError(f"{path} is not an arrayml checkpoint (no meta.json entry)")
    try:
        meta = json.loads(np.asarray(arrays.pop("meta.json"), dtype=np.uint8).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: meta.json is corrupt ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has format {meta.get('format')!r} version {meta.get('version')!r}; "
            f"expected {FORMAT!r} version {VERSION}"
        )
    tables: dict[str, dict[str, np.ndarray]] = {s: {} for s in _SECTIONS}
    for key, value in arrays.items():
        section, _, name = key.partition("/")
        if section not in tables or not name:
            raise CheckpointError(f"{path} holds an unexpected entry {key!r}")
        tables[section][name] = value
    if not tables["model"]:
        raise CheckpointError(f"{path} holds no model parameters")
    return Checkpoint(
        model=tables["model"], optimizer=tables["optimizer"],
        best=tables["best"] if meta.get("has_best") else None, meta=meta,
    )


# --------------------------------------------------------------------------------------------
# Convenience for a model and its optimizer outside the training loop
# --------------------------------------------------------------------------------------------


def save_model(path: str | os.PathLike, model: Any, optimizer: Any = None, meta: dict[str, Any] | None = None) -> Path:
    """Save `model`'s parameters and buffers (and `optimizer`'s momentum buffers) to `path`."""
    velocity = getattr(optimizer, "velocity", {}) if optimizer is not None else {}
    return save(path, Checkpoint(model=model.state(), optimizer=dict(velocity), meta=dict(meta or {})))


def load_model(path: str | os.PathLike, model: Any, optimizer: Any = None) -> Checkpoint:
    """Load `path` into `model` (any backend and device: arrays are converted to where the model
    lives) and, if given, `optimizer`. Raises `CheckpointError` for a bad file and `ValueError`
    naming every parameter whose name, shape or dtype differs; nothing is changed on error."""
    ckpt = load(path)
    names = set(model.parameters())
    unknown = sorted(set(ckpt.optimizer) - names)
    if unknown:
        raise ValueError(f"{path}: optimizer state for parameters this model lacks: {unknown}")
    model.load_state(ckpt.model)
    if optimizer is not None:
        where = model.placement()
        optimizer.velocity = {k: backend.convert(v, where.xp, where.device, where.dtype) for k, v in ckpt.optimizer.items()}
    return ckpt
