"""Devices by name, and where a module's parameters live (`Placement`: namespace, device, dtype).

`placement` is what every constructor calls with its ``xp=``, ``device=`` and ``dtype=``
arguments: it turns names into the objects each library uses and refuses, naming the argument,
anything that cannot work (a torch device for NumPy, CUDA where there is none, an integer dtype).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from .dtypes import PARAMETER_DTYPES, dtype_name, jax_dtype, known_dtype_name
from .namespaces import (
    BACKEND_NAMES,
    GRAPH_BACKEND_NAMES,
    BackendUnavailableError,
    Namespace,
    namespace_by_name,
    namespace_name,
)


@dataclass(frozen=True)
class Placement:
    """Where and how a module's arrays are created: namespace, device and floating dtype.

    Attributes:
        xp: the array namespace.
        device: the device object of that namespace.
        dtype: the floating dtype of that namespace (float32 or float64).
    """

    xp: Namespace
    device: Any
    dtype: Any

    def __str__(self) -> str:
        return f"{namespace_name(self.xp)} on {self.device} ({dtype_name(self.dtype)})"


# --------------------------------------------------------------------------------------------
# Devices by name: one small resolver per library
# --------------------------------------------------------------------------------------------


def _numpy_device(xp: Namespace, spec: Any) -> Any:
    if spec not in (None, "cpu"):
        raise ValueError(f"numpy arrays live on the CPU only; got device {spec!r}")
    return "cpu"


#: What a torch device type needs, for the error that says it is unavailable.
_TORCH_DEVICE_NEEDS = {
    "mps": "an Apple-silicon Mac and torch's macOS build (torch.backends.mps.is_available())",
    "xpu": "an Intel GPU and torch's XPU build (torch.xpu.is_available())",
}


def _torch_device(xp: Namespace, spec: Any) -> Any:
    import torch

    if spec is None:
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"torch does not know device {spec!r}: {exc}") from None
    if dev.type not in ("cuda", "cpu", "meta"):  # mps, xpu, ...: can this build put an array there?
        try:
            torch.empty((0,), device=dev)
        except Exception as exc:  # noqa: BLE001 - what each backend raises differs (NotImplementedError, AssertionError, ...)
            text = str(exc).strip()
            reason = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__  # its first sentence
            need = _TORCH_DEVICE_NEEDS.get(dev.type, f"a torch build with {dev.type} support")
            raise BackendUnavailableError(
                f"device {spec!r} asked for, but this torch build (torch {torch.__version__}) cannot use it here: "
                f"{reason}; it needs {need}. Use 'cpu'"
                f"{' or cuda' if torch.cuda.is_available() else ''}"
            ) from None
        return dev
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"device {spec!r} asked for, but this torch build sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None})"
        )
    index = 0 if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise BackendUnavailableError(
            f"device {spec!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) are present"
        )
    return torch.device("cuda", index)


def _cupy_device(xp: Namespace, spec: Any) -> Any:
    import cupy

    if spec is None or spec == "cuda":
        return cupy.cuda.Device(0)
    if isinstance(spec, cupy.cuda.Device):
        return spec
    text = str(spec).removeprefix("cuda:")
    try:
        index = int(text)
    except ValueError:
        raise ValueError(f"cupy device must be 'cuda' or 'cuda:N', got {spec!r}") from None
    if index >= cupy.cuda.runtime.getDeviceCount():
        raise BackendUnavailableError(f"CUDA device {index} asked for, but it is not present")
    return cupy.cuda.Device(index)


def _jax_device(xp: Namespace, spec: Any) -> Any:
    """``None`` -> JAX's default device (its first GPU when jax[cuda] sees one, else the CPU);
    ``"cpu"``/``"cpu:N"``; ``"cuda"``/``"cuda:N"``/``"gpu:N"`` -> the N-th GPU; a ``jax.Device``
    as it is."""
    import jax

    if spec is None:
        return jax.devices()[0]
    if isinstance(spec, jax.Device):
        return spec
    kind, _, index_text = str(spec).lower().partition(":")
    if kind not in ("cpu", "cuda", "gpu") or not (index_text == "" or index_text.isdigit()):
        raise ValueError(f"jax device must be 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    index = int(index_text) if index_text else 0
    platform = "cpu" if kind == "cpu" else "gpu"
    try:
        devices = jax.devices(platform)
    except RuntimeError:  # "Unknown backend: 'gpu' requested, but no platforms ... are present"
        raise BackendUnavailableError(
            f"device {spec!r} asked for, but this JAX install sees no GPU (jax {jax.__version__}, "
            f"platforms: {', '.join(sorted({d.platform for d in jax.devices()}))}); install "
            '"jax[cuda12]>=0.10,<0.11" on a machine with an NVIDIA GPU'
        ) from None
    if index >= len(devices):
        raise BackendUnavailableError(
            f"device {spec!r} asked for, but JAX sees only {len(devices)} {platform} device(s)"
        )
    return devices[index]


def _strict_device(xp: Namespace, spec: Any) -> Any:
    if spec is None:
        return xp.Device("CPU_DEVICE")
    if isinstance(spec, xp.Device):
        return spec
    known = [str(d) for d in xp.__array_namespace_info__().devices()]
    try:
        return xp.Device(str(spec))
    except ValueError:
        raise ValueError(f"array-api-strict has no device {spec!r}; it has {', '.join(known)}") from None


def _ndonnx_device(xp: Namespace, spec: Any) -> Any:
    """ndonnx has one device, a placeholder: where the graph runs is onnxruntime's choice (its
    execution providers), made when a session is created, not when arrays are."""
    only = xp.__array_namespace_info__().default_device()
    if spec is None or spec is only or spec == "cpu":
        return only
    raise ValueError(
        f"ndonnx arrays are nodes of an ONNX graph and have no device choice (onnxruntime picks one when "
        f"it runs the graph); got device {spec!r}: give no device"
    )


_DEVICE_RESOLVERS: dict[str, Callable[[Namespace, Any], Any]] = {
    "numpy": _numpy_device, "torch": _torch_device, "cupy": _cupy_device, "jax": _jax_device,
    "array-api-strict": _strict_device, "ndonnx": _ndonnx_device,
}


def resolve_device(xp: Namespace, spec: Any = None) -> Any:
    """Turn a device given by name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"device1"``) or
    ``None`` (the namespace's default device) into the device object of namespace `xp`. A
    torch device other than CPU and CUDA (``"mps"`` off a Mac, ``"xpu"`` without torch's XPU
    build) is tried with an empty array, so that one this build cannot use is refused here.

    Args:
        xp: the namespace.
        spec: the device, by name or as a device object of `xp` (None: its default).

    Returns:
        The device object of `xp` (`spec` as it is for a namespace arrayml does not know).

    Raises:
        BackendUnavailableError: the device is not present or this build cannot use it.
        ValueError: the backend knows no such device.
    """
    resolver = _DEVICE_RESOLVERS.get(namespace_name(xp))
    return spec if resolver is None else resolver(xp, spec)


# --------------------------------------------------------------------------------------------
# Placement from a constructor's xp=, device= and dtype=
# --------------------------------------------------------------------------------------------

_DEVICE_HINTS = {
    "numpy": "'cpu'",
    "torch": "'cpu', 'cuda' or 'cuda:N'",
    "cupy": "'cuda' or 'cuda:N'",
    "array-api-strict": "'CPU_DEVICE', 'device1' or 'device2'",
    "ndonnx": "no device",
}


def as_namespace(xp: Any) -> Namespace:
    """`xp` (None, a backend name or a namespace module) as the namespace arrayml uses.

    Args:
        xp: None (NumPy), a backend name, or a namespace module (plain ``numpy``, ``torch`` and
            ``cupy`` become their array-API wrappers).

    Returns:
        The namespace.

    Raises:
        TypeError: `xp` is none of those.
        ValueError: `xp` is a name that is no backend's.
        BackendUnavailableError: the named backend is not installed.
    """
    if xp is None:
        return namespace_by_name("numpy")
    if isinstance(xp, str):
        return namespace_by_name(xp)
    if isinstance(xp, types.ModuleType):
        for lib in ("numpy", "torch", "cupy"):  # plain `numpy` -> its array-API wrapper
            if getattr(array_api_compat, f"is_{lib}_namespace")(xp) and (
                    lib == "numpy" or not xp.__name__.startswith("array_api")):
                return namespace_by_name(lib)
        if hasattr(xp, "__array_api_version__") or array_api_compat.is_array_api_strict_namespace(xp) \
                or array_api_compat.is_jax_namespace(xp):
            return xp
    raise TypeError(
        f"xp must be a backend name ({', '.join(BACKEND_NAMES + GRAPH_BACKEND_NAMES)}) or an array-API namespace "
        f"module, got {type(xp).__name__} {xp!r}"
    )


def _check_device_argument(xp: Namespace, device: Any) -> None:
    """Refuse a device object of another library (``torch.device("cpu")`` for NumPy) and
    anything that is not a device at all, naming the argument, what came and what it takes."""
    if device is None or isinstance(device, str):
        return
    name = namespace_name(xp)
    hint = _DEVICE_HINTS.get(name, "a device name")
    owner = type(device).__module__.partition(".")[0]
    owner = {"array_api_strict": "array-api-strict", "jaxlib": "jax"}.get(owner, owner)
    if owner == name:
        return
    if name in ("torch", "cupy") and isinstance(device, (int, np.integer)) and not isinstance(device, (bool, np.bool_)):
        return  # a CUDA device number
    if owner in ("torch", "cupy", "array-api-strict", "jax", "ndonnx"):
        takes = "device='cpu' or no device" if name == "numpy" else f"a {name} device or a device name ({hint})"
        raise TypeError(
            f"device={device!r} is a {owner} device, but the arrays are to be {name} arrays; give {takes}"
        )
    raise TypeError(
        f"device must be a device name ({hint}) or a {name} device object, got "
        f"{type(device).__name__} {device!r}"
    )


def parameter_dtype(xp: Namespace, dtype: Any) -> Any:
    """`dtype` (None: float32; a name; or any library's dtype object) as a dtype of `xp`, if it
    is one that parameters may have (`PARAMETER_DTYPES`)."""
    name: str | None
    if dtype is None:
        name = "float32"
    elif isinstance(dtype, str):
        name = dtype
    else:
        name = known_dtype_name(dtype)
        if name is None:
            raise TypeError(
                f"dtype must be 'float32' or 'float64', by name or as any library's dtype object "
                f"(numpy.float32, torch.float64, ...), got {type(dtype).__name__} {dtype!r}"
            )
    if name not in PARAMETER_DTYPES:
        got = repr(dtype) if isinstance(dtype, str) else name
        why = ""
        if name in ("float16", "bfloat16"):
            why = (" (half precision is not supported: the losses, checks and checkpoints "
                   "need float32 or float64)")
        raise ValueError(
            f"dtype must be 'float32' or 'float64' (a name or any library's dtype object), got {got}{why}"
        )
    return getattr(xp, name)


def placement(xp: Namespace | str | None = None, device: Any = None, dtype: Any = None) -> Placement:
    """Resolve where parameters live; the defaults are NumPy, its default device, float32.

    Accepted: `xp` a backend name (`BACKEND_NAMES`) or an array-API namespace (plain ``numpy``
    and ``torch`` too); `device` a device name (``"cpu"``, ``"cuda:1"``, ``"device1"``), a device
    object of that same library, or for torch and CuPy a CUDA device number; `dtype` ``"float32"``
    or ``"float64"`` by name or as any library's dtype object (``numpy.float32`` for a torch
    model is fine). Everything else is a `TypeError` or `ValueError` naming the argument, what
    came and what it takes: ``xp=42``, ``device=torch.device("cpu")`` for NumPy, torch's
    ``"meta"`` device (it holds no values), integer and half-precision dtypes.

    Args:
        xp: the namespace: None (NumPy), a backend name or a namespace module.
        device: a device name, a device object of that library, or (torch, CuPy) a CUDA device
            number; None: the namespace's default device.
        dtype: ``"float32"`` (None) or ``"float64"``, by name or as any library's dtype object.

    Returns:
        The `Placement`.

    Raises:
        TypeError: `xp`, `device` or `dtype` is of the wrong kind (another library's device, not
            a dtype).
        ValueError: an unknown backend, device or dtype name, torch's ``"meta"`` device, or a
            dtype that parameters may not have (integers, half precision).
        BackendUnavailableError: the backend is not installed or the device is not present.

    Example:
        >>> import numpy as np
        >>> from arrayml import backend
        >>> str(backend.placement("numpy", dtype=np.float64))
        'numpy on cpu (float64)'
    """
    ns = as_namespace(xp)
    _check_device_argument(ns, device)
    dev = resolve_device(ns, device)
    if getattr(dev, "type", None) == "meta" and namespace_name(ns) == "torch":
        raise ValueError(
            "device='meta' holds no values, and arrayml reads values (losses, label checks, "
            "checkpoints); use 'cpu' or 'cuda'"
        )
    dtype = parameter_dtype(ns, dtype)
    if namespace_name(ns) == "jax":
        dtype = ns.dtype(jax_dtype(dtype, "model parameters"))  # a NumPy dtype, as jax_array.dtype is
    return Placement(xp=ns, device=dev, dtype=dtype)
