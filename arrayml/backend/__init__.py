"""Every backend question in arrayml is answered here, and nowhere else.

Layers, losses, optimizers and metrics never import NumPy, PyTorch, CuPy or JAX. They ask this
package for the namespace and device of the arrays they are given (`get_namespace`), create new
arrays with an explicit ``dtype=`` and ``device=``, draw random numbers through `normal`,
`uniform` and `permutation` (an explicit seeded generator, drawn on the host, moved once), and
call `kernels` for what the standard lacks. One small module per question:

- `namespaces`: which library an array belongs to, namespaces by name, arrays' devices;
- `devices`: devices by name, and a module's `Placement` (namespace, device, dtype);
- `dtypes`: dtype names across libraries, JAX's 64-bit switch, the widest types;
- `random`: seeded draws on the host;
- `transfer`: host ↔ device copies, and waiting for a device (timing only);
- `compiler`: ``jax.jit`` / ``torch.compile`` of a whole function;
- `graph`: a whole function traced into one ONNX graph with ndonnx, run by onnxruntime;
- `kernels`: the functions the standard lacks, with each library's fast path chosen once per
  namespace (`_numpy`, `_torch`, `_jax`); the sliding-window operations' standard forms in `_conv`.

Namespaces are the ones `array_api_compat` returns (``array_api_compat.numpy``,
``array_api_compat.torch``, ``array_api_compat.cupy``), ``jax.numpy`` itself (JAX implements
the standard natively), ``array_api_strict``, or ``ndonnx`` (whose arrays are nodes of an ONNX
graph: `GRAPH_BACKEND_NAMES`).
"""

from __future__ import annotations

import math

from .compiler import compile_function, compiler_name, traced_scalar
from .devices import Placement, as_namespace, placement, resolve_device
from .dtypes import (
    DTYPE_NAMES,
    JAX_X64_FIX,
    PARAMETER_DTYPES,
    check_floating,
    dtype_name,
    widest_float,
    widest_int,
    x64_enabled,
)
from .graph import GraphInput, OnnxFunction, graph_input, onnx_modules, trace_onnx
from .kernels import (
    Kernels,
    adam_update,
    avg_pool2d,
    avg_pool2d_backward,
    batch_norm,
    batch_norm_backward,
    column_sums,
    conv2d,
    conv2d_backward,
    count_true,
    kernels,
    lerp,
    log_softmax,
    logsumexp,
    max_pool2d,
    max_pool2d_backward,
    one_hot,
    pad_axis,
    relu,
    relu_backward,
    softmax_cross_entropy,
    static_shape,
    subtract_scaled,
    take_rows,
    window_output_size,
)
from .namespaces import (
    BACKEND_NAMES,
    GRAPH_BACKEND_NAMES,
    ONNX_INSTALL,
    Array,
    BackendUnavailableError,
    Namespace,
    device,
    get_namespace,
    get_namespace_and_device,
    is_array,
    namespace_by_name,
    namespace_name,
)
from .random import (
    GLOBAL_GENERATOR,
    Generator,
    HostKey,
    Key,
    Seed,
    as_generator,
    child_seed,
    fold_in,
    global_seed_generator,
    normal,
    permutation,
    random_key,
    seeded_globally,
    uniform,
    uniform_from_key,
)
from .transfer import asarray, convert, synchronize, to_numpy

__all__ = [
    "Array",
    "Namespace",
    "Seed",
    "Generator",
    "child_seed",
    "BackendUnavailableError",
    "Placement",
    "Kernels",
    "BACKEND_NAMES",
    "GRAPH_BACKEND_NAMES",
    "ONNX_INSTALL",
    "GraphInput",
    "OnnxFunction",
    "graph_input",
    "onnx_modules",
    "trace_onnx",
    "DTYPE_NAMES",
    "JAX_X64_FIX",
    "PARAMETER_DTYPES",
    "namespace_by_name",
    "namespace_name",
    "as_namespace",
    "resolve_device",
    "placement",
    "get_namespace",
    "get_namespace_and_device",
    "device",
    "is_array",
    "as_generator",
    "global_seed_generator",
    "dtype_name",
    "check_floating",
    "widest_float",
    "widest_int",
    "x64_enabled",
    "normal",
    "uniform",
    "permutation",
    "Key",
    "HostKey",
    "GLOBAL_GENERATOR",
    "random_key",
    "fold_in",
    "uniform_from_key",
    "seeded_globally",
    "asarray",
    "to_numpy",
    "convert",
    "synchronize",
    "compiler_name",
    "compile_function",
    "traced_scalar",
    "kernels",
    "logsumexp",
    "log_softmax",
    "softmax_cross_entropy",
    "one_hot",
    "count_true",
    "subtract_scaled",
    "column_sums",
    "take_rows",
    "relu",
    "relu_backward",
    "lerp",
    "adam_update",
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "batch_norm",
    "batch_norm_backward",
    "window_output_size",
    "pad_axis",
    "static_shape",
    "prod",
    "shapes_match",
]


def prod(shape: tuple[int, ...]) -> int:
    """Number of elements of an array of `shape`.

    Args:
        shape: the array's shape.

    Returns:
        The product of the sizes (1 for a 0-D array).
    """
    return math.prod(shape)


def shapes_match(shape: tuple[int | None, ...], expected: tuple[int | None, ...]) -> bool:
    """Whether `shape` is `expected`, a None on either side matching any size: a graph being
    built (ndonnx) may not know a dimension (a dynamic batch, and what a matrix product with
    one gives), which onnxruntime then checks when it runs the graph.

    Args:
        shape: the shape found.
        expected: the shape wanted.

    Returns:
        True when they have one length and every pair of sizes agrees or has a None.

    Example:
        >>> from arrayml import backend
        >>> backend.shapes_match((None, 10), (32, 10)), backend.shapes_match((32, 10), (32, 5))
        (True, False)
    """
    shape, expected = tuple(shape), tuple(expected)
    return len(shape) == len(expected) and all(a is None or b is None or a == b for a, b in zip(shape, expected))
