"""`train_step_to_onnx`: the whole training step as one ONNX graph, run by onnxruntime."""


from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from ..backend import Array, OnnxFunction
from ..compile import CompiledStep, Traced
from ..modules.base import Loss, Module
from ..optim.base import Optimizer
from ._common import (
    ExportError,
    _architecture,
    _attributed,
    _exportable,
    _input_shape,
    _positive,
    check_metadata,
    check_path,
    write_onnx,
)


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


class OnnxCompiler:
    """onnxruntime as the compiler of the pure step (`arrayml.compile.Compiler`): the step is
    traced into one ONNX graph for batches of exactly `batch_size` samples of `input_shape` (by
    ``backend.trace_onnx``), and the graph runs in onnxruntime on NumPy arrays."""

    what = "train_step_to_onnx"

    def __init__(self, batch_size: int, input_shape: tuple[int, ...]) -> None:
        #: One sample's shape: ``(features,)`` for rows, ``(C, H, W)`` for images.
        self.batch_size, self.input_shape = batch_size, input_shape

    def name(self, xp: backend.Namespace) -> str | None:
        return "onnxruntime" if backend.namespace_name(xp) == "numpy" else None

    def unavailable(self, where: backend.Placement) -> str:
        return (f"{self.what}: the model lives on {backend.namespace_name(where.xp)}, but onnxruntime takes and "
                "returns NumPy arrays; move it first: model.to('numpy')")

    def compile(self, step: Callable[..., Any], traced: Traced) -> _StepGraph:
        params = traced.model.parameters()
        dtype = backend.dtype_name(traced.placement.dtype)
        args = (params, traced.model.named_buffers(), traced.optimizer.state_for(params),
                backend.graph_input((self.batch_size, *self.input_shape), dtype),
                backend.graph_input((self.batch_size,), "int64"), 0.0)

        def flat(*arrays: Any) -> tuple[Any, ...]:
            (new_params, new_buffers, new_state), loss, extra = step(*arrays)
            return new_params, new_buffers, new_state, loss, extra

        with _attributed(self.what):
            return _StepGraph(backend.trace_onnx(
                flat, args, names=("params", "buffers", "opt_state", "x", "y", "lr"),
                output_names=("new_params", "new_buffers", "new_opt_state", "loss", "metrics"), scalar_dtype=dtype,
            ))

    def check_batch(self, x: Array, y: Array) -> tuple[Array, Array]:
        """(x, y) if x has `batch_size` rows and y is 1-D of that length (integer labels of any
        width become int64, the same values); otherwise a `ValueError` naming what is wrong."""
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != 1 + len(self.input_shape) or shape[0] != self.batch_size:
            raise ValueError(
                f"{self.what}: the exported step takes batches of exactly {self.batch_size} (fixed when it was "
                f"built), but input x has shape {shape}; build a step for that batch size (the last, smaller "
                "batch of an epoch: drop it, or export a second step)"
            )
        labels = tuple(getattr(y, "shape", ()))
        if labels != (self.batch_size,):
            raise ValueError(
                f"{self.what}: labels y must be 1-D of length {self.batch_size} (the batch size), got shape {labels}"
                + ("" if len(labels) != 1 else "; the exported step takes batches of exactly "
                   f"{self.batch_size} (fixed when it was built): drop the last, smaller batch, or export a second step")
            )
        if backend.is_array(y) and backend.get_namespace(y).isdtype(y.dtype, "integral") \
                and backend.dtype_name(y.dtype) != "int64":
            y = np.asarray(backend.to_numpy(y), dtype=np.int64)  # any integer labels: exactly the same values
        return x, y


class OnnxTrainStep(CompiledStep):
    """``step(x, y, lr=None)``: one training step run by onnxruntime, as one ONNX graph of the
    forward pass, the loss, the hand-written backward and the optimizer's update, for batches of
    exactly `batch_size`. A `arrayml.compile.CompiledStep` whose compiler is onnxruntime
    (`OnnxCompiler`): returns the batch loss (a 0-D NumPy array), or ``(loss, metrics)``, and
    updates the model's parameters and buffers and the optimizer's state. ``save(path)`` writes
    the graph. Build it with `train_step_to_onnx`, whose arguments these are.

    Args:
        model: the arrayml model, on NumPy.
        loss: the loss, built with ``validate=False``.
        optimizer: the optimizer whose pure ``update`` is traced.
        batch_size: the graph's fixed batch size.
        metrics: None, or ``metrics(logits, y)``: what each step returns besides the loss.
        features: the model's input width, when the model cannot say it.
        input_shape: one sample's shape, when the model cannot say it (not with `features`).

    Raises:
        ExportError: `model` is not an exportable arrayml `Module`, a setting is out of range,
            or a layer cannot be traced (named).
        BackendUnavailableError: without the ``[onnx]`` extra.
    """

    def __init__(self, model: Module, loss: Loss, optimizer: Optimizer, batch_size: int, *,
                 metrics: Callable[[Array, Array], Any] | None = None, features: int | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        what = OnnxCompiler.what
        if not isinstance(model, Module):
            raise ExportError(f"{what} needs an arrayml Module, got {type(model).__name__}")
        _exportable(model, None, what)
        self.batch_size = _positive(batch_size, f"{what} batch_size")
        #: One sample's shape: ``(features,)`` for rows, ``(C, H, W)`` for images.
        self.input_shape = _input_shape(model, features, input_shape, what)
        backend.onnx_modules()  # the install command, before anything else
        super().__init__(model, loss, optimizer, metrics=metrics, donate=False,
                         compiler=OnnxCompiler(self.batch_size, self.input_shape))
        self.traced.function()  # traced now: a layer that cannot be exported fails here, not at the first step

    @property
    def function(self) -> OnnxFunction:
        """The traced graph for the model's current modes and the optimizer's settings."""
        return self.traced.function().graph

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write the training step's graph to `path`, with its metadata.

        Args:
            path: the ``.onnx`` file (its folder must exist).
            metadata: more entries, strings to strings, none of those arrayml records itself.

        Returns:
            The path written.

        Raises:
            ExportError: the path cannot be written, or `metadata` is not strings to strings or
                names an entry arrayml writes (naming it, before anything is written).
        """
        check_path(path)
        mine: dict[str, str] = {
            "kind": "training step",
            "model": repr(self.model),
            **_architecture(self.model),
            "loss": repr(self.loss),
            "optimizer": repr(self.optimizer),
            "dtype": backend.dtype_name(self.placement.dtype),
            "batch_size": str(self.batch_size),
            "inputs": "params/<name>, buffers/<name>, opt_state/<slot>/<name>, x, y (int64 labels), lr",
            "outputs": "new_params/<name>, new_buffers/<name>, new_opt_state/<slot>/<name>, loss",
        }
        extra = check_metadata(metadata, (*mine, "architecture"), "OnnxTrainStep.save") if metadata is not None else {}
        return write_onnx(self.function.model, path, {**mine, **extra})

    def __repr__(self) -> str:
        return f"OnnxTrainStep(batch_size={self.batch_size}, {self.placement})"


def train_step_to_onnx(
    model: Module, loss_fn: Loss, optimizer: Optimizer, batch_size: int, *,
    metrics: Callable[[Array, Array], Any] | None = None, features: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> OnnxTrainStep:
    """The whole training step of `model` — forward, loss, backward, the optimizer's update — as
    one ONNX graph for batches of `batch_size`, run by onnxruntime. The graph is traced here, so a
    layer that cannot be exported is an `ExportError` (naming it) now, not at the first step.

    Args:
        model: the arrayml model; it must live on NumPy (onnxruntime's arrays).
        loss_fn: the loss, built with ``validate=False`` (as for
            `arrayml.compile.compile_step`); labels are integer class labels.
        optimizer: any `arrayml.optim.Optimizer` (its pure ``update`` is traced).
        batch_size: the graph's fixed batch size.
        metrics: None, or ``metrics(logits, y)``: what each step returns besides the loss.
        features: the model's input width, for a model that cannot say what it takes
            (`arrayml.export.to_onnx` explains).
        input_shape: one sample's shape (e.g. images (3, 32, 32)), likewise; not with `features`.

    Returns:
        The `OnnxTrainStep`.

    Raises:
        ExportError: the model cannot be exported (see `OnnxTrainStep`).
        BackendUnavailableError: without the ``[onnx]`` extra.
    """
    return OnnxTrainStep(model, loss_fn, optimizer, batch_size, metrics=metrics, features=features,
                         input_shape=input_shape)
