"""What both exports share: the outputs an inference graph can return, `Preprocess`, the checks of
paths and models, writing an ``.onnx`` file with its metadata, and naming the layer that failed."""


from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import backend, validate
from ..backend import Array
from ..fileio import atomic_write
from ..modules.base import Loss, Module
from ..optim.base import Optimizer

#: What an inference graph returns: the model's output, its softmax, or the index of its maximum.
OUTPUTS = ("logits", "probabilities", "label")
#: Where an inference graph's parameters and running statistics are: baked in, or graph inputs.
WEIGHTS = ("constants", "inputs")


class ExportError(ValueError):
    """A model, a setting or a path that cannot be exported; raised before anything is written."""


class UnwritablePathError(ExportError, OSError):
    """A folder in which no file can be created: an `ExportError` raised before tracing, and an
    `OSError` too, as the write's own failure would have been."""


@dataclass(frozen=True)
class Preprocess:
    """Preprocessing that becomes part of an inference graph.

    Attributes:
        fn: ``fn(raw, dtype=...)``: array-API code from a batch of raw inputs (shape
            ``(N, *shape)``, dtype `dtype`) to the model's input of the given floating dtype; it
            receives ndonnx arrays while the graph is built (e.g.
            `arrayml.datasets.cifar10.normalize`).
        shape: one raw sample's shape, e.g. ``(32, 32, 3)``.
        dtype: the raw inputs' dtype by name, e.g. ``"uint8"``.
        description: what the raw input is, for the model's metadata.
    """

    fn: Callable[..., Array]
    shape: tuple[int, ...]
    dtype: str = "uint8"
    description: str = ""


# --------------------------------------------------------------------------------------------
# Paths and files
# --------------------------------------------------------------------------------------------


def check_path(path: str | os.PathLike) -> Path:
    """`path` as a `Path`, if an ONNX file can be written there: its folder must exist (and be a
    folder) and `path` must not be a folder.

    Args:
        path: the file name to check (`str` or `os.PathLike`).

    Returns:
        The `pathlib.Path`, with ``~`` expanded.

    Raises:
        ExportError: `path` is not a file name, is a folder, or its folder is missing or a file.
        UnwritablePathError: nothing can be created in its folder.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ExportError(f"the ONNX path must be a file name (str or os.PathLike), got {type(path).__name__}")
    out = Path(path).expanduser()
    if out.is_dir():
        raise ExportError(f"cannot write the ONNX model to {out}: it is a folder; name a file, e.g. {out / 'model.onnx'}")
    folder = out.parent
    if not folder.exists():
        raise ExportError(f"cannot write the ONNX model to {out}: the folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise ExportError(f"cannot write the ONNX model to {out}: {folder} is a file, not a folder")
    try:  # what the write will do first: create a hidden file beside the target (permissions alone do not
        # tell: root passes every permission check, yet creates nothing in /proc or on a read-only mount)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".probe")
    except OSError as exc:
        raise UnwritablePathError(f"cannot write the ONNX model to {path}: nothing can be created in the folder "
                                  f"{folder} ({exc.strerror or type(exc).__name__}); choose another folder") from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)
    return out


def check_class_names(names: Any, n_out: int, what: str) -> list[str]:
    """`names` as a list of `n_out` distinct strings, one per output of the model; otherwise an
    `ExportError` naming what came (not a list, a name that is not a string, a wrong count)."""
    if isinstance(names, (str, bytes, Mapping)) or not isinstance(names, Sequence):
        got = f"{type(names).__name__} {names!r}" if isinstance(names, (str, bytes, int, float)) else type(names).__name__
        raise ExportError(f"{what} class_names must be a list of {n_out} names (strings), one per output, got {got}")
    out = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ExportError(f"{what} class_names[{i}] must be a string, got {type(name).__name__} {name!r}")
        out.append(str(name))
    if len(out) != n_out:
        raise ExportError(f"{what}: {len(out)} class names for a model with {n_out} outputs")
    seen: set[str] = set()
    for name in out:
        if name in seen:
            raise ExportError(f"{what} class_names must be distinct, got {name!r} twice")
        seen.add(name)
    return out


def check_metadata(metadata: Any, reserved: Sequence[str], what: str) -> dict[str, str]:
    """`metadata` as a dict of strings to strings, with none of the `reserved` keys (what arrayml
    records itself); otherwise an `ExportError` naming the entry."""
    if not isinstance(metadata, Mapping):
        raise ExportError(f"{what} metadata must be a mapping of names to text (dict[str, str]), got "
                          f"{type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ExportError(f"{what} metadata keys must be strings, got {type(key).__name__} {key!r}")
        if key in reserved or key == "arrayml_version":
            raise ExportError(f"{what} metadata[{key!r}] is what arrayml records itself ({', '.join(reserved)}, "
                              "arrayml_version); choose another key")
        if not isinstance(value, str):
            raise ExportError(f"{what} metadata[{key!r}] must be a string (str(value) to record a number), got "
                              f"{type(value).__name__} {value!r}")
    return {str(k): str(v) for k, v in metadata.items()}


def _metadata_props(model: Any, metadata: Mapping[str, Any]) -> None:
    """Add `metadata` (values as text; lists and dicts as JSON) to the model's metadata_props,
    keeping what is there (ndonnx's schema)."""
    props = {p.key: p.value for p in model.metadata_props}
    props.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _architecture(model: Module) -> dict[str, Any]:
    """``{"architecture": model.config()}`` (JSON in the metadata: what rebuilds the model with
    `arrayml.modules.architecture.build`), or nothing for a module that cannot record its own."""
    try:
        return {"architecture": model.config()}
    except NotImplementedError:
        return {}


def write_onnx(model: Any, path: str | os.PathLike, metadata: Mapping[str, Any]) -> Path:
    """Write the ONNX `model` with `metadata` to `path` (checked first), through a temporary
    file renamed into place, so that a failed write leaves no file."""
    from .. import __version__

    out = check_path(path)
    model.producer_name, model.producer_version = "arrayml", __version__
    _metadata_props(model, {"arrayml_version": __version__, **metadata})
    data = model.SerializeToString()
    with atomic_write(out) as f:
        f.write(data)
    return out


# --------------------------------------------------------------------------------------------
# Which layer failed
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _attributed(what: str) -> Iterator[None]:
    """Turn an error raised while a graph is traced into an `ExportError` that names the layer
    (or the loss, or the optimizer) whose code raised it."""
    try:
        yield
    except (ExportError, backend.BackendUnavailableError):
        raise
    except Exception as exc:
        raise ExportError(
            f"{what}: {_culprit(exc)} cannot be exported to ONNX: {type(exc).__name__}: {exc}. (Exporting runs the "
            "layers' own array-API code on ndonnx arrays: code that calls a library directly (NumPy, torch) "
            "instead of the namespace of its input, reads a value on the host (float(), bool(), to_numpy) "
            "or branches on one cannot be part of a graph)"
        ) from exc


def _culprit(exc: BaseException) -> str:
    """The innermost layer, loss or optimizer whose method was running when `exc` was raised,
    named by its path in the model (found by walking down from the outermost module among the
    traceback's frames)."""
    owners: list[Any] = []
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, (Module, Loss, Optimizer)) and (not owners or owners[-1] is not owner):
            owners.append(owner)
        tb = tb.tb_next
    if not owners:
        return "the model"
    last = owners[-1]
    if isinstance(last, Loss):
        return f"the loss {type(last).__name__}"
    if isinstance(last, Optimizer):
        return f"the optimizer {type(last).__name__}"
    modules = [o for o in owners if isinstance(o, Module)]
    path: list[str] = []
    current = modules[0]
    for module in modules[1:]:
        for name, node in current.named_modules():
            if node is module and name:
                path.append(name)
                current = module
                break
    name = ".".join(path)
    return f"layer {name!r} ({type(last).__name__})" if name else f"the model ({type(last).__name__})"


# --------------------------------------------------------------------------------------------
# What can be exported
# --------------------------------------------------------------------------------------------


def _exportable(model: Any, dtype: Any, what: str) -> backend.Placement:
    """Where `model`'s parameters live, if it can be exported as a graph of `dtype` (None: its own)."""
    if not isinstance(model, Module):
        raise ExportError(f"{what} needs an arrayml Module, got {type(model).__name__}")
    where = model.placement()
    if where is None:
        raise ExportError(f"{what}: the model has no parameters, so there is nothing to export "
                          f"({type(model).__name__}); export a model with at least one layer that learns")
    if dtype is not None:
        asked = backend.dtype_name(dtype) if not isinstance(dtype, str) else dtype
        have = backend.dtype_name(where.dtype)
        if asked not in backend.PARAMETER_DTYPES:
            raise ExportError(f"{what}: dtype must be 'float32' or 'float64', got {dtype!r}")
        if asked != have:
            raise ExportError(
                f"{what}: a {asked} graph was asked for, but the model's parameters are {have}; the export "
                f"does not convert silently: export a {asked} copy (copy.deepcopy(model).to(dtype={asked!r})), "
                f"or leave dtype out"
            )
    return where


def _features(model: Module, features: int | None, what: str) -> int:
    if features is not None:
        return _positive(features, f"{what} features")
    found = getattr(model, "in_features", None)
    if found is None:
        raise ExportError(f"{what}: cannot tell how many input features {type(model).__name__} takes; pass features=N")
    return int(found)


def _input_shape(model: Module, features: int | None, input_shape: Any, what: str) -> tuple[int, ...]:
    """One sample's shape: `input_shape` if given (``(C, H, W)`` for images), else
    ``(features,)``, else what the model says (``model.input_shape``: a `CNN`'s images, a
    `Sequential`'s first layer's), else ``(model.in_features,)``."""
    if input_shape is not None:
        if features is not None:
            raise ExportError(f"{what}: give features (rows) or input_shape (e.g. images (C, H, W)), not both")
        if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)) or not input_shape:
            raise ExportError(f"{what}: input_shape must be one sample's shape, e.g. (3, 32, 32), got {input_shape!r}")
        return tuple(_positive(n, f"{what} input_shape[{i}]") for i, n in enumerate(input_shape))
    if features is None and hasattr(model, "input_shape"):
        shape = model.input_shape
        if shape is None:
            raise ExportError(f"{what}: cannot tell the shape of the inputs {type(model).__name__} takes (no layer "
                              "says, or its first layer takes images of any size); pass input_shape=(channels, height, "
                              "width), or features=N for rows")
        return tuple(int(n) for n in shape)
    return (_features(model, features, what),)


def _positive(value: Any, what: str) -> int:
    try:
        return validate.positive_int(value, what)
    except (TypeError, ValueError) as exc:
        raise ExportError(str(exc)) from None
