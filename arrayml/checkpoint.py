"""Checkpoints: parameters, optimizer state and training progress in one pickle-free ``.npz``.

Layout of the file (read with ``numpy.load(path, allow_pickle=False)``):

    model/<name>       every parameter and buffer (``Module.state()`` names)
    optimizer/<key>    the optimizer's state, flat (`arrayml.optim.flatten_state`): one entry per
                       slot and parameter (``optimizer/momentum/0.weight``), or per scalar entry
    best/<name>        the best-validation model so far, if any
    meta.json          UTF-8 JSON as a uint8 array: format version, the model's architecture
                       (``Module.config()`` and dtype, so `load_model` can rebuild it), run
                       configuration, epochs done, history, best epoch and accuracy, divergence

Files are written to a temporary name in the same folder and renamed into place, so a crash or a
kill mid-write leaves the previous checkpoint intact under the real name. A killed write leaves
its hidden temporary file (``.<name>.<random>.part``) behind; the next `save` to the same path
removes those older than `STALE_PART_SECONDS` (a younger one may be another process's write in
progress). Arrays are stored on the host; `load` returns NumPy arrays that ``Module.load_state``
moves to any backend and device.

Refused, with the reason: saving into a folder that is a file or onto a folder's name, an entry
that is not an array or has a dtype a ``.npz`` cannot hold (bfloat16), `save_model` of something
that is not a `Module`; loading anything that is not an arrayml checkpoint (a ``.npy`` array, a
pickle, another ``.npz``), a truncated file, or optimizer state that does not fit the model or
the optimizer. Version 1 files (momentum buffers as ``optimizer/<name>``) still load.
"""

from __future__ import annotations

import glob
import json
import os
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import backend
from .fileio import atomic_write
from .modules.architecture import ArchitectureError, build, differences
from .modules.base import Module
from .optim import Optimizer, flatten_state, unflatten_state

FORMAT = "arrayml-checkpoint"
VERSION = 2
#: Versions `load` reads: 1 held SGD's momentum buffers as ``optimizer/<parameter>``.
READABLE_VERSIONS = (1, 2)
_SECTIONS = ("model", "optimizer", "best")
#: A hidden ``.part`` file older than this (seconds) is a killed write's leftover.
STALE_PART_SECONDS = 300.0
_WHAT_IT_IS = (
    "an arrayml checkpoint is a .npz archive written by arrayml.checkpoint.save or save_model, "
    "holding model/<name> arrays (optimizer/ and best/ ones too, if any) and a meta.json entry"
)


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt, or not an arrayml checkpoint."""


def _check_destination(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"cannot save a checkpoint to {path}: it is a folder; give a file name such as {path / 'checkpoint.npz'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot save a checkpoint to {path}: {parent} is a file, not a folder")
            return


def _host_entry(key: str, value: Any) -> np.ndarray:
    """An entry's array on the host, if a .npz can hold it without pickling."""
    if value is None or not hasattr(value, "dtype"):
        raise TypeError(f"checkpoint entry {key!r} must be an array, got {type(value).__name__}")
    name = backend.dtype_name(value.dtype)
    if name == "bfloat16":
        raise TypeError(
            f"checkpoint entry {key!r} has dtype bfloat16, which a .npz file (NumPy) cannot hold; "
            "convert it first, e.g. model.to(dtype='float32')"
        )
    try:
        host = np.asarray(backend.to_numpy(value))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"checkpoint entry {key!r} ({type(value).__name__}, dtype {name}) cannot be stored: {exc}") from None
    if host.dtype.hasobject:
        raise TypeError(f"checkpoint entry {key!r} holds Python objects; a checkpoint holds numeric arrays only (no pickles)")
    return host


def _remove_stale_parts(path: Path, now: float) -> None:
    """Delete the hidden temporary files of earlier writes to `path` that were killed."""
    for part in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
        except FileNotFoundError:  # another process cleaned it up first
            pass


@dataclass
class Checkpoint:
    """The content of a checkpoint file, with host (NumPy) arrays.

    Attributes:
        model: the model's parameters and buffers by name (``Module.state()``): in a training
            run's checkpoint, the *last* model, the one its optimizer state continues.
        optimizer: the optimizer's state, flat (`arrayml.optim.flatten_state`); empty if none.
        best: in a training run's checkpoint, the parameters and buffers of the best-validation
            model so far (`arrayml.training.FitState.best_state`, the model the run reports);
            None if the file holds none (`save_model`, or a run without a validation set).
        meta: the file's metadata (format, version, architecture, the run's configuration and
            progress, whatever the writer added).
        module: the model `load_model` loaded (given, or rebuilt from the architecture).
        which: which arrays `load_model` put into `module`: ``"best"`` (`best`) or ``"last"``
            (`model`); None for a `Checkpoint` that `load_model` did not make.
    """

    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)
    best: dict[str, np.ndarray] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    module: Module | None = None
    which: str | None = None


def save(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to `path` atomically (temporary file, then rename): an interrupted save
    leaves the old file as it was.

    Args:
        path: the file to write (a ``.npz`` archive, whatever its name).
        checkpoint: what to write.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        TypeError: `checkpoint` is not a `Checkpoint`, or an entry is not an array a ``.npz`` can
            hold without pickling (bfloat16, objects).
        IsADirectoryError: `path` is a folder.
        NotADirectoryError: a parent of `path` is a file.
    """
    path = Path(path)
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"checkpoint.save expects a Checkpoint, got {type(checkpoint).__name__}")
    _check_destination(path)
    arrays: dict[str, np.ndarray] = {}
    for section in _SECTIONS:
        table = getattr(checkpoint, section)
        if table is not None and not isinstance(table, Mapping):
            raise TypeError(f"Checkpoint.{section} must be a dict of arrays by name, got {type(table).__name__}")
        for name, value in (table or {}).items():
            arrays[f"{section}/{name}"] = _host_entry(f"{section}/{name}", value)
    meta = {"format": FORMAT, "version": VERSION, "has_best": checkpoint.best is not None, **checkpoint.meta}
    arrays["meta.json"] = np.frombuffer(json.dumps(meta, allow_nan=True).encode("utf-8"), dtype=np.uint8)
    _remove_stale_parts(path, time.time())
    with atomic_write(path) as f:
        np.savez(f, allow_pickle=False, **arrays)  # nothing that would need a pickle gets in
    return path


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by `save`.

    Args:
        path: the file to read.

    Returns:
        The `Checkpoint`, with host (NumPy) arrays.

    Raises:
        CheckpointError: the file is missing, a folder, empty, truncated, corrupt, of another
            format or a newer version (saying what is wrong).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        head = f.read(6)
    if not head:
        raise CheckpointError(f"{path} is empty (a write that never finished?); {_WHAT_IT_IS}")
    if head == b"\x93NUMPY":
        raise CheckpointError(f"{path} is a NumPy .npy array file, not an arrayml checkpoint; {_WHAT_IT_IS}")
    if not head.startswith(b"PK"):
        raise CheckpointError(
            f"{path} is not an arrayml checkpoint, or is corrupt: it is not a .npz (zip) archive "
            f"(it starts with {head!r}); {_WHAT_IT_IS}"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "meta.json" not in npz.files:
                raise CheckpointError(f"{path} is not an arrayml checkpoint: a zip (.npz) archive without a meta.json entry; {_WHAT_IT_IS}")
            arrays = {}
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError as exc:
                    if "pickle" not in str(exc) and "Object arrays" not in str(exc):
                        raise
                    raise CheckpointError(
                        f"{path} is not an arrayml checkpoint: its entry {key!r} holds pickled "
                        f"Python objects, which arrayml never writes nor loads; {_WHAT_IT_IS}"
                    ) from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    try:
        meta = json.loads(np.asarray(arrays.pop("meta.json"), dtype=np.uint8).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: meta.json is corrupt ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") not in READABLE_VERSIONS:
        got = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else (None, None)
        raise CheckpointError(
            f"{path} has format {got[0]!r} version {got[1]!r}; "
            f"expected {FORMAT!r} version {' or '.join(map(str, READABLE_VERSIONS))}"
        )
    tables: dict[str, dict[str, np.ndarray]] = {s: {} for s in _SECTIONS}
    for key, value in arrays.items():
        section, _, name = key.partition("/")
        if section not in tables or not name:
            raise CheckpointError(f"{path} holds an unexpected entry {key!r}")
        tables[section][name] = value
    if not tables["model"]:
        raise CheckpointError(f"{path} holds no model parameters")
    if meta["version"] == 1:  # SGD's momentum buffers, by parameter name
        tables["optimizer"] = {f"momentum/{name}": v for name, v in tables["optimizer"].items()}
    return Checkpoint(
        model=tables["model"], optimizer=tables["optimizer"],
        best=tables["best"] if meta.get("has_best") else None, meta=meta,
    )


# --------------------------------------------------------------------------------------------
# Convenience for a model and its optimizer outside the training loop
# --------------------------------------------------------------------------------------------


def architecture(model: Module) -> dict[str, Any] | None:
    """What a checkpoint records of `model`'s architecture.

    Args:
        model: the model.

    Returns:
        ``{"config": model.config(), "dtype": ...}``, or None for a model whose layers cannot
        describe themselves (it then loads only into a model given by hand).
    """
    where = model.placement()
    try:
        config = model.config()
    except NotImplementedError:
        return None
    return {"config": config, "dtype": None if where is None else backend.dtype_name(where.dtype)}


def save_model(path: str | os.PathLike, model: Module, optimizer: Any = None, meta: dict[str, Any] | None = None) -> Path:
    """Save `model`'s parameters and buffers, its architecture (so that `load_model` can rebuild
    it) and `optimizer`'s state to `path`, atomically.

    Args:
        path: the file to write.
        model: the arrayml `Module` to save (any backend and device).
        optimizer: None, or the optimizer whose eager state is saved beside the model.
        meta: None, or a JSON-able dict stored with the checkpoint.

    Returns:
        The path written.

    Raises:
        TypeError: `model` is not a `Module`, `optimizer` not an arrayml optimizer, `meta` not a
            dict, or an array cannot be stored (see `save`).

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> import arrayml as am
        >>> from arrayml import checkpoint
        >>> model = am.MLP(4, [8], 3, rng=1)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> _ = checkpoint.save_model(path, model)
        >>> loaded = checkpoint.load_model(path).module  # rebuilt from the recorded architecture
        >>> loaded
        MLP(
          (0): Linear(4, 8, input_layer=True)
          (1): ReLU()
          (2): Linear(8, 3)
        )
        >>> x = np.ones((2, 4), dtype=np.float32)
        >>> bool(np.array_equal(loaded(x), model.eval()(x)))
        True
    """
    if not isinstance(model, Module):
        raise TypeError(
            f"save_model expects an arrayml Module as model, got {type(model).__name__}; to save "
            "arrays by name, use checkpoint.save(path, Checkpoint(model=arrays))"
        )
    _check_optimizer(optimizer, "save_model")
    if meta is not None and not isinstance(meta, Mapping):
        raise TypeError(f"save_model meta must be a dict, got {type(meta).__name__}")
    state = flatten_state(optimizer.state) if optimizer is not None else {}
    meta = {**dict(meta or {}), "architecture": architecture(model)}
    return save(path, Checkpoint(model=model.state(), optimizer=state, meta=meta))


def _check_optimizer(optimizer: Any, what: str) -> None:
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"{what} expects an arrayml optimizer (arrayml.SGD, or any arrayml.optim.Optimizer) or None, "
            f"got {type(optimizer).__name__}"
        )


#: What `load_model`'s `which` takes.
WHICH = ("best", "last")


def _recorded_architecture(path: Any, recorded: Any) -> tuple[Mapping[str, Any], Any]:
    """The config and dtype of a checkpoint's recorded architecture, each checked for shape (a
    hand-edited file): a `CheckpointError` naming the entry."""
    def bad(where: str, problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: its recorded architecture cannot be rebuilt: {where}: {problem}")

    if not isinstance(recorded, Mapping):
        raise bad("architecture", f"a dict with 'config' and 'dtype' entries, got {type(recorded).__name__}")
    if "config" not in recorded:
        raise bad("architecture", "no 'config' entry (what Module.config() returns)")
    dtype = recorded.get("dtype")
    try:
        backend.placement(None, None, dtype)  # a dtype parameters may have
    except (TypeError, ValueError) as exc:
        raise bad("architecture.dtype", str(exc)) from None
    return recorded["config"], dtype


def load_model(
    path: str | os.PathLike, model: Module | None = None, optimizer: Any = None, *, which: str | None = None,
    xp: Any = None, device: Any = None,
) -> Checkpoint:
    """Load `path` into `model` (any backend and device: arrays are converted to where the model
    lives) and, if given, `optimizer`; with no `model`, rebuild the model from the architecture
    the checkpoint records. The model is ``checkpoint.module`` of the returned `Checkpoint`, in
    **evaluation mode** (ready to predict: no dropout, batch norm's running statistics;
    ``module.train()`` to train it by hand, `arrayml.training.fit` switches by itself). Nothing
    is changed on error. Checkpoints written before architectures were recorded load into a
    model given by hand.

    Args:
        path: the file to read.
        model: the model to load into, or None to rebuild it.
        optimizer: None, or an optimizer whose state is loaded (with the last model only).
        which: the weights to load from a training run's checkpoint, which holds two models:
            ``"best"`` (the best-validation model, what the run reported), ``"last"`` (the last
            epoch's, which the optimizer state continues: to resume training). None (the
            default): the best when the file holds one, else the last (a `save_model` file holds
            only that). What was loaded is ``checkpoint.which``.
        xp, device: where a rebuilt model lives (default NumPy, CPU), in its recorded dtype.

    Returns:
        The `Checkpoint`, with ``module`` the loaded model and ``which`` what was loaded.

    Raises:
        CheckpointError: a bad file (see `load`); ``which="best"`` and the file holds no best
            model; with no `model`, one that records no architecture, or whose recorded
            architecture cannot be rebuilt (naming the entry:
            ``architecture.layers[3].features: missing``).
        TypeError: `model` is not a `Module`, or `optimizer` not an arrayml optimizer.
        ValueError: `which` is unknown, an optimizer with the best model, or the checkpoint's
            architecture, parameters or optimizer state differ from the model's (every
            difference named).

    Example:
        See `save_model`.
    """
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"load_model expects an arrayml Module as model (or none, to rebuild it), got {type(model).__name__}")
    _check_optimizer(optimizer, "load_model")
    if which is not None and (not isinstance(which, str) or which not in WHICH):
        raise ValueError(f"load_model which must be 'best' or 'last' (or None: the best if the file holds one), got "
                         f"{which!r}")
    ckpt = load(path)
    if which == "best" and ckpt.best is None:
        raise CheckpointError(f"{path} holds no best-validation model (it was written by save_model, or by a run "
                              "without a validation set): load its model with which='last' (or which=None)")
    chosen = which if which is not None else ("best" if ckpt.best is not None else "last")
    if chosen == "best" and optimizer is not None:
        raise ValueError(
            f"{path} holds the last model and the best-validation one, and the optimizer state it holds belongs to "
            "the last model, not the best: pass which='last' to continue training (with the optimizer), or leave "
            "the optimizer out to load the best model"
        )
    recorded = ckpt.meta.get("architecture")
    if model is None:
        if not recorded:
            raise CheckpointError(
                f"{path} records no architecture (written before arrayml recorded them, or by a model whose layers "
                "cannot describe themselves): build the model by hand and pass it, load_model(path, model)"
            )
        config, dtype = _recorded_architecture(path, recorded)
        try:
            model = build(config, xp=xp, device=device, dtype=dtype)
        except ArchitectureError as exc:
            raise CheckpointError(f"{path}: its recorded architecture cannot be rebuilt: {exc}") from None
    elif recorded and (mine := architecture(model)) is not None:
        config, _ = _recorded_architecture(path, recorded)
        differ = differences(mine["config"], config)
        if differ:
            raise ValueError(f"{path} holds another architecture than this model: " + "; ".join(differ))
    state = None
    if optimizer is not None:
        try:
            state = optimizer.fitted_state(unflatten_state(ckpt.optimizer), model.parameters())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: its optimizer state does not fit: {exc}") from None
    arrays = ckpt.best if chosen == "best" else ckpt.model
    assert arrays is not None
    model.load_state(arrays)
    if optimizer is not None:
        optimizer.set_state(state)  # checked above, against these parameters
    model.eval()
    ckpt.module, ckpt.which = model, chosen
    return ckpt
