"""Compiling a whole function: ``jax.jit`` on JAX, ``torch.compile`` on PyTorch.

`compile_function` is the one place that calls either. `traced_scalar` gives a Python number
(each step's learning rate) the form that a compiled function takes without recompiling.
"""

from __future__ import annotations

import types
from typing import Any

from .namespaces import Namespace, namespace_name


def compiler_name(xp: Namespace) -> str | None:
    """``"jax.jit"`` for JAX, ``"torch.compile"`` for PyTorch, None for the namespaces that have
    no tracing compiler (NumPy, CuPy, array-api-strict).

    Args:
        xp: the namespace.

    Returns:
        The compiler's name, or None.
    """
    return {"jax": "jax.jit", "torch": "torch.compile"}.get(namespace_name(xp))


def compile_function(
    fn: Any, xp: Namespace, *, donate_argnums: tuple[int, ...] = (), options: dict[str, Any] | None = None,
) -> Any:
    """`fn` traced and compiled as one function for namespace `xp`.

    JAX: ``jax.jit(fn, donate_argnums=...)``; the donated arguments' buffers are reused for the
    outputs, so those input arrays are deleted by the call and must not be used afterwards.
    PyTorch: ``torch.compile(fn, fullgraph=True)``: a graph break (a host read, a Python branch on
    a value) is an error rather than a silent split into several graphs; there is no donation.
    `options` go to ``jax.jit`` or ``torch.compile`` (e.g. ``{"mode": "reduce-overhead"}``).

    Args:
        fn: the function (or bound method) to compile.
        xp: the namespace its arrays belong to.
        donate_argnums: (JAX) the positions of the arguments whose buffers are donated.
        options: keyword arguments for ``jax.jit`` or ``torch.compile``.

    Returns:
        The compiled function (compiled on its first call).

    Raises:
        ValueError: `xp` has no tracing compiler.
    """
    name = namespace_name(xp)
    options = dict(options or {})
    if name == "jax":
        import jax

        return jax.jit(fn, donate_argnums=donate_argnums, **options)
    if name == "torch":
        import torch

        options.setdefault("fullgraph", True)
        return torch.compile(_with_own_code(fn), **options)
    raise ValueError(f"{name} has no tracing compiler; compiling needs the jax or torch backend")


def _with_own_code(fn: Any) -> Any:
    """`fn` (a function or bound method) rebuilt around a copy of its code object.

    TorchDynamo keeps its compiled versions per code object, at most
    ``torch._dynamo.config.recompile_limit`` (8) of them, and with ``fullgraph=True`` one more
    is an error. Every model compiled from the same function would count against that one limit,
    so a process that builds a ninth compiled step would fail; with a code object of its own,
    each compiled function counts only its own versions (batch shapes, modes)."""
    method_of = None
    if isinstance(fn, types.MethodType):
        method_of, fn = fn.__self__, fn.__func__
    if not isinstance(fn, types.FunctionType):
        return fn if method_of is None else types.MethodType(fn, method_of)
    own = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    own.__kwdefaults__, own.__qualname__ = fn.__kwdefaults__, fn.__qualname__
    return own if method_of is None else types.MethodType(own, method_of)


def traced_scalar(value: float, *, xp: Namespace, device: Any, dtype: Any) -> Any:
    """A Python number in the form a compiled function should take it, so that a new value
    (each step's learning rate) neither recompiles nor waits on the device.

    JAX: the number itself (``jax.jit`` traces Python scalars as weakly typed arguments).
    PyTorch: a 0-D tensor made by a fill on `device` (no host-to-device copy, no sync);
    ``torch.compile`` would specialise on, and recompile for, each new Python float.
    Other namespaces: the number itself.

    Args:
        value: the number.
        xp, device: where the compiled function runs.
        dtype: the dtype of the 0-D tensor (PyTorch).

    Returns:
        The number, or (PyTorch) a 0-D tensor holding it.
    """
    if namespace_name(xp) == "torch":
        return xp.full((), value, dtype=dtype, device=device)
    return value
