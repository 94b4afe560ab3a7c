"""Moving arrays between the host and the backends, and waiting for a device (for timing)."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .dtypes import check_int32_range, dtype_name, jax_dtype
from .namespaces import Array, Namespace, namespace_name


def asarray(obj: Any, *, xp: Namespace, device: Any, dtype: Any = None) -> Array:
    """Create an array of namespace `xp` on `device` from host data (a NumPy array, a list...).

    On JAX without x64, float64 (asked for, or float64 host data with no `dtype`) is a
    `TypeError` naming the fix rather than JAX's silent float32.

    Args:
        obj: host data (a NumPy array, a list, a number).
        xp, device: where to create the array.
        dtype: a dtype of `xp` (None: the data's).

    Returns:
        The new array.

    Raises:
        TypeError: float64 on JAX without x64.
        ValueError: 64-bit integers that JAX without x64 would wrap around in 32 bits.
    """
    if namespace_name(xp) == "jax":
        return _to_jax(obj, device, dtype, "backend.asarray")
    return xp.asarray(obj, dtype=dtype, device=device)


def _to_jax(obj: Any, device: Any, dtype: Any, what: str) -> Array:
    import jax.numpy as jnp

    host = np.asarray(obj)
    asked = host.dtype if dtype is None else dtype
    target = jax_dtype(asked, what)
    if dtype_name(target) != dtype_name(asked):  # 64-bit integers narrowed to 32 bits
        check_int32_range(host, what)
    return jnp.asarray(host, dtype=target, device=device)


def to_numpy(x: Array) -> np.ndarray:
    """Copy any backend's array to a NumPy array on the host (a host sync for GPU arrays).

    Args:
        x: an array of any backend (a NumPy array comes back as it is).

    Returns:
        The values as a NumPy array.

    Raises:
        ValueError: `x` is an ndonnx array that depends on a graph input (it has no value until
            the graph runs).

    Example:
        >>> import numpy as np
        >>> from arrayml import backend
        >>> backend.to_numpy(np.float32(2.5))
        array(2.5, dtype=float32)
    """
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):
        return np.asarray(x)
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_jax_array(x):
        return np.asarray(x)  # a tracer (inside jax.jit) raises JAX's TracerArrayConversionError
    xp = array_api_compat.array_namespace(x)
    if namespace_name(xp) == "ndonnx":
        return _ndonnx_value(x)
    if array_api_compat.is_array_api_strict_namespace(xp):
        x = array_api_compat.to_device(x, xp.Device("CPU_DEVICE"))
    return np.asarray(x)


def _ndonnx_value(x: Array) -> np.ndarray:
    """The value of an ndonnx array: known while building only for constants (and what is
    computed from constants alone); a graph input, and anything computed from one, has a value
    only once onnxruntime runs the built graph."""
    try:
        return np.asarray(x.unwrap_numpy())
    except ValueError:
        raise ValueError(
            f"this ndonnx array (shape {tuple(x.shape)}, {dtype_name(x.dtype)}) is part of an ONNX graph that "
            "has not run: it depends on a graph input, so it has no value yet (a host read such as float(x), "
            "bool(x) or to_numpy(x) cannot be part of an exported function); build the graph "
            "(arrayml.backend.trace_onnx) and run it"
        ) from None


def convert(x: Array, xp: Namespace, device: Any, dtype: Any = None) -> Array:
    """`x` as an array of namespace `xp` on `device` (through the host when the namespace or
    device differs). `dtype`, if given, is a dtype of `xp`.

    Args:
        x: an array of any backend.
        xp, device: where to put it.
        dtype: a dtype of `xp` (None: `x`'s).

    Returns:
        The array of `xp` on `device` (`x` itself when nothing changes).

    Raises:
        TypeError: float64 on JAX without x64.
        ValueError: `x` has no value yet (an ndonnx graph node), or 64-bit integers that JAX
            without x64 would wrap around.
    """
    src_xp = array_api_compat.array_namespace(x)
    if src_xp is xp and array_api_compat.device(x) == device:
        if dtype is not None and namespace_name(xp) == "jax":
            dtype = jax_dtype(dtype, "backend.convert")
        return x if dtype is None or x.dtype == dtype else xp.astype(x, dtype)
    host = to_numpy(x)
    if namespace_name(xp) == "jax":  # float64 without x64: an error, never a silent float32
        return _to_jax(host, device, host.dtype if dtype is None else dtype, "backend.convert")
    if dtype is None:
        dtype = getattr(xp, str(host.dtype))
    return xp.asarray(host, dtype=dtype, device=device)


def synchronize(xp: Namespace, dev: Any, *arrays: Array) -> None:
    """Wait for queued device work on `dev` (for timing only; never called in the training loop).

    JAX dispatches asynchronously on the CPU as well, and has no device-wide barrier: it waits
    for `arrays` if given (cheapest: the outputs of the work being timed), otherwise for every
    live JAX array on `dev`'s platform.

    Args:
        xp: the namespace.
        dev: the device to wait for.
        *arrays: (JAX) the arrays to wait for; none: every live JAX array of that platform.
    """
    name = namespace_name(xp)
    if name == "torch" and getattr(dev, "type", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize(dev)
    elif name == "cupy":
        import cupy

        cupy.cuda.Device(getattr(dev, "id", 0)).synchronize()
    elif name == "jax":
        import jax

        jax.block_until_ready(list(arrays) if arrays else jax.live_arrays(getattr(dev, "platform", None)))
