"""The backends every test runs on, in one table (numpy, read-only numpy, torch CPU/CUDA,
array-api-strict on its default and on a non-default device, cupy, JAX CPU/GPU), and the graph
backend (ndonnx, whose graphs onnxruntime runs) that the gradient and export tests add.

A backend that this machine cannot run is still listed, and its tests are skipped with the
reason (e.g. "no CUDA device"), so the test report always shows what was not covered.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from arrayml import backend
from arrayml.modules.base import Module

HAS_TORCH = importlib.util.find_spec("torch") is not None
#: For the tests (or parametrize rows) that need PyTorch itself, e.g. as the autograd oracle: only
#: those are skipped where torch is not installed.
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (CPU build: pip install torch==2.13.0)")


def _torch_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _jax_reason(device_name: Any) -> str | None:
    if importlib.util.find_spec("jax") is None:
        return 'jax is not installed (pip install -e ".[jax]")'
    if device_name == "cuda":
        import jax

        try:
            backend.resolve_device(backend.namespace_by_name("jax"), "cuda")
        except backend.BackendUnavailableError:
            platforms = ", ".join(sorted({d.platform for d in jax.devices()}))
            return f"no GPU for JAX on this machine (it sees: {platforms})"
    return None


def onnx_reason() -> str | None:
    """Why the ndonnx rows cannot run here (the ``[onnx]`` extra is missing), or None."""
    missing = [m for m in ("ndonnx", "onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed; install the [onnx] extra: {backend.ONNX_INSTALL}"
    return None


#: For the tests that export or build ONNX graphs: skipped, with the install command, without the extra.
needs_onnx = pytest.mark.skipif(onnx_reason() is not None, reason=onnx_reason() or "")


def _cupy_reason() -> str | None:
    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed (needs an NVIDIA GPU; run `nox -s tests_gpu` there)"
    try:
        backend.namespace_by_name("cupy")
    except backend.BackendUnavailableError as exc:
        return f"cupy unusable here: {exc}"
    return None


@dataclass(frozen=True)
class Backend:
    """One (namespace, device) combination, with read-only NumPy as a variant."""

    id: str
    xp_name: str
    device_name: Any = None
    readonly: bool = False

    def skip_reason(self) -> str | None:
        if self.xp_name == "torch":
            if importlib.util.find_spec("torch") is None:
                return "torch is not installed"
            if self.device_name == "cuda" and not _torch_cuda():
                return "no CUDA device for torch on this machine"
        if self.xp_name == "cupy":
            return _cupy_reason()
        if self.xp_name == "jax":
            return _jax_reason(self.device_name)
        if self.xp_name == "array-api-strict" and importlib.util.find_spec("array_api_strict") is None:
            return "array-api-strict is not installed"
        if self.xp_name == "ndonnx":
            return onnx_reason()
        return None

    @property
    def xp(self) -> Any:
        return backend.namespace_by_name(self.xp_name)

    @property
    def device(self) -> Any:
        return backend.resolve_device(self.xp, self.device_name)

    def placement(self, dtype: str = "float64") -> dict[str, Any]:
        """Keyword arguments that build a module on this backend."""
        return {"xp": self.xp, "device": self.device, "dtype": dtype}

    def asarray(self, host: Any, dtype: str | None = None) -> Any:
        """A host (NumPy) array on this backend; read-only for the read-only variant."""
        host = np.asarray(host)
        if dtype is not None:
            host = host.astype(dtype)
        xp = self.xp
        out = xp.asarray(host, dtype=getattr(xp, str(host.dtype)), device=self.device)
        if self.readonly:
            out = np.array(out)  # a copy we own, then frozen
            out.flags.writeable = False
        return out

    def freeze(self, module: Module) -> Module:
        """Make every parameter and buffer read-only (read-only variant only)."""
        if self.readonly:
            for _, owner in module.named_modules():
                for table in (owner.params, owner.buffers):
                    for key, value in table.items():
                        value = np.array(value)
                        value.flags.writeable = False
                        table[key] = value
        return module

    def __str__(self) -> str:
        return self.id


ALL_BACKENDS = [
    Backend("numpy", "numpy"),
    Backend("numpy-readonly", "numpy", readonly=True),
    Backend("torch-cpu", "torch", "cpu"),
    Backend("torch-cuda", "torch", "cuda"),
    Backend("strict", "array-api-strict"),
    Backend("strict-device1", "array-api-strict", "device1"),
    Backend("cupy", "cupy", "cuda"),
    Backend("jax", "jax", "cpu"),
    Backend("jax-cuda", "jax", "cuda"),
]


def backend_params(backends: list[Backend] = ALL_BACKENDS) -> list[Any]:
    """``pytest.param`` entries, each skipped with its reason when unavailable here."""
    out = []
    for b in backends:
        reason = b.skip_reason()
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        if b.xp_name == "cupy" or b.device_name == "cuda":
            marks.append(pytest.mark.gpu)
        out.append(pytest.param(b, id=b.id, marks=marks))
    return out


BACKENDS = backend_params()

#: The namespaces whose arrays are graph nodes: a test builds the graph and runs it in onnxruntime.
GRAPH_BACKENDS = backend_params([Backend("ndonnx", "ndonnx")])
