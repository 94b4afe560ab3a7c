"""A whole function traced into one ONNX graph with ndonnx, and run by onnxruntime.

ndonnx implements the array API standard with arrays that are nodes of an ONNX graph: the same
array-API code that computes on NumPy or PyTorch, given ndonnx arrays, *builds* the graph of that
computation. `trace_onnx` is the third way arrayml turns a function into one program, beside
``jax.jit`` and ``torch.compile`` (`arrayml.backend.compiler`)::

    fn = trace_onnx(f, (params, graph_input(("N", 20), "float32")), names=("params", "x"),
                    output_names="y")
    fn.model                     # the onnx.ModelProto, checked by onnx.checker
    y = fn(params_host, x_host)  # NumPy in, NumPy out: one onnxruntime run

The arguments are trees (dicts, tuples, lists; None for nothing) whose leaves become the graph's
inputs: a host array gives an input of its shape and dtype, a `GraphInput` one of its own (a
string or None in its shape is a dynamic dimension), and a Python number a 0-D input (a float of
``scalar_dtype``, an int of int64), so that a learning rate is an input rather than a constant
baked into the graph. Inputs and outputs are named by their place in the trees: ``params/0.weight``,
``opt_state/momentum/0.weight``.

What a traced function must not do is what no tracer allows: read a value back to the host
(``float(x)``, ``bool(x)``) or branch on one. Shapes are known while tracing, except dynamic
dimensions, which are None.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dtypes import dtype_name
from .namespaces import ONNX_INSTALL, BackendUnavailableError, namespace_by_name
from .transfer import to_numpy

#: The separator of the levels of a tree in the names of a graph's inputs and outputs.
SEPARATOR = "/"


@dataclass(frozen=True)
class GraphInput:
    """One input of a graph: its shape (an int per fixed dimension; a string, such as ``"N"``,
    or None for a dynamic one: equal strings are one dimension) and its dtype by name.

    Attributes:
        shape: the dimensions: an int each when fixed; a name or None when dynamic.
        dtype: the dtype's name (``"float32"``).
    """

    shape: tuple[int | str | None, ...]
    dtype: str

    def describe(self) -> str:
        """The input in words, as error messages give it (``"N x 20 float32"``, ``"scalar"``).

        Returns:
            The description.
        """
        dims = " x ".join("?" if d is None else str(d) for d in self.shape) or "scalar"
        return f"{dims} {self.dtype}"


def graph_input(shape: Sequence[int | str | None], dtype: Any) -> GraphInput:
    """A `GraphInput` of `shape` and `dtype` (a name or any library's dtype object).

    Args:
        shape: the dimensions: non-negative ints, names of dynamic dimensions, or None.
        dtype: the dtype, by name or as any library's dtype object.

    Returns:
        The `GraphInput`.

    Raises:
        ValueError: a dimension is negative or of another kind.

    Example:
        >>> import numpy as np
        >>> from arrayml import backend
        >>> backend.graph_input(("N", 20), np.float32).describe()
        'N x 20 float32'
    """
    for d in shape:
        if not (d is None or isinstance(d, str) or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0)):
            raise ValueError(f"a graph input's dimensions are non-negative ints, names or None, got shape {tuple(shape)}")
    return GraphInput(tuple(int(d) if isinstance(d, (int, np.integer)) else d for d in shape), dtype_name(dtype))


def onnx_modules() -> tuple[Any, Any, Any]:
    """``(ndonnx, onnxruntime, onnx)``, or `BackendUnavailableError` naming the install command.

    Returns:
        The three modules.

    Raises:
        BackendUnavailableError: ndonnx, onnxruntime or onnx is not installed.
    """
    xp = namespace_by_name("ndonnx")  # imports onnxruntime first, names the extra when missing
    try:
        ort = importlib.import_module("onnxruntime")
        onnx = importlib.import_module("onnx")
    except ImportError as exc:
        raise BackendUnavailableError(f"ONNX export needs onnxruntime and onnx ({exc}); install them with: {ONNX_INSTALL}") from None
    return xp, ort, onnx


# --------------------------------------------------------------------------------------------
# Trees of arrays: flattened into named leaves, rebuilt from them
# --------------------------------------------------------------------------------------------


def _leaves(tree: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(name, leaf)`` for every leaf of `tree`, depth first, in insertion order (None: none)."""
    if tree is None:
        return
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{path}{SEPARATOR}{key}" if path else str(key))
    elif isinstance(tree, (tuple, list)):
        for i, value in enumerate(tree):
            yield from _leaves(value, f"{path}{SEPARATOR}{i}" if path else str(i))
    else:
        yield path, tree


def _rebuild(tree: Any, path: str, values: dict[str, Any]) -> Any:
    """`tree` with each leaf replaced by ``values[its name]``."""
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {key: _rebuild(value, f"{path}{SEPARATOR}{key}" if path else str(key), values) for key, value in tree.items()}
    if isinstance(tree, (tuple, list)):
        items = [_rebuild(value, f"{path}{SEPARATOR}{i}" if path else str(i), values) for i, value in enumerate(tree)]
        return type(tree)(items) if isinstance(tree, list) else tuple(items)
    return values[path]


def _named(args: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    if len(args) != len(names):
        raise ValueError(f"{len(args)} arguments but {len(names)} names ({', '.join(names)})")
    return dict(zip(names, args))


def _spec(leaf: Any, name: str, scalar_dtype: str) -> GraphInput:
    if isinstance(leaf, GraphInput):
        return leaf
    if isinstance(leaf, bool) or isinstance(leaf, np.bool_):
        return GraphInput((), "bool")
    if isinstance(leaf, (float, np.floating)):
        return GraphInput((), scalar_dtype)
    if isinstance(leaf, (int, np.integer)):
        return GraphInput((), "int64")
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return GraphInput(tuple(int(d) for d in leaf.shape), dtype_name(leaf.dtype))
    raise TypeError(f"graph input {name!r}: expected an array, a number or a GraphInput, got {type(leaf).__name__}")


# --------------------------------------------------------------------------------------------
# Tracing and running
# --------------------------------------------------------------------------------------------


class OnnxFunction:
    """A traced function: its ONNX model, and ``__call__`` that runs it in onnxruntime on host
    arrays given as the trees it was traced with (built by `trace_onnx`).

    Args:
        model: the ONNX model (``onnx.ModelProto``).
        inputs: the graph's inputs by name, in order.
        in_trees: the traced arguments by name (their structure is what calls must give).
        out_tree: the traced outputs by name.
        scalar_dtype: the dtype's name of the inputs that Python floats became.
        single: the one output's name when the function returned one array or tree, else None.
    """

    def __init__(self, model: Any, inputs: dict[str, GraphInput], in_trees: dict[str, Any],
                 out_tree: dict[str, Any], scalar_dtype: str, *, single: str | None) -> None:
        self.model = model
        #: The graph's inputs by name, in order.
        self.inputs = inputs
        self._in_trees, self._out_tree, self._scalar_dtype = in_trees, out_tree, scalar_dtype
        self._single = single
        self._session: Any = None

    @property
    def output_names(self) -> list[str]:
        """The graph's outputs' names, in order."""
        return [o.name for o in self.model.graph.output]

    @property
    def session(self) -> Any:
        """The onnxruntime session, created on first use."""
        if self._session is None:
            _, ort, _ = onnx_modules()
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: no warnings about constant folding
            self._session = ort.InferenceSession(self.model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return self._session

    def feed(self, *args: Any) -> dict[str, np.ndarray]:
        """The inputs onnxruntime takes for `args` (trees like those traced with): each leaf
        checked against its input (dtype, every fixed dimension) and copied to the host.

        Args:
            *args: one tree per traced argument, in order.

        Returns:
            The host arrays by input name.

        Raises:
            ValueError: the number of arguments, a tree's structure, or an array's shape differs
                from the traced ones.
            TypeError: an array's dtype differs from its input's.
        """
        names = list(self._in_trees)
        given = _named(args, names)
        feed: dict[str, np.ndarray] = {}
        for top in names:
            leaves = dict(_leaves(given[top], top))
            expected = [n for n in self.inputs if n == top or n.startswith(top + SEPARATOR)]
            if sorted(leaves) != sorted(expected):
                missing, extra = sorted(set(expected) - set(leaves)), sorted(set(leaves) - set(expected))
                raise ValueError(f"argument {top!r} does not have the structure the graph was traced with: "
                                 f"missing {missing}, unexpected {extra}")
            for name, value in leaves.items():
                feed[name] = self._host(name, value)
        return feed

    def _host(self, name: str, value: Any) -> np.ndarray:
        spec = self.inputs[name]
        if isinstance(value, (int, float, np.generic)):  # a number (a learning rate): the input's dtype
            return np.asarray(value, dtype=spec.dtype)
        host = to_numpy(value)
        if dtype_name(host.dtype) != spec.dtype:
            raise TypeError(f"graph input {name!r} takes {spec.dtype}, got {dtype_name(host.dtype)}")
        fits = len(host.shape) == len(spec.shape) and all(
            not isinstance(d, int) or d == n for d, n in zip(spec.shape, host.shape))
        if not fits:
            raise ValueError(f"graph input {name!r} has shape ({spec.describe()}), got shape {tuple(host.shape)}")
        return host

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One onnxruntime run: outputs by name.

        Args:
            feed: the inputs by name (`feed`'s result).

        Returns:
            The outputs by name, NumPy arrays.
        """
        return dict(zip(self.output_names, self.session.run(None, feed)))

    def __call__(self, *args: Any) -> Any:
        """Run the graph on `args`; the outputs as the tree the traced function returned.

        Args:
            *args: one tree per traced argument, in order (host arrays or any backend's, numbers).

        Returns:
            The outputs: the one array or tree, or a tuple of them, as the function returned them.

        Raises:
            ValueError: the arguments' structure or shapes differ from the traced ones.
            TypeError: an array's dtype differs from its input's.
        """
        out = _rebuild(self._out_tree, "", self.run(self.feed(*args)))
        return out[self._single] if self._single is not None else tuple(out.values())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """spox warns when it cannot infer a shape it does not need (dynamic dimensions)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"spox\..*|ndonnx\..*")
        yield


def trace_onnx(
    fn: Callable[..., Any], args: Sequence[Any], *, names: Sequence[str], output_names: Sequence[str] | str = "output",
    scalar_dtype: Any = "float32", check: bool = True,
) -> OnnxFunction:
    """Trace ``fn(*args)`` on ndonnx inputs shaped like `args` into one ONNX graph.

    Args:
        fn: array-API code; it receives trees like `args` holding ndonnx arrays, and returns an
            array or a tree of them (None allowed).
        args: trees of host arrays, `GraphInput` specs and Python numbers (see the module).
        names: one name per argument: the prefix of its inputs' names.
        output_names: one name per element of the tuple `fn` returns, or one name (a string)
            when it returns one array or one tree.
        scalar_dtype: the dtype of the inputs that Python floats become.
        check: run ``onnx.checker.check_model(full_check=True)`` on the result.

    Whatever `fn` raises while tracing propagates unchanged.

    Returns:
        The `OnnxFunction`.

    Raises:
        BackendUnavailableError: the ``[onnx]`` extra is not installed.
        ValueError: `args` and `names` differ in number, or `fn` returns other than one output
            per name of `output_names`.
        TypeError: a leaf of `args` is no array, number or `GraphInput`, or an output is not an
            array.
    """
    xp, _, onnx = onnx_modules()
    scalar = dtype_name(scalar_dtype)
    in_trees = _named(args, names)
    specs: dict[str, GraphInput] = {}
    symbolic: dict[str, Any] = {}
    for top, tree in in_trees.items():
        for name, leaf in _leaves(tree, top):
            specs[name] = spec = _spec(leaf, name, scalar)
            symbolic[name] = xp.argument(shape=spec.shape, dtype=getattr(xp, spec.dtype))
    traced = [_rebuild(tree, top, symbolic) for top, tree in in_trees.items()]
    with _quiet():
        result = fn(*traced)
        if isinstance(output_names, str):
            out_tree: dict[str, Any] = {output_names: result}
        else:
            if not isinstance(result, tuple) or len(result) != len(output_names):
                raise ValueError(f"expected {len(output_names)} outputs ({', '.join(output_names)}) from the traced "
                                 f"function, got {type(result).__name__}")
            out_tree = dict(zip(output_names, result))
        outputs = dict(_leaves(out_tree, ""))
        for name, value in outputs.items():
            if not isinstance(value, xp.Array):
                raise TypeError(f"output {name!r} of the traced function is {type(value).__name__}, not an array")
        model = xp.build(symbolic, outputs)
    if check:
        onnx.checker.check_model(model, full_check=True)
    return OnnxFunction(model, specs, in_trees, out_tree, scalar,
                        single=output_names if isinstance(output_names, str) else None)
