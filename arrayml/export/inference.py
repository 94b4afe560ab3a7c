"""`to_onnx`: a model's inference graph (evaluation mode, any batch size, optional preprocessing)."""


from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .. import backend
from ..backend import Array, OnnxFunction
from ..modules.base import Module
from ..modules.softmax import Softmax
from ._common import (
    OUTPUTS,
    ExportError,
    Preprocess,
    _architecture,
    _attributed,
    _exportable,
    _input_shape,
    _positive,
    check_path,
    write_onnx,
)


def to_onnx(
    model: Module, path: str | os.PathLike | None, *, batch: int | None = None, output: str = "logits",
    preprocess: Preprocess | None = None, dtype: Any = None, class_names: Sequence[str] | None = None,
    features: int | None = None, metadata: Mapping[str, Any] | None = None, input_shape: Sequence[int] | None = None,
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
        input_shape: one sample's shape, for a model of images that cannot say it (a
            `Sequential` starting with a `Conv2d`: ``(3, 32, 32)``; a `CNN` says its own, as
            ``model.input_shape``). Not with `features`.

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
    shape = _input_shape(model, features, input_shape, what)
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
        spec = backend.graph_input((dim, *shape), dtype_text)

    graph_model = model.clone().eval().to(xp)  # constants of the graph; the live model is untouched

    def infer(x: Array) -> Array:
        if preprocess is not None:
            x = preprocess.fn(x, dtype=getattr(xp, dtype_text))
            got = (tuple(x.shape[1:]), backend.dtype_name(x.dtype))
            if got != (shape, dtype_text):
                raise ExportError(f"{what}: preprocess returns rows of shape {got[0]} and dtype {got[1]}, but the "
                                  f"model takes {shape} {dtype_text}")
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
            f"N x {' x '.join(map(str, shape))} {dtype_text}, the model's own input",
            "preprocess": "inside the graph" if preprocess is not None else "none",
            "output": f"{output}: {dim}{width} {'int64' if output == 'label' else dtype_text}",
        }
        if class_names is not None:
            info["class_names"] = class_names
        info.update(metadata or {})
        write_onnx(fn.model, out_path, info)
    return fn
