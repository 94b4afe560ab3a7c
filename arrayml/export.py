"""Models that leave the library: ONNX export from the same layer code, through ndonnx.

    from arrayml import export
    export.to_onnx(model, "model.onnx")                      # inference: eval mode, any batch size
    step = export.train_step_to_onnx(model, SoftmaxCrossEntropy(validate=False),
                                     SGD(0.1, momentum=0.9), batch_size=64)
    loss = step(x, y, lr)                                    # one training step, run by onnxruntime
    step.save("train_step.onnx")                             # the whole step as one ONNX graph

There is no exporter here, no table mapping layers to ONNX operators. ndonnx implements the array
API standard with arrays that are nodes of an ONNX graph, and every layer of arrayml is written
against that standard: given ndonnx arrays, the layers' own ``forward`` — and for the training
step their hand-written ``backward``, the loss and the optimizer's pure ``update`` — build the
graph of what they compute (`arrayml.backend.trace_onnx`). A new layer or optimizer exports as
soon as it exists, provided it keeps the rules every compiled step needs: no host reads
(``float(x)``, ``bool(x)``), no Python branch on a value, arrays made through the namespace of
its inputs.

`to_onnx` writes an inference graph: the model in evaluation mode (batch norm's running
statistics), its parameters as constants, a dynamic batch dimension unless ``batch=`` fixes one,
and optionally the preprocessing inside the graph (`Preprocess`: the images as the data set
stores them go in, logits come out), with metadata (arrayml's version, the model's architecture, the
input's layout, the output, the class names).

`train_step_to_onnx` is `arrayml.compile.CompiledStep` with onnxruntime as the compiler: the same
pure function of (parameters, buffers, optimizer state, batch, rate), run on a clone of the
model, traced into one graph for a fixed batch size. Its inputs are ``params/<name>``,
``buffers/<name>``, ``opt_state/<slot>/<name>``, ``x``, ``y`` and ``lr``; its outputs
``new_params/<name>``, ``new_buffers/<name>``, ``new_opt_state/<slot>/<name>``, ``loss`` (and
``metrics/...``). Calling it runs one step and puts the results into the model and
``optimizer.state``, exactly as a compiled step does.

Bad input is refused before anything is written: a model without parameters, a path whose folder
does not exist (or is a file), a layer that cannot be traced (named, with the reason), a dtype
other than the model's, no ``[onnx]`` extra (`ExportError` or `BackendUnavailableError`, whose
message names the install command); a batch of another size than the exported step's fixed
one. Files are written through a temporary file renamed into place: a failed write leaves none.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import backend, validate
from .backend import Array, OnnxFunction
from .compile import CompiledStep
from .fileio import atomic_write
from .modules.base import Loss, Module
from .modules.softmax import Softmax
from .optim.base import Optimizer

__all__ = ["ExportError", "OUTPUTS", "OnnxTrainStep", "Preprocess", "check_path", "to_onnx", "train_step_to_onnx"]

#: What an inference graph returns: the model's output, its softmax, or the index of its maximum.
OUTPUTS = ("logits", "probabilities", "label")


class ExportError(ValueError):
    """A model, a setting or a path that cannot be exported; raised before anything is written."""


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
    folder) and `path` must not be a folder. Raises `ExportError` saying which."""
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
    return out


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
    from . import __version__

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
# Inference
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


def _positive(value: Any, what: str) -> int:
    try:
        return validate.positive_int(value, what)
    except (TypeError, ValueError) as exc:
        raise ExportError(str(exc)) from None


def to_onnx(
    model: Module, path: str | os.PathLike | None, *, batch: int | None = None, output: str = "logits",
    preprocess: Preprocess | None = None, dtype: Any = None, class_names: Sequence[str] | None = None,
    features: int | None = None, metadata: Mapping[str, Any] | None = None,
) -> OnnxFunction:
    """Export `model` for inference as an ONNX graph; returns the `OnnxFunction` (``fn(x)`` runs
    it in onnxruntime, ``fn.model`` is the ``onnx.ModelProto``).

    Args:
        model: an arrayml model on any backend; exported in evaluation mode (the live model's
            mode is left as it is).
        path: the ``.onnx`` file to write (its folder must exist), or None to build only.
        batch: a fixed batch size; None (default): a dynamic batch dimension ``N``.
        output: ``"logits"`` (the model's output), ``"probabilities"`` (its softmax) or
            ``"label"`` (the index of the largest output, int64).
        preprocess: a `Preprocess` to put in front of the model inside the graph; the graph
            then takes the raw inputs it describes.
        dtype: the floating dtype of the graph: the model's (None); another is an error.
        class_names: recorded in the metadata (one per output column).
        features: the model's input width, when the model cannot say (``model.in_features``).
        metadata: more ``key: value`` pairs for the model's metadata.

    Raises `ExportError` (before anything is written) for a model without parameters, a path
    that cannot be written, a setting out of range, a layer that cannot be traced (named);
    `BackendUnavailableError` without the ``[onnx]`` extra.
    """
    what = "to_onnx"
    where = _exportable(model, dtype, what)
    out_path = check_path(path) if path is not None else None
    if output not in OUTPUTS:
        raise ExportError(f"{what}: output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if batch is not None:
        batch = _positive(batch, f"{what} batch")
    if preprocess is not None and not isinstance(preprocess, Preprocess):
        raise ExportError(f"{what}: preprocess must be an arrayml.export.Preprocess, got {type(preprocess).__name__}")
    n_features = _features(model, features, what)
    n_out = getattr(model, "out_features", None)
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if n_out is not None and len(class_names) != n_out:
            raise ExportError(f"{what}: {len(class_names)} class names for a model with {n_out} outputs")
    xp, _, _ = backend.onnx_modules()
    dtype_text = backend.dtype_name(where.dtype)
    dim: int | str = "N" if batch is None else batch
    if preprocess is not None:
        spec = backend.graph_input((dim, *preprocess.shape), preprocess.dtype)
    else:
        spec = backend.graph_input((dim, n_features), dtype_text)

    graph_model = model.clone().eval().to(xp)  # constants of the graph; the live model is untouched

    def infer(x: Array) -> Array:
        if preprocess is not None:
            x = preprocess.fn(x, dtype=getattr(xp, dtype_text))
            got = (tuple(x.shape[1:]), backend.dtype_name(x.dtype))
            if got != ((n_features,), dtype_text):
                raise ExportError(f"{what}: preprocess returns rows of shape {got[0]} and dtype {got[1]}, but the "
                                  f"model takes ({n_features},) {dtype_text}")
        y = graph_model.forward(x)
        if output == "probabilities":
            y = Softmax().forward(y)
        elif output == "label":
            y = xp.argmax(y, axis=1)
        return y

    with _attributed(what):
        fn = backend.trace_onnx(infer, (spec,), names=("x",), output_names=output)
    if out_path is not None:
        width = "" if output == "label" else f" x {n_out if n_out is not None else '?'}"
        info: dict[str, Any] = {
            "kind": "inference",
            "model": repr(model),
            **_architecture(model),
            "dtype": dtype_text,
            "input": f"x: {spec.describe()}",
            "input_layout": preprocess.description if preprocess is not None else
            f"N x {n_features} {dtype_text}, the model's own input",
            "preprocess": "inside the graph" if preprocess is not None else "none",
            "output": f"{output}: {dim}{width} {'int64' if output == 'label' else dtype_text}",
        }
        if class_names is not None:
            info["class_names"] = class_names
        info.update(metadata or {})
        write_onnx(fn.model, out_path, info)
    return fn


# --------------------------------------------------------------------------------------------
# The training step
# --------------------------------------------------------------------------------------------


class _StepGraph:
    """The traced training step, called as `CompiledStep` calls its compiled function:
    ``(params, buffers, opt_state), loss, metrics`` out."""

    def __init__(self, graph: OnnxFunction) -> None:
        self.graph = graph

    def __call__(self, params: Any, buffers: Any, opt_state: Any, x: Any, y: Any, lr: Any,
                 key: Any = None) -> tuple[tuple[Any, Any, Any], Any, Any]:
        if key is not None:  # a step that draws random numbers (dropout in training mode)
            raise ExportError(
                "train_step_to_onnx: the model draws random numbers in training mode (dropout), and the exported "
                "step has no random input: every step would use the one mask drawn while the graph was built; "
                "export a model without dropout, or in eval() mode"
            )
        new_params, new_buffers, new_state, loss, extra = self.graph(params, buffers, opt_state, x, y, lr)
        return (new_params, new_buffers, new_state), loss, extra


class OnnxTrainStep(CompiledStep):
    """``step(x, y, lr=None)``: one training step run by onnxruntime, as one ONNX graph of the
    forward pass, the loss, the hand-written backward and the optimizer's update, for batches of
    exactly `batch_size`. Behaves as `arrayml.compile.CompiledStep` (whose pure step it traces):
    returns the batch loss (a 0-D NumPy array), or ``(loss, metrics)``, and updates the model's
    parameters and buffers and ``optimizer.state``. ``save(path)`` writes the graph. Build it with
    `train_step_to_onnx`."""

    what = "train_step_to_onnx"

    def __init__(self, model: Module, loss: Loss, optimizer: Optimizer, batch_size: int, *,
                 metrics: Callable[[Array, Array], Any] | None = None, features: int | None = None) -> None:
        if not isinstance(model, Module):
            raise ExportError(f"{self.what} needs an arrayml Module, got {type(model).__name__}")
        _exportable(model, None, self.what)
        self.batch_size = _positive(batch_size, f"{self.what} batch_size")
        self.features = _features(model, features, self.what)
        backend.onnx_modules()  # the install command, before anything else
        super().__init__(model, loss, optimizer, metrics=metrics, donate=False)
        self._function()  # traced now: a layer that cannot be exported fails here, not at the first step

    # -- CompiledStep with onnxruntime as the compiler -----------------------------------------
    def compiler_for(self, xp: backend.Namespace) -> str | None:
        return "onnxruntime" if backend.namespace_name(xp) == "numpy" else None

    def _no_compiler(self, where: backend.Placement) -> str:
        return (f"{self.what}: the model lives on {backend.namespace_name(where.xp)}, but onnxruntime takes and "
                "returns NumPy arrays; move it first: model.to('numpy')")

    def _compile(self, step: Callable[..., Any]) -> Any:
        params = self.model.parameters()
        dtype = backend.dtype_name(self.placement.dtype)
        args = (params, self.model.named_buffers(), self.optimizer.state_for(params),
                backend.graph_input((self.batch_size, self.features), dtype),
                backend.graph_input((self.batch_size,), "int64"), 0.0)

        def flat(*arrays: Any) -> tuple[Any, ...]:
            (new_params, new_buffers, new_state), loss, extra = step(*arrays)
            return new_params, new_buffers, new_state, loss, extra

        with _attributed(self.what):
            return _StepGraph(backend.trace_onnx(
                flat, args, names=("params", "buffers", "opt_state", "x", "y", "lr"),
                output_names=("new_params", "new_buffers", "new_opt_state", "loss", "metrics"), scalar_dtype=dtype,
            ))

    @property
    def function(self) -> OnnxFunction:
        """The traced graph for the model's current modes and the optimizer's settings."""
        return self._function().graph

    def __call__(self, x: Array, y: Array, lr: float | None = None, *, key: Any = None) -> Any:
        for value, name, ndim in ((x, "input x", 2), (y, "labels y", 1)):
            shape = tuple(getattr(value, "shape", ()))
            if len(shape) != ndim or shape[0] != self.batch_size:
                raise ValueError(
                    f"{self.what}: the exported step takes batches of exactly {self.batch_size} (fixed when it was "
                    f"built), but {name} has shape {shape}; build a step for that batch size (the last, smaller "
                    "batch of an epoch: drop it, or export a second step)"
                )
        if backend.is_array(y) and backend.get_namespace(y).isdtype(y.dtype, "integral") \
                and backend.dtype_name(y.dtype) != "int64":
            y = np.asarray(backend.to_numpy(y), dtype=np.int64)  # any integer labels: exactly the same values
        return super().__call__(x, y, lr, key=key)  # a step that draws (dropout) gets a key: the graph refuses it

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write the training step's graph to `path` (its folder must exist), with metadata."""
        check_path(path)
        info = {
            "kind": "training step",
            "model": repr(self.model),
            **_architecture(self.model),
            "loss": repr(self.loss),
            "optimizer": repr(self.optimizer),
            "dtype": backend.dtype_name(self.placement.dtype),
            "batch_size": str(self.batch_size),
            "inputs": "params/<name>, buffers/<name>, opt_state/<slot>/<name>, x, y (int64 labels), lr",
            "outputs": "new_params/<name>, new_buffers/<name>, new_opt_state/<slot>/<name>, loss",
            **(metadata or {}),
        }
        return write_onnx(self.function.model, path, info)

    def __repr__(self) -> str:
        return f"OnnxTrainStep(batch_size={self.batch_size}, {self.placement})"


def train_step_to_onnx(
    model: Module, loss_fn: Loss, optimizer: Optimizer, batch_size: int, *,
    metrics: Callable[[Array, Array], Any] | None = None, features: int | None = None,
) -> OnnxTrainStep:
    """The whole training step of `model` — forward, loss, backward, the optimizer's update — as
    one ONNX graph for batches of `batch_size`, run by onnxruntime: an `OnnxTrainStep`.

    The model must live on NumPy (onnxruntime's arrays); `loss_fn` built with ``validate=False``
    (as for `arrayml.compile.compile_step`); `optimizer` any `arrayml.optim.Optimizer` (its pure
    ``update`` is traced); labels are integer class labels. The graph is traced here, so a layer
    that cannot be exported is an `ExportError` (naming it) now, not at the first step.
    """
    return OnnxTrainStep(model, loss_fn, optimizer, batch_size, metrics=metrics, features=features)
