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
    WEIGHTS,
    ExportError,
    Preprocess,
    _architecture,
    _attributed,
    _exportable,
    _input_shape,
    _positive,
    check_class_names,
    check_metadata,
    check_path,
    write_onnx,
)

#: The metadata keys `to_onnx` writes itself (a user's metadata may not overwrite them).
_INFERENCE_METADATA = ("kind", "model", "architecture", "dtype", "input", "input_layout", "preprocess", "output",
                       "class_names", "weights")


def to_onnx(
    model: Module, path: str | os.PathLike | None, *, batch: int | None = None, output: str = "logits",
    preprocess: Preprocess | None = None, dtype: Any = None, class_names: Sequence[str] | None = None,
    features: int | None = None, metadata: Mapping[str, Any] | None = None, weights: str = "constants",
    input_shape: Sequence[int] | None = None,
) -> OnnxFunction:
    """Export `model` for inference as an ONNX graph; returns the `OnnxFunction` (``fn(x)`` runs
    it in onnxruntime, ``fn.model`` is the ``onnx.ModelProto``; ``fn(params, buffers, x)`` with
    ``weights="inputs"``).

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
        class_names: recorded in the metadata: a list of distinct strings, one per output column.
        features: the model's input width, when the model cannot say (``model.in_features``).
        metadata: more ``key: value`` pairs for the model's metadata, strings to strings (none
            of the keys arrayml writes itself: kind, model, architecture, dtype, input,
            input_layout, preprocess, output, class_names, weights, arrayml_version).
        weights: ``"constants"`` (default): the parameters and running statistics are baked
            into the graph. ``"inputs"``: they are graph inputs ``params/<name>`` and
            ``buffers/<name>`` (the names of the training step's inputs, so the outputs
            ``new_params/<name>`` of `train_step_to_onnx`'s graph feed it as they are): one
            graph then predicts with whatever weights it is given, e.g. while a model trains
            in onnxruntime elsewhere.
        input_shape: one sample's shape, for a model of images that cannot say it (a
            `Sequential` starting with a `Conv2d`: ``(3, 32, 32)``; a `CNN` says its own, as
            ``model.input_shape``). Not with `features`.

    Returns:
        The `OnnxFunction` (also written to `path` when one is given).

    Raises:
        ExportError: before tracing anything (so before anything is written), for a model
            without parameters, a path that cannot be written (a missing folder, a folder's
            name), a setting out of range, `class_names` or `metadata` of the wrong kind; after
            tracing, for a layer that cannot be traced (named).
        UnwritablePathError: a folder in which no file can be created (an `ExportError` and
            an `OSError` too).
        BackendUnavailableError: without the ``[onnx]`` extra (ndonnx, onnxruntime).

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> from arrayml.export import to_onnx
        >>> model = am.MLP(4, [8], 3)
        >>> fn = to_onnx(model, None, output="probabilities")  # None: build, write nothing
        >>> x = np.ones((2, 4), dtype=np.float32)
        >>> bool(np.allclose(fn(x), model.predict_proba(x), atol=1e-6))
        True
    """
    what = "to_onnx"
    where = _exportable(model, dtype, what)
    out_path = check_path(path) if path is not None else None
    if output not in OUTPUTS:
        raise ExportError(f"{what}: output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if weights not in WEIGHTS:
        raise ExportError(f"{what}: weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if batch is not None:
        batch = _positive(batch, f"{what} batch")
    if preprocess is not None and not isinstance(preprocess, Preprocess):
        raise ExportError(f"{what}: preprocess must be an arrayml.export.Preprocess, got {type(preprocess).__name__}")
    shape = _input_shape(model, features, input_shape, what)
    n_out = getattr(model, "out_features", None)
    if class_names is not None:
        if n_out is None:  # the model cannot say: its output for one row of zeros, on its own backend
            probe = model.clone().eval()
            n_out = int(probe.forward(where.xp.zeros((1, *shape), dtype=where.dtype, device=where.device)).shape[-1])
        class_names = check_class_names(class_names, n_out, what)
    user_metadata = check_metadata(metadata, _INFERENCE_METADATA, what) if metadata is not None else {}
    xp, _, _ = backend.onnx_modules()
    dtype_text = backend.dtype_name(where.dtype)
    dim: int | str = "N" if batch is None else batch
    if preprocess is not None:
        spec = backend.graph_input((dim, *preprocess.shape), preprocess.dtype)
    else:
        spec = backend.graph_input((dim, *shape), dtype_text)

    graph_model = model.clone().eval().to(xp)  # constants of the graph; the live model is untouched
    if weights == "inputs":  # inputs shaped like the model's arrays, which replace the constants
        args: tuple[Any, ...] = ({n: backend.graph_input(tuple(p.shape), p.dtype) for n, p in model.parameters().items()},
                                 {n: backend.graph_input(tuple(b.shape), b.dtype) for n, b in model.named_buffers().items()},
                                 spec)
        names: tuple[str, ...] = ("params", "buffers", "x")
    else:
        args, names = (spec,), ("x",)

    def infer(*arrays: Any) -> Array:
        if weights == "inputs":
            params, buffers, x = arrays
            graph_model.set_parameters(params)
            graph_model.set_buffers(buffers)
        else:
            (x,) = arrays
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
        fn = backend.trace_onnx(infer, args, names=names, output_names=output)
    if out_path is not None:
        width = "" if output == "label" else f" x {n_out if n_out is not None else '?'}"
        info: dict[str, Any] = {
            "kind": "inference",
            "model": repr(model),
            **_architecture(model),
            "dtype": dtype_text,
            "input": f"x: {spec.describe()}",
            "weights": "graph inputs params/<name>, buffers/<name>" if weights == "inputs" else "constants",
            "input_layout": preprocess.description if preprocess is not None else
            f"N x {' x '.join(map(str, shape))} {dtype_text}, the model's own input",
            "preprocess": "inside the graph" if preprocess is not None else "none",
            "output": f"{output}: {dim}{width} {'int64' if output == 'label' else dtype_text}",
        }
        if class_names is not None:
            info["class_names"] = class_names
        assert set(info) <= set(_INFERENCE_METADATA)
        info.update(user_metadata)
        write_onnx(fn.model, out_path, info)
    return fn
