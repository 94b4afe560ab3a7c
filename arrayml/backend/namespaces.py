"""Which array library an array belongs to, and on which device it lives.

`get_namespace` and `get_namespace_and_device` are what every layer asks on every call. The
common case (arrays of one type already seen, on one device) is answered from a table without
inspecting them again; anything unusual goes through ``array_api_compat`` and a careful check
whose error names the caller's own arguments (``names=``) and the call (``what=``).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

Array = Any  # an array of any array-API namespace
Namespace = Any  # an array-API namespace module

#: The array libraries that compute: the names ``--xp`` on the command line accepts.
BACKEND_NAMES = ("numpy", "torch", "cupy", "jax", "array-api-strict")

#: The namespaces whose arrays are nodes of a graph rather than values: ndonnx (an ONNX graph,
#: built by ordinary array-API calls and run by onnxruntime; see `arrayml.backend.graph`). Also
#: accepted by `namespace_by_name` and ``Module.to``; not for training loops, since a value is
#: only there once onnxruntime runs the graph.
GRAPH_BACKEND_NAMES = ("ndonnx",)

#: The ONNX extra: ndonnx builds the graphs, onnxruntime runs them (both need Python 3.11+).
ONNX_INSTALL = 'pip install "arrayml[onnx]"  (from a checkout: pip install -e ".[onnx]"; needs Python 3.11+)'

_INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "torch": "pip install torch  (CPU only: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu)",
    "cupy": "pip install cupy-cuda12x  (needs an NVIDIA GPU and CUDA 12)",
    "jax": 'pip install "jax[cpu]>=0.10,<0.11"  (GPU: "jax[cuda12]>=0.10,<0.11"; 0.10 is the '
    "newest for Python 3.11)",
    "array-api-strict": "pip install array-api-strict",
    "ndonnx": ONNX_INSTALL,
}

# The module that provides each backend's namespace (JAX implements the standard itself:
# array_api_compat hands back jax.numpy unwrapped).
_MODULES = {
    "numpy": "array_api_compat.numpy", "torch": "array_api_compat.torch", "cupy": "array_api_compat.cupy",
    "jax": "jax.numpy", "array-api-strict": "array_api_strict", "ndonnx": "ndonnx",
}
# The libraries each of them needs, imported first so that a missing one is named (ndonnx runs
# nothing itself: onnxruntime computes every value, including the constants it folds).
_LIBRARIES = {"numpy": ("numpy",), "torch": ("torch",), "cupy": ("cupy",), "jax": ("jax",),
              "array-api-strict": ("array_api_strict",), "ndonnx": ("onnxruntime", "ndonnx")}


class BackendUnavailableError(RuntimeError):
    """A backend or device was asked for that this machine cannot provide."""


def device(x: Array) -> Any:
    """The device `x` lives on (``array_api_compat.device``).

    Args:
        x: an array of any array-API library.

    Returns:
        Its device (``"cpu"`` for NumPy, a ``torch.device``, a JAX device...).
    """
    return array_api_compat.device(x)


def namespace_by_name(name: str) -> Namespace:
    """Return the array-API namespace called `name` (one of `BACKEND_NAMES`).

    Args:
        name: a backend name (case and ``-``/``_`` do not matter; ``"strict"`` is
            array-api-strict), or ``"ndonnx"``.

    Returns:
        The namespace (``array_api_compat.numpy``, ``jax.numpy``, ...).

    Raises:
        ValueError: `name` is no backend's.
        BackendUnavailableError: the library is not installed (the message gives the install
            command), fails to import, or (CuPy) finds no usable CUDA device.

    Example:
        >>> from arrayml import backend
        >>> backend.namespace_name(backend.namespace_by_name("NumPy"))
        'numpy'
    """
    key = name.lower().replace("_", "-")
    key = "array-api-strict" if key == "strict" else key
    if key not in _MODULES:
        raise ValueError(
            f"unknown array backend {name!r}; expected one of {', '.join(BACKEND_NAMES + GRAPH_BACKEND_NAMES)}"
        )
    try:
        for library in _LIBRARIES[key]:
            importlib.import_module(library)
        xp = importlib.import_module(_MODULES[key])
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {name!r} is not installed ({exc}); install it with: {_INSTALL_HINTS[key]}"
        ) from None
    except Exception as exc:  # CuPy raises other errors when CUDA is broken
        raise BackendUnavailableError(f"backend {name!r} failed to import: {exc}") from None
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


#: Namespace module name -> backend name: how every hot-path function names a namespace
#: without calling into array_api_compat (whose cached checks torch.compile warns about).
NAMESPACE_NAMES = {
    "array_api_compat.numpy": "numpy", "numpy": "numpy", "array_api_compat.torch": "torch",
    "torch": "torch", "array_api_compat.cupy": "cupy", "cupy": "cupy", "jax.numpy": "jax",
    "array_api_strict": "array-api-strict", "ndonnx": "ndonnx",
}


def namespace_name(xp: Namespace) -> str:
    """A short human name for a namespace: ``numpy``, ``torch``, ``cupy``, ``jax``,
    ``array-api-strict``, ``ndonnx``.

    Args:
        xp: an array namespace.

    Returns:
        Its short name (the module's name for a namespace arrayml does not know).
    """
    name = NAMESPACE_NAMES.get(getattr(xp, "__name__", ""))
    if name is not None:
        return name
    for lib in ("numpy", "torch", "cupy", "jax", "array_api_strict"):
        if getattr(array_api_compat, f"is_{lib}_namespace")(xp):
            return lib.replace("_", "-")
    return getattr(xp, "__name__", repr(xp))


# --------------------------------------------------------------------------------------------
# Namespace and device of given arrays
# --------------------------------------------------------------------------------------------

# Namespace by array type, filled on first sight of each type (np.ndarray, torch.Tensor, ...):
# every layer asks on every call, and array_api_compat's full inspection is much slower.
_NAMESPACE_OF_TYPE: dict[type, Namespace] = {}
# The torch tensor types among them: those need two more attribute reads (autograd, meta device).
_TORCH_TYPES: set[type] = set()


def get_namespace(*arrays: Array, names: Sequence[str] | None = None, what: str | None = None) -> Namespace:
    """The namespace shared by `arrays` (``None`` entries are skipped). Errors as in
    `get_namespace_and_device`.

    Args:
        *arrays: the arrays (None entries are skipped).
        names: what to call each array in an error (``("input x", "weight")``).
        what: the call, to start an error message with (``"Linear.forward"``).

    Returns:
        The namespace of the arrays.

    Raises:
        TypeError: something is not an array (or is a masked array or a matrix), or there is
            no array at all.
        ValueError: the arrays come from different namespaces or live on different devices,
            or a torch tensor requires grad or is on the ``meta`` device.
    """
    if arrays and type(arrays[0]) is np.ndarray:  # NumPy, the common case, without a call:
        for a in arrays:  # plain ndarrays all (no device to compare): the namespace is known
            if type(a) is not np.ndarray:
                break
        else:
            xp = _NAMESPACE_OF_TYPE.get(np.ndarray)
            if xp is not None:
                return xp
    found = _fast_namespace_and_device(arrays) if arrays else None
    return (found if found is not None else get_namespace_and_device(*arrays, names=names, what=what))[0]


def _fast_namespace_and_device(arrays: tuple[Array, ...]) -> tuple[Namespace, Any] | None:
    """The common case (every array of one known type, same device) without full inspection;
    None when anything is unusual, so that the careful path decides and explains.

    Plain loops, no generator expressions: this runs about ten times a training step."""
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
            return None  # refused by the careful path, with the reason
        for a in arrays:
            if type(a) is not t or a.requires_grad or (a is not first and a.device != dev):
                return None  # requires_grad: refused by the careful path, with the reason
        return xp, dev
    for a in arrays:
        if type(a) is not t or a.device != dev:
            return None
    return xp, dev


def get_namespace_and_device(
    *arrays: Array, names: Sequence[str] | None = None, what: str | None = None,
) -> tuple[Namespace, Any]:
    """The namespace and the device shared by `arrays` (``None`` entries are skipped).

    Torch tensors that require grad are refused (arrayml never builds an autograd graph: detach
    them), and so are those on the value-less ``meta`` device. The messages call the arrays by `names` (one per array: ``("input x", "weight")``), or
    ``argument 0``, ``argument 1``... without them, and start with ``"<what>: "`` if `what` (the
    call: ``"Linear.forward"``) is given.

    Args:
        *arrays: the arrays (None entries are skipped).
        names: what to call each array in an error, one name per array.
        what: the call, to start an error message with.

    Returns:
        ``(xp, device)``: the arrays' namespace and device (``"cpu"`` for NumPy).

    Raises:
        TypeError: something is not an array (or is a masked array or a matrix), or there is
            no array at all.
        ValueError: the arrays come from different namespaces or live on different devices,
            or a torch tensor requires grad or is on the ``meta`` device.

    Example:
        >>> import numpy as np
        >>> from arrayml import backend
        >>> xp, dev = backend.get_namespace_and_device(np.ones(2), np.zeros(3))
        >>> backend.namespace_name(xp), dev
        ('numpy', 'cpu')
        >>> backend.get_namespace_and_device(np.ones(2), [1, 2], names=("x", "y"), what="f")
        Traceback (most recent call last):
        ...
        TypeError: f: y: expected an array (NumPy, PyTorch, CuPy, JAX, array-api-strict or ndonnx), got list
    """
    if arrays:  # a None among them is not of a known type: the careful path skips it
        fast = _fast_namespace_and_device(arrays)
        if fast is not None:
            return fast
    label = _labeller(names)
    try:
        xp, dev = _inspect(arrays, label)
    except (TypeError, ValueError) as exc:
        if what is None:
            raise
        raise type(exc)(f"{what}: {exc}") from None
    return xp, dev


def _labeller(names: Sequence[str] | None) -> Any:
    if names is None:
        return lambda i: f"argument {i}"
    return lambda i: names[i] if i < len(names) else f"argument {i}"


def _inspect(arrays: tuple[Array, ...], label: Any) -> tuple[Namespace, Any]:
    """The careful path: every array inspected, the first problem explained."""
    xp = dev = first = dev_arg = None
    for i, a in enumerate(arrays):
        if a is None:
            continue
        try:
            a_xp = array_api_compat.array_namespace(a)
        except TypeError:
            library = type(a).__module__.partition(".")[0]
            if library in ("pandas", "polars") and hasattr(a, "to_numpy"):  # a table's column or frame
                raise TypeError(f"{label(i)} is a {library} {type(a).__name__}, not an array: pass .to_numpy()") from None
            raise TypeError(
                f"{label(i)}: expected an array (NumPy, PyTorch, CuPy, JAX, array-api-strict or ndonnx), "
                f"got {type(a).__name__}"
            ) from None
        _refuse_unusable(a, label(i))
        a_dev = array_api_compat.device(a)
        if xp is None:
            xp, first = a_xp, i
        elif a_xp is not xp:
            raise ValueError(
                f"arrays from different namespaces in one call: {label(first)} is "
                f"{namespace_name(xp)}, {label(i)} is {namespace_name(a_xp)}; move them to one "
                "backend first (Module.to(xp, device) or arrayml.backend.convert)"
            )
        if a_dev is None and array_api_compat.is_jax_array(a):
            continue  # a JAX tracer: no device while tracing
        if dev_arg is None:
            dev, dev_arg = a_dev, i
        elif a_dev != dev:
            raise ValueError(
                f"arrays on different devices in one call: {label(dev_arg)} is on {dev}, "
                f"{label(i)} is on {a_dev}; move them to one device first"
            )
    if xp is None:
        raise TypeError(f"expected at least one array, got None{'' if not arrays else ' for ' + label(0)}")
    _remember_type(next(a for a in arrays if a is not None), xp)
    return xp, dev


def _remember_type(a: Array, xp: Namespace) -> None:
    """Let the fast path answer for arrays of `a`'s type from now on (the types whose device
    attribute and dtype compare cheaply: NumPy, torch, CuPy, array-api-strict)."""
    if type(a) is np.ndarray or array_api_compat.is_torch_array(a) or array_api_compat.is_cupy_array(a) \
            or array_api_compat.is_array_api_strict_namespace(xp) or NAMESPACE_NAMES.get(xp.__name__) == "ndonnx":
        _NAMESPACE_OF_TYPE.setdefault(type(a), xp)
        if array_api_compat.is_torch_array(a):
            _TORCH_TYPES.add(type(a))


def _refuse_unusable(a: Array, label: str) -> None:
    """Arrays that array_api_compat accepts but arrayml must not compute with."""
    if isinstance(a, np.ndarray) and type(a) is not np.ndarray:
        if isinstance(a, (np.ma.MaskedArray, np.matrix)):
            kind = "a masked array" if isinstance(a, np.ma.MaskedArray) else "a numpy.matrix"
            raise TypeError(
                f"{label} is {kind}, which arrayml does not support (it would ignore the "
                "mask, or `*` would mean a matrix product); pass a plain array, e.g. "
                "numpy.ma.filled(x, fill_value) or numpy.asarray(x)"
            )
    elif array_api_compat.is_torch_array(a):
        if a.requires_grad:
            raise ValueError(
                f"{label} is a torch tensor with requires_grad=True; arrayml computes its own "
                "gradients and never builds a torch autograd graph (it would grow every step and "
                "pull the parameters into it): pass x.detach(), or make it under torch.no_grad()"
            )
        if a.device.type == "meta":
            raise ValueError(
                f"{label} is a torch 'meta' tensor, which holds no values; arrayml computes "
                "values: use a tensor on 'cpu' or 'cuda'"
            )


def is_array(obj: Any) -> bool:
    """Whether `obj` is an array of any array-API library (a JAX tracer too); a NumPy scalar
    such as ``np.float64(0.1)`` is a number, not an array.

    Args:
        obj: anything.

    Returns:
        True for an array of an array-API library.
    """
    if type(obj) in _NAMESPACE_OF_TYPE:  # a type seen before (and traceable by torch.compile)
        return True
    return not isinstance(obj, np.generic) and array_api_compat.is_array_api_obj(obj)
