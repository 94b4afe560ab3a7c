"""Every backend question in arrayml is answered here, and nowhere else.

Layers, losses, the optimizer and the metrics never import NumPy, PyTorch, CuPy or JAX. They ask this
module for the namespace and device of the arrays they are given (`get_namespace`), create new
arrays with an explicit ``dtype=`` and ``device=``, and draw random numbers through `normal` and
`permutation`, which take an explicit seeded :class:`numpy.random.Generator`, draw on the host and
move the result to the target device in one step.

Namespaces are the ones `array_api_compat` returns (``array_api_compat.numpy``,
``array_api_compat.torch``, ``array_api_compat.cupy``), ``jax.numpy`` itself (JAX implements the
standard natively, so ``array_api_compat.array_namespace`` hands it back unwrapped) or
``array_api_strict``.

JAX specifics, all handled here: its arrays are immutable (arrayml never writes in place anyway);
float64 exists only when x64 is enabled (asking for it otherwise is an error naming the fix, never
a silent float32); and inside ``jax.jit`` tracing an array has no device (see
`get_namespace_and_device`). `compile_function` is the one place that calls ``jax.jit`` or
``torch.compile``.
"""

from __future__ import annotations

import importlib
import math
import numbers
import types
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

Array = Any  # an array of any array-API namespace
Namespace = Any  # an array-API namespace module
#: What a seed argument (``rng=``) accepts: a generator, an integer seed, or None (seed 0).
Seed = np.random.Generator | int | np.integer | None

__all__ = [
    "Array",
    "Namespace",
    "Seed",
    "BackendUnavailableError",
    "Placement",
    "BACKEND_NAMES",
    "namespace_by_name",
    "namespace_name",
    "resolve_device",
    "placement",
    "get_namespace",
    "get_namespace_and_device",
    "device",
    "as_generator",
    "global_seed_generator",
    "positive_int",
    "real_number",
    "boolean",
    "dtype_name",
    "normal",
    "permutation",
    "asarray",
    "to_numpy",
    "convert",
    "check_floating",
    "logsumexp",
    "log_softmax",
    "softmax_cross_entropy",
    "one_hot",
    "subtract_scaled",
    "take_rows",
    "column_sums",
    "count_true",
    "relu",
    "relu_backward",
    "synchronize",
    "is_array",
    "widest_float",
    "widest_int",
    "x64_enabled",
    "compiler_name",
    "compile_function",
    "traced_scalar",
]

#: The names accepted by `namespace_by_name` (and ``--xp`` on the command line).
BACKEND_NAMES = ("numpy", "torch", "cupy", "jax", "array-api-strict")

_INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "torch": "pip install torch  (CPU only: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu)",
    "cupy": "pip install cupy-cuda12x  (needs an NVIDIA GPU and CUDA 12)",
    "jax": 'pip install "jax[cpu]>=0.10,<0.11"  (GPU: "jax[cuda12]>=0.10,<0.11"; 0.10 is the '
    "newest for Python 3.11)",
    "array-api-strict": "pip install array-api-strict",
}

#: How to enable float64 in JAX (it is off by default): named in every error about it.
JAX_X64_FIX = 'set JAX_ENABLE_X64=1 before starting Python, or call jax.config.update("jax_enable_x64", True) before creating any array'


class BackendUnavailableError(RuntimeError):
    """A backend or device was asked for that this machine cannot provide."""


def device(x: Array) -> Any:
    """The device `x` lives on (``array_api_compat.device``)."""
    return array_api_compat.device(x)


# --------------------------------------------------------------------------------------------
# Namespaces by name, and devices by name
# --------------------------------------------------------------------------------------------


def namespace_by_name(name: str) -> Namespace:
    """Return the array-API namespace called `name` (one of `BACKEND_NAMES`).

    Raises `ValueError` for an unknown name and `BackendUnavailableError` (with the install
    command) when the library is not installed or, for CuPy, when no CUDA device is present.
    """
    key = name.lower().replace("_", "-")
    if key == "array-api-strict" or key == "strict":
        module = "array_api_strict"
    elif key in ("numpy", "torch", "cupy", "jax"):
        # JAX implements the standard itself: array_api_compat hands back jax.numpy unwrapped
        module = "jax.numpy" if key == "jax" else f"array_api_compat.{key}"
        key_lib = key
        try:
            importlib.import_module(key_lib)
        except ImportError as exc:
            raise BackendUnavailableError(
                f"backend {name!r} is not installed ({exc}); install it with: "
                f"{_INSTALL_HINTS[key]}"
            ) from None
        except Exception as exc:  # CuPy raises other errors when CUDA is broken
            raise BackendUnavailableError(f"backend {name!r} failed to import: {exc}") from None
    else:
        raise ValueError(
            f"unknown array backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}"
        )
    try:
        xp = importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {name!r} is not installed ({exc}); install it with: {_INSTALL_HINTS[key]}"
        ) from None
    if key == "cupy":
        _require_cuda_for_cupy()
    return xp


def _require_cuda_for_cupy() -> None:
    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when the driver is missing
        raise BackendUnavailableError(f"CuPy is installed but CUDA is not usable: {exc}") from None
    if count == 0:
        raise BackendUnavailableError("CuPy is installed but no CUDA device is present")


_NAMESPACE_NAMES = {
    "array_api_compat.numpy": "numpy", "numpy": "numpy", "array_api_compat.torch": "torch",
    "torch": "torch", "array_api_compat.cupy": "cupy", "cupy": "cupy", "jax.numpy": "jax",
    "array_api_strict": "array-api-strict",
}


def namespace_name(xp: Namespace) -> str:
    """A short human name for a namespace: ``numpy``, ``torch``, ``cupy``, ``jax``,
    ``array-api-strict``."""
    # By module name first: cheap on every step, and torch.compile traces it without going
    # through array_api_compat's lru_cache-wrapped checks (which it warns about).
    name = _NAMESPACE_NAMES.get(getattr(xp, "__name__", ""))
    if name is not None:
        return name
    if array_api_compat.is_numpy_namespace(xp):
        return "numpy"
    if array_api_compat.is_torch_namespace(xp):
        return "torch"
    if array_api_compat.is_cupy_namespace(xp):
        return "cupy"
    if array_api_compat.is_jax_namespace(xp):
        return "jax"
    if array_api_compat.is_array_api_strict_namespace(xp):
        return "array-api-strict"
    return getattr(xp, "__name__", repr(xp))


def resolve_device(xp: Namespace, spec: Any = None) -> Any:
    """Turn a device given by name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"device1"``) or
    ``None`` (the namespace's default device) into the device object of namespace `xp`.

    Raises `BackendUnavailableError` when CUDA is asked for and not present, and `ValueError`
    for a name the backend does not know.
    """
    name = namespace_name(xp)
    if name == "numpy":
        if spec not in (None, "cpu"):
            raise ValueError(f"numpy arrays live on the CPU only; got device {spec!r}")
        return "cpu"
    if name == "torch":
        import torch

        if spec is None:
            return torch.device("cpu")
        try:
            dev = torch.device(spec)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"torch does not know device {spec!r}: {exc}") from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailableError(
                    f"device {spec!r} asked for, but this torch build sees no CUDA device "
                    f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None})"
                )
            index = 0 if dev.index is None else dev.index
            if index >= torch.cuda.device_count():
                raise BackendUnavailableError(
                    f"device {spec!r} asked for, but only {torch.cuda.device_count()} CUDA "
                    "device(s) are present"
                )
            dev = torch.device("cuda", index)
        return dev
    if name == "cupy":
        import cupy

        if spec is None or spec == "cuda":
            return cupy.cuda.Device(0)
        if isinstance(spec, cupy.cuda.Device):
            return spec
        text = str(spec)
        if text.startswith("cuda:"):
            text = text[5:]
        try:
            index = int(text)
        except ValueError:
            raise ValueError(f"cupy device must be 'cuda' or 'cuda:N', got {spec!r}") from None
        if index >= cupy.cuda.runtime.getDeviceCount():
            raise BackendUnavailableError(f"CUDA device {index} asked for, but it is not present")
        return cupy.cuda.Device(index)
    if name == "jax":
        return _jax_device(spec)
    if name == "array-api-strict":
        if spec is None:
            return xp.Device("CPU_DEVICE")
        if isinstance(spec, xp.Device):
            return spec
        known = [str(d) for d in xp.__array_namespace_info__().devices()]
        try:
            return xp.Device(str(spec))
        except ValueError:
            raise ValueError(
                f"array-api-strict has no device {spec!r}; it has {', '.join(known)}"
            ) from None
    return spec


def _jax_device(spec: Any) -> Any:
    """``None`` -> JAX's default device (its first GPU when jax[cuda] sees one, else the CPU);
    ``"cpu"``/``"cpu:N"``; ``"cuda"``/``"cuda:N"``/``"gpu:N"`` -> the N-th GPU; a ``jax.Device``
    as it is."""
    import jax

    if spec is None:
        return jax.devices()[0]
    if isinstance(spec, jax.Device):
        return spec
    text = str(spec).lower()
    kind, _, index_text = text.partition(":")
    if kind not in ("cpu", "cuda", "gpu"):
        raise ValueError(f"jax device must be 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    try:
        index = int(index_text) if index_text else 0
    except ValueError:
        raise ValueError(f"jax device must be 'cpu', 'cuda' or 'cuda:N', got {spec!r}") from None
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


def x64_enabled() -> bool:
    """Whether JAX currently allows 64-bit dtypes (``jax_enable_x64``, which is off by default;
    the ``jax.enable_x64`` context manager counts too). False when JAX is not imported."""
    import sys

    jax = sys.modules.get("jax")
    if jax is None:
        return False
    return jax.dtypes.canonicalize_dtype(np.float64) == np.float64


def _jax_dtype(dtype: Any, what: str) -> Any:
    """A dtype JAX will really use for `dtype`. Without x64, JAX would quietly turn float64 into
    float32 (and int64 into int32): float64 and complex128 are an error naming the fix instead;
    64-bit integers become 32-bit ones explicitly (`_check_int32_range` guards the values)."""
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


def _check_int32_range(host: np.ndarray, what: str) -> None:
    info = np.iinfo(np.int32 if host.dtype.kind == "i" else np.uint32)
    if host.size and (host.min() < info.min or host.max() > info.max):
        raise ValueError(
            f"64-bit integers outside the 32-bit range sent to JAX ({what}), which has 64-bit "
            f"types disabled; to keep them, {JAX_X64_FIX}"
        )


@dataclass(frozen=True)
class Placement:
    """Where and how a module's arrays are created: namespace, device and floating dtype."""

    xp: Namespace
    device: Any
    dtype: Any

    def __str__(self) -> str:
        return f"{namespace_name(self.xp)} on {self.device} ({dtype_name(self.dtype)})"


#: The dtypes arrayml knows by name: the same name in every library.
DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
               "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128")

# (type of the dtype object, dtype object) -> name, for NumPy (both its dtype instances and its
# scalar classes, which compare equal but hash apart) and for every array library that has been
# imported: filled on first need. The type is part of the key so that a lookup never compares
# dtypes of two libraries (array-api-strict warns when its dtypes meet NumPy's in ``==``).
_DTYPE_NAME_OF: dict[tuple[type, Any], str] = {}


def _remember(obj: Any, name: str) -> None:
    _DTYPE_NAME_OF.setdefault((type(obj), obj), name)


def _learn_dtype_names() -> None:
    import sys

    for name in DTYPE_NAMES:
        if name == "bool":
            _remember(np.dtype(np.bool_), name)
            _remember(np.bool_, name)
        elif hasattr(np, name):
            _remember(np.dtype(name), name)
            _remember(getattr(np, name), name)
        for module in ("torch", "array_api_strict", "jax.numpy", "ml_dtypes"):
            lib = sys.modules.get(module)
            obj = getattr(lib, name, None) if lib is not None else None
            if obj is not None:
                _remember(obj, name)
                if module in ("jax.numpy", "ml_dtypes"):  # bfloat16 & co are NumPy extension dtypes
                    _remember(np.dtype(obj), name)


def _known_dtype_name(dtype: Any) -> str | None:
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
    ``numpy.dtype("float32")``, ``torch.float32``, ``array_api_strict.float32``, JAX's), and so
    on for every name in `DTYPE_NAMES`. A string comes back as it is, and anything else as its
    text, so that the function is safe inside error messages."""
    if isinstance(dtype, str):
        return dtype
    name = _known_dtype_name(dtype)
    return name if name is not None else str(dtype)


#: The floating dtypes arrayml's parameters may have, by name.
PARAMETER_DTYPES = ("float32", "float64")

_DEVICE_HINTS = {
    "numpy": "'cpu'",
    "torch": "'cpu', 'cuda' or 'cuda:N'",
    "cupy": "'cuda' or 'cuda:N'",
    "array-api-strict": "'CPU_DEVICE', 'device1' or 'device2'",
}


def _as_namespace(xp: Any) -> Namespace:
    """`xp` (None, a backend name or a namespace module) as the namespace arrayml uses."""
    if xp is None:
        return namespace_by_name("numpy")
    if isinstance(xp, str):
        return namespace_by_name(xp)
    if isinstance(xp, types.ModuleType):
        if array_api_compat.is_numpy_namespace(xp):
            return namespace_by_name("numpy")  # plain `numpy` -> its array-API wrapper
        if array_api_compat.is_torch_namespace(xp) and not xp.__name__.startswith("array_api"):
            return namespace_by_name("torch")
        if array_api_compat.is_cupy_namespace(xp) and not xp.__name__.startswith("array_api"):
            return namespace_by_name("cupy")
        if hasattr(xp, "__array_api_version__") or any(
            getattr(array_api_compat, f"is_{lib}_namespace", lambda _: False)(xp)
            for lib in ("array_api_strict", "jax")
        ):
            return xp
    raise TypeError(
        f"xp must be a backend name ({', '.join(BACKEND_NAMES)}) or an array-API namespace "
        f"module, got {type(xp).__name__} {xp!r}"
    )


def _check_device_argument(xp: Namespace, device: Any) -> None:
    """Refuse a device object of another library (``torch.device("cpu")`` for NumPy) and
    anything that is not a device at all, naming the argument, what came and what it takes."""
    if device is None or isinstance(device, str):
        return
    name = namespace_name(xp)
    lib = name.partition(".")[0]
    hint = _DEVICE_HINTS.get(name, "a device name")
    owner = type(device).__module__.partition(".")[0]
    owner = {"array_api_strict": "array-api-strict", "jaxlib": "jax"}.get(owner, owner)
    if owner == lib:
        return
    if lib in ("torch", "cupy") and isinstance(device, (int, np.integer)) and not isinstance(device, (bool, np.bool_)):
        return  # a CUDA device number
    if owner in ("torch", "cupy", "array-api-strict", "jax"):
        takes = "device='cpu' or no device" if name == "numpy" else f"a {name} device or a device name ({hint})"
        raise TypeError(
            f"device={device!r} is a {owner} device, but the arrays are to be {name} arrays; give "
            f"{takes}"
        )
    raise TypeError(
        f"device must be a device name ({hint}) or a {name} device object, got "
        f"{type(device).__name__} {device!r}"
    )


def _parameter_dtype(xp: Namespace, dtype: Any) -> Any:
    """`dtype` (None: float32; a name; or any library's dtype object) as a dtype of `xp`, if it
    is one that parameters may have (`PARAMETER_DTYPES`)."""
    name: str | None
    if dtype is None:
        name = "float32"
    elif isinstance(dtype, str):
        name = dtype
    else:
        name = _known_dtype_name(dtype)
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
            f"dtype must be 'float32' or 'float64' (a name or any library's dtype object), got "
            f"{got}{why}"
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
    """
    ns = _as_namespace(xp)
    _check_device_argument(ns, device)
    dev = resolve_device(ns, device)
    if getattr(dev, "type", None) == "meta" and namespace_name(ns) == "torch":
        raise ValueError(
            "device='meta' holds no values, and arrayml reads values (losses, label checks, "
            "checkpoints); use 'cpu' or 'cuda'"
        )
    dtype = _parameter_dtype(ns, dtype)
    if namespace_name(ns) == "jax":
        dtype = ns.dtype(_jax_dtype(dtype, "model parameters"))  # a NumPy dtype, as jax_array.dtype is
    return Placement(xp=ns, device=dev, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Namespace and device of given arrays
# --------------------------------------------------------------------------------------------


def get_namespace(*arrays: Array) -> Namespace:
    """The namespace shared by `arrays` (``None`` entries are skipped).

    Raises `ValueError` naming both namespaces, or both devices, when they differ.
    """
    if arrays and type(arrays[0]) is np.ndarray:  # NumPy, the common case, without a call:
        for a in arrays:  # plain ndarrays all (no device to compare): the namespace is known
            if type(a) is not np.ndarray:
                break
        else:
            xp = _NAMESPACE_OF_TYPE.get(np.ndarray)
            if xp is not None:
                return xp
    found = _fast_namespace_and_device(arrays) if arrays else None  # one frame less, per layer call
    return (found if found is not None else get_namespace_and_device(*arrays))[0]


# Namespace by array type, filled on first sight of each type (np.ndarray, torch.Tensor, ...):
# every layer asks on every call, and array_api_compat's full inspection costs microseconds.
_NAMESPACE_OF_TYPE: dict[type, Namespace] = {}
# The torch tensor types among them: those need two more attribute reads (autograd, meta device).
_TORCH_TYPES: set[type] = set()


def _fast_namespace_and_device(arrays: tuple[Array, ...]) -> tuple[Namespace, Any] | None:
    """The common case (every array of one known type, same device) without full inspection;
    None when anything is unusual, so that the careful path below decides and explains.

    Plain loops, no generator expressions: this runs about ten times a training step, and three
    generators cost more than the checks themselves."""
    first = arrays[0]
    t = type(first)
    xp = _NAMESPACE_OF_TYPE.get(t)
    if xp is None:
        return None
    if t is np.ndarray:
        for a in arrays:
            if type(a) is not t:
                return None
        return xp, "cpu"
    dev = first.device
    if t in _TORCH_TYPES:
        if dev.type == "meta":
            return None  # refused below, with the reason
        for a in arrays:
            if type(a) is not t or a.requires_grad or (a is not first and a.device != dev):
                return None  # requires_grad: refused below, with the reason
        return xp, dev
    for a in arrays:
        if type(a) is not t or a.device != dev:
            return None
    return xp, dev


def _refuse_unusable(a: Array, i: int) -> None:
    """Arrays that array_api_compat accepts but arrayml must not compute with."""
    if isinstance(a, np.ndarray) and type(a) is not np.ndarray:
        if isinstance(a, (np.ma.MaskedArray, np.matrix)):
            kind = "a masked array" if isinstance(a, np.ma.MaskedArray) else "a numpy.matrix"
            raise TypeError(
                f"argument {i} is {kind}, which arrayml does not support (it would ignore the "
                "mask, or `*` would mean a matrix product); pass a plain array, e.g. "
                "numpy.ma.filled(x, fill_value) or numpy.asarray(x)"
            )
    elif array_api_compat.is_torch_array(a):
        if a.requires_grad:
            raise ValueError(
                f"argument {i} is a torch tensor with requires_grad=True; arrayml computes its own "
                "gradients and never builds a torch autograd graph (it would grow every step and "
                "pull the parameters into it): pass x.detach(), or make it under torch.no_grad()"
            )
        if a.device.type == "meta":
            raise ValueError(
                f"argument {i} is a torch 'meta' tensor, which holds no values; arrayml computes "
                "values: use a tensor on 'cpu' or 'cuda'"
            )


def get_namespace_and_device(*arrays: Array) -> tuple[Namespace, Any]:
    """The namespace and the device shared by `arrays` (``None`` entries are skipped).

    Raises `TypeError` for something that is not an array (and for NumPy masked arrays and
    matrices), `ValueError` naming both when two arrays come from different namespaces or live
    on different devices, and `ValueError` for torch tensors that require grad (arrayml never
    builds an autograd graph: detach them) or live on the value-less ``meta`` device.
    """
    if arrays:  # a None among them is not of a known type: the careful path skips it
        fast = _fast_namespace_and_device(arrays)
        if fast is not None:
            return fast
    xp = dev = first = dev_arg = None
    for i, a in enumerate(arrays):
        if a is None:
            continue
        try:
            a_xp = array_api_compat.array_namespace(a)
        except TypeError:
            raise TypeError(
                f"argument {i}: expected an array (NumPy, PyTorch, CuPy or array-api-strict), "
                f"got {type(a).__name__}"
            ) from None
        _refuse_unusable(a, i)
        a_dev = array_api_compat.device(a)
        if xp is None:
            xp, first = a_xp, i
        elif a_xp is not xp:
            raise ValueError(
                f"arrays from different namespaces in one call: argument {first} is "
                f"{namespace_name(xp)}, argument {i} is {namespace_name(a_xp)}; move them to one "
                "backend first (Module.to(xp, device) or arrayml.backend.convert)"
            )
        if a_dev is None and array_api_compat.is_jax_array(a):
            continue  # a JAX tracer: no device while tracing (see above)
        if dev_arg is None:
            dev, dev_arg = a_dev, i
        elif a_dev != dev:
            raise ValueError(
                f"arrays on different devices in one call: argument {dev_arg} is on {dev}, "
                f"argument {i} is on {a_dev}; move them to one device first"
            )
    if xp is None:
        raise TypeError("expected at least one array, got None")
    first_array = next(a for a in arrays if a is not None)
    if type(first_array) is np.ndarray or array_api_compat.is_torch_array(first_array) \
            or array_api_compat.is_cupy_array(first_array) or array_api_compat.is_array_api_strict_namespace(xp):
        _NAMESPACE_OF_TYPE.setdefault(type(first_array), xp)
        if array_api_compat.is_torch_array(first_array):
            _TORCH_TYPES.add(type(first_array))
    return xp, dev


def check_floating(x: Array, what: str, *, xp: Namespace | None = None) -> None:
    """Raise `TypeError` unless `x` has a real floating dtype (say what `what` expected)."""
    xp = get_namespace(x) if xp is None else xp
    dtype = x.dtype
    if dtype == xp.float32 or dtype == xp.float64:  # the usual answer, 25x cheaper than isdtype
        return
    if not xp.isdtype(dtype, "real floating"):
        raise TypeError(
            f"{what} expects a real floating-point array (float32 or float64), got dtype "
            f"{dtype_name(x.dtype)}; convert it first, e.g. xp.astype(x, xp.float32)"
        )


# --------------------------------------------------------------------------------------------
# Random numbers: an explicit generator, drawn on the host, moved once
# --------------------------------------------------------------------------------------------


def as_generator(rng: Seed) -> np.random.Generator:
    """A `numpy.random.Generator` from a generator, a non-negative integer seed (NumPy integers
    too), or ``None`` (seed 0).

    ``None`` means seed 0 rather than fresh entropy: arrayml runs are reproducible unless you ask
    otherwise. Pass one generator to everything that should draw from the same stream.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"rng must be a numpy.random.Generator or a non-negative int seed, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be a numpy.random.Generator or a non-negative int seed, got {type(rng).__name__} {rng!r}"
    )


def global_seed_generator() -> np.random.Generator:
    """A generator seeded from NumPy's *global* random state, for code written the course's way:
    a script's ``np.random.seed(42)`` then makes the draws reproducible."""
    return np.random.default_rng(np.random.randint(0, 2**31 - 1))  # noqa: NPY002 - honour np.random.seed()


def positive_int(value: Any, what: str) -> int:
    """`value` as a Python int if it is a positive integer (NumPy integers too, not bools, not
    floats); otherwise a `TypeError` or `ValueError` naming `what`, the value and its type."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a positive integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def real_number(
    value: Any, what: str, *, low: float | None = None, high: float | None = None,
    low_open: bool = False, high_open: bool = False,
) -> float:
    """`value` as a Python float if it is a finite real number (Python's or NumPy's; not a bool,
    not a string, not an array) within ``[low, high]`` (open ends where `low_open` /
    `high_open`); otherwise a `TypeError` or `ValueError` naming `what`, the value and the range."""
    lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}, "
    hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    if low is not None and high is None:
        hi = "inf)"
    if high is not None and low is None:
        lo = "(-inf, "
    wanted = f"a finite number in {lo}{hi}" if lo or hi else "a finite number"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be {wanted}, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v) or (low is not None and (v <= low if low_open else v < low)) or (
        high is not None and (v >= high if high_open else v > high)
    ):
        raise ValueError(f"{what} must be {wanted}, got {value!r}")
    return v


def boolean(value: Any, what: str) -> bool:
    """`value` if it is a bool (NumPy's too); otherwise a `TypeError` naming `what` (so that
    ``batch_norm="no"`` is not read as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def normal(
    rng: np.random.Generator, shape: tuple[int, ...], *, std: float, xp: Namespace, device: Any,
    dtype: Any,
) -> Array:
    """Samples of N(0, std²) of `shape`, drawn from `rng` on the host (in float64, so a seed gives
    the same numbers for every dtype and backend), then created on `device` with `dtype`."""
    host = rng.normal(0.0, std, size=shape)
    return xp.asarray(host, dtype=dtype, device=device)


def permutation(rng: np.random.Generator, n: int, *, xp: Namespace, device: Any) -> Array:
    """A random permutation of ``0 .. n-1`` drawn from `rng`, as an int64 array on `device`."""
    host = rng.permutation(n)
    dtype = xp.int64
    if namespace_name(xp) == "jax":
        dtype = _jax_dtype(dtype, "permutation")  # int32 without x64: n < 2**31 indices
    return xp.asarray(host, dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# Moving data between host and backends
# --------------------------------------------------------------------------------------------


def asarray(obj: Any, *, xp: Namespace, device: Any, dtype: Any = None) -> Array:
    """Create an array of namespace `xp` on `device` from host data (a NumPy array, a list...).

    On JAX without x64, float64 (asked for, or float64 host data with no `dtype`) is a
    `TypeError` naming the fix rather than JAX's silent float32."""
    if namespace_name(xp) == "jax":
        return _to_jax(obj, device, dtype, "backend.asarray")
    return xp.asarray(obj, dtype=dtype, device=device)


def _to_jax(obj: Any, device: Any, dtype: Any, what: str) -> Array:
    import jax.numpy as jnp

    host = np.asarray(obj)
    asked = host.dtype if dtype is None else dtype
    target = _jax_dtype(asked, what)
    if dtype_name(target) != dtype_name(asked):  # 64-bit integers narrowed to 32 bits
        _check_int32_range(host, what)
    return jnp.asarray(host, dtype=target, device=device)


def to_numpy(x: Array) -> np.ndarray:
    """Copy any backend's array to a NumPy array on the host (a host sync for GPU arrays)."""
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
    if array_api_compat.is_array_api_strict_namespace(xp):
        x = array_api_compat.to_device(x, xp.Device("CPU_DEVICE"))
    return np.asarray(x)


def convert(x: Array, xp: Namespace, device: Any, dtype: Any = None) -> Array:
    """`x` as an array of namespace `xp` on `device` (through the host when the namespace or
    device differs). `dtype`, if given, is a dtype of `xp`."""
    src_xp = array_api_compat.array_namespace(x)
    if src_xp is xp and array_api_compat.device(x) == device:
        if dtype is not None and namespace_name(xp) == "jax":
            dtype = _jax_dtype(dtype, "backend.convert")
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
    live JAX array on `dev`'s platform."""
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


def widest_float(xp: Namespace) -> Any:
    """float64 of `xp`, or float32 on JAX with x64 disabled (where it has nothing wider): for
    sums and ratios that prefer float64 but do not need it (metrics, loss totals), so that they
    ask for what exists instead of having JAX truncate them with a warning. Parameters and data
    never go through this: float64 asked for there is an error on JAX without x64."""
    return xp.float32 if namespace_name(xp) == "jax" and not x64_enabled() else xp.float64


def widest_int(xp: Namespace) -> Any:
    """int64 of `xp`, or int32 on JAX with x64 disabled (counts and labels below 2**31)."""
    return xp.int32 if namespace_name(xp) == "jax" and not x64_enabled() else xp.int64


def is_array(obj: Any) -> bool:
    """Whether `obj` is an array of any array-API library (a JAX tracer too); a NumPy scalar
    such as ``np.float64(0.1)`` is a number, not an array."""
    if type(obj) in _NAMESPACE_OF_TYPE:  # a type seen before (and traceable by torch.compile)
        return True
    return not isinstance(obj, np.generic) and array_api_compat.is_array_api_obj(obj)


# --------------------------------------------------------------------------------------------
# Compiling a whole function: jax.jit on JAX, torch.compile on PyTorch
# --------------------------------------------------------------------------------------------


def compiler_name(xp: Namespace) -> str | None:
    """``"jax.jit"`` for JAX, ``"torch.compile"`` for PyTorch, None for the namespaces that have
    no tracing compiler (NumPy, CuPy, array-api-strict)."""
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
    Raises `ValueError` for a namespace without a compiler.
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
    is an error. Every model compiled from the same method would count against that one limit
    (its guards check which model it is), so a process that builds a ninth compiled step would
    fail; with a code object of its own, each compiled function counts only its own versions
    (batch shapes, modes)."""
    import types

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
    """
    if namespace_name(xp) == "torch":
        return xp.full((), value, dtype=dtype, device=device)
    return value


# --------------------------------------------------------------------------------------------
# Functions the standard lacks
# --------------------------------------------------------------------------------------------


def logsumexp(x: Array, *, axis: int = -1, keepdims: bool = False, xp: Namespace | None = None) -> Array:
    """log(sum(exp(x), axis)) without overflow, for logits as large as ±1e4.

    Spec gap: the array API standard has no ``logsumexp``. PyTorch's and JAX's native ones are
    used when available; otherwise the max is subtracted first (a row of -inf stays -inf, NaN
    stays NaN).
    """
    xp = get_namespace(x) if xp is None else xp
    name = namespace_name(xp)
    if name == "torch":
        import torch

        return torch.logsumexp(x, dim=axis, keepdim=keepdims)
    if name == "jax":
        import jax

        return jax.nn.logsumexp(x, axis=axis, keepdims=keepdims)
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = xp.squeeze(out, axis=axis)
    return out


def log_softmax(x: Array, *, axis: int = -1, xp: Namespace | None = None) -> Array:
    """log(softmax(x)) along `axis`, stable for large logits (spec gap, like `logsumexp`)."""
    xp = get_namespace(x) if xp is None else xp
    return x - logsumexp(x, axis=axis, keepdims=True, xp=xp)


def one_hot(labels: Array, n_classes: int, dtype: Any, *, xp: Namespace | None = None) -> tuple[Array, Array]:
    """One-hot rows of `dtype` for integer `labels` (S,), and the boolean mask they are made
    from: ``labels[:, None] == arange(n_classes)``. No scatter (the standard has none), no host
    sync, and an out-of-range label gives a zero row on every backend (torch's own ``one_hot``
    would raise on the CPU and trip a device assert on CUDA).

    NumPy: the same two operations and the cast called on NumPy itself (array-api-compat's
    ``arange``, ``astype`` and ``device`` are eight Python frames around them). Fallback: the
    standard's ``arange``, ``==`` and ``astype``.
    """
    xp = get_namespace(labels) if xp is None else xp
    name = _NAMESPACE_NAMES.get(getattr(xp, "__name__", "")) or namespace_name(xp)  # no frame: hot path
    if name == "numpy" and type(labels) is np.ndarray:
        hot = np.equal(labels[:, None], np.arange(n_classes, dtype=labels.dtype))
        return hot.astype(dtype), hot
    classes = xp.arange(n_classes, dtype=labels.dtype, device=device(labels))
    hot = labels[:, None] == classes
    return xp.astype(hot, dtype), hot


def softmax_cross_entropy(
    x: Array, t: Array, *, hot: Array | None = None, xp: Namespace | None = None,
) -> tuple[Array, Array]:
    """The fused softmax + mean cross-entropy on logits `x` (S, C) and target rows `t` (S, C, of
    x's dtype): ``(loss, y)`` with ``loss = −(1/S) Σ t · log softmax(x)`` (a 0-D array; an entry
    with t = 0 adds 0 even where log softmax is −inf, as in PyTorch) and ``y = softmax(x)``
    (computed as ``exp(log softmax(x))``), which the backward ``(y − t)/S`` needs.

    `hot`: for one-hot rows (integer labels), the boolean mask ``t == 1`` they were made from.
    The sum is then ``Σ where(hot, log y, 0)``: for rows of 0 and 1 the very same numbers as
    ``Σ t · where(t == 0, 0, log y)``, two operations fewer.

    Spec gap: the standard has neither log-softmax nor cross-entropy. On a (128, 10) batch the
    arithmetic is nothing and the ~15 calls are everything, so the fast paths are the fallback's
    own steps called on the native library, without array-api-compat's wrappers: PyTorch's
    ``logsumexp``; for NumPy the max-subtracted sum of exponentials, written into temporaries
    that only this function holds. Same operations, same order, same numbers (bit for bit on
    NumPy). `x` and `t` are never modified. The standard-only fallback is `log_softmax`, then the
    masked sum.
    """
    xp = get_namespace(x, t) if xp is None else xp
    name = _NAMESPACE_NAMES.get(getattr(xp, "__name__", "")) or namespace_name(xp)  # no frame: hot path
    S = x.shape[0]
    if name == "numpy" and x.ndim == 2 and x.dtype == t.dtype and x.shape == t.shape:
        # the row maxima from a transposed copy: NumPy reduces a short contiguous row slowly
        # (8 us for 128 rows of 10), but the columns of (C, S) element-wise (1 us); same values
        m = np.maximum.reduce(np.ascontiguousarray(x.T), axis=0)[:, None]  # = np.max, minus its wrapper
        np.copyto(m, 0, where=~np.isfinite(m))  # a row of -inf stays -inf, NaN stays NaN
        e = np.subtract(x, m)
        lse = np.add.reduce(np.exp(e, out=e), axis=1, keepdims=True)  # = np.sum, minus its wrapper
        lse = np.add(np.log(lse, out=lse), m, out=lse)
        logy = np.subtract(x, lse)
        if hot is not None:
            picked = np.where(hot, logy, 0.0)
        else:
            picked = np.where(t == 0, 0.0, logy)  # 0 where t = 0, even where logy = -inf
            np.multiply(t, picked, out=picked)
        loss = np.add.reduce(picked, axis=None) / -S  # = −(Σ)/S exactly
        return loss, np.exp(logy, out=logy)
    if name == "torch":
        import torch

        logy_t = x - torch.logsumexp(x, dim=1, keepdim=True)
        picked_t = torch.where(hot, logy_t, 0.0) if hot is not None else t * torch.where(t == 0, 0.0, logy_t)
        return torch.sum(picked_t) / -S, torch.exp(logy_t)  # = −(Σ)/S exactly, one call fewer
    logy = log_softmax(x, axis=1, xp=xp)
    # T·log y with T = 0 is 0 even where log y = −inf (PyTorch agrees), not 0·(−inf) = NaN
    picked = xp.where(hot, logy, 0.0) if hot is not None else t * xp.where(t == 0, 0.0, logy)
    return -xp.sum(picked) / S, xp.exp(logy)


def count_true(mask: Array, *, xp: Namespace | None = None) -> Array:
    """The number of True entries of a boolean array, as a 0-D integer array (`widest_int`).

    Spec gap: the standard's ``sum`` takes numeric arrays only, so the fallback casts the mask
    first; NumPy and PyTorch sum booleans into int64 natively, one operation fewer (the training
    step's count of correct predictions).
    """
    xp = get_namespace(mask) if xp is None else xp
    name = _NAMESPACE_NAMES.get(getattr(xp, "__name__", "")) or namespace_name(xp)  # no frame: hot path
    if name == "numpy" and type(mask) is np.ndarray:
        return np.add.reduce(mask, axis=None, dtype=np.int64)
    if name == "torch":
        import torch

        return torch.sum(mask, dtype=torch.int64)
    return xp.sum(xp.astype(mask, widest_int(xp)))


def subtract_scaled(p: Array, g: Array, scale: float, *, xp: Namespace | None = None) -> Array:
    """``p − scale·g`` as a new array, in one pass where the backend allows (the SGD update).

    Spec gap: the standard has no fused "axpy". PyTorch's native ``torch.sub(p, g, alpha=)`` makes
    one new tensor; for NumPy and CuPy the product is written to a fresh temporary and the
    difference into that same temporary, which saves an allocation and a cache-cold pass. Neither
    `p` nor `g` is modified (read-only inputs work); the standard-only fallback is ``p − scale·g``
    (JAX's too: under ``jax.jit`` XLA fuses it into one pass, and a JAX array cannot be written).
    `scale` may be a 0-D array (a compiled step's traced learning rate): then the fallback.
    """
    xp = get_namespace(p, g) if xp is None else xp
    name = _NAMESPACE_NAMES.get(getattr(xp, "__name__", "")) or namespace_name(xp)  # no frame: hot path
    if type(scale) is not float and is_array(scale):  # (SGD passes a Python float, or a traced rate)
        return p - scale * g
    if name == "torch":
        import torch

        return torch.sub(p, g, alpha=scale)
    if name in ("numpy", "cupy") and p.shape == g.shape and p.dtype == g.dtype:
        lib = np if name == "numpy" else importlib.import_module("cupy")
        out = lib.multiply(g, scale, dtype=g.dtype)  # a new array that only this function holds
        return lib.subtract(p, out, out=out)
    return p - scale * g


def column_sums(x: Array, *, xp: Namespace | None = None) -> Array:
    """``sum(x, axis=0, keepdims=True)``: the (1, n) row of column sums of a 2-D `x` (Linear's
    bias gradient 1ᵀdY).

    Not a spec gap but per-call overhead: array-api-compat's ``sum`` and NumPy's own
    ``numpy.sum`` are five Python frames around one C reduction on NumPy (three on PyTorch). NumPy:
    ``numpy.add.reduce`` (what ``numpy.sum`` calls: the same numbers); PyTorch: ``torch.sum``.
    Fallback: ``xp.sum(x, axis=0, keepdims=True)``.
    """
    xp = get_namespace(x) if xp is None else xp
    name = _NAMESPACE_NAMES.get(getattr(xp, "__name__", "")) or namespace_name(xp)  # no frame: hot path
    if name == "numpy" and type(x) is np.ndarray:
        return np.add.reduce(x, axis=0, keepdims=True)
    if name == "torch":
        import torch

        return torch.sum(x, dim=0, keepdim=True)
    return xp.sum(x, axis=0, keepdims=True)


def take_rows(x: Array, idx: Array, *, xp: Namespace | None = None) -> Array:
    """``take(x, idx, axis=0)`` for non-negative row indices `idx` (a batch of a permutation).

    array-api-compat's ``take`` for PyTorch first maps negative indices with a comparison, an
    addition and a ``where`` (``index_select`` refuses them): three kernels per batch that
    non-negative indices never need, about 35 us of a 160 us batch of 128 CIFAR rows on this
    CPU. PyTorch calls ``index_select`` directly; every other namespace takes ``xp.take``.
    """
    xp = get_namespace(x, idx) if xp is None else xp
    if (_NAMESPACE_NAMES.get(getattr(xp, "__name__", "")) or namespace_name(xp)) == "torch":  # no frame: hot path
        import torch

        return torch.index_select(x, 0, idx)
    if type(x) is np.ndarray and type(idx) is np.ndarray:
        return x.take(idx, axis=0)  # np.take itself, without its two wrapper frames
    return xp.take(x, idx, axis=0)


def relu(x: Array, *, xp: Namespace | None = None) -> Array:
    """``max(x, 0)`` as a new array; a NaN stays NaN.

    Not a spec gap but a speed gap: the standard-only form ``where(x < 0, 0, x)`` is what every
    namespace runs (``maximum`` with a Python constant cannot be traced by ``torch.compile``
    through array-api-compat), but NumPy's ``where`` takes a branch per element, which random
    signs mispredict: 12× slower than ``numpy.maximum`` on a 128×128 batch. PyTorch's native
    ``torch.relu`` is one kernel. `x` is never modified.
    """
    xp = get_namespace(x) if xp is None else xp
    name = _NAMESPACE_NAMES.get(getattr(xp, "__name__", "")) or namespace_name(xp)  # no frame: hot path
    if name == "numpy":
        return np.maximum(x, 0)  # a Python 0 keeps x's dtype; NaN propagates
    if name == "torch":
        import torch

        return torch.relu(x)
    return xp.where(x < 0, 0.0, x)


def relu_backward(x: Array, dy: Array, *, xp: Namespace | None = None) -> Array:
    """ReLU's backward ``dx = dy ⊙ 1[x > 0]``, written ``where(x <= 0, 0, dy)``: 0 where x ≤ 0
    (the kink included), `dy` elsewhere, so that a NaN input passes its gradient on, as in
    PyTorch's autograd (``threshold_backward``), and a NaN or infinite `dy` where x ≤ 0 still
    gives exactly 0 (a product ``dy · mask`` would give NaN there).

    Native fast paths (a speed gap, as for `relu`): PyTorch's ``threshold_backward`` is that
    very formula in one kernel. NumPy's ``where`` branches per element; instead the mask
    ``x <= 0`` becomes an integer array (1 where the gradient is dropped), minus 1 gives 0 there
    and all bits set elsewhere, and a bitwise AND with dy's bits keeps dy exactly or gives +0.0:
    three branch-free passes into one temporary that only this function holds. Neither input is
    modified; the standard-only fallback is the `where` itself.
    """
    xp = get_namespace(x, dy) if xp is None else xp
    name = _NAMESPACE_NAMES.get(getattr(xp, "__name__", "")) or namespace_name(xp)  # no frame: hot path
    if name == "torch":
        import torch

        return torch.ops.aten.threshold_backward(dy, x, 0)
    if name == "numpy" and x.dtype == dy.dtype and x.shape == dy.shape and dy.dtype in _SAME_WIDTH_INT:
        ints = _SAME_WIDTH_INT[dy.dtype]
        keep = np.less_equal(x, 0).astype(ints)  # 1 where the gradient is dropped, else 0
        keep -= 1  # 0 where dropped, -1 (all bits set) where kept
        return np.bitwise_and(dy.view(ints), keep, out=keep).view(dy.dtype)
    return xp.where(x <= 0, 0.0, dy)


# float dtype -> the integer dtype of its width, for `relu_backward`'s bit mask
_SAME_WIDTH_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def prod(shape: tuple[int, ...]) -> int:
    """Number of elements of an array of `shape`."""
    return math.prod(shape)
