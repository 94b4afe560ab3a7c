"""The ndonnx rows of the gradient matrix: a module's forward and hand-written backward (or a
loss's) built as one ONNX graph on ndonnx arrays and run in onnxruntime.

The parameters, buffers, input and upstream gradient are inputs of the graph, so one graph serves
every drawn example of a module (and batch size, where batch statistics need it fixed): graphs
are cached. The finite differences of these rows are taken through the same graph, so both
oracles check what onnxruntime computes, not what NumPy does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arrayml import backend, gradcheck
from arrayml.modules.base import Loss, Module

_GRAPHS: dict[tuple[Any, ...], backend.OnnxFunction] = {}


def _dim(batch: int, fixed: bool) -> int | str:
    return batch if fixed else "N"


def module_graph(key: str, module: Module, x: np.ndarray, y_width: int | tuple[int, ...], *,
                 fixed_batch: bool) -> backend.OnnxFunction:
    """``fn(params, buffers, x, dy) -> (y, dx, grads)`` for modules built like `module`, whose
    output has `y_width` features (or, a tuple, that shape after the batch axis); the batch
    dimension dynamic unless `fixed_batch` (training-mode batch norm needs it fixed)."""
    y_tail = (y_width,) if isinstance(y_width, int) else tuple(y_width)
    dim = _dim(x.shape[0], fixed_batch)
    dtype = backend.dtype_name(x.dtype)
    cache_key = ("module", key, module.training, dtype, dim)
    if cache_key not in _GRAPHS:
        def forward_backward(params: Any, buffers: Any, xs: Any, dy: Any) -> tuple[Any, Any, Any]:
            m = module.clone()
            m.set_parameters(params)
            m.set_buffers(buffers)
            y = m.forward(xs)
            dx = m.backward(dy)
            return y, dx, m.gradients()

        _GRAPHS[cache_key] = backend.trace_onnx(
            forward_backward,
            (module.parameters(), module.named_buffers(), backend.graph_input((dim, *x.shape[1:]), dtype),
             backend.graph_input((dim, *y_tail), dtype)),
            names=("params", "buffers", "x", "dy"), output_names=("y", "dx", "grads"),
        )
    return _GRAPHS[cache_key]


def module_check(graph: backend.OnnxFunction, module: Module, x: np.ndarray, dy: np.ndarray) -> gradcheck.GradientCheck:
    """The graph's input and parameter gradients against central differences (one Richardson
    step) of ``Σ y ⊙ dy``, each evaluated by the graph: a `gradcheck.GradientCheck`."""
    params, buffers = module.parameters(), module.named_buffers()
    _, dx, grads = graph(params, buffers, x, dy)

    def objective(p: dict[str, np.ndarray], inp: np.ndarray) -> np.float64:
        return np.sum(graph(p, buffers, inp, dy)[0] * dy)

    check = gradcheck.GradientCheck()
    check.analytic["input"] = dx
    check.numeric["input"] = gradcheck.numerical_gradient(lambda v: objective(params, v), x, richardson=True)
    for name, value in params.items():
        check.analytic[name] = grads[name]
        check.numeric[name] = gradcheck.numerical_gradient(
            lambda v, name=name: objective({**params, name: v}, x), value, richardson=True)
    return check


def loss_graph(loss: Loss, x: np.ndarray, t: np.ndarray) -> backend.OnnxFunction:
    """``fn(x, t) -> (loss, dx)`` for `loss` on a batch of x's shape (fixed: the mean divides by it)."""
    cache_key = ("loss", type(loss).__name__, x.shape, backend.dtype_name(x.dtype), t.shape, backend.dtype_name(t.dtype))
    if cache_key not in _GRAPHS:
        def forward_backward(xs: Any, ts: Any) -> tuple[Any, Any]:
            fresh = loss.clone()
            value = fresh.forward(xs, ts)
            return value, fresh.backward()

        _GRAPHS[cache_key] = backend.trace_onnx(forward_backward, (x, t), names=("x", "t"), output_names=("loss", "dx"))
    return _GRAPHS[cache_key]
