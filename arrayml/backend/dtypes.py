"""Dtypes by name across libraries, JAX's 64-bit switch, and the widest types a namespace has."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .namespaces import Array, Namespace, get_namespace, namespace_name

#: How to enable float64 in JAX (it is off by default): named in every error about it.
JAX_X64_FIX = 'set JAX_ENABLE_X64=1 before starting Python, or call jax.config.update("jax_enable_x64", True) before creating any array'

#: The dtypes arrayml knows by name: the same name in every library.
DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
               "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128")

#: The floating dtypes arrayml's parameters may have, by name.
PARAMETER_DTYPES = ("float32", "float64")

# (type of the dtype object, dtype object) -> name, for NumPy (both its dtype instances and its
# scalar classes, which compare equal but hash apart) and for every array library that has been
# imported: filled on first need. The type is part of the key so that a lookup never compares
# dtypes of two libraries (array-api-strict warns when its dtypes meet NumPy's in ``==``).
_DTYPE_NAME_OF: dict[tuple[type, Any], str] = {}


def _remember(obj: Any, name: str) -> None:
    _DTYPE_NAME_OF.setdefault((type(obj), obj), name)


def _learn_dtype_names() -> None:
    for name in DTYPE_NAMES:
        if name == "bool":
            _remember(np.dtype(np.bool_), name)
            _remember(np.bool_, name)
        elif hasattr(np, name):
            _remember(np.dtype(name), name)
            _remember(getattr(np, name), name)
        for module in ("torch", "array_api_strict", "jax.numpy", "ml_dtypes", "ndonnx"):
            lib = sys.modules.get(module)
            obj = getattr(lib, name, None) if lib is not None else None
            if obj is not None:
                _remember(obj, name)
                if module in ("jax.numpy", "ml_dtypes"):  # bfloat16 & co are NumPy extension dtypes
                    _remember(np.dtype(obj), name)


def known_dtype_name(dtype: Any) -> str | None:
    """The name of `dtype` if it is a dtype object of a library arrayml knows, else None."""
    try:
        key = (type(dtype), dtype)
        name = _DTYPE_NAME_OF.get(key)
        if name is None:
            _learn_dtype_names()  # a library imported since the last lookup
            name = _DTYPE_NAME_OF.get(key)
    except TypeError:  # unhashable: not a dtype
        return None
    return name


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for the float32 dtype of any library (``numpy.float32``,
    ``numpy.dtype("float32")``, ``torch.float32``, ``array_api_strict.float32``, JAX's, ndonnx's), and so
    on for every name in `DTYPE_NAMES`. A string comes back as it is, and anything else as its
    text, so that the function is safe inside error messages.

    Args:
        dtype: a dtype object of any library, or anything else.

    Returns:
        The dtype's name (``"float32"``, ``"int64"``...), or ``str(dtype)`` for what is no known
        dtype.
    """
    if isinstance(dtype, str):
        return dtype
    name = known_dtype_name(dtype)
    return name if name is not None else str(dtype)


def x64_enabled() -> bool:
    """Whether JAX currently allows 64-bit dtypes (``jax_enable_x64``, which is off by default;
    the ``jax.enable_x64`` context manager counts too). False when JAX is not imported.

    Returns:
        True when JAX is imported and 64-bit dtypes are on.
    """
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    return jax.dtypes.canonicalize_dtype(np.float64) == np.float64


def jax_dtype(dtype: Any, what: str) -> Any:
    """A dtype JAX will really use for `dtype`. Without x64, JAX would quietly turn float64 into
    float32 (and int64 into int32): float64 and complex128 are an error naming the fix instead;
    64-bit integers become 32-bit ones explicitly (`check_int32_range` guards the values)."""
    if x64_enabled():
        return dtype
    name = dtype_name(dtype)
    if name not in ("float64", "complex128", "int64", "uint64"):
        return dtype
    if name in ("float64", "complex128"):
        raise TypeError(
            f"{name} asked for on JAX ({what}), but JAX has 64-bit types disabled and would "
            f"silently use {'float32' if name == 'float64' else 'complex64'} instead; to enable "
            f"them, {JAX_X64_FIX} (or ask for float32)"
        )
    import jax.numpy as jnp

    return jnp.int32 if name == "int64" else jnp.uint32


def check_int32_range(host: np.ndarray, what: str) -> None:
    """Refuse 64-bit integers that JAX without x64 would wrap around in 32 bits."""
    info = np.iinfo(np.int32 if host.dtype.kind == "i" else np.uint32)
    if host.size and (host.min() < info.min or host.max() > info.max):
        raise ValueError(
            f"64-bit integers outside the 32-bit range sent to JAX ({what}), which has 64-bit "
            f"types disabled; to keep them, {JAX_X64_FIX}"
        )


def widest_float(xp: Namespace) -> Any:
    """float64 of `xp`, or float32 on JAX with x64 disabled (where it has nothing wider): for
    sums and ratios that prefer float64 but do not need it (metrics, loss totals), so that they
    ask for what exists instead of having JAX truncate them with a warning. Parameters and data
    never go through this: float64 asked for there is an error on JAX without x64.

    Args:
        xp: the namespace.

    Returns:
        Its float64 dtype, or float32 on JAX without x64.
    """
    return xp.float32 if namespace_name(xp) == "jax" and not x64_enabled() else xp.float64


def widest_int(xp: Namespace) -> Any:
    """int64 of `xp`, or int32 on JAX with x64 disabled (counts and labels below 2**31).

    Args:
        xp: the namespace.

    Returns:
        Its int64 dtype, or int32 on JAX without x64.
    """
    return xp.int32 if namespace_name(xp) == "jax" and not x64_enabled() else xp.int64


def check_floating(x: Array, what: str, *, xp: Namespace | None = None) -> None:
    """Raise `TypeError` unless `x` has a real floating dtype (say what `what` expected).

    Args:
        x: the array.
        what: who expects a floating array, in the error (``"ReLU"``).
        xp: `x`'s namespace, if the caller has it.

    Raises:
        TypeError: `x` is not of a real floating dtype (an integer or complex array).
    """
    xp = get_namespace(x) if xp is None else xp
    dtype = x.dtype
    if dtype == xp.float32 or dtype == xp.float64:  # the usual answer, without isdtype's work
        return
    if not xp.isdtype(dtype, "real floating"):
        raise TypeError(
            f"{what} expects a real floating-point array (float32 or float64), got dtype "
            f"{dtype_name(x.dtype)}; convert it first, e.g. xp.astype(x, xp.float32)"
        )
